/*
 * test_outage.c: the outage-mode state machine (src/outage.c): it starts
 * only when retriable failures of at least two requests, at least
 * min_failures of them, span the window with no success in between; a lone
 * request failing forever never starts it; any success ends the run or the
 * outage at once; failures while in it count the probes' backoff steps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "outage.h"

static void test_enters_after_window(void **state)
{
        (void)state;
        lb_outage_t o;
        lb_outage_init(&o, 2000, 3);
        assert_int_equal(lb_outage_active(&o), 0);
        assert_int_equal(lb_outage_observe(&o, 1, 1, 0), 0);
        assert_int_equal(lb_outage_observe(&o, 2, 1, 100), 0);
        assert_int_equal(lb_outage_observe(&o, 1, 1, 1999), 0); /* too soon */
        assert_int_equal(lb_outage_active(&o), 0);
        assert_int_equal(lb_outage_observe(&o, 2, 1, 2000), 1);
        assert_int_equal(lb_outage_active(&o), 1);
        assert_int_equal(lb_outage_probes(&o), 0);
        assert_int_equal(lb_outage_observe(&o, 2, 1, 3000), 0);
        assert_int_equal(lb_outage_observe(&o, 1, 1, 4000), 0);
        assert_int_equal(lb_outage_probes(&o), 2);
        /* the first success ends it */
        assert_int_equal(lb_outage_observe(&o, 1, 0, 5000), 1);
        assert_int_equal(lb_outage_active(&o), 0);
        assert_int_equal(lb_outage_probes(&o), 0);
        assert_int_equal(lb_outage_observe(&o, 1, 0, 5001), 0);
}

static void test_needs_enough_failures(void **state)
{
        (void)state;
        lb_outage_t o;
        lb_outage_init(&o, 2000, 3);
        lb_outage_observe(&o, 1, 1, 0);
        assert_int_equal(lb_outage_observe(&o, 2, 1, 5000), 0); /* 2 < 3 */
        assert_int_equal(lb_outage_observe(&o, 3, 1, 5001), 1);
}

/* A success among the failures starts the run again. */
static void test_success_resets_the_run(void **state)
{
        (void)state;
        lb_outage_t o;
        lb_outage_init(&o, 2000, 3);
        lb_outage_observe(&o, 1, 1, 0);
        lb_outage_observe(&o, 2, 1, 500);
        lb_outage_observe(&o, 3, 0, 1000);
        lb_outage_observe(&o, 1, 1, 1500);
        lb_outage_observe(&o, 2, 1, 2500);
        assert_int_equal(lb_outage_observe(&o, 1, 1, 3000), 0);
        assert_int_equal(lb_outage_observe(&o, 2, 1, 3500), 1); /* 1500+2000 */
}

/* One request failing alone, however long, is not an outage: its
 * retry.max.attempts keep their meaning. */
static void test_lone_request_never(void **state)
{
        (void)state;
        lb_outage_t o;
        lb_outage_init(&o, 2000, 3);
        for (int64_t t = 0; t < 600000; t += 1000)
                assert_int_equal(lb_outage_observe(&o, 7, 1, t), 0);
        assert_int_equal(lb_outage_active(&o), 0);
        assert_int_equal(lb_outage_observe(&o, 8, 1, 600000), 1);
}

static void test_leave_without_answer(void **state)
{
        (void)state;
        lb_outage_t o;
        lb_outage_init(&o, 2000, 3);
        assert_int_equal(lb_outage_leave(&o), 0); /* not in it */
        lb_outage_observe(&o, 1, 1, 0);
        lb_outage_observe(&o, 2, 1, 1000);
        /* outside outage mode the run of failures is kept */
        assert_int_equal(lb_outage_leave(&o), 0);
        assert_int_equal(lb_outage_observe(&o, 1, 1, 2000), 1);
        assert_true(lb_outage_active(&o));
        lb_outage_observe(&o, 1, 1, 3000); /* a probe failed */
        assert_int_equal(lb_outage_leave(&o), 1);
        assert_false(lb_outage_active(&o));
        assert_int_equal(lb_outage_probes(&o), 0);
        /* the next failures start a new run: a window again to enter */
        assert_int_equal(lb_outage_observe(&o, 1, 1, 4000), 0);
        assert_int_equal(lb_outage_observe(&o, 2, 1, 4500), 0);
        assert_int_equal(lb_outage_observe(&o, 1, 1, 6000), 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_enters_after_window),
            cmocka_unit_test(test_needs_enough_failures),
            cmocka_unit_test(test_success_resets_the_run),
            cmocka_unit_test(test_lone_request_never),
            cmocka_unit_test(test_leave_without_answer),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
