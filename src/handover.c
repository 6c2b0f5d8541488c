/*
 * handover.c: partitions coming and going. An assignment adds them to the
 * table (paused by kafka_in until their committed offset maps are read).
 * A revocation is a state of the loop, never a wait inside librdkafka's
 * callback: the callback only records it (its partitions take nothing more
 * and their held actions are handed over unsent); then, turn by turn, the
 * actions on their way are finished (up to rebalance.timeout.ms), the
 * partitions are committed with their offset maps and released, what is
 * left is given up, the API is waited for until no user of theirs is busy
 * (api.timeout.ms + api.timeout.hold.ms), and only then is the group
 * answered (lb_kafka_in_revoked(), tagged: a stale answer is dropped).
 * Lost partitions wait for nothing. The shutdown runs the same way from
 * SIGTERM: drain, give up, wait for the API, stop.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"

/* ---- assignment ---- */

void lb_handover_on_assigned(void *opaque,
                             const rd_kafka_topic_partition_list_t *parts,
                             uint64_t tag)
{
        lb_bridge_t *b = opaque;
        atomic_store(&b->health.joined, 1);
        for (int i = 0; i < parts->cnt; i++) {
                const char *t = parts->elems[i].topic;
                int32_t pid = parts->elems[i].partition;
                if (lb_commits_find(b, t, pid))
                        continue;
                if (!lb_commits_add(b, t, pid, tag)) {
                        lb_error("consumer", "out of memory");
                        b->fatal = 1;
                        return;
                }
        }
}

/* ---- revocation ---- */

static int partition_revoked(const lb_action_t *a)
{
        return lb_partition_revoked(a->partition);
}

static int in_parts(const rd_kafka_topic_partition_list_t *parts,
                    const lb_partition_t *p)
{
        return !parts ||
               rd_kafka_topic_partition_list_find(parts, lb_partition_topic(p),
                                                  lb_partition_id(p)) != NULL;
}

/* Drops the actions held (queued, never sent) for the partitions of parts,
 * or of every assigned partition (parts NULL): the next owner reads them
 * again, with the same Kafka timestamps and so the same deadlines, and
 * looks each user up once, not once here and once there. Those of a log
 * that restarted are sent at once instead (lb_commits_hand_over), unless
 * at_end: then they are dropped too, and said lost.
 * @returns how many were dropped. */
static size_t hand_over_held(lb_bridge_t *b,
                             const rd_kafka_topic_partition_list_t *parts,
                             int at_end)
{
        size_t dropped = 0;
        for (size_t i = 0; i < b->assigned_cnt; i++)
                if (in_parts(parts, b->assigned[i].p))
                        dropped +=
                            at_end ? lb_commits_abandon(b, &b->assigned[i])
                                   : lb_commits_hand_over(b, &b->assigned[i]);
        return dropped;
}

/* The actions alive of the retired trackers of the partitions of parts
 * (all when NULL): taken before the partition restarted, they are lost
 * if given up, as nobody can read them again. */
static size_t restarted_live(lb_bridge_t *b,
                             const rd_kafka_topic_partition_list_t *parts)
{
        size_t n = 0;
        for (size_t i = 0; i < b->assigned_cnt; i++)
                if (in_parts(parts, b->assigned[i].p))
                        n += lb_commits_retired_holders(&b->assigned[i]);
        return n;
}

/* ", but for N taken before ...: lost" when n, else "". */
static const char *restarted_clause(char *buf, size_t size, size_t n)
{
        buf[0] = '\0';
        if (n)
                snprintf(buf, size,
                         ", but for %zu taken before a partition restarted: "
                         "lost (its old log is gone)",
                         n);
        return buf;
}

/* Whether actions of the revoked partitions are still under way (the done
 * fact: their offsets are not committed yet). */
static int revoked_live(lb_bridge_t *b, const lb_revocation_t *r)
{
        for (size_t i = 0; i < b->assigned_cnt; i++)
                if (in_parts(r->parts, b->assigned[i].p) &&
                    lb_commits_holders(&b->assigned[i]))
                        return 1;
        return 0;
}

static int tag_in(uint64_t tag, const void *arg)
{
        const lb_revocation_t *r = arg;
        for (size_t i = 0; i < r->ltag_cnt; i++)
                if (r->ltags[i] == tag)
                        return 1;
        return 0;
}

/* Whether the API may still be working on a user whose request carried
 * actions of the revoked partitions (the busy fact). */
static int revoked_busy(lb_bridge_t *b, const lb_revocation_t *r)
{
        return lb_ledger_busy_tagged(b->ledger, lb_loop_now_ms(), tag_in, r);
}

