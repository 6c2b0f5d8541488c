/*
 * malloc_fails.h: allocation failure injection for a unit test linked with
 * -Wl,--wrap=malloc (tests/CMakeLists.txt): every malloc call linked into
 * it, its own and lbcore's, fails while malloc_fails is set. Include once.
 */
#ifndef LB_TEST_MALLOC_FAILS_H
#define LB_TEST_MALLOC_FAILS_H

#include <stddef.h>

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
static int malloc_fails;

void *__wrap_malloc(size_t size)
{
        return malloc_fails ? NULL : __real_malloc(size);
}

#endif
