/*
 * test_flight.c: the flight state machine (src/flight.c): a flight owns
 * exactly its unresolved actions, 403 halves go in order, retries wait for
 * their backoff or a deferral (the ledger's hold), a resolved flight ends
 * at once (holds are the ledger's), given-up actions leave the running
 * range's positions alone and are compacted out of the others,
 * abandoning hands each unresolved action over exactly once, and a cut
 * whole batch's answer tells the cap its parts read whole support.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flight.h"

#define N 8

static lb_action_t pool[N];
static lb_action_t *slots[N];
/* Per slot, what the batch records of its action (its user record): here
 * a stand-in per original position, never dereferenced. */
static max_align_t user_rec[N];
static struct lb_user_s *users[N];

static struct lb_user_s *user_at(size_t i)
{
        return (struct lb_user_s *)(void *)&user_rec[i];
}

/* A flight over N actions whose offsets are their original positions. */
static void start(lb_flight_t *f, size_t n)
{
        memset(pool, 0, sizeof(pool));
        for (size_t i = 0; i < n; i++) {
                pool[i].offset = (int64_t)i;
                slots[i] = &pool[i];
                users[i] = user_at(i);
        }
        assert_int_equal(lb_flight_init(f, slots, users, n), 0);
}

/* Every action still in the flight has its own tag beside it. */
static void expect_tags_follow(size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (slots[i])
                        assert_ptr_equal(users[i],
                                         user_at((size_t)slots[i]->offset));
}

static void expect_range(const lb_flight_t *f, size_t lo, size_t hi)
{
        size_t l, h;
        assert_int_equal(lb_flight_range(f, &l, &h), 1);
        assert_int_equal(l, lo);
        assert_int_equal(h, hi);
}

/* Takes the current range's actions and pops it; @returns their offsets
 * as a bitmask (given-up slots contribute nothing). */
static unsigned resolve(lb_flight_t *f)
{
        size_t lo, hi;
        unsigned got = 0;
        assert_int_equal(lb_flight_range(f, &lo, &hi), 1);
        for (size_t i = lo; i < hi; i++) {
                lb_action_t *a = lb_flight_take(f, i);
                if (a)
                        got |= 1u << a->offset;
                assert_null(f->acts[i]);
        }
        lb_flight_resolved(f);
        return got;
}

static void test_send_resolve_end(void **state)
{
        (void)state;
        lb_flight_t f;
        start(&f, 4);
        expect_range(&f, 0, 4);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_SEND);
        lb_flight_sent(&f);
        assert_int_equal(f.attempt, 1);
        assert_int_equal(lb_flight_next(&f, 1000), LB_FLIGHT_WAIT);
        assert_int_equal(lb_flight_wake(&f), INT64_MAX);
        lb_flight_answered(&f);
        assert_int_equal(resolve(&f), 0xf);
        for (size_t i = 0; i < 4; i++)
                assert_null(slots[i]); /* nothing left to free twice */
        assert_int_equal(lb_flight_range(&f, &(size_t){0}, &(size_t){0}), 0);
        assert_int_equal(lb_flight_next(&f, 10), LB_FLIGHT_END);
        lb_flight_clear(&f);
}

static void test_split_in_order(void **state)
{
        (void)state;
        lb_flight_t f;
        start(&f, 5);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        assert_int_equal(lb_flight_split(&f), 0);
        expect_range(&f, 0, 2);
        assert_int_equal(f.attempt, 0);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        assert_int_equal(lb_flight_split(&f), 0);
        expect_range(&f, 0, 1);
        /* Resolved in send order: 0, 1, then the second half 2..4. */
        assert_int_equal(resolve(&f), 1u << 0);
        expect_range(&f, 1, 2);
        assert_int_equal(resolve(&f), 1u << 1);
        expect_range(&f, 2, 5);
        assert_int_equal(resolve(&f), 0x1c);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
}

