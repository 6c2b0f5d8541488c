/*
 * rebalance.h: the answer a member owes the group, as a pure record. A
 * revocation is answered from the loop once the bridge has let go of its
 * partitions, not from librdkafka's callback; each rebalance callback gets
 * a tag, and an answer is given only for the rebalance still owed: one that
 * a newer rebalance made stale is dropped (a deferred unassign would
 * otherwise throw the newer assignment away). What a newer callback does
 * with an answer still owed depends on the protocol: eager, the newer
 * assign (or unassign) replaces the whole assignment, so the old answer is
 * dropped; cooperative, answers are increments, so the old one is given
 * first, in order.
 */
#ifndef LB_REBALANCE_H
#define LB_REBALANCE_H

#include <stdint.h>

typedef struct {
        uint64_t last; /* the newest rebalance's tag (0: none yet) */
        uint64_t owed; /* the revocation whose answer is owed (0: none) */
} lb_rebalance_t;

/** What to do with an owed answer when a newer rebalance comes. */
typedef enum {
        LB_OWED_NONE,   /* nothing owed */
        LB_OWED_DROP,   /* eager: the newer answer replaces it */
        LB_OWED_ANSWER, /* cooperative: give it now, before the newer one */
} lb_owed_action_t;

/**
 * @brief A rebalance callback came: the previous owed answer (if any) is
 *        settled as the returned action says (and is owed no more).
 * @param revoke whether this one is a revocation answered later (its tag
 *        is then owed).
 * @param tag set to this rebalance's tag.
 */
lb_owed_action_t lb_rebalance_begin(lb_rebalance_t *r, int cooperative,
                                    int revoke, uint64_t *tag);

/**
 * @brief The bridge let go of the partitions of rebalance tag.
 * @returns 1 when that answer is still owed (give it; it is owed no more),
 *          0 when it is stale (drop it).
 */
int lb_rebalance_answer(lb_rebalance_t *r, uint64_t tag);

#endif
