/*
 * test_action.c: the action record (src/action.c): where its key and value
 * live, a missing key against an empty one, the dead-letter reason, and the
 * footprint that pending.max.bytes counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "action.h"
#include "offsets.h"
#include "arena.h"

/* The arena every action of this test lives in (reachable: no leak). */
static lb_arena_t *arena(void)
{
        static lb_arena_t *a;
        if (!a)
                a = lb_arena_new();
        return a;
}

/* What the arena block of an action with a value of v bytes and k bytes
 * of key with its NUL (0: no key) costs. */
static size_t block(size_t v, size_t k)
{
        return lb_arena_cost(offsetof(lb_action_t, data) + v + 1 + k);
}

static void test_key_and_value_follow_the_record(void **state)
{
        (void)state;
        lb_action_t *a = lb_action_new(arena(), "user-1", 6, "{\"a\":1}", 7);
        assert_non_null(a);
        assert_int_equal(a->value_len, 7);
        assert_string_equal(lb_action_value(a), "{\"a\":1}");
        assert_int_equal(a->key_len, 6);
        assert_string_equal(lb_action_key(a), "user-1");
        assert_null(lb_action_headers(a));
        assert_null(lb_action_error(a));
        assert_int_equal(a->attempts, 0);
        lb_action_destroy(a);
}

static void test_missing_key_is_not_an_empty_key(void **state)
{
        (void)state;
        lb_action_t *none = lb_action_new(arena(), NULL, 0, "{}", 2);
        lb_action_t *empty = lb_action_new(arena(), "", 0, "{}", 2);
        assert_non_null(none);
        assert_non_null(empty);
        assert_null(lb_action_key(none));
        assert_non_null(lb_action_key(empty));
        assert_string_equal(lb_action_key(empty), "");
        assert_int_equal(empty->key_len, 0);
        /* the empty key's NUL is held too */
        assert_int_equal(lb_action_footprint(none), block(2, 0));
        assert_int_equal(lb_action_footprint(empty), block(2, 1));
        lb_action_destroy(none);
        lb_action_destroy(empty);
}

static void test_refuses_what_its_lengths_cannot_hold(void **state)
{
        (void)state;
        /* never read: the length alone is refused */
        assert_null(
            lb_action_new(arena(), "k", (size_t)UINT32_MAX + 1, "{}", 2));
        assert_null(
            lb_action_new(arena(), NULL, 0, "{}", (size_t)UINT32_MAX + 1));
}

static void test_error_is_copied_and_replaced(void **state)
{
        (void)state;
        lb_action_t *a = lb_action_new(arena(), NULL, 0, "{}", 2);
        assert_non_null(a);
        size_t footprint = lb_action_footprint(a);
        char reason[] = "first";
        lb_action_set_error(a, LB_STAGE_API, 200, reason);
        /* counted when taken, subtracted when freed: a reason set in
         * between must not change it (the bridge's count would wrap) */
        assert_int_equal(lb_action_footprint(a), footprint);
        reason[0] = 'X';
        assert_string_equal(lb_action_error(a), "first");
        assert_int_equal(a->stage, LB_STAGE_API);
        assert_int_equal(a->http_status, 200);
        lb_action_set_error(a, LB_STAGE_RETRIES_EXHAUSTED, 0, NULL);
        assert_null(lb_action_error(a));
        assert_int_equal(a->stage, LB_STAGE_RETRIES_EXHAUSTED);
        assert_int_equal(a->http_status, 0);
        /* a status that is no HTTP status is not kept as one */
        lb_action_set_error(a, LB_STAGE_HTTP, 70000, "x");
        assert_int_equal(a->http_status, 0);
        lb_action_destroy(a);
}

static void test_footprint_counts_data_headers_and_tracker(void **state)
{
        (void)state;
        lb_action_t *a = lb_action_new(arena(), "k", 1, "{\"v\":12345}", 11);
        assert_non_null(a);
        size_t bare = lb_action_footprint(a);
        /* its block, 8-aligned as the arena hands it out (its offset's
         * entry is counted with its tracker's ring) */
        assert_int_equal(bare, block(11, 2));
        lb_action_t *b =
            lb_action_new(arena(), "k", 1, "{\"v\":123456789}", 15);
        assert_non_null(b);
        assert_int_equal(lb_action_footprint(b), block(15, 2));

        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "trace", -1, "abc", -1);
        assert_int_equal(lb_action_take_headers(a, h), 0);
        size_t one = 0, two = 0;
        one = lb_action_footprint(a);
        rd_kafka_header_add(h, "span", -1, "d", -1);
        two = lb_action_footprint(a);
        assert_true(one > bare);
        assert_true(two > one);
        /* by their real sizes: a long value counts whole */
        static char big[3000];
        memset(big, 'v', sizeof(big));
        rd_kafka_header_add(h, "payload", -1, big, sizeof(big));
        size_t three = lb_action_footprint(a);
        assert_true(three >= two + sizeof(big));
        assert_true(three <= two + sizeof(big) + 128);
        lb_action_destroy(a); /* frees the headers */
        lb_action_destroy(b);
}

