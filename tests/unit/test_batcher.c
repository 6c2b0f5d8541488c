/*
 * test_batcher.c: the batcher (src/batcher.c) and its packing policy
 * (batcher.h). lb_batcher_due_ms (the budget counts from the Kafka write
 * time, floor linger_ms, ceiling max_wait_ms, negative age as 0, linger
 * clamped to max_wait) and the deadlines add() gives (never decreasing
 * along a user's queue); the rules: DUE (nothing leaves before the earliest
 * deadline; due users earliest deadline first across apps; top-up only with
 * users due within the gather horizon min(linger, max_wait / 10), each
 * taken whole, as splitting it would bill it twice), FULL (a user that
 * fills a request alone, by actions or by bytes), MEMORY (the early
 * budget, whole users, earliest deadline first) and flush (shutdown,
 * revocation), each batch's reason and the reasons' names; every request
 * limit, per-user order and the busy gate, abandon by partition, the
 * pending counters, next_deadline and table growth. Property tests against
 * a reference model: randomized streams with and without in-flight limits
 * check every bound, per-user order, the busy gate, each batch's reason and
 * the EDF order across apps at every call, and, when the API has room, that
 * no action is held past its deadline; event-driven streams check that a
 * user whose actions arrive within one window is sent exactly once. Last, a
 * billing comparison against a FIFO packer on a skewed stream.
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
#include "arena.h"

/* The arena every action of this test lives in (reachable: no leak). */
static lb_arena_t *arena(void)
{
        static lb_arena_t *a;
        if (!a)
                a = lb_arena_new();
        return a;
}

/* The limits of the batcher last made by mkb(), for check_batch(). */
static struct {
        size_t apps;
        size_t ov[1000];
        size_t users, actions, bytes;
} lim;

/* Actions carry the user id as their key (so a batch can be read back) and
 * a per-user sequence number in their offset. */
static lb_action_t *mk(int app, const char *user, int64_t arrival,
                       size_t body_len, int64_t seq)
{
        lb_action_t *a = lb_action_new(arena(), user, strlen(user), "{}", 2);
        assert_non_null(a);
        a->app = app;
        a->arrival_ms = arrival;
        a->body_len = body_len;
        a->offset = seq;
        return a;
}

/* Queues an action written to Kafka age ms before its arrival. */
static lb_action_t *add_age(lb_batcher_t *b, int app, const char *user,
                            int64_t arrival, size_t body_len, int64_t seq,
                            int64_t age)
{
        lb_action_t *a = mk(app, user, arrival, body_len, seq);
        assert_int_equal(lb_batcher_add(b, a, user, strlen(user), age), 0);
        return a;
}

static lb_action_t *add(lb_batcher_t *b, int app, const char *user,
                        int64_t arrival, size_t body_len, int64_t seq)
{
        return add_age(b, app, user, arrival, body_len, seq, 0);
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
        assert_true(apps <= 1000);
        lim.apps = apps;
        for (size_t i = 0; i < apps; i++)
                lim.ov[i] = overhead ? overhead[i] : 0;
        lim.users = (size_t)users;
        lim.actions = (size_t)actions;
        lim.bytes = (size_t)bytes;
        return b;
}

static size_t count_user(const lb_batch_t *bt, const char *user)
{
        size_t n = 0;
        for (size_t i = 0; i < bt->n; i++)
                n += strcmp(lb_action_key(bt->actions[i]), user) == 0;
        return n;
}

/* @returns the batch's users in batch->users order, as "A,B,C". */
static const char *users_of(const lb_batch_t *bt)
{
        static char buf[512];
        size_t len = 0;
        buf[0] = '\0';
        for (size_t j = 0; j < bt->n_users; j++) {
                size_t i = 0;
                while (i < bt->n && lb_batch_user(bt, i) != bt->users[j])
                        i++;
                assert_true(i < bt->n);
                int w = snprintf(buf + len, sizeof(buf) - len, "%s%s",
                                 j ? "," : "", lb_action_key(bt->actions[i]));
                assert_true(w > 0 && (size_t)w < sizeof(buf) - len);
                len += (size_t)w;
        }
        return buf;
}

/* @returns the index in bt->users of the i-th action's user (n_users when
 * it is none of them). */
static size_t user_index(const lb_batch_t *bt, size_t i)
{
        size_t j = 0;
        while (j < bt->n_users && bt->users[j] != lb_batch_user(bt, i))
                j++;
        return j;
}

/* The structural invariants every batch must meet. */
static void check_batch(const lb_batch_t *bt, size_t overhead, size_t max_users,
                        size_t max_actions, size_t max_bytes)
{
        assert_non_null(bt);
        assert_true(bt->n > 0 && bt->n <= max_actions);
        assert_true(bt->n_users > 0 && bt->n_users <= max_users);
        assert_true(bt->bytes <= max_bytes);
        assert_true((int)bt->reason >= 0 && bt->reason < LB_SEND__COUNT);
        size_t bytes = overhead;
        for (size_t i = 0; i < bt->n; i++) {
                const lb_action_t *a = bt->actions[i];
                assert_int_equal(a->app, bt->app);
                bytes += a->body_len;
                size_t u = user_index(bt, i);
                assert_true(u < bt->n_users);
                /* A user's actions are adjacent, users in batch order... */
                assert_true(i == 0 || user_index(bt, i - 1) <= u);
                /* ...and in consumed order within the batch. */
                if (i > 0 && user_index(bt, i - 1) == u)
                        assert_true(bt->actions[i - 1]->offset < a->offset);
        }
        assert_int_equal(bytes, bt->bytes);
        for (size_t j = 0; j < bt->n_users; j++) {
                for (size_t k = 0; k < j; k++)
                        assert_ptr_not_equal(bt->users[j], bt->users[k]);
                size_t i = 0;
                while (i < bt->n && lb_batch_user(bt, i) != bt->users[j])
                        i++;
                assert_true(i < bt->n);
        }
}

/* @returns the next batch, checked against the limits, of that reason. */
static lb_batch_t *got(lb_batcher_t *b, int64_t now, lb_send_reason_t flush,
                       size_t early, lb_send_reason_t reason)
{
        lb_batch_t *bt = lb_batcher_next(b, now, flush, early);
        assert_non_null(bt);
        assert_true(bt->app >= 0 && (size_t)bt->app < lim.apps);
        check_batch(bt, lim.ov[bt->app], lim.users, lim.actions, lim.bytes);
        assert_int_equal(bt->reason, reason);
        return bt;
}

static lb_batch_t *due(lb_batcher_t *b, int64_t now)
{
        return got(b, now, LB_SEND_DUE, 0, LB_SEND_DUE);
}

static void none(lb_batcher_t *b, int64_t now, lb_send_reason_t flush,
                 size_t early)
{
        assert_null(lb_batcher_next(b, now, flush, early));
}

/* Destroys the batch's actions (the caller's job) and releases it. */
static void finish(lb_batcher_t *b, lb_batch_t *bt)
{
        for (size_t i = 0; i < bt->n; i++)
                lb_action_destroy(bt->actions[i]);
        lb_batcher_release(b, bt, 0);
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
        /* linger > max_wait is accepted (clamped), as are zeros. */
        c = ok;
        c.linger_ms = 500;
        b = lb_batcher_new(&c);
        assert_non_null(b);
        lb_batcher_destroy(b, lb_action_destroy);
        c.linger_ms = c.max_wait_ms = 0;
        b = lb_batcher_new(&c);
        assert_non_null(b);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_send_reason_names(void **state)
{
        (void)state;
        assert_string_equal(lb_send_reason_name(LB_SEND_DUE), "due");
        assert_string_equal(lb_send_reason_name(LB_SEND_FULL), "full");
        assert_string_equal(lb_send_reason_name(LB_SEND_MEMORY), "memory");
        assert_string_equal(lb_send_reason_name(LB_SEND_SHUTDOWN), "shutdown");
        assert_string_equal(lb_send_reason_name(LB_SEND_REVOCATION),
                            "revocation");
        assert_string_equal(lb_send_reason_name(LB_SEND_URGENT), "urgent");
        assert_string_equal(lb_send_reason_name(LB_SEND_SESSION_END),
                            "session_end");
        assert_int_equal(lb_close_reason(LB_CLOSE_URGENT), LB_SEND_URGENT);
        assert_int_equal(lb_close_reason(LB_CLOSE_SESSION_END),
                         LB_SEND_SESSION_END);
        assert_int_equal(LB_SEND__COUNT, 7);
        assert_string_equal(lb_send_reason_name(LB_SEND__COUNT), "unknown");
        assert_string_equal(lb_send_reason_name((lb_send_reason_t)-1),
                            "unknown");
}

static void test_add_rejects(void **state)
{
        (void)state;
        const size_t ov[2] = {100, 2000};
        lb_batcher_t *b = mkb(2, ov, 50, 500, 1000, 10, 100);
        lb_action_t *a = mk(2, "u", 0, 10, 0);
        assert_int_equal(lb_batcher_add(b, a, "u", 1, 0), -2);
        a->app = -1;
        assert_int_equal(lb_batcher_add(b, a, "u", 1, 0), -2);
        a->app = 0;
        a->body_len = 901; /* 100 + 901 > 1000 */
        assert_int_equal(lb_batcher_add(b, a, "u", 1, 0), -2);
        a->app = 1; /* overhead alone exceeds max_bytes */
        a->body_len = 1;
        assert_int_equal(lb_batcher_add(b, a, "u", 1, 0), -2);
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(lb_batcher_pending_bytes(b), 0);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        none(b, 1000, LB_SEND_SHUTDOWN, 5);
        /* Exactly max_bytes: a request by itself, so it goes at once. */
        a->app = 0;
        a->body_len = 900;
        assert_int_equal(lb_batcher_add(b, a, "u", 1, 0), 0);
        assert_int_equal(a->due_ms, 100);
        lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt->n, 1);
        assert_int_equal(bt->bytes, 1000);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_due_ms(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 10, 100);
        /* The budget counts from the write time: age is spent already. */
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 0), 1100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 1), 1099);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 30), 1070);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 89), 1011);
        /* Floor: at least linger in the bridge. */
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 90), 1010);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 91), 1010);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 100), 1010);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 100000), 1010);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, INT64_MAX), 1010);
        /* Ceiling: a producer clock ahead of ours (negative age) counts as
         * written now; it cannot stretch the wait past max_wait. */
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, -1), 1100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, -50000), 1100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, INT64_MIN), 1100);
        assert_int_equal(lb_batcher_due_ms(b, 0, -5, 0), 95);
        lb_batcher_destroy(b, lb_action_destroy);

        /* linger > max_wait: linger is clamped to max_wait. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 200, 100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 0), 1100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 50), 1100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, 5000), 1100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 1000, -50), 1100);
        lb_batcher_destroy(b, lb_action_destroy);

        /* linger == max_wait: age does not matter. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 100, 100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 0, 0), 100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 0, 60), 100);
        lb_batcher_destroy(b, lb_action_destroy);

        /* No linger: an old action is due on arrival. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 0, 100);
        assert_int_equal(lb_batcher_due_ms(b, 0, 7, 99), 8);
        assert_int_equal(lb_batcher_due_ms(b, 0, 7, 100), 7);
        assert_int_equal(lb_batcher_due_ms(b, 0, 7, 150), 7);
        assert_int_equal(lb_batcher_due_ms(b, 0, 7, -1), 107);
        lb_batcher_destroy(b, lb_action_destroy);

        b = mkb(1, NULL, 50, 500, 1 << 20, 0, 0);
        assert_int_equal(lb_batcher_due_ms(b, 0, 7, 0), 7);
        assert_int_equal(lb_batcher_due_ms(b, 0, 7, -3), 7);
        assert_int_equal(lb_batcher_due_ms(b, 0, 7, 3), 7);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_add_sets_due(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 500, 1 << 20, 10, 100);
        lb_action_t *a0 = add_age(b, 0, "A", 0, 10, 0, 0);
        assert_int_equal(a0->due_ms, 100);
        assert_int_equal(lb_batcher_next_deadline(b), 100);
        /* Older (written earlier) but consumed later: raised to 100. */
        lb_action_t *a1 = add_age(b, 0, "A", 5, 10, 1, 60);
        assert_int_equal(a1->due_ms, 100);
        lb_action_t *a2 = add_age(b, 0, "A", 20, 10, 2, -10);
        assert_int_equal(a2->due_ms, 120);
        /* Raised to its predecessor's (120), not to the head's (100). */
        lb_action_t *a3 = add_age(b, 0, "A", 30, 10, 3, 50);
        assert_int_equal(a3->due_ms, 120);
        assert_int_equal(a0->due_ms, 100);
        /* Other users, and the same id in another app, are not raised. */
        lb_action_t *bb = add_age(b, 0, "B", 5, 10, 0, 60);
        assert_int_equal(bb->due_ms, 45);
        lb_action_t *a_1 = add_age(b, 1, "A", 6, 10, 0, 60);
        assert_int_equal(a_1->due_ms, 46);
        assert_int_equal(lb_batcher_next_deadline(b), 45);

        none(b, 44, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 45);
        assert_int_equal(bt->app, 0);
        assert_string_equal(users_of(bt), "B");
        finish(b, bt);
        none(b, 45, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 46);
        bt = due(b, 46);
        assert_int_equal(bt->app, 1);
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), 100);
        none(b, 99, LB_SEND_DUE, 0);
        bt = due(b, 100);
        assert_string_equal(users_of(bt), "A");
        assert_int_equal(bt->n, 4);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i);
        finish(b, bt);
        /* A sent queue raises nothing: the next action starts afresh. */
        lb_action_t *a4 = add_age(b, 0, "A", 200, 10, 4, 90);
        assert_int_equal(a4->due_ms, 210);
        assert_int_equal(lb_batcher_next_deadline(b), 210);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* Queues an action that closes its user's window (lb_close_t), written to
 * Kafka age ms before it arrived. */
