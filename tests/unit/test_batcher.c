/*
 * test_batcher.c: the batcher (src/batcher.c): each request limit, the
 * packing rules (linger, full, overdue, flush) and their priority across
 * apps, per-user order and the busy gate, abandon by partition, the pending
 * counters and the deadline; a randomized property test of every bound; and
 * a billing comparison against a naive FIFO packer on a skewed stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "batcher.h"

/* Actions carry the user id as their key (so a batch can be read back) and
 * a per-user sequence number in their offset. */
static lb_action_t *mk(int app, const char *user, int64_t arrival,
                       size_t body_len, int64_t seq)
{
        lb_action_t *a = lb_action_new(user, strlen(user), "{}", 2);
        assert_non_null(a);
        a->app = app;
        a->arrival_ms = arrival;
        a->body_len = body_len;
        a->offset = seq;
        return a;
}

static void add(lb_batcher_t *b, int app, const char *user, int64_t arrival,
                size_t body_len, int64_t seq)
{
        lb_action_t *a = mk(app, user, arrival, body_len, seq);
        assert_int_equal(lb_batcher_add(b, a, user, strlen(user)), 0);
        assert_non_null(a->user);
}

static void add_n(lb_batcher_t *b, int app, const char *user, int64_t arrival,
                  size_t body_len, int n)
{
        for (int i = 0; i < n; i++)
                add(b, app, user, arrival, body_len, i);
}

static lb_batcher_t *mkb(size_t apps, const size_t *overhead, int64_t users,
                         int64_t actions, int64_t bytes, int64_t linger,
                         int64_t wait)
{
        lb_batcher_conf_t c = {
            .app_cnt = apps,
            .app_overhead = overhead,
            .max_users = users,
            .max_actions = actions,
            .max_bytes = bytes,
            .linger_ms = linger,
            .max_wait_ms = wait,
        };
        lb_batcher_t *b = lb_batcher_new(&c);
        assert_non_null(b);
        return b;
}

static size_t count_user(const lb_batch_t *bt, const char *user)
{
        size_t n = 0;
        for (size_t i = 0; i < bt->n; i++)
                n += strcmp(bt->actions[i]->key, user) == 0;
        return n;
}

/* The structural invariants every batch must meet. */
static void check_batch(const lb_batch_t *bt, size_t overhead, size_t max_users,
                        size_t max_actions, size_t max_bytes)
{
        assert_non_null(bt);
        assert_true(bt->n > 0 && bt->n <= max_actions);
        assert_true(bt->n_users > 0 && bt->n_users <= max_users);
        assert_true(bt->bytes <= max_bytes);
        size_t bytes = overhead;
        for (size_t i = 0; i < bt->n; i++) {
                const lb_action_t *a = bt->actions[i];
                assert_int_equal(a->app, bt->app);
                bytes += a->body_len;
                size_t j = 0;
                while (j < bt->n_users && bt->users[j] != a->user)
                        j++;
                assert_true(j < bt->n_users);
                /* A user's actions in consumed order within the batch. */
                for (size_t k = 0; k < i; k++)
                        if (bt->actions[k]->user == a->user)
                                assert_true(bt->actions[k]->offset < a->offset);
        }
        assert_int_equal(bytes, bt->bytes);
        for (size_t j = 0; j < bt->n_users; j++) {
                for (size_t k = 0; k < j; k++)
                        assert_ptr_not_equal(bt->users[j], bt->users[k]);
                size_t i = 0;
                while (i < bt->n && bt->actions[i]->user != bt->users[j])
                        i++;
                assert_true(i < bt->n);
        }
}

/* Destroys the batch's actions (the caller's job) and releases it. */
static void finish(lb_batcher_t *b, lb_batch_t *bt)
{
        for (size_t i = 0; i < bt->n; i++)
                lb_action_destroy(bt->actions[i]);
        lb_batcher_release(b, bt);
}

static void test_conf_rejected(void **state)
{
        (void)state;
        lb_batcher_conf_t ok = {.app_cnt = 1,
                                .max_users = 50,
                                .max_actions = 500,
                                .max_bytes = 1000,
                                .linger_ms = 10,
                                .max_wait_ms = 100};
        lb_batcher_t *b = lb_batcher_new(&ok);
        assert_non_null(b);
        lb_batcher_destroy(b, lb_action_destroy);
        lb_batcher_destroy(NULL, lb_action_destroy);
        assert_null(lb_batcher_new(NULL));
        lb_batcher_conf_t c = ok;
        c.app_cnt = 0;
        assert_null(lb_batcher_new(&c));
        c = ok;
        c.max_users = 0;
        assert_null(lb_batcher_new(&c));
        c = ok;
        c.max_actions = 0;
        assert_null(lb_batcher_new(&c));
        c = ok;
        c.max_bytes = 0;
        assert_null(lb_batcher_new(&c));
        c = ok;
        c.linger_ms = -1;
        assert_null(lb_batcher_new(&c));
        c = ok;
        c.max_wait_ms = -1;
        assert_null(lb_batcher_new(&c));
}

