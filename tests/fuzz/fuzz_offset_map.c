/*
 * fuzz_offset_map.c: libFuzzer target for the offset map. Any metadata must
 * decode to valid ranges (sorted, disjoint, non-empty, above the base) or
 * to -1; what decodes re-encodes and decodes to the same ranges. The input
 * read as ranges must encode within any size limit, and decode to the
 * ranges kept: all of them, or (truncated) a leading part, never more.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "offset_map.h"

static int valid(int64_t base, const lb_range_t *r, int n)
{
        int64_t prev = base;
        for (int i = 0; i < n; i++) {
                if (r[i].start <= prev || r[i].end <= r[i].start)
                        return 0;
                prev = r[i].end;
        }
        return 1;
}

static void check_decode(const uint8_t *data, size_t size, int64_t base)
{
        lb_range_t *r;
        int n = lb_offset_map_decode((const char *)data, size, base, &r);
        if (n < 0)
                return;
        if (!valid(base, r, n))
                abort();
        size_t max = 4 + 4 * (size_t)n * 2 * 10;
        char *out = malloc(max + 1);
        int truncated;
        size_t len =
            lb_offset_map_encode(base, r, (size_t)n, out, max, &truncated);
        lb_range_t *r2;
        int n2 = lb_offset_map_decode(out, len, base, &r2);
        if (truncated || n2 != n ||
            (n && memcmp(r, r2, (size_t)n * sizeof(*r))))
                abort();
        free(r2);
        free(out);
        free(r);
}

/* The input as (gap, run) byte pairs from base: ranges by construction. */
static void check_encode(const uint8_t *data, size_t size, int64_t base,
                         size_t max)
{
        size_t n = 0;
        lb_range_t *r = malloc((size / 2 + 1) * sizeof(*r));
        int64_t at = base;
        for (size_t i = 0; i + 1 < size; i += 2) {
                r[n].start = at + 1 + data[i] * 977;
                r[n].end = r[n].start + 1 + data[i + 1] * 31;
                at = r[n++].end;
        }
        char *out = malloc(max + 1);
        int truncated;
        size_t len = lb_offset_map_encode(base, r, n, out, max, &truncated);
        if (len > max || strlen(out) != len)
                abort();
        lb_range_t *d;
        int m = lb_offset_map_decode(out, len, base, &d);
        if (m < 0 || (size_t)m > n || (!truncated && (size_t)m != n) ||
            (m && memcmp(d, r, (size_t)m * sizeof(*r))))
                abort();
        free(d);
        free(out);
        free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 3)
                return 0;
        int64_t base = (int64_t)(data[0] | data[1] << 8) * 1000003;
        size_t max = 8 + data[2] * 16;
        check_decode(data + 3, size - 3, base);
        check_encode(data + 3, size - 3, base, max);
        return 0;
}