static lb_action_t *add_closing_age(lb_batcher_t *b, int app, const char *user,
                                    int64_t arrival, int64_t seq,
                                    lb_close_t close, int64_t age)
{
        lb_action_t *a = mk(app, user, arrival, 10, seq);
        a->closes = close;
        assert_int_equal(lb_batcher_add(b, a, user, strlen(user), age), 0);
        return a;
}

static lb_action_t *add_closing(lb_batcher_t *b, int app, const char *user,
                                int64_t arrival, int64_t seq, lb_close_t close)
{
        return add_closing_age(b, app, user, arrival, seq, close, 0);
}

static void test_urgent_closes_window(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 50, 1000);
        lb_action_t *a0 = add(b, 0, "A", 0, 10, 0);
        lb_action_t *a1 = add(b, 0, "A", 100, 10, 1);
        add(b, 0, "B", 10, 10, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 1000);
        /* A's urgent action at 200: A goes at 250 with all it has. */
        lb_action_t *a2 = add_closing(b, 0, "A", 200, 2, LB_CLOSE_URGENT);
        assert_int_equal(a2->due_ms, 250);
        assert_int_equal(a0->due_ms, 250);
        assert_int_equal(a1->due_ms, 250);
        assert_int_equal(a0->closed_by, LB_CLOSE_URGENT);
        assert_int_equal(a2->closed_by, LB_CLOSE_URGENT);
        assert_int_equal(lb_batcher_next_deadline(b), 250);
        /* Company within the linger joins: a later action of A. */
        lb_action_t *a3 = add(b, 0, "A", 220, 10, 3);
        assert_int_equal(a3->due_ms, 1220);
        assert_int_equal(a3->closed_by, LB_CLOSE_NONE);
        none(b, 249, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 250);
        /* B (due at 1010) is not taken: it is not due within the gather
         * horizon, and taking it would bill it twice. */
        assert_string_equal(users_of(bt), "A");
        assert_int_equal(bt->n, 4);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i);
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), 1010);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_close_waits_for_busy_user(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 50, 1000);
        add(b, 0, "A", 0, 10, 0);
        lb_batch_t *flying = due(b, 1000);
        assert_int_equal(flying->n, 1);
        /* A is at the API: its urgent action waits for it, in order. */
        lb_action_t *a1 = add(b, 0, "A", 1010, 10, 1);
        add_closing(b, 0, "A", 1020, 2, LB_CLOSE_SESSION_END);
        assert_int_equal(a1->due_ms, 1070);
        assert_int_equal(a1->closed_by, LB_CLOSE_SESSION_END);
        none(b, 1100, LB_SEND_DUE, 0);
        finish(b, flying);
        lb_batch_t *bt = due(b, 1100);
        assert_int_equal(bt->n, 2);
        assert_int_equal(bt->actions[0]->offset, 1);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_close_linger_from_write(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 50, 1000);
        /* Its linger counts from the Kafka write: written 30 ms before it
         * arrived, it is due 20 ms after. */
        lb_action_t *a0 = add(b, 0, "A", 0, 10, 0);
        lb_action_t *a1 =
            add_closing_age(b, 0, "A", 10, 1, LB_CLOSE_URGENT, 30);
        assert_int_equal(a1->due_ms, 30);
        assert_int_equal(a0->due_ms, 30);
        assert_int_equal(a0->closed_by, LB_CLOSE_URGENT);
        /* From a backlog (older than the linger): it goes at once. */
        lb_action_t *a2 =
            add_closing_age(b, 0, "A", 20, 2, LB_CLOSE_URGENT, 5000);
        assert_int_equal(a2->due_ms, 20);
        assert_int_equal(a0->due_ms, 20);
        /* A session end from a backlog (older than the budget) keeps the
         * linger after its arrival that any action from it has: the
         * user's next sessions, right behind it, share the request. */
        lb_action_t *d0 = add_age(b, 0, "D", 100, 10, 0, 5000);
        lb_action_t *d1 =
            add_closing_age(b, 0, "D", 120, 1, LB_CLOSE_SESSION_END, 5000);
        assert_int_equal(d0->due_ms, 150);
        assert_int_equal(d1->due_ms, 170);
        assert_int_equal(d1->closed_by, LB_CLOSE_NONE);
        lb_action_t *d2 = add_age(b, 0, "D", 130, 10, 2, 5000);
        assert_int_equal(d2->due_ms, 180);
        /* One arriving within its budget, but later than the linger after
         * its write, goes at once as before. */
        lb_action_t *e0 = add(b, 0, "E", 200, 10, 0);
        lb_action_t *e1 =
            add_closing_age(b, 0, "E", 210, 1, LB_CLOSE_SESSION_END, 400);
        assert_int_equal(e0->due_ms, 210);
        assert_int_equal(e1->due_ms, 210);
        assert_int_equal(e1->closed_by, LB_CLOSE_SESSION_END);
        /* A producer clock ahead of ours cannot stretch it past the
         * linger after its arrival. */
        lb_action_t *b0 =
            add_closing_age(b, 0, "B", 40, 0, LB_CLOSE_SESSION_END, -700);
        assert_int_equal(b0->due_ms, 90);
        /* A close lowers nothing already due before it. */
        lb_action_t *c0 = add_age(b, 0, "C", 0, 10, 0, 5000);
        lb_action_t *c1 = add_closing(b, 0, "C", 10, 1, LB_CLOSE_URGENT);
        assert_int_equal(c0->due_ms, 50);
        assert_int_equal(c0->closed_by, LB_CLOSE_NONE);
        assert_int_equal(c1->due_ms, 60);
        assert_int_equal(c1->closed_by, LB_CLOSE_URGENT);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_budget_per_app(void **state)
{
        (void)state;
        const int64_t waits[2] = {5000, 1000};
        lb_batcher_conf_t c = {
            .app_cnt = 2,
            .max_users = 50,
            .max_actions = 500,
            .max_bytes = 1 << 20,
            .linger_ms = 50,
            .max_wait_ms = 30000,
            .app_max_wait_ms = waits,
        };
        lb_batcher_t *b = lb_batcher_new(&c);
        assert_non_null(b);
        lim.apps = 2;
        lim.ov[0] = lim.ov[1] = 0;
        lim.users = 50;
        lim.actions = 500;
        lim.bytes = 1 << 20;
        assert_int_equal(lb_batcher_due_ms(b, 0, 0, 0), 5000);
        assert_int_equal(lb_batcher_due_ms(b, 1, 0, 0), 1000);
        assert_int_equal(lb_batcher_due_ms(b, 1, 0, 990), 50);
        add(b, 0, "A", 0, 10, 0);
        add(b, 1, "A", 0, 10, 0);
        /* App 1's gather horizon is min(linger, 1000 / 10) = 50. */
        add(b, 1, "B", 40, 10, 0);
        add(b, 1, "C", 60, 10, 0);
        lb_batch_t *bt = due(b, 1000);
        assert_int_equal(bt->app, 1);
        assert_string_equal(users_of(bt), "A,B");
        finish(b, bt);
        /* A new budget counts for actions added from now on. */
        lb_batcher_set_max_wait(b, 0, 200);
        assert_int_equal(lb_batcher_due_ms(b, 0, 2000, 0), 2200);
        /* Under the linger, the budget rules. */
        lb_batcher_set_max_wait(b, 0, 20);
        assert_int_equal(lb_batcher_due_ms(b, 0, 2000, 0), 2020);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* A longer client key (lb_batcher_set_overhead, on an apps reload) after
 * an action was queued near the byte cap: the action goes alone, over the
 * cap by the growth, rather than never. Refused, it came back as an empty
 * batch every turn (sent as "data":[] forever) and held up every user due
 * after it. */
static void test_overhead_grows_after_queued(void **state)
{
        (void)state;
        const size_t ov[1] = {100};
        lb_batcher_t *b = mkb(1, ov, 50, 500, 1024, 0, 1000);
        add(b, 0, "X", 0, 900, 0);
        add(b, 0, "Y", 10, 10, 0);
        lb_batcher_set_overhead(b, 0, 200);
        lim.ov[0] = 200;
        lim.bytes = 1024 + 100; /* the growth, for X alone */
        lb_batch_t *bt = due(b, 1000);
        assert_string_equal(users_of(bt), "X");
        assert_int_equal(bt->n, 1);
        assert_int_equal(bt->bytes, 200 + 900);
        finish(b, bt);
        /* What was queued with room to spare goes within the cap. */
        add(b, 0, "Z", 10, 814, 0);
        lim.bytes = 1024;
        bt = due(b, 1010);
        assert_string_equal(users_of(bt), "Y,Z");
        assert_int_equal(bt->bytes, 200 + 10 + 814);
        finish(b, bt);
        assert_int_equal(lb_batcher_pending(b), 0);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_due_waits_for_deadline(void **state)
{
        (void)state;
        const size_t ov[1] = {10};
        lb_batcher_t *b = mkb(1, ov, 50, 500, 1 << 20, 20, 1000);
        /* A's actions arrive within its first's budget: one request. */
        const int64_t at[4] = {0, 10, 500, 990};
        for (int i = 0; i < 4; i++) {
                lb_action_t *a = add(b, 0, "A", at[i], 20, i);
                assert_int_equal(a->due_ms, at[i] + 1000);
                none(b, at[i], LB_SEND_DUE, 0);
        }
        add(b, 0, "B", 985, 20, 0);
        none(b, 985, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 1000);
        none(b, 999, LB_SEND_DUE, 0);
        none(b, 999, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 1000);
        assert_string_equal(users_of(bt), "A");
        assert_int_equal(bt->n, 4);
        assert_int_equal(bt->bytes, 10 + 4 * 20);
        /* B is not due within the gather horizon (20 ms): it waits. */
        none(b, 1000, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_pending(b), 1);
        assert_int_equal(lb_batcher_next_deadline(b), 1985);
        finish(b, bt);
        none(b, 1984, LB_SEND_DUE, 0);
        bt = due(b, 1985);
        assert_string_equal(users_of(bt), "B");
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        none(b, 5000, LB_SEND_SHUTDOWN, 10);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_age_shortens_wait(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 10, 100);
        add_age(b, 0, "A", 0, 10, 0, 80); /* due 20 */
        assert_int_equal(lb_batcher_next_deadline(b), 20);
        none(b, 19, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 20);
        assert_string_equal(users_of(bt), "A");
        finish(b, bt);
        add_age(b, 0, "B", 100, 10, 0, 500); /* old: linger, due 110 */
        add_age(b, 0, "C", 100, 10, 0, -40); /* clock ahead: due 200 */
        assert_int_equal(lb_batcher_next_deadline(b), 110);
        none(b, 109, LB_SEND_DUE, 0);
        bt = due(b, 110);
        assert_string_equal(users_of(bt), "B");
        finish(b, bt);
        none(b, 199, LB_SEND_DUE, 0);
        bt = due(b, 200);
        assert_string_equal(users_of(bt), "C");
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_linger_zero(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 0, 0);
        add(b, 0, "A", 5, 20, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 5);
        none(b, 4, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 5);
        assert_int_equal(bt->n, 1);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_gather_horizon(void **state)
{
        (void)state;
        /* gather = min(linger 30, max_wait / 10 = 100) = 30. */
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 30, 1000);
        add_age(b, 0, "A", 0, 10, 0, 900);  /* due 100 */
        add_age(b, 0, "B", 30, 10, 0, 900); /* due 130: in the horizon */
        add_age(b, 0, "C", 31, 10, 0, 900); /* due 131: not */
        add_n(b, 0, "D", 0, 10, 5);         /* due 1000, heavy, not full */
        none(b, 99, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 100);
        assert_string_equal(users_of(bt), "A,B");
        none(b, 100, LB_SEND_DUE, 0);
        none(b, 130, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 131);
        lb_batch_t *bt2 = due(b, 131);
        assert_string_equal(users_of(bt2), "C");
        none(b, 131, LB_SEND_DUE, 0);
        finish(b, bt);
        finish(b, bt2);
        lb_batcher_destroy(b, lb_action_destroy);

        /* gather = min(linger 50, max_wait / 10 = 20) = 20. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 50, 200);
        add_age(b, 0, "A", 0, 10, 0, 100);  /* due 100 */
        add_age(b, 0, "B", 20, 10, 0, 100); /* due 120 */
        add_age(b, 0, "C", 21, 10, 0, 100); /* due 121 */
        bt = due(b, 100);
        assert_string_equal(users_of(bt), "A,B");
        none(b, 100, LB_SEND_DUE, 0);
        finish(b, bt);
        bt = due(b, 121);
        assert_string_equal(users_of(bt), "C");
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);

        /* The horizon counts from now, not from the earliest deadline. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 30, 1000);
        add_age(b, 0, "A", 0, 10, 0, 900);  /* due 100 */
        add_age(b, 0, "B", 70, 10, 0, 900); /* due 170 */
        add_age(b, 0, "C", 81, 10, 0, 900); /* due 181 */
        bt = due(b, 150);
        assert_string_equal(users_of(bt), "A,B");
        none(b, 150, LB_SEND_DUE, 0);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);

        /* No linger: no horizon; only the due users go. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 0, 1000);
        add(b, 0, "A", 0, 10, 0);
        add(b, 0, "B", 1, 10, 0);
        bt = due(b, 1000);
        assert_string_equal(users_of(bt), "A");
        none(b, 1000, LB_SEND_DUE, 0);
        finish(b, bt);
        bt = due(b, 1001);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);

        /* max_wait < 10: max_wait / 10 is 0, so no horizon either. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 5, 9);
        add(b, 0, "A", 0, 10, 0); /* due 9 */
        add(b, 0, "B", 1, 10, 0); /* due 10 */
        bt = due(b, 9);
        assert_string_equal(users_of(bt), "A");
        none(b, 9, LB_SEND_DUE, 0);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_company_goes_whole(void **state)
{
        (void)state;
        /* A user taken as company (due within the horizon, not yet due)
         * goes with every action it has or not at all: split, it would be
         * billed now and again at its deadline for actions it already had
         * ("a user is sent once per wait budget ... with every action it
         * has by then"). A due user may be split: it cannot wait. */
        lb_batcher_t *b = mkb(1, NULL, 50, 4, 1 << 20, 10, 100);
        add_n(b, 0, "A", 0, 10, 3); /* due 100 */
        add_n(b, 0, "B", 5, 10, 2); /* due 105: within the horizon */
        lb_batch_t *bt = due(b, 100);
        size_t b_now = count_user(bt, "B");
        assert_true(b_now == 0 || b_now == 2);
        finish(b, bt);
        if (b_now == 0) {
                bt = due(b, 105);
                assert_string_equal(users_of(bt), "B");
                assert_int_equal(bt->n, 2);
                finish(b, bt);
        }
        assert_int_equal(lb_batcher_pending(b), 0);
        lb_batcher_destroy(b, lb_action_destroy);

        /* The same by bytes. */
        const size_t ov[1] = {10};
        b = mkb(1, ov, 50, 500, 100, 10, 100);
        add(b, 0, "A", 0, 60, 0); /* due 100 */
        add(b, 0, "B", 5, 20, 0); /* due 105 */
        add(b, 0, "B", 5, 20, 1);
        bt = due(b, 100);
        b_now = count_user(bt, "B");
        assert_true(b_now == 0 || b_now == 2);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_edf_within_app(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 2, 500, 1 << 20, 10, 1000);
        add_age(b, 0, "X", 0, 10, 0, 0);   /* due 1000 */
        add_age(b, 0, "Y", 1, 10, 0, 500); /* due 501 */
        add_age(b, 0, "Z", 2, 10, 0, 800); /* due 202 */
        add_age(b, 0, "W", 3, 10, 0, 700); /* due 303 */
        assert_int_equal(lb_batcher_next_deadline(b), 202);
        lb_batch_t *bt = due(b, 1000);
        assert_string_equal(users_of(bt), "Z,W");
        lb_batch_t *bt2 = due(b, 1000);
        assert_string_equal(users_of(bt2), "Y,X");
        none(b, 1000, LB_SEND_SHUTDOWN, 1);
        finish(b, bt);
        finish(b, bt2);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_edf_across_apps(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(3, NULL, 50, 500, 1 << 20, 10, 1000);
        add_age(b, 0, "P", 0, 10, 0, 950);  /* app 0: due 50 */
        add_age(b, 0, "P2", 2, 10, 0, 950); /* app 0: due 52 */
        add_age(b, 1, "Q", 0, 10, 0, 960);  /* app 1: due 40 */
        add_age(b, 2, "R", 0, 10, 0, 940);  /* app 2: due 60 */
        assert_int_equal(lb_batcher_next_deadline(b), 40);
        /* At 45 only app 1 is due; app 0's 50 is near but not due. */
        lb_batch_t *q = due(b, 45);
        assert_int_equal(q->app, 1);
        assert_string_equal(users_of(q), "Q");
        none(b, 45, LB_SEND_DUE, 0);
        finish(b, q);
        add_age(b, 1, "Q", 46, 10, 1, 960); /* app 1: due 86 */
        /* At 100 all are due: earliest deadline first, across apps. */
        lb_batch_t *p = due(b, 100);
        assert_int_equal(p->app, 0);
        assert_string_equal(users_of(p), "P,P2");
        lb_batch_t *r = due(b, 100);
        assert_int_equal(r->app, 2);
        assert_string_equal(users_of(r), "R");
        q = due(b, 100);
        assert_int_equal(q->app, 1);
        none(b, 100, LB_SEND_DUE, 0);
        finish(b, p);
        finish(b, r);
        finish(b, q);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_full_by_actions(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 5, 1 << 20, 1000, 5000);
        add_n(b, 0, "A", 0, 10, 4);
        none(b, 0, LB_SEND_DUE, 0);
        add(b, 0, "B", 1, 10, 0);
        /* Five actions, but no user fills a request alone: they wait. */
        none(b, 1, LB_SEND_DUE, 0);
        add(b, 0, "A", 2, 10, 4);
        lb_batch_t *bt = got(b, 2, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_string_equal(users_of(bt), "A");
        assert_int_equal(bt->n, 5);
        none(b, 2, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 5001);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_full_by_bytes(void **state)
{
        (void)state;
        const size_t ov[1] = {10};
        lb_batcher_t *b = mkb(1, ov, 50, 500, 100, 1000, 5000);
        add(b, 0, "A", 0, 30, 0);
        add(b, 0, "A", 0, 30, 1);
        add(b, 0, "A", 0, 29, 2);
        none(b, 0, LB_SEND_DUE, 0); /* 10 + 89 = 99 < 100 */
        add(b, 0, "B", 0, 80, 0);   /* 90 */
        none(b, 0, LB_SEND_DUE, 0);
        add(b, 0, "A", 1, 1, 3); /* 10 + 90 = 100: full */
        lb_batch_t *bt = got(b, 1, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_string_equal(users_of(bt), "A");
        assert_int_equal(bt->n, 4);
        assert_int_equal(bt->bytes, 100);
        none(b, 1, LB_SEND_DUE, 0);
        finish(b, bt);
        /* Bytes over max_bytes: full; the actions that fit go. */
        add(b, 0, "B", 2, 5, 1); /* 10 + 85 */
        none(b, 2, LB_SEND_DUE, 0);
        add(b, 0, "B", 3, 15, 2); /* 10 + 100 */
        bt = got(b, 3, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt->n, 2);
        assert_int_equal(bt->bytes, 10 + 80 + 5);
        assert_int_equal(lb_batcher_pending(b), 1);
        assert_int_equal(lb_batcher_pending_bytes(b), 15);
        finish(b, bt);
        none(b, 3, LB_SEND_DUE, 0);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_one_user_over_max_actions(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 5, 1 << 20, 100, 1000);
        add_n(b, 0, "A", 0, 10, 12);
        lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt->n, 5);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i);
        /* The leftover waits for the release, even when flushing. */
        assert_int_equal(lb_batcher_pending(b), 7);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        none(b, 5000, LB_SEND_SHUTDOWN, 100);
        add(b, 0, "A", 1, 10, 12); /* queued behind the busy user */
        none(b, 5000, LB_SEND_REVOCATION, 100);
        assert_int_equal(lb_batcher_pending(b), 8);
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), 1000);
        bt = got(b, 1, LB_SEND_DUE, 0, LB_SEND_FULL);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i + 5);
        finish(b, bt);
        /* Three left: not full, so they wait for their deadline. */
        none(b, 999, LB_SEND_DUE, 0);
        bt = got(b, 1, LB_SEND_SHUTDOWN, 0, LB_SEND_SHUTDOWN);
        assert_int_equal(bt->n, 3);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(bt->actions[i]->offset, (int64_t)i + 10);
        finish(b, bt);
        assert_int_equal(lb_batcher_pending(b), 0);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* The busy gate asks the ledger: a released user the API may still be
 * working on is parked until its hold ends (the batcher's next deadline
 * says when), then sent; a user whose request answered is free at once;
 * a parked user whose queue is emptied is freed when it leaves. */
static void test_ledger_gate(void **state)
{
        (void)state;
        lb_ledger_t *l = lb_ledger_new();
        lb_batcher_conf_t c = {.app_cnt = 1,
                               .max_users = 10,
                               .max_actions = 10,
                               .max_bytes = 10000,
                               .linger_ms = 0,
                               .max_wait_ms = 0,
                               .ledger = l};
        lb_batcher_t *b = lb_batcher_new(&c);
        assert_non_null(b);
        add(b, 0, "A", 0, 10, 0);
        add(b, 0, "B", 0, 10, 1);
        lb_batch_t *bt = lb_batcher_next(b, 0, LB_SEND_DUE, 0);
        assert_int_equal(bt->n_users, 2);
        static const uint64_t tag = 7;
        /* the users' own records carry their ledger entries */
        assert_int_equal(bt->actions[0]->offset, 0);
        lb_ledger_entry_t *ea = lb_batcher_ledger_entry(lb_batch_user(bt, 0));
        lb_ledger_entry_t *eb = lb_batcher_ledger_entry(lb_batch_user(bt, 1));
        assert_ptr_not_equal(ea, eb);
        assert_int_equal(lb_ledger_sent(l, ea, &tag, 1), 0);
        assert_int_equal(lb_ledger_sent(l, eb, &tag, 1), 0);
        lb_ledger_answered(l, ea, 1000, 100); /* A: no answer */
        lb_ledger_answered(l, eb, 0, 100);    /* B: answered */
        add(b, 0, "A", 100, 10, 2);
        add(b, 0, "B", 100, 10, 3);
        finish(b, bt); /* at 0: A parked until 1000 */
        assert_true(lb_batcher_next_deadline(b) <= 100);
        bt = lb_batcher_next(b, 200, LB_SEND_SHUTDOWN, 0);
        assert_int_equal(bt->n_users, 1);
        assert_int_equal(bt->actions[0]->offset, 3); /* B only */
        lb_action_destroy(bt->actions[0]);
        lb_batcher_release(b, bt, 200);
        assert_null(lb_batcher_next(b, 999, LB_SEND_SHUTDOWN, 0));
        assert_int_equal(lb_batcher_next_deadline(b), 1000);
        lb_ledger_expire(l, 1000);
        bt = lb_batcher_next(b, 1000, LB_SEND_DUE, 0);
        assert_non_null(bt);
        assert_int_equal(bt->actions[0]->offset, 2); /* A, after its hold */
        /* parked with nothing queued: freed once the hold is over (the
         * same record: it stayed while A had actions queued) */
        assert_ptr_equal(lb_batcher_ledger_entry(lb_batch_user(bt, 0)), ea);
        lb_ledger_sent(l, ea, &tag, 1);
        lb_ledger_answered(l, ea, 2000, 1000);
        for (size_t i = 0; i < bt->n; i++)
                lb_action_destroy(bt->actions[i]);
        lb_batcher_release(b, bt, 1000);
        assert_true(lb_batcher_next_deadline(b) == INT64_MAX);
        lb_ledger_expire(l, 2000);
        assert_null(lb_batcher_next(b, 2000, LB_SEND_SHUTDOWN, 0));
        lb_batcher_destroy(b, lb_action_destroy);
        lb_ledger_destroy(l);
}

static void test_release_makes_full(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 10, 1 << 20, 1000, 5000);
        add_n(b, 0, "A", 0, 10, 12);
        lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        add(b, 0, "B", 1, 10, 0);
        for (int i = 12; i < 20; i++)
                add(b, 0, "A", 1, 10, i);
        /* A has 10 queued, but is busy. */
        none(b, 1, LB_SEND_DUE, 0);
        finish(b, bt);
        bt = got(b, 1, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_string_equal(users_of(bt), "A");
        assert_int_equal(bt->n, 10);
        assert_int_equal(bt->actions[0]->offset, 10);
        finish(b, bt);
        none(b, 1, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_pending(b), 1);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_max_users(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 3, 500, 1 << 20, 10, 1000);
        char id[8];
        for (int i = 4; i >= 0; i--) {
                snprintf(id, sizeof(id), "u%d", i);
                add(b, 0, id, i, 10, 0); /* due 1000 + i */
        }
        none(b, 999, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 1000);
        /* u0 is due; u1, u2 are due within the horizon; the request is
         * then at max_users. */
        assert_string_equal(users_of(bt), "u0,u1,u2");
        /* u3, u4 are within the horizon but none is due: they wait. */
        none(b, 1000, LB_SEND_DUE, 0);
        none(b, 1002, LB_SEND_DUE, 0);
        lb_batch_t *bt2 = due(b, 1003);
        assert_string_equal(users_of(bt2), "u3,u4");
        finish(b, bt);
        finish(b, bt2);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_max_users_not_full(void **state)
{
        (void)state;
        /* Many single-action users: max_users and max_actions are reached
         * together, which is not "full": full is one user's affair. */
        lb_batcher_t *b = mkb(1, NULL, 2, 3, 1 << 20, 50, 1000);
        add(b, 0, "a", 0, 10, 0);
        add(b, 0, "b", 0, 10, 0);
        add(b, 0, "c", 0, 10, 0);
        add(b, 0, "d", 0, 10, 0);
        none(b, 0, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 1000);
        assert_int_equal(bt->n_users, 2);
        finish(b, bt);
        bt = due(b, 1000);
        assert_int_equal(bt->n_users, 2);
        finish(b, bt);
        none(b, 1000, LB_SEND_SHUTDOWN, 1);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_max_bytes(void **state)
{
        (void)state;
        const size_t ov[1] = {10};
        lb_batcher_t *b = mkb(1, ov, 50, 500, 100, 1000, 5000);
        add_age(b, 0, "A", 0, 30, 0, 1); /* due 4999 */
        add_age(b, 0, "A", 0, 30, 1, 1);
        add(b, 0, "B", 1, 20, 0); /* due 5001 */
        add(b, 0, "B", 1, 30, 1);
        none(b, 4998, LB_SEND_DUE, 0);
        /* A (2) first; B, due too, is cut where its next does not fit. */
        lb_batch_t *bt = due(b, 5001);
        assert_string_equal(users_of(bt), "A,B");
        assert_int_equal(bt->bytes, 90);
        assert_int_equal(count_user(bt, "A"), 2);
        assert_int_equal(count_user(bt, "B"), 1);
        assert_int_equal(lb_batcher_pending(b), 1);
        assert_int_equal(lb_batcher_pending_bytes(b), 30);
        /* The rest waits for the release (busy), even when flushing. */
        none(b, 5001, LB_SEND_SHUTDOWN, 1);
        finish(b, bt);
        /* B's rest keeps its deadline (5001). */
        assert_int_equal(lb_batcher_next_deadline(b), 5001);
        none(b, 5000, LB_SEND_DUE, 0);
        bt = due(b, 5001);
        assert_int_equal(bt->actions[0]->offset, 1);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_due_beats_full_across_apps(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 4, 1 << 20, 100, 1000);
        add(b, 1, "O", 0, 10, 0);      /* app 1: due 1000 */
        add_n(b, 0, "F", 999, 10, 4);  /* app 0: full (no room so far) */
        add(b, 0, "G", 999, 10, 0);    /* app 0: due 1999 */
        lb_batch_t *bt = due(b, 1000); /* rule 1 outranks rule 2 */
        assert_int_equal(bt->app, 1);
        assert_string_equal(users_of(bt), "O");
        lb_batch_t *bt2 = got(b, 1000, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt2->app, 0);
        assert_string_equal(users_of(bt2), "F");
        none(b, 1000, LB_SEND_DUE, 0);
        finish(b, bt);
        finish(b, bt2);

        /* Full outranks memory and flush. */
        add(b, 1, "L", 1000, 10, 0);
        add_n(b, 1, "F", 1000, 10, 4);
        bt = got(b, 1000, LB_SEND_SHUTDOWN, 3, LB_SEND_FULL);
        assert_int_equal(bt->app, 1);
        assert_string_equal(users_of(bt), "F");
        finish(b, bt);
        bt = got(b, 1000, LB_SEND_SHUTDOWN, 3, LB_SEND_SHUTDOWN);
        assert_int_equal(bt->app, 0); /* G: due 1999, before L's 2000 */
        assert_string_equal(users_of(bt), "G");
        finish(b, bt);
        bt = got(b, 1000, LB_SEND_SHUTDOWN, 3, LB_SEND_SHUTDOWN);
        assert_int_equal(bt->app, 1);
        assert_string_equal(users_of(bt), "L");
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* An app's cap on actions per request (its answers were too large to
 * read) binds its requests only, is never raised by a larger one (answers
 * read raise it: test_cap_raise) nor goes below a request of the app whose
 * answer was read, and a user with more queued is full once it gets its
 * next action. */
static void test_cap_actions(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(3, NULL, 50, 10, 1 << 20, 100, 1000);
        assert_int_equal(lb_batcher_cap_actions(b, 0, 4), 4);
        assert_int_equal(lb_batcher_cap_actions(b, 0, 8), 4); /* never up */
        assert_int_equal(lb_batcher_cap_actions(b, 0, 0), 4); /* at least 1 */
        assert_int_equal(lb_batcher_cap_actions(b, 5, 1), 0); /* no app */
        /* never below a request whose answer was read */
        assert_int_equal(lb_batcher_answer_read(b, 1, 7, 0, 1 << 20), 0);
        assert_int_equal(lb_batcher_answer_read(b, 1, 5, 0, 1 << 20), 0);
        assert_int_equal(lb_batcher_cap_actions(b, 1, 2), 7);
        assert_int_equal(lb_batcher_cap_actions(b, 1, 20), 7);
        add_n(b, 0, "A", 0, 10, 6); /* full at 4: goes before its deadline */
        add_n(b, 1, "B", 0, 10, 6);
        lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt->app, 0);
        assert_int_equal(bt->n, 4);
        finish(b, bt);
        none(b, 0, LB_SEND_DUE, 0); /* A's 2 and B's 6 are not full */
        bt = got(b, 1000, LB_SEND_DUE, 0, LB_SEND_DUE);
        lb_batch_t *bt2 = got(b, 1000, LB_SEND_DUE, 0, LB_SEND_DUE);
        lb_batch_t *a = bt->app == 0 ? bt : bt2, *o = bt->app == 0 ? bt2 : bt;
        assert_int_equal(a->n, 2);
        assert_int_equal(o->app, 1);
        assert_int_equal(o->n, 6); /* the other app's cap is 7 */
        finish(b, bt);
        finish(b, bt2);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* Reads n-action answers of bytes each to app 0 count times; all but the
 * last raise nothing. @returns what the last one raised the cap to. */
static size_t read_answers(lb_batcher_t *b, int count, size_t n, size_t bytes,
                           size_t budget)
{
        for (int i = 1; i < count; i++)
                assert_int_equal(lb_batcher_answer_read(b, 0, n, bytes, budget),
                                 0);
        return lb_batcher_answer_read(b, 0, n, bytes, budget);
}

/* A lowered cap rises again (doubled, at most to the configured one) once
 * answers to LB_BATCHER_RAISE_WINDOW caps' worth of actions were read,
 * when the most bytes an action took, times the doubled cap, is at most
 * half the budget; a cap lowered again after a raise makes the next raise
 * wait twice as long; a hold stops the count; after a raise, only large
 * answers read whole floor a lowering. */
static void test_cap_raise(void **state)
{
        (void)state;
        const size_t budget = 1000000;
        lb_batcher_t *b = mkb(1, NULL, 50, 100, 1 << 20, 100, 1000);
        assert_int_equal(LB_BATCHER_RAISE_WINDOW, 4);
        assert_int_equal(lb_batcher_cap_actions(b, 0, 10), 10);
        /* 4 x 10 actions at 25,000 bytes: 20 of them fit 500,000 */
        assert_int_equal(read_answers(b, 4, 10, 250000, budget), 20);
        assert_int_equal(lb_batcher_cap_actions(b, 0, SIZE_MAX), 20);
        /* 4 x 20 at 13,000 bytes: 40 of them would not; the count starts
         * again, and 80 more actions answered with little raise it */
        assert_int_equal(read_answers(b, 4, 20, 260000, budget), 0);
        assert_int_equal(lb_batcher_cap_actions(b, 0, SIZE_MAX), 20);
        assert_int_equal(read_answers(b, 3, 20, 100, budget), 0);
        assert_int_equal(read_answers(b, 1, 20, 100, budget), 40);
        /* that raise was cut again: the next waits for 8 caps' worth */
        assert_int_equal(lb_batcher_cap_actions(b, 0, 25), 25);
        assert_int_equal(read_answers(b, 7, 25, 0, budget), 0);
        assert_int_equal(read_answers(b, 1, 25, 0, budget), 50);
        /* never past the configured 100, and not counted there */
        assert_int_equal(read_answers(b, 8, 50, 0, budget), 100);
        assert_int_equal(read_answers(b, 50, 60, 0, budget), 0);
        /* a new burst lowers it again: the floor is the 20 read whole with
         * a large answer (260,000 >= a quarter of the budget), not the
         * small answers read since the first raise; the next raise waits
         * for 16 caps' worth, none counted while held */
        assert_int_equal(lb_batcher_cap_actions(b, 0, 10), 20);
        assert_int_equal(lb_batcher_cap_hold(b, 0, 5), 0);
        assert_int_equal(read_answers(b, 16, 20, 0, budget), 0);
        lb_batcher_cap_release(b, 0, 5);
        assert_int_equal(read_answers(b, 15, 20, 0, budget), 0);
        assert_int_equal(read_answers(b, 1, 20, 0, budget), 40);
        assert_int_equal(lb_batcher_answer_read(b, 3, 1, 0, budget), 0);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* Holds (requests being split after answers too large to read): the
 * lowest still held binds; a user full only by a hold that ended waits for
 * its deadline again (the review's early, under-filled FULL requests). */
static void test_cap_holds(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 10, 1 << 20, 100, 1000);
        assert_int_equal(lb_batcher_cap_hold(b, 0, 6), 0);
        assert_int_equal(lb_batcher_cap_hold(b, 0, 3), 0);
        assert_int_equal(lb_batcher_cap_hold(b, 1, 3), -1); /* no app */
        lb_batcher_cap_release(b, 0, 3); /* 6 binds now, not 3 */
        add_n(b, 0, "H", 0, 10, 5);
        none(b, 0, LB_SEND_DUE, 0);
        add(b, 0, "H", 0, 10, 5);
        lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt->n, 6);
        finish(b, bt);
        assert_int_equal(lb_batcher_cap_hold(b, 0, 2), 0);
        add_n(b, 0, "K", 0, 10, 3); /* full at 2 */
        lb_batcher_cap_release(b, 0, 2);
        none(b, 0, LB_SEND_DUE, 0);      /* not at 6 */
        lb_batcher_cap_release(b, 0, 9); /* not held: nothing */
        lb_batcher_cap_release(b, 0, 6);
        assert_int_equal(lb_batcher_cap_actions(b, 0, SIZE_MAX), 10);
        bt = got(b, 1000, LB_SEND_DUE, 0, LB_SEND_DUE);
        assert_int_equal(bt->n, 3);
        finish(b, bt);
        /* the cap settled at the hold before it ends (answer_cap's
         * order): a user full by both stays full */
        assert_int_equal(lb_batcher_cap_hold(b, 0, 5), 0);
        add_n(b, 0, "P", 2000, 10, 6);
        assert_int_equal(lb_batcher_cap_actions(b, 0, 5), 5);
        lb_batcher_cap_release(b, 0, 5);
        bt = got(b, 2000, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt->n, 5);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* A thousand apps (the app heap and the ring of full apps, not a scan):
 * due batches come earliest deadline first across all of them, the lower
 * app first among equal deadlines, and lb_batcher_next_deadline is the
 * earliest; apps with full users each take a turn before any goes again. */
static void test_many_apps(void **state)
{
        (void)state;
        enum { APPS = 1000 };
        lb_batcher_t *b = mkb(APPS, NULL, 50, 500, 1 << 20, 0, 100000);
        srand(11);
        for (int app = 0; app < APPS; app++)
                add_age(b, app, "u", 0, 10, 0, rand() % 2000 * 50);
        int64_t last_due = INT64_MIN;
        int last_app = -1;
        for (int i = 0; i < APPS; i++) {
                int64_t next = lb_batcher_next_deadline(b);
                lb_batch_t *bt = got(b, 200000, LB_SEND_DUE, 0, LB_SEND_DUE);
                assert_int_equal(bt->n, 1);
                int64_t d = bt->actions[0]->due_ms;
                assert_true(d == next);
                assert_true(d > last_due ||
                            (d == last_due && bt->app > last_app));
                last_due = d;
                last_app = bt->app;
                finish(b, bt);
        }
        none(b, 200000, LB_SEND_SHUTDOWN, 1);
        assert_true(lb_batcher_next_deadline(b) == INT64_MAX);
        lb_batcher_destroy(b, lb_action_destroy);

        b = mkb(APPS, NULL, 50, 2, 1 << 20, 100, 100000);
        for (int app = APPS - 1; app >= 0; app--)
                add_n(b, app, "u", 0, 10, 2);
        static char seen[APPS];
        memset(seen, 0, sizeof(seen));
        for (int i = 0; i < APPS; i++) {
                lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
                assert_false(seen[bt->app]);
                seen[bt->app] = 1;
                finish(b, bt);
        }
        none(b, 0, LB_SEND_DUE, 0);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_full_apps_take_turns(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(3, NULL, 50, 2, 1 << 20, 100, 1000);
        char id[8];
        for (int app = 0; app < 3; app++)
                for (int u = 0; u < 3; u++) {
                        snprintf(id, sizeof(id), "u%d", u);
                        add_n(b, app, id, 0, 10, 2);
                }
        /* Every app has three full users; the apps take turns, so a
         * backlogged app cannot hold the others' full users back. */
        for (int i = 0; i < 9; i++) {
                lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
                assert_int_equal(bt->app, i % 3);
                assert_int_equal(bt->n_users, 1);
                finish(b, bt);
        }
        none(b, 0, LB_SEND_SHUTDOWN, 1);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_memory_early(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 500, 1 << 20, 10, 1000);
        add_age(b, 0, "A", 0, 10, 0, 500); /* app 0: due 500 */
        add_age(b, 0, "A", 0, 10, 1, 500);
        add_age(b, 0, "B", 0, 10, 0, 400); /* app 0: due 600 */
        add_age(b, 0, "B", 0, 10, 1, 400);
        add_age(b, 0, "C", 0, 10, 0, 300); /* app 0: due 700 */
        add_age(b, 0, "E", 0, 10, 0, 200); /* app 0: due 800 */
        add_age(b, 1, "D", 0, 10, 0, 450); /* app 1: due 550 */
        add_age(b, 1, "D", 0, 10, 1, 450);
        add_age(b, 1, "D", 0, 10, 2, 450);
        /* early = 0: nothing goes early. */
        none(b, 0, LB_SEND_DUE, 0);
        /* Whole users, earliest deadline first, until >= early. */
        lb_batch_t *a = got(b, 0, LB_SEND_DUE, 1, LB_SEND_MEMORY);
        assert_int_equal(a->app, 0);
        assert_string_equal(users_of(a), "A");
        assert_int_equal(a->n, 2);
        lb_batch_t *d = got(b, 0, LB_SEND_DUE, 3, LB_SEND_MEMORY);
        assert_int_equal(d->app, 1);
        assert_string_equal(users_of(d), "D");
        lb_batch_t *bc = got(b, 0, LB_SEND_DUE, 3, LB_SEND_MEMORY);
        assert_int_equal(bc->app, 0);
        assert_string_equal(users_of(bc), "B,C");
        none(b, 0, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_pending(b), 1);
        lb_batch_t *e = got(b, 0, LB_SEND_DUE, 100, LB_SEND_MEMORY);
        assert_string_equal(users_of(e), "E");
        none(b, 0, LB_SEND_DUE, 100);
        finish(b, a);
        finish(b, d);
        finish(b, bc);
        finish(b, e);
        lb_batcher_destroy(b, lb_action_destroy);

        /* A due request is not limited by the early budget. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 10, 1000);
        add_n(b, 0, "X", 0, 10, 3); /* due 1000 */
        add_n(b, 0, "Y", 1, 10, 3); /* due 1001 */
        a = got(b, 1000, LB_SEND_DUE, 1, LB_SEND_DUE);
        assert_string_equal(users_of(a), "X,Y");
        finish(b, a);
        /* Memory is bounded by max_users like any request. */
        lb_batcher_destroy(b, lb_action_destroy);
        b = mkb(1, NULL, 2, 500, 1 << 20, 10, 1000);
        add(b, 0, "P", 0, 10, 0);
        add(b, 0, "Q", 1, 10, 0);
        add(b, 0, "R", 2, 10, 0);
        a = got(b, 0, LB_SEND_DUE, 3, LB_SEND_MEMORY);
        assert_string_equal(users_of(a), "P,Q");
        finish(b, a);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_flush(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 500, 1 << 20, 10, 1000);
        add(b, 0, "A", 0, 10, 0);
        add(b, 1, "B", 1, 10, 0);
        add_n(b, 1, "C", 2, 10, 2);
        /* Everything, earliest deadline first, the early budget aside. */
        lb_batch_t *bt = got(b, 0, LB_SEND_SHUTDOWN, 0, LB_SEND_SHUTDOWN);
        assert_int_equal(bt->app, 0);
        finish(b, bt);
        bt = got(b, 0, LB_SEND_REVOCATION, 1, LB_SEND_REVOCATION);
        assert_int_equal(bt->app, 1);
        assert_string_equal(users_of(bt), "B,C");
        finish(b, bt);
        none(b, 0, LB_SEND_REVOCATION, 1);
        /* Due users still go as due, with their horizon; then the rest. */
        add(b, 0, "D", 0, 10, 0);    /* due 1000 */
        add(b, 0, "E", 995, 10, 0);  /* due 1995 */
        add(b, 0, "F", 1005, 10, 0); /* due 2005 */
        bt = got(b, 1000, LB_SEND_SHUTDOWN, 0, LB_SEND_DUE);
        assert_string_equal(users_of(bt), "D");
        finish(b, bt);
        bt = got(b, 1000, LB_SEND_SHUTDOWN, 0, LB_SEND_SHUTDOWN);
        assert_string_equal(users_of(bt), "E,F");
        finish(b, bt);
        none(b, 1000, LB_SEND_SHUTDOWN, 0);
        lb_batcher_destroy(b, lb_action_destroy);

        const size_t ov[3] = {5, 6, 7};
        b = mkb(3, ov, 4, 7, 200, 100000, 100000);
        char id[8];
        size_t added = 0;
        for (int i = 0; i < 300; i++) {
                snprintf(id, sizeof(id), "u%d", i % 17);
                add(b, i % 3, id, i, 1 + (size_t)(i % 13), i);
                added++;
        }
        none(b, 300, LB_SEND_DUE, 0);
        size_t out = 0;
        int64_t last = INT64_MIN;
        while ((bt = lb_batcher_next(b, 300, LB_SEND_SHUTDOWN, 0)) != NULL) {
                check_batch(bt, ov[bt->app], 4, 7, 200);
                assert_int_equal(bt->reason, LB_SEND_SHUTDOWN);
                /* Earliest deadline first: heads never go backwards. */
                assert_true(bt->actions[0]->due_ms >= last);
                last = bt->actions[0]->due_ms;
                out += bt->n;
                finish(b, bt);
        }
        assert_int_equal(out, added);
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(lb_batcher_pending_bytes(b), 0);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        lb_batcher_destroy(b, lb_action_destroy);
}

static void test_busy_gate(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 10, 100);
        add(b, 0, "A", 0, 10, 0);
        add(b, 0, "B", 2, 10, 0);
        lb_batch_t *bt = got(b, 0, LB_SEND_SHUTDOWN, 0, LB_SEND_SHUTDOWN);
        assert_int_equal(bt->n_users, 2);
        add(b, 0, "A", 5, 10, 1);
        add(b, 0, "B", 3, 10, 1);
        add(b, 0, "C", 4, 10, 0);
        /* A and B are in flight: only C is ready. */
        assert_int_equal(lb_batcher_next_deadline(b), 104);
        lb_batch_t *bt2 = due(b, 1000);
        assert_int_equal(bt2->n, 1);
        assert_string_equal(lb_action_key(bt2->actions[0]), "C");
        none(b, 1000, LB_SEND_SHUTDOWN, 1);
        finish(b, bt2);
        finish(b, bt);
        /* Back in the ready set, keyed by their oldest queued action. */
        assert_int_equal(lb_batcher_next_deadline(b), 103);
        none(b, 102, LB_SEND_DUE, 0);
        bt = due(b, 103);
        assert_string_equal(users_of(bt), "B,A");
        assert_int_equal(bt->actions[0]->offset, 1);
        assert_int_equal(bt->n, 2);
        finish(b, bt);
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
        lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(bt->app, 0);
        assert_int_equal(bt->n, 3);
        assert_int_equal(lb_batcher_pending(b), 2);
        assert_int_equal(lb_batcher_pending_bytes(b), 28);
        finish(b, bt);
        assert_int_equal(lb_batcher_pending(b), 2);
        lb_batcher_destroy(b, lb_action_destroy); /* frees queued ones */
}

static void test_next_deadline(void **state)
{
        (void)state;
        lb_batcher_t *b = mkb(2, NULL, 50, 500, 1 << 20, 100, 1000);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        add(b, 0, "x", 50, 10, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 1050);
        add(b, 1, "y", 30, 10, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 1030);
        add_age(b, 0, "x", 60, 10, 1, 900); /* raised: no change */
        assert_int_equal(lb_batcher_next_deadline(b), 1030);
        add_age(b, 0, "z", 60, 10, 0, 900); /* due 160 */
        assert_int_equal(lb_batcher_next_deadline(b), 160);
        lb_batch_t *bt = due(b, 160);
        assert_string_equal(users_of(bt), "z");
        assert_int_equal(lb_batcher_next_deadline(b), 1030);
        finish(b, bt);
        bt = due(b, 1030);
        assert_int_equal(bt->app, 1);
        assert_int_equal(lb_batcher_next_deadline(b), 1050);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);

        /* A max wait shorter than linger bounds the deadline. */
        b = mkb(1, NULL, 50, 500, 1 << 20, 100, 60);
        add(b, 0, "x", 50, 10, 0);
        assert_int_equal(lb_batcher_next_deadline(b), 110);
        none(b, 109, LB_SEND_DUE, 0);
        bt = due(b, 110);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
}

static size_t dropped;

static void drop_cb(lb_action_t *a, void *opaque)
{
        assert_ptr_equal(a->partition, opaque);
        dropped++;
        lb_action_destroy(a);
}

static void add_p(lb_batcher_t *b, const char *user, int64_t arrival,
                  int64_t seq, lb_partition_t *p)
{
        lb_action_t *a = mk(0, user, arrival, 10, seq);
        a->partition = p;
        assert_int_equal(lb_batcher_add(b, a, user, strlen(user), 0), 0);
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
        lb_batch_t *inflight = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        assert_int_equal(inflight->n, 3);
        add_p(b, "U1", 10, 0, p1); /* U1: 4 actions, full */
        add_p(b, "U1", 11, 1, p2);
        add_p(b, "U1", 12, 2, p1);
        add_p(b, "U1", 13, 3, p2);
        add_p(b, "U2", 5, 0, p1);
        add_p(b, "U2", 6, 1, p1);
        add_p(b, "U3", 20, 0, p2);
        assert_int_equal(lb_batcher_pending(b), 9);
        assert_int_equal(lb_batcher_next_deadline(b), 1005);

        dropped = 0;
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 6);
        assert_int_equal(dropped, 6);
        assert_int_equal(lb_batcher_pending(b), 3);
        assert_int_equal(lb_batcher_pending_bytes(b), 30);
        /* U2 is gone; U1's oldest is now its arrival-11 action. */
        assert_int_equal(lb_batcher_next_deadline(b), 1011);
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 0);
        /* U1 (2 left) no longer fills a request. */
        none(b, 500, LB_SEND_DUE, 0);

        /* U4 (busy, nothing left) is freed by the release. */
        finish(b, inflight);
        none(b, 1010, LB_SEND_DUE, 0);
        lb_batch_t *bt = due(b, 1011);
        assert_int_equal(bt->n, 3);
        assert_string_equal(users_of(bt), "U1,U3");
        for (size_t i = 0; i < bt->n; i++)
                assert_ptr_equal(bt->actions[i]->partition, p2);
        assert_int_equal(bt->actions[0]->offset, 1);
        assert_int_equal(bt->actions[1]->offset, 3);
        finish(b, bt);
        assert_int_equal(lb_batcher_pending(b), 0);

        /* A user removed by abandon can come back. */
        add_p(b, "U2", 200, 7, p1);
        assert_int_equal(lb_batcher_pending(b), 1);
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 1);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
        none(b, 5000, LB_SEND_SHUTDOWN, 1);
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
        lb_batch_t *bt = got(b, 0, LB_SEND_DUE, 0, LB_SEND_FULL);
        dropped = 0;
        assert_int_equal(lb_batcher_abandon(b, p1, drop_cb, p1), 1);
        assert_int_equal(lb_batcher_pending(b), 1);
        none(b, 1000, LB_SEND_SHUTDOWN, 1); /* still busy */
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), 1002);
        bt = got(b, 1000, LB_SEND_DUE, 0, LB_SEND_FULL); /* one = max */
        assert_int_equal(bt->actions[0]->offset, 2);
        finish(b, bt);
        lb_batcher_destroy(b, lb_action_destroy);
        lb_partition_unref(p1);
        lb_partition_unref(p2);
}

