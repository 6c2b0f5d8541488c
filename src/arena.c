/*
 * arena.c: a slab allocator. Memory comes in chunks of LB_ARENA_CHUNK
 * bytes, mapped at an address aligned to their size; each chunk serves one
 * size class (multiples of 8 bytes up to SMALL_MAX) and links its free
 * blocks, so a block freed anywhere is reused by the next allocation of its
 * class: memory follows the blocks alive, however out of order they are
 * freed (a straggler pins its block, not its chunk). Chunks are carved
 * from regions of REGION_CHUNKS (one mapping each: the kernel allows a
 * process some 65,000 mappings, so a chunk per mapping would cap an arena
 * at 4 GiB). A chunk whose blocks are all free gives its pages back
 * (madvise) but keeps its address for reuse; a few are kept resident as
 * spares, so a steady flow does not fault pages in and out all the time.
 * Larger blocks get an aligned malloc of their own.
 * Under AddressSanitizer free blocks are poisoned and each block ends in a
 * poisoned gap, so overruns and uses after free are still caught.
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

#define GRAIN 8
/* Largest block of a shared chunk; larger ones get a chunk of their own. */
#define SMALL_MAX 4096
#define CLASSES   (SMALL_MAX / GRAIN + 1)
/* Empty chunks kept resident for reuse. */
#define SPARE_MAX 4
/* Chunks mapped at once. */
#define REGION_CHUNKS 64

typedef struct free_s {
        struct free_s *next;
} free_t;

typedef struct chunk_s {
        lb_arena_t *arena;
        struct chunk_s *prev, *next; /* its class's chunks with room */
        size_t size;                 /* mapped bytes */
        size_t cls;                  /* block size / GRAIN; 0: one block */
        size_t bump;                 /* offset of the never-used rest */
        size_t live;                 /* blocks handed out, not freed */
        free_t *free;                /* freed blocks */
} chunk_t;

#define HEADER ((sizeof(chunk_t) + GRAIN - 1) / GRAIN * GRAIN)

struct lb_arena_s {
        chunk_t *room[CLASSES]; /* per class: chunks with a free block */
        chunk_t *spare;         /* empty, resident */
        size_t spare_cnt;
        chunk_t *cold;  /* empty, pages given back */
        void **regions; /* mappings of REGION_CHUNKS chunks */
        size_t region_cnt;
        size_t bytes;  /* of chunks in use or spare */
        size_t blocks; /* alive */
        chunk_t *full; /* chunks without room (for destroy) */
};

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

/* A block of its own: from malloc, aligned like a chunk (rare, and the
 * allocator and the sanitizers know it). */
static void free_own(lb_arena_t *a, chunk_t *c)
{
        a->bytes -= c->size;
        UNPOISON(c, c->size);
        free(c);
}

static void list_add(chunk_t **list, chunk_t *c)
{
        c->prev = NULL;
        c->next = *list;
        if (*list)
                (*list)->prev = c;
        *list = c;
}

static void list_remove(chunk_t **list, chunk_t *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                *list = c->next;
        if (c->next)
                c->next->prev = c->prev;
}

/* Maps a region and makes its chunks cold. @returns 0 or -1. */
static int map_region(lb_arena_t *a)
{
        void **v = realloc(a->regions, (a->region_cnt + 1) * sizeof(*v));
        if (!v)
                return -1;
        a->regions = v;
        char *r = (char *)map_chunk(REGION_CHUNKS * LB_ARENA_CHUNK);
        if (!r)
                return -1;
        a->regions[a->region_cnt++] = r;
        for (size_t i = REGION_CHUNKS; i-- > 0;) {
                chunk_t *c = (chunk_t *)(r + i * LB_ARENA_CHUNK);
                c->next = a->cold;
                a->cold = c;
        }
        return 0;
}

