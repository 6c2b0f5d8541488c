/*
 * hash.h: the tree's hash functions. FNV-1a (64 bit) for keys that tell
 * two encodings apart or are hashed now and then; for a key hashed per
 * event, eight bytes a step (lb_hash_words, a user's key with its app
 * mixed in, an app id's), then murmur3's finaliser so the low bits used
 * as a table index depend on every input byte; and the equality of such
 * keys, found in a table by that hash (lb_key_eq).
 */
#ifndef LB_HASH_H
#define LB_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LB_FNV1A_SEED 0xcbf29ce484222325ULL

/** @returns FNV-1a of s[0..n), continued from h (LB_FNV1A_SEED to start). */
static inline uint64_t lb_fnv1a(uint64_t h, const void *s, size_t n)
{
        const unsigned char *p = s;
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 0x100000001b3ULL;
        return h;
}

/** @returns murmur3's 64-bit finaliser of h: every bit of h reaches every
 *           bit of the result, the low ones a table index takes included. */
static inline uint64_t lb_hash_fmix(uint64_t h)
{
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
        return h;
}

/** @returns a table key of s[0..n), from h (LB_FNV1A_SEED to start): eight
 *           bytes a step, each step's product folded so the next step sees
 *           its high bits, then lb_hash_fmix(). Not FNV-1a: for keys hashed
 *           per event, never stored. */
static inline uint64_t lb_hash_words(uint64_t h, const void *s, size_t n)
{
        const unsigned char *p = s;
        size_t len = n;
        h ^= n;
        for (; n >= 8; p += 8, n -= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
                h ^= h >> 32;
        }
        if (n) {
                uint64_t w = 0;
                uint32_t lo, hi;
                if (len >= 8) { /* the last 8, some of them seen already */
                        memcpy(&w, p + n - 8, 8);
                } else if (n >= 4) { /* the first 4 and the last 4 */
                        memcpy(&lo, p, 4);
                        memcpy(&hi, p + n - 4, 4);
                        w = (uint64_t)hi << 32 | lo;
                } else {
                        for (size_t i = 0; i < n; i++)
                                w |= (uint64_t)p[i] << (8 * i);
                }
                h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        }
        return lb_hash_fmix(h);
}

/* Whether the w bytes (4 or 8: a constant once inlined) at x and y are
 * the same, by one load from each. */
static inline int lb_word_eq(const unsigned char *x, const unsigned char *y,
                             size_t w)
{
        uint64_t a = 0, b = 0;
        memcpy(&a, x, w);
        memcpy(&b, y, w);
        return a == b;
}

/** @returns whether a[0..n) and b[0..n) are the same bytes. The keys
 *           looked up per event (app ids, user ids) are short: up to 16
 *           bytes they are compared by two loads from each, which may
 *           overlap but never leave the n bytes, without a call. */
static inline int lb_key_eq(const void *a, const void *b, size_t n)
{
        const unsigned char *x = a, *y = b;
        if (n > 16)
                return memcmp(x, y, n) == 0;
        if (n >= 8)
                return lb_word_eq(x, y, 8) &
                       lb_word_eq(x + n - 8, y + n - 8, 8);
        if (n >= 4)
                return lb_word_eq(x, y, 4) &
                       lb_word_eq(x + n - 4, y + n - 4, 4);
        for (size_t i = 0; i < n; i++)
                if (x[i] != y[i])
                        return 0;
        return 1;
}

/** @returns the table key of an app's user id: its app mixed into the
 *           start. */
static inline uint64_t lb_user_hash(int app, const char *id, size_t len)
{
        return lb_hash_words(LB_FNV1A_SEED ^ (uint64_t)(unsigned)app *
                                                 0x9e3779b97f4a7c15ULL,
                             id, len);
}

#endif
