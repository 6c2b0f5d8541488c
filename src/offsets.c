/*
 * offsets.c: per-partition completion tracking. Owns a ring buffer of
 * (offset, done) entries (8 bytes each) in consumed order; the done prefix is
 * popped as soon as it forms, so the head entry is always the lowest incomplete
 * offset. Never calls librdkafka: the caller stores what committable() returns.
 */
#include "offsets.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

/* First allocation; capacities stay powers of two so indexes wrap by mask. */
#define RING_INIT_CAP 16
/* An emptied ring larger than this is freed (a burst should not pin memory
 * for the partition's lifetime); the next track() allocates it again. */
#define RING_KEEP_CAP 4096

/* A tracked offset and whether it is done, in 8 bytes: offset << 1 | done
 * (Kafka offsets are far below 2^62). */
typedef uint64_t entry_t;

static int64_t entry_offset(entry_t e)
{
        return (int64_t)(e >> 1);
}

static int entry_done(entry_t e)
{
        return (int)(e & 1);
}

struct lb_partition_s {
        char *topic;
        int32_t partition;
        int refcnt;
        int revoked;
        entry_t *ring;
        size_t cap;  /* 0 or a power of two */
        size_t head; /* physical index of the oldest entry */
        size_t len;  /* entries in the ring (done ones included) */
        size_t outstanding;
        int64_t last;        /* last tracked offset, -1 before the first */
        lb_range_t *already; /* done per the committed offset map */
        size_t already_n, already_at;
        size_t *ring_total; /* counts the ring's bytes; NULL: none */
};

lb_partition_t *lb_partition_new(const char *topic, int32_t partition)
{
        lb_partition_t *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->topic = strdup(topic ? topic : "");
        if (!p->topic) {
                free(p);
                return NULL;
        }
        p->partition = partition;
        p->refcnt = 1;
        p->last = -1;
        return p;
}

void lb_partition_ref(lb_partition_t *p)
{
        p->refcnt++;
}

void lb_partition_count_ring(lb_partition_t *p, size_t *total)
{
        p->ring_total = total;
        *total += p->cap * sizeof(entry_t);
}

/* Frees the ring (its offsets are all done, or the tracker goes). */
static void ring_free(lb_partition_t *p)
{
        if (p->ring_total)
                *p->ring_total -= p->cap * sizeof(entry_t);
        free(p->ring);
        p->ring = NULL;
        p->cap = 0;
        p->head = 0;
}

void lb_partition_unref(lb_partition_t *p)
{
        if (!p || --p->refcnt > 0)
                return;
        ring_free(p);
        free(p->already);
        free(p->topic);
        free(p);
}

size_t lb_partition_holders(const lb_partition_t *p)
{
        return p->refcnt > 0 ? (size_t)p->refcnt - 1 : 0;
}

const char *lb_partition_topic(const lb_partition_t *p)
{
        return p->topic;
}

int32_t lb_partition_id(const lb_partition_t *p)
{
        return p->partition;
}

static entry_t *entry_at(const lb_partition_t *p, size_t i)
{
        return &p->ring[(p->head + i) & (p->cap - 1)];
}

/* Doubles the ring (or allocates the first one), unwrapping it to index 0. */
static int ring_grow(lb_partition_t *p)
{
        size_t old = p->cap;
        entry_t *ring = lb_grow_ring(p->ring, &p->cap, p->head, p->len,
                                     sizeof(*ring), RING_INIT_CAP);
        if (!ring)
                return -1;
        if (p->ring_total)
                *p->ring_total += (p->cap - old) * sizeof(entry_t);
        p->ring = ring;
        p->head = 0;
        return 0;
}

int lb_partition_track(lb_partition_t *p, int64_t offset)
{
        if (offset <= p->last)
                return 1;
        if (p->len == p->cap && ring_grow(p) == -1)
                return -1;
        *entry_at(p, p->len) = (entry_t)offset << 1;
        p->len++;
        p->outstanding++;
        p->last = offset;
        return 0;
}

/* @returns where offset is in a ring of consecutive offsets (a
 *          partition's usually are; not on compacted or transactional
 *          topics): its distance from the first; SIZE_MAX when that is
 *          outside the ring (p->len 0 included). */
static size_t first_guess(const lb_partition_t *p, int64_t offset)
{
        if (p->len == 0)
                return SIZE_MAX;
        uint64_t guess =
            (uint64_t)offset - (uint64_t)entry_offset(*entry_at(p, 0));
        return guess < p->len ? (size_t)guess : SIZE_MAX;
}