/* Expediting a partition makes its queued actions, and those queued
 * before them for the same user, due now; the rest keep their deadlines,
 * a busy user's included (due when its request ends). */
static void test_expedite(void **state)
{
        (void)state;
        lb_partition_t *p1 = lb_partition_new("t", 1);
        lb_partition_t *p2 = lb_partition_new("t", 2);
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 100, 1000);
        add_p(b, "B", 0, 0, p1); /* B: busy with this one */
        lb_batch_t *busy = got(b, 0, LB_SEND_SHUTDOWN, 0, LB_SEND_SHUTDOWN);
        add_p(b, "U", 0, 0, p2);
        add_p(b, "U", 5, 1, p1);
        add_p(b, "U", 600, 2, p2); /* due 1600 */
        add_p(b, "V", 20, 0, p2);  /* due 1020 */
        add_p(b, "W", 30, 0, p1);  /* due 1030 */
        add_p(b, "B", 40, 1, p1);  /* due 1040, once free */
        add_p(b, "B", 50, 2, p2);
        none(b, 100, LB_SEND_DUE, 0);
        assert_int_equal(lb_batcher_expedite(b, p1, 100), 3);
        assert_int_equal(lb_batcher_next_deadline(b), 100);
        lb_batch_t *bt = due(b, 100);
        /* U (its p1 action and the one before are due; the one after goes
         * with them, as a sent user's queue does) and W; not V (due 1020)
         * nor busy B */
        assert_string_equal(users_of(bt), "U,W");
        assert_int_equal(count_user(bt, "U"), 3);
        finish(b, bt);
        assert_int_equal(lb_batcher_next_deadline(b), 1020);
        finish(b, busy); /* B is free: its p1 action is due by now */
        assert_int_equal(lb_batcher_next_deadline(b), 100);
        bt = due(b, 100);
        assert_string_equal(users_of(bt), "B");
        assert_int_equal(bt->n, 2); /* its p2 one goes with it */
        finish(b, bt);
        assert_int_equal(lb_batcher_expedite(b, p1, 200), 0);
        assert_int_equal(lb_batcher_next_deadline(b), 1020);
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
        none(b, 99, LB_SEND_DUE, 0);
        size_t out = 0, batches = 0;
        lb_batch_t *bt;
        while ((bt = lb_batcher_next(b, 1000, LB_SEND_DUE, 0)) != NULL) {
                check_batch(bt, 0, 50, 500, 1 << 20);
                assert_int_equal(bt->reason, LB_SEND_DUE);
                /* Each (app, user) pair once, with its four actions. */
                assert_int_equal(bt->n, 4 * bt->n_users);
                out += bt->n;
                batches++;
                finish(b, bt);
        }
        assert_int_equal(out, 20000);
        /* 5000 (app, user) pairs, 50 to a request. */
        assert_int_equal(batches, 100);
        assert_int_equal(lb_batcher_pending(b), 0);
        lb_batcher_destroy(b, lb_action_destroy);
}

