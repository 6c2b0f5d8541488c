/*
 * bridge.c: the loop, read top-down: new, run (turn after turn), stop,
 * destroy. A turn takes messages (intake.c), sends and receives
 * (requests.c), serves the dead-letter producer, commits (commits.c) and
 * moves a revocation on (handover.c); loop.h says what each stage owns.
 * The rule they keep together: a message's offset counts as done only when
 * its action was delivered, its dead-letter record was acknowledged, or it
 * was a tombstone; only the contiguous done prefix of a partition is
 * committed (with an offset map of the done offsets above it).
 *
 * The lifecycle: RUNNING (consume, batch, send) -> on SIGTERM, DRAINING
 * (take nothing new, finish what is on its way, until done or
 * shutdown.timeout.ms) -> STOPPING (final commit; nothing waits any more).
 * No librdkafka or curl callback turns the loop: they are served from its
 * polls and only record what happened (a nested turn is counted in
 * leanbridge_loop_nested_total, which stays 0).
 */
#include "bridge.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps_watch.h"
#include "event.h"
#include "exit_watch.h"
#include "log.h"
#include "loop.h"
#include "version.h"

int64_t lb_loop_now_ms(void)
{
        return lb_admin_now_ms();
}

int64_t lb_loop_wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drain_wake(int fd)
{
        char buf[256];
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}

static void check_fatal(lb_bridge_t *b)
{
        char err[256];
        if (lb_dlq_fatal(b->dlq, err, sizeof(err))) {
                lb_error("dlq", "fatal producer error: %s", err);
                b->fatal = 1;
        } else if (lb_kafka_in_fatal(b->in, err, sizeof(err))) {
                lb_error("consumer", "fatal consumer error: %s", err);
                b->fatal = 1;
        }
}

/* The earliest time something is due, capped at now + cap. */
static int64_t next_due(lb_bridge_t *b, int64_t now, int64_t cap)
{
        int64_t due[] = {lb_requests_next_due(b, now, cap),
                         lb_dlq_next_retry(b->dlq), lb_handover_next_due(b),
                         lb_kafka_in_read_deadline(b->in)};
        int64_t t = due[0];
        for (size_t i = 1; i < sizeof(due) / sizeof(due[0]); i++)
                if (due[i] < t)
                        t = due[i];
        return t;
}

/* The part of a turn after consuming: send, receive, dead-letter, commit,
 * move a revocation on; then wait up to wait_ms for something to do. */
static void service(lb_bridge_t *b, int wait_ms)
{
        int64_t now = lb_loop_now_ms();
        lb_health_beat(&b->health);
        lb_requests_dispatch(b, now);
        lb_sender_perform(b->sender, lb_requests_done, b);
        lb_dlq_poll(b->dlq);
        lb_commits_due(b, now);
        lb_handover_step(b);
        if (wait_ms > 0) {
                int64_t due = next_due(b, now, wait_ms);
                int t = due > now ? (int)(due - now) : 0;
                lb_sender_wait(b->sender, b->wake_fd, t);
                drain_wake(b->wake_fd);
                lb_sender_perform(b->sender, lb_requests_done, b);
        }
        check_fatal(b);
}

static void summary(lb_bridge_t *b, int force)
{
        char line[512];
        uint64_t early;
        lb_summary_loop_t loop = {
            .pending = lb_batcher_pending(b->batcher),
            .live = b->live_actions,
            .inflight = lb_sender_inflight(b->sender),
            .concurrency = lb_concurrency_limit(&b->conc),
            .paused = lb_kafka_in_paused(b->in),
        };
        if (!lb_metrics_summary(&b->metrics, &b->summary, &loop,
                                lb_loop_now_ms(), force, line, sizeof(line),
                                &early))
                return;
        lb_info("bridge", "%s", line);
        if (early)
                lb_warn("batcher",
                        "%" PRIu64 " action(s) sent before their deadline to "
                        "stay under pending.max.actions / pending.max.bytes: "
                        "the input holds more than they allow for "
                        "batch.max.wait.ms (about rate x budget actions); "
                        "give the bridge more memory (memory.limit.bytes or "
                        "its container's limit) to keep the budget's savings",
                        early);
}

void lb_loop_turn(lb_bridge_t *b, int wait_ms)
{
        if (b->turning++)
                b->nested_turns++;
        int more = lb_intake_consume(b);
        atomic_store(&b->metrics.consume_delay_ms,
                     lb_intake_consume_delay_ms(b, lb_loop_wall_ms()));
        lb_intake_backpressure(b);
        service(b, more ? 0 : wait_ms); /* more waiting: come back at once */
        atomic_store(&b->metrics.dlq_produce_retries, lb_dlq_retries(b->dlq));
        atomic_store(&b->metrics.dlq_waiting, (int64_t)lb_dlq_waiting(b->dlq));
        atomic_store(&b->metrics.dlq_oldest_ms,
                     lb_dlq_oldest_ms(b->dlq, lb_loop_now_ms()));
        atomic_store(&b->metrics.loop_nested,
                     b->nested_turns + lb_kafka_in_reentries(b->in));
        summary(b, 0);
        b->turning--;
}

