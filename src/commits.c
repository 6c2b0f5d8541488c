/*
 * commits.c: the assignment table, and what the group is told of it: each
 * partition's committable offset (the contiguous done prefix, offsets.h)
 * with an offset map of the done offsets above it (offset_map.h), committed
 * every auto.commit.interval.ms when either changed, and waited for at a
 * revocation and at the end; the maps the group committed, read when a
 * partition is assigned, say which offsets are done already.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "hash.h"
#include "log.h"
#include "loop.h"

lb_assigned_t *lb_commits_find(lb_bridge_t *b, const char *topic,
                               int32_t partition)
{
        for (size_t i = 0; i < b->assigned_cnt; i++) {
                lb_partition_t *p = b->assigned[i].p;
                if (lb_partition_id(p) == partition &&
                    !strcmp(lb_partition_topic(p), topic))
                        return &b->assigned[i];
        }
        return NULL;
}

lb_assigned_t *lb_commits_of(lb_bridge_t *b, const rd_kafka_message_t *m)
{
        lb_assigned_t *e = b->last_of;
        if (e && m->rkt == b->last_rkt && lb_partition_id(e->p) == m->partition)
                return e;
        e = lb_commits_find(b, rd_kafka_topic_name(m->rkt), m->partition);
        b->last_of = e;
        b->last_rkt = m->rkt;
        return e;
}

/* e as when its partition was assigned (by the rebalance tag): tracked by
 * p, nothing committed, consumed or checked yet. */
static void assigned_init(lb_assigned_t *e, lb_partition_t *p, uint64_t tag)
{
        *e = (lb_assigned_t){.p = p,
                             .committed = -1,
                             .tag = tag,
                             .start = -1,
                             .resumed = -1,
                             .first = -1,
                             .sought = -1};
        lb_skip_init(&e->skip);
}

lb_assigned_t *lb_commits_add(lb_bridge_t *b, const char *topic,
                              int32_t partition, uint64_t tag)
{
        b->last_of = NULL;
        lb_assigned_t *n = lb_grow(b->assigned, &b->assigned_cap,
                                   b->assigned_cnt + 1, sizeof(*n), 16);
        if (!n)
                return NULL;
        b->assigned = n;
        lb_partition_t *p = lb_partition_new(topic, partition);
        if (!p)
                return NULL;
        lb_partition_count_ring(p, &b->ring_bytes);
        lb_assigned_t *e = &b->assigned[b->assigned_cnt++];
        assigned_init(e, p, tag);
        atomic_store(&b->metrics.partitions_assigned, (int64_t)b->assigned_cnt);
        return e;
}

int lb_commits_restart(lb_bridge_t *b, lb_assigned_t *e)
{
        lb_partition_t **r = lb_grow(e->retired, &e->retired_cap,
                                     e->retired_cnt + 1, sizeof(*r), 2);
        if (!r)
                return -1;
        e->retired = r;
        lb_partition_t *p =
            lb_partition_new(lb_partition_topic(e->p), lb_partition_id(e->p));
        if (!p)
                return -1;
        lb_partition_count_ring(p, &b->ring_bytes);
        lb_assigned_t was = *e;
        r[was.retired_cnt++] = was.p; /* the table's reference moves */
        free(was.skip_error);
        assigned_init(e, p, was.tag);
        e->retired = r;
        e->retired_cnt = was.retired_cnt;
        e->retired_cap = was.retired_cap;
        return 0;
}

/* Lets go of e's retired trackers whose offsets are all done; the rest
 * bound what e commits.
 * @returns the lowest committable offset of those left (INT64_MAX: none). */
static int64_t retired_floor(lb_assigned_t *e)
{
        int64_t floor = INT64_MAX;
        for (size_t i = 0; i < e->retired_cnt;) {
                lb_partition_t *p = e->retired[i];
                if (!lb_partition_outstanding(p)) {
                        lb_partition_unref(p);
                        e->retired[i] = e->retired[--e->retired_cnt];
                        continue;
                }
                int64_t off = lb_partition_committable(p);
                if (off < floor)
                        floor = off;
                i++;
        }
        return floor;
}

/* Revokes e's trackers and drops the table's references to them. */
static void let_go(lb_assigned_t *e)
{
        lb_partition_revoke(e->p);
        lb_partition_unref(e->p);
        for (size_t i = 0; i < e->retired_cnt; i++) {
                lb_partition_revoke(e->retired[i]);
                lb_partition_unref(e->retired[i]);
        }
        free(e->retired);
        free(e->skip_error);
}