static void test_add_rejects(void **state)
{
        (void)state;
        const size_t ov[2] = {100, 2000};
        lb_batcher_t *b = mkb(2, ov, 50, 500, 1000, 10, 100);
        lb_action_t *a = mk(2, "u", 0, 10, 0);
        assert_int_equal(lb_batcher_add(b, a, "u", 1), -2);
        a->app = -1;
        assert_int_equal(lb_batcher_add(b, a, "u", 1), -2);
        a->app = 0;
        a->body_len = 901; /* 100 + 901 > 1000 */
        assert_int_equal(lb_batcher_add(b, a, "u", 1), -2);
        a->app = 1; /* overhead alone exceeds max_bytes */
        a->body_len = 1;
        assert_int_equal(lb_batcher_add(b, a, "u", 1), -2);
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        /* Exactly max_bytes: a request by itself, so it goes at once. */
        a->app = 0;
        a->body_len = 900;
        assert_int_equal(lb_batcher_add(b, a, "u", 1), 0);
        lb_batch_t *bt = lb_batcher_next(b, 0, 0);
        check_batch(bt, 100, 50, 500, 1000);
        assert_int_equal(bt->n, 1);
        assert_int_equal(bt->bytes, 1000);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_linger(void **state)
{
        (void)state;
        const size_t ov[1] = {10};
        lb_batcher_t *b = mkb(1, ov, 50, 500, 1 << 20, 100, 1000);
        add(b, 0, "A", 0, 20, 0);
        add(b, 0, "A", 10, 20, 1);
        add(b, 0, "A", 20, 20, 2);
        add(b, 0, "B", 50, 20, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 100);
        assert_null(lb_batcher_next(b, 0, 0));
        assert_null(lb_batcher_next(b, 99, 0));
        lb_batch_t *bt = lb_batcher_next(b, 100, 0);
        check_batch(bt, 10, 50, 500, 1 << 20);
        /* A lingered; B is taken along as company (the fill). */
        assert_int_equal(bt->n, 4);
        assert_int_equal(bt->n_users, 2);
        assert_string_equal(bt->actions[0]->key, "A");
        assert_int_equal(bt->actions[0]->offset, 0);
        assert_int_equal(bt->actions[2]->offset, 2);
        assert_string_equal(bt->actions[3]->key, "B");
        assert_int_equal(bt->bytes, 10 + 4 * 20);
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        assert_null(lb_batcher_next(b, 100, 0));
        finish(b, bt);
        assert_null(lb_batcher_next(b, 1000, 1));
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_linger_zero(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 0, 0);
        add(b, 0, "A", 5, 20, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 5);
        lb_batch_t *bt = lb_batcher_next(b, 5, 0);
        check_batch(bt, 0, 50, 500, 1 << 20);
        assert_int_equal(bt->n, 1);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_full_by_actions(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 5, 1 << 20, 1000, 5000);
        add_n(b, 0, "A", 0, 10, 4);
        assert_null(lb_batcher_next(b, 0, 0));
        add(b, 0, "B", 1, 10, 0);
        /* Five ready actions fill a request before linger. */
        lb_batch_t *bt = lb_batcher_next(b, 1, 0);
        check_batch(bt, 0, 50, 5, 1 << 20);
        assert_int_equal(bt->n, 5);
        assert_int_equal(count_user(bt, "A"), 4);
        assert_int_equal(count_user(bt, "B"), 1);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_one_user_over_max_actions(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 5, 1 << 20, 100, 1000);
        add_n(b, 0, "A", 0, 10, 12);
        lb_batch_t *bt = lb_batcher_next(b, 0, 0);
        check_batch(bt, 0, 50, 5, 1 << 20);
        assert_int_equal(bt->n, 5);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i);
        /* The leftover waits for the release, even when flushing. */
        assert_int_equal(lb_batcher_pending(b), 7);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        assert_null(lb_batcher_next(b, 5000, 1));
        add(b, 0, "A", 1, 10, 12); /* queued behind the busy user */
        assert_null(lb_batcher_next(b, 5000, 1));
        assert_int_equal(lb_batcher_pending(b), 8);
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), 100);
        bt = lb_batcher_next(b, 1, 0);
        check_batch(bt, 0, 50, 5, 1 << 20);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i + 5);
        finish(b, bt);
        /* Three left: not full, so they wait for linger. */
        assert_null(lb_batcher_next(b, 1, 0));
        bt = lb_batcher_next(b, 1, 1);
        check_batch(bt, 0, 50, 5, 1 << 20);
        assert_int_equal(bt->n, 3);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i + 10);
        finish(b, bt);
        assert_int_equal(lb_batcher_pending(b), 0);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_release_can_fill(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 10, 1 << 20, 1000, 5000);
        add_n(b, 0, "A", 0, 10, 12);
        lb_batch_t *bt = lb_batcher_next(b, 0, 0);
        check_batch(bt, 0, 50, 10, 1 << 20);
        add(b, 0, "B", 1, 10, 0);
        assert_null(lb_batcher_next(b, 1, 0)); /* 1 ready action */
        add_n(b, 0, "C", 1, 10, 7);
        assert_null(lb_batcher_next(b, 1, 0)); /* 8 ready actions */
        /* A's two leftover actions come back: 10 ready, a full request. */
        finish(b, bt);
        bt = lb_batcher_next(b, 1, 0);
        check_batch(bt, 0, 50, 10, 1 << 20);
        assert_int_equal(bt->n, 10);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_max_users(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 3, 500, 1 << 20, 10, 1000);
        char id[8];
        for (int i = 4; i >= 0; i--) {
                snprintf(id, sizeof(id), "u%d", i);
                add(b, 0, id, i, 10, 0);
        }
        assert_null(lb_batcher_next(b, 9, 0));
        lb_batch_t *bt = lb_batcher_next(b, 13, 0);
        check_batch(bt, 0, 3, 500, 1 << 20);
        /* u0..u3 lingered: the three oldest, oldest first. */
        assert_int_equal(bt->n_users, 3);
        assert_string_equal(bt->actions[0]->key, "u0");
        assert_string_equal(bt->actions[1]->key, "u1");
        assert_string_equal(bt->actions[2]->key, "u2");
        /* u3 lingered; u4 has not, but comes along as the fill. */
        lb_batch_t *bt2 = lb_batcher_next(b, 13, 0);
        check_batch(bt2, 0, 3, 500, 1 << 20);
        assert_int_equal(bt2->n_users, 2);
        assert_string_equal(bt2->actions[0]->key, "u3");
        assert_string_equal(bt2->actions[1]->key, "u4");
        finish(b, bt);
        finish(b, bt2);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_max_users_not_full(void **state)
{
        (void)state;
        /* Many single-action users: max_users is reached long before
         * max_actions, which is not "full": they wait for linger. */
        lb_batcher_t *b = mkb(1, NULL, 2, 3, 1 << 20, 50, 1000);
        add(b, 0, "a", 0, 10, 0);
        add(b, 0, "b", 0, 10, 0);
        add(b, 0, "c", 0, 10, 0);
        add(b, 0, "d", 0, 10, 0);
        assert_null(lb_batcher_next(b, 0, 0));
        lb_batch_t *bt = lb_batcher_next(b, 50, 0);
        check_batch(bt, 0, 2, 3, 1 << 20);
        assert_int_equal(bt->n_users, 2);
        finish(b, bt);
        bt = lb_batcher_next(b, 50, 0);
        check_batch(bt, 0, 2, 3, 1 << 20);
        finish(b, bt);
        assert_null(lb_batcher_next(b, 50, 1));
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_max_bytes(void **state)
{
        (void)state;
        const size_t ov[1] = {10};
        lb_batcher_t *b = mkb(1, ov, 50, 500, 100, 1000, 5000);
        add_n(b, 0, "A", 0, 30, 2);
        add(b, 0, "B", 0, 20, 0);
        assert_null(lb_batcher_next(b, 0, 0)); /* 10 + 80 < 100 */
        add(b, 0, "B", 0, 30, 1);
        lb_batch_t *bt = lb_batcher_next(b, 0, 0);
        check_batch(bt, 10, 50, 500, 100);
        /* A (2) first; B's first action still fits, its second not. */
        assert_int_equal(bt->bytes, 90);
        assert_int_equal(count_user(bt, "A"), 2);
        assert_int_equal(count_user(bt, "B"), 1);
        assert_int_equal(lb_batcher_pending(b), 1);
        assert_int_equal(lb_batcher_pending_bytes(b), 30);
        finish(b, bt);
        bt = lb_batcher_next(b, 0, 1);
        check_batch(bt, 10, 50, 500, 100);
        assert_int_equal(bt->actions[0]->offset, 1);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_nearly_full_action(void **state)
{
        (void)state;
        const size_t ov[1] = {100};
        lb_batcher_t *b = mkb(1, ov, 50, 500, 1000, 100, 1000);
        add(b, 0, "big", 0, 890, 0);
        add_n(b, 0, "small", 1, 20, 2);
        /* 100 + 890 + 40 > 1000: the heaviest (small) fills, big does not
         * fit after it, so the request is full without big. */
        lb_batch_t *bt = lb_batcher_next(b, 1, 0);
        check_batch(bt, 100, 50, 500, 1000);
        assert_int_equal(bt->n, 2);
        assert_int_equal(count_user(bt, "small"), 2);
        assert_int_equal(bt->bytes, 140);
        finish(b, bt);
        /* big alone (990 bytes) is not full: it waits for linger. */
        assert_null(lb_batcher_next(b, 1, 0));
        assert_int_equal(lb_batcher_next_deadline(b), 100);
        bt = lb_batcher_next(b, 100, 0);
        check_batch(bt, 100, 50, 500, 1000);
        assert_int_equal(bt->n, 1);
        assert_int_equal(bt->bytes, 990);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_full_prefers_heavy_users(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 10, 1 << 20, 1000, 5000);
        /* Interleaved arrivals: a FIFO packer would bill 7 users. */
        const char *order[] = {"c1", "A",  "c2", "A", "B",  "c3", "A", "B",
                               "A",  "c4", "B",  "A", "c5", "A",  "B"};
        int64_t seq_a = 0, seq_b = 0;
        for (int i = 0; i < 15; i++) {
                int64_t seq = 0;
                if (!strcmp(order[i], "A"))
                        seq = seq_a++;
                else if (!strcmp(order[i], "B"))
                        seq = seq_b++;
                add(b, 0, order[i], i, 10, seq);
        }
        lb_batch_t *bt = lb_batcher_next(b, 15, 0);
        check_batch(bt, 0, 50, 10, 1 << 20);
        assert_int_equal(bt->n, 10);
        assert_int_equal(bt->n_users, 2);
        assert_int_equal(count_user(bt, "A"), 6);
        assert_int_equal(count_user(bt, "B"), 4);
        assert_string_equal(bt->actions[0]->key, "A"); /* most pending */
        finish(b, bt);
        /* The five single-action users wait for company. */
        assert_null(lb_batcher_next(b, 15, 0));
        assert_int_equal(lb_batcher_pending(b), 5);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_overdue_first(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 3, 500, 1 << 20, 100, 1000);
        add(b, 0, "O1", 5, 10, 0);
        add(b, 0, "O2", 0, 10, 0);
        add_n(b, 0, "S", 900, 10, 1); /* lingered, light */
        add_n(b, 0, "H", 950, 10, 5); /* not lingered, heavy */
        lb_batch_t *bt = lb_batcher_next(b, 1005, 0);
        check_batch(bt, 0, 3, 500, 1 << 20);
        /* Overdue oldest first, then the heaviest (H, not S). */
        assert_int_equal(bt->n_users, 3);
        assert_string_equal(bt->actions[0]->key, "O2");
        assert_string_equal(bt->actions[1]->key, "O1");
        assert_int_equal(count_user(bt, "H"), 5);
        assert_int_equal(count_user(bt, "S"), 0);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_overdue_beats_full_across_apps(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 4, 1 << 20, 100, 1000);
        add_n(b, 0, "F", 999, 10, 4); /* app 0: a full request */
        add(b, 1, "O", 0, 10, 0);     /* app 1: overdue */
        /* App 0 would go first by rotation; rule 1 outranks rule 2. */
        lb_batch_t *bt = lb_batcher_next(b, 1000, 0);
        check_batch(bt, 0, 50, 4, 1 << 20);
        assert_int_equal(bt->app, 1);
        assert_string_equal(bt->actions[0]->key, "O");
        lb_batch_t *bt2 = lb_batcher_next(b, 1000, 0);
        check_batch(bt2, 0, 50, 4, 1 << 20);
        assert_int_equal(bt2->app, 0);
        assert_int_equal(bt2->n, 4);
        assert_null(lb_batcher_next(b, 1000, 1));
        finish(b, bt);
        finish(b, bt2);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_full_beats_linger_across_apps(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 4, 1 << 20, 100, 1000);
        add(b, 0, "L", 0, 10, 0);     /* app 0: lingered */
        add_n(b, 1, "F", 500, 10, 4); /* app 1: full */
        lb_batch_t *bt = lb_batcher_next(b, 500, 0);
        check_batch(bt, 0, 50, 4, 1 << 20);
        assert_int_equal(bt->app, 1);
        lb_batch_t *bt2 = lb_batcher_next(b, 500, 0);
        check_batch(bt2, 0, 50, 4, 1 << 20);
        assert_int_equal(bt2->app, 0);
        finish(b, bt);
        finish(b, bt2);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_linger_then_fill(void **state)
{
        (void)state;
        /* Rule 3: the lingered users first (oldest first), then the fill
         * by most pending, even ahead of lingered-but-lighter order. */
        lb_batcher_t *b = mkb(1, NULL, 3, 500, 1 << 20, 100, 1000);
        add(b, 0, "late1", 50, 10, 0);
        add(b, 0, "old", 0, 10, 0);
        add_n(b, 0, "heavy", 60, 10, 3);
        add(b, 0, "mid", 10, 10, 0);
        lb_batch_t *bt = lb_batcher_next(b, 110, 0);
        check_batch(bt, 0, 3, 500, 1 << 20);
        assert_int_equal(bt->n_users, 3);
        assert_string_equal(bt->actions[0]->key, "old");
        assert_string_equal(bt->actions[1]->key, "mid");
        assert_int_equal(count_user(bt, "heavy"), 3);
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), 150);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_rotation(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(3, NULL, 50, 2, 1 << 20, 100, 1000);
        char id[8];
        for (int app = 0; app < 3; app++)
                for (int u = 0; u < 3; u++) {
                        snprintf(id, sizeof(id), "u%d", u);
                        add_n(b, app, id, 0, 10, 2);
                }
        /* Every app has three full requests; they take turns. */
        for (int i = 0; i < 9; i++) {
                lb_batch_t *bt = lb_batcher_next(b, 0, 0);
                check_batch(bt, 0, 50, 2, 1 << 20);
                assert_int_equal(bt->app, i % 3);
                assert_int_equal(bt->n_users, 1);
                finish(b, bt);
        }
        assert_null(lb_batcher_next(b, 0, 1));
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_busy_gate(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 10, 100);
        add(b, 0, "A", 0, 10, 0);
        add(b, 0, "B", 2, 10, 0);
        lb_batch_t *bt = lb_batcher_next(b, 0, 1);
        check_batch(bt, 0, 50, 500, 1 << 20);
        assert_int_equal(bt->n_users, 2);
        add(b, 0, "A", 5, 10, 1);
        add(b, 0, "B", 3, 10, 1);
        add(b, 0, "C", 4, 10, 0);
        /* A and B are in flight: only C is ready. */
        assert_int_equal(lb_batcher_next_deadline(b), 14);
        lb_batch_t *bt2 = lb_batcher_next(b, 1000, 1);
        check_batch(bt2, 0, 50, 500, 1 << 20);
        assert_int_equal(bt2->n, 1);
        assert_string_equal(bt2->actions[0]->key, "C");
        assert_null(lb_batcher_next(b, 1000, 1));
        finish(b, bt2);
        finish(b, bt);
        /* Back in the ready set, keyed by their oldest queued action. */
        assert_int_equal(lb_batcher_next_deadline(b), 13);
        bt = lb_batcher_next(b, 13, 0);
        check_batch(bt, 0, 50, 500, 1 << 20);
        assert_string_equal(bt->actions[0]->key, "B");
        assert_int_equal(bt->actions[0]->offset, 1);
        assert_int_equal(bt->n, 2);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_flush(void **state)
{
        (void)state;
        const size_t ov[3] = {5, 6, 7};
        lb_batcher_t *b = mkb(3, ov, 4, 7, 200, 100000, 100000);
        char id[8];
        size_t added = 0;
        for (int i = 0; i < 300; i++) {
                snprintf(id, sizeof(id), "u%d", i % 17);
                add(b, i % 3, id, i, 1 + (size_t)(i % 13), i);
                added++;
        }
        size_t out = 0;
        lb_batch_t *bt;
        while ((bt = lb_batcher_next(b, 300, 1)) != NULL) {
                check_batch(bt, ov[bt->app], 4, 7, 200);
                out += bt->n;
                finish(b, bt);
        }
        assert_int_equal(out, added);
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(lb_batcher_pending_bytes(b), 0);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_pending_counters(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 3, 1 << 20, 100, 1000);
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(lb_batcher_pending_bytes(b), 0);
        add(b, 0, "A", 0, 11, 0);
        add(b, 0, "A", 0, 12, 1);
        add(b, 1, "A", 0, 13, 0); /* same id, other app: another user */
        add(b, 0, "A", 0, 14, 2);
        add(b, 0, "A", 0, 15, 3);
        assert_int_equal(lb_batcher_pending(b), 5);
        assert_int_equal(lb_batcher_pending_bytes(b), 65);
        lb_batch_t *bt = lb_batcher_next(b, 0, 0);
        check_batch(bt, 0, 50, 3, 1 << 20);
        assert_int_equal(bt->app, 0);
        assert_int_equal(bt->n, 3);
        assert_int_equal(lb_batcher_pending(b), 2);
        assert_int_equal(lb_batcher_pending_bytes(b), 28);
        finish(b, bt);
        assert_int_equal(lb_batcher_pending(b), 2);
        lb_batcher_destroy(b, lb_action_destroy); /* frees queued ones */
}

static void test_deadline(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 500, 1 << 20, 100, 1000);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        add(b, 0, "x", 50, 10, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 150);
        add(b, 1, "y", 30, 10, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 130);
        add(b, 0, "x", 10, 10, 1); /* not the oldest of x: no change */
        assert_int_equal(lb_batcher_next_deadline(b), 130);
        lb_batch_t *bt = lb_batcher_next(b, 130, 0);
        check_batch(bt, 0, 50, 500, 1 << 20);
        assert_int_equal(bt->app, 1);
        assert_int_equal(lb_batcher_next_deadline(b), 150);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);

        /* A max wait shorter than linger bounds the deadline. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 100, 60);
        add(b, 0, "x", 50, 10, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 110);
        assert_null(lb_batcher_next(b, 109, 0));
        bt = lb_batcher_next(b, 110, 0);
        check_batch(bt, 0, 50, 500, 1 << 20);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static size_t dropped;

static void drop_cb(lb_action_t *a, void *opaque)
{
        assert_ptr_equal(a->partition, opaque);
        assert_null(a->user);
        dropped++;
        lb_action_destroy(a);
}

static void add_p(lb_batcher_t *b, const char *user, int64_t arrival,
                  int64_t seq, lb_partition_t *p)
{
        lb_action_t *a = mk(0, user, arrival, 10, seq);
        a->partition = p;
        assert_int_equal(lb_batcher_add(b, a, user, strlen(user)), 0);
}

static void test_abandon(void **state)
{
        (void)state;
        lb_partition_t *p1 = lb_partition_new("t", 1);
        lb_partition_t *p2 = lb_partition_new("t", 2);
        lb_batcher_t *b = mkb(1, NULL, 50, 3, 1 << 20, 100, 1000);
        /* U4 in flight with two p1 actions left over. */
        add_p(b, "U4", 0, 0, p2);
        add_p(b, "U4", 0, 1, p2);
        add_p(b, "U4", 0, 2, p2);
        add_p(b, "U4", 0, 3, p1);
        add_p(b, "U4", 0, 4, p1);
        lb_batch_t *inflight = lb_batcher_next(b, 0, 0);
        check_batch(inflight, 0, 50, 3, 1 << 20);
        assert_int_equal(inflight->n, 3);
        add_p(b, "U1", 10, 0, p1);
        add_p(b, "U1", 11, 1, p2);
        add_p(b, "U1", 12, 2, p1);
        add_p(b, "U1", 13, 3, p2);
        add_p(b, "U2", 5, 0, p1);
        add_p(b, "U2", 6, 1, p1);
        add_p(b, "U3", 20, 0, p2);
        assert_int_equal(lb_batcher_pending(b), 9);
        assert_int_equal(lb_batcher_next_deadline(b), 105);

        dropped = 0;
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 6);
        assert_int_equal(dropped, 6);
        assert_int_equal(lb_batcher_pending(b), 3);
        assert_int_equal(lb_batcher_pending_bytes(b), 30);
        /* U2 is gone; U1's oldest is now its arrival-11 action. */
        assert_int_equal(lb_batcher_next_deadline(b), 111);
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 0);

        /* U4 (busy, nothing left) is freed by the release. */
        finish(b, inflight);
        lb_batch_t *bt = lb_batcher_next(b, 111, 0);
        check_batch(bt, 0, 50, 3, 1 << 20);
        assert_int_equal(bt->n, 3);
        assert_int_equal(count_user(bt, "U1"), 2);
        assert_int_equal(count_user(bt, "U3"), 1);
        for (size_t i = 0; i < bt->n; i++)
                assert_ptr_equal(bt->actions[i]->partition, p2);
        assert_string_equal(bt->actions[0]->key, "U1");
        assert_int_equal(bt->actions[0]->offset, 1);
        assert_int_equal(bt->actions[1]->offset, 3);
        finish(b, bt);
        assert_int_equal(lb_batcher_pending(b), 0);

        /* A user removed by abandon can come back. */
        add_p(b, "U2", 200, 7, p1);
        assert_int_equal(lb_batcher_pending(b), 1);
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 1);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        lb_batcher_destroy(b, lb_action_destroy);
        lb_partition_unref(p1);
        lb_partition_unref(p2);
}

