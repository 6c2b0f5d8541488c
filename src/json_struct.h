/*
 * json_struct.h: where json_scan's walk finds the end of a string, many
 * bytes at a time: the first byte a string body stops at ('"', '\\', a
 * control byte < 0x20 or a non-ASCII byte >= 0x80). The first 16 bytes are
 * probed inline (SSE2, on every x86-64): most keys and values end there.
 * Longer runs go out of line, 32 bytes a step with AVX2 where the CPU has
 * it. The implementation (portable, SSE2, AVX2) is chosen once at run time
 * and can be forced, so that tests run each against the others.
 */
#ifndef LB_JSON_STRUCT_H
#define LB_JSON_STRUCT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

typedef enum {
        LB_JSON_PASS_AUTO = 0, /* the fastest this CPU runs */
        LB_JSON_PASS_PORTABLE, /* plain C, for any machine */
        LB_JSON_PASS_SSE2,     /* x86-64 only */
        LB_JSON_PASS_AVX2,     /* x86-64 with AVX2 only */
        LB_JSON_PASS_EXACT,    /* none: every input goes byte by byte */
} lb_json_pass_t;

/**
 * @brief Chooses the implementation lb_json_pass() returns (process-wide;
 *        for tests and fuzzing: AUTO is the default).
 * @returns 0, or -1 (nothing changed) when this machine cannot run it.
 */
int lb_json_pass_select(lb_json_pass_t pass);

/** @returns the implementation chosen, AUTO resolved (never AUTO). */
lb_json_pass_t lb_json_pass(void);

/** lb_json_stop past an inline probe that found no stop: out of line. */
size_t lb_json_stop_run(lb_json_pass_t pass, const unsigned char *p, size_t n);

#if defined(__x86_64__)
/* The mask of the string-stopping bytes of p[0..16). The signed compare
 * v < 0x20 takes both the control bytes and the non-ASCII ones (negative
 * as signed bytes). */
static inline __attribute__((always_inline)) unsigned
lb_json_stops16(const unsigned char *p)
{
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i s =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                         _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        return (unsigned)_mm_movemask_epi8(s);
}
#endif

/**
 * @returns the offset of the first string-stopping byte of p[0..n), or n
 *          when there is none. pass: lb_json_pass()'s answer, not EXACT.
 */
static inline __attribute__((always_inline)) size_t
lb_json_stop(lb_json_pass_t pass, const unsigned char *p, size_t n)
{
#if defined(__x86_64__)
        if (pass != LB_JSON_PASS_PORTABLE && n >= 16) {
                unsigned m = lb_json_stops16(p);
                if (m)
                        return (size_t)__builtin_ctz(m);
                return 16 + lb_json_stop_run(pass, p + 16, n - 16);
        }
#endif
        return lb_json_stop_run(pass, p, n);
}

#endif
