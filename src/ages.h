/*
 * ages.h: how long the oldest of many waiting things has waited, exactly,
 * for things that finish in any order: counts by the second each began
 * waiting, oldest first. Seconds only grow (a monotonic clock), so a new
 * second is appended and a finished thing's second is found by binary
 * search; memory follows the seconds that still have something waiting
 * (emptied seconds in between are dropped once they are most).
 * Pure: the caller keeps each thing's second (what it passed to add).
 */
#ifndef LB_AGES_H
#define LB_AGES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
        int64_t sec;
        size_t count;
} lb_age_slot_t;

/** Zeroed: empty. */
typedef struct {
        lb_age_slot_t *slot; /* a ring of cap slots: len from head, ascending */
        size_t head, len, cap;
        size_t used; /* slots with a count (the oldest and newest have) */
        size_t total;
} lb_ages_t;

/** @brief Counts one thing that began waiting in second sec (not before
 *         the last one added's: an earlier sec is counted in the last's;
 *         so is a new second when there is no memory for it).
 *  @returns 0, or -1 when out of memory with nothing counted yet (nothing
 *           counted: the caller must not remove it). */
int lb_ages_add(lb_ages_t *g, int64_t sec);

/** @brief One thing added with sec finished (no-op when none is left). */
void lb_ages_remove(lb_ages_t *g, int64_t sec);

/** @returns things waiting. */
size_t lb_ages_count(const lb_ages_t *g);

/** @returns the second the oldest waiting thing began in; INT64_MAX when
 *           none waits. */
int64_t lb_ages_oldest(const lb_ages_t *g);

void lb_ages_free(lb_ages_t *g);

#endif