static void test_retry_waits_for_backoff(void **state)
{
        (void)state;
        lb_flight_t f;
        start(&f, 2);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 350);
        assert_int_equal(lb_flight_next(&f, 349), LB_FLIGHT_WAIT);
        assert_int_equal(lb_flight_wake(&f), 350);
        assert_int_equal(lb_flight_next(&f, 350), LB_FLIGHT_SEND);
        lb_flight_sent(&f);
        assert_int_equal(f.attempt, 2);
        lb_flight_answered(&f);
        assert_int_equal(resolve(&f), 0x3);
        assert_int_equal(f.attempt, 0);
        lb_flight_clear(&f);
}

static void test_defer_then_end(void **state)
{
        (void)state;
        lb_flight_t f;
        start(&f, 2);
        lb_flight_sent(&f);
        lb_flight_answered(&f); /* e.g. timed out at 1000 */
        lb_flight_retry_at(&f, 1200);
        lb_flight_defer(&f, 4000); /* its users are held until 4000 */
        lb_flight_defer(&f, 3000); /* an earlier deferral changes nothing */
        assert_int_equal(lb_flight_next(&f, 1200), LB_FLIGHT_WAIT);
        assert_int_equal(lb_flight_wake(&f), 4000);
        assert_int_equal(lb_flight_next(&f, 4000), LB_FLIGHT_SEND);
        lb_flight_sent(&f);
        assert_int_equal(f.attempt, 2);
        lb_flight_uncount(&f); /* outage mode: that attempt does not count */
        assert_int_equal(f.attempt, 1);
        assert_true(lb_flight_wake(&f) == INT64_MAX);
        lb_flight_answered(&f);
        assert_int_equal(resolve(&f), 0x3); /* e.g. dead-lettered */
        /* Resolved: the flight ends at once; the ledger keeps the users. */
        assert_int_equal(lb_flight_next(&f, 4000), LB_FLIGHT_END);
        assert_int_equal(lb_flight_wake(&f), 0);
        lb_flight_clear(&f);
}

static void test_hasten_shortens_a_wait_only(void **state)
{
        (void)state;
        lb_flight_t f;
        start(&f, 2);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 1000 + 3600 * 1000); /* Retry-After: 1 h */
        lb_flight_hasten(&f, 6000);                 /* outage mode's cap */
        assert_int_equal(lb_flight_wake(&f), 6000);
        lb_flight_hasten(&f, 9000); /* a later bound changes nothing */
        assert_int_equal(lb_flight_wake(&f), 6000);
        assert_int_equal(lb_flight_next(&f, 5999), LB_FLIGHT_WAIT);
        assert_int_equal(lb_flight_next(&f, 6000), LB_FLIGHT_SEND);
        lb_flight_clear(&f);
}

static int odd(const lb_action_t *a)
{
        return a->offset % 2;
}

static int below_3(const lb_action_t *a)
{
        return a->offset < 3;
}

static int below_2(const lb_action_t *a)
{
        return a->offset < 2;
}

static int every(const lb_action_t *a)
{
        (void)a;
        return 1;
}

static void count_drop(lb_action_t *a, void *opaque)
{
        unsigned *dropped = opaque;
        assert_false(*dropped & (1u << a->offset)); /* once each */
        *dropped |= 1u << a->offset;
}

/* A flight over n actions whose first attempt was answered 403: split in
 * halves, [0, n/2) then [n/2, n), the first half on the wire. */
static void first_half_sent(lb_flight_t *f, size_t n)
{
        start(f, n);
        lb_flight_sent(f);
        lb_flight_answered(f);
        assert_int_equal(lb_flight_split(f), 0);
        expect_range(f, 0, n / 2);
        lb_flight_sent(f);
}

