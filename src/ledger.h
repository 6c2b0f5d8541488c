/*
 * ledger.h: who the API may still be working on. Per user: how many
 * requests carrying the user are on the wire, and until when a request
 * whose answer never came (a timeout, a reset after the body was sent, a
 * 502/504) may still run at the API (its hold). One record per user: the
 * batcher's user record holds the user's entry, which names the user's
 * slot here while it is busy (the batcher keeps a record while its entry is
 * busy). Only busy users have a slot, so an idle record pays 4 bytes, and
 * counting, matching tags and expiring holds never touch an idle user.
 * Independent of flights and batches: an action may be resolved, dead-lettered
 * or given up while the request that carried it still runs. The batcher's busy
 * gate, retries, revocations and the shutdown ask the ledger, and nothing else,
 * whether a user may be sent or handed over. Each entry also keeps the tags
 * (the caller's partition keys) of the actions its requests carried, so a
 * revocation waits only for the users of what it hands over. Pure: time is
 * passed in; no I/O.
 */
#ifndef LB_LEDGER_H
#define LB_LEDGER_H

#include <stddef.h>
#include <stdint.h>

/** A user's part of the ledger, in its record (zeroed: idle). */
typedef struct {
        uint32_t slot; /* its busy slot + 1; 0: idle */
} lb_ledger_entry_t;

typedef struct lb_ledger_s lb_ledger_t;

/** @returns an empty ledger, or NULL on allocation failure. */
lb_ledger_t *lb_ledger_new(void);

/** @brief Frees the ledger (its entries' records must have let go of them,
 *         or go without reading them again); NULL is a no-op. */
void lb_ledger_destroy(lb_ledger_t *l);

/**
 * @brief A request carrying e's user, with actions tagged tags[0..ntags),
 *        went on the wire (once per distinct user and request).
 * @returns 0, or -1 on allocation failure (the ledger is unchanged).
 */
int lb_ledger_sent(lb_ledger_t *l, lb_ledger_entry_t *e, const uint64_t *tags,
                   size_t ntags);

/**
 * @brief A request carrying e's user ended at now. hold_until: until when
 *        the API may still be running it (its answer never came), or 0 if
 *        it answered. An entry neither on the wire nor held goes idle.
 */
void lb_ledger_answered(lb_ledger_t *l, lb_ledger_entry_t *e,
                        int64_t hold_until, int64_t now);

/** @returns until when e's user is busy: INT64_MAX while a request is on
 *           the wire, the end of its hold, or 0 if it is idle (or l is
 *           NULL). Busy means a returned value > now. */
int64_t lb_ledger_until(const lb_ledger_t *l, const lb_ledger_entry_t *e);

/** @brief Entries whose hold ended by now go idle. */
void lb_ledger_expire(lb_ledger_t *l, int64_t now);

/** @brief e's record goes away: e leaves the ledger whatever its state. */
void lb_ledger_forget(lb_ledger_t *l, lb_ledger_entry_t *e);

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
