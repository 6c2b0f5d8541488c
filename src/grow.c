/*
 * grow.c: growing an array by doubling (see grow.h).
 */
#include "grow.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *lb_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
        if (need <= *cap)
                return arr;
        size_t room = *cap ? *cap : first ? first : 1;
        while (room < need)
                room = room > SIZE_MAX / 2 ? need : room * 2;
        if (room > PTRDIFF_MAX / size) /* no object is larger */
                return NULL;
        void *p = realloc(arr, room * size);
        if (!p)
                return NULL;
        *cap = room;
        return p;
}

void *lb_grow_ring(void *ring, size_t *cap, size_t head, size_t len,
                   size_t size, size_t first)
{
        size_t room = *cap ? *cap * 2 : first;
        if (room < *cap || room > PTRDIFF_MAX / size)
                return NULL;
        char *p = malloc(room * size);
        if (!p)
                return NULL;
        if (len) {
                size_t tail = *cap - head; /* from head to the old end */
                const char *r = ring;
                if (len <= tail) {
                        memcpy(p, r + head * size, len * size);
                } else {
                        memcpy(p, r + head * size, tail * size);
                        memcpy(p + tail * size, r, (len - tail) * size);
                }
        }
        free(ring);
        *cap = room;
        return p;
}
