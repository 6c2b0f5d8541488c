/*
 * arena.h: where held actions live. The bridge holds rate x budget of them,
 * each allocated once and freed once, in an order the API decides: a malloc
 * per action costs a header and size-class rounding, and freeing a
 * request's hundreds of actions at once takes the allocator's slow path. An
 * arena is a slab allocator: chunks of one size class each, blocks that
 * carry no header (a block finds its chunk by masking its address), freed
 * blocks reused first. Not thread-safe: one thread allocates and frees.
 */
#ifndef LB_ARENA_H
#define LB_ARENA_H

#include <stddef.h>

/** Chunk size and alignment. A block of more than 4 KiB gets a chunk of
 *  its own (rounded up to this). */
#define LB_ARENA_CHUNK ((size_t)64 * 1024)

typedef struct lb_arena_s lb_arena_t;

lb_arena_t *lb_arena_new(void);

/** @brief Unmaps every chunk, with any block still alive in it. */
void lb_arena_destroy(lb_arena_t *arena);

/** @returns n bytes aligned to 8, or NULL when out of memory. */
void *lb_arena_alloc(lb_arena_t *arena, size_t n);

/** @brief Frees a block of lb_arena_alloc() (of any arena); NULL: no-op. */
void lb_arena_free(void *block);

/** @returns the bytes of the chunks the arena holds (what it costs). */
size_t lb_arena_bytes(const lb_arena_t *arena);

/** @returns the blocks alive. */
size_t lb_arena_blocks(const lb_arena_t *arena);

#endif