/* ---- randomized property tests against a reference model ------------- */

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

typedef struct {
        size_t apps, overhead[8];
        size_t max_users, max_actions, max_bytes, max_body;
        int64_t linger, wait; /* as configured */
        int64_t lin, gather;  /* linger clamped to wait; the horizon */
} pconf_t;

static void pconf_derive(pconf_t *c)
{
        c->lin = c->linger < c->wait ? c->linger : c->wait;
        c->gather = c->lin < c->wait / 10 ? c->lin : c->wait / 10;
}

/* The reference deadline: the budget left after the age (negative: 0),
 * no less than linger, no more than max_wait. */
static int64_t ref_due(const pconf_t *c, int64_t arrival, int64_t age)
{
        int64_t spent = age < 0 ? 0 : age > c->wait ? c->wait : age;
        int64_t wait = c->wait - spent;
        return arrival + (wait > c->lin ? wait : c->lin);
}

/* A random Kafka age: mostly fresh, some old, some from a clock ahead. */
static int64_t rnd_age(int64_t wait)
{
        size_t r = rndn(10);
        if (r < 5)
                return 0;
        if (r < 8)
                return (int64_t)rndn((size_t)wait + 30);
        return -(int64_t)rndn(100);
}

enum { QUEUED, OUT, ABANDONED };

