/*
 * loop.h: the state the loop's stages share, and what each stage offers
 * the others. Private to bridge.c and its stages:
 *   intake.c    consume, parse, the memory bound; an action's end
 *               (finished, or handed to the dead-letter topic)
 *   requests.c  flights: dispatch, answers, retries, outage mode's feed
 *   commits.c   the assignment table, commits and their offset maps
 *   handover.c  assignment, revocation as a state of the loop, shutdown
 * Each stage writes only its own fields (named below) and reaches the
 * others through these functions; bridge.c turns the loop.
 */
#ifndef LB_LOOP_H
#define LB_LOOP_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <sys/stat.h>

#include "action.h"
#include "admin.h"
#include "arena.h"
#include "batcher.h"
#include "concurrency.h"
#include "config.h"
#include "dlq.h"
#include "flight.h"
#include "json_scan.h"
#include "kafka_in.h"
#include "ledger.h"
#include "metrics.h"
#include "multi.h"
#include "offset_map.h"
#include "offsets.h"
#include "outage.h"
#include "bridge.h"
#include "sender.h"
#include "skip.h"

/* Outage mode starts after this long of nothing but retriable failures, at
 * least LB_OUTAGE_MIN_FAILURES of them (of two requests or more). */
#define LB_OUTAGE_WINDOW_MS    2000
#define LB_OUTAGE_MIN_FAILURES 3

/* One assigned partition (commits.c's table). */
typedef struct {
        lb_partition_t *p;
        int64_t committed;      /* offset of the last commit sent, or -1 */
        uint64_t committed_map; /* hash of that commit's offset map */
        int64_t last_ts_ms;     /* Kafka timestamp of the last message taken */
        int caught_up;          /* reached the end (partition EOF) since */
        int revoking;           /* its revocation runs: take nothing more */
        uint64_t tag;           /* the rebalance that assigned it */
        lb_skip_t skip;         /* crossing an unreadable batch (skip.h) */
        char *skip_error;       /* ... and the consumer's error for it */
        /* Where events may have been lost to retention, until checked
         * against the log start (-1: nothing to check): from start, the
         * group's committed offset when assigned here or, when a message
         * jumps past the one after the last consumed (librdkafka reset a
         * fetch that retention overtook: fell_behind), that one; to
         * resumed, the first offset consumed past it (-1: none yet).
         * first: the first offset consumed since assigned (-1: none).
         * sought: where crossing an unreadable batch resumed it (-1:
         * nowhere since the last message). */
        int64_t start, resumed, first, sought;
        int fell_behind;
        /* The trackers of the logs it had before it started over (see
         * lb_commits_restart), while offsets of theirs are not done: they
         * are the partition's as p is (revoked, handed over and waited
         * for with it), and what is committed stays at or below each
         * one's committable offset. */
        lb_partition_t **retired;
        size_t retired_cnt, retired_cap;
} lb_assigned_t;

/* The loop's state. Running: consuming and sending. Draining (SIGTERM):
 * nothing new is taken; pending work is sent at once until it is done or
 * shutdown.timeout.ms has passed. Stopping: the drain is over, or was not
 * wanted (fatal error, teardown): a revocation waits for nothing, and a
 * failed dead-letter record is not retried. */
typedef enum { LB_RUNNING, LB_DRAINING, LB_STOPPING } lb_loop_state_t;

/* A revocation, as a state of the loop (handover.c): its partitions' work
 * on the way is finished (up to rebalance.timeout.ms), then they are
 * committed and released, then the API is waited for (their users), then
 * the group is answered. */
typedef enum {
        LB_REVOKE_NONE,
        LB_REVOKE_FINISHING, /* their actions on the way are finished */
        LB_REVOKE_WAITING,   /* the API may still work on their users */
} lb_revoke_phase_t;

typedef struct {
        lb_revoke_phase_t phase;
        rd_kafka_topic_partition_list_t *parts;
        int lost;
        int flushing; /* counted in the bridge's flushes */
        uint64_t tag; /* the rebalance it answers */
        int64_t began, deadline;
        uint64_t *ltags; /* the ledger's tags of its partitions */
        size_t ltag_cnt;
        size_t held, queued, given_up, dead_letters; /* for its log line */
        size_t restarted; /* of those, taken before a partition restarted:
                             lost, not read again */
} lb_revocation_t;

typedef struct flight_s flight_t;

