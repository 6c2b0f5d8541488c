/*
 * hash.h: the one hash function of the tree. FNV-1a (64 bit) for keys
 * that index a table or tell two encodings apart, and a user's key: its
 * id with its app mixed in, then murmur3's finaliser so the low bits used
 * as a table index depend on every input byte.
 */
#ifndef LB_HASH_H
#define LB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define LB_FNV1A_SEED 0xcbf29ce484222325ULL

/** @returns FNV-1a of s[0..n), continued from h (LB_FNV1A_SEED to start). */
static inline uint64_t lb_fnv1a(uint64_t h, const void *s, size_t n)
{
        const unsigned char *p = s;
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 0x100000001b3ULL;
        return h;
}

/** @returns the table key of an app's user id. */
static inline uint64_t lb_user_hash(int app, const char *id, size_t len)
{
        uint64_t h = lb_fnv1a(LB_FNV1A_SEED, id, len);
        h ^= (uint64_t)(unsigned)app * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
        return h;
}

#endif
