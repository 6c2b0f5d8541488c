/*
 * test_arena.c: the action arena (src/arena.c): alignment and contents of
 * blocks, chunks given back when their last block goes (in any order),
 * blocks freed around stragglers reused, chunks sharing mappings and
 * keeping their addresses once empty, blocks larger than a chunk, the
 * spare chunks' cap, and a randomized run against a count model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"

static void test_blocks_are_aligned_and_apart(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        assert_non_null(a);
        char *p[64];
        for (size_t i = 0; i < 64; i++) {
                p[i] = lb_arena_alloc(a, i + 1);
                assert_non_null(p[i]);
                assert_int_equal((uintptr_t)p[i] % 8, 0);
                memset(p[i], (int)i, i + 1);
        }
        for (size_t i = 0; i < 64; i++)
                for (size_t j = 0; j <= i; j++)
                        assert_int_equal((unsigned char)p[i][j], i);
        assert_int_equal(lb_arena_blocks(a), 64);
        /* 1 to 64 bytes: eight 8-byte size classes, a chunk each */
        assert_int_equal(lb_arena_bytes(a), 8 * LB_ARENA_CHUNK);
        for (size_t i = 0; i < 64; i++)
                lb_arena_free(p[i]);
        assert_int_equal(lb_arena_blocks(a), 0);
        lb_arena_free(NULL);
        lb_arena_destroy(a);
        lb_arena_destroy(NULL);
}

/* Fills chunks with blocks of n bytes; @returns how many were allocated. */
static size_t fill(lb_arena_t *a, void **v, size_t cap, size_t n)
{
        size_t k = 0;
        while (k < cap && (v[k] = lb_arena_alloc(a, n)))
                k++;
        return k;
}

static void test_chunk_goes_back_with_its_last_block(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        enum { N = 4000 }; /* 4000 x 256 B: about 16 chunks */
        static void *v[N];
        assert_int_equal(fill(a, v, N, 256), N);
        size_t peak = lb_arena_bytes(a);
        assert_true(peak >= (size_t)N * 256);
        assert_true(peak <= (size_t)N * 256 + 2 * LB_ARENA_CHUNK);
        /* freeing all but one block of each chunk gives nothing back */
        for (size_t i = 0; i < N; i++)
                if (i % 200 != 0)
                        lb_arena_free(v[i]);
        assert_int_equal(lb_arena_bytes(a), peak);
        /* the last blocks, out of order: all but a few spares go back */
        for (size_t i = N; i-- > 0;)
                if (i % 200 == 0)
                        lb_arena_free(v[i]);
        assert_int_equal(lb_arena_blocks(a), 0);
        assert_true(lb_arena_bytes(a) <= 5 * LB_ARENA_CHUNK);
        /* and they are used again before anything new is mapped */
        size_t kept = lb_arena_bytes(a);
        assert_int_equal(fill(a, v, 200, 256), 200);
        assert_int_equal(lb_arena_bytes(a), kept);
        for (size_t i = 0; i < 200; i++)
                lb_arena_free(v[i]);
        lb_arena_destroy(a);
}

static void test_stragglers_pin_blocks_not_chunks(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        enum { N = 20000 };
        static void *v[N];
        assert_int_equal(fill(a, v, N, 300), N);
        size_t peak = lb_arena_bytes(a);
        /* one in 100 stays (a slow user): every chunk keeps a block */
        for (size_t i = 0; i < N; i++)
                if (i % 100 != 0)
                        lb_arena_free(v[i]);
        assert_int_equal(lb_arena_bytes(a), peak);
        /* the next wave fits in the freed blocks: nothing new is mapped */
        for (size_t i = 0; i < N; i++)
                if (i % 100 != 0)
                        assert_non_null(v[i] = lb_arena_alloc(a, 300));
        assert_int_equal(lb_arena_bytes(a), peak);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i]);
        assert_int_equal(lb_arena_blocks(a), 0);
        lb_arena_destroy(a);
}

static size_t mappings(void)
{
        FILE *f = fopen("/proc/self/maps", "r");
        assert_non_null(f);
        size_t n = 0;
        for (int c; (c = fgetc(f)) != EOF;)
                n += c == '\n';
        fclose(f);
        return n;
}

static void test_chunks_share_mappings(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        enum { N = 200 * 200 }; /* 200 chunks of 300-byte blocks */
        static void *v[N];
        size_t before = mappings();
        assert_int_equal(fill(a, v, N, 300), N);
        size_t peak = lb_arena_bytes(a);
        assert_true(peak >= 190 * LB_ARENA_CHUNK);
        /* a few regions, not a mapping per chunk (the kernel caps those) */
        assert_true(mappings() <= before + 8);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i]);
        /* pages given back but for the spares; addresses kept for reuse */
        assert_true(lb_arena_bytes(a) <= 4 * LB_ARENA_CHUNK);
        size_t after_free = mappings();
        assert_int_equal(fill(a, v, N, 300), N);
        assert_int_equal(lb_arena_bytes(a), peak);
        assert_true(mappings() <= after_free + 2);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i]);
        lb_arena_destroy(a);
}