/* While draining: the end of every wait for requests still at the API, so
 * the shutdown fits lb_config_exit_bound_ms(): the drain's deadline plus
 * api.timeout.ms + api.timeout.hold.ms. */
static int64_t exit_wait_deadline(const lb_bridge_t *b)
{
        return b->stop_deadline + b->conf->api_timeout_ms +
               b->conf->api_timeout_hold_ms;
}

/* now + span, but no later than the drain's (wait_api: the exit bound's)
 * deadline while draining, and now once stopping or for lost partitions:
 * then a revocation waits for nothing. */
static int64_t revocation_deadline(const lb_bridge_t *b, int64_t span,
                                   int wait_api)
{
        int64_t now = lb_loop_now_ms(), deadline = now + span;
        int64_t cap = wait_api ? exit_wait_deadline(b) : b->stop_deadline;
        if (b->state == LB_DRAINING && cap < deadline)
                deadline = cap;
        return b->state == LB_STOPPING || b->revocation.lost ? now : deadline;
}

/* Commits the revoked partitions' offsets and offset maps (not for lost
 * ones: their new owner may be ahead), waiting (bounded), so that the next
 * owner, which reads the group's offsets as soon as it is assigned, starts
 * where this one stopped; then drops their queued actions and releases
 * their trackers. With the cooperative protocol too: the consumer commits
 * nothing by itself (its offset store drops metadata), although librdkafka
 * 2.0.2 can lose the assignment when committing during a cooperative
 * rebalance (#4908, fixed in 2.10.0): the default protocol is eager.
 * @returns how many queued actions were dropped. */
static size_t release_partitions(lb_bridge_t *b, const lb_revocation_t *r)
{
        size_t dropped = 0;
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(r->parts->cnt + 1);
        for (size_t i = 0; i < b->assigned_cnt; i++) {
                lb_assigned_t *e = &b->assigned[i];
                if (!in_parts(r->parts, e->p))
                        continue;
                dropped += lb_commits_abandon(b, e);
                /* Once the final commit is made (the exit margin counts
                 * from it), only what it failed to carry: nothing is done
                 * since, and a second commit of the same offsets, made
                 * inside the consumer's close, is what could hang the close
                 * in librdkafka 2.0.2 (its "Unknown member" answer ends the
                 * group while the callback's next request to it is queued,
                 * and the group's end drops that request unanswered:
                 * lb_kafka_in_cooperative). A revocation answered before it
                 * (at the drain's end) commits them all: its partitions
                 * leave the final commit. */
                if (!r->lost)
                        lb_commits_add_to(b, e, l, !b->margin_from_ms);
        }
        lb_commits_send(b, l, 0); /* nothing to send: no request */
        rd_kafka_topic_partition_list_destroy(l);
        for (size_t i = 0; i < b->assigned_cnt;) {
                lb_assigned_t *e = &b->assigned[i];
                if (!in_parts(r->parts, e->p)) {
                        i++;
                        continue;
                }
                size_t live = lb_partition_holders(e->p);
                size_t old = lb_commits_retired_holders(e);
                if (live)
                        lb_info("consumer",
                                "%s[%d]: %zu action(s) still under way at "
                                "revocation; the next owner redoes them",
                                lb_partition_topic(e->p), lb_partition_id(e->p),
                                live);
                if (old)
                        lb_error("consumer",
                                 "%s[%d]: %zu action(s) taken before it "
                                 "restarted still under way at revocation: "
                                 "given up, lost (its old log is gone)",
                                 lb_partition_topic(e->p),
                                 lb_partition_id(e->p), old);
                lb_commits_remove(b, e); /* the last entry moves to i */
        }
        return dropped;
}

/* Finishing -> waiting: the partitions are committed and released, what is
 * left of their actions is given up (their requests may run on: the ledger
 * keeps their users busy), and the API is waited for: bounded by
 * api.timeout.ms + api.timeout.hold.ms (a request on the wire ends within
 * the first, its hold within the second). Not capped by a shutdown
 * drain's deadline (leaving while a request runs is what lets the next
 * owner overlap it), but by the exit bound's. */
static void release(lb_bridge_t *b)
{
        lb_revocation_t *r = &b->revocation;
        b->flushes -= r->flushing;
        r->flushing = 0;
        r->restarted = restarted_live(b, r->parts); /* all given up below */
        r->queued = release_partitions(b, r);
        r->given_up = lb_requests_give_up(b, partition_revoked);
        r->dead_letters = lb_dlq_give_up_revoked(b->dlq);
        r->phase = LB_REVOKE_WAITING;
        r->deadline = revocation_deadline(
            b, b->conf->api_timeout_ms + b->conf->api_timeout_hold_ms, 1);
}

