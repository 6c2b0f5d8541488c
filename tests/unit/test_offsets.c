/*
 * test_offsets.c: the per-partition offset tracker (src/offsets.c): the
 * committable watermark under in-order, out-of-order and gapped completion,
 * rejected inputs, ring growth across wrap-around, revocation and refcounts,
 * plus a randomized comparison against a naive model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "malloc_fails.h"
#include "offsets.h"

static void test_new(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("events", 7);
        assert_non_null(p);
        assert_string_equal(lb_partition_topic(p), "events");
        assert_int_equal(lb_partition_id(p), 7);
        assert_int_equal(lb_partition_committable(p), -1);
        assert_int_equal(lb_partition_next(p), -1);
        assert_int_equal(lb_partition_outstanding(p), 0);
        assert_int_equal(lb_partition_revoked(p), 0);
        /* Nothing tracked: any done() is for an unknown offset. */
        assert_int_equal(lb_partition_done(p, 0), -1);
        /* Holders: the references actions took, not the creator's. */
        assert_int_equal(lb_partition_holders(p), 0);
        lb_partition_ref(p);
        lb_partition_ref(p);
        assert_int_equal(lb_partition_holders(p), 2);
        lb_partition_unref(p);
        assert_int_equal(lb_partition_holders(p), 1);
        lb_partition_unref(p);
        assert_int_equal(lb_partition_holders(p), 0);
        lb_partition_unref(p);
}

