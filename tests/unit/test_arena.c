/*
 * test_arena.c: the action arena (src/arena.c): alignment and contents of
 * blocks, chunks given back when their last block goes (in any order)
 * with no page left resident (mincore), blocks freed around stragglers
 * reused, chunks sharing mappings and keeping their addresses once empty,
 * large blocks from malloc at their size, what a block costs at every
 * size, the spare chunks' cap, and a randomized run of small and large
 * blocks against a count model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "arena.h"

static void test_blocks_are_aligned_and_apart(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        assert_non_null(a);
        char *p[64];
        for (size_t i = 0; i < 64; i++) {
                p[i] = lb_arena_alloc(a, i + 1, NULL);
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
                lb_arena_free(p[i], i + 1);
        assert_int_equal(lb_arena_blocks(a), 0);
        lb_arena_free(NULL, 0);
        lb_arena_destroy(a);
        lb_arena_destroy(NULL);
}

/* Fills chunks with blocks of n bytes; @returns how many were allocated. */
static size_t fill(lb_arena_t *a, void **v, size_t cap, size_t n)
{
        size_t k = 0;
        while (k < cap && (v[k] = lb_arena_alloc(a, n, NULL)))
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
                        lb_arena_free(v[i], 256);
        assert_int_equal(lb_arena_bytes(a), peak);
        /* the last blocks, out of order: all but a few spares go back */
        for (size_t i = N; i-- > 0;)
                if (i % 200 == 0)
                        lb_arena_free(v[i], 256);
        assert_int_equal(lb_arena_blocks(a), 0);
        assert_true(lb_arena_bytes(a) <= 5 * LB_ARENA_CHUNK);
        /* and they are used again before anything new is mapped */
        size_t kept = lb_arena_bytes(a);
        assert_int_equal(fill(a, v, 200, 256), 200);
        assert_int_equal(lb_arena_bytes(a), kept);
        for (size_t i = 0; i < 200; i++)
                lb_arena_free(v[i], 256);
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
                        lb_arena_free(v[i], 300);
        assert_int_equal(lb_arena_bytes(a), peak);
        /* the next wave fits in the freed blocks: nothing new is mapped */
        for (size_t i = 0; i < N; i++)
                if (i % 100 != 0)
                        assert_non_null(v[i] = lb_arena_alloc(a, 300, NULL));
        assert_int_equal(lb_arena_bytes(a), peak);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i], 300);
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
        assert_true(peak >= (size_t)N * 300);
        /* a few regions (and what malloc maps for the arena's lists), not
         * a mapping per chunk (the kernel caps those) */
        assert_true(mappings() <= before + 16);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i], 300);
        /* pages given back but for the spares; addresses kept for reuse */
        assert_true(lb_arena_bytes(a) <= 4 * LB_ARENA_CHUNK);
        size_t after_free = mappings();
        assert_int_equal(fill(a, v, N, 300), N);
        assert_int_equal(lb_arena_bytes(a), peak);
        assert_true(mappings() <= after_free + 2);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i], 300);
        lb_arena_destroy(a);
}

static void test_emptied_chunk_is_reused(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        /* one block at a time, a million times: one chunk throughout */
        for (size_t i = 0; i < 1000000; i++) {
                void *p = lb_arena_alloc(a, 300, NULL);
                assert_non_null(p);
                lb_arena_free(p, 300);
        }
        assert_int_equal(lb_arena_bytes(a), LB_ARENA_CHUNK);
        lb_arena_destroy(a);
}