static void test_give_up_while_sending(void **state)
{
        (void)state;
        lb_flight_t f;
        unsigned dropped = 0;
        first_half_sent(&f, 8);
        assert_int_equal(lb_flight_give_up(&f, odd, count_drop, &dropped), 4);
        assert_int_equal(dropped, 0xaa);
        /* The running range keeps its positions (its answer matches by
         * position); the waiting one is compacted, in order. */
        expect_range(&f, 0, 4);
        assert_ptr_equal(slots[0], &pool[0]);
        assert_null(slots[1]);
        assert_ptr_equal(slots[2], &pool[2]);
        assert_null(slots[3]);
        lb_flight_answered(&f);
        assert_int_equal(resolve(&f), 0x05);
        expect_range(&f, 4, 6);
        assert_ptr_equal(slots[4], &pool[4]);
        assert_ptr_equal(slots[5], &pool[6]);
        expect_tags_follow(8);
        assert_int_equal(resolve(&f), 0x50);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
}

/* At shutdown's give-up, what is on the wire stays for its answer. */
static void test_give_up_waiting(void **state)
{
        (void)state;
        lb_flight_t f;
        unsigned dropped = 0;
        first_half_sent(&f, 8);
        assert_int_equal(lb_flight_give_up_waiting(&f, count_drop, &dropped),
                         4);
        assert_int_equal(dropped, 0xf0);
        expect_range(&f, 0, 4);
        lb_flight_answered(&f);
        assert_int_equal(resolve(&f), 0x0f);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
        /* everything on the wire given up meanwhile (a revocation): once
         * answered, nothing is left to give up and the range is popped,
         * never sent empty */
        dropped = 0;
        first_half_sent(&f, 8);
        assert_int_equal(lb_flight_give_up(&f, every, count_drop, &dropped), 8);
        lb_flight_answered(&f);
        assert_int_equal(lb_flight_give_up_waiting(&f, count_drop, &dropped),
                         0);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
        /* nothing running (a retry's backoff): everything goes */
        dropped = 0;
        start(&f, 3);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 500);
        assert_int_equal(lb_flight_give_up_waiting(&f, count_drop, &dropped),
                         3);
        assert_int_equal(dropped, 0x7);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
}

static void test_give_up_then_retry_or_split(void **state)
{
        (void)state;
        lb_flight_t f;
        unsigned dropped = 0;
        /* A retry of a range whose actions were given up sends the rest. */
        start(&f, 4);
        lb_flight_sent(&f);
        lb_flight_give_up(&f, odd, count_drop, &dropped);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 10);
        expect_range(&f, 0, 2);
        assert_ptr_equal(slots[1], &pool[2]);
        /* the batch's record of who is on the wire moved with them: slot 1
         * is action 2's user now, not action 1's */
        assert_ptr_equal(users[1], user_at(2));
        expect_tags_follow(4);
        lb_flight_clear(&f);
        /* A 403 for a range left with one action: sent again, not split. */
        dropped = 0;
        start(&f, 2);
        lb_flight_sent(&f);
        lb_flight_give_up(&f, odd, count_drop, &dropped);
        lb_flight_answered(&f);
        assert_int_equal(lb_flight_split(&f), 0);
        expect_range(&f, 0, 1);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_SEND);
        lb_flight_clear(&f);
        /* Everything given up while sending: nothing to retry, it ends
         * once the attempt has ended. */
        dropped = 0;
        start(&f, 3);
        lb_flight_sent(&f);
        assert_int_equal(lb_flight_give_up(&f, every, count_drop, &dropped), 3);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_WAIT);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 500);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
        /* Everything given up while waiting: it ends at once. */
        dropped = 0;
        start(&f, 3);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 500);
        lb_flight_give_up(&f, every, count_drop, &dropped);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
}

/* A half waiting for its retry (a 429's Retry-After of an hour) whose
 * actions are all given up (their partition revoked or lost): the next
 * half, never sent, becomes current and goes at once; it does not inherit
 * the given-up half's wait. Nor when the wait was set after the give-up
 * emptied the half on the wire. */