static void test_emptied_chunk_is_reused(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        /* one block at a time, a million times: one chunk throughout */
        for (size_t i = 0; i < 1000000; i++) {
                void *p = lb_arena_alloc(a, 300);
                assert_non_null(p);
                lb_arena_free(p);
        }
        assert_int_equal(lb_arena_bytes(a), LB_ARENA_CHUNK);
        lb_arena_destroy(a);
}

static void test_block_larger_than_a_chunk(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        char *small = lb_arena_alloc(a, 100);
        size_t big_n = 3 * LB_ARENA_CHUNK + 5;
        char *big = lb_arena_alloc(a, big_n);
        assert_non_null(small);
        assert_non_null(big);
        memset(big, 'x', big_n);
        assert_int_equal(big[big_n - 1], 'x');
        assert_int_equal(lb_arena_bytes(a),
                         LB_ARENA_CHUNK + 4 * LB_ARENA_CHUNK);
        /* the small one's chunk still serves its class */
        char *next = lb_arena_alloc(a, 100);
        assert_true(next > small && next - small < (ptrdiff_t)LB_ARENA_CHUNK);
        lb_arena_free(big); /* not kept as a spare: unmapped */
        assert_int_equal(lb_arena_bytes(a), LB_ARENA_CHUNK);
        lb_arena_free(small);
        lb_arena_free(next);
        assert_null(lb_arena_alloc(a, SIZE_MAX - 16));
        lb_arena_destroy(a);
}

static void test_block_of_its_own_within_a_chunk(void **state)
{
        (void)state;
        /* over 4 KiB but under a chunk (a 20 KB Kafka key): its own
         * allocation, never a region's chunk, and freed as such */
        lb_arena_t *a = lb_arena_new();
        char *small = lb_arena_alloc(a, 100);
        for (int round = 0; round < 50; round++) {
                char *own[8];
                for (int i = 0; i < 8; i++) {
                        own[i] = lb_arena_alloc(a, 20000);
                        assert_non_null(own[i]);
                        memset(own[i], i, 20000);
                }
                assert_int_equal(lb_arena_bytes(a), 9 * LB_ARENA_CHUNK);
                for (int i = 0; i < 8; i++) {
                        assert_int_equal(own[i][19999], i);
                        lb_arena_free(own[i]);
                }
        }
        assert_int_equal(lb_arena_bytes(a), LB_ARENA_CHUNK);
        /* the regions are untouched: small blocks still come from them */
        static void *v[2000];
        assert_int_equal(fill(a, v, 2000, 300), 2000);
        for (size_t i = 0; i < 2000; i++)
                lb_arena_free(v[i]);
        lb_arena_free(small);
        lb_arena_destroy(a);
}

static void test_destroy_with_live_blocks(void **state)
{
        (void)state;
        /* a fatal stop may leave blocks: destroy unmaps their chunks too
         * (no leak to report, no crash) */
        lb_arena_t *a = lb_arena_new();
        static void *v[1000];
        assert_int_equal(fill(a, v, 1000, 500), 1000);
        lb_arena_destroy(a);
}

static void test_random_against_a_count_model(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        enum { SLOTS = 5000 };
        static char *v[SLOTS];
        static size_t len[SLOTS];
        size_t live = 0;
        srand(19);
        for (int step = 0; step < 200000; step++) {
                size_t i = (size_t)rand() % SLOTS;
                if (v[i]) {
                        for (size_t j = 0; j < len[i]; j++)
                                assert_int_equal((unsigned char)v[i][j],
                                                 (unsigned char)(i + j));
                        lb_arena_free(v[i]);
                        v[i] = NULL;
                        live--;
                } else {
                        len[i] = 1 + (size_t)rand() % 700;
                        v[i] = lb_arena_alloc(a, len[i]);
                        assert_non_null(v[i]);
                        for (size_t j = 0; j < len[i]; j++)
                                v[i][j] = (char)(i + j);
                        live++;
                }
                assert_int_equal(lb_arena_blocks(a), live);
        }
        for (size_t i = 0; i < SLOTS; i++)
                lb_arena_free(v[i]);
        assert_int_equal(lb_arena_blocks(a), 0);
        assert_true(lb_arena_bytes(a) <= 5 * LB_ARENA_CHUNK);
        lb_arena_destroy(a);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_blocks_are_aligned_and_apart),
            cmocka_unit_test(test_chunk_goes_back_with_its_last_block),
            cmocka_unit_test(test_stragglers_pin_blocks_not_chunks),
            cmocka_unit_test(test_chunks_share_mappings),
            cmocka_unit_test(test_emptied_chunk_is_reused),
            cmocka_unit_test(test_block_larger_than_a_chunk),
            cmocka_unit_test(test_block_of_its_own_within_a_chunk),
            cmocka_unit_test(test_destroy_with_live_blocks),
            cmocka_unit_test(test_random_against_a_count_model),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