/* @returns the logical index of offset in the ring, or SIZE_MAX. */
static size_t ring_find(const lb_partition_t *p, int64_t offset)
{
        size_t guess = first_guess(p, offset);
        if (guess != SIZE_MAX && entry_offset(*entry_at(p, guess)) == offset)
                return guess;
        size_t lo = 0, hi = p->len;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int64_t o = entry_offset(*entry_at(p, mid));
                if (o == offset)
                        return mid;
                if (o < offset)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return SIZE_MAX;
}

void lb_partition_prefetch(const lb_partition_t *p, int64_t offset)
{
        size_t guess = first_guess(p, offset);
        if (guess != SIZE_MAX)
                __builtin_prefetch(entry_at(p, guess), 1);
}

int lb_partition_done(lb_partition_t *p, int64_t offset)
{
        if (p->revoked)
                return 0;
        size_t i = ring_find(p, offset);
        if (i == SIZE_MAX || entry_done(*entry_at(p, i)))
                return -1;
        *entry_at(p, i) |= 1;
        p->outstanding--;
        if (i > 0)
                return 0;
        while (p->len > 0 && entry_done(*entry_at(p, 0))) {
                p->head = (p->head + 1) & (p->cap - 1);
                p->len--;
        }
        if (p->len == 0 && p->cap > RING_KEEP_CAP)
                ring_free(p);
        return 1;
}

void lb_partition_read_to(lb_partition_t *p, int64_t end)
{
        /* As if end - 1 had been tracked and done: the ring keeps what is
         * pending, and once it is empty the next offset is end. */
        if (end - 1 > p->last)
                p->last = end - 1;
}

int64_t lb_partition_committable(const lb_partition_t *p)
{
        if (p->len > 0)
                return entry_offset(*entry_at(p, 0));
        return lb_partition_next(p);
}

int64_t lb_partition_next(const lb_partition_t *p)
{
        return p->last < 0 ? -1 : p->last + 1;
}

size_t lb_partition_outstanding(const lb_partition_t *p)
{
        return p->outstanding;
}

/* Appends [start, end) to the n ranges of out (cap written at most),
 * joined to the last when it begins where that ends. @returns the new n. */
static size_t range_put(lb_range_t *out, size_t cap, size_t n, int64_t start,
                        int64_t end)
{
        if (n && n <= cap && out[n - 1].end == start) {
                out[n - 1].end = end;
                return n;
        }
        if (n < cap) /* else out of room: only counted */
                out[n] = (lb_range_t){start, end};
        return n + 1;
}

size_t lb_partition_done_ranges(const lb_partition_t *p, lb_range_t *out,
                                size_t cap)
{
        size_t n = 0;
        int in_run = 0;
        /* The head entry is never done (done ones are popped). A run of
         * done entries is one range, also across offsets the consumer
         * never sees (compaction, control records). */
        for (size_t i = 1; i < p->len; i++) {
                entry_t e = *entry_at(p, i);
                int64_t o = entry_offset(e);
                if (!entry_done(e)) {
                        in_run = 0;
                } else if (in_run) {
                        if (n <= cap) /* range n - 1 was written */
                                out[n - 1].end = o + 1;
                } else {
                        in_run = 1;
                        n = range_put(out, cap, n, o, o + 1);
                }
        }
        /* Then what the last owner's map said was done and this one has
         * not consumed yet: past the last tracked offset, and never the
         * committable one (a map does not hold it). */
        int64_t from = p->last + 1 + (p->len == 0);
        for (size_t i = p->already_at; p->already && i < p->already_n; i++) {
                int64_t start = p->already[i].start, end = p->already[i].end;
                if (start < from)
                        start = from;
                if (start < end)
                        n = range_put(out, cap, n, start, end);
        }
        return n;
}

void lb_partition_set_already_done(lb_partition_t *p, lb_range_t *ranges,
                                   size_t n)
{
        free(p->already);
        p->already = ranges;
        p->already_n = n;
        p->already_at = 0;
}

int lb_partition_already_done(lb_partition_t *p, int64_t offset)
{
        if (!p->already) /* the common case: nothing left to skip */
                return 0;
        while (p->already_at < p->already_n &&
               p->already[p->already_at].end <= offset)
                p->already_at++;
        if (p->already_at == p->already_n) {
                free(p->already);
                p->already = NULL;
                p->already_n = p->already_at = 0;
                return 0;
        }
        return p->already[p->already_at].start <= offset;
}

void lb_partition_revoke(lb_partition_t *p)
{
        p->revoked = 1;
}

int lb_partition_revoked(const lb_partition_t *p)
{
        return p->revoked;
}

int64_t lb_retention_lost(int64_t committed, int64_t first, int64_t log_start)
{
        if (first <= committed || log_start <= committed || first < log_start)
                return 0;
        return log_start - committed;
}
