/*
 * ledger.h: who the API may still be working on. Per (app, user): how many
 * requests carrying the user are on the wire, and until when a request
 * whose answer never came (a timeout, a reset after the body was sent, a
 * 502/504) may still run at the API (its hold). Independent of flights and
 * batches: an action may be resolved, dead-lettered or given up while the
 * request that carried it still runs. The batcher's busy gate, retries,
 * revocations and the shutdown ask the ledger, and nothing else, whether a
 * user may be sent or handed over. Each entry also keeps the tags (the
 * caller's partition keys) of the actions its requests carried, so a
 * revocation waits only for the users of what it hands over. Pure: time is
 * passed in; no I/O.
 */
#ifndef LB_LEDGER_H
#define LB_LEDGER_H

#include <stddef.h>
#include <stdint.h>

typedef struct lb_ledger_s lb_ledger_t;

/** @returns an empty ledger, or NULL on allocation failure. */
lb_ledger_t *lb_ledger_new(void);

/** @brief Frees the ledger; NULL is a no-op. */
void lb_ledger_destroy(lb_ledger_t *l);

/**
 * @brief A request carrying (app, id), with actions tagged tags[0..ntags),
 *        went on the wire (once per distinct user and request).
 * @returns 0, or -1 on allocation failure (the ledger is unchanged).
 */
int lb_ledger_sent(lb_ledger_t *l, int app, const char *id, size_t len,
                   const uint64_t *tags, size_t ntags);

/**
 * @brief A request carrying (app, id) ended at now. hold_until: until when
 *        the API may still be running it (its answer never came), or 0 if
 *        it answered. An entry neither on the wire nor held is removed.
 */
void lb_ledger_answered(lb_ledger_t *l, int app, const char *id, size_t len,
                        int64_t hold_until, int64_t now);

/** @returns until when (app, id) is busy: INT64_MAX while a request is on
 *           the wire, the end of its hold, or 0 if it is not in the
 *           ledger. Busy means a returned value > now. */
int64_t lb_ledger_until(const lb_ledger_t *l, int app, const char *id,
                        size_t len);

/** @brief Removes the entries whose hold ended by now. */
void lb_ledger_expire(lb_ledger_t *l, int64_t now);

/** @returns users busy at now (on the wire or held). */
size_t lb_ledger_busy(const lb_ledger_t *l, int64_t now);

/** @returns 1 if a user busy at now carried a tag for which match() is
 *           true, else 0. */
int lb_ledger_busy_tagged(const lb_ledger_t *l, int64_t now,
                          int (*match)(uint64_t tag, const void *arg),
                          const void *arg);

/** @returns when a hold may end next (no later than the earliest end of a
 *           hold; exact after lb_ledger_expire()), or INT64_MAX if no user
 *           is held. */
int64_t lb_ledger_next_expiry(const lb_ledger_t *l);

#endif
