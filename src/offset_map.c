/*
 * offset_map.c: encodes and decodes the offset map of a commit's metadata
 * (format in offset_map.h). Run lengths as LEB128 varints are the
 * compression: a partition whose done offsets above the committed one form
 * a few runs costs a few bytes, whatever their count. And the room a map
 * may take, learnt from the broker's refusals. Pure; allocates only the
 * buffers it returns or frees before returning.
 */
#include "offset_map.h"

#include <stdlib.h>
#include <string.h>

#define PREFIX_LEN (sizeof(LB_OFFSET_MAP_PREFIX) - 1)
#define VARINT_MAX 10 /* bytes of a 64-bit LEB128 */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t varint_len(uint64_t v)
{
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
        size_t n = 0;
        while (v >= 0x80) {
                p[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        p[n++] = (uint8_t)v;
        return n;
}

/* @returns 0 and advances *pos, or -1 at the end or on a varint that is
 * too long for 63 bits. */
static int varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
        uint64_t x = 0;
        for (unsigned shift = 0; *pos < len && shift < 63; shift += 7) {
                uint8_t c = p[(*pos)++];
                x |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        if (x > (uint64_t)INT64_MAX)
                                return -1;
                        *v = x;
                        return 0;
                }
        }
        return -1;
}

static size_t b64_len(size_t raw)
{
        return (raw + 2) / 3 * 4;
}

static void b64_encode(const uint8_t *in, size_t n, char *out)
{
        size_t o = 0;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t)in[i + 1] << 8;
                if (i + 2 < n)
                        v |= in[i + 2];
                out[o++] = b64[(v >> 18) & 63];
                out[o++] = b64[(v >> 12) & 63];
                out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < n ? b64[v & 63] : '=';
        }
        out[o] = '\0';
}

static int b64_value(char c)
{
        const char *p = c ? strchr(b64, c) : NULL;
        return p ? (int)(p - b64) : -1;
}

/* Strict: whole quads, '=' only as the last one or two characters.
 * @returns the decoded length, or -1. */
static long b64_decode(const char *in, size_t n, uint8_t *out)
{
        size_t o = 0;
        if (n == 0 || n % 4)
                return -1;
        for (size_t i = 0; i < n; i += 4) {
                int last = i + 4 == n;
                int pad = (in[i + 3] == '=') + (in[i + 2] == '=');
                int v[4];
                if (pad && (!last || (in[i + 2] == '=' && in[i + 3] != '=')))
                        return -1;
                for (int k = 0; k < 4 - pad; k++)
                        if ((v[k] = b64_value(in[i + k])) < 0)
                                return -1;
                uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12;
                if (pad < 2)
                        x |= (uint32_t)v[2] << 6;
                if (pad < 1)
                        x |= (uint32_t)v[3];
                out[o++] = (uint8_t)(x >> 16);
                if (pad < 2)
                        out[o++] = (uint8_t)(x >> 8);
                if (pad < 1)
                        out[o++] = (uint8_t)x;
        }
        return (long)o;
}

/* Whether the ranges are sorted, non-empty, disjoint and above base. */
static int ranges_valid(int64_t base, const lb_range_t *r, size_t n)
{
        int64_t prev = base;
        for (size_t i = 0; i < n; i++) {
                if (r[i].start < prev || r[i].end <= r[i].start ||
                    (i == 0 && r[i].start <= base))
                        return 0;
                prev = r[i].end;
        }
        return 1;
}

