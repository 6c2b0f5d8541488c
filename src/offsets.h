/*
 * offsets.h: per-partition completion tracking. Offsets are tracked in the
 * order consumed; they complete in any order; the committable offset is the
 * lowest incomplete one (or last + 1). Pure: no librdkafka calls.
 */
#ifndef LB_OFFSETS_H
#define LB_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct lb_partition_s lb_partition_t;

/** @brief A tracker for topic/partition, refcount 1. */
lb_partition_t *lb_partition_new(const char *topic, int32_t partition);

/** @brief Takes one more reference (each tracked action holds one). */
void lb_partition_ref(lb_partition_t *p);
/** @brief Drops a reference; frees at zero. NULL is a no-op. */
void lb_partition_unref(lb_partition_t *p);
/** @returns the references taken with lb_partition_ref() and not yet
 *           dropped: the actions alive that reference p (O(1)). */
size_t lb_partition_holders(const lb_partition_t *p);

const char *lb_partition_topic(const lb_partition_t *p);
int32_t lb_partition_id(const lb_partition_t *p);

/**
 * @brief Records a consumed offset (must be greater than the last one).
 * @returns 0; 1 if it is not after the last tracked offset (already seen:
 *          nothing is tracked); -1 out of memory (nothing is tracked, and
 *          the offset is not seen: the caller must not skip it).
 */
int lb_partition_track(lb_partition_t *p, int64_t offset);

/**
 * @brief Marks a tracked offset handled. No-op on a revoked tracker.
 * @returns 1 if the committable offset advanced, 0 if not, -1 if the
 *          offset is not tracked (or already done).
 */
int lb_partition_done(lb_partition_t *p, int64_t offset);

/** @returns the offset to commit (next to consume), or -1 if nothing
 *           was ever tracked. */
int64_t lb_partition_committable(const lb_partition_t *p);

/** @returns tracked offsets not yet done. */
size_t lb_partition_outstanding(const lb_partition_t *p);

/** @brief Marks the tracker revoked: later done() calls are ignored. */
void lb_partition_revoke(lb_partition_t *p);
int lb_partition_revoked(const lb_partition_t *p);

#endif
