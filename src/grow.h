/*
 * grow.h: growing an array by doubling, the one way the bridge's tables,
 * lists, buffers and rings make room. Pure.
 */
#ifndef LB_GROW_H
#define LB_GROW_H

#include <stddef.h>

/**
 * @brief Makes room for at least need elements of size bytes in arr, whose
 *        room is *cap elements: unchanged when it has it, else reallocated
 *        to first elements (an empty array) or twice its room, doubled
 *        again until need fits.
 * @returns the array (moved or not) with *cap its new room; NULL when out
 *          of memory or when the room would be more bytes than any object
 *          has (PTRDIFF_MAX), with arr and *cap untouched (arr still owned
 *          by the caller). need >= 1.
 */
void *lb_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first);

/**
 * @brief Doubles a ring of *cap elements of size bytes (first elements when
 *        it has none), its len elements from index head (wrapping at *cap)
 *        moved to the front of the new array, in order; the old one is
 *        freed.
 * @returns the new array with *cap its room (its elements start at 0);
 *          NULL when out of memory or when the room would be more bytes
 *          than any object has (PTRDIFF_MAX), with the ring and *cap
 *          untouched.
 */
void *lb_grow_ring(void *ring, size_t *cap, size_t head, size_t len,
                   size_t size, size_t first);

#endif