struct lb_bridge_s {
        lb_config_t *conf; /* written only by the apps reload */
        int wake_fd;
        lb_kafka_in_t *in;
        lb_dlq_t *dlq;
        lb_sender_t *sender;
        lb_batcher_t *batcher;
        lb_arena_t *arena; /* where actions live (arena.h) */
        lb_admin_t *admin;
        size_t *app_overhead;
        lb_json_shapes_t *shapes; /* the events' shapes (lb_event_parse) */
        lb_metrics_t metrics;
        lb_health_t health;
        lb_summary_t summary;
        lb_loop_state_t state;
        int fatal;
        int turning;           /* lb_loop_turn() runs */
        uint64_t nested_turns; /* turns begun inside one (a bug: stays 0) */
        unsigned int rand_state;

        /* intake.c */
        int64_t burst_now_ms, burst_wall_ms; /* the consume burst's clocks */
        size_t live_actions;                 /* consumed and not yet freed */
        size_t live_bytes;

        /* requests.c */
        lb_concurrency_t conc;   /* adaptive limit on requests on the wire */
        lb_ledger_t *ledger;     /* users the API may still be working on */
        lb_outage_t outage;      /* whether the API fails for everyone */
        int64_t probe_at;        /* outage mode: no request before this */
        int64_t api_answered_ms; /* the last attempt the API answered */
        int64_t api_ok_ms;       /* the last attempt answered 2xx */
        int64_t keys_reread_ms;  /* the apps file's last read for a key */
        lb_log_throttle_t answer_cut_warn; /* answers over the read limit */
        int last_attempts; /* shutdown's drain ran out: no attempt after
                            * those on the wire */
        flight_t *flights; /* every batch on its way */
        size_t body_bytes; /* room of the flights' bodies: their starts
                              (lb_multi_body_t.head), or the unsent part
                              of one cut by a revocation */
        size_t ring_bytes; /* the offset trackers' rings (offsets.h) */
        int flushes;       /* flushing waits running (handover.flush) */

        /* commits.c */
        lb_assigned_t *assigned;
        size_t assigned_cnt, assigned_cap;
        /* lb_commits_of's last answer and the topic handle it was for:
         * messages come in runs of one partition. NULL whenever the table
         * changes. */
        lb_assigned_t *last_of;
        const rd_kafka_topic_t *last_rkt;
        int64_t next_commit_ms;
        /* when the drain ended and the exit bound's margin began, right
         * before the final commit (0: not yet), for what is left of it to
         * the dead-letter flush; the consumer's close commits again only
         * what it failed to carry (release_partitions) */
        int64_t margin_from_ms;
        lb_map_room_t map_room; /* what an offset map may take now */
        char *map; /* an encoded map, commit.metadata.max.bytes + 1 bytes */
        lb_range_t *ranges; /* a partition's done ranges, ranges_cap */
        size_t ranges_cap;

        /* handover.c */
        lb_revocation_t revocation;
        int64_t stop_deadline; /* draining: when the drain gives up */
};

int64_t lb_loop_now_ms(void);
int64_t lb_loop_wall_ms(void);

/* bridge.c: one turn of the loop (take messages unless stopping, then
 * serve); wait_ms: how long it may wait for something to happen. */
void lb_loop_turn(lb_bridge_t *b, int wait_ms);
/* The API refused a client key: takes apps=@FILE's client keys now,
 * without the watch's settle (a bad read changes nothing: the watch reads
 * it again and says why) and nothing else of it (the watch takes the rest,
 * and says so); logs only when keys changed. @returns how many changed. */
int lb_bridge_reread_keys(lb_bridge_t *b);

/* intake.c */
/* Takes a burst of messages. @returns nonzero when more may be waiting. */
int lb_intake_consume(lb_bridge_t *b);
void lb_intake_backpressure(lb_bridge_t *b);
size_t lb_intake_held_bytes(const lb_bridge_t *b);
int64_t lb_intake_consume_delay_ms(const lb_bridge_t *b, int64_t wall_ms);
/* An action's end: freed; if handled, its offset counts as done. */
void lb_action_finish(lb_bridge_t *b, lb_action_t *a, int handled);
/* Hands an action to the dead-letter topic; it is freed (and its offset
 * done) when Kafka acknowledges the record. */
void lb_dead_letter(lb_bridge_t *b, lb_action_t *a, lb_stage_t stage,
                    int http_status, const char *reason);
/* A dead-letter record's report (dlq.h). */
void lb_intake_dlq_report(void *opaque, lb_action_t *a, int err,
                          const char *errstr);
/* drop() of the batcher and the flights: frees an action unhandled. */
void lb_action_drop(lb_action_t *a, void *opaque);

/* requests.c */
void lb_requests_dispatch(lb_bridge_t *b, int64_t now);
void lb_requests_done(void *opaque, lb_request_t *req);
int64_t lb_requests_next_due(lb_bridge_t *b, int64_t now, int64_t cap);
/* Gives up the flights' actions that pred picks (never retried or
 * dead-lettered; their offsets stay uncommitted). @returns how many. */