static void test_abandon_busy_user_keeps_rest(void **state)
{
        (void)state;
        lb_partition_t *p1 = lb_partition_new("t", 1);
        lb_partition_t *p2 = lb_partition_new("t", 2);
        lb_batcher_t *b = mkb(1, NULL, 50, 1, 1 << 20, 100, 1000);
        add_p(b, "U", 0, 0, p2);
        add_p(b, "U", 1, 1, p1);
        add_p(b, "U", 2, 2, p2);
        lb_batch_t *bt = lb_batcher_next(b, 0, 0);
        check_batch(bt, 0, 50, 1, 1 << 20);
        dropped = 0;
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 1);
        assert_int_equal(lb_batcher_pending(b), 1);
        assert_null(lb_batcher_next(b, 1000, 1)); /* still busy */
        finish(b, bt);
        bt = lb_batcher_next(b, 1000, 0);
        check_batch(bt, 0, 50, 1, 1 << 20);
        assert_int_equal(bt->actions[0]->offset, 2);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
        lb_partition_unref(p1);
        lb_partition_unref(p2);
}

static void test_many_users_table_growth(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 500, 1 << 20, 10, 100);
        char id[16];
        for (int i = 0; i < 20000; i++) {
                snprintf(id, sizeof(id), "user-%d", i % 5000);
                add(b, i % 2, id, i / 100, 10, i);
        }
        assert_int_equal(lb_batcher_pending(b), 20000);
        size_t out = 0, batches = 0;
        lb_batch_t *bt;
        while ((bt = lb_batcher_next(b, 1000, 0)) != NULL) {
                check_batch(bt, 0, 50, 500, 1 << 20);
                out += bt->n;
                batches++;
                finish(b, bt);
        }
        assert_int_equal(out, 20000);
        /* 5000 (app, user) pairs with 4 actions each: 100 full batches. */
        assert_int_equal(batches, 100);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* ---- randomized property test ---------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static size_t rndn(size_t n)
{
        return (size_t)(rnd() % n);
}