static void test_given_up_half_leaves_no_wait(void **state)
{
        (void)state;
        lb_flight_t f;
        unsigned dropped = 0;
        first_half_sent(&f, 4);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 3600000);
        assert_int_equal(lb_flight_next(&f, 2000), LB_FLIGHT_WAIT);
        assert_int_equal(lb_flight_give_up(&f, below_2, count_drop, &dropped),
                         2); /* the first half: 0 and 1 */
        expect_range(&f, 2, 4);
        assert_int_equal(f.attempt, 0);
        assert_int_equal(lb_flight_next(&f, 2000), LB_FLIGHT_SEND);
        assert_int_equal(lb_flight_wake(&f), 0);
        lb_flight_clear(&f);

        /* the same with a wait the ledger set (defer) before the give-up */
        dropped = 0;
        first_half_sent(&f, 4);
        lb_flight_answered(&f);
        lb_flight_defer(&f, 90000);
        lb_flight_give_up(&f, below_2, count_drop, &dropped);
        expect_range(&f, 2, 4);
        assert_int_equal(lb_flight_next(&f, 2000), LB_FLIGHT_SEND);
        lb_flight_clear(&f);
}

/* A half answered 403 after every action in it was given up on the wire:
 * the next half goes on whole, as it is; it was never sent, and nothing
 * says the API would refuse it (split, it cost a request and a billed user
 * each more). */
static void test_split_of_emptied_half(void **state)
{
        (void)state;
        lb_flight_t f;
        unsigned dropped = 0;
        first_half_sent(&f, 6);
        assert_int_equal(lb_flight_give_up(&f, below_3, count_drop, &dropped),
                         3);
        lb_flight_answered(&f);
        assert_int_equal(lb_flight_split(&f), 0); /* its 403 */
        expect_range(&f, 3, 6);
        assert_int_equal(f.range_cnt, 2);
        assert_int_equal(f.attempt, 0);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_SEND);
        assert_int_equal(resolve(&f), 0x38);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
}

static void test_attempts_per_range(void **state)
{
        (void)state;
        lb_flight_t f;
        unsigned dropped = 0;
        start(&f, 4);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        lb_flight_split(&f);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 0);
        lb_flight_sent(&f);
        assert_int_equal(f.attempt, 2);
        lb_flight_answered(&f);
        lb_flight_retry_at(&f, 0);
        /* The current range is given up: the next one starts at 0. */
        lb_flight_give_up(&f, every, count_drop, &dropped);
        assert_int_equal(f.attempt, 0);
        lb_flight_clear(&f);
}

static void test_abandon(void **state)
{
        (void)state;
        lb_flight_t f;
        unsigned dropped = 0;
        start(&f, 6);
        lb_flight_sent(&f);
        lb_flight_answered(&f);
        lb_flight_split(&f);
        assert_int_equal(resolve(&f), 0x7); /* the first half resolved */
        lb_flight_abandon(&f, count_drop, &dropped);
        assert_int_equal(dropped, 0x38); /* only the unresolved ones */
        for (size_t i = 0; i < 6; i++)
                assert_null(slots[i]);
        assert_int_equal(lb_flight_next(&f, 0), LB_FLIGHT_END);
        lb_flight_clear(&f);
}

/* The current range's answer read whole: resolved. */
static void read_whole(lb_flight_t *f)
{
        lb_flight_answer_read(f);
        resolve(f);
}

/* Splits f in halves, reads the first whole, then the second's answer is
 * cut (a part: not the whole batch's) and its halves read whole: no cap
 * comes of it. Clears f. */
static void second_half_cut(lb_flight_t *f)
{
        assert_int_equal(lb_flight_split(f), 0);
        read_whole(f);
        assert_int_equal(lb_flight_answer_cut(f), 0);
        assert_int_equal(lb_flight_split(f), 0);
        read_whole(f);
        read_whole(f);
        assert_int_equal(lb_flight_cut_cap(f), 0);
        lb_flight_clear(f);
}

