/*
 * test_offset_map.c: the offset map of the commit metadata: its exact
 * format, round trips, merging of adjacent ranges, truncation to the
 * broker's limit (the farthest ranges go; never a range beyond what fits),
 * and every way a map is refused (other version, corrupt base64 or
 * varints, another base, zero-length runs, overflow).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "offset_map.h"

static int decode(const char *md, int64_t base, lb_range_t **r)
{
        return lb_offset_map_decode(md, strlen(md), base, r);
}

static void test_format(void **state)
{
        (void)state;
        char out[64];
        int t;
        /* base 100; 102..104 and 110 done: runs 2 not done, 3 done, 5 not
         * done, 1 done. Varints 100, 2, 3, 5, 1 = 64 02 03 05 01. */
        lb_range_t r[] = {{102, 105}, {110, 111}};
        size_t n = lb_offset_map_encode(100, r, 2, out, 4096, &t);
        assert_string_equal(out, "lb1:ZAIDBQE=");
        assert_int_equal(n, strlen(out));
        assert_int_equal(t, 0);

        lb_range_t *d;
        assert_int_equal(decode(out, 100, &d), 2);
        assert_memory_equal(d, r, sizeof(r));
        free(d);
}

static void test_empty_and_invalid_input(void **state)
{
        (void)state;
        char out[64] = "x";
        int t = 7;
        assert_int_equal(lb_offset_map_encode(5, NULL, 0, out, 4096, &t), 0);
        assert_string_equal(out, "");
        assert_int_equal(t, 0);

        lb_range_t at_base[] = {{5, 6}}; /* the base is never done */
        lb_range_t unsorted[] = {{9, 10}, {7, 8}};
        lb_range_t overlap[] = {{7, 10}, {9, 12}};
        lb_range_t empty[] = {{7, 7}};
        assert_int_equal(lb_offset_map_encode(5, at_base, 1, out, 64, &t), 0);
        assert_int_equal(lb_offset_map_encode(5, unsorted, 2, out, 64, &t), 0);
        assert_int_equal(lb_offset_map_encode(5, overlap, 2, out, 64, &t), 0);
        assert_int_equal(lb_offset_map_encode(5, empty, 1, out, 64, &t), 0);
        assert_int_equal(lb_offset_map_encode(-1, empty, 1, out, 64, &t), 0);

        lb_range_t *d = (lb_range_t *)1;
        assert_int_equal(decode("", 5, &d), 0);
        assert_null(d);
}

static void test_adjacent_ranges_merge(void **state)
{
        (void)state;
        char out[64];
        int t;
        lb_range_t r[] = {{3, 5}, {5, 9}, {9, 10}, {12, 13}};
        lb_offset_map_encode(0, r, 4, out, 64, &t);
        lb_range_t *d;
        assert_int_equal(decode(out, 0, &d), 2);
        assert_true(d[0].start == 3 && d[0].end == 10);
        assert_true(d[1].start == 12 && d[1].end == 13);
        free(d);
}

static void test_large_offsets_round_trip(void **state)
{
        (void)state;
        char out[256];
        int t;
        int64_t base = INT64_MAX - 1000000;
        lb_range_t r[] = {{base + 1, base + 100000},
                          {INT64_MAX - 10, INT64_MAX}};
        size_t n = lb_offset_map_encode(base, r, 2, out, sizeof(out) - 1, &t);
        assert_true(n > 0);
        lb_range_t *d;
        assert_int_equal(decode(out, base, &d), 2);
        assert_memory_equal(d, r, sizeof(r));
        free(d);
}

/* A million done offsets in 1000 runs of 1000, one not-done offset between
 * them: 3 bytes a run (a 1-byte gap, a 2-byte length), 4 characters once
 * in base64. */
static void test_compact(void **state)
{
        (void)state;
        enum { RUNS = 1000 };
        lb_range_t *r = malloc(RUNS * sizeof(*r));
        for (int i = 0; i < RUNS; i++) {
                r[i].start = 1 + (int64_t)i * 1001;
                r[i].end = r[i].start + 1000;
        }
        char *out = malloc(8192);
        int t;
        size_t n = lb_offset_map_encode(0, r, RUNS, out, 8191, &t);
        assert_int_equal(t, 0);
        assert_int_equal(n, 4 + (1 + 3 * RUNS + 2) / 3 * 4);
        lb_range_t *d;
        assert_int_equal(decode(out, 0, &d), RUNS);
        assert_memory_equal(d, r, RUNS * sizeof(*r));
        free(d);
        free(out);
        free(r);
}

/* Over the limit: the ranges nearest the base are kept, whole; the string
 * never exceeds the limit, for every limit. */
static void test_truncation(void **state)
{
        (void)state;
        enum { RUNS = 200 };
        lb_range_t r[RUNS];
        for (int i = 0; i < RUNS; i++) {
                r[i].start = 10 + (int64_t)i * 300;
                r[i].end = r[i].start + 200;
        }
        char out[4097];
        int t;
        size_t full = lb_offset_map_encode(0, r, RUNS, out, 4096, &t);
        assert_int_equal(t, 0);
        int prev = 0;
        for (size_t max = 0; max <= full; max++) {
                size_t n = lb_offset_map_encode(0, r, RUNS, out, max, &t);
                assert_true(n <= max);
                assert_int_equal(strlen(out), n);
                assert_int_equal(t, max < full);
                lb_range_t *d;
                int k = decode(out, 0, &d);
                assert_true(k >= prev && k <= RUNS);
                if (k)
                        assert_memory_equal(d, r, (size_t)k * sizeof(*r));
                free(d);
                prev = k;
        }
        assert_int_equal(prev, RUNS);
        /* too small for even one range: empty, and said */
        assert_int_equal(lb_offset_map_encode(0, r, RUNS, out, 7, &t), 0);
        assert_int_equal(t, 1);
}

