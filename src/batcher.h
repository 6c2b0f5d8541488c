/*
 * batcher.h: pending actions grouped by (app, user), and the packing policy
 * that turns them into requests. Enforces the API's rules: one app per
 * request, at most max_users distinct users, max_actions actions and
 * max_bytes bytes; a user's actions leave in consumed order; a user is in at
 * most one unreleased batch at a time (the ordering gate), and after its
 * batch is released stays busy for as long as the ledger (ledger.h) says
 * the API may still be working on it (the busy gate). Pure: time is passed
 * in; no I/O.
 *
 * Packing policy: the API bills every distinct user of a request, so a user
 * is sent once per wait budget, as late as the budget allows, with every
 * action it has by then. Each action gets a deadline when added (its due
 * time, see lb_batcher_add); a user's deadline is its oldest queued action's.
 * Each app has its own budget. An action that closes its user's window (an
 * urgent one, a session's end: lb_close_t) brings the deadline of the
 * user's queued actions, its own included, forward to linger_ms after it
 * was written to Kafka (as the budget, its wait counts from then; one that
 * arrives later goes at once): the user goes then, with all it has, in
 * order, and still only once it is not busy. When asked for a batch:
 *   1. DUE: the app holding the earliest deadline that has passed sends its
 *      due users, earliest deadline first, topped up with users due within
 *      the app's gather horizon (min(linger_ms, its max_wait_ms / 10)) so
 *      that due users share requests;
 *   2. FULL: a user whose queued actions fill a request on their own
 *      (max_actions, or max_bytes) goes at once: waiting saves nothing;
 *   3. MEMORY: while the caller allows early sends (pending near its
 *      bound), the nearest deadlines go early;
 *   4. flush (shutdown, revocation): everything, earliest deadline first.
 * A user not due is never added to a request just to fill it: that would
 * cost a lookup now and another for its later actions.
 */
#ifndef LB_BATCHER_H
#define LB_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"
#include "ledger.h"
#include "offsets.h"

typedef struct lb_batcher_s lb_batcher_t;
typedef struct lb_user_s lb_user_t;

typedef struct {
        size_t app_cnt;
        const size_t *app_overhead; /* per app: lb_multi_overhead() */
        int64_t max_users;
        int64_t max_actions;
        int64_t max_bytes;
        int64_t linger_ms;   /* least wait of an action that arrives late */
        int64_t max_wait_ms; /* the wait budget */
        /* per app: its wait budget (NULL: max_wait_ms for all) */
        const int64_t *app_max_wait_ms;
        /* the ledger of the records' entries: a record that goes leaves
         * it (NULL: none is ever sent) */
        lb_ledger_t *ledger;
} lb_batcher_conf_t;

/** One request's worth of actions, all of one app. */
typedef struct lb_batch_s {
        int app;
        lb_send_reason_t reason; /* action.h */
        lb_action_t **actions;   /* in send order; a user's in consumed order */
        size_t n;
        lb_user_t **users; /* distinct users, each held busy */
        size_t n_users;
        size_t bytes; /* upper bound of the encoded body */
        /* per action: its user record (a user's actions are adjacent);
         * kept here, not in the action, held by the thousand */
        lb_user_t **user_of;
} lb_batch_t;

/** @returns the user of the batch's i-th action. */
static inline lb_user_t *lb_batch_user(const lb_batch_t *bt, size_t i)
{
        return bt->user_of[i];
}

lb_batcher_t *lb_batcher_new(const lb_batcher_conf_t *conf);

/**
 * @brief Sets app's request overhead (lb_multi_overhead() after its client
 *        key changed); requests packed from now on count with it.
 */
void lb_batcher_set_overhead(lb_batcher_t *b, size_t app, size_t overhead);

/**
 * @brief Sets app's wait budget (its apps file setting changed): actions
 *        added from now on get deadlines by it; queued ones keep theirs.
 *        Under linger_ms, the app's actions wait at most the budget.
 */
void lb_batcher_set_max_wait(lb_batcher_t *b, size_t app, int64_t max_wait_ms);

/**
 * @brief Lowers app's actions per request to max_actions, from the next
 *        request on: the API's answers to larger ones are too large to
 *        read. Never below 1, nor below the largest request of the app
 *        whose answer was read (lb_batcher_answer_read: one action's own
 *        answer may be what was too large), nor up (answers read raise
 *        it again: lb_batcher_answer_read). A user queued with more is
 *        taken as full when it gets its next action.
 * @returns the app's cap now (holds aside).
 */
size_t lb_batcher_cap_actions(lb_batcher_t *b, size_t app, size_t max_actions);

/**
 * @brief Holds app's actions per request at most max_actions (at least 1)
 *        until the same lb_batcher_cap_release: a request of it is being
 *        split because its answer was too large to read, and until its
 *        parts tell why (lb_batcher_cap_actions), the app's other requests
 *        should not be cut the same way. The lowest hold still held binds.
 * @returns 0, or -1 (no such app, or no memory: not held).
 */
int lb_batcher_cap_hold(lb_batcher_t *b, size_t app, size_t max_actions);

/** @brief Ends one lb_batcher_cap_hold of app at max_actions. Users queued
 *         full by the hold that no longer fill a request wait for their
 *         deadline again. */
void lb_batcher_cap_release(lb_batcher_t *b, size_t app, size_t max_actions);