/* ---- client keys ---- */

/* Each app's request overhead, from its current key, and once the batcher
 * exists, its budget; each app's policy is logged when say is set. */
static void apps_apply(lb_bridge_t *b, int say)
{
        for (size_t i = 0; i < b->conf->app_cnt; i++) {
                const lb_app_t *app = &b->conf->apps[i];
                b->app_overhead[i] = lb_multi_overhead(app->id, app->client_key,
                                                       b->conf->api_version);
                if (!b->batcher)
                        continue;
                lb_batcher_set_overhead(b->batcher, i, b->app_overhead[i]);
                lb_batcher_set_max_wait(b->batcher, i, app->policy.max_wait_ms);
                if (!say)
                        continue;
                char line[1024];
                lb_config_describe_app(b->conf, i, line, sizeof(line));
                lb_info("config", "%s", line);
        }
}

/* Takes the apps file's client keys and per-app settings: requests
 * encoded from now on (retries included) carry the keys; one on the wire
 * keeps the key it was sent with. Actions consumed from now on are held by
 * the new policies; held ones keep their deadlines. A bad file changes
 * nothing. */
static void reload_apps(lb_bridge_t *b, const char *cause)
{
        char why[512];
        int n = lb_config_reload_apps(b->conf, 0, why, sizeof(why));
        if (n < 0) {
                atomic_fetch_add(&b->metrics.apps_reload_failures, 1);
                lb_warn("config",
                        "%s: the apps file was not reloaded, the "
                        "client keys stay as they were: %s",
                        cause, why);
                return;
        }
        apps_apply(b, 1);
        atomic_fetch_add(&b->metrics.apps_reloads, 1);
        lb_info("config", "%s: apps file reloaded, %d client key(s) changed",
                cause, n);
        if (b->conf->apps_file_world_readable)
                lb_warn("config", LB_APPS_WORLD_READABLE);
}

int lb_bridge_reread_keys(lb_bridge_t *b)
{
        char why[512];
        if (!b->conf->apps_path)
                return 0;
        int n = lb_config_reload_apps(b->conf, 1, why, sizeof(why));
        if (n <= 0) /* none changed, or a bad read the watch will tell */
                return 0;
        apps_apply(b, 0); /* the request overheads follow the keys */
        lb_info("config",
                "a client key refused by the API: %d client key(s) taken "
                "from the apps file (its other settings at the watch's next "
                "reload)",
                n);
        return n;
}

/* ---- the lifecycle ---- */

int lb_bridge_run(lb_bridge_t *b, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *reload)
{
        lb_apps_watch_t watch;
        b->summary.last_ms = lb_loop_now_ms();
        lb_apps_watch_init(&watch, b->conf->apps_path, b->summary.last_ms);
        while (!b->fatal && !*stop) {
                lb_loop_turn(b, 1000);
                /* cleared only once seen: a SIGHUP between the two
                 * lines is merged into this reload, never lost */
                int hup = *reload;
                if (hup)
                        *reload = 0;
                const char *cause =
                    lb_apps_watch_due(&watch, hup, lb_loop_now_ms());
                if (cause)
                        reload_apps(b, cause);
        }
        lb_handover_shutdown(b);
        b->margin_from_ms = lb_loop_now_ms();
        /* What follows has bounds of its own within the margin; the watch
         * holds it when a call does not return (exit_watch.h). */
        lb_exit_watch_step("the final commit");
        if (lb_exit_watch_start(LB_EXIT_MARGIN_MS, b->fatal ? 1 : 0))
                lb_warn("main", "no thread to hold the exit bound");
        lb_commits_all(b, 0);
        summary(b, 1);
        return b->fatal ? 1 : 0;
}

static void on_stats(void *opaque, const char *json, size_t len)
{
        lb_bridge_t *b = opaque;
        lb_metrics_update_lag(&b->metrics, json, len);
}

