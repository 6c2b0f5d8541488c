/*
 * arena.h: where held actions live. The bridge holds rate x budget of them,
 * each allocated once and freed once, mostly in arrival order: a malloc
 * per action costs a header, size-class rounding and, when thousands are
 * freed at once (a request's answer), the allocator's slow path. An arena
 * hands out memory from aligned chunks by bumping a pointer and counts the
 * blocks alive in each chunk; a chunk goes back when its last block is
 * freed. A block finds its chunk by masking its address, so it carries no
 * header. Not thread-safe: one thread allocates and frees.
 */
#ifndef LB_ARENA_H
#define LB_ARENA_H

#include <stddef.h>

/** Chunk size and alignment. A block larger than a chunk can hold gets a
 *  chunk of its own (rounded up to this). */
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