/* Answers too large to read: the longest part of a cut whole batch read
 * whole is the cap it tells (the review's case: many users' few actions
 * each); nothing when one action's or one user's answers were too large
 * (a huge start: that user, not the request's size), when only a part was
 * cut, when actions were given up, or when nothing was read since. */
static void test_cut_cap(void **state)
{
        (void)state;
        lb_flight_t f;
        start(&f, N); /* 8 cut: 4 and 4 read */
        assert_int_equal(lb_flight_answer_cut(&f), 1);
        assert_int_equal(lb_flight_split(&f), 0);
        read_whole(&f);
        read_whole(&f);
        assert_int_equal(lb_flight_cut_cap(&f), 4);
        lb_flight_clear(&f);

        start(&f, N); /* 8 cut, 4 cut, 2 + 2 read, 4 read: still 4 */
        lb_flight_answer_cut(&f);
        assert_int_equal(lb_flight_split(&f), 0);
        lb_flight_answer_cut(&f);
        assert_int_equal(lb_flight_split(&f), 0);
        for (int i = 0; i < 3; i++) {
                read_whole(&f);
        }
        assert_int_equal(lb_flight_cut_cap(&f), 4);
        lb_flight_clear(&f);

        start(&f, 2); /* one action's own answer: it explains the cut */
        lb_flight_answer_cut(&f);
        assert_int_equal(lb_flight_split(&f), 0);
        lb_flight_answer_cut(&f);
        resolve(&f);
        read_whole(&f);
        assert_int_equal(lb_flight_cut_cap(&f), 0);
        lb_flight_clear(&f);

        start(&f, N); /* read whole at once: no cut */
        read_whole(&f);
        assert_int_equal(lb_flight_cut_cap(&f), 0);
        lb_flight_clear(&f);

        start(&f, N); /* the second half cut after the first was read: a
                         part, though the only range left */
        second_half_cut(&f);

        start(&f, N); /* a part cut after a split for another reason */
        assert_int_equal(lb_flight_split(&f), 0);
        lb_flight_answer_cut(&f);
        assert_int_equal(lb_flight_split(&f), 0);
        read_whole(&f);
        assert_int_equal(lb_flight_cut_cap(&f), 0);
        lb_flight_clear(&f);

        start(&f, N); /* parts smaller for actions given up: say less */
        unsigned dropped = 0;
        assert_int_equal(lb_flight_answer_cut(&f), 1);
        assert_int_equal(lb_flight_give_up(&f, below_3, count_drop, &dropped),
                         3);
        assert_int_equal(lb_flight_split(&f), 0);
        read_whole(&f);
        read_whole(&f);
        assert_int_equal(lb_flight_cut_cap(&f), 0);
        lb_flight_clear(&f);

        start(&f, N); /* a part of one user's actions cut: its answers */
        for (size_t i = 4; i < N; i++)
                users[i] = user_at(4);
        assert_int_equal(lb_flight_answer_cut(&f), 1);
        second_half_cut(&f);

        start(&f, N); /* cut, then nothing read (dead-lettered, given up) */
        lb_flight_answer_cut(&f);
        resolve(&f);
        assert_int_equal(lb_flight_cut_cap(&f), 0);
        lb_flight_clear(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_send_resolve_end),
            cmocka_unit_test(test_split_in_order),
            cmocka_unit_test(test_retry_waits_for_backoff),
            cmocka_unit_test(test_defer_then_end),
            cmocka_unit_test(test_hasten_shortens_a_wait_only),
            cmocka_unit_test(test_give_up_while_sending),
            cmocka_unit_test(test_give_up_waiting),
            cmocka_unit_test(test_give_up_then_retry_or_split),
            cmocka_unit_test(test_given_up_half_leaves_no_wait),
            cmocka_unit_test(test_split_of_emptied_half),
            cmocka_unit_test(test_attempts_per_range),
            cmocka_unit_test(test_abandon),
            cmocka_unit_test(test_cut_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
