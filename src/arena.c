/*
 * arena.c: a slab allocator for small blocks, malloc for the rest, and what
 * each costs. Memory comes in chunks of LB_ARENA_CHUNK bytes, mapped at an
 * address aligned to their size; each chunk serves one size class
 * (multiples of 8 bytes up to LB_ARENA_SMALL_MAX) and links its free
 * blocks, so a block freed anywhere is reused by the next allocation of its
 * class: memory follows the blocks alive, however out of order they are
 * freed (a straggler pins its block, not its chunk). Chunks are carved from
 * regions of REGION_CHUNKS (one mapping each: the kernel allows a process
 * some 65,000 mappings, so a chunk per mapping would cap an arena at
 * 4 GiB). A chunk whose blocks are all free gives its pages back (madvise)
 * and is not written again until reused: the list of such cold chunks lives
 * outside them. A few are kept resident as spares, so a steady flow does
 * not fault pages in and out all the time.
 * A larger block is a malloc of its own with a small header (its arena and
 * its neighbours, so destroy frees what is left): glibc serves it at its
 * size in 16-byte granules, where a chunk-aligned block would cost pages
 * of padding and fragment the heap. glibc keeps the pages of freed heap
 * blocks below its top (any small block allocated later pins the top):
 * once TRIM_STEP bytes of large blocks are freed since the last time,
 * malloc_trim gives the free pages back.
 * Under AddressSanitizer free blocks are poisoned and each small block ends
 * in a poisoned gap, so overruns and uses after free are still caught.
 */
#include "arena.h"

#include <malloc.h>
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

#define GRAIN   8
#define CLASSES (LB_ARENA_SMALL_MAX / GRAIN + 1)
/* Empty chunks kept resident for reuse. */
#define SPARE_MAX 4
/* Chunks mapped at once. */
#define REGION_CHUNKS 64
/* glibc: the size word of a heap chunk, its granule and smallest chunk;
 * the page a mapped chunk is rounded to. */
#define MALLOC_WORD    8
#define MALLOC_GRANULE 16
#define MALLOC_MIN     32
#define PAGE           4096
/* Large blocks freed between two malloc_trim calls (a trim walks glibc's
 * free lists: some hundreds of microseconds at most per 16 MiB freed). */
#define TRIM_STEP ((size_t)16 * 1024 * 1024)

typedef struct free_s {
        struct free_s *next;
} free_t;

typedef struct chunk_s {
        lb_arena_t *arena;
        struct chunk_s *prev, *next; /* its class's chunks with room */
        size_t cls;                  /* block size / GRAIN */
        size_t bump;                 /* offset of the never-used rest */
        size_t live;                 /* blocks handed out, not freed */
        free_t *free;                /* freed blocks */
} chunk_t;

#define HEADER ((sizeof(chunk_t) + GRAIN - 1) / GRAIN * GRAIN)

/* In front of a large block. */
typedef struct large_s {
        lb_arena_t *arena;
        struct large_s *prev, *next;
} large_t;

struct lb_arena_s {
        chunk_t *room[CLASSES]; /* per class: chunks with a free block */
        chunk_t *full;          /* chunks without room */
        chunk_t *spare;         /* empty, resident */
        size_t spare_cnt;
        chunk_t **cold; /* empty, pages given back: room for every chunk */
        size_t cold_cnt;
        void **regions; /* mappings of REGION_CHUNKS chunks */
        size_t region_cnt;
        large_t *large;     /* large blocks alive */
        size_t large_freed; /* bytes of them freed since the last trim */
        size_t bytes;       /* chunks in use or spare, and large blocks */
        size_t blocks;      /* alive */
};

static size_t round_up(size_t n, size_t to)
{
        return (n + to - 1) / to * to;
}

size_t lb_malloc_cost(size_t n)
{
        size_t chunk = round_up(n + MALLOC_WORD, MALLOC_GRANULE);
        if (chunk < MALLOC_MIN)
                chunk = MALLOC_MIN;
        if (chunk >= LB_MALLOC_MMAP_THRESHOLD)
                chunk = round_up(chunk + MALLOC_WORD, PAGE);
        return chunk;
}

/* The size class (in grains) of a small block of n bytes, 0 for a large
 * one. */
static size_t class_of(size_t n)
{
        size_t need = (n ? n : 1) + REDZONE;
        return need > LB_ARENA_SMALL_MAX ? 0 : (need + GRAIN - 1) / GRAIN;
}

/* lb_arena_cost of a small block, per size class: a chunk shared by the
 * blocks that fit in it, its header and the rest too short for one more
 * included. Two divisions a class, done once before main rather than on
 * every call (the bridge asks for every action it takes and frees). */
static uint32_t class_cost[CLASSES];

__attribute__((constructor)) static void class_cost_init(void)
{
        for (size_t cls = 1; cls < CLASSES; cls++) {
                size_t per_chunk = (LB_ARENA_CHUNK - HEADER) / (cls * GRAIN);
                class_cost[cls] =
                    (uint32_t)((LB_ARENA_CHUNK + per_chunk - 1) / per_chunk);
        }
}

size_t lb_arena_cost(size_t n)
{
        size_t cls = class_of(n);
        if (!cls)
                return lb_malloc_cost(sizeof(large_t) + n);
        return class_cost[cls];
}