/**
 * Raising a lowered cap waits for answers to this many caps' worth of
 * actions (doubled each time the cap is lowered after a raise: a raise
 * that was one too many costs a request applied twice, and they grow
 * rarer).
 */
#define LB_BATCHER_RAISE_WINDOW 4

/**
 * @brief A request of n actions of app was answered with bytes, and read
 *        whole; budget is the most an answer is read to. While the app's
 *        cap is lowered (lb_batcher_cap_actions) and nothing holds it:
 *        once answers to LB_BATCHER_RAISE_WINDOW caps' worth of actions
 *        were read since it was set, it is doubled (up to the configured
 *        one) if the most bytes an action took in them, times the doubled
 *        cap, is at most half the budget. A transient burst of large
 *        answers (users' variables) does not shrink the app's requests,
 *        and multiply its billed lookups, until a restart. Once raised,
 *        only answers of at least a quarter of the budget count as read
 *        whole for lb_batcher_cap_actions' floor, so a later burst can
 *        lower it again.
 * @returns the app's new cap when raised, else 0.
 */
size_t lb_batcher_answer_read(lb_batcher_t *b, size_t app, size_t n,
                              size_t bytes, size_t budget);

/** @brief Frees the batcher and, via free_action, every queued action.
 *         Batches not yet released must be released first. */
void lb_batcher_destroy(lb_batcher_t *b, void (*free_action)(lb_action_t *));

/**
 * @brief The deadline of an action of app consumed at arrival_ms that was
 *        written to Kafka age_ms before: the app's budget counts from when
 *        it was written, but it waits at least linger_ms (a late action,
 *        e.g. from a backlog, still waits a little for company) and at most
 *        the budget in the bridge (a producer clock ahead of ours cannot
 *        stretch it).
 */
int64_t lb_batcher_due_ms(const lb_batcher_t *b, int app, int64_t arrival_ms,
                          int64_t age_ms);

/**
 * @brief Queues an action (ownership passes to the batcher). a->app,
 *        a->body_len, a->arrival_ms and a->closes must be set; a->due_ms is
 *        set here (lb_batcher_due_ms). When a closes its user's window,
 *        every queued action of the user whose deadline is later than
 *        linger_ms after a was written (arrival_ms - age_ms, at the
 *        latest arrival_ms) gets that deadline, and closed_by says why (a
 *        itself included).
 * @param user,user_len the identity (lb_event_t.user)
 * @param age_ms how long ago the event was written to Kafka (0 if unknown)
 * @returns 0; -1 on allocation failure; -2 if a->app is out of range, user_len
 * over 65535 or the action cannot fit any request (app overhead + body_len >
 *          max_bytes). On failure the action is not taken.
 */
int lb_batcher_add(lb_batcher_t *b, lb_action_t *a, const char *user,
                   size_t user_len, int64_t age_ms);

/**
 * @brief The next request to send under the policy above, or NULL.
 *        Its users are busy until lb_batcher_release().
 * @param flush LB_SEND_SHUTDOWN or LB_SEND_REVOCATION to send everything,
 *        LB_SEND_DUE otherwise
 * @param early actions the caller allows to go early for memory (rule 3);
 *        0 for none. The batch may carry more (whole users).
 */
lb_batch_t *lb_batcher_next(lb_batcher_t *b, int64_t now_ms,
                            lb_send_reason_t flush, size_t early);

/**
 * @returns the earliest deadline of a ready user, or the earliest end of a
 *          hold of a parked user with actions queued, or INT64_MAX if none
 *          is waiting. A full user (rule 2) is available at once: call
 *          lb_batcher_next() after adding, not only at the deadline.
 */
int64_t lb_batcher_next_deadline(const lb_batcher_t *b);

/**
 * @brief Ends a batch: its users may be batched again, once the ledger no
 *        longer holds them at now_ms (until then they are parked; next()
 *        frees them). The actions are not touched (the caller has taken
 *        them); the batch is freed. Cannot fail.
 */
void lb_batcher_release(lb_batcher_t *b, lb_batch_t *batch, int64_t now_ms);

/**
 * @brief Removes every queued (not in-flight) action of partition p and
 *        hands each to drop (on revocation: the next owner re-reads them).
 * @returns how many were removed.
 */
size_t lb_batcher_abandon(lb_batcher_t *b, const lb_partition_t *p,
                          void (*drop)(lb_action_t *, void *), void *opaque);

/**
 * @brief Makes every queued action of partition p due by now_ms, and with
 *        it each one queued before it for the same user (deadlines stay
 *        non-decreasing along a queue): sent as soon as the users are
 *        free (a restarted partition's old log, which nobody can read
 *        again, is sent rather than handed over).
 * @returns how many actions of p are queued.
 */
size_t lb_batcher_expedite(lb_batcher_t *b, const lb_partition_t *p,
                           int64_t now_ms);

/** @returns u's part of the ledger (ledger.h): one record per user. */
lb_ledger_entry_t *lb_batcher_ledger_entry(lb_user_t *u);

/** @returns queued actions (not counting those in unreleased batches). */
size_t lb_batcher_pending(const lb_batcher_t *b);
/** @returns bytes of queued actions (sum of body_len). */
size_t lb_batcher_pending_bytes(const lb_batcher_t *b);
/** @returns what the user records cost (malloc's sizes): each record with
 *           its id, and the table, heaps and parking room that grow with
 *           them (the actions are the caller's to count). */
size_t lb_batcher_bytes(const lb_batcher_t *b);

#endif