lb_bridge_t *lb_bridge_new(lb_config_t *conf, int wake_fd, int wake_wfd,
                           char *errstr, size_t errstr_size)
{
        lb_bridge_t *b = calloc(1, sizeof(*b));
        if (!b) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        b->conf = conf;
        b->wake_fd = wake_fd;
        b->rand_state = (unsigned int)(lb_loop_now_ms() ^ getpid());
        lb_metrics_init(&b->metrics);
        if (!(b->ledger = lb_ledger_new()))
                goto oom;
        lb_outage_init(&b->outage, LB_OUTAGE_WINDOW_MS, LB_OUTAGE_MIN_FAILURES);
        lb_concurrency_init(&b->conc, (int)conf->sender_max_inflight,
                            1 + (int)conf->sender_max_inflight / 4);
        atomic_store(&b->metrics.concurrency_limit,
                     lb_concurrency_limit(&b->conc));
        atomic_store(&b->metrics.held_bytes_limit, conf->pending_max_bytes);
        lb_health_beat(&b->health);

        b->app_overhead = calloc(conf->app_cnt, sizeof(*b->app_overhead));
        if (!b->app_overhead || !(b->shapes = lb_event_shapes_new()))
                goto oom;
        apps_apply(b, 1);
        lb_batcher_conf_t bc = {
            .app_cnt = conf->app_cnt,
            .app_overhead = b->app_overhead,
            .max_users = conf->batch_max_users,
            .max_actions = conf->batch_max_actions,
            .max_bytes = conf->batch_max_bytes,
            .linger_ms = conf->batch_linger_ms,
            .max_wait_ms = conf->batch_max_wait_ms,
            .ledger = b->ledger,
        };
        if (!(b->batcher = lb_batcher_new(&bc)))
                goto oom;
        apps_apply(b, 1);
        if (!(b->arena = lb_arena_new()))
                goto oom;
        if (!(b->sender = lb_sender_new(conf, errstr, errstr_size)))
                goto fail;
        if (!(b->dlq = lb_dlq_new(conf, lb_intake_dlq_report, b, wake_wfd,
                                  errstr, errstr_size)))
                goto fail;
        if (*conf->metrics_listen &&
            !(b->admin =
                  lb_admin_start(conf->metrics_listen, &b->metrics, &b->health,
                                 LB_VERSION, errstr, errstr_size)))
                goto fail;
        lb_map_room_init(&b->map_room, conf->commit_metadata_max_bytes);
        atomic_store(&b->metrics.offset_map_room, b->map_room.room);
        b->ranges_cap = (size_t)b->map_room.max / 2 + 1;
        b->map = malloc((size_t)b->map_room.max + 1);
        b->ranges = malloc(b->ranges_cap * sizeof(*b->ranges));
        if (!b->map || !b->ranges)
                goto oom;
        b->map[0] = '\0';
        lb_kafka_in_cbs_t cbs = {.opaque = b,
                                 .assigned = lb_handover_on_assigned,
                                 .committed_read = lb_commits_on_read,
                                 .revoking = lb_handover_on_revoking,
                                 .settle = lb_handover_settle,
                                 .stats = on_stats,
                                 .committed = lb_commits_on_committed};
        if (!(b->in =
                  lb_kafka_in_new(conf, &cbs, wake_wfd, errstr, errstr_size)))
                goto fail;
        return b;
oom:
        snprintf(errstr, errstr_size, "out of memory");
fail:
        lb_bridge_destroy(b);
        return NULL;
}

static void free_queued(lb_action_t *a)
{
        lb_partition_unref(a->partition);
        lb_action_destroy(a);
}

/* What the teardown after the dead-letter producer's purge may take: kept
 * from its flush, so that the exit bound's backstop (exit_watch.c) never
 * cuts a shutdown that keeps to its bounds. */
#define TEARDOWN_RESERVE_MS 1000

/* The dead-letter producer's last flush: LB_DLQ_CLOSE_FLUSH_MS, or what
 * the exit bound's margin has left after the final commit and leaving the
 * group, less the purge's wait after it and the rest of the teardown
 * (their records are given up anyway: their offsets were not in the
 * final commit). */
static int dlq_flush_ms(const lb_bridge_t *b)
{
        if (!b->margin_from_ms)
                return LB_DLQ_CLOSE_FLUSH_MS;
        int64_t left = b->margin_from_ms + LB_EXIT_MARGIN_MS - LB_DLQ_PURGE_MS -
                       TEARDOWN_RESERVE_MS - lb_loop_now_ms();
        return left < 0                       ? 0
               : left > LB_DLQ_CLOSE_FLUSH_MS ? LB_DLQ_CLOSE_FLUSH_MS
                                              : (int)left;
}

void lb_bridge_destroy(lb_bridge_t *b)
{
        if (!b)
                return;
        /* Leaving the group runs the revoke callback, which needs the
         * rest of the bridge: close the consumer first. */
        b->state = LB_STOPPING;
        lb_exit_watch_step("leaving the group");
        lb_kafka_in_destroy(b->in);
        b->in = NULL;
        lb_exit_watch_step("the cleanup");
        lb_admin_stop(b->admin);
        /* Requests still running are abandoned: not handled, not committed. */
        lb_sender_destroy(b->sender);
        lb_requests_abandon_all(b);
        /* Reports free their actions. */
        lb_exit_watch_step("the dead-letter producer's last flush");
        lb_dlq_destroy(b->dlq, dlq_flush_ms(b));
        lb_exit_watch_step("the cleanup");
        if (b->batcher)
                lb_batcher_destroy(b->batcher, free_queued);
        lb_ledger_destroy(b->ledger);
        lb_arena_destroy(b->arena); /* last: every action is freed by now */
        lb_commits_free(b);
        if (b->revocation.parts)
                rd_kafka_topic_partition_list_destroy(b->revocation.parts);
        free(b->revocation.ltags);
        free(b->app_overhead);
        free(b->shapes);
        free(b->map);
        free(b->ranges);
        free(b);
}
