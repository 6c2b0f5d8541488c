/*
 * flight.c: the flight state machine of flight.h. Owns the range stack and
 * the rule that a slot is NULL once its action left the flight; never frees
 * an action (drop callbacks and the caller do).
 */
#include "flight.h"

#include <stdlib.h>

#include "grow.h"

static int reserve(lb_flight_t *f, size_t entries)
{
        size_t *r = lb_grow(f->ranges, &f->range_cap, entries, sizeof(*r), 8);
        if (!r)
                return -1;
        f->ranges = r;
        return 0;
}

/* Room must have been reserved. */
static void push(lb_flight_t *f, size_t lo, size_t hi)
{
        f->ranges[f->range_cnt++] = lo;
        f->ranges[f->range_cnt++] = hi;
}

int lb_flight_init(lb_flight_t *f, lb_action_t **acts, struct lb_user_s **users,
                   size_t n)
{
        *f = (lb_flight_t){.acts = acts, .users = users, .n = n};
        if (reserve(f, 2))
                return -1;
        push(f, 0, n);
        return 0;
}

void lb_flight_clear(lb_flight_t *f)
{
        free(f->ranges);
        f->ranges = NULL;
        f->range_cnt = f->range_cap = 0;
}

int lb_flight_range(const lb_flight_t *f, size_t *lo, size_t *hi)
{
        if (!f->range_cnt)
                return 0;
        *lo = f->ranges[f->range_cnt - 2];
        *hi = f->ranges[f->range_cnt - 1];
        return 1;
}

lb_flight_step_t lb_flight_next(const lb_flight_t *f, int64_t now)
{
        if (f->sending)
                return LB_FLIGHT_WAIT;
        if (!f->range_cnt)
                return LB_FLIGHT_END;
        return now < f->due_ms ? LB_FLIGHT_WAIT : LB_FLIGHT_SEND;
}

int64_t lb_flight_wake(const lb_flight_t *f)
{
        if (f->sending)
                return INT64_MAX;
        return f->range_cnt ? f->due_ms : 0;
}

void lb_flight_sent(lb_flight_t *f)
{
        f->sending = 1;
        f->attempt++;
}

/* Closes the gaps of cleared slots in every range not being sent, keeping
 * the order, and removes emptied ranges. A new current range starts its
 * attempts from zero, without the emptied one's wait (a backoff, a
 * Retry-After, a ledger hold: flight_step asks the ledger again before it
 * goes). @returns 1 when the current range was emptied (the next one,
 * never sent, is current now), else 0. */
static int compact(lb_flight_t *f)
{
        size_t w = 0, top = f->range_cnt;
        int emptied = 0;
        for (size_t r = 0; r < f->range_cnt; r += 2) {
                size_t lo = f->ranges[r], hi = f->ranges[r + 1];
                if (!(f->sending && r + 2 == f->range_cnt)) {
                        size_t k = lo;
                        for (size_t i = lo; i < hi; i++) {
                                if (!f->acts[i])
                                        continue;
                                if (f->users)
                                        f->users[k] = f->users[i];
                                f->acts[k++] = f->acts[i];
                        }
                        for (size_t i = k; i < hi; i++)
                                f->acts[i] = NULL;
                        hi = k;
                        if (hi == lo) {
                                if (r + 2 == top) {
                                        f->attempt = 0;
                                        f->due_ms = 0;
                                        emptied = 1;
                                }
                                continue;
                        }
                }
                f->ranges[w++] = lo;
                f->ranges[w++] = hi;
        }
        f->range_cnt = w;
        return emptied;
}

void lb_flight_answered(lb_flight_t *f)
{
        f->sending = 0;
}

void lb_flight_uncount(lb_flight_t *f)
{
        if (f->attempt > 0)
                f->attempt--;
}

void lb_flight_defer(lb_flight_t *f, int64_t until)
{
        if (until > f->due_ms)
                f->due_ms = until;
}

