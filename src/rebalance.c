/*
 * rebalance.c: the owed answer's bookkeeping (see rebalance.h). Pure.
 */
#include "rebalance.h"

lb_owed_action_t lb_rebalance_begin(lb_rebalance_t *r, int cooperative,
                                    int revoke, uint64_t *tag)
{
        lb_owed_action_t act = LB_OWED_NONE;
        if (r->owed)
                act = cooperative ? LB_OWED_ANSWER : LB_OWED_DROP;
        *tag = ++r->last;
        r->owed = revoke ? *tag : 0;
        return act;
}

int lb_rebalance_answer(lb_rebalance_t *r, uint64_t tag)
{
        if (!tag || tag != r->owed)
                return 0;
        r->owed = 0;
        return 1;
}
