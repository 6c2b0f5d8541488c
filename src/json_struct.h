/*
 * json_struct.h: json_scan's first pass. For a 64-byte block of input it
 * finds, many bytes at a time, the bytes a string body stops at: '"', '\\',
 * control bytes (< 0x20) and non-ASCII bytes (>= 0x80). One mask bit a
 * byte; the rest of a string is taken without looking at it byte by byte.
 * The implementation (portable, SSE2, AVX2) is chosen once at run time and
 * can be forced, so that tests run each against the others.
 */
#ifndef LB_JSON_STRUCT_H
#define LB_JSON_STRUCT_H

#include <stddef.h>
#include <stdint.h>

/** Bytes a block covers: one mask bit each. */
#define LB_JSON_BLOCK 64

/** Most blocks one call of an lb_json_masks_fn fills. */
#define LB_JSON_WINDOW 16

typedef enum {
        LB_JSON_PASS_AUTO = 0, /* the fastest this CPU runs */
        LB_JSON_PASS_PORTABLE, /* plain C, for any machine */
        LB_JSON_PASS_SSE2,     /* x86-64 only */
        LB_JSON_PASS_AVX2,     /* x86-64 with AVX2 only */
        LB_JSON_PASS_EXACT,    /* none: every input goes byte by byte */
} lb_json_pass_t;

/**
 * Fills out[k] with the mask of the string-stopping bytes of block k of
 * p[0..n) (bit i: p[64 * k + i]), for the (n + 63) / 64 blocks of it (at
 * most LB_JSON_WINDOW); bytes past n, in the last block, count as stops.
 */
typedef void (*lb_json_masks_fn)(const unsigned char *p, size_t n,
                                 uint64_t *out);

/**
 * @brief Chooses the implementation later calls of lb_json_masks() return
 *        (process-wide; for tests and fuzzing: AUTO is the default).
 * @returns 0, or -1 (nothing changed) when this machine cannot run it.
 */
int lb_json_pass_select(lb_json_pass_t pass);

/** @returns the implementation chosen (AUTO resolved on first use), or
 *           NULL under LB_JSON_PASS_EXACT. */
lb_json_masks_fn lb_json_masks(void);

#endif