static void test_block_larger_than_a_chunk(void **state)
{
        (void)state;
        lb_arena_t *a = lb_arena_new();
        char *small = lb_arena_alloc(a, 100, NULL);
        size_t big_n = 3 * LB_ARENA_CHUNK + 5;
        char *big = lb_arena_alloc(a, big_n, NULL);
        assert_non_null(small);
        assert_non_null(big);
        assert_int_equal((uintptr_t)big % 8, 0);
        memset(big, 'x', big_n);
        assert_int_equal(big[big_n - 1], 'x');
        /* malloc's: a mapping of whole pages, counted as such */
        assert_int_equal(lb_arena_bytes(a),
                         LB_ARENA_CHUNK + lb_arena_cost(big_n));
        assert_true(lb_arena_cost(big_n) >= big_n);
        assert_true(lb_arena_cost(big_n) <= big_n + 8192);
        /* the small one's chunk still serves its class */
        char *next = lb_arena_alloc(a, 100, NULL);
        assert_true(next > small && next - small < (ptrdiff_t)LB_ARENA_CHUNK);
        lb_arena_free(big, big_n);
        assert_int_equal(lb_arena_bytes(a), LB_ARENA_CHUNK);
        lb_arena_free(small, 100);
        lb_arena_free(next, 100);
        assert_null(lb_arena_alloc(a, SIZE_MAX - 16, NULL));
        lb_arena_destroy(a);
}

static void test_large_blocks_cost_their_size(void **state)
{
        (void)state;
        /* over 4 KiB (a 20 KB Kafka key, a rich event): malloc's at its
         * size, never a chunk-aligned block of pages, and freed as such */
        lb_arena_t *a = lb_arena_new();
        char *small = lb_arena_alloc(a, 100, NULL);
        for (int round = 0; round < 50; round++) {
                char *own[8];
                for (int i = 0; i < 8; i++) {
                        own[i] = lb_arena_alloc(a, 20000, NULL);
                        assert_non_null(own[i]);
                        memset(own[i], i, 20000);
                }
                assert_int_equal(lb_arena_bytes(a),
                                 LB_ARENA_CHUNK + 8 * lb_arena_cost(20000));
                for (int i = 0; i < 8; i++) {
                        assert_int_equal(own[i][19999], i);
                        lb_arena_free(own[i], 20000);
                }
        }
        assert_int_equal(lb_arena_bytes(a), LB_ARENA_CHUNK);
        assert_int_equal(lb_arena_blocks(a), 1);
        /* the regions are untouched: small blocks still come from them */
        static void *v[2000];
        assert_int_equal(fill(a, v, 2000, 300), 2000);
        for (size_t i = 0; i < 2000; i++)
                lb_arena_free(v[i], 300);
        lb_arena_free(small, 100);
        lb_arena_destroy(a);
}

static void test_cost_at_every_size(void **state)
{
        (void)state;
        /* what a block costs, from 1 byte to past the mmap threshold: never
         * less than its size, and within 10% of it (plus malloc's header)
         * from 256 bytes up, which is what makes pending.max.bytes a bound
         * on memory for events of any size */
        size_t prev = 0, steps_down = 0;
        for (size_t n = 1; n <= 300 * 1024; n += n < 8192 ? 1 : 97) {
                size_t c = lb_arena_cost(n);
                assert_true(c >= n);
                if (n >= 256)
                        assert_true(c <= n + n / 10 + 64);
                /* one step down, from chunks to malloc near 4 KiB (the
                 * last classes share a chunk with 14 others) */
                steps_down += c < prev;
                prev = c;
        }
        assert_true(steps_down <= 1);
        /* malloc's rounding: 16-byte granules with a size word, a minimum,
         * and whole pages for a mapping of its own */
        assert_int_equal(lb_malloc_cost(1), 32);
        assert_int_equal(lb_malloc_cost(24), 32);
        assert_int_equal(lb_malloc_cost(25), 48);
        assert_int_equal(lb_malloc_cost(5000), 5008);
        assert_int_equal(lb_malloc_cost(5001), 5024);
        assert_int_equal(lb_malloc_cost(LB_MALLOC_MMAP_THRESHOLD) % 4096, 0);
}

/* Resident pages (mincore) in [p, p + n), both page-aligned. */
static size_t resident_pages(void *p, size_t n)
{
        unsigned char vec[LB_ARENA_CHUNK / 4096];
        size_t pages = n / 4096, count = 0;
        assert_true(pages <= sizeof(vec));
        assert_int_equal(mincore(p, n, vec), 0);
        for (size_t i = 0; i < pages; i++)
                count += vec[i] & 1;
        return count;
}

