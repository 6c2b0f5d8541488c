/*
 * test_backoff.c: retry delay bounds for attempts 1..40 and beyond, the
 * max_ms cap, the jitter range, the Retry-After floor and its one-hour cap,
 * and clamping of out-of-range inputs (no overflow, no hang).
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

/* min(max_ms, initial_ms * 2^(attempt-1)), computed in floating point. */
static int64_t ref_base(int attempt, int64_t initial_ms, int64_t max_ms)
{
        double b = (double)initial_ms * pow(2.0, attempt - 1);
        return b >= (double)max_ms ? max_ms : (int64_t)b;
}

static void test_bounds_attempts_1_to_40(void **state)
{
        (void)state;
        static const double rnds[] = {0.0, 0.1, 0.5, 0.9, 0.999999};
        for (int attempt = 1; attempt <= 40; attempt++) {
                int64_t base = ref_base(attempt, 250, 30000);
                for (size_t i = 0; i < sizeof(rnds) / sizeof(rnds[0]); i++) {
                        int64_t d = lb_backoff_delay_ms(attempt, 250, 30000,
                                                        rnds[i], -1);
                        if (d < base / 2 || d > base)
                                fail_msg("attempt %d rnd %g: %lld not in "
                                         "[%lld, %lld]",
                                         attempt, rnds[i], (long long)d,
                                         (long long)(base / 2),
                                         (long long)base);
                }
                /* rnd 0 gives the lower end exactly. */
                assert_int_equal(
                    lb_backoff_delay_ms(attempt, 250, 30000, 0.0, -1),
                    base / 2);
        }
        assert_int_equal(ref_base(1, 250, 30000), 250);
        assert_int_equal(ref_base(7, 250, 30000), 16000);
        assert_int_equal(ref_base(8, 250, 30000), 30000);
}

static void test_cap(void **state)
{
        (void)state;
        for (int attempt = 8; attempt <= 40; attempt++) {
                assert_true(lb_backoff_delay_ms(attempt, 250, 30000, 0.999999,
                                                -1) <= 30000);
                assert_int_equal(
                    lb_backoff_delay_ms(attempt, 250, 30000, 0.0, -1), 15000);
        }
        /* Huge attempts and huge values: saturate, never overflow. */
        assert_int_equal(lb_backoff_delay_ms(INT_MAX, 250, 30000, 0.0, -1),
                         15000);
        assert_int_equal(
            lb_backoff_delay_ms(INT_MAX, INT64_MAX / 3, INT64_MAX, 0.0, -1),
            INT64_MAX / 2);
        assert_true(lb_backoff_delay_ms(100, INT64_MAX, INT64_MAX, 0.999999,
                                        -1) <= INT64_MAX);
        assert_int_equal(lb_backoff_delay_ms(63, 1, INT64_MAX, 0.0, -1),
                         INT64_C(1) << 61);
        /* max below initial: max wins from the first retry. */
        assert_int_equal(lb_backoff_delay_ms(1, 5000, 1000, 0.0, -1), 500);
}

static void test_jitter_range(void **state)
{
        (void)state;
        int64_t lo = INT64_MAX, hi = 0;
        for (int i = 0; i < 10000; i++) {
                double rnd = i / 10000.0;
                int64_t d = lb_backoff_delay_ms(3, 250, 30000, rnd, -1);
                assert_true(d >= 500 && d <= 1000);
                if (d < lo)
                        lo = d;
                if (d > hi)
                        hi = d;
        }
        /* The whole range [base/2, base] is reachable. */
        assert_int_equal(lo, 500);
        assert_int_equal(hi, 1000);
        assert_int_equal(lb_backoff_delay_ms(3, 250, 30000, 0.5, -1), 750);
}

static void test_out_of_range_inputs(void **state)
{
        (void)state;
        /* rnd clamped into [0,1). */
        assert_int_equal(lb_backoff_delay_ms(1, 1000, 30000, -1.0, -1), 500);
        assert_int_equal(lb_backoff_delay_ms(1, 1000, 30000, NAN, -1), 500);
        assert_int_equal(lb_backoff_delay_ms(1, 1000, 30000, 1.0, -1), 1000);
        assert_int_equal(lb_backoff_delay_ms(1, 1000, 30000, 7.0, -1), 1000);
        assert_int_equal(lb_backoff_delay_ms(1, 1000, 30000, INFINITY, -1),
                         1000);
        /* attempt < 1 counts as 1. */
        assert_int_equal(lb_backoff_delay_ms(0, 1000, 30000, 0.0, -1), 500);
        assert_int_equal(lb_backoff_delay_ms(INT_MIN, 1000, 30000, 0.0, -1),
                         500);
        /* Zero and negative times. */
        assert_int_equal(lb_backoff_delay_ms(INT_MAX, 0, 30000, 0.5, -1), 0);
        assert_int_equal(lb_backoff_delay_ms(5, -10, 30000, 0.5, -1), 0);
        assert_int_equal(lb_backoff_delay_ms(5, 250, -1, 0.5, -1), 0);
        assert_int_equal(lb_backoff_delay_ms(1, 1, 30000, 0.999, -1), 1);
}

static void test_retry_after_floor(void **state)
{
        (void)state;
        /* The floor lifts a short delay... */
        assert_int_equal(lb_backoff_delay_ms(1, 250, 30000, 0.5, 5000), 5000);
        /* ...and leaves a longer one alone. */
        int64_t plain = lb_backoff_delay_ms(10, 250, 30000, 0.5, -1);
        assert_int_equal(lb_backoff_delay_ms(10, 250, 30000, 0.5, 1000), plain);
        assert_int_equal(lb_backoff_delay_ms(10, 250, 30000, 0.5, 0), plain);
        /* Retry-After may exceed max_ms (the server asked)... */
        assert_int_equal(lb_backoff_delay_ms(1, 250, 30000, 0.0, 120000),
                         120000);
        /* ...up to one hour. */
        assert_int_equal(
            lb_backoff_delay_ms(1, 250, 30000, 0.0, 10 * 3600 * 1000),
            LB_BACKOFF_RETRY_AFTER_MAX_MS);
        assert_int_equal(lb_backoff_delay_ms(1, 250, 30000, 0.0, INT64_MAX),
                         LB_BACKOFF_RETRY_AFTER_MAX_MS);
        /* Negative means absent. */
        assert_int_equal(lb_backoff_delay_ms(1, 250, 30000, 0.0, -1), 125);
        assert_int_equal(lb_backoff_delay_ms(1, 250, 30000, 0.0, INT64_MIN),
                         125);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bounds_attempts_1_to_40),
            cmocka_unit_test(test_cap),
            cmocka_unit_test(test_jitter_range),
            cmocka_unit_test(test_out_of_range_inputs),
            cmocka_unit_test(test_retry_after_floor),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