static void test_in_order(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        for (int64_t o = 0; o < 10; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        assert_int_equal(lb_partition_committable(p), 0);
        assert_int_equal(lb_partition_outstanding(p), 10);
        for (int64_t o = 0; o < 10; o++) {
                assert_int_equal(lb_partition_done(p, o), 1);
                assert_int_equal(lb_partition_committable(p), o + 1);
                assert_int_equal(lb_partition_outstanding(p), 9 - o);
        }
        lb_partition_unref(p);
}

static void test_out_of_order(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        for (int64_t o = 100; o < 105; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        assert_int_equal(lb_partition_done(p, 103), 0);
        assert_int_equal(lb_partition_committable(p), 100);
        assert_int_equal(lb_partition_done(p, 101), 0);
        assert_int_equal(lb_partition_committable(p), 100);
        assert_int_equal(lb_partition_outstanding(p), 3);
        /* The head completes: the prefix 100..101 pops, 102 is next. */
        assert_int_equal(lb_partition_done(p, 100), 1);
        assert_int_equal(lb_partition_committable(p), 102);
        /* 102 completes: 103 was done already, so 104 is next. */
        assert_int_equal(lb_partition_done(p, 102), 1);
        assert_int_equal(lb_partition_committable(p), 104);
        assert_int_equal(lb_partition_done(p, 104), 1);
        assert_int_equal(lb_partition_committable(p), 105);
        assert_int_equal(lb_partition_outstanding(p), 0);
        lb_partition_unref(p);
}

static void test_reverse_order(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        for (int64_t o = 0; o < 50; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        for (int64_t o = 49; o > 0; o--) {
                assert_int_equal(lb_partition_done(p, o), 0);
                assert_int_equal(lb_partition_committable(p), 0);
        }
        assert_int_equal(lb_partition_done(p, 0), 1);
        assert_int_equal(lb_partition_committable(p), 50);
        lb_partition_unref(p);
}

static void test_gaps(void **state)
{
        (void)state;
        /* Compaction and transaction markers leave holes in offsets. */
        lb_partition_t *p = lb_partition_new("t", 0);
        assert_int_equal(lb_partition_track(p, 10), 0);
        assert_int_equal(lb_partition_track(p, 12), 0);
        assert_int_equal(lb_partition_next(p), 13); /* 15 jumps past it */
        assert_int_equal(lb_partition_track(p, 15), 0);
        assert_int_equal(lb_partition_next(p), 16);
        assert_int_equal(lb_partition_committable(p), 10);
        assert_int_equal(lb_partition_done(p, 11), -1); /* a hole */
        assert_int_equal(lb_partition_done(p, 12), 0);
        assert_int_equal(lb_partition_done(p, 10), 1);
        assert_int_equal(lb_partition_committable(p), 15);
        assert_int_equal(lb_partition_done(p, 15), 1);
        assert_int_equal(lb_partition_committable(p), 16);
        /* All done, then a new offset after another gap. */
        assert_int_equal(lb_partition_track(p, 40), 0);
        assert_int_equal(lb_partition_committable(p), 40);
        assert_int_equal(lb_partition_done(p, 40), 1);
        assert_int_equal(lb_partition_committable(p), 41);
        /* Done or not, the next offset is the one after the last tracked. */
        assert_int_equal(lb_partition_next(p), 41);
        assert_int_equal(lb_partition_track(p, 39), 1);
        assert_int_equal(lb_partition_next(p), 41);
        lb_partition_unref(p);
}

/* lb_partition_prefetch for any offset (an empty partition, offsets
 * before, inside, with holes, in a wrapped ring, past the tracked ones,
 * negative and extreme) changes nothing. (That it asks for no address
 * outside the ring is by construction: a prefetch never faults, and
 * ASan does not see one.) */
static void test_prefetch_reads_inside_and_changes_nothing(void **state)
{
        (void)state;
        const int64_t probes[] = {INT64_MIN, -1, 0,   5,   9,    10,
                                  11,        99, 100, 101, 1000, INT64_MAX};
        lb_partition_t *p = lb_partition_new("t", 0);
        for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++)
                lb_partition_prefetch(p, probes[k]); /* empty */
        for (int64_t o = 10; o < 100; o += 1 + (o % 7 == 0))
                assert_int_equal(lb_partition_track(p, o), 0);
        for (int64_t o = 10; o < 40; o++) /* the ring's head moves on */
                (void)lb_partition_done(p, o);
        assert_int_equal(lb_partition_committable(p), 40);
        for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++)
                lb_partition_prefetch(p, probes[k]);
        for (int64_t o = 100; o < 140; o++) /* wraps around the ring */
                assert_int_equal(lb_partition_track(p, o), 0);
        for (int64_t o = -5; o < 150; o++)
                lb_partition_prefetch(p, o);
        assert_int_equal(lb_partition_committable(p), 40);
        assert_int_equal(lb_partition_done(p, 40), 1);
        assert_int_equal(lb_partition_done(p, 43), -1); /* a hole */
        lb_partition_unref(p);
}

/* The end of a partition reached at an offset past the last tracked one
 * (transaction markers, aborted records): once the tracked ones are done
 * the committable offset is that end, not the one after the last tracked;
 * an end at or before the last tracked changes nothing. */
static void test_read_to(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        lb_partition_read_to(p, 0); /* an empty partition: nothing */
        assert_int_equal(lb_partition_committable(p), -1);
        lb_partition_read_to(p, 3); /* an aborted transaction only */
        assert_int_equal(lb_partition_committable(p), 3);
        lb_partition_unref(p);
        p = lb_partition_new("t", 0);
        assert_int_equal(lb_partition_track(p, 0), 0);
        assert_int_equal(lb_partition_track(p, 1), 0);
        lb_partition_read_to(p, 5); /* 2: a commit marker; 3, 4: aborted */
        assert_int_equal(lb_partition_committable(p), 0);
        assert_int_equal(lb_partition_next(p), 5);
        assert_int_equal(lb_partition_done(p, 1), 0);
        assert_int_equal(lb_partition_committable(p), 0);
        assert_int_equal(lb_partition_done(p, 0), 1);
        assert_int_equal(lb_partition_committable(p), 5);
        lb_partition_read_to(p, 3); /* behind: nothing moves back */
        assert_int_equal(lb_partition_committable(p), 5);
        assert_int_equal(lb_partition_track(p, 4), 1); /* read already */
        assert_int_equal(lb_partition_track(p, 6), 0);
        assert_int_equal(lb_partition_committable(p), 6);
        lb_partition_read_to(p, 7); /* the end right after: no gap */
        assert_int_equal(lb_partition_committable(p), 6);
        assert_int_equal(lb_partition_done(p, 6), 1);
        assert_int_equal(lb_partition_committable(p), 7);
        lb_partition_unref(p);
}

static void test_committable_before_done(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 3);
        assert_int_equal(lb_partition_committable(p), -1);
        assert_int_equal(lb_partition_track(p, 5), 0);
        /* Tracked but not handled: committing 5 re-reads it. */
        assert_int_equal(lb_partition_committable(p), 5);
        assert_int_equal(lb_partition_done(p, 5), 1);
        assert_int_equal(lb_partition_committable(p), 6);
        lb_partition_unref(p);
}

