/*
 * offsets.h: per-partition completion tracking. Offsets are tracked in the
 * order consumed; they complete in any order; the committable offset is the
 * lowest incomplete one (or last + 1). Pure: no librdkafka calls.
 */
#ifndef LB_OFFSETS_H
#define LB_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include "offset_map.h"

typedef struct lb_partition_s lb_partition_t;

/** @brief A tracker for topic/partition, refcount 1. */
lb_partition_t *lb_partition_new(const char *topic, int32_t partition);

/**
 * @brief From now on the bytes of p's ring of tracked offsets (8 a slot,
 *        done ones included until every offset before them is done too)
 *        are added to *total as it grows and taken back when it goes;
 *        total must outlive p's ring.
 */
void lb_partition_count_ring(lb_partition_t *p, size_t *total);

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

/**
 * @brief Asks the CPU for the slot lb_partition_done(p, offset) will most
 *        likely write, ahead of the call: a request's answer marks
 *        hundreds of offsets whose slots were last touched when they were
 *        consumed. Changes nothing.
 */
void lb_partition_prefetch(const lb_partition_t *p, int64_t offset);

/**
 * @brief Every offset below end was read (the partition's end was reached
 *        there): those never tracked are gaps (transaction markers,
 *        aborted or compacted records) that the committable offset passes
 *        once the tracked ones before end are done. No-op when end is not
 *        after the last tracked offset.
 */
void lb_partition_read_to(lb_partition_t *p, int64_t end);

/** @returns the offset to commit (next to consume), or -1 if nothing
 *           was ever tracked. */
int64_t lb_partition_committable(const lb_partition_t *p);

/** @returns the offset after the last tracked, or -1 if nothing was ever
 *           tracked. */
int64_t lb_partition_next(const lb_partition_t *p);

/** @returns tracked offsets not yet done. */
size_t lb_partition_outstanding(const lb_partition_t *p);

/**
 * @brief The done offsets above the committable one, as ranges (the offset
 *        map of the next commit), nearest first: those done here, and past
 *        the last tracked offset those the last owner's map said were done
 *        (lb_partition_set_already_done()). Writes at most cap.
 * @returns how many ranges there are (may exceed cap: then the farthest
 *          were left out).
 */
size_t lb_partition_done_ranges(const lb_partition_t *p, lb_range_t *out,
                                size_t cap);

/**
 * @brief Offsets the committed offset map says are done already: when
 *        consumed, lb_partition_already_done() says so. Takes ranges
 *        (malloc'ed, sorted, from lb_offset_map_decode); replaces any
 *        earlier set.
 */
void lb_partition_set_already_done(lb_partition_t *p, lb_range_t *ranges,
                                   size_t n);

/**
 * @returns 1 if offset is in the already-done set, else 0. Offsets must be
 *          asked in increasing order (as consumed): the set is consumed.
 */
int lb_partition_already_done(lb_partition_t *p, int64_t offset);

/** @brief Marks the tracker revoked: later done() calls are ignored. */
void lb_partition_revoke(lb_partition_t *p);
int lb_partition_revoked(const lb_partition_t *p);

/**
 * @brief Events retention deleted before the group consumed them: the
 *        group committed `committed` (or the consumer expected it next),
 *        the first offset consumed since is `first` (past it), and the log
 *        now starts at log_start.
 * @returns how many, or 0 when none were: the gap past `committed` is one
 *          of compaction or transaction markers when the log still starts
 *          at or below it, and so is one whose `first` the log no longer
 *          has (it was fetched before retention moved the start past it;
 *          a fetch reset by retention starts at the log start).
 */
int64_t lb_retention_lost(int64_t committed, int64_t first, int64_t log_start);

#endif
