/*
 * test_skip.c: crossing an unreadable record batch (src/skip.c). Driven by
 * a model of the consumer: a log of batches, one of them unreadable; a
 * position inside it gives the error at its first offset, a position past
 * it reads on (the first message at or after it, or the log's end). For
 * every batch placement and size the crossing ends exactly at the first
 * offset past the batch (nothing after it skipped), within 2 log2(n) + 4
 * moves, and never moves past the log's end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "skip.h"

/* The log: offsets [0, end); the unreadable batch is [bad_lo, bad_hi);
 * another unreadable batch [bad2_lo, bad2_hi) when bad2_lo >= 0; offsets
 * in [gap_lo, gap_hi) do not exist (compaction). */
typedef struct {
        int64_t end, bad_lo, bad_hi, bad2_lo, bad2_hi, gap_lo, gap_hi;
} log_t;

/* Where reading at pos leads: 1 and *at = the error's offset (an
 * unreadable batch), or 0 and *at = the first readable offset at or after
 * pos (the log's end when none). */
static int read_at(const log_t *l, int64_t pos, int64_t *at)
{
        if (pos >= l->bad_lo && pos < l->bad_hi) {
                *at = l->bad_lo;
                return 1;
        }
        if (l->bad2_lo >= 0 && pos >= l->bad2_lo && pos < l->bad2_hi) {
                *at = l->bad2_lo;
                return 1;
        }
        if (pos >= l->gap_lo && pos < l->gap_hi)
                pos = l->gap_hi;
        *at = pos < l->end ? pos : l->end;
        return 0;
}

/* @returns the moves needed; *resume: where reading goes on. */
static int cross(const log_t *l, int64_t *resume)
{
        lb_skip_t s;
        int64_t at;
        lb_skip_init(&s);
        assert_false(lb_skip_active(&s));
        int64_t pos = lb_skip_error(&s, l->bad_lo, l->end);
        int moves = 1;
        while (!lb_skip_done(&s)) {
                assert_true(lb_skip_active(&s));
                assert_true(pos > l->bad_lo);
                assert_true(pos <= l->end);
                pos = read_at(l, pos, &at) ? lb_skip_error(&s, at, l->end)
                                           : lb_skip_message(&s, at, l->end);
                moves++;
                assert_true(moves < 200);
        }
        *resume = pos;
        return moves;
}

static int log2i(int64_t n)
{
        int k = 0;
        while ((1LL << k) < n)
                k++;
        return k;
}

static void test_every_size_and_place(void **state)
{
        (void)state;
        for (int64_t n = 1; n <= 700; n += (n < 40 ? 1 : 37)) {
                for (int64_t after = 0; after <= 3; after++) {
                        log_t l = {.bad_lo = 40,
                                   .bad_hi = 40 + n,
                                   .end = 40 + n + after,
                                   .bad2_lo = -1,
                                   .gap_lo = -1,
                                   .gap_hi = -1};
                        int64_t resume;
                        int moves = cross(&l, &resume);
                        assert_int_equal(resume, l.bad_hi);
                        assert_true(moves <= 2 * log2i(n + 1) + 4);
                }
        }
}

/* A compaction gap right after the batch: reading goes on at the batch's
 * end (the consumer then reads from the next offset that exists). */
static void test_gap_after(void **state)
{
        (void)state;
        log_t l = {.bad_lo = 10,
                   .bad_hi = 30,
                   .end = 100,
                   .bad2_lo = -1,
                   .gap_lo = 30,
                   .gap_hi = 50};
        int64_t resume;
        cross(&l, &resume);
        assert_true(resume >= 30 && resume <= 50);
}

/* Another unreadable batch right after: the first crossing ends where it
 * starts (it is crossed next, on its own error). */
static void test_two_bad_batches(void **state)
{
        (void)state;
        log_t l = {.bad_lo = 0,
                   .bad_hi = 25,
                   .end = 200,
                   .bad2_lo = 25,
                   .bad2_hi = 60,
                   .gap_lo = -1,
                   .gap_hi = -1};
        int64_t resume;
        cross(&l, &resume);
        assert_int_equal(resume, 25);
}

/* The batch at the log's end: positions stop at the end, where reading
 * goes on (no reset past it). */
static void test_at_log_end(void **state)
{
        (void)state;
        log_t l = {.bad_lo = 100,
                   .bad_hi = 500,
                   .end = 500,
                   .bad2_lo = -1,
                   .gap_lo = -1,
                   .gap_hi = -1};
        int64_t resume;
        cross(&l, &resume);
        assert_int_equal(resume, 500);
}

/* A new crossing after one ended starts afresh. */
static void test_restart(void **state)
{
        (void)state;
        lb_skip_t s;
        lb_skip_init(&s);
        assert_int_equal(lb_skip_error(&s, 5, -1), 6);
        assert_int_equal(lb_skip_message(&s, 6, -1), 6);
        assert_true(lb_skip_done(&s));
        lb_skip_init(&s);
        assert_false(lb_skip_done(&s));
        assert_int_equal(lb_skip_error(&s, 90, -1), 91);
        assert_int_equal(lb_skip_error(&s, 90, -1), 93);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_every_size_and_place),
            cmocka_unit_test(test_gap_after),
            cmocka_unit_test(test_two_bad_batches),
            cmocka_unit_test(test_at_log_end),
            cmocka_unit_test(test_restart),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