enum { QUEUED, OUT, ABANDONED };

typedef struct {
        size_t user;
        int64_t seq;
        int64_t arrival;
        size_t part;
        size_t body_len;
        uint64_t added_at; /* op counter */
        int state;
} mact_t;

typedef struct {
        int app;
        char id[24];
        size_t *gids; /* by seq */
        size_t n_seq;
        int64_t next_check; /* lowest seq not yet out or abandoned */
        size_t queued;
        int busy;
        uint64_t stamp; /* last batch it was seen in */
} muser_t;

typedef struct {
        mact_t *acts;
        size_t n_acts, cap_acts;
        muser_t *users;
        size_t n_users;
        lb_partition_t *parts[3];
        uint64_t abandoned_at[3];
        uint64_t ops;
        size_t queued, queued_bytes, out, abandoned, batches;
} model_t;

typedef struct {
        lb_batch_t *bt;
        int64_t release_at;
} held_t;

static void model_drop(lb_action_t *a, void *opaque)
{
        model_t *m = opaque;
        mact_t *ma = &m->acts[strtoul(a->value, NULL, 10)];
        assert_int_equal(ma->state, QUEUED);
        assert_ptr_equal(a->partition, m->parts[ma->part]);
        ma->state = ABANDONED;
        m->users[ma->user].queued--;
        m->queued--;
        m->queued_bytes -= ma->body_len;
        m->abandoned++;
        lb_action_destroy(a);
}