typedef struct {
        size_t user;
        int64_t seq;
        int64_t arrival;
        int64_t due;   /* the model's deadline */
        int closed_by; /* lb_close_t: the deadline was brought forward */
        int64_t sent_at;
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
        size_t head; /* no action below this seq is queued */
        size_t queued, qbytes;
        int busy;
        /* The state before the next() call being checked. */
        int pre_ready, pre_full, taken;
        int64_t pre_dl;
} muser_t;

typedef struct {
        const pconf_t *c;
        mact_t *acts;
        size_t n_acts, cap_acts;
        muser_t *users;
        size_t n_users;
        lb_partition_t *parts[3];
        uint64_t abandoned_at[3];
        uint64_t ops;
        size_t queued, queued_bytes, out, abandoned, batches;
        size_t by_reason[LB_SEND__COUNT];
        size_t closed; /* deadlines brought forward by closing actions */
} model_t;

typedef struct {
        lb_batch_t *bt;
        int64_t release_at;
} held_t;

static mact_t *m_act(model_t *m, const lb_action_t *a)
{
        size_t gid = strtoul(lb_action_value(a), NULL, 10);
        assert_true(gid < m->n_acts);
        return &m->acts[gid];
}

/* @returns the user's oldest queued action, or NULL. */
static mact_t *m_head(model_t *m, muser_t *u)
{
        while (u->head < u->n_seq && m->acts[u->gids[u->head]].state != QUEUED)
                u->head++;
        return u->head < u->n_seq ? &m->acts[u->gids[u->head]] : NULL;
}

