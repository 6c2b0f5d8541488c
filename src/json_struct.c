/*
 * json_struct.c: json_scan's first pass (json_struct.h): the masks of the
 * bytes a JSON string stops at, 64 bytes at a time, in plain C, SSE2 (every
 * x86-64) or AVX2 (chosen at run time where the CPU has it).
 */
#include "json_struct.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* '"', '\\', a control byte or a non-ASCII byte. */
static uint64_t block_portable(const unsigned char *b)
{
        uint64_t m = 0;
        for (unsigned i = 0; i < LB_JSON_BLOCK; i++) {
                unsigned c = b[i];
                m |= (uint64_t)(c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
                     << i;
        }
        return m;
}

#if defined(__x86_64__)
/* The signed compare v < 0x20 takes both the control bytes and the
 * non-ASCII ones (negative as signed bytes). */
static inline uint64_t block_sse2(const unsigned char *b)
{
        const __m128i quote = _mm_set1_epi8('"');
        const __m128i bslash = _mm_set1_epi8('\\');
        const __m128i space = _mm_set1_epi8(0x20);
        uint64_t m = 0;
        for (unsigned i = 0; i < LB_JSON_BLOCK; i += 16) {
                __m128i v = _mm_loadu_si128((const __m128i *)(b + i));
                __m128i s =
                    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                              _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
                m |= (uint64_t)(uint16_t)_mm_movemask_epi8(s) << i;
        }
        return m;
}

__attribute__((target("avx2"))) static inline uint64_t
block_avx2(const unsigned char *b)
{
        const __m256i quote = _mm256_set1_epi8('"');
        const __m256i bslash = _mm256_set1_epi8('\\');
        const __m256i space = _mm256_set1_epi8(0x20);
        uint64_t m = 0;
        for (unsigned i = 0; i < LB_JSON_BLOCK; i += 32) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(b + i));
                __m256i s = _mm256_or_si256(
                    _mm256_or_si256(_mm256_cmpeq_epi8(v, quote),
                                    _mm256_cmpeq_epi8(v, bslash)),
                    _mm256_cmpgt_epi8(space, v));
                m |= (uint64_t)(uint32_t)_mm256_movemask_epi8(s) << i;
        }
        return m;
}
#endif

/* The window's blocks with one block function. A partial last block is
 * read as the last 64 bytes of the input, shifted, when there are 64;
 * else from a copy padded with NULs. Bytes past the end are stops. */
#define MASKS(block, p, n, out)                                                \
        do {                                                                   \
                size_t k_ = 0, r_;                                             \
                for (; (n)-k_ * LB_JSON_BLOCK >= LB_JSON_BLOCK &&              \
                       k_ < LB_JSON_WINDOW;                                    \
                     k_++)                                                     \
                        (out)[k_] = block((p) + k_ * LB_JSON_BLOCK);           \
                r_ = (n)-k_ * LB_JSON_BLOCK;                                   \
                if (k_ == LB_JSON_WINDOW || !r_)                               \
                        break;                                                 \
                if ((n) >= LB_JSON_BLOCK) {                                    \
                        (out)[k_] = block((p) + (n)-LB_JSON_BLOCK) >>          \
                                        (LB_JSON_BLOCK - r_) |                 \
                                    ~(uint64_t)0 << r_;                        \
                } else {                                                       \
                        unsigned char pad_[LB_JSON_BLOCK] = {0};               \
                        memcpy(pad_, (p), (n));                                \
                        (out)[k_] = block(pad_);                               \
                }                                                              \
        } while (0)

static void masks_portable(const unsigned char *p, size_t n, uint64_t *out)
{
        MASKS(block_portable, p, n, out);
}

#if defined(__x86_64__)
static void masks_sse2(const unsigned char *p, size_t n, uint64_t *out)
{
        MASKS(block_sse2, p, n, out);
}

__attribute__((target("avx2"))) static void masks_avx2(const unsigned char *p,
                                                       size_t n, uint64_t *out)
{
        MASKS(block_avx2, p, n, out);
}
#endif

#if defined(__x86_64__)
static int have_avx2(void)
{
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
}
#endif

static int chosen = LB_JSON_PASS_AUTO;
static lb_json_masks_fn auto_masks;

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

lb_json_masks_fn lb_json_masks(void)
{
        switch (__atomic_load_n(&chosen, __ATOMIC_RELAXED)) {
        case LB_JSON_PASS_EXACT:
                return NULL;
        case LB_JSON_PASS_PORTABLE:
                return masks_portable;
#if defined(__x86_64__)
        case LB_JSON_PASS_SSE2:
                return masks_sse2;
        case LB_JSON_PASS_AVX2:
                return masks_avx2;
#endif
        default:
                break;
        }
        lb_json_masks_fn f = __atomic_load_n(&auto_masks, __ATOMIC_RELAXED);
        if (!f) {
#if defined(__x86_64__)
                f = have_avx2() ? masks_avx2 : masks_sse2;
#else
                f = masks_portable;
#endif
                __atomic_store_n(&auto_masks, f, __ATOMIC_RELAXED);
        }
        return f;
}