static void model_add(model_t *m, lb_batcher_t *b, size_t user, int64_t arrival,
                      size_t body_len)
{
        if (m->n_acts == m->cap_acts) {
                m->cap_acts = m->cap_acts ? m->cap_acts * 2 : 1024;
                m->acts = realloc(m->acts, m->cap_acts * sizeof(*m->acts));
                assert_non_null(m->acts);
        }
        muser_t *u = &m->users[user];
        size_t gid = m->n_acts++;
        mact_t *ma = &m->acts[gid];
        ma->user = user;
        ma->seq = (int64_t)u->n_seq;
        ma->arrival = arrival;
        ma->part = rndn(3);
        ma->body_len = body_len;
        ma->added_at = ++m->ops;
        ma->state = QUEUED;
        u->gids = realloc(u->gids, (u->n_seq + 1) * sizeof(*u->gids));
        assert_non_null(u->gids);
        u->gids[u->n_seq++] = gid;

        char val[24];
        snprintf(val, sizeof(val), "%zu", gid);
        lb_action_t *a = lb_action_new(u->id, strlen(u->id), val, strlen(val));
        assert_non_null(a);
        a->app = u->app;
        a->arrival_ms = arrival;
        a->body_len = body_len;
        a->offset = ma->seq;
        a->partition = m->parts[ma->part];
        assert_int_equal(lb_batcher_add(b, a, u->id, strlen(u->id)), 0);
        u->queued++;
        m->queued++;
        m->queued_bytes += body_len;
}

