/*
 * test_ledger.c: the ledger of users the API may still be working on
 * (src/ledger.c): a user is busy while any request carrying it is on the
 * wire and until the end of the longest hold of a request whose answer never
 * came; answered requests leave nothing behind; entries (each in its user's
 * record, here a table of the test's) are apart, and one whose record goes
 * leaves the ledger; tags say which users a revocation must wait for; holds
 * expire exactly at their end, and the cached next expiry never lies late.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ledger.h"

static const uint64_t T1[] = {1}, T2[] = {2}, T12[] = {1, 2};

/* The user records the entries live in (the batcher's, in the bridge). */
static struct {
        int app;
        char id[32];
        lb_ledger_entry_t e;
} recs[1100];
static size_t nrecs;

static lb_ledger_entry_t *entry(int app, const char *id)
{
        for (size_t i = 0; i < nrecs; i++)
                if (recs[i].app == app && !strcmp(recs[i].id, id))
                        return &recs[i].e;
        assert_true(nrecs < sizeof(recs) / sizeof(recs[0]));
        recs[nrecs].app = app;
        snprintf(recs[nrecs].id, sizeof(recs[nrecs].id), "%s", id);
        memset(&recs[nrecs].e, 0, sizeof(recs[nrecs].e));
        return &recs[nrecs++].e;
}

static lb_ledger_t *ledger_new(void)
{
        nrecs = 0;
        return lb_ledger_new();
}

/* The records go with the ledger. */
static void ledger_destroy(lb_ledger_t *l)
{
        for (size_t i = 0; i < nrecs; i++)
                lb_ledger_forget(l, &recs[i].e);
        lb_ledger_destroy(l);
}

static int sent(lb_ledger_t *l, int app, const char *id, const uint64_t *t,
                size_t n)
{
        return lb_ledger_sent(l, entry(app, id), t, n);
}

static void answered(lb_ledger_t *l, int app, const char *id, int64_t hold,
                     int64_t now)
{
        lb_ledger_answered(l, entry(app, id), hold, now);
}

static int64_t until(const lb_ledger_t *l, int app, const char *id)
{
        return lb_ledger_until(l, entry(app, id));
}

static int match_eq(uint64_t tag, const void *arg)
{
        return tag == *(const uint64_t *)arg;
}

static void test_empty(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        assert_non_null(l);
        uint64_t t = 1;
        assert_int_equal(until(l, 0, "u"), 0);
        assert_int_equal(lb_ledger_busy(l, 0), 0);
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t), 0);
        assert_true(lb_ledger_next_expiry(l) == INT64_MAX);
        lb_ledger_expire(l, 100);
        answered(l, 0, "u", 0, 0); /* unknown: ignored */
        assert_int_equal(lb_ledger_busy(l, 0), 0);
        ledger_destroy(l);
        lb_ledger_destroy(NULL);
}

static void test_on_wire_then_answered(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        assert_int_equal(sent(l, 0, "u", T1, 1), 0);
        assert_true(until(l, 0, "u") == INT64_MAX);
        assert_int_equal(lb_ledger_busy(l, 10), 1);
        answered(l, 0, "u", 0, 10);
        assert_int_equal(until(l, 0, "u"), 0);
        assert_int_equal(lb_ledger_busy(l, 10), 0);
        ledger_destroy(l);
}

static void test_entries_apart_and_forgotten(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        assert_int_equal(sent(l, 0, "u", T1, 1), 0);
        assert_int_equal(until(l, 1, "u"), 0);
        assert_int_equal(until(l, 0, "v"), 0);
        assert_int_equal(sent(l, 1, "u", T1, 1), 0);
        assert_int_equal(sent(l, 0, "w", T2, 1), 0);
        answered(l, 0, "w", 500, 0); /* held */
        assert_int_equal(lb_ledger_busy(l, 0), 3);
        answered(l, 1, "u", 0, 0);
        assert_true(until(l, 0, "u") == INT64_MAX);
        assert_int_equal(until(l, 1, "u"), 0);
        /* a record that goes takes its entry out, busy or held */
        lb_ledger_forget(l, entry(0, "u"));
        lb_ledger_forget(l, entry(0, "w"));
        assert_int_equal(lb_ledger_busy(l, 0), 0);
        assert_true(lb_ledger_next_expiry(l) == INT64_MAX);
        assert_int_equal(until(l, 0, "u"), 0);
        ledger_destroy(l);
}