void lb_flight_hasten(lb_flight_t *f, int64_t by)
{
        if (by < f->due_ms)
                f->due_ms = by;
}

lb_action_t *lb_flight_take(lb_flight_t *f, size_t i)
{
        lb_action_t *a = f->acts[i];
        f->acts[i] = NULL;
        return a;
}

int lb_flight_answer_cut(lb_flight_t *f)
{
        size_t lo, hi;
        if (!lb_flight_range(f, &lo, &hi))
                return 0;
        size_t i = lo + 1; /* one user's actions alone? */
        while (i < hi && (!f->users || f->users[i] == f->users[lo]))
                i++;
        if (i == hi)
                f->cut_alone = 1;
        if (f->split)
                return 0;
        f->cut = 1;
        return 1;
}

void lb_flight_answer_read(lb_flight_t *f)
{
        size_t lo, hi;
        if (f->cut && lb_flight_range(f, &lo, &hi) && hi - lo > f->read_most)
                f->read_most = hi - lo;
}

size_t lb_flight_cut_cap(const lb_flight_t *f)
{
        return f->cut && !f->cut_alone && !f->lost ? f->read_most : 0;
}

void lb_flight_resolved(lb_flight_t *f)
{
        if (f->range_cnt)
                f->range_cnt -= 2;
        f->attempt = 0;
}

int lb_flight_split(lb_flight_t *f)
{
        size_t lo, hi;
        if (reserve(f, f->range_cnt + 2))
                return -1;
        /* Emptied (popped): the next range was never sent, it goes on as
         * it is. One left: sent again. */
        if (compact(f) || !lb_flight_range(f, &lo, &hi) || hi - lo < 2)
                return 0;
        size_t mid = lo + (hi - lo) / 2;
        f->range_cnt -= 2;
        push(f, mid, hi); /* the second half below the first: in order */
        push(f, lo, mid);
        f->attempt = 0;
        f->split = 1;
        return 0;
}

void lb_flight_retry_at(lb_flight_t *f, int64_t due_ms)
{
        if (!compact(f)) /* else it was emptied: the next goes on */
                f->due_ms = due_ms;
}

/* Gives up the actions give_up() picks (NULL: all) outside [keep_lo,
 * keep_hi), then compacts even when none was: a range another give-up
 * emptied while it was sent is popped here, never sent empty. */
static size_t give_up_outside(lb_flight_t *f,
                              int (*give_up)(const lb_action_t *a),
                              size_t keep_lo, size_t keep_hi,
                              void (*drop)(lb_action_t *a, void *opaque),
                              void *opaque)
{
        size_t n = 0;
        for (size_t i = 0; i < f->n; i++) {
                if (f->acts[i] && (i < keep_lo || i >= keep_hi) &&
                    (!give_up || give_up(f->acts[i]))) {
                        drop(lb_flight_take(f, i), opaque);
                        n++;
                }
        }
        if (n)
                f->lost = 1;
        compact(f);
        return n;
}

size_t lb_flight_give_up(lb_flight_t *f, int (*give_up)(const lb_action_t *a),
                         void (*drop)(lb_action_t *a, void *opaque),
                         void *opaque)
{
        return give_up_outside(f, give_up, 0, 0, drop, opaque);
}

size_t lb_flight_give_up_waiting(lb_flight_t *f,
                                 void (*drop)(lb_action_t *a, void *opaque),
                                 void *opaque)
{
        size_t lo = 0, hi = 0;
        if (!f->sending || !lb_flight_range(f, &lo, &hi))
                lo = hi = 0;
        return give_up_outside(f, NULL, lo, hi, drop, opaque);
}

void lb_flight_abandon(lb_flight_t *f,
                       void (*drop)(lb_action_t *a, void *opaque), void *opaque)
{
        for (size_t i = 0; i < f->n; i++)
                if (f->acts[i])
                        drop(lb_flight_take(f, i), opaque);
        f->range_cnt = 0;
}
