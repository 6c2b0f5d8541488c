/* test_rebalance.c: the owed answer of a deferred revocation: given once,
 * for the rebalance still owed; a stale one dropped; what a newer
 * callback does with an owed one, per protocol. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rebalance.h"

static void test_answer_owed_once(void **state)
{
        (void)state;
        lb_rebalance_t r = {0};
        uint64_t t;
        assert_int_equal(lb_rebalance_begin(&r, 0, 1, &t), LB_OWED_NONE);
        assert_true(t != 0);
        assert_int_equal(lb_rebalance_answer(&r, t), 1);
        assert_int_equal(lb_rebalance_answer(&r, t), 0); /* once */
}

static void test_assign_owes_nothing(void **state)
{
        (void)state;
        lb_rebalance_t r = {0};
        uint64_t t;
        lb_rebalance_begin(&r, 0, 0, &t);
        assert_int_equal(lb_rebalance_answer(&r, t), 0);
        assert_int_equal(lb_rebalance_answer(&r, 0), 0);
}

/* Eager: a newer rebalance while an unassign is owed replaces the whole
 * assignment: the old answer is dropped, and stays dropped when the loop
 * gives it later (else it would throw the new assignment away). */
static void test_eager_stale_dropped(void **state)
{
        (void)state;
        lb_rebalance_t r = {0};
        uint64_t old, fresh;
        lb_rebalance_begin(&r, 0, 1, &old);
        assert_int_equal(lb_rebalance_begin(&r, 0, 0, &fresh), LB_OWED_DROP);
        assert_true(fresh != old);
        assert_int_equal(lb_rebalance_answer(&r, old), 0);
}

/* Cooperative: the old increment is given first, in order; the loop's
 * later answer for it is then stale. */
static void test_cooperative_answered_in_order(void **state)
{
        (void)state;
        lb_rebalance_t r = {0};
        uint64_t old, fresh;
        lb_rebalance_begin(&r, 1, 1, &old);
        assert_int_equal(lb_rebalance_begin(&r, 1, 1, &fresh), LB_OWED_ANSWER);
        assert_int_equal(lb_rebalance_answer(&r, old), 0);
        assert_int_equal(lb_rebalance_answer(&r, fresh), 1);
}

/* A revocation after a newer revocation: only the newest is owed. */
static void test_newest_revocation_owed(void **state)
{
        (void)state;
        lb_rebalance_t r = {0};
        uint64_t a, b;
        lb_rebalance_begin(&r, 0, 1, &a);
        assert_int_equal(lb_rebalance_begin(&r, 0, 1, &b), LB_OWED_DROP);
        assert_int_equal(lb_rebalance_answer(&r, b), 1);
        assert_int_equal(lb_rebalance_answer(&r, a), 0);
        uint64_t c;
        assert_int_equal(lb_rebalance_begin(&r, 0, 0, &c), LB_OWED_NONE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_answer_owed_once),
            cmocka_unit_test(test_assign_owes_nothing),
            cmocka_unit_test(test_eager_stale_dropped),
            cmocka_unit_test(test_cooperative_answered_in_order),
            cmocka_unit_test(test_newest_revocation_owed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