/* The revocation is over: said, answered (unless kafka_in gives or drops
 * the answer itself), forgotten. */
static void finish(lb_bridge_t *b, int answer)
{
        lb_revocation_t *r = &b->revocation;
        char lost[96];
        if (r->held || r->queued || r->given_up || r->dead_letters)
                lb_info("consumer",
                        "revoked partitions: %zu held action(s) handed over "
                        "unsent, %zu queued and %zu in-flight given up, %zu "
                        "dead letter(s) not written yet given up; the next "
                        "owner reads them again%s",
                        r->held, r->queued, r->given_up, r->dead_letters,
                        restarted_clause(lost, sizeof(lost), r->restarted));
        if (answer) {
                lb_info("consumer",
                        "revocation answered from the loop after %" PRId64
                        " ms (%d partition(s)%s)",
                        lb_loop_now_ms() - r->began, r->parts->cnt,
                        r->lost ? ", lost" : "");
                lb_kafka_in_revoked(b->in, r->tag);
        }
        rd_kafka_topic_partition_list_destroy(r->parts);
        free(r->ltags);
        memset(r, 0, sizeof(*r));
}

/* Lets go of the revocation's partitions at once (no wait). */
static void let_go_now(lb_bridge_t *b, int answer)
{
        if (b->revocation.phase == LB_REVOKE_FINISHING)
                release(b);
        finish(b, answer);
}

void lb_handover_on_revoking(void *opaque,
                             const rd_kafka_topic_partition_list_t *parts,
                             int lost, uint64_t tag, int at_once)
{
        lb_bridge_t *b = opaque;
        lb_revocation_t *r = &b->revocation;
        if (lost) /* out of the group until the next assignment */
                atomic_store(&b->health.joined, 0);
        if (r->phase != LB_REVOKE_NONE) /* kafka_in settles it first */
                let_go_now(b, 0);
        r->parts = rd_kafka_topic_partition_list_copy(parts);
        r->ltags = malloc((size_t)(parts->cnt + 1) * sizeof(*r->ltags));
        if (!r->parts || !r->ltags) {
                lb_error("consumer", "out of memory");
                b->fatal = 1;
                if (r->parts)
                        rd_kafka_topic_partition_list_destroy(r->parts);
                free(r->ltags);
                memset(r, 0, sizeof(*r));
                return; /* answered at once: stopping */
        }
        for (int i = 0; i < parts->cnt; i++)
                r->ltags[r->ltag_cnt++] = lb_requests_partition_tag(
                    parts->elems[i].topic, parts->elems[i].partition);
        for (size_t i = 0; i < b->assigned_cnt; i++)
                if (in_parts(parts, b->assigned[i].p))
                        b->assigned[i].revoking = 1;
        r->lost = lost;
        r->tag = tag;
        r->began = lb_loop_now_ms();
        r->phase = LB_REVOKE_FINISHING;
        r->held = b->conf->handover_flush ? 0 : hand_over_held(b, parts, 0);
        r->flushing = !lost && b->conf->handover_flush;
        b->flushes += r->flushing;
        r->deadline = revocation_deadline(b, b->conf->rebalance_timeout_ms, 0);
        if (at_once)
                let_go_now(b, 0); /* kafka_in answers on return */
}

void lb_handover_settle(void *opaque, uint64_t tag)
{
        lb_bridge_t *b = opaque;
        if (b->revocation.phase != LB_REVOKE_NONE && b->revocation.tag == tag)
                let_go_now(b, 0);
}

void lb_handover_step(lb_bridge_t *b)
{
        lb_revocation_t *r = &b->revocation;
        int64_t now = lb_loop_now_ms();
        int over = b->fatal || b->state == LB_STOPPING || now >= r->deadline;
        if (r->phase == LB_REVOKE_FINISHING && (over || !revoked_live(b, r))) {
                release(b);
                over =
                    b->fatal || b->state == LB_STOPPING || now >= r->deadline;
        }
        if (r->phase == LB_REVOKE_WAITING && (over || !revoked_busy(b, r)))
                finish(b, 1);
}

int64_t lb_handover_next_due(const lb_bridge_t *b)
{
        return b->revocation.phase != LB_REVOKE_NONE ? b->revocation.deadline
                                                     : INT64_MAX;
}

lb_send_reason_t lb_handover_flush_reason(const lb_bridge_t *b)
{
        if (!b->flushes)
                return LB_SEND_DUE;
        return b->state != LB_RUNNING ? LB_SEND_SHUTDOWN : LB_SEND_REVOCATION;
}

/* ---- shutdown ---- */

typedef int drain_pred_t(lb_bridge_t *b);

