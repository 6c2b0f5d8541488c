/*
 * test_ages.c: src/ages.c against a plain list of what waits: the count
 * and the oldest second after every step of random adds (seconds that only
 * grow, many per second) and removes in any order, through the ring's
 * growth and wrap; an earlier second counted in the last; a remove that
 * matches nothing changes nothing it should not; memory that follows what
 * waits, not the time span; no memory for a new second loses no count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "ages.h"
#include "malloc_fails.h"

static void test_empty(void **state)
{
        (void)state;
        lb_ages_t g = {0};
        assert_int_equal(lb_ages_count(&g), 0);
        assert_true(lb_ages_oldest(&g) == INT64_MAX);
        lb_ages_remove(&g, 5); /* nothing waits: no-op */
        assert_int_equal(lb_ages_count(&g), 0);
        lb_ages_free(&g);
}

static void test_oldest_moves_when_it_finishes(void **state)
{
        (void)state;
        lb_ages_t g = {0};
        assert_int_equal(lb_ages_add(&g, 10), 0);
        assert_int_equal(lb_ages_add(&g, 10), 0);
        assert_int_equal(lb_ages_add(&g, 12), 0);
        assert_int_equal(lb_ages_add(&g, 15), 0);
        assert_true(lb_ages_oldest(&g) == 10);
        lb_ages_remove(&g, 12); /* a younger one: the oldest stays */
        assert_true(lb_ages_oldest(&g) == 10);
        lb_ages_remove(&g, 10);
        assert_true(lb_ages_oldest(&g) == 10);
        lb_ages_remove(&g, 10);
        assert_true(lb_ages_oldest(&g) == 15);
        assert_int_equal(lb_ages_count(&g), 1);
        /* an earlier second than the last's is counted in the last */
        assert_int_equal(lb_ages_add(&g, 3), 0);
        assert_true(lb_ages_oldest(&g) == 15);
        lb_ages_remove(&g, 3);
        assert_int_equal(lb_ages_count(&g), 1);
        lb_ages_remove(&g, 15);
        assert_int_equal(lb_ages_count(&g), 0);
        assert_true(lb_ages_oldest(&g) == INT64_MAX);
        lb_ages_free(&g);
}

/* A remove for a second nothing was added in (a caller's mistake) takes
 * one from the next second that has some, never the count below zero. */
static void test_unknown_second(void **state)
{
        (void)state;
        lb_ages_t g = {0};
        assert_int_equal(lb_ages_add(&g, 1), 0);
        assert_int_equal(lb_ages_add(&g, 4), 0);
        lb_ages_remove(&g, 2);
        assert_int_equal(lb_ages_count(&g), 1);
        assert_true(lb_ages_oldest(&g) == 1);
        lb_ages_remove(&g, 99);
        assert_int_equal(lb_ages_count(&g), 0);
        lb_ages_remove(&g, 1);
        assert_int_equal(lb_ages_count(&g), 0);
        lb_ages_free(&g);
}

/* One thing waits for ever while others come and go a few seconds each:
 * the seconds emptied between are dropped, so the ring stays small. */
static void test_memory_follows_what_waits(void **state)
{
        (void)state;
        lb_ages_t g = {0};
        assert_int_equal(lb_ages_add(&g, 0), 0);
        for (int64_t s = 1; s <= 100000; s++) {
                assert_int_equal(lb_ages_add(&g, s), 0);
                if (s > 5)
                        lb_ages_remove(&g, s - 5);
        }
        assert_int_equal(lb_ages_count(&g), 6);
        assert_true(lb_ages_oldest(&g) == 0);
        assert_true(g.len <= 32);
        assert_true(g.cap <= 64);
        for (int64_t s = 99996; s <= 100000; s++)
                lb_ages_remove(&g, s);
        lb_ages_remove(&g, 0);
        assert_int_equal(lb_ages_count(&g), 0);
        lb_ages_free(&g);
}

/* Without memory for a new second, a thing is counted in the newest one:
 * never lost to the count, so the oldest still shows; with none counted
 * yet, the add fails and counts nothing. */
static void test_out_of_memory(void **state)
{
        (void)state;
        lb_ages_t g = {0};
        malloc_fails = 1;
        assert_int_equal(lb_ages_add(&g, 1), -1);
        assert_int_equal(lb_ages_count(&g), 0);
        malloc_fails = 0;
        for (int64_t s = 100; s < 108; s++) /* the first 8 slots: full */
                assert_int_equal(lb_ages_add(&g, s), 0);
        malloc_fails = 1;
        assert_int_equal(lb_ages_add(&g, 200), 0);
        malloc_fails = 0;
        assert_int_equal(lb_ages_count(&g), 9);
        lb_ages_remove(&g, 200); /* from the newest second, 107 */
        for (int64_t s = 101; s < 108; s++)
                lb_ages_remove(&g, s);
        assert_int_equal(lb_ages_count(&g), 1);
        assert_true(lb_ages_oldest(&g) == 100); /* still seen */
        lb_ages_remove(&g, 100);
        assert_int_equal(lb_ages_count(&g), 0);
        lb_ages_free(&g);
}

static void test_against_a_list(void **state)
{
        (void)state;
        enum { MAX = 4000 };
        static int64_t waiting[MAX];
        size_t n = 0;
        int64_t now = 1000;
        lb_ages_t g = {0};
        srand(7);
        for (int step = 0; step < 200000; step++) {
                if (rand() % 3 == 0)
                        now += rand() % 3; /* several per second, or gaps */
                int grow = n < 50 || (n < MAX && rand() % 2);
                if (grow) {
                        assert_int_equal(lb_ages_add(&g, now), 0);
                        waiting[n++] = now;
                } else {
                        size_t i = (size_t)rand() % n;
                        /* mostly the oldest few, as acknowledgements come */
                        if (rand() % 2)
                                i = (size_t)rand() % (n < 8 ? n : 8);
                        lb_ages_remove(&g, waiting[i]);
                        waiting[i] = waiting[--n];
                }
                int64_t oldest = INT64_MAX;
                for (size_t i = 0; i < n; i++)
                        if (waiting[i] < oldest)
                                oldest = waiting[i];
                assert_int_equal(lb_ages_count(&g), n);
                assert_true(lb_ages_oldest(&g) == oldest);
        }
        while (n)
                lb_ages_remove(&g, waiting[--n]);
        assert_int_equal(lb_ages_count(&g), 0);
        lb_ages_free(&g);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_oldest_moves_when_it_finishes),
            cmocka_unit_test(test_unknown_second),
            cmocka_unit_test(test_memory_follows_what_waits),
            cmocka_unit_test(test_out_of_memory),
            cmocka_unit_test(test_against_a_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