static void test_hold_until_its_end(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        sent(l, 0, "u", T1, 1);
        answered(l, 0, "u", 500, 100); /* timed out at 100, held to 500 */
        assert_int_equal(until(l, 0, "u"), 500);
        assert_int_equal(lb_ledger_busy(l, 499), 1);
        assert_int_equal(lb_ledger_busy(l, 500), 0);
        assert_int_equal(lb_ledger_next_expiry(l), 500);
        lb_ledger_expire(l, 499);
        assert_int_equal(until(l, 0, "u"), 500);
        lb_ledger_expire(l, 500);
        assert_int_equal(until(l, 0, "u"), 0);
        assert_true(lb_ledger_next_expiry(l) == INT64_MAX);
        ledger_destroy(l);
}

/* A hold already over when the answer is recorded leaves nothing. */
static void test_hold_in_the_past(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        sent(l, 0, "u", T1, 1);
        answered(l, 0, "u", 50, 100);
        assert_int_equal(until(l, 0, "u"), 0);
        assert_true(lb_ledger_next_expiry(l) == INT64_MAX);
        ledger_destroy(l);
}

/* Two requests carrying the same user (a given-up one still running and
 * or a retry): busy while either is on the wire, and
 * the longest hold wins whatever the order of the answers. */
static void test_two_requests_longest_hold(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        sent(l, 0, "u", T1, 1);
        sent(l, 0, "u", T1, 1);
        answered(l, 0, "u", 900, 100);
        assert_true(until(l, 0, "u") == INT64_MAX); /* one still on wire */
        answered(l, 0, "u", 0, 200);
        assert_int_equal(until(l, 0, "u"), 900);
        sent(l, 0, "u", T1, 1);
        answered(l, 0, "u", 400, 300); /* shorter: the longer stays */
        assert_int_equal(until(l, 0, "u"), 900);
        lb_ledger_expire(l, 899);
        assert_int_equal(lb_ledger_busy(l, 899), 1);
        lb_ledger_expire(l, 900);
        assert_int_equal(lb_ledger_busy(l, 900), 0);
        ledger_destroy(l);
}

/* A held user sent again (after its hold, by a retry) stays in until the
 * new request ends; more answers than sends are ignored. */
static void test_resend_after_hold(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        sent(l, 0, "u", T1, 1);
        answered(l, 0, "u", 300, 100);
        sent(l, 0, "u", T1, 1);
        lb_ledger_expire(l, 400);
        assert_true(until(l, 0, "u") == INT64_MAX);
        answered(l, 0, "u", 0, 500);
        assert_int_equal(until(l, 0, "u"), 0);
        answered(l, 0, "u", 0, 600);
        assert_int_equal(lb_ledger_busy(l, 600), 0);
        ledger_destroy(l);
}

static void test_tags(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        uint64_t one = 1, two = 2, three = 3;
        sent(l, 0, "a", T1, 1);
        sent(l, 0, "b", T12, 2);
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &one), 1);
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &two), 1);
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &three), 0);
        answered(l, 0, "b", 0, 10);
        assert_int_equal(lb_ledger_busy_tagged(l, 10, match_eq, &two), 0);
        assert_int_equal(lb_ledger_busy_tagged(l, 10, match_eq, &one), 1);
        answered(l, 0, "a", 100, 10); /* held: still busy for tag 1 */
        assert_int_equal(lb_ledger_busy_tagged(l, 99, match_eq, &one), 1);
        assert_int_equal(lb_ledger_busy_tagged(l, 100, match_eq, &one), 0);
        /* tags add up while the entry lives, without duplicates */
        sent(l, 0, "c", T1, 1);
        sent(l, 0, "c", T1, 1);
        sent(l, 0, "c", T2, 1);
        assert_int_equal(lb_ledger_busy_tagged(l, 100, match_eq, &two), 1);
        ledger_destroy(l);
}