void lb_commits_remove(lb_bridge_t *b, lb_assigned_t *e)
{
        b->last_of = NULL;
        let_go(e);
        *e = b->assigned[--b->assigned_cnt];
        atomic_store(&b->metrics.partitions_assigned, (int64_t)b->assigned_cnt);
}

void lb_commits_free(lb_bridge_t *b)
{
        for (size_t i = 0; i < b->assigned_cnt; i++)
                let_go(&b->assigned[i]);
        free(b->assigned);
        b->assigned = NULL;
        b->assigned_cnt = 0;
}

size_t lb_commits_hand_over(lb_bridge_t *b, lb_assigned_t *e)
{
        int64_t now = lb_loop_now_ms();
        for (size_t i = 0; i < e->retired_cnt; i++)
                lb_batcher_expedite(b->batcher, e->retired[i], now);
        return lb_batcher_abandon(b->batcher, e->p, lb_action_drop, b);
}

size_t lb_commits_abandon(lb_bridge_t *b, lb_assigned_t *e)
{
        size_t lost = 0;
        for (size_t i = 0; i < e->retired_cnt; i++)
                lost += lb_batcher_abandon(b->batcher, e->retired[i],
                                           lb_action_drop, b);
        if (lost)
                lb_error("consumer",
                         "%s[%d]: %zu action(s) taken before it restarted "
                         "were not sent in time: lost (its old log is gone, "
                         "nobody can read them again)",
                         lb_partition_topic(e->p), lb_partition_id(e->p), lost);
        return lost + lb_batcher_abandon(b->batcher, e->p, lb_action_drop, b);
}

size_t lb_commits_retired_holders(const lb_assigned_t *e)
{
        size_t n = 0;
        for (size_t i = 0; i < e->retired_cnt; i++)
                n += lb_partition_holders(e->retired[i]);
        return n;
}

size_t lb_commits_holders(const lb_assigned_t *e)
{
        return lb_partition_holders(e->p) + lb_commits_retired_holders(e);
}

/* The hash of an encoded map: a partition is committed again when its
 * offset or map changed. */
static uint64_t map_hash(const char *s, size_t n)
{
        return lb_fnv1a(LB_FNV1A_SEED, s, n);
}

/* Adds e's committable offset, with the map of the done offsets above it,
 * to l: when either changed since e's last commit, and always when waited
 * (at a revocation, at shutdown: the last commit this instance makes of
 * the partition, while one sent earlier without waiting may still be on
 * its way, to fail where nothing retries it). While a retired tracker has
 * offsets not done, no more than its committable offset, without a map:
 * whether the log started over or (a consumer's stale rewind) is the same
 * log read again, every offset below the lower of the two is done. */
void lb_commits_add_to(lb_bridge_t *b, lb_assigned_t *e,
                       rd_kafka_topic_partition_list_t *l, int waited)
{
        int64_t off = lb_partition_committable(e->p);
        int64_t floor = retired_floor(e);
        size_t len = 0;
        int truncated = 0;
        /* A partition being revoked as lost is never committed: its new
         * owner may be ahead. The periodic commit may run in the turn
         * that learns of the loss, before the revocation releases it. */
        if (off < 0 || (e->revoking && b->revocation.lost))
                return;
        if (floor < off)
                off = floor;
        else if (b->map_room.room > 0) {
                size_t n =
                    lb_partition_done_ranges(e->p, b->ranges, b->ranges_cap);
                size_t w = n < b->ranges_cap ? n : b->ranges_cap;
                len =
                    lb_offset_map_encode(off, b->ranges, w, b->map,
                                         (size_t)b->map_room.room, &truncated);
                truncated |= n > w;
        }
        uint64_t h = map_hash(b->map, len);
        if (!waited && off == e->committed && h == e->committed_map)
                return;
        rd_kafka_topic_partition_t *t = rd_kafka_topic_partition_list_add(
            l, lb_partition_topic(e->p), lb_partition_id(e->p));
        t->offset = off;
        if (len && (t->metadata = malloc(len))) { /* freed with l */
                memcpy(t->metadata, b->map, len);
                t->metadata_size = len;
        }
        e->committed = off;
        e->committed_map = h;
        if (truncated)
                atomic_fetch_add(&b->metrics.offset_maps_truncated, 1);
}

/* A commit's result, per partition. A failed one is sent again at the next
 * interval; maps the broker refuses as too large cut the room for maps
 * once per commit (the part nearest the committed offset is kept), and the
 * room is probed back up later (lb_map_room_t). */