size_t lb_offset_map_encode(int64_t base, const lb_range_t *done, size_t n,
                            char *out, size_t max, int *truncated)
{
        *truncated = 0;
        out[0] = '\0';
        if (n == 0 || base < 0 || !ranges_valid(base, done, n))
                return 0;
        if (max < PREFIX_LEN + 4) {
                *truncated = 1;
                return 0;
        }
        size_t cap = (max - PREFIX_LEN) / 4 * 3;
        uint8_t *raw = malloc(cap + 2 * VARINT_MAX);
        if (!raw) {
                *truncated = 1;
                return 0;
        }
        size_t len = varint_put(raw, (uint64_t)base), pairs = 0;
        int64_t pos = base;
        for (size_t i = 0; i < n;) {
                int64_t start = done[i].start, end = done[i].end;
                /* adjacent ranges are one run */
                while (++i < n && done[i].start == end)
                        end = done[i].end;
                uint64_t gap = (uint64_t)(start - pos);
                uint64_t run = (uint64_t)(end - start);
                if (len + varint_len(gap) + varint_len(run) > cap) {
                        *truncated = 1;
                        break;
                }
                len += varint_put(raw + len, gap);
                len += varint_put(raw + len, run);
                pos = end;
                pairs++;
        }
        if (!pairs) {
                free(raw);
                return 0;
        }
        memcpy(out, LB_OFFSET_MAP_PREFIX, PREFIX_LEN);
        b64_encode(raw, len, out + PREFIX_LEN);
        free(raw);
        return PREFIX_LEN + b64_len(len);
}

/* Reads the run pairs after the base into ranges (cap of them at most).
 * @returns their count, or -1 when corrupt. */
static int read_runs(const uint8_t *raw, size_t len, size_t pos, int64_t base,
                     lb_range_t *r, size_t cap)
{
        size_t n = 0;
        int64_t at = base;
        while (pos < len) {
                uint64_t gap, run;
                if (n == cap || varint_get(raw, len, &pos, &gap) ||
                    varint_get(raw, len, &pos, &run) || gap == 0 || run == 0 ||
                    gap > (uint64_t)(INT64_MAX - at) ||
                    run > (uint64_t)(INT64_MAX - at) - gap)
                        return -1;
                r[n].start = at + (int64_t)gap;
                r[n].end = r[n].start + (int64_t)run;
                at = r[n].end;
                n++;
        }
        return (int)n;
}

int lb_offset_map_decode(const char *md, size_t len, int64_t base,
                         lb_range_t **out)
{
        *out = NULL;
        if (len == 0)
                return 0;
        if (len <= PREFIX_LEN || memcmp(md, LB_OFFSET_MAP_PREFIX, PREFIX_LEN) ||
            base < 0 || len - PREFIX_LEN > (size_t)INT32_MAX)
                return -1;
        size_t b64n = len - PREFIX_LEN;
        uint8_t *raw = malloc(b64n / 4 * 3 + 1);
        if (!raw)
                return -1;
        long rawn = b64_decode(md + PREFIX_LEN, b64n, raw);
        size_t pos = 0;
        uint64_t b;
        int n = -1;
        if (rawn > 0 && !varint_get(raw, (size_t)rawn, &pos, &b) &&
            b == (uint64_t)base && pos < (size_t)rawn) {
                /* a pair takes at least two bytes */
                size_t cap = ((size_t)rawn - pos) / 2;
                lb_range_t *r = malloc(cap * sizeof(*r));
                if (r &&
                    (n = read_runs(raw, (size_t)rawn, pos, base, r, cap)) > 0)
                        *out = r;
                else {
                        free(r);
                        n = -1;
                }
        }
        free(raw);
        return n;
}

void lb_map_room_init(lb_map_room_t *r, int64_t max)
{
        r->max = max > 0 ? max : 0;
        r->room = r->max;
        r->probe_at = 0;
}

int lb_map_room_observe(lb_map_room_t *r, size_t refused, int64_t now_ms)
{
        if (refused > 0) {
                if ((int64_t)refused > r->room)
                        return 0; /* sent before the last cut */
                int64_t half = (int64_t)refused / 2;
                r->room = (int64_t)refused <= LB_MAP_ROOM_MIN ? 0
                          : half > LB_MAP_ROOM_MIN            ? half
                                                              : LB_MAP_ROOM_MIN;
                r->probe_at = now_ms + LB_MAP_ROOM_PROBE_MS;
                return -1;
        }
        if (!r->probe_at || now_ms < r->probe_at)
                return 0;
        r->room = r->room ? r->room * 2 : LB_MAP_ROOM_MIN;
        if (r->room >= r->max) {
                r->room = r->max;
                r->probe_at = 0;
        } else {
                r->probe_at = now_ms + LB_MAP_ROOM_PROBE_MS;
        }
        return 1;
}
