/*
 * json_struct.c: the string-stop finder of json_scan's walk (json_struct.h)
 * past its inline 16-byte probe, in plain C, SSE2 (every x86-64) or AVX2
 * (chosen at run time where the CPU has it), and the choice itself.
 */
#include "json_struct.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* '"', '\\', a control byte or a non-ASCII byte. */
static int is_stop(unsigned c)
{
        return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

static size_t stop_portable(const unsigned char *p, size_t n)
{
        size_t i = 0;
        while (i < n && !is_stop(p[i]))
                i++;
        return i;
}

#if defined(__x86_64__)
/* From i on, 16 bytes a step; the last < 16 are read as the input's last
 * 16 (those before i are known not to stop) when it has 16. */
static inline size_t stop_sse2_from(const unsigned char *p, size_t n, size_t i)
{
        unsigned m;
        for (; n - i >= 16; i += 16)
                if ((m = lb_json_stops16(p + i)))
                        return i + (size_t)__builtin_ctz(m);
        if (i == n)
                return n;
        if (n < 16)
                return i + stop_portable(p + i, n - i);
        m = lb_json_stops16(p + n - 16) >> (16 - (n - i));
        return m ? i + (size_t)__builtin_ctz(m) : n;
}

static size_t stop_sse2(const unsigned char *p, size_t n)
{
        return stop_sse2_from(p, n, 0);
}

__attribute__((target("avx2"))) static size_t stop_avx2(const unsigned char *p,
                                                        size_t n)
{
        const __m256i quote = _mm256_set1_epi8('"');
        const __m256i bslash = _mm256_set1_epi8('\\');
        const __m256i space = _mm256_set1_epi8(0x20);
        size_t i = 0;
        for (; n - i >= 32; i += 32) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
                __m256i s = _mm256_or_si256(
                    _mm256_or_si256(_mm256_cmpeq_epi8(v, quote),
                                    _mm256_cmpeq_epi8(v, bslash)),
                    _mm256_cmpgt_epi8(space, v));
                uint32_t m = (uint32_t)_mm256_movemask_epi8(s);
                if (m)
                        return i + (size_t)__builtin_ctz(m);
        }
        return stop_sse2_from(p, n, i);
}

static int have_avx2(void)
{
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
}
#endif

size_t lb_json_stop_run(lb_json_pass_t pass, const unsigned char *p, size_t n)
{
        switch (pass) {
#if defined(__x86_64__)
        case LB_JSON_PASS_SSE2:
                return stop_sse2(p, n);
        case LB_JSON_PASS_AVX2:
                return stop_avx2(p, n);
#endif
        default:
                return stop_portable(p, n);
        }
}

static int chosen = LB_JSON_PASS_AUTO;
static int auto_pass = LB_JSON_PASS_AUTO;

int lb_json_pass_select(lb_json_pass_t pass)
{
#if defined(__x86_64__)
        if (pass == LB_JSON_PASS_AVX2 && !have_avx2())
                return -1;
#else
        if (pass == LB_JSON_PASS_SSE2 || pass == LB_JSON_PASS_AVX2)
                return -1;
#endif
        __atomic_store_n(&chosen, (int)pass, __ATOMIC_RELAXED);
        return 0;
}

lb_json_pass_t lb_json_pass(void)
{
        int pass = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
        if (pass != LB_JSON_PASS_AUTO)
                return (lb_json_pass_t)pass;
        pass = __atomic_load_n(&auto_pass, __ATOMIC_RELAXED);
        if (pass == LB_JSON_PASS_AUTO) {
#if defined(__x86_64__)
                pass = have_avx2() ? LB_JSON_PASS_AVX2 : LB_JSON_PASS_SSE2;
#else
                pass = LB_JSON_PASS_PORTABLE;
#endif
                __atomic_store_n(&auto_pass, pass, __ATOMIC_RELAXED);
        }
        return (lb_json_pass_t)pass;
}