void lb_commits_on_committed(void *opaque, rd_kafka_resp_err_t err,
                             const rd_kafka_topic_partition_list_t *l)
{
        lb_bridge_t *b = opaque;
        size_t refused = 0; /* the smallest map refused as too large */
        for (int i = 0; i < l->cnt; i++) {
                const rd_kafka_topic_partition_t *t = &l->elems[i];
                rd_kafka_resp_err_t e = t->err ? t->err : err;
                if (!e) {
                        atomic_fetch_add(&b->metrics.offsets_committed, 1);
                        continue;
                }
                lb_assigned_t *a = lb_commits_find(b, t->topic, t->partition);
                if (a)
                        a->committed = -1;
                if (e == RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE &&
                    t->metadata_size > 0) {
                        if (!refused || t->metadata_size < refused)
                                refused = t->metadata_size;
                } else {
                        lb_warn("offsets", "commit %s[%d]@%" PRId64 ": %s",
                                t->topic, t->partition, t->offset,
                                rd_kafka_err2str(e));
                }
        }
        int change =
            lb_map_room_observe(&b->map_room, refused, lb_loop_now_ms());
        if (change < 0)
                lb_warn("offsets",
                        "the broker refused an offset map of %zu bytes (set "
                        "commit.metadata.max.bytes to its "
                        "offset.metadata.max.bytes); maps now take at most "
                        "%" PRId64 " bytes%s, more tried in %d s",
                        refused, b->map_room.room,
                        b->map_room.room ? ""
                                         : " (off: a crash or handover "
                                           "redoes what they would skip)",
                        LB_MAP_ROOM_PROBE_MS / 1000);
        else if (change > 0)
                lb_info("offsets",
                        "offset maps may take %" PRId64 " bytes again",
                        b->map_room.room);
        atomic_store(&b->metrics.offset_map_room, b->map_room.room);
}

void lb_commits_send(lb_bridge_t *b, rd_kafka_topic_partition_list_t *l,
                     int async)
{
        rd_kafka_resp_err_t err = lb_kafka_in_commit(b->in, l, async);
        if (!async || err)
                lb_commits_on_committed(b, err, l);
}

/* Commits the assigned partitions (lb_commits_add_to): every
 * auto.commit.interval.ms without waiting, and at the end waiting. */
void lb_commits_all(lb_bridge_t *b, int async)
{
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new((int)b->assigned_cnt + 1);
        for (size_t i = 0; i < b->assigned_cnt; i++)
                lb_commits_add_to(b, &b->assigned[i], l, !async);
        lb_commits_send(b, l, async);
        rd_kafka_topic_partition_list_destroy(l);
}

void lb_commits_due(lb_bridge_t *b, int64_t now)
{
        if (now < b->next_commit_ms)
                return;
        lb_commits_all(b, 1);
        b->next_commit_ms = now + lb_kafka_in_commit_interval_ms(b->in);
}

/* The committed offsets of the partitions assigned with tag: the offsets
 * their maps mark done are skipped when consumed. A map that cannot be
 * used is ignored (those offsets are redone, never skipped), and so is one
 * that comes after the partition's first message (it was not paused) or
 * for an older assignment of it. */
void lb_commits_on_read(void *opaque,
                        const rd_kafka_topic_partition_list_t *offs,
                        uint64_t tag)
{
        lb_bridge_t *b = opaque;
        if (!offs)
                atomic_fetch_add(&b->metrics.offset_map_reads_failed, 1);
        for (int i = 0; offs && i < offs->cnt; i++) {
                const rd_kafka_topic_partition_t *t = &offs->elems[i];
                lb_assigned_t *e = lb_commits_find(b, t->topic, t->partition);
                lb_range_t *r;
                if (!e || e->tag != tag || e->first >= 0 || t->err ||
                    t->offset < 0)
                        continue;
                e->start = t->offset;
                if (!t->metadata_size)
                        continue;
                int n = lb_offset_map_decode(t->metadata, t->metadata_size,
                                             t->offset, &r);
                if (n < 0) {
                        atomic_fetch_add(&b->metrics.offset_maps_ignored, 1);
                        lb_warn("offsets",
                                "%s[%d]: the committed offset map is not one "
                                "this version reads; ignored (what it marks "
                                "done is redone)",
                                t->topic, t->partition);
                        continue;
                }
                lb_partition_set_already_done(e->p, r, (size_t)n);
                e->committed = t->offset;
                e->committed_map = map_hash(t->metadata, t->metadata_size);
        }
}
