/*
 * grow.c: growing an array by doubling (see grow.h).
 */
#include "grow.h"

#include <stdint.h>
#include <stdlib.h>

void *lb_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
        if (need <= *cap)
                return arr;
        size_t room = *cap ? *cap : first ? first : 1;
        while (room < need)
                room = room > SIZE_MAX / 2 ? need : room * 2;
        if (room > SIZE_MAX / size)
                return NULL;
        void *p = realloc(arr, room * size);
        if (!p)
                return NULL;
        *cap = room;
        return p;
}