/* Serves the loop while pred holds, until deadline or a fatal error. */
static void drain(lb_bridge_t *b, drain_pred_t *pred, int64_t deadline)
{
        while (!b->fatal && pred(b) && lb_loop_now_ms() < deadline)
                lb_loop_turn(b, 1000);
}

/* Whether the shutdown has work left: actions under way, or users the API
 * may still be working on. */
static int shutdown_left(lb_bridge_t *b)
{
        return b->live_actions > 0 ||
               lb_ledger_busy(b->ledger, lb_loop_now_ms()) > 0;
}

static int api_busy(lb_bridge_t *b)
{
        return lb_ledger_busy(b->ledger, lb_loop_now_ms()) > 0;
}

/* Running -> draining: nothing new is taken; the held actions are handed
 * over unsent (or, with handover.flush, sent at once); what is on its way
 * is finished, until it is done and the API is done with every user, or
 * shutdown.timeout.ms has passed. */
static void shutdown_drain(lb_bridge_t *b)
{
        b->state = LB_DRAINING;
        b->stop_deadline = lb_loop_now_ms() + b->conf->shutdown_timeout_ms;
        lb_kafka_in_pause_all(b->in, 1);
        size_t held = b->conf->handover_flush ? 0 : hand_over_held(b, NULL, 0);
        lb_info("bridge",
                "stopping: %zu held action(s) left for the next owner; "
                "draining %zu action(s) and %zu user(s) busy at the API for "
                "up to %" PRId64 " ms",
                held, b->live_actions,
                lb_ledger_busy(b->ledger, lb_loop_now_ms()),
                b->conf->shutdown_timeout_ms);
        b->flushes += b->conf->handover_flush;
        drain(b, shutdown_left, b->stop_deadline);
        b->flushes -= b->conf->handover_flush;
}

/* The shutdown drain ran out of time: the queued actions are dropped and
 * the flights' actions given up (their offsets stay uncommitted: the next
 * owner redoes them), but for those on the wire: the wait for the API
 * that follows waits for their answers anyway, and those count. */
static void shutdown_give_up(lb_bridge_t *b)
{
        size_t live = b->live_actions, restarted = restarted_live(b, NULL);
        size_t given =
            hand_over_held(b, NULL, 1) + lb_requests_last_attempts(b);
        char lost[96];
        lb_warn("bridge",
                "%zu action(s) not finished within shutdown.timeout.ms: %zu "
                "given up, their offsets are not committed (they will be "
                "redone%s); %zu on the wire or being dead-lettered still count",
                live, given,
                restarted_clause(lost, sizeof(lost),
                                 restarted - restarted_live(b, NULL)),
                b->live_actions);
}

/* Before leaving the group: waits, up to api.timeout.ms +
 * api.timeout.hold.ms after the drain (so the whole shutdown stays within
 * shutdown.timeout.ms + api.timeout.ms + api.timeout.hold.ms), until the
 * ledger holds no user, so the next owner's requests cannot overlap the
 * ones still running at the API (on the wire, or unanswered and held). */
static void shutdown_wait_api(lb_bridge_t *b)
{
        int64_t now = lb_loop_now_ms();
        size_t busy = lb_ledger_busy(b->ledger, now);
        if (!busy)
                return;
        lb_info("bridge",
                "waiting for %zu user(s) the API may still be working on",
                busy);
        drain(b, api_busy,
              now + b->conf->api_timeout_ms + b->conf->api_timeout_hold_ms);
        busy = lb_ledger_busy(b->ledger, lb_loop_now_ms());
        if (busy)
                lb_warn("bridge",
                        "leaving with %zu user(s) the API may still be "
                        "working on",
                        busy);
}

void lb_handover_shutdown(lb_bridge_t *b)
{
        /* not ready from here, on a fatal error too */
        atomic_store(&b->health.stopping, 1);
        if (!b->fatal)
                shutdown_drain(b);
        if (!b->fatal && b->live_actions)
                shutdown_give_up(b);
        if (!b->fatal)
                shutdown_wait_api(b);
        /* Stopping: from here (and on a fatal error) a revocation waits
         * for nothing (one still running is answered now), and a failed
         * dead-letter record is not retried. */
        b->state = LB_STOPPING;
        lb_dlq_stop_retrying(b->dlq);
        lb_handover_step(b);
        size_t old = restarted_live(b, NULL); /* not redone */
        if (b->live_actions > old)
                lb_warn("bridge",
                        "%zu action(s) not finished at shutdown; their "
                        "offsets are not committed (they will be redone)",
                        b->live_actions - old);
        if (old)
                lb_error("bridge",
                         "%zu action(s) taken before their partition "
                         "restarted not finished at shutdown: lost (their "
                         "old log is gone)",
                         old);
}
