/*
 * offset_map.h: the offset map carried in a commit's metadata: which
 * offsets above the committed one are already done (delivered,
 * dead-lettered, skipped), so that a new owner of the partition, or this
 * bridge after a crash, skips them instead of sending them again. Pure:
 * encoding and decoding only, no librdkafka.
 *
 * Format, version 1: "lb1:" followed by the standard base64 (with padding)
 * of a sequence of unsigned LEB128 varints: the committed offset the map
 * belongs to, then run lengths in offsets from it, alternating not done and
 * done, starting with not done (the committed offset itself is never done).
 * Offsets past the last run are not done. An empty map is an empty string.
 *
 * Also the room a map may take (lb_map_room_t): the broker refuses a map
 * over its offset.metadata.max.bytes, which the bridge learns only from a
 * refusal.
 */
#ifndef LB_OFFSET_MAP_H
#define LB_OFFSET_MAP_H

#include <stddef.h>
#include <stdint.h>

/** The version prefix of the metadata string. */
#define LB_OFFSET_MAP_PREFIX "lb1:"

/** Offsets [start, end). */
typedef struct {
        int64_t start;
        int64_t end;
} lb_range_t;

/**
 * @brief Encodes done ranges above base as commit metadata, at most max
 *        bytes (the broker's offset.metadata.max.bytes) plus a NUL.
 * @param done sorted, disjoint, non-empty ranges, all above base.
 * @param out  room for max + 1 bytes.
 * @param truncated set to 1 when the ranges farthest from base had to be
 *        left out to fit (they are then not done for the reader: redone,
 *        never lost), else 0.
 * @returns the string's length; 0 (an empty string) when n is 0, when no
 *          range fits, or when the ranges are invalid.
 */
size_t lb_offset_map_encode(int64_t base, const lb_range_t *done, size_t n,
                            char *out, size_t max, int *truncated);

/**
 * @brief Decodes metadata committed with offset base.
 * @param out set to a malloc'ed array of the done ranges (NULL when none);
 *        the caller frees it.
 * @returns the number of ranges (0 for empty metadata), or -1 when md is
 *          not a version-1 map, is corrupt, belongs to another offset than
 *          base, or memory ran out: then use no map (redo, never skip).
 */
int lb_offset_map_decode(const char *md, size_t len, int64_t base,
                         lb_range_t **out);

/** Smallest room worth a map: below it maps are off. */
#define LB_MAP_ROOM_MIN 64
/** After a cut, the room is probed upward this often. */
#define LB_MAP_ROOM_PROBE_MS (5 * 60 * 1000)

/** The room for maps: commit.metadata.max.bytes, cut when the broker
 *  refuses a map as too large, probed back up while it is below it. Pure
 *  state: time is passed in. */
typedef struct {
        int64_t max;      /* commit.metadata.max.bytes */
        int64_t room;     /* what a map may take now; 0: maps off */
        int64_t probe_at; /* when room may grow again; 0: not cut */
} lb_map_room_t;

void lb_map_room_init(lb_map_room_t *r, int64_t max);

/**
 * @brief One commit's answer.
 * @param refused the size of the smallest map the broker refused as too
 *        large in it (0: none). Refusals of one commit count once, and a
 *        refusal of a map larger than the room now (sent before a cut)
 *        changes nothing: the room becomes half the refused map, at least
 *        LB_MAP_ROOM_MIN (a refused map of at most that turns maps off).
 * Without a refusal, a room cut LB_MAP_ROOM_PROBE_MS ago doubles (from off:
 * LB_MAP_ROOM_MIN), up to max.
 * @returns -1 when the room was cut, 1 when it grew, else 0.
 */
int lb_map_room_observe(lb_map_room_t *r, size_t refused, int64_t now_ms);

#endif