/* @returns the user's newest queued action, or NULL. */
static mact_t *m_tail(model_t *m, muser_t *u)
{
        m_head(m, u);
        for (size_t s = u->n_seq; s > u->head; s--)
                if (m->acts[u->gids[s - 1]].state == QUEUED)
                        return &m->acts[u->gids[s - 1]];
        return NULL;
}

static int m_ready(const muser_t *u)
{
        return !u->busy && u->queued > 0;
}

static int m_full(const model_t *m, const muser_t *u)
{
        return u->queued >= m->c->max_actions ||
               m->c->overhead[u->app] + u->qbytes >= m->c->max_bytes;
}

/* @returns the earliest deadline of a ready user, or INT64_MAX. */
static int64_t m_earliest(model_t *m)
{
        int64_t e = INT64_MAX;
        for (size_t i = 0; i < m->n_users; i++) {
                muser_t *u = &m->users[i];
                if (m_ready(u) && m_head(m, u)->due < e)
                        e = m_head(m, u)->due;
        }
        return e;
}

static void model_drop(lb_action_t *a, void *opaque)
{
        model_t *m = opaque;
        mact_t *ma = m_act(m, a);
        assert_int_equal(ma->state, QUEUED);
        assert_ptr_equal(a->partition, m->parts[ma->part]);
        ma->state = ABANDONED;
        m->users[ma->user].queued--;
        m->users[ma->user].qbytes -= ma->body_len;
        m->queued--;
        m->queued_bytes -= ma->body_len;
        m->abandoned++;
        lb_action_destroy(a);
}

/* A closing action written `age` before it arrived at `arrival`: the
 * user's queued actions due later are due linger after it was written, at
 * the latest when it arrived (batcher.h). */
static void model_close(model_t *m, muser_t *u, int64_t arrival, int64_t age,
                        int closes)
{
        int64_t left = m->c->lin - (age > 0 ? age : 0);
        /* A session end with its budget spent keeps the linger floor. */
        int64_t floor =
            closes == LB_CLOSE_SESSION_END && age >= m->c->wait ? m->c->lin : 0;
        int64_t due = arrival + (left > floor ? left : floor);
        m_head(m, u);
        for (size_t s = u->head; s < u->n_seq; s++) {
                mact_t *x = &m->acts[u->gids[s]];
                if (x->state == QUEUED && x->due > due) {
                        x->due = due;
                        x->closed_by = closes;
                        m->closed++;
                }
        }
}

static void model_add(model_t *m, lb_batcher_t *b, size_t user, int64_t arrival,
                      size_t body_len, int64_t age, int closes)
{
        if (m->n_acts == m->cap_acts) {
                m->cap_acts = m->cap_acts ? m->cap_acts * 2 : 1024;
                m->acts = realloc(m->acts, m->cap_acts * sizeof(*m->acts));
                assert_non_null(m->acts);
        }
        muser_t *u = &m->users[user];
        /* The deadline never decreases along the user's queue. */
        int64_t due = ref_due(m->c, arrival, age);
        const mact_t *tail = m_tail(m, u);
        if (tail && tail->due > due)
                due = tail->due;
        size_t gid = m->n_acts++;
        mact_t *ma = &m->acts[gid];
        memset(ma, 0, sizeof(*ma));
        ma->user = user;
        ma->seq = (int64_t)u->n_seq;
        ma->arrival = arrival;
        ma->due = due;
        ma->sent_at = -1;
        ma->part = rndn(3);
        ma->body_len = body_len;
        ma->added_at = ++m->ops;
        ma->state = QUEUED;
        u->gids = realloc(u->gids, (u->n_seq + 1) * sizeof(*u->gids));
        assert_non_null(u->gids);
        u->gids[u->n_seq++] = gid;

        char val[24];
        snprintf(val, sizeof(val), "%zu", gid);
        lb_action_t *a =
            lb_action_new(arena(), u->id, strlen(u->id), val, strlen(val));
        assert_non_null(a);
        a->app = u->app;
        a->arrival_ms = arrival;
        a->body_len = body_len;
        a->offset = ma->seq;
        a->partition = m->parts[ma->part];
        a->closes = (unsigned)closes;
        if (closes)
                model_close(m, u, arrival, age, closes);
        assert_int_equal(lb_batcher_add(b, a, u->id, strlen(u->id), age), 0);
        assert_int_equal(a->due_ms, ma->due);
        assert_int_equal(a->closed_by, ma->closed_by);
        u->queued++;
        u->qbytes += body_len;
        m->queued++;
        m->queued_bytes += body_len;
}

/* @returns whether all of u's queued actions fit after n actions and
 * bytes bytes. */
