/*
 * arena.h: where held actions (and the batcher's user records) live, and
 * what their memory costs. The bridge holds rate x budget of them, each
 * allocated once and freed once, in an order the API decides: a malloc per
 * small action costs a header and size-class rounding, and freeing a request's
 * hundreds of actions at once takes the allocator's slow path. An arena is a
 * slab allocator for small blocks: chunks of one size class each, blocks that
 * carry no header (a block finds its chunk by masking its address), freed
 * blocks reused first. Larger blocks come from the system allocator.
 * lb_arena_cost() is what a block costs the process once resident, so that
 * pending.max.bytes bounds memory for events of every size. Not thread-safe:
 * one thread allocates and frees.
 */
#ifndef LB_ARENA_H
#define LB_ARENA_H

#include <stddef.h>

/** Chunk size and alignment. */
#define LB_ARENA_CHUNK ((size_t)64 * 1024)

/** Largest block served from chunks; larger ones are malloc's. */
#define LB_ARENA_SMALL_MAX ((size_t)4096)

/** glibc's mmap threshold, fixed (lb_arena_tune_malloc): a malloc of at
 *  least this many bytes is a mapping of its own. */
#define LB_MALLOC_MMAP_THRESHOLD ((size_t)128 * 1024)

typedef struct lb_arena_s lb_arena_t;

lb_arena_t *lb_arena_new(void);

/** @brief Unmaps every chunk and frees every large block, alive or not. */
void lb_arena_destroy(lb_arena_t *arena);

/** @returns n bytes aligned to 8, or NULL when out of memory; *cost set to
 *           lb_arena_cost(n) unless cost is NULL (a small block's is at
 *           hand: its class's). */
void *lb_arena_alloc(lb_arena_t *arena, size_t n, size_t *cost);

/** @brief Frees a block of lb_arena_alloc() (of any arena); n is the size
 *         it was allocated with. NULL: no-op. */
void lb_arena_free(void *block, size_t n);

/** @returns the bytes a block of n bytes costs the process while it is
 *           alive: its size class's share of a chunk, or what malloc takes
 *           for it (lb_malloc_cost). Independent of the arena's state. */
size_t lb_arena_cost(size_t n);

/** @returns the bytes malloc(n) takes from the process (glibc: a size word
 *           and 16-byte granules on the heap; a mapping of whole pages from
 *           LB_MALLOC_MMAP_THRESHOLD up). */
size_t lb_malloc_cost(size_t n);

/** @returns the bytes of chunks and large blocks the arena holds. */
size_t lb_arena_bytes(const lb_arena_t *arena);

/** @returns the blocks alive. */
size_t lb_arena_blocks(const lb_arena_t *arena);

/** @brief Fixes glibc's malloc thresholds for the process (call first in
 *         main): glibc raises its mmap threshold to the largest block freed
 *         so far (up to 32 MiB), after which large blocks (librdkafka's
 *         fetch buffers, large events) come from the heap and their pages
 *         stay resident once freed; fixed thresholds give them back, and
 *         make lb_malloc_cost() true. */
void lb_arena_tune_malloc(void);

#endif