static void test_freed_chunks_keep_no_page(void **state)
{
        (void)state;
        /* 64 chunks of 1 KiB blocks, every page written, then all freed:
         * but for the spares (at most 4), no chunk keeps a page resident
         * (the list of cold chunks lives outside them) */
        lb_arena_t *a = lb_arena_new();
        enum { N = 64 * 63 };
        static void *v[N];
        assert_int_equal(fill(a, v, N, 1024), N);
        for (size_t i = 0; i < N; i++)
                memset(v[i], 1, 1024);
        static char *chunk[N];
        size_t chunks = 0;
        for (size_t i = 0; i < N; i++) {
                char *c = (char *)((uintptr_t)v[i] &
                                   ~(uintptr_t)(LB_ARENA_CHUNK - 1));
                if (!chunks || chunk[chunks - 1] != c)
                        chunk[chunks++] = c;
        }
        assert_true(chunks >= 60);
        size_t resident = 0;
        for (size_t i = 0; i < chunks; i++)
                resident += resident_pages(chunk[i], LB_ARENA_CHUNK);
        assert_true(resident >= (size_t)N * 1024 / 4096);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i], 1024);
        size_t warm = 0;
        for (size_t i = 0; i < chunks; i++)
                warm += resident_pages(chunk[i], LB_ARENA_CHUNK) > 0;
        assert_true(warm <= 4);
        assert_int_equal(lb_arena_bytes(a), warm * LB_ARENA_CHUNK);
        /* reused: the cold chunks serve again, their pages faulted in */
        assert_int_equal(fill(a, v, N, 1024), N);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i], 1024);
        lb_arena_destroy(a);
}

#if !defined(__SANITIZE_ADDRESS__)
/* The process's resident bytes. */
static size_t rss(void)
{
        FILE *f = fopen("/proc/self/statm", "r");
        assert_non_null(f);
        unsigned long size, resident;
        assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
        fclose(f);
        return resident * 4096;
}
#endif

static void test_large_blocks_give_their_pages_back(void **state)
{
        (void)state;
#if defined(__SANITIZE_ADDRESS__)
        skip(); /* the sanitizer's allocator, not glibc's, serves malloc */
#else
        /* 96 MiB of 20 KB blocks cost what is counted for them; freed, with
         * a small block allocated after them pinning the heap's top, their
         * pages go back all the same */
        lb_arena_tune_malloc();
        lb_arena_t *a = lb_arena_new();
        enum { N = 96 * 1024 * 1024 / 20000 };
        static char *v[N];
        size_t before = rss();
        for (size_t i = 0; i < N; i++) {
                assert_non_null(v[i] = lb_arena_alloc(a, 20000, NULL));
                memset(v[i], 1, 20000);
        }
        size_t counted = lb_arena_bytes(a), grown = rss() - before;
        assert_true(grown >= counted - counted / 20);
        assert_true(grown <= counted + counted / 20);
        char *pin = malloc(100);
        assert_non_null(pin);
        for (size_t i = 0; i < N; i++)
                lb_arena_free(v[i], 20000);
        assert_true(rss() < before + 16 * 1024 * 1024);
        free(pin);
        lb_arena_destroy(a);
#endif
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
                        lb_arena_free(v[i], len[i]);
                        v[i] = NULL;
                        live--;
                } else {
                        len[i] = rand() % 10 ? 1 + (size_t)rand() % 700
                                             : 4000 + (size_t)rand() % 70000;
                        v[i] = lb_arena_alloc(a, len[i], NULL);
                        assert_non_null(v[i]);
                        for (size_t j = 0; j < len[i]; j++)
                                v[i][j] = (char)(i + j);
                        live++;
                }
                assert_int_equal(lb_arena_blocks(a), live);
        }
        for (size_t i = 0; i < SLOTS; i++)
                lb_arena_free(v[i], len[i]);
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
            cmocka_unit_test(test_large_blocks_cost_their_size),
            cmocka_unit_test(test_cost_at_every_size),
            cmocka_unit_test(test_freed_chunks_keep_no_page),
            cmocka_unit_test(test_large_blocks_give_their_pages_back),
            cmocka_unit_test(test_destroy_with_live_blocks),
            cmocka_unit_test(test_random_against_a_count_model),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