typedef struct {
        size_t apps, overhead[4];
        size_t max_users, max_actions, max_bytes, max_body;
        int64_t linger, wait;
} pconf_t;

/* Checks a batch against the model and the bounds; marks its users busy. */
static void model_batch(model_t *m, const pconf_t *c, const lb_batch_t *bt,
                        int64_t now, int flush, int immediate)
{
        check_batch(bt, c->overhead[bt->app], c->max_users, c->max_actions,
                    c->max_bytes);
        uint64_t stamp = ++m->ops;
        m->batches++;
        int lingered = 0;
        for (size_t i = 0; i < bt->n; i++) {
                const lb_action_t *a = bt->actions[i];
                mact_t *ma = &m->acts[strtoul(a->value, NULL, 10)];
                muser_t *u = &m->users[ma->user];
                assert_int_equal(u->app, bt->app);
                assert_int_equal(ma->state, QUEUED);
                /* Not queued when its partition was abandoned. */
                assert_true(ma->added_at > m->abandoned_at[ma->part]);
                /* Per-user order: everything before it is resolved. */
                for (int64_t s = u->next_check; s < ma->seq; s++)
                        assert_int_equal(m->acts[u->gids[s]].state, ABANDONED);
                u->next_check = ma->seq + 1;
                if (u->stamp != stamp) {
                        assert_false(u->busy); /* one unreleased batch */
                        u->busy = 1;
                        u->stamp = stamp;
                }
                ma->state = OUT;
                u->queued--;
                m->queued--;
                m->queued_bytes -= ma->body_len;
                m->out++;
                if (now - ma->arrival >= c->linger ||
                    now - ma->arrival >= c->wait)
                        lingered = 1;
                if (immediate)
                        assert_true(now - ma->arrival <= c->wait);
        }
        /* Nothing leaves before linger unless the request is full. */
        if (!flush && !lingered)
                assert_true(bt->n == c->max_actions ||
                            bt->bytes + c->max_body > c->max_bytes);
}