/* A user's tags grow from the first (kept in its slot) to many, and stay
 * its own when slots move (a user going idle makes room with the last). */
static void test_tags_grow_and_move(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        const uint64_t many[] = {10, 11, 12, 13, 14}, last[] = {99};
        uint64_t t;
        sent(l, 0, "one", T2, 1);
        sent(l, 0, "grows", T1, 1);
        sent(l, 0, "grows", T12, 2); /* 1 known: only 2 added */
        sent(l, 0, "grows", many, 5);
        sent(l, 0, "last", last, 1);
        for (t = 1; t <= 14; t++)
                assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t),
                                 t <= 2 || t >= 10);
        answered(l, 0, "one", 0, 0); /* idle: "last" moves to its slot */
        t = 99;
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t), 1);
        for (int i = 0; i < 3; i++)
                answered(l, 0, "grows", 0, 0);
        for (t = 1; t <= 14; t++) /* only "last" is busy */
                assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t), 0);
        t = 99;
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t), 1);
        answered(l, 0, "last", 0, 0);
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t), 0);
        /* sent again, a user starts from no tags */
        sent(l, 0, "grows", T1, 1);
        t = 2;
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t), 0);
        t = 1;
        assert_int_equal(lb_ledger_busy_tagged(l, 0, match_eq, &t), 1);
        ledger_destroy(l);
}

/* Many users: holds expire in one pass at their ends, and the cached next
 * expiry is never after one. */
static void test_many(void **state)
{
        (void)state;
        lb_ledger_t *l = ledger_new();
        char id[32];
        for (int i = 0; i < 1000; i++) {
                snprintf(id, sizeof(id), "user-%d", i);
                assert_int_equal(sent(l, i % 3, id, T1, 1), 0);
        }
        assert_int_equal(lb_ledger_busy(l, 0), 1000);
        for (int i = 0; i < 1000; i++) {
                snprintf(id, sizeof(id), "user-%d", i);
                answered(l, i % 3, id, i % 2 ? 1000 + i : 0, 0);
        }
        assert_int_equal(lb_ledger_busy(l, 0), 500);
        assert_true(lb_ledger_next_expiry(l) <= 1001);
        lb_ledger_expire(l, 1500);
        assert_int_equal(lb_ledger_busy(l, 1500), 250);
        assert_true(lb_ledger_next_expiry(l) <= 1501);
        assert_true(lb_ledger_next_expiry(l) > 1500);
        for (int i = 0; i < 1000; i++) {
                snprintf(id, sizeof(id), "user-%d", i);
                int64_t want = i % 2 && 1000 + i > 1500 ? 1000 + i : 0;
                assert_int_equal(until(l, i % 3, id), want);
        }
        lb_ledger_expire(l, 2000);
        assert_int_equal(lb_ledger_busy(l, 2000), 0);
        assert_true(lb_ledger_next_expiry(l) == INT64_MAX);
        ledger_destroy(l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_on_wire_then_answered),
            cmocka_unit_test(test_entries_apart_and_forgotten),
            cmocka_unit_test(test_hold_until_its_end),
            cmocka_unit_test(test_hold_in_the_past),
            cmocka_unit_test(test_two_requests_longest_hold),
            cmocka_unit_test(test_resend_after_hold),
            cmocka_unit_test(test_tags),
            cmocka_unit_test(test_tags_grow_and_move),
            cmocka_unit_test(test_many),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