size_t lb_requests_give_up(lb_bridge_t *b, int (*pred)(const lb_action_t *a));
/* Shutdown's drain ran out of time: gives up every flight's actions but
 * those on the wire, whose answers still count, and no attempt follows
 * theirs. @returns how many were given up. */
size_t lb_requests_last_attempts(lb_bridge_t *b);
/* Ends every flight without an outcome (teardown). */
void lb_requests_abandon_all(lb_bridge_t *b);
/* The ledger's tag of a partition: a revocation waits for the users whose
 * requests carried its actions. */
uint64_t lb_requests_partition_tag(const char *topic, int32_t partition);

/* commits.c */
lb_assigned_t *lb_commits_find(lb_bridge_t *b, const char *topic,
                               int32_t partition);
/* The entry of consumed message m's partition (m->rkt set), or NULL: the
 * last one found again without a search when m is of the same partition. */
lb_assigned_t *lb_commits_of(lb_bridge_t *b, const rd_kafka_message_t *m);
/* Adds a partition to the table. @returns it, or NULL out of memory. */
lb_assigned_t *lb_commits_add(lb_bridge_t *b, const char *topic,
                              int32_t partition, uint64_t tag);
/* e's partition started over below its last tracked offset: a new tracker
 * takes it from here, as if just assigned; the last one is retired (kept
 * with the actions taken from it until they are done).
 * @returns 0, or -1 out of memory (e is unchanged). */
int lb_commits_restart(lb_bridge_t *b, lb_assigned_t *e);
/* Removes e from the table (its trackers are revoked). */
void lb_commits_remove(lb_bridge_t *b, lb_assigned_t *e);
/* At the start of a handover: drops the queued actions of e's tracker (the
 * next owner reads them again) and makes those of its retired ones due at
 * once (nobody could read them again: lb_batcher_expedite).
 * @returns how many were dropped. */
size_t lb_commits_hand_over(lb_bridge_t *b, lb_assigned_t *e);
/* At its end: drops every queued action of e's trackers, saying how many
 * of the retired ones' are lost. @returns how many were dropped. */
size_t lb_commits_abandon(lb_bridge_t *b, lb_assigned_t *e);
/* @returns the actions alive of e's trackers (retired ones: of those). */
size_t lb_commits_holders(const lb_assigned_t *e);
size_t lb_commits_retired_holders(const lb_assigned_t *e);
/* Frees the table (at the end: every action is freed by now). */
void lb_commits_free(lb_bridge_t *b);
/* Adds e's committable offset and map to l when changed since its last
 * commit, or always when waited. */
void lb_commits_add_to(lb_bridge_t *b, lb_assigned_t *e,
                       rd_kafka_topic_partition_list_t *l, int waited);
/* Commits l: async, or waiting (bounded, LB_COMMIT_WAIT_MS). */
void lb_commits_send(lb_bridge_t *b, rd_kafka_topic_partition_list_t *l,
                     int async);
/* Commits every partition whose offset or map changed (every one when
 * waiting). */
void lb_commits_all(lb_bridge_t *b, int async);
/* Every auto.commit.interval.ms. */
void lb_commits_due(lb_bridge_t *b, int64_t now);
void lb_commits_on_committed(void *opaque, rd_kafka_resp_err_t err,
                             const rd_kafka_topic_partition_list_t *l);
/* The committed offsets read for the partitions assigned with tag. */
void lb_commits_on_read(void *opaque,
                        const rd_kafka_topic_partition_list_t *offs,
                        uint64_t tag);

/* handover.c */
void lb_handover_on_assigned(void *opaque,
                             const rd_kafka_topic_partition_list_t *parts,
                             uint64_t tag);
void lb_handover_on_revoking(void *opaque,
                             const rd_kafka_topic_partition_list_t *parts,
                             int lost, uint64_t tag, int at_once);
void lb_handover_settle(void *opaque, uint64_t tag);
/* Moves a revocation on; the group is answered when it is over. */
void lb_handover_step(lb_bridge_t *b);
/* @returns when the revocation's wait ends (INT64_MAX: none runs). */
int64_t lb_handover_next_due(const lb_bridge_t *b);
/* Whether everything pending goes now, and why (LB_SEND_DUE: not). */
lb_send_reason_t lb_handover_flush_reason(const lb_bridge_t *b);
/* SIGTERM: drain, give up what is left, wait for the API, stop. */
void lb_handover_shutdown(lb_bridge_t *b);

#endif