static int whole_fits(const pconf_t *c, size_t n, size_t bytes,
                      const muser_t *u)
{
        return n + u->queued <= c->max_actions &&
               bytes + u->qbytes <= c->max_bytes;
}

/* Calls lb_batcher_next() and checks its answer against the model: which
 * rule applies (so the reason, or NULL), the bounds, per-user order (each
 * user's taken actions are its oldest queued ones), the busy gate, EDF
 * (the app holds the earliest ready deadline, its users go earliest first
 * and the rest of the app is no earlier), the gather horizon, that the
 * request stops only when full (or past the early budget), that a user is
 * cut short only where its next action does not fit, and, when the API has
 * room (immediate), that no action left after its deadline. */
static lb_batch_t *model_next(model_t *m, lb_batcher_t *b, int64_t t,
                              lb_send_reason_t flush, size_t early,
                              int immediate)
{
        const pconf_t *c = m->c;
        int any = 0, full_any = 0;
        int64_t gmin = INT64_MAX;
        for (size_t i = 0; i < m->n_users; i++) {
                muser_t *u = &m->users[i];
                u->taken = 0;
                u->pre_ready = m_ready(u);
                if (!u->pre_ready)
                        continue;
                u->pre_dl = m_head(m, u)->due;
                u->pre_full = m_full(m, u);
                any = 1;
                full_any |= u->pre_full;
                if (u->pre_dl < gmin)
                        gmin = u->pre_dl;
        }
        lb_batch_t *bt = lb_batcher_next(b, t, flush, early);
        lb_send_reason_t want;
        if (!any) {
                assert_null(bt);
                return NULL;
        }
        if (gmin <= t)
                want = LB_SEND_DUE;
        else if (full_any)
                want = LB_SEND_FULL;
        else if (flush != LB_SEND_DUE)
                want = flush;
        else if (early)
                want = LB_SEND_MEMORY;
        else {
                assert_null(bt);
                return NULL;
        }
        assert_non_null(bt);
        assert_int_equal(bt->reason, want);
        assert_true(bt->app >= 0 && (size_t)bt->app < c->apps);
        check_batch(bt, c->overhead[bt->app], c->max_users, c->max_actions,
                    c->max_bytes);
        m->batches++;
        m->by_reason[want]++;

        size_t n = 0, bytes = c->overhead[bt->app], groups = 0, last_n = 0;
        int64_t prev_dl = INT64_MIN;
        for (size_t i = 0; i < bt->n;) {
                const lb_user_t *bu = lb_batch_user(bt, i);
                size_t ui = m_act(m, bt->actions[i])->user;
                muser_t *u = &m->users[ui];
                assert_int_equal(u->app, bt->app);
                assert_true(u->pre_ready); /* not busy: the gate */
                assert_false(u->taken);    /* a user's actions together */
                u->taken = 1;
                assert_true(groups < bt->n_users);
                assert_ptr_equal(bt->users[groups], bu);
                groups++;
                if (want == LB_SEND_FULL) {
                        assert_true(u->pre_full);
                } else {
                        assert_true(u->pre_dl >= prev_dl);
                        prev_dl = u->pre_dl;
                        if (want == LB_SEND_DUE)
                                assert_true(u->pre_dl <= t + c->gather);
                }
                size_t start = n;
                for (; i < bt->n && lb_batch_user(bt, i) == bu; i++) {
                        mact_t *ma = m_act(m, bt->actions[i]);
                        assert_int_equal(ma->user, ui);
                        assert_int_equal(ma->state, QUEUED);
                        assert_true(ma->added_at > m->abandoned_at[ma->part]);
                        assert_ptr_equal(m_head(m, u), ma); /* in order */
                        assert_int_equal(bt->actions[i]->due_ms, ma->due);
                        assert_int_equal(bt->actions[i]->closed_by,
                                         ma->closed_by);
                        ma->state = OUT;
                        ma->sent_at = t;
                        if (immediate)
                                assert_true(t <= ma->due);
                        u->queued--;
                        u->qbytes -= ma->body_len;
                        m->queued--;
                        m->queued_bytes -= ma->body_len;
                        m->out++;
                        n++;
                        bytes += ma->body_len;
                }
                last_n = n - start;
                const mact_t *next = m_head(m, u);
                if (next)
                        assert_true(n >= c->max_actions ||
                                    bytes + next->body_len > c->max_bytes);
                u->busy = 1;
        }
        assert_int_equal(groups, bt->n_users);
        assert_int_equal(n, bt->n);
        assert_int_equal(bytes, bt->bytes);
        if (want == LB_SEND_FULL)
                return bt;
        /* The app with the earliest deadline of all (global EDF). */
        int64_t amin = INT64_MAX, rmin = INT64_MAX;
        int64_t cutoff = want == LB_SEND_DUE ? t + c->gather : INT64_MAX;
        for (size_t i = 0; i < m->n_users; i++) {
                const muser_t *u = &m->users[i];
                if (!u->pre_ready || u->app != bt->app)
                        continue;
                if (u->pre_dl < amin)
                        amin = u->pre_dl;
                if (u->taken)
                        continue;
                /* A prefix of EDF; at most company that would not fit
                 * whole was passed over (see test_company_goes_whole). */
                if (u->pre_dl < prev_dl)
                        assert_true(want == LB_SEND_DUE && u->pre_dl > t &&
                                    !whole_fits(c, n, bytes, u));
                if (u->pre_dl <= cutoff && u->pre_dl < rmin)
                        rmin = u->pre_dl;
        }
        assert_int_equal(amin, gmin);
        if (want == LB_SEND_MEMORY) /* whole users, just past early */
                assert_true(n - last_n < early);
        if (rmin == INT64_MAX || bt->n_users == c->max_users ||
            (want == LB_SEND_MEMORY && n >= early))
                return bt;
        /* Users left within reach: the next in line did not fit. */
        int blocked = 0;
        for (size_t i = 0; i < m->n_users; i++) {
                muser_t *u = &m->users[i];
                if (u->pre_ready && !u->taken && u->app == bt->app &&
                    u->pre_dl == rmin)
                        blocked |=
                            n >= c->max_actions ||
                            bytes + m_head(m, u)->body_len > c->max_bytes ||
                            (want == LB_SEND_DUE && u->pre_dl > t &&
                             !whole_fits(c, n, bytes, u));
        }
        assert_true(blocked);
        return bt;
}

static void model_release(model_t *m, lb_batcher_t *b, lb_batch_t *bt)
{
        for (size_t i = 0; i < bt->n; i++)
                m->users[m_act(m, bt->actions[i])->user].busy = 0;
        finish(b, bt);
}

/* Totals over the seeds of one test, printed as its summary. */
static size_t tot_actions, tot_batches, tot_abandoned;
static size_t tot_sessions, tot_early; /* the window tests */
static size_t tot_reason[LB_SEND__COUNT];
static size_t tot_closed; /* deadlines brought forward */

/* At each test's start: a failed test leaves its totals behind. */
static void reset_totals(void)
{
        tot_actions = tot_batches = tot_abandoned = 0;
        tot_sessions = tot_early = tot_closed = 0;
        memset(tot_reason, 0, sizeof(tot_reason));
}