void lb_arena_tune_malloc(void)
{
        mallopt(M_MMAP_THRESHOLD, (int)LB_MALLOC_MMAP_THRESHOLD);
        mallopt(M_TRIM_THRESHOLD, (int)LB_MALLOC_MMAP_THRESHOLD);
}

/* Maps size bytes (a multiple of LB_ARENA_CHUNK) at an aligned address:
 * maps one chunk more and gives back the misaligned ends. */
static char *map_aligned(size_t size)
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
        return (char *)at;
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
        chunk_t **cold = realloc(a->cold, (a->region_cnt + 1) * REGION_CHUNKS *
                                              sizeof(*cold));
        if (!cold)
                return -1;
        a->cold = cold;
        char *r = map_aligned(REGION_CHUNKS * LB_ARENA_CHUNK);
        if (!r)
                return -1;
        a->regions[a->region_cnt++] = r;
        for (size_t i = REGION_CHUNKS; i-- > 0;)
                a->cold[a->cold_cnt++] = (chunk_t *)(r + i * LB_ARENA_CHUNK);
        return 0;
}

static chunk_t *chunk_new(lb_arena_t *a, size_t cls)
{
        chunk_t *c;
        if (a->spare) { /* resident: counted already */
                c = a->spare;
                a->spare = c->next;
                a->spare_cnt--;
        } else {
                if (!a->cold_cnt && map_region(a) == -1)
                        return NULL;
                c = a->cold[--a->cold_cnt];
                a->bytes += LB_ARENA_CHUNK;
        }
        c->arena = a;
        c->cls = cls;
        c->bump = HEADER;
        c->live = 0;
        c->free = NULL;
        POISON((char *)c + HEADER, LB_ARENA_CHUNK - HEADER);
        return c;
}

/* A chunk without live blocks, in no list: kept spare, or made cold (its
 * pages given back, and not touched again until it is reused). */
static void chunk_release(lb_arena_t *a, chunk_t *c)
{
        if (a->spare_cnt < SPARE_MAX) {
                c->next = a->spare;
                a->spare = c;
                a->spare_cnt++;
                return;
        }
        a->bytes -= LB_ARENA_CHUNK;
        UNPOISON(c, LB_ARENA_CHUNK);
        madvise(c, LB_ARENA_CHUNK, MADV_DONTNEED);
        a->cold[a->cold_cnt++] = c;
}

static int has_room(const chunk_t *c)
{
        return c->free || LB_ARENA_CHUNK - c->bump >= c->cls * GRAIN;
}

lb_arena_t *lb_arena_new(void)
{
        return calloc(1, sizeof(lb_arena_t));
}

static void *large_alloc(lb_arena_t *a, size_t n)
{
        large_t *l = malloc(sizeof(*l) + n);
        if (!l)
                return NULL;
        l->arena = a;
        l->prev = NULL;
        l->next = a->large;
        if (a->large)
                a->large->prev = l;
        a->large = l;
        a->bytes += lb_arena_cost(n);
        return l + 1;
}

static void large_free(large_t *l, size_t n)
{
        lb_arena_t *a = l->arena;
        if (l->prev)
                l->prev->next = l->next;
        else
                a->large = l->next;
        if (l->next)
                l->next->prev = l->prev;
        a->bytes -= lb_arena_cost(n);
        free(l);
        a->large_freed += lb_arena_cost(n);
        if (a->large_freed >= TRIM_STEP) {
                a->large_freed = 0;
                malloc_trim(0);
        }
}

void *lb_arena_alloc(lb_arena_t *a, size_t n, size_t *cost)
{
        if (n > SIZE_MAX / 2)
                return NULL;
        size_t cls = class_of(n);
        void *p;
        if (!cls) {
                if (!(p = large_alloc(a, n)))
                        return NULL;
                a->blocks++;
                if (cost)
                        *cost = lb_arena_cost(n);
                return p;
        }
        if (cost)
                *cost = class_cost[cls];
        chunk_t *c = a->room[cls];
        if (!c) {
                if (!(c = chunk_new(a, cls)))
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
        a->blocks++;
        UNPOISON(p, n);
        return p;
}

void lb_arena_free(void *block, size_t n)
{
        if (!block)
                return;
        if (!class_of(n)) {
                large_t *l = (large_t *)block - 1;
                l->arena->blocks--;
                large_free(l, n);
                return;
        }
        chunk_t *c =
            (chunk_t *)((uintptr_t)block & ~(uintptr_t)(LB_ARENA_CHUNK - 1));
        lb_arena_t *a = c->arena;
        a->blocks--;
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

void lb_arena_destroy(lb_arena_t *a)
{
        if (!a)
                return;
        while (a->large) {
                large_t *next = a->large->next;
                free(a->large);
                a->large = next;
        }
        for (size_t i = 0; i < a->region_cnt; i++) {
                UNPOISON(a->regions[i], REGION_CHUNKS * LB_ARENA_CHUNK);
                munmap(a->regions[i], REGION_CHUNKS * LB_ARENA_CHUNK);
        }
        free(a->regions);
        free(a->cold);
        free(a);
}
