/*
 * arena.c: chunks of LB_ARENA_CHUNK bytes, mapped at an address aligned to
 * their size, each with a small header (its arena, size, bump offset and
 * live blocks). Blocks are bumped from the current chunk; a chunk that is
 * not current goes back when its last block is freed (a few are kept
 * spare, so a steady flow does not map and unmap all the time). Under
 * AddressSanitizer the unused part of a chunk is poisoned and each block is
 * followed by a poisoned gap, so overruns are still caught.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define REDZONE        16
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REDZONE 0
#define POISON(p, n)
#define UNPOISON(p, n)
#endif

/* Empty chunks kept for reuse instead of unmapped. */
#define SPARE_MAX 4

typedef struct chunk_s {
        lb_arena_t *arena;
        struct chunk_s *prev, *next; /* the arena's chunks, or its spares */
        size_t size; /* mapped bytes, a multiple of LB_ARENA_CHUNK */
        size_t used; /* bump offset from the chunk's start */
        size_t live; /* blocks not yet freed */
} chunk_t;

#define HEADER ((sizeof(chunk_t) + 7) & ~(size_t)7)

struct lb_arena_s {
        chunk_t *current;
        chunk_t *all; /* chunks in use, current included */
        chunk_t *spare;
        size_t spare_cnt;
        size_t bytes;  /* mapped by chunks alive or spare */
        size_t blocks; /* alive */
};

static size_t round_up(size_t n, size_t to)
{
        return (n + to - 1) / to * to;
}

/* Maps size bytes (a multiple of LB_ARENA_CHUNK) at an aligned address:
 * maps one chunk more and gives back the misaligned ends. */
static chunk_t *map_chunk(size_t size)
{
        size_t span = size + LB_ARENA_CHUNK;
        char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        uintptr_t at = ((uintptr_t)p + LB_ARENA_CHUNK - 1) &
                       ~(uintptr_t)(LB_ARENA_CHUNK - 1);
        size_t head = at - (uintptr_t)p;
        if (head)
                munmap(p, head);
        if (span - head > size)
                munmap((char *)at + size, span - head - size);
        return (chunk_t *)at;
}

static chunk_t *chunk_new(lb_arena_t *a, size_t size)
{
        chunk_t *c;
        if (size == LB_ARENA_CHUNK && a->spare) {
                c = a->spare;
                a->spare = c->next;
                a->spare_cnt--;
        } else {
                c = map_chunk(size);
                if (!c)
                        return NULL;
                a->bytes += size;
        }
        c->arena = a;
        c->prev = NULL;
        c->next = a->all;
        if (a->all)
                a->all->prev = c;
        a->all = c;
        c->size = size;
        c->used = HEADER;
        c->live = 0;
        POISON((char *)c + HEADER, size - HEADER);
        return c;
}

/* A chunk without live blocks that is not current: kept spare or unmapped. */
static void chunk_release(lb_arena_t *a, chunk_t *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                a->all = c->next;
        if (c->next)
                c->next->prev = c->prev;
        if (c->size == LB_ARENA_CHUNK && a->spare_cnt < SPARE_MAX) {
                c->next = a->spare;
                a->spare = c;
                a->spare_cnt++;
                return;
        }
        a->bytes -= c->size;
        UNPOISON(c, c->size);
        munmap(c, c->size);
}

lb_arena_t *lb_arena_new(void)
{
        return calloc(1, sizeof(lb_arena_t));
}

void *lb_arena_alloc(lb_arena_t *a, size_t n)
{
        if (n > SIZE_MAX / 2)
                return NULL;
        size_t need = round_up(n ? n : 1, 8) + REDZONE;
        chunk_t *c = a->current;
        if (!c || c->size - c->used < need) {
                size_t size = round_up(HEADER + need, LB_ARENA_CHUNK);
                chunk_t *fresh = chunk_new(a, size);
                if (!fresh)
                        return NULL;
                if (size > LB_ARENA_CHUNK) {
                        c = fresh; /* a block of its own: not current */
                } else {
                        if (c && c->live == 0)
                                chunk_release(a, c);
                        a->current = c = fresh;
                }
        }
        void *p = (char *)c + c->used;
        c->used += need;
        c->live++;
        a->blocks++;
        UNPOISON(p, n);
        return p;
}

void lb_arena_free(void *block)
{
        if (!block)
                return;
        chunk_t *c =
            (chunk_t *)((uintptr_t)block & ~(uintptr_t)(LB_ARENA_CHUNK - 1));
        lb_arena_t *a = c->arena;
        a->blocks--;
        if (--c->live > 0)
                return;
        if (c == a->current) {
                c->used = HEADER; /* empty: bump from the start again */
                POISON((char *)c + HEADER, c->size - HEADER);
                return;
        }
        chunk_release(a, c);
}

size_t lb_arena_bytes(const lb_arena_t *a)
{
        return a->bytes;
}

size_t lb_arena_blocks(const lb_arena_t *a)
{
        return a->blocks;
}

static void unmap_all(chunk_t *c)
{
        while (c) {
                chunk_t *next = c->next;
                UNPOISON(c, c->size);
                munmap(c, c->size);
                c = next;
        }
}

void lb_arena_destroy(lb_arena_t *a)
{
        if (!a)
                return;
        unmap_all(a->all);
        unmap_all(a->spare);
        free(a);
}