static chunk_t *chunk_new(lb_arena_t *a, size_t size, size_t cls)
{
        chunk_t *c;
        if (cls == 0) { /* a block of its own, whatever its size */
                if (!(c = aligned_alloc(LB_ARENA_CHUNK, size)))
                        return NULL;
                a->bytes += size;
        } else if (a->spare) { /* resident: counted already */
                c = a->spare;
                a->spare = c->next;
                a->spare_cnt--;
        } else {
                if (!a->cold && map_region(a) == -1)
                        return NULL;
                c = a->cold;
                a->cold = c->next;
                a->bytes += size;
        }
        c->arena = a;
        c->size = size;
        c->cls = cls;
        c->bump = HEADER;
        c->live = 0;
        c->free = NULL;
        POISON((char *)c + HEADER, size - HEADER);
        return c;
}

/* A chunk without live blocks, in no list: kept spare, or made cold. */
static void chunk_release(lb_arena_t *a, chunk_t *c)
{
        if (a->spare_cnt < SPARE_MAX) {
                c->next = a->spare;
                a->spare = c;
                a->spare_cnt++;
                return;
        }
        a->bytes -= c->size;
        UNPOISON(c, c->size);
        madvise(c, c->size, MADV_DONTNEED);
        c->next = a->cold;
        a->cold = c;
}

static int has_room(const chunk_t *c)
{
        return c->free || c->size - c->bump >= c->cls * GRAIN;
}

lb_arena_t *lb_arena_new(void)
{
        return calloc(1, sizeof(lb_arena_t));
}

void *lb_arena_alloc(lb_arena_t *a, size_t n)
{
        if (n > SIZE_MAX / 2)
                return NULL;
        size_t need = (n ? n : 1) + REDZONE;
        void *p;
        if (need > SMALL_MAX) {
                size_t size = (HEADER + need + LB_ARENA_CHUNK - 1) /
                              LB_ARENA_CHUNK * LB_ARENA_CHUNK;
                chunk_t *c = chunk_new(a, size, 0);
                if (!c)
                        return NULL;
                c->live = 1;
                list_add(&a->full, c);
                p = (char *)c + HEADER;
        } else {
                size_t cls = (need + GRAIN - 1) / GRAIN;
                chunk_t *c = a->room[cls];
                if (!c) {
                        if (!(c = chunk_new(a, LB_ARENA_CHUNK, cls)))
                                return NULL;
                        list_add(&a->room[cls], c);
                }
                if (c->free) {
                        p = c->free;
                        UNPOISON(p, sizeof(free_t));
                        c->free = c->free->next;
                } else {
                        p = (char *)c + c->bump;
                        c->bump += cls * GRAIN;
                }
                c->live++;
                if (!has_room(c)) {
                        list_remove(&a->room[cls], c);
                        list_add(&a->full, c);
                }
        }
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
        if (c->cls == 0) {
                list_remove(&a->full, c);
                free_own(a, c);
                return;
        }
        int was_full = !has_room(c);
        POISON(block, c->cls * GRAIN);
        UNPOISON(block, sizeof(free_t));
        free_t *f = block;
        f->next = c->free;
        c->free = f;
        POISON(block, sizeof(free_t));
        c->live--;
        list_remove(was_full ? &a->full : &a->room[c->cls], c);
        if (c->live == 0)
                chunk_release(a, c);
        else
                list_add(&a->room[c->cls], c);
}

size_t lb_arena_bytes(const lb_arena_t *a)
{
        return a->bytes;
}

size_t lb_arena_blocks(const lb_arena_t *a)
{
        return a->blocks;
}

/* Frees the blocks of their own in a list (chunks are in regions). */
static void free_all_own(lb_arena_t *a, chunk_t *c)
{
        while (c) {
                chunk_t *next = c->next;
                if (c->cls == 0)
                        free_own(a, c);
                c = next;
        }
}

void lb_arena_destroy(lb_arena_t *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < CLASSES; i++)
                free_all_own(a, a->room[i]);
        free_all_own(a, a->full);
        for (size_t i = 0; i < a->region_cnt; i++) {
                UNPOISON(a->regions[i], REGION_CHUNKS * LB_ARENA_CHUNK);
                munmap(a->regions[i], REGION_CHUNKS * LB_ARENA_CHUNK);
        }
        free(a->regions);
        free(a);
}
