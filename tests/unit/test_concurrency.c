/*
 * test_concurrency.c: the AIMD limiter: bounds, growth while healthy, one
 * cut per round trip on overload, cuts on latency far above the baseline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "concurrency.h"

static void test_bounds(void **state)
{
        (void)state;
        lb_concurrency_t c;
        lb_concurrency_init(&c, 16, 100);
        assert_int_equal(lb_concurrency_limit(&c), 16);
        lb_concurrency_init(&c, 16, 0);
        assert_int_equal(lb_concurrency_limit(&c), 1);
        lb_concurrency_init(&c, 0, 4);
        assert_int_equal(lb_concurrency_limit(&c), 1);
        for (int i = 0; i < 100; i++)
                lb_concurrency_observe(&c, LB_CONC_OVERLOAD, 0.01, i * 1000);
        assert_int_equal(lb_concurrency_limit(&c), 1);
}

static void test_grows_to_max_while_healthy(void **state)
{
        (void)state;
        lb_concurrency_t c;
        lb_concurrency_init(&c, 16, 1);
        int64_t t = 0;
        int prev = 1;
        for (int i = 0; i < 1000; i++) {
                lb_concurrency_observe(&c, LB_CONC_OK, 0.010, t += 10);
                assert_true(lb_concurrency_limit(&c) >= prev);
                prev = lb_concurrency_limit(&c);
        }
        assert_int_equal(lb_concurrency_limit(&c), 16);
}

static void test_overload_halves_once_per_round_trip(void **state)
{
        (void)state;
        lb_concurrency_t c;
        lb_concurrency_init(&c, 16, 16);
        lb_concurrency_observe(&c, LB_CONC_OK, 0.100, 0);
        lb_concurrency_observe(&c, LB_CONC_OVERLOAD, 0.100, 1000);
        assert_int_equal(lb_concurrency_limit(&c), 8);
        /* More failures of the same round trip: no further cut. */
        lb_concurrency_observe(&c, LB_CONC_OVERLOAD, 0.100, 1050);
        lb_concurrency_observe(&c, LB_CONC_OVERLOAD, 0.100, 1099);
        assert_int_equal(lb_concurrency_limit(&c), 8);
        /* A round trip later: cut again. */
        lb_concurrency_observe(&c, LB_CONC_OVERLOAD, 0.100, 1200);
        assert_int_equal(lb_concurrency_limit(&c), 4);
}

static void test_latency_rise_cuts(void **state)
{
        (void)state;
        lb_concurrency_t c;
        lb_concurrency_init(&c, 32, 32);
        int64_t t = 0;
        for (int i = 0; i < 50; i++)
                lb_concurrency_observe(&c, LB_CONC_OK, 0.020, t += 20);
        assert_int_equal(lb_concurrency_limit(&c), 32);
        lb_concurrency_observe(&c, LB_CONC_OK, 0.500, t += 500);
        assert_int_equal(lb_concurrency_limit(&c), 16);
        /* Flat latency again: it grows back. */
        for (int i = 0; i < 2000; i++)
                lb_concurrency_observe(&c, LB_CONC_OK, 0.020, t += 20);
        assert_int_equal(lb_concurrency_limit(&c), 32);
}

static void test_tiny_latencies_do_not_cut(void **state)
{
        (void)state;
        lb_concurrency_t c;
        lb_concurrency_init(&c, 8, 8);
        int64_t t = 0;
        for (int i = 0; i < 50; i++)
                lb_concurrency_observe(&c, LB_CONC_OK, 0.0002, t += 1);
        /* 4 ms is 20x a 0.2 ms baseline but is noise, not overload. */
        lb_concurrency_observe(&c, LB_CONC_OK, 0.004, t += 4);
        assert_int_equal(lb_concurrency_limit(&c), 8);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bounds),
            cmocka_unit_test(test_grows_to_max_while_healthy),
            cmocka_unit_test(test_overload_halves_once_per_round_trip),
            cmocka_unit_test(test_latency_rise_cuts),
            cmocka_unit_test(test_tiny_latencies_do_not_cut),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