static void model_release(model_t *m, lb_batcher_t *b, lb_batch_t *bt)
{
        for (size_t i = 0; i < bt->n; i++) {
                const lb_action_t *a = bt->actions[i];
                m->users[m->acts[strtoul(a->value, NULL, 10)].user].busy = 0;
        }
        finish(b, bt);
}

/* Totals over the seeds of one test, printed as its summary. */
static size_t tot_actions, tot_batches, tot_abandoned;

/* @returns whether the max_users heaviest queued users of some app hold
 * max_actions actions: a request next() should have sent (rule 2). */
static int model_any_full(const model_t *m, const pconf_t *c)
{
        for (size_t app = 0; app < c->apps; app++) {
                size_t top[8] = {0}; /* descending; max_users <= 6 */
                for (size_t i = 0; i < m->n_users; i++) {
                        if (m->users[i].app != (int)app)
                                continue;
                        size_t q = m->users[i].queued, k = c->max_users;
                        while (k > 0 && top[k - 1] < q) {
                                if (k < c->max_users)
                                        top[k] = top[k - 1];
                                k--;
                        }
                        if (k < c->max_users)
                                top[k] = q;
                }
                size_t sum = 0;
                for (size_t k = 0; k < c->max_users; k++)
                        sum += top[k];
                if (sum >= c->max_actions)
                        return 1;
        }
        return 0;
}

static void run_property(uint64_t seed, int immediate)
{
        rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
        pconf_t c = {0};
        c.apps = 1 + rndn(4);
        size_t max_ov = 0;
        for (size_t i = 0; i < c.apps; i++) {
                c.overhead[i] = rndn(50);
                if (c.overhead[i] > max_ov)
                        max_ov = c.overhead[i];
        }
        c.max_users = 1 + rndn(6);
        c.max_actions = 1 + rndn(20);
        c.max_bytes = max_ov + 60 + rndn(400);
        c.max_body = c.max_bytes - max_ov < 80 ? c.max_bytes - max_ov : 80;
        c.linger = (int64_t)rndn(20);
        /* Usually wait >= linger; sometimes a shorter max wait rules. */
        c.wait = rndn(5) == 0 ? (int64_t)rndn((size_t)c.linger + 1)
                              : c.linger + (int64_t)rndn(30);
        lb_batcher_t *b =
            mkb(c.apps, c.overhead, (int64_t)c.max_users,
                (int64_t)c.max_actions, (int64_t)c.max_bytes, c.linger, c.wait);

        model_t m = {0};
        m.n_users = 1 + rndn(40);
        m.users = calloc(m.n_users, sizeof(*m.users));
        assert_non_null(m.users);
        for (size_t i = 0; i < m.n_users; i++) {
                m.users[i].app = (int)rndn(c.apps);
                snprintf(m.users[i].id, sizeof(m.users[i].id), "u%zu", i);
        }
        for (int i = 0; i < 3; i++)
                m.parts[i] = lb_partition_new("t", i);

        held_t held[4];
        size_t n_held = 0, max_held = immediate ? 0 : 1 + rndn(4);
        size_t rate = 1 + rndn(6);
        size_t oldest = 0; /* scan position for the oldest queued action */
        for (int64_t t = 0; t < 2000; t++) {
                size_t n_add = rndn(rate + 1);
                for (size_t k = 0; k < n_add; k++) {
                        /* Skewed: low user indexes are much more active. */
                        size_t r = rndn(m.n_users);
                        size_t user = r * rndn(m.n_users) / m.n_users;
                        model_add(&m, b, user, t, 1 + rndn(c.max_body));
                }
                if (rndn(400) == 0) {
                        size_t p = rndn(3);
                        m.abandoned_at[p] = ++m.ops;
                        size_t before = m.abandoned;
                        size_t n =
                            lb_batcher_abandon(b, m.parts[p], model_drop, &m);
                        assert_int_equal(n, m.abandoned - before);
                }
                for (size_t i = 0; i < n_held;) {
                        if (held[i].release_at <= t) {
                                model_release(&m, b, held[i].bt);
                                held[i] = held[--n_held];
                        } else {
                                i++;
                        }
                }
                lb_batch_t *bt;
                while ((immediate || n_held < max_held) &&
                       (bt = lb_batcher_next(b, t, 0)) != NULL) {
                        model_batch(&m, &c, bt, t, 0, immediate);
                        if (immediate) {
                                model_release(&m, b, bt);
                        } else {
                                held[n_held].bt = bt;
                                held[n_held++].release_at =
                                    t + (int64_t)rndn(10);
                        }
                }
                assert_int_equal(lb_batcher_pending(b), m.queued);
                assert_int_equal(lb_batcher_pending_bytes(b), m.queued_bytes);
                if (immediate) {
                        /* Drained: the deadline is the oldest queued
                         * action's linger (every user is ready). */
                        while (oldest < m.n_acts &&
                               m.acts[oldest].state != QUEUED)
                                oldest++;
                        int64_t w = c.linger < c.wait ? c.linger : c.wait;
                        int64_t want = oldest < m.n_acts
                                           ? m.acts[oldest].arrival + w
                                           : INT64_MAX;
                        assert_int_equal(lb_batcher_next_deadline(b), want);
                        assert_true(want > t);
                        assert_false(model_any_full(&m, &c));
                }
        }
        while (n_held > 0)
                model_release(&m, b, held[--n_held].bt);
        lb_batch_t *bt;
        while ((bt = lb_batcher_next(b, 2000, 1)) != NULL) {
                model_batch(&m, &c, bt, 2000, 1, 0);
                model_release(&m, b, bt);
        }
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(m.queued, 0);
        assert_int_equal(m.out + m.abandoned, m.n_acts);
        for (size_t i = 0; i < m.n_acts; i++)
                assert_int_not_equal(m.acts[i].state, QUEUED);
        lb_batcher_destroy(b, lb_action_destroy);
        for (size_t i = 0; i < m.n_users; i++)
                free(m.users[i].gids);
        free(m.users);
        tot_actions += m.n_acts;
        tot_batches += m.batches;
        tot_abandoned += m.abandoned;
        free(m.acts);
        for (int i = 0; i < 3; i++)
                lb_partition_unref(m.parts[i]);
}