static void test_double_and_unknown(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        for (int64_t o = 0; o < 4; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        assert_int_equal(lb_partition_done(p, 2), 0);
        assert_int_equal(lb_partition_done(p, 2), -1); /* done, still held */
        assert_int_equal(lb_partition_done(p, 0), 1);
        assert_int_equal(lb_partition_done(p, 0), -1); /* done and popped */
        assert_int_equal(lb_partition_done(p, -1), -1);
        assert_int_equal(lb_partition_done(p, 4), -1); /* never tracked */
        assert_int_equal(lb_partition_done(p, INT64_MAX), -1);
        assert_int_equal(lb_partition_outstanding(p), 2);
        assert_int_equal(lb_partition_committable(p), 1);
        lb_partition_unref(p);
}

static void test_track_rejects(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        assert_int_equal(lb_partition_track(p, -1), 1);
        assert_int_equal(lb_partition_track(p, 7), 0);
        assert_int_equal(lb_partition_track(p, 7), 1);
        assert_int_equal(lb_partition_track(p, 6), 1);
        assert_int_equal(lb_partition_track(p, 8), 0);
        assert_int_equal(lb_partition_outstanding(p), 2);
        /* Once done, the last offset still bounds the next one. */
        assert_int_equal(lb_partition_done(p, 7), 1);
        assert_int_equal(lb_partition_done(p, 8), 1);
        assert_int_equal(lb_partition_track(p, 8), 1);
        assert_int_equal(lb_partition_track(p, 9), 0);
        lb_partition_unref(p);
}

/* Out of memory is not "already seen": track() says -1 (never 1), tracks
 * nothing, and the same offset can be tracked once memory is back. */
static void test_track_out_of_memory(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        malloc_fails = 1; /* the first ring */
        assert_int_equal(lb_partition_track(p, 5), -1);
        malloc_fails = 0;
        assert_int_equal(lb_partition_committable(p), -1);
        assert_int_equal(lb_partition_outstanding(p), 0);
        for (int64_t o = 5; o < 21; o++) /* fills the first ring */
                assert_int_equal(lb_partition_track(p, o), 0);
        malloc_fails = 1; /* its growth */
        assert_int_equal(lb_partition_track(p, 21), -1);
        malloc_fails = 0;
        assert_int_equal(lb_partition_outstanding(p), 16);
        assert_int_equal(lb_partition_track(p, 21), 0);
        for (int64_t o = 5; o < 22; o++)
                lb_partition_done(p, o);
        assert_int_equal(lb_partition_committable(p), 22);
        lb_partition_unref(p);
}

static void test_ring_wraps_and_grows(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        /* Move the head forward so later entries wrap around the ring. */
        for (int64_t o = 0; o < 10; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        for (int64_t o = 0; o < 8; o++)
                assert_int_equal(lb_partition_done(p, o), 1);
        /* Grow several times while wrapped (odd offsets only: gaps). */
        size_t n = 2; /* 8 and 9 */
        for (int64_t o = 11; o < 400; o += 2, n++)
                assert_int_equal(lb_partition_track(p, o), 0);
        assert_int_equal(lb_partition_outstanding(p), n);
        assert_int_equal(lb_partition_committable(p), 8);
        /* Complete everything after 8 in reverse: nothing advances. */
        for (int64_t o = 399; o >= 11; o -= 2)
                assert_int_equal(lb_partition_done(p, o), 0);
        assert_int_equal(lb_partition_done(p, 9), 0);
        assert_int_equal(lb_partition_committable(p), 8);
        assert_int_equal(lb_partition_done(p, 8), 1);
        assert_int_equal(lb_partition_committable(p), 400);
        assert_int_equal(lb_partition_outstanding(p), 0);
        lb_partition_unref(p);
}

static void test_large_then_reuse(void **state)
{
        (void)state;
        /* A burst large enough that the emptied ring is given back. */
        lb_partition_t *p = lb_partition_new("t", 0);
        for (int64_t o = 0; o < 20000; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        for (int64_t o = 1; o < 20000; o++)
                assert_int_equal(lb_partition_done(p, o), 0);
        assert_int_equal(lb_partition_done(p, 0), 1);
        assert_int_equal(lb_partition_committable(p), 20000);
        assert_int_equal(lb_partition_outstanding(p), 0);
        assert_int_equal(lb_partition_track(p, 20000), 0);
        assert_int_equal(lb_partition_committable(p), 20000);
        assert_int_equal(lb_partition_done(p, 20000), 1);
        assert_int_equal(lb_partition_committable(p), 20001);
        lb_partition_unref(p);
}

static void test_revoke(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        for (int64_t o = 0; o < 3; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        assert_int_equal(lb_partition_done(p, 0), 1);
        lb_partition_revoke(p);
        assert_int_equal(lb_partition_revoked(p), 1);
        /* Late completions (in-flight work finishing) are ignored. */
        assert_int_equal(lb_partition_done(p, 1), 0);
        assert_int_equal(lb_partition_done(p, 2), 0);
        assert_int_equal(lb_partition_done(p, 99), 0);
        assert_int_equal(lb_partition_committable(p), 1);
        assert_int_equal(lb_partition_outstanding(p), 2);
        lb_partition_unref(p);
}

static void test_refcount(void **state)
{
        (void)state;
        lb_partition_unref(NULL);
        lb_partition_t *p = lb_partition_new(NULL, 1);
        assert_non_null(p);
        assert_string_equal(lb_partition_topic(p), "");
        for (int i = 0; i < 3; i++)
                lb_partition_ref(p);
        for (int i = 0; i < 3; i++) {
                lb_partition_unref(p);
                /* Still alive: ASan would flag a use after free. */
                assert_int_equal(lb_partition_id(p), 1);
        }
        assert_int_equal(lb_partition_track(p, 1), 0);
        lb_partition_unref(p); /* the last reference frees the ring too */
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* Random tracking with gaps, random completion order, against a model. */
static void test_random_model(void **state)
{
        (void)state;
        enum { N = 5000 };
        for (uint64_t seed = 1; seed <= 20; seed++) {
                rng_state = seed * 0x9e3779b97f4a7c15ULL;
                lb_partition_t *p = lb_partition_new("t", 0);
                int64_t *offs = malloc(N * sizeof(*offs));
                int *done = calloc(N, sizeof(*done));
                assert_non_null(offs);
                assert_non_null(done);
                size_t tracked = 0, ndone = 0, lo = 0;
                int64_t next = (int64_t)(rnd() % 100);
                while (ndone < N) {
                        if (tracked < N &&
                            (tracked == ndone || rnd() % 100 < 55)) {
                                offs[tracked++] = next;
                                assert_int_equal(lb_partition_track(p, next),
                                                 0);
                                next += 1;
                                if (rnd() % 4 == 0)
                                        next += (int64_t)(rnd() % 5);
                        } else {
                                size_t i;
                                do
                                        i = rnd() % tracked;
                                while (done[i]);
                                int r = lb_partition_done(p, offs[i]);
                                assert_int_equal(r, i == lo ? 1 : 0);
                                assert_int_equal(lb_partition_done(p, offs[i]),
                                                 -1);
                                done[i] = 1;
                                ndone++;
                                while (lo < tracked && done[lo])
                                        lo++;
                        }
                        int64_t want =
                            lo < tracked ? offs[lo] : offs[tracked - 1] + 1;
                        assert_int_equal(lb_partition_committable(p), want);
                        assert_int_equal(lb_partition_outstanding(p),
                                         tracked - ndone);
                }
                free(offs);
                free(done);
                lb_partition_unref(p);
        }
}

static void test_done_ranges(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        lb_range_t r[8];
        for (int64_t o = 10; o <= 20; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        assert_int_equal(lb_partition_done_ranges(p, r, 8), 0);
        for (int64_t o = 12; o <= 13; o++)
                lb_partition_done(p, o);
        lb_partition_done(p, 15);
        lb_partition_done(p, 17);
        assert_int_equal(lb_partition_done_ranges(p, r, 8), 3);
        assert_true(r[0].start == 12 && r[0].end == 14);
        assert_true(r[1].start == 15 && r[1].end == 16);
        assert_true(r[2].start == 17 && r[2].end == 18);
        /* room for two: the nearest two, and the count says more exist */
        memset(r, 0, sizeof(r));
        assert_int_equal(lb_partition_done_ranges(p, r, 2), 3);
        assert_true(r[1].start == 15 && r[1].end == 16);
        assert_int_equal(r[2].start, 0);
        /* the committable offset moves past the first range */
        lb_partition_done(p, 10);
        lb_partition_done(p, 11);
        assert_int_equal(lb_partition_committable(p), 14);
        assert_int_equal(lb_partition_done_ranges(p, r, 8), 2);
        assert_true(r[0].start == 15 && r[1].start == 17);
        /* offsets never seen (a compacted gap) inside a run of done ones */
        assert_int_equal(lb_partition_track(p, 30), 0);
        assert_int_equal(lb_partition_track(p, 33), 0);
        lb_partition_done(p, 30);
        lb_partition_done(p, 33);
        assert_int_equal(lb_partition_done_ranges(p, r, 8), 3);
        assert_true(r[2].start == 30 && r[2].end == 34);
        lb_partition_unref(p);
}

static void test_already_done(void **state)
{
        (void)state;
        lb_partition_t *p = lb_partition_new("t", 0);
        assert_int_equal(lb_partition_already_done(p, 1), 0);
        lb_range_t *r = malloc(2 * sizeof(*r));
        r[0] = (lb_range_t){5, 7};
        r[1] = (lb_range_t){9, 10};
        lb_partition_set_already_done(p, r, 2);
        int want[] = {0, 1, 1, 0, 0, 1, 0, 0}; /* offsets 4..11 */
        for (int64_t o = 4; o <= 11; o++)
                assert_int_equal(lb_partition_already_done(p, o), want[o - 4]);
        lb_partition_unref(p);

        /* unread ranges are freed with the tracker (ASan checks) */
        p = lb_partition_new("t", 1);
        r = malloc(sizeof(*r));
        r[0] = (lb_range_t){100, 200};
        lb_partition_set_already_done(p, r, 1);
        assert_int_equal(lb_partition_already_done(p, 150), 1);
        lb_partition_unref(p);
}

/* What an owner inherited from the last one's map and has not consumed yet
 * stays in its own map: its first commits must not erase it (a new owner
 * committing after a few messages, then revoked, would have the one after
 * it redo them all). */
static void test_done_ranges_inherited(void **state)
{
        (void)state;
        lb_range_t r[8];
        lb_partition_t *p = lb_partition_new("t", 0);
        lb_range_t *a = malloc(3 * sizeof(*a));
        a[0] = (lb_range_t){5, 7};
        a[1] = (lb_range_t){9, 10};
        a[2] = (lb_range_t){20, 30};
        lb_partition_set_already_done(p, a, 3);
        /* 0 held, 1 done: the ring's run, then all that was inherited */
        for (int64_t o = 0; o <= 1; o++) {
                assert_int_equal(lb_partition_already_done(p, o), 0);
                assert_int_equal(lb_partition_track(p, o), 0);
        }
        lb_partition_done(p, 1);
        assert_int_equal(lb_partition_committable(p), 0);
        assert_int_equal(lb_partition_done_ranges(p, r, 8), 4);
        assert_true(r[0].start == 1 && r[0].end == 2);
        assert_true(r[1].start == 5 && r[1].end == 7);
        assert_true(r[2].start == 9 && r[2].end == 10);
        assert_true(r[3].start == 20 && r[3].end == 30);
        /* consumed into an inherited range (5 and 6 skipped as done): one
         * run with what is left of it; room for two: the count says more */
        for (int64_t o = 2; o <= 6; o++) {
                assert_int_equal(lb_partition_already_done(p, o), o >= 5);
                assert_int_equal(lb_partition_track(p, o), 0);
                lb_partition_done(p, o);
        }
        assert_int_equal(lb_partition_done_ranges(p, r, 2), 3);
        assert_true(r[0].start == 1 && r[0].end == 7);
        assert_true(r[1].start == 9 && r[1].end == 10);
        /* all done: the committable offset is never in the map */
        lb_partition_done(p, 0);
        assert_int_equal(lb_partition_committable(p), 7);
        assert_int_equal(lb_partition_done_ranges(p, r, 8), 2);
        assert_true(r[0].start == 9 && r[1].start == 20 && r[1].end == 30);
        for (int64_t o = 7; o <= 20; o++) {
                assert_int_equal(lb_partition_already_done(p, o),
                                 o == 9 || o == 20);
                assert_int_equal(lb_partition_track(p, o), 0);
                lb_partition_done(p, o);
        }
        assert_int_equal(lb_partition_committable(p), 21);
        assert_int_equal(lb_partition_done_ranges(p, r, 8), 1);
        assert_true(r[0].start == 22 && r[0].end == 30);
        lb_partition_unref(p);
}

/* The ring's bytes count in the memory bound: one offset held at the head
 * keeps every later one in the ring, done or not (100,000 here: 1 MiB). */
static void test_ring_counted(void **state)
{
        (void)state;
        size_t total = 0;
        lb_partition_t *p = lb_partition_new("t", 0);
        lb_partition_count_ring(p, &total);
        assert_int_equal(total, 0);
        assert_int_equal(lb_partition_track(p, 0), 0);
        assert_int_equal(total, 16 * 8);
        for (int64_t o = 1; o <= 100000; o++) {
                assert_int_equal(lb_partition_track(p, o), 0);
                assert_int_equal(lb_partition_done(p, o), 0);
        }
        assert_int_equal(total, 131072 * 8); /* doubled to fit 100,001 */
        /* the head done: all of it is, and the ring goes */
        assert_int_equal(lb_partition_done(p, 0), 1);
        assert_int_equal(total, 0);
        /* a small one is kept while empty; the tracker's end takes it back */
        assert_int_equal(lb_partition_track(p, 100001), 0);
        assert_int_equal(lb_partition_done(p, 100001), 1);
        assert_int_equal(total, 16 * 8);
        lb_partition_unref(p);
        assert_int_equal(total, 0);
}

/* What one owner commits, the next owner reads: every offset the first
 * had done above its committable one is skipped, no other. */
static void test_map_hand_over(void **state)
{
        (void)state;
        enum { N = 3000 };
        rng_state = 77;
        lb_partition_t *p = lb_partition_new("t", 0);
        int done[N] = {0};
        for (int64_t o = 0; o < N; o++)
                assert_int_equal(lb_partition_track(p, o), 0);
        for (int i = 0; i < N; i++)
                if (rnd() % 3 && i != 50) {
                        lb_partition_done(p, i);
                        done[i] = 1;
                }
        int64_t base = lb_partition_committable(p);
        lb_range_t r[N];
        size_t n = lb_partition_done_ranges(p, r, N);
        static char md[1 << 16];
        int t;
        size_t len = lb_offset_map_encode(base, r, n, md, sizeof(md) - 1, &t);
        assert_int_equal(t, 0);
        lb_range_t *got;
        int k = lb_offset_map_decode(md, len, base, &got);
        assert_int_equal(k, (int)n);
        lb_partition_t *next = lb_partition_new("t", 0);
        lb_partition_set_already_done(next, got, (size_t)k);
        for (int64_t o = base; o < N; o++)
                assert_int_equal(lb_partition_already_done(next, o), done[o]);
        lb_partition_unref(next);
        lb_partition_unref(p);
}

/* Retention's loss on assignment: counted from the committed offset to
 * the first offset that still exists (the log start, or the first
 * consumed if that came first); none when the log starts at or below the
 * commit (a compaction gap) or nothing was skipped. */
static void test_retention_lost(void **state)
{
        (void)state;
        assert_int_equal(lb_retention_lost(100, 130, 130), 30);
        assert_int_equal(lb_retention_lost(100, 130, 125), 25);
        /* 120 was fetched before the log start passed it: 100..119 were
         * markers or compacted away, not deleted unread. */
        assert_int_equal(lb_retention_lost(100, 120, 140), 0);
        assert_int_equal(lb_retention_lost(100, 139, 140), 0);
        assert_int_equal(lb_retention_lost(100, 140, 140), 40);
        assert_int_equal(lb_retention_lost(100, 130, 100), 0);
        assert_int_equal(lb_retention_lost(100, 130, 90), 0);
        assert_int_equal(lb_retention_lost(100, 100, 130), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_retention_lost),
            cmocka_unit_test(test_new),
            cmocka_unit_test(test_in_order),
            cmocka_unit_test(test_out_of_order),
            cmocka_unit_test(test_reverse_order),
            cmocka_unit_test(test_gaps),
            cmocka_unit_test(test_prefetch_reads_inside_and_changes_nothing),
            cmocka_unit_test(test_committable_before_done),
            cmocka_unit_test(test_read_to),
            cmocka_unit_test(test_double_and_unknown),
            cmocka_unit_test(test_track_rejects),
            cmocka_unit_test(test_track_out_of_memory),
            cmocka_unit_test(test_ring_wraps_and_grows),
            cmocka_unit_test(test_large_then_reuse),
            cmocka_unit_test(test_revoke),
            cmocka_unit_test(test_refcount),
            cmocka_unit_test(test_random_model),
            cmocka_unit_test(test_done_ranges),
            cmocka_unit_test(test_done_ranges_inherited),
            cmocka_unit_test(test_ring_counted),
            cmocka_unit_test(test_already_done),
            cmocka_unit_test(test_map_hand_over),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
