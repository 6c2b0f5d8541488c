/*
 * ages.c: counts of waiting things by the second they began waiting, in a
 * ring of (second, count) slots kept ascending (see ages.h). Slots emptied
 * between the oldest and the newest are dropped once they are most of the
 * ring, so its memory follows the seconds that still have something.
 */
#include "ages.h"

#include <stdlib.h>

#include "grow.h"

static lb_age_slot_t *at(const lb_ages_t *g, size_t i)
{
        return &g->slot[(g->head + i) % g->cap];
}

/* Doubles the ring, its slots moved to the front in order. */
static int widen(lb_ages_t *g)
{
        lb_age_slot_t *s =
            lb_grow_ring(g->slot, &g->cap, g->head, g->len, sizeof(*s), 8);
        if (!s)
                return -1;
        g->slot = s;
        g->head = 0;
        return 0;
}

/* Moves the slots that have something into a ring of room for twice as
 * many; out of memory, the ring stays as it is (right, only larger). */
static void compact(lb_ages_t *g)
{
        size_t cap = 8;
        while (cap < 2 * g->used)
                cap *= 2;
        lb_age_slot_t *s = malloc(cap * sizeof(*s));
        if (!s)
                return;
        size_t n = 0;
        for (size_t i = 0; i < g->len; i++)
                if (at(g, i)->count)
                        s[n++] = *at(g, i);
        free(g->slot);
        g->slot = s;
        g->cap = cap;
        g->head = 0;
        g->len = n;
}

int lb_ages_add(lb_ages_t *g, int64_t sec)
{
        /* out of room and memory: counted in the newest second (its age
         * then overstated: it is newer), never lost to the count */
        if (g->len &&
            (at(g, g->len - 1)->sec >= sec || (g->len == g->cap && widen(g)))) {
                at(g, g->len - 1)->count++;
        } else {
                if (g->len == g->cap && widen(g))
                        return -1;
                *at(g, g->len++) = (lb_age_slot_t){.sec = sec, .count = 1};
                g->used++;
        }
        g->total++;
        return 0;
}

void lb_ages_remove(lb_ages_t *g, int64_t sec)
{
        if (!g->len)
                return;
        /* the first slot at or after sec: its own, or the one an earlier
         * sec was counted in */
        size_t lo = 0, hi = g->len;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (at(g, mid)->sec < sec)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == g->len)
                lo = g->len - 1;  /* not added as it says: the newest */
        while (!at(g, lo)->count) /* emptied: a later one (the newest has
                                     some, see below) */
                lo++;
        if (!--at(g, lo)->count)
                g->used--;
        g->total--;
        while (g->len && !at(g, 0)->count) { /* the oldest left */
                g->head = (g->head + 1) % g->cap;
                g->len--;
        }
        while (g->len && !at(g, g->len - 1)->count)
                g->len--;
        if (g->len > 16 && g->len > 4 * g->used)
                compact(g);
}

size_t lb_ages_count(const lb_ages_t *g)
{
        return g->total;
}

int64_t lb_ages_oldest(const lb_ages_t *g)
{
        return g->len ? at(g, 0)->sec : INT64_MAX;
}

void lb_ages_free(lb_ages_t *g)
{
        free(g->slot);
        *g = (lb_ages_t){0};
}