static void print_summary(void)
{
        print_message("property: %zu actions, %zu batches, %zu abandoned\n",
                      tot_actions, tot_batches, tot_abandoned);
        tot_actions = tot_batches = tot_abandoned = 0;
}

static void test_property_with_capacity(void **state)
{
        (void)state;
        for (uint64_t seed = 1; seed <= 60; seed++)
                run_property(seed, 1);
        print_summary();
}

static void test_property_limited_inflight(void **state)
{
        (void)state;
        for (uint64_t seed = 1000; seed <= 1060; seed++)
                run_property(seed, 0);
        print_summary();
}

/* ---- billing comparison ---------------------------------------------- */

typedef struct {
        int64_t arrival;
        unsigned user;
} ev_t;

/* Closes batches in arrival order: when the next action would break a
 * limit, or linger after the batch's first action. */
static size_t fifo_pairs(const ev_t *evs, size_t n, size_t max_users,
                         size_t max_actions, int64_t linger)
{
        unsigned users[64];
        size_t n_users = 0, n_actions = 0, pairs = 0;
        int64_t first = 0;
        for (size_t i = 0; i < n; i++) {
                if (n_actions && evs[i].arrival >= first + linger) {
                        pairs += n_users;
                        n_users = n_actions = 0;
                }
                size_t j = 0;
                while (j < n_users && users[j] != evs[i].user)
                        j++;
                if (n_actions == max_actions ||
                    (j == n_users && n_users == max_users)) {
                        pairs += n_users;
                        n_users = n_actions = 0;
                        j = 0;
                }
                if (n_actions == 0)
                        first = evs[i].arrival;
                if (j == n_users)
                        users[n_users++] = evs[i].user;
                n_actions++;
        }
        return pairs + n_users;
}

static void test_billing_vs_fifo(void **state)
{
        (void)state;
        enum { N = 60000, USERS = 5000 };
        const int64_t linger = 500;
        ev_t *evs = malloc(N * sizeof(*evs));
        assert_non_null(evs);
        rng_state = 42;
        for (size_t i = 0; i < N; i++) {
                /* ~12 events/ms; user rank skewed like r^3 (a heavy head and
                 * a long tail of rare users). */
                double r = (double)(rnd() % 1000000) / 1000000.0;
                evs[i].arrival = (int64_t)(i / 12);
                evs[i].user = (unsigned)(USERS * r * r * r);
        }
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, linger, 5 * linger);
        size_t pairs = 0, actions = 0, i = 0;
        char id[16];
        lb_batch_t *bt;
        for (int64_t t = 0; i < N || lb_batcher_pending(b) > 0; t++) {
                for (; i < N && evs[i].arrival == t; i++) {
                        snprintf(id, sizeof(id), "u%u", evs[i].user);
                        add(b, 0, id, t, 100, (int64_t)i);
                }
                while ((bt = lb_batcher_next(b, t, 0)) != NULL) {
                        check_batch(bt, 0, 50, 500, 1 << 20);
                        for (size_t k = 0; k < bt->n; k++)
                                assert_true(t - bt->actions[k]->arrival_ms <=
                                            5 * linger);
                        pairs += bt->n_users;
                        actions += bt->n;
                        finish(b, bt);
                }
        }
        assert_int_equal(actions, N);
        size_t fifo = fifo_pairs(evs, N, 50, 500, linger);
        print_message("billing: %zu lookups (%.3f per action) vs FIFO %zu "
                      "(%.3f per action), ratio %.2f\n",
                      pairs, (double)pairs / N, fifo, (double)fifo / N,
                      (double)pairs / (double)fifo);
        assert_true(pairs < fifo);
        lb_batcher_destroy(b, lb_action_destroy);
        free(evs);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_conf_rejected),
            cmocka_unit_test(test_add_rejects),
            cmocka_unit_test(test_linger),
            cmocka_unit_test(test_linger_zero),
            cmocka_unit_test(test_full_by_actions),
            cmocka_unit_test(test_one_user_over_max_actions),
            cmocka_unit_test(test_release_can_fill),
            cmocka_unit_test(test_max_users),
            cmocka_unit_test(test_max_users_not_full),
            cmocka_unit_test(test_max_bytes),
            cmocka_unit_test(test_nearly_full_action),
            cmocka_unit_test(test_full_prefers_heavy_users),
            cmocka_unit_test(test_overdue_first),
            cmocka_unit_test(test_overdue_beats_full_across_apps),
            cmocka_unit_test(test_full_beats_linger_across_apps),
            cmocka_unit_test(test_linger_then_fill),
            cmocka_unit_test(test_rotation),
            cmocka_unit_test(test_busy_gate),
            cmocka_unit_test(test_flush),
            cmocka_unit_test(test_pending_counters),
            cmocka_unit_test(test_deadline),
            cmocka_unit_test(test_abandon),
            cmocka_unit_test(test_abandon_busy_user_keeps_rest),
            cmocka_unit_test(test_many_users_table_growth),
            cmocka_unit_test(test_property_with_capacity),
            cmocka_unit_test(test_property_limited_inflight),
            cmocka_unit_test(test_billing_vs_fifo),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