static void run_property(uint64_t seed, int immediate)
{
        rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
        pconf_t c = {0};
        c.apps = 1 + rndn(8);
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
        c.linger = (int64_t)rndn(40);
        /* Usually wait >= linger; sometimes a shorter max wait rules. */
        c.wait = rndn(5) == 0 ? (int64_t)rndn((size_t)c.linger + 1)
                              : c.linger + (int64_t)rndn(300);
        pconf_derive(&c);
        lb_batcher_t *b =
            mkb(c.apps, c.overhead, (int64_t)c.max_users,
                (int64_t)c.max_actions, (int64_t)c.max_bytes, c.linger, c.wait);

        model_t m = {0};
        m.c = &c;
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
        for (int64_t t = 0; t < 2000; t++) {
                size_t n_add = rndn(rate + 1);
                for (size_t k = 0; k < n_add; k++) {
                        /* Skewed: low user indexes are much more active. */
                        size_t r = rndn(m.n_users);
                        size_t user = r * rndn(m.n_users) / m.n_users;
                        /* Some close their user's window. */
                        int closes = rndn(20) == 0 ? 1 + (int)rndn(2) : 0;
                        model_add(&m, b, user, t, 1 + rndn(c.max_body),
                                  rnd_age(c.wait), closes);
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
                /* Now and then the caller flushes or allows early sends
                 * (and spends the budget as the bridge does). */
                lb_send_reason_t flush = LB_SEND_DUE;
                if (rndn(300) == 0)
                        flush = rndn(2) ? LB_SEND_SHUTDOWN : LB_SEND_REVOCATION;
                size_t early = rndn(15) == 0 ? 1 + rndn(2 * c.max_actions) : 0;
                lb_batch_t *bt;
                while ((immediate || n_held < max_held) &&
                       (bt = model_next(&m, b, t, flush, early, immediate)) !=
                           NULL) {
                        early = early > bt->n ? early - bt->n : 0;
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
                int64_t e = m_earliest(&m);
                assert_int_equal(lb_batcher_next_deadline(b), e);
                /* With room, nothing due is left behind. */
                if (immediate)
                        assert_true(e > t);
        }
        while (n_held > 0)
                model_release(&m, b, held[--n_held].bt);
        lb_send_reason_t flush =
            rndn(2) ? LB_SEND_SHUTDOWN : LB_SEND_REVOCATION;
        lb_batch_t *bt;
        while ((bt = model_next(&m, b, 2000, flush, 0, immediate)) != NULL)
                model_release(&m, b, bt);
        assert_int_equal(lb_batcher_pending(b), 0);
        assert_int_equal(lb_batcher_pending_bytes(b), 0);
        assert_int_equal(lb_batcher_next_deadline(b), INT64_MAX);
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
        for (int r = 0; r < LB_SEND__COUNT; r++)
                tot_reason[r] += m.by_reason[r];
        tot_closed += m.closed;
        free(m.acts);
        for (int i = 0; i < 3; i++)
                lb_partition_unref(m.parts[i]);
}

static void print_summary(void)
{
        print_message("property: %zu actions, %zu batches, %zu abandoned; "
                      "due %zu, full %zu, memory %zu, shutdown %zu, "
                      "revocation %zu; %zu deadlines brought forward\n",
                      tot_actions, tot_batches, tot_abandoned,
                      tot_reason[LB_SEND_DUE], tot_reason[LB_SEND_FULL],
                      tot_reason[LB_SEND_MEMORY], tot_reason[LB_SEND_SHUTDOWN],
                      tot_reason[LB_SEND_REVOCATION], tot_closed);
        /* Every rule was exercised (the close reasons are per action, not
         * a batch's). */
        for (int r = 0; r <= LB_SEND_REVOCATION; r++)
                assert_true(tot_reason[r] > 0);
        assert_true(tot_closed > 0);
        tot_actions = tot_batches = tot_abandoned = 0;
        memset(tot_reason, 0, sizeof(tot_reason));
}

static void test_property_with_capacity(void **state)
{
        (void)state;
        reset_totals();
        for (uint64_t seed = 1; seed <= 60; seed++)
                run_property(seed, 1);
        print_summary();
}

static void test_property_limited_inflight(void **state)
{
        (void)state;
        reset_totals();
        for (uint64_t seed = 1000; seed <= 1060; seed++)
                run_property(seed, 0);
        print_summary();
}

/* ---- one window, one request ------------------------------------------ */

typedef struct {
        int64_t arrival, age;
        size_t user, session, body_len;
        int first; /* its session's first action */
        int64_t seq;
} wev_t;

typedef struct {
        int64_t due; /* its first action's deadline */
        size_t n, sent;
        int64_t sent_at;
        size_t batch;
} wsess_t;

static int wev_cmp(const void *pa, const void *pb)
{
        const wev_t *a = pa, *b = pb;
        if (a->arrival != b->arrival)
                return a->arrival < b->arrival ? -1 : 1;
        if (a->user != b->user)
                return a->user < b->user ? -1 : 1;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int cmp_i64(const void *pa, const void *pb)
{
        int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
        return a < b ? -1 : a > b;
}

/* Sends every batch available at t (the API has room); records which
 * batch carried each session. */
static size_t window_drain(lb_batcher_t *b, int64_t t, const wev_t *evs,
                           wsess_t *sess, size_t *batch_id)
{
        size_t out = 0;
        lb_batch_t *bt;
        while ((bt = lb_batcher_next(b, t, LB_SEND_DUE, 0)) != NULL) {
                assert_true(bt->app >= 0 && (size_t)bt->app < lim.apps);
                check_batch(bt, 0, lim.users, lim.actions, lim.bytes);
                assert_int_equal(bt->reason, LB_SEND_DUE);
                ++*batch_id;
                for (size_t i = 0; i < bt->n; i++) {
                        const wev_t *ev = &evs[strtoul(
                            lb_action_value(bt->actions[i]), NULL, 10)];
                        wsess_t *s = &sess[ev->session];
                        assert_true(t <= bt->actions[i]->due_ms);
                        if (s->sent++ == 0) {
                                s->sent_at = t;
                                s->batch = *batch_id;
                        }
                        assert_int_equal(s->batch, *batch_id);
                }
                out += bt->n;
                finish(b, bt);
        }
        return out;
}

/* Each user's actions come in sessions: a first action (due d), the others
 * arriving before d (multi: before d - gather, as a due request of another
 * user may take it from then), the next session after d. The caller calls
 * next() after every add and at every lb_batcher_next_deadline(). Each
 * session must leave in exactly one request: at d alone, in
 * [d - gather, d] among others. */
static void run_window(uint64_t seed, int multi)
{
        rng_state = seed * 0x9e3779b97f4a7c15ULL + 7;
        pconf_t c = {0};
        c.apps = multi ? 1 + rndn(3) : 1;
        c.linger = (int64_t)rndn(60);
        c.wait = rndn(4) == 0 ? (int64_t)rndn((size_t)c.linger + 1)
                              : c.linger + (int64_t)rndn(400);
        pconf_derive(&c);
        c.max_users = 1 + rndn(4);
        /* Never full: a session fits any request. */
        lb_batcher_t *b = mkb(c.apps, NULL, (int64_t)c.max_users, 1000, 1 << 30,
                              c.linger, c.wait);
        size_t n_users = multi ? 2 + rndn(30) : 1;
        int apps[32];
        for (size_t u = 0; u < n_users; u++)
                apps[u] = (int)rndn(c.apps);

        size_t cap = 1024, n_ev = 0, n_sess = 0;
        wev_t *evs = malloc(cap * sizeof(*evs));
        wsess_t *sess = malloc(cap * sizeof(*sess));
        assert_non_null(evs);
        assert_non_null(sess);
        for (size_t u = 0; u < n_users; u++) {
                int64_t seq = 0;
                for (int64_t t0 = (int64_t)rndn(100); t0 < 4000;) {
                        int64_t age0 = rnd_age(c.wait);
                        int64_t d = ref_due(&c, t0, age0);
                        int64_t end = multi ? d - c.gather : d;
                        size_t k = end > t0 ? 1 + rndn(12) : 1;
                        int64_t at[12];
                        at[0] = t0;
                        for (size_t j = 1; j < k; j++)
                                at[j] = t0 + (int64_t)rndn((size_t)(end - t0));
                        qsort(at + 1, k - 1, sizeof(at[0]), cmp_i64);
                        if (n_ev + k > cap || n_sess == cap) {
                                cap *= 2;
                                evs = realloc(evs, cap * sizeof(*evs));
                                sess = realloc(sess, cap * sizeof(*sess));
                                assert_non_null(evs);
                                assert_non_null(sess);
                        }
                        sess[n_sess] = (wsess_t){.due = d, .n = k};
                        for (size_t j = 0; j < k; j++)
                                evs[n_ev++] = (wev_t){
                                    .arrival = at[j],
                                    .age = j ? rnd_age(c.wait) : age0,
                                    .user = u,
                                    .session = n_sess,
                                    .body_len = 1 + rndn(100),
                                    .seq = seq++,
                                    .first = j == 0,
                                };
                        n_sess++;
                        t0 = d + 1 + (int64_t)rndn(300);
                }
        }
        qsort(evs, n_ev, sizeof(*evs), wev_cmp);

        size_t i = 0, out = 0, batch_id = 0;
        int64_t last = INT64_MIN;
        char id[16], val[24];
        while (i < n_ev || lb_batcher_pending(b) > 0) {
                int64_t dl = lb_batcher_next_deadline(b);
                int64_t te = i < n_ev ? evs[i].arrival : INT64_MAX;
                if (dl < te) {
                        /* Nothing was left past its deadline. */
                        assert_true(dl > last);
                        out += window_drain(b, dl, evs, sess, &batch_id);
                        last = dl;
                        continue;
                }
                assert_true(te != INT64_MAX);
                const wev_t *ev = &evs[i];
                snprintf(id, sizeof(id), "w%zu", ev->user);
                snprintf(val, sizeof(val), "%zu", i);
                lb_action_t *a =
                    lb_action_new(arena(), id, strlen(id), val, strlen(val));
                assert_non_null(a);
                a->app = apps[ev->user];
                a->arrival_ms = ev->arrival;
                a->body_len = ev->body_len;
                a->offset = ev->seq;
                assert_int_equal(lb_batcher_add(b, a, id, strlen(id), ev->age),
                                 0);
                /* A session's first starts the user's queue afresh. */
                if (ev->first)
                        assert_int_equal(a->due_ms, sess[ev->session].due);
                i++;
                out += window_drain(b, te, evs, sess, &batch_id);
                last = te;
        }
        assert_int_equal(out, n_ev);
        for (size_t s = 0; s < n_sess; s++) {
                assert_int_equal(sess[s].sent, sess[s].n);
                if (multi) {
                        assert_true(sess[s].sent_at >= sess[s].due - c.gather);
                        assert_true(sess[s].sent_at <= sess[s].due);
                        tot_early += sess[s].sent_at < sess[s].due;
                } else {
                        assert_int_equal(sess[s].sent_at, sess[s].due);
                }
        }
        tot_actions += n_ev;
        tot_batches += batch_id;
        tot_sessions += n_sess;
        lb_batcher_destroy(b, lb_action_destroy);
        free(evs);
        free(sess);
}

static void test_window_one_user_sent_once(void **state)
{
        (void)state;
        reset_totals();
        for (uint64_t seed = 1; seed <= 200; seed++)
                run_window(seed, 0);
        print_message("window: %zu actions, %zu sessions, %zu requests\n",
                      tot_actions, tot_sessions, tot_batches);
        assert_int_equal(tot_batches, tot_sessions);
        tot_actions = tot_batches = tot_sessions = 0;
}

static void test_window_many_users_sent_once(void **state)
{
        (void)state;
        reset_totals();
        for (uint64_t seed = 1; seed <= 100; seed++)
                run_window(seed, 1);
        print_message("window: %zu actions, %zu sessions, %zu requests, %zu "
                      "sessions taken as company before their deadline\n",
                      tot_actions, tot_sessions, tot_batches, tot_early);
        /* Users share requests, some as company within the horizon. */
        assert_true(tot_batches < tot_sessions);
        assert_true(tot_early > 0);
        tot_actions = tot_batches = tot_sessions = tot_early = 0;
}

/* ---- billing comparison ---------------------------------------------- */

typedef struct {
        int64_t arrival;
        unsigned user;
} ev_t;

/* Closes batches in arrival order: when the next action would break a
 * limit, or `window` after the batch's first action. */
static size_t fifo_pairs(const ev_t *evs, size_t n, size_t max_users,
                         size_t max_actions, int64_t window)
{
        unsigned users[64];
        size_t n_users = 0, n_actions = 0, pairs = 0;
        int64_t first = 0;
        for (size_t i = 0; i < n; i++) {
                if (n_actions && evs[i].arrival >= first + window) {
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
        const int64_t linger = 500, wait = 5 * linger;
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
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, linger, wait);
        size_t pairs = 0, actions = 0, i = 0;
        char id[16];
        lb_batch_t *bt;
        for (int64_t t = 0; i < N || lb_batcher_pending(b) > 0; t++) {
                for (; i < N && evs[i].arrival == t; i++) {
                        snprintf(id, sizeof(id), "u%u", evs[i].user);
                        add(b, 0, id, t, 100, (int64_t)i);
                }
                while ((bt = lb_batcher_next(b, t, LB_SEND_DUE, 0)) != NULL) {
                        check_batch(bt, 0, 50, 500, 1 << 20);
                        for (size_t k = 0; k < bt->n; k++)
                                assert_true(t <= bt->actions[k]->due_ms);
                        pairs += bt->n_users;
                        actions += bt->n;
                        finish(b, bt);
                }
        }
        assert_int_equal(actions, N);
        /* FIFO closing after linger, and after the whole wait budget (the
         * same latency bound as the batcher's). */
        size_t fifo = fifo_pairs(evs, N, 50, 500, linger);
        size_t fifo_wait = fifo_pairs(evs, N, 50, 500, wait);
        print_message("billing: %zu lookups (%.3f per action) vs FIFO %zu "
                      "(%.3f), FIFO over the wait %zu (%.3f)\n",
                      pairs, (double)pairs / N, fifo, (double)fifo / N,
                      fifo_wait, (double)fifo_wait / N);
        assert_true(pairs < fifo);
        assert_true(pairs < fifo_wait);
        lb_batcher_destroy(b, lb_action_destroy);
        free(evs);
}

static void test_bytes_count_user_records(void **state)
{
        (void)state;
        /* what pending.max.bytes counts beside the actions: a record per
         * user (with its id), and the table and heap room that grew with
         * them; the records go with their users, the room stays */
        lb_batcher_t *b = mkb(1, NULL, 50, 500, 1 << 20, 0, 1000);
        size_t empty = lb_batcher_bytes(b);
        assert_true(empty > 0);
        char id[64];
        enum { USERS = 1000 };
        for (int i = 0; i < USERS; i++) {
                snprintf(id, sizeof(id), "user-%040d", i);
                add(b, 0, id, 0, 10, 0);
        }
        size_t held = lb_batcher_bytes(b);
        /* at least the id and a few pointers each, at most a few hundred */
        assert_true(held >= empty + USERS * (45 + 64));
        assert_true(held <= empty + USERS * 400);
        lb_batch_t *bt;
        while ((bt = lb_batcher_next(b, 2000, LB_SEND_DUE, 0)))
                finish(b, bt);
        size_t after = lb_batcher_bytes(b);
        assert_true(after < held - USERS * 45);
        assert_true(after >= empty);
        lb_batcher_destroy(b, NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_conf_rejected),
            cmocka_unit_test(test_send_reason_names),
            cmocka_unit_test(test_add_rejects),
            cmocka_unit_test(test_due_ms),
            cmocka_unit_test(test_add_sets_due),
            cmocka_unit_test(test_due_waits_for_deadline),
            cmocka_unit_test(test_age_shortens_wait),
            cmocka_unit_test(test_linger_zero),
            cmocka_unit_test(test_gather_horizon),
            cmocka_unit_test(test_company_goes_whole),
            cmocka_unit_test(test_edf_within_app),
            cmocka_unit_test(test_edf_across_apps),
            cmocka_unit_test(test_full_by_actions),
            cmocka_unit_test(test_full_by_bytes),
            cmocka_unit_test(test_one_user_over_max_actions),
            cmocka_unit_test(test_release_makes_full),
            cmocka_unit_test(test_ledger_gate),
            cmocka_unit_test(test_max_users),
            cmocka_unit_test(test_max_users_not_full),
            cmocka_unit_test(test_max_bytes),
            cmocka_unit_test(test_due_beats_full_across_apps),
            cmocka_unit_test(test_full_apps_take_turns),
            cmocka_unit_test(test_many_apps),
            cmocka_unit_test(test_cap_actions),
            cmocka_unit_test(test_cap_holds),
            cmocka_unit_test(test_memory_early),
            cmocka_unit_test(test_flush),
            cmocka_unit_test(test_busy_gate),
            cmocka_unit_test(test_pending_counters),
            cmocka_unit_test(test_next_deadline),
            cmocka_unit_test(test_abandon),
            cmocka_unit_test(test_abandon_busy_user_keeps_rest),
            cmocka_unit_test(test_expedite),
            cmocka_unit_test(test_cap_raise),
            cmocka_unit_test(test_many_users_table_growth),
            cmocka_unit_test(test_urgent_closes_window),
            cmocka_unit_test(test_close_waits_for_busy_user),
            cmocka_unit_test(test_close_linger_from_write),
            cmocka_unit_test(test_budget_per_app),
            cmocka_unit_test(test_overhead_grows_after_queued),
            cmocka_unit_test(test_property_with_capacity),
            cmocka_unit_test(test_property_limited_inflight),
            cmocka_unit_test(test_window_one_user_sent_once),
            cmocka_unit_test(test_window_many_users_sent_once),
            cmocka_unit_test(test_billing_vs_fifo),
            cmocka_unit_test(test_bytes_count_user_records),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
