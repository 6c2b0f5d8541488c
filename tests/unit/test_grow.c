/*
 * test_grow.c: lb_grow's rooms (the first, doubling, doubling past a large
 * need, none when it fits), the contents kept across moves, and the sizes
 * that would overflow refused with the array and its room untouched; a
 * ring's elements unwrapped in order by lb_grow_ring.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "grow.h"

static void test_first_room_then_doubling(void **state)
{
        (void)state;
        size_t cap = 0;
        int *v = lb_grow(NULL, &cap, 1, sizeof(*v), 8);
        assert_non_null(v);
        assert_int_equal(cap, 8);
        for (int i = 0; i < 8; i++)
                v[i] = i;
        int *same = lb_grow(v, &cap, 8, sizeof(*v), 8);
        assert_ptr_equal(same, v); /* it fits: nothing moves */
        assert_int_equal(cap, 8);
        v = lb_grow(v, &cap, 9, sizeof(*v), 8);
        assert_non_null(v);
        assert_int_equal(cap, 16);
        for (int i = 0; i < 8; i++)
                assert_int_equal(v[i], i); /* kept across the move */
        free(v);
}

static void test_large_need_doubles_past_it(void **state)
{
        (void)state;
        size_t cap = 4;
        char *b = malloc(cap);
        assert_non_null(b);
        b = lb_grow(b, &cap, 100, 1, 256);
        assert_non_null(b);
        assert_int_equal(cap, 128); /* 4 doubled until 100 fits */
        free(b);
        cap = 0;
        b = lb_grow(NULL, &cap, 5000, 1, 4096);
        assert_non_null(b);
        assert_int_equal(cap, 8192);
        free(b);
}

static void test_no_first_room_given(void **state)
{
        (void)state;
        size_t cap = 0;
        long *v = lb_grow(NULL, &cap, 3, sizeof(*v), 0);
        assert_non_null(v);
        assert_int_equal(cap, 4); /* 1, 2, 4 */
        free(v);
}

static void test_overflow_refused_untouched(void **state)
{
        (void)state;
        size_t cap = 8;
        int64_t *v = malloc(cap * sizeof(*v));
        assert_non_null(v);
        v[7] = 42;
        /* room for SIZE_MAX / 4 elements of 8 bytes does not fit */
        assert_null(lb_grow(v, &cap, SIZE_MAX / 4, sizeof(*v), 8));
        assert_int_equal(cap, 8);
        assert_int_equal(v[7], 42); /* still the caller's, still whole */
        /* a need past the last doubling is taken as it is, then refused */
        assert_null(lb_grow(v, &cap, SIZE_MAX, 2, 8));
        assert_int_equal(cap, 8);
        /* a byte count a size_t holds but no object can have: refused
         * before the allocator is asked (ASan's would abort) */
        assert_null(lb_grow(v, &cap, (size_t)PTRDIFF_MAX + 1, 1, 8));
        assert_null(lb_grow(v, &cap, (size_t)PTRDIFF_MAX / 8 + 1, 8, 8));
        assert_int_equal(cap, 8);
        assert_int_equal(v[7], 42);
        free(v);
}

/* A ring's elements, wrapped or not, come out at the front in order; an
 * empty ring gets its first room. */
static void test_ring_unwrapped_in_order(void **state)
{
        (void)state;
        size_t cap = 0;
        int *r = lb_grow_ring(NULL, &cap, 0, 0, sizeof(*r), 4);
        assert_non_null(r);
        assert_int_equal(cap, 4);
        for (int i = 0; i < 4; i++) /* 10 11 12 13 from head 2: wrapped */
                r[(2 + i) % 4] = 10 + i;
        r = lb_grow_ring(r, &cap, 2, 4, sizeof(*r), 4);
        assert_non_null(r);
        assert_int_equal(cap, 8);
        for (int i = 0; i < 4; i++)
                assert_int_equal(r[i], 10 + i);
        r = lb_grow_ring(r, &cap, 1, 3, sizeof(*r), 4); /* not wrapped */
        assert_non_null(r);
        assert_int_equal(cap, 16);
        for (int i = 0; i < 3; i++)
                assert_int_equal(r[i], 11 + i);
        size_t huge = SIZE_MAX / 2 + 1;
        assert_null(lb_grow_ring(r, &huge, 0, 0, sizeof(*r), 4));
        assert_true(huge == SIZE_MAX / 2 + 1);
        free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_first_room_then_doubling),
            cmocka_unit_test(test_large_need_doubles_past_it),
            cmocka_unit_test(test_no_first_room_given),
            cmocka_unit_test(test_overflow_refused_untouched),
            cmocka_unit_test(test_ring_unwrapped_in_order),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
