/*
 * memlimit.h: the memory the process may use: its memory cgroup's limit
 * (cgroup v1 or v2, the smallest over the cgroup and its ancestors up to
 * the mount root), capped at MemTotal. Pure functions turn the text of
 * /proc/self/cgroup, /proc/self/mountinfo, a limit file and /proc/meminfo
 * into paths and numbers; lb_memlimit_find() reads the real files.
 */
#ifndef LB_MEMLIMIT_H
#define LB_MEMLIMIT_H

#include <stddef.h>
#include <stdint.h>

/* Used when no cgroup limit is found (capped at MemTotal as well). */
#define LB_MEMLIMIT_DEFAULT_BYTES INT64_C(1073741824)

/* A limit file value at or above this (v1's "unlimited" is
 * 9223372036854771712) means no limit. */
#define LB_MEMLIMIT_NONE_FROM (INT64_C(1) << 62)

/** Where the memory cgroup's limit files are. */
typedef struct {
        int version;         /* 1 or 2 */
        char mount[4096];    /* the hierarchy's mount point */
        char relative[4096]; /* the cgroup below the mount root: "" or
                                "/a/b" */
} lb_cgroup_loc_t;

/**
 * @brief Finds the process's memory cgroup from the text of
 *        /proc/self/cgroup and /proc/self/mountinfo: the v1 hierarchy with
 *        the memory controller when one is mounted, else the v2 one.
 * @returns 0 with loc set, or -1 with why set (no memory cgroup, not
 *          mounted, or the cgroup is outside the mount's root).
 */
int lb_memlimit_locate(const char *cgroup_text, const char *mountinfo_text,
                       lb_cgroup_loc_t *loc, char *why, size_t why_size);

/**
 * @brief Writes the limit file of the cgroup `level` steps above loc's
 *        (0: its own): <mount><relative's ancestor>/memory.max (v2) or
 *        /memory.limit_in_bytes (v1).
 * @returns 0, or -1 when level is above the mount root or the path does
 *          not fit.
 */
int lb_memlimit_file(const lb_cgroup_loc_t *loc, int level, char *path,
                     size_t path_size);

/**
 * @brief Parses a limit file's text: "max" (v2) or a byte count.
 * @returns 1 with *bytes set (a limit), 0 for no limit ("max", or a value
 *          of LB_MEMLIMIT_NONE_FROM or more), -1 if malformed.
 */
int lb_memlimit_parse_value(const char *text, int64_t *bytes);

/**
 * @brief Finds "MemTotal: N kB" in the text of /proc/meminfo.
 * @returns 0 with *bytes set, or -1.
 */
int lb_memlimit_parse_meminfo(const char *text, int64_t *bytes);

/** The memory limit found, and where it came from. */
typedef struct {
        int64_t bytes;
        char source[512]; /* "cgroup v1 /sys/fs/cgroup/memory/x/memory.
                             limit_in_bytes", "default 1 GiB (...)", ... */
} lb_memlimit_t;

/**
 * @brief Reads the files under root ("" for the real /proc and /sys; a
 *        directory with the same layout in tests) and sets out: the
 *        smallest cgroup limit, else LB_MEMLIMIT_DEFAULT_BYTES, either
 *        capped at MemTotal. Never fails: what cannot be read is said in
 *        out->source.
 */
void lb_memlimit_find(const char *root, lb_memlimit_t *out);

#endif
