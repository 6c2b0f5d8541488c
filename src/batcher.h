/*
 * batcher.h: pending actions grouped by (app, user), and the packing policy
 * that turns them into requests. Enforces the API's rules: one app per
 * request, at most max_users distinct users, max_actions actions and
 * max_bytes bytes; a user's actions leave in consumed order; a user is in at
 * most one unreleased batch at a time (the ordering gate). Pure: time is
 * passed in; no I/O.
 *
 * Packing policy (billing-aware: each distinct user in a request is billed):
 * when asked for a batch, for each app (rotating which app goes first):
 *   1. a ready user whose oldest action has waited >= max_wait_ms makes the
 *      app due: overdue users go first (oldest first), then the rest is filled
 *      with the ready users holding the most pending actions;
 *   2. else if the users with the most pending actions fill a request
 *      (max_actions or max_bytes reached), that request goes;
 *   3. else if the oldest ready action has waited >= linger_ms: users whose
 *      oldest action has waited >= linger_ms go first (oldest first), then
 *      the fill by most pending actions;
 *   4. flush (shutdown): everything ready goes, most pending first.
 * A selected user contributes all its queued actions that fit.
 */
#ifndef LB_BATCHER_H
#define LB_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"
#include "offsets.h"

typedef struct lb_batcher_s lb_batcher_t;
typedef struct lb_user_s lb_user_t;

typedef struct {
        size_t app_cnt;
        const size_t *app_overhead; /* per app: lb_multi_overhead() */
        int64_t max_users;
        int64_t max_actions;
        int64_t max_bytes;
        int64_t linger_ms;
        int64_t max_wait_ms;
} lb_batcher_conf_t;

/** One request's worth of actions, all of one app. */
typedef struct lb_batch_s {
        int app;
        lb_action_t **actions; /* in send order; a user's in consumed order */
        size_t n;
        lb_user_t **users; /* distinct users, each held busy */
        size_t n_users;
        size_t bytes; /* upper bound of the encoded body */
} lb_batch_t;

lb_batcher_t *lb_batcher_new(const lb_batcher_conf_t *conf);

/** @brief Frees the batcher and, via free_action, every queued action.
 *         Batches not yet released must be released first. */
void lb_batcher_destroy(lb_batcher_t *b, void (*free_action)(lb_action_t *));

/**
 * @brief Queues an action (ownership passes to the batcher). a->app,
 *        a->body_len and a->arrival_ms must be set.
 * @param user,user_len the identity (lb_event_t.user)
 * @returns 0; -1 on allocation failure; -2 if a->app is out of range or the
 *          action cannot fit any request (app overhead + body_len >
 *          max_bytes). On failure the action is not taken.
 */
int lb_batcher_add(lb_batcher_t *b, lb_action_t *a, const char *user,
                   size_t user_len);

/**
 * @brief The next request to send under the policy above, or NULL.
 *        Its users are busy until lb_batcher_release().
 */
lb_batch_t *lb_batcher_next(lb_batcher_t *b, int64_t now_ms, int flush);

/**
 * @returns the earliest time (ms) at which a ready user reaches linger (or
 *          max wait, if shorter), or INT64_MAX if none is waiting. A full
 *          request (rule 2) is available at once: call lb_batcher_next()
 *          after adding, not only at the deadline.
 */
int64_t lb_batcher_next_deadline(const lb_batcher_t *b);

/**
 * @brief Ends a batch: its users may be batched again. The actions are not
 *        touched (the caller has taken them); the batch is freed.
 */
void lb_batcher_release(lb_batcher_t *b, lb_batch_t *batch);

/**
 * @brief Removes every queued (not in-flight) action of partition p and
 *        hands each to drop (on revocation: the next owner re-reads them).
 * @returns how many were removed.
 */
size_t lb_batcher_abandon(lb_batcher_t *b, const lb_partition_t *p,
                          void (*drop)(lb_action_t *, void *), void *opaque);

/** @returns queued actions (not counting those in unreleased batches). */
size_t lb_batcher_pending(const lb_batcher_t *b);
/** @returns bytes of queued actions (sum of body_len). */
size_t lb_batcher_pending_bytes(const lb_batcher_t *b);

#endif