static void test_refused(void **state)
{
        (void)state;
        lb_range_t *d;
        const char *bad[] = {
            "lb2:ZAIDBgE=",         /* another version */
            "lb1",                  /* no payload */
            "lb1:",                 /* no payload */
            "LB1:ZAIDBgE=",         /* not our prefix */
            "lb1:ZAIDBgE",          /* not whole quads */
            "lb1:ZAID=gE=",         /* padding inside */
            "lb1:ZAIDBg=E",         /* padding in the middle of a quad */
            "lb1:ZAI*BgE=",         /* not base64 */
            "lb1:ZAID",             /* valid (100, 2, 3): checked below */
            "lb1:ZAIA",             /* a zero-length run: 100 2 0 */
            "lb1:ZA==",             /* the base alone */
            "lb1:gICAgICAgICAgAE=", /* a varint too long */
            "lb1:ZP//////////fw==", /* overflow past INT64_MAX */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (i == 8)
                        continue; /* checked below: a valid map */
                d = (lb_range_t *)1;
                if (decode(bad[i], 100, &d) != -1)
                        fail_msg("accepted %s", bad[i]);
                assert_null(d);
        }
        /* 100 2 3: one range, 102..104 */
        assert_int_equal(decode(bad[8], 100, &d), 1);
        assert_true(d[0].start == 102 && d[0].end == 105);
        free(d);
        /* the right map for another committed offset */
        assert_int_equal(decode("lb1:ZAIDBgE=", 101, &d), -1);
        assert_null(d);
        assert_int_equal(decode("lb1:ZAIDBgE=", -1, &d), -1);
}

static void test_room_cut_once_per_commit(void **state)
{
        (void)state;
        lb_map_room_t r;
        lb_map_room_init(&r, 4096);
        assert_int_equal(r.room, 4096);
        /* eight partitions' maps refused in one commit (the smallest of
         * them 3000 bytes): one cut, to half of it; not 4096 halved eight
         * times, which turned maps off for good */
        assert_int_equal(lb_map_room_observe(&r, 3000, 1000), -1);
        assert_int_equal(r.room, 1500);
        /* a refusal of a map sent before the cut changes nothing */
        assert_int_equal(lb_map_room_observe(&r, 2800, 1500), 0);
        assert_int_equal(r.room, 1500);
        /* commits without a refusal: nothing until the probe is due */
        assert_int_equal(lb_map_room_observe(&r, 0, 2000), 0);
        assert_int_equal(
            lb_map_room_observe(&r, 0, 1000 + LB_MAP_ROOM_PROBE_MS - 1), 0);
        assert_int_equal(r.room, 1500);
}

static void test_room_recovers_by_probing(void **state)
{
        (void)state;
        lb_map_room_t r;
        lb_map_room_init(&r, 4096);
        int64_t t = 0;
        /* a small map refused: the smallest room, not less (a broker
         * with offset.metadata.max.bytes=64 takes maps of 64 bytes) */
        assert_int_equal(lb_map_room_observe(&r, 100, t), -1);
        assert_int_equal(r.room, 64);
        /* one of that size refused too: off */
        assert_int_equal(lb_map_room_observe(&r, 64, t), -1);
        assert_int_equal(r.room, 0);
        /* probed back up, doubling, to the configured room and no more */
        int64_t want[] = {64, 128, 256, 512, 1024, 2048, 4096};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                t += LB_MAP_ROOM_PROBE_MS;
                assert_int_equal(lb_map_room_observe(&r, 0, t), 1);
                assert_int_equal(r.room, want[i]);
        }
        t += LB_MAP_ROOM_PROBE_MS;
        assert_int_equal(lb_map_room_observe(&r, 0, t), 0);
        assert_int_equal(r.room, 4096);
        /* a broker whose limit is 1000: the probe past it is refused and
         * the room settles under the limit */
        assert_int_equal(lb_map_room_observe(&r, 1800, t), -1);
        assert_int_equal(r.room, 900);
        t += LB_MAP_ROOM_PROBE_MS;
        assert_int_equal(lb_map_room_observe(&r, 0, t), 1);
        assert_int_equal(r.room, 1800);
        assert_int_equal(lb_map_room_observe(&r, 1700, t + 1), -1);
        assert_int_equal(r.room, 850);
        /* maps off by configuration stay off */
        lb_map_room_init(&r, 0);
        assert_int_equal(lb_map_room_observe(&r, 0, 10 * LB_MAP_ROOM_PROBE_MS),
                         0);
        assert_int_equal(r.room, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_format),
            cmocka_unit_test(test_empty_and_invalid_input),
            cmocka_unit_test(test_adjacent_ranges_merge),
            cmocka_unit_test(test_large_offsets_round_trip),
            cmocka_unit_test(test_compact),
            cmocka_unit_test(test_truncation),
            cmocka_unit_test(test_refused),
            cmocka_unit_test(test_room_cut_once_per_commit),
            cmocka_unit_test(test_room_recovers_by_probing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