/* What a dead letter holds while it waits counts as much as the producer's
 * copy measured (librdkafka 2.0.2, 100-byte value, 11-byte key, seven
 * leanbridge.* headers with a 60-byte reason: 1,121 bytes of RSS a queued
 * record), grows with the event and its headers, and is the same at the
 * report as when it was handed over. */
static void test_dead_letter_cost(void **state)
{
        (void)state;
        static char value[100], big[4000];
        memset(value, 'v', sizeof(value));
        memset(big, 'v', sizeof(big));
        const char *reason =
            "invalid JSON at byte 17: '[' or '{' expected near end of file";
        lb_action_t *a =
            lb_action_new(arena(), "user-123456", 11, value, sizeof(value));
        lb_action_t *b =
            lb_action_new(arena(), "user-123456", 11, big, sizeof(big));
        assert_non_null(a);
        assert_non_null(b);
        lb_action_set_error(a, LB_STAGE_PARSE, 0, reason);
        lb_action_set_error(b, LB_STAGE_PARSE, 0, reason);
        size_t ca = lb_action_dead_letter_cost(a);
        assert_true(ca >= 1121 + strlen(reason));
        assert_true(ca <= 2 * 1121);
        assert_true(lb_action_dead_letter_cost(b) >=
                    ca + sizeof(big) - sizeof(value));
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "payload", -1, big, sizeof(big));
        assert_int_equal(lb_action_take_headers(a, h), 0);
        lb_action_set_error(a, LB_STAGE_PARSE, 0, reason);
        size_t with = lb_action_dead_letter_cost(a);
        assert_true(with >= ca + sizeof(big));
        assert_int_equal(lb_action_dead_letter_cost(a), with);
        lb_action_destroy(a);
        lb_action_destroy(b);
}

/* The cost an action keeps of its block is the arena's for every size:
 * blocks of each small class, the largest small one, the first large one
 * and a far larger one (whose cost is not kept: worked out each time). */
static void test_footprint_is_the_arenas_cost_at_every_size(void **state)
{
        (void)state;
        static char value[70000];
        memset(value, 'v', sizeof(value));
        size_t head = offsetof(lb_action_t, data) + 1;
        size_t small_max = LB_ARENA_SMALL_MAX - head;
        size_t sizes[] = {small_max - 1, small_max, small_max + 1,
                          small_max + 8, sizeof(value)};
        for (size_t v = 1; v < 600; v++) {
                lb_action_t *a = lb_action_new(arena(), NULL, 0, value, v);
                assert_non_null(a);
                assert_int_equal(lb_action_footprint(a), block(v, 0));
                lb_action_destroy(a);
        }
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                lb_action_t *a =
                    lb_action_new(arena(), NULL, 0, value, sizes[i]);
                assert_non_null(a);
                assert_int_equal(lb_action_footprint(a), block(sizes[i], 0));
                if (sizes[i] == sizeof(value))
                        assert_int_equal(a->block_cost, 0);
                lb_action_destroy(a);
        }
}

/* The prefetch loop's helpers read only acts[from..n), whatever n (an
 * array of exactly n slots: ASan sees a read past it), take empty slots,
 * and hand back the slot half their distance ahead. */
static void test_prefetch_steps_stay_inside(void **state)
{
        (void)state;
        lb_action_t rec[3];
        for (size_t n = 0; n <= 3 * LB_ACTION_PREFETCH_AHEAD; n++) {
                for (size_t from = 0; from <= n; from++) {
                        lb_action_t **acts =
                            malloc((n ? n : 1) * sizeof(*acts));
                        assert_non_null(acts);
                        for (size_t i = 0; i < n; i++)
                                acts[i] = i % 3 == 2 ? NULL : &rec[i % 3];
                        lb_actions_prefetch_start(acts, from, n);
                        for (size_t i = from; i < n; i++) {
                                size_t half = i + LB_ACTION_PREFETCH_AHEAD / 2;
                                assert_ptr_equal(
                                    lb_actions_prefetch(acts, i, n),
                                    half < n ? acts[half] : NULL);
                        }
                        free(acts);
                }
        }
}

static void test_record_stays_small(void **state)
{
        (void)state;
        /* the bridge holds rate x budget of these: keep it this small */
        assert_true(sizeof(lb_action_t) <= 80);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_key_and_value_follow_the_record),
            cmocka_unit_test(test_footprint_is_the_arenas_cost_at_every_size),
            cmocka_unit_test(test_missing_key_is_not_an_empty_key),
            cmocka_unit_test(test_refuses_what_its_lengths_cannot_hold),
            cmocka_unit_test(test_error_is_copied_and_replaced),
            cmocka_unit_test(test_footprint_counts_data_headers_and_tracker),
            cmocka_unit_test(test_dead_letter_cost),
            cmocka_unit_test(test_prefetch_steps_stay_inside),
            cmocka_unit_test(test_record_stays_small),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
