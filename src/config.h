/*
 * config.h: the bridge's configuration: one table of keys (name, type,
 * default, meaning) from which parsing, validation, --help and the example
 * file all come. Layers, later wins: defaults < file < LEANBRIDGE_* environment
 * < -X key=value. Never prints a client key.
 */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"

/** The keys that can be set per app: app.APPID.KEY in any layer, or an
 *  "app.APPID.KEY = VALUE" line of the apps file. */
typedef enum {
        LB_APP_MAX_WAIT = 0, /* batch.max.wait.ms */
        LB_APP_URGENT,       /* batch.urgent */
        LB_APP_SESSION_END,  /* batch.session.end */
        LB_APP_KEY_CNT
} lb_app_key_t;

/** One per-app value, parsed: max_wait_ms or names, by its key. */
typedef struct {
        int64_t max_wait_ms;
        lb_names_t names;
} lb_app_value_t;

/** One app the bridge may send for. */
typedef struct {
        char *id;
        char *client_key; /* secret: never logged */
        unsigned key_gen; /* bumped by each reload that changes it */
        /* Its settings in the apps file; file_line[k] 0: k is not set. */
        unsigned file_line[LB_APP_KEY_CNT];
        lb_app_value_t file[LB_APP_KEY_CNT];
        /* The effective policy: the apps file's setting, else the layers'
         * app.APPID.KEY, else the key for all apps. Kept current by every
         * lb_config_set and lb_config_reload_apps. */
        lb_policy_t policy;
} lb_app_t;

/** app.APPID.KEY as set in a layer (file, environment, -X). */
typedef struct {
        char *app_id;
        lb_app_key_t key;
        lb_app_value_t value;
} lb_app_setting_t;

/** Which librdkafka client a kafka.* property applies to. */
typedef enum {
        LB_KAFKA_BOTH = 0,
        LB_KAFKA_CONSUMER,
        LB_KAFKA_PRODUCER,
} lb_kafka_side_t;

typedef struct {
        char *name; /* librdkafka property name, without the prefix */
        char *value;
        lb_kafka_side_t side;
} lb_kafka_prop_t;

typedef struct lb_config_s {
        /* kafka.* passthrough, in the order given (later wins on apply).
         * Setting a name and side again moves it to the end. Defaults:
         * group.id=leanbridge and auto.offset.reset=earliest (consumer). */
        lb_kafka_prop_t *kafka;
        size_t kafka_cnt;
        char **topics; /* input.topics split on ',' */
        size_t topic_cnt;
        char *dlq_topic;
        int64_t input_max_age_ms; /* 0 = off */
        lb_app_t *apps;           /* sorted by id */
        size_t app_cnt;
        /* apps by id hash, for lb_config_app_index (every event asks):
         * open addressing, a power of two of slots, at most half full.
         * Rebuilt with apps; a reload keeps the ids and their order.
         * NULL with apps set by hand (tests): those are bisected. */
        struct lb_app_slot_s *app_slots;
        size_t app_slot_mask;
        int apps_file_world_readable; /* apps=@PATH readable by others */
        char *apps_path; /* apps=@PATH: the file, for reloads; else NULL */
        char *api_url;
        char *api_version;
        char *api_ca_file;       /* empty: curl's default CA store */
        int api_tls_insecure;    /* api.tls.insecure: skip verification */
        int api_accept_warnings; /* success:true + warning is delivered */
        int64_t api_timeout_ms;
        int64_t api_timeout_hold_ms; /* users busy after a timeout */
        int64_t batch_max_users;
        int64_t batch_max_actions;
        int64_t batch_max_bytes;
        int64_t batch_linger_ms;
        int64_t batch_max_wait_ms;
        lb_names_t batch_urgent;        /* for all apps; per app: policy */
        lb_names_t batch_session_end;   /* for all apps; per app: policy */
        lb_app_setting_t *app_settings; /* app.APPID.KEY, in the order set */
        size_t app_setting_cnt;
        int64_t sender_max_inflight;
        int64_t retry_max_attempts; /* -1 = forever */
        int64_t retry_backoff_initial_ms;
        int64_t retry_backoff_max_ms;
        /* The pending bounds: 0 (auto) until lb_config_resolve_memory()
         * sizes them from the memory limit. pending_max_bytes counts the
         * bytes held for the live actions: each one's key, value and
         * record. */
        int64_t pending_max_actions;
        int64_t pending_max_bytes;
        /* memory.limit.bytes: 0 (auto) until lb_config_resolve_memory(),
         * then the limit the pending bounds were sized from. */
        int64_t memory_limit_bytes;
        /* Set by lb_config_resolve_memory(): */
        char *memory_limit_source; /* "cgroup v1 ...", "memory.limit.bytes" */
        int memory_limit_auto;
        int pending_max_actions_auto;
        int pending_max_bytes_auto;
        /* The consumer's prefetch as lb_config_resolve_memory() sized it;
         * 0 = the full size (LB_PREFETCH_*). A kafka.* key set wins. */
        int64_t prefetch_kbytes;   /* queued.max.messages.kbytes */
        int64_t prefetch_messages; /* queued.min.messages */
        int64_t shutdown_timeout_ms;
        int64_t rebalance_timeout_ms;
        int64_t commit_metadata_max_bytes; /* room for the offset map */
        int handover_flush;   /* send held actions on SIGTERM / revocation */
        char *metrics_listen; /* "" = off */
        int log_level;        /* LB_LOG_ERROR .. LB_LOG_DEBUG (log.h) */
        int log_json;         /* log.format=json */
} lb_config_t;

/** @brief A config with every default set (required keys empty). */
lb_config_t *lb_config_new(void);

/** @brief Frees the config; NULL is a no-op. */
void lb_config_destroy(lb_config_t *conf);

/**
 * @brief Sets one key (a table key or kafka.*). origin names where the
 *        value came from for the error message ("file x.conf:12", "-X",
 *        "environment LEANBRIDGE_FOO").
 * @returns 0, or -1 with errstr naming the key and the reason.
 */
int lb_config_set(lb_config_t *conf, const char *key, const char *value,
                  const char *origin, char *errstr, size_t errstr_size);

/**
 * @returns 1 when key's value is a secret: apps (client keys), or a kafka.*
 *          property that names a password, a secret or a private key
 *          (sasl.password, ssl.key.password, sasl.oauthbearer.client.secret,
 *          ssl.key.pem, ...); else 0.
 */
int lb_config_key_is_secret(const char *key);

/**
 * @brief Reads "key = value" lines ('#' comments, blank lines ignored).
 * @returns 0, or -1 with errstr naming file, line and key.
 */
int lb_config_load_file(lb_config_t *conf, const char *path, char *errstr,
                        size_t errstr_size);

/**
 * @brief Applies LEANBRIDGE_* variables from envp (NULL-terminated):
 *        LEANBRIDGE_KAFKA_BOOTSTRAP_SERVERS -> kafka.bootstrap.servers.
 *        An unknown variable is an error naming it.
 */
int lb_config_load_env(lb_config_t *conf, char **envp, char *errstr,
                       size_t errstr_size);

/**
 * @brief Checks required keys and cross-key rules (limits, backoff order,
 *        linger <= max wait) after all layers are applied. Does not check
 *        kafka.* properties (the Kafka adapters do, with librdkafka's words).
 * @returns 0, or -1 with errstr naming the key.
 */
int lb_config_validate(const lb_config_t *conf, char *errstr,
                       size_t errstr_size);

/* The auto pending bounds: this share (in percent) of the memory limit
 * holds the events' data: the consumer's prefetch and pending.max.bytes,
 * the rest; never less than the floor share for pending.max.bytes.
 * pending.max.actions is that many bytes / the per-action figure below, so
 * the bytes bound is the one that binds. */
#define LB_PENDING_AUTO_PCT              40
#define LB_PENDING_AUTO_FLOOR_PCT        20
#define LB_PENDING_AUTO_BYTES_PER_ACTION 64
/* The consumer's prefetch at its full size, for memory limits of about
 * 560 MiB and more: queued.max.messages.kbytes and queued.min.messages
 * (about a second of consumption: docs/performance.md); fetch.max.bytes,
 * the most one fetch response brings past them, is a quarter of the
 * former (at least message.max.bytes). Below, those the kafka.* keys do
 * not set shrink together until the prefetch takes LB_PREFETCH_MAX_PCT %
 * of the limit. */
#define LB_PREFETCH_KBYTES   32768
#define LB_PREFETCH_MESSAGES 150000
#define LB_PREFETCH_MAX_PCT  20
/* What librdkafka 2.0.2 takes for a message in the consumer's queue
 * besides its key and value: 296 to 325 bytes measured (RSS over 34,000 to
 * 286,000 queued messages of 100 and 1,000 bytes), and the smallest record
 * the prefetch is sized for (key and value): smaller ones (tombstones)
 * cost more per byte of fetch than it plans. */
#define LB_QUEUED_MESSAGE_BYTES  320
#define LB_PREFETCH_RECORD_BYTES 100

/* Said at startup and at every reload while the apps file holds client
 * keys others may read. */
#define LB_APPS_WORLD_READABLE                                                 \
        "the apps file is readable by other users; it holds client keys "      \
        "(chmod 600 it)"

/* The API's answers being read take at most LB_ANSWERS_PCT % of the
 * memory limit: each is read up to that / sender.max.inflight, between
 * LB_ANSWER_MIN_BYTES and LB_ANSWER_MAX_BYTES; a larger one is not read,
 * and its request is split (requests.c). */
#define LB_ANSWERS_PCT      20
#define LB_ANSWER_MIN_BYTES ((int64_t)64 << 10)
#define LB_ANSWER_MAX_BYTES ((int64_t)16 << 20)

/** @returns the bytes of an answer the sender reads at most, as above
 *           (LB_ANSWER_MAX_BYTES while memory.limit.bytes is not sized). */
int64_t lb_config_answer_max_bytes(const lb_config_t *conf);

/** @returns the bytes the consumer's prefetch may take at most: its queue
 *           (queued.max.messages.kbytes of keys and values, and
 *           LB_QUEUED_MESSAGE_BYTES for each of at most queued.min.messages
 *           messages) and one fetch response past it (fetch.max.bytes, of
 *           records of LB_PREFETCH_RECORD_BYTES or more), each setting as
 *           the kafka.* keys, lb_config_resolve_memory() or the defaults
 *           make it. */
int64_t lb_config_prefetch_bytes(const lb_config_t *conf);

/** @returns the consumer's effective queued.max.messages.kbytes,
 *           queued.min.messages and fetch.max.bytes, as above. */
int64_t lb_config_prefetch_kbytes(const lb_config_t *conf);
int64_t lb_config_prefetch_messages(const lb_config_t *conf);
int64_t lb_config_prefetch_fetch(const lb_config_t *conf);

/**
 * @brief Sizes what is auto (0): memory.limit.bytes becomes found_bytes
 *        with found_source (the cgroup limit or the default, as
 *        lb_memlimit_find() found them); the consumer's prefetch settings
 *        not set by kafka.* keys shrink together from their full size
 *        until the prefetch takes at most LB_PREFETCH_MAX_PCT % of it;
 *        pending.max.bytes becomes LB_PENDING_AUTO_PCT % of the memory
 *        limit less the prefetch (at least LB_PENDING_AUTO_FLOOR_PCT %) and
 *        pending.max.actions that / LB_PENDING_AUTO_BYTES_PER_ACTION, each
 *        capped at its key's maximum. Explicit values stay; the *_auto
 *        fields say which were sized. No I/O: main() reads the limit.
 * lb_config_validate() checks the pending bounds only once they are sized.
 * @returns 0, or -1 when out of memory.
 */
int lb_config_resolve_memory(lb_config_t *conf, int64_t found_bytes,
                             const char *found_source);

/**
 * @brief Writes the line that says the memory bound, as logged at startup
 *        and printed by --check-config: "memory limit N bytes (SOURCE);
 *        pending.max.bytes N (auto: 40% less the consumer's prefetch of N,
 *        at least 20%), pending.max.actions N (auto)".
 */
void lb_config_describe_memory(const lb_config_t *conf, char *buf, size_t size);

/** @brief Writes the --help key table (name, default, meaning). */
void lb_config_print_help(FILE *out);

/**
 * @brief Writes the commented example file (conf/leanbridge.conf): every
 *        key with its meaning and default, required keys set to local
 *        sample values.
 */
void lb_config_print_example(FILE *out);

/**
 * @returns the value the given client (LB_KAFKA_CONSUMER or
 *          LB_KAFKA_PRODUCER) ends with for librdkafka property name: the
 *          last prop of that side or of LB_KAFKA_BOTH; NULL if none. With
 *          LB_KAFKA_BOTH only props of both sides count.
 */
const char *lb_config_kafka_get(const lb_config_t *conf, const char *name,
                                lb_kafka_side_t side);

/* How long closing the dead-letter producer waits for its last records,
 * and then for the reports of those it purges. */
#define LB_DLQ_CLOSE_FLUSH_MS 5000
#define LB_DLQ_PURGE_MS       1000
/* The part of the exit bound after the waits: that flush, plus the final
 * commit and leaving the group (LB_COMMIT_WAIT_MS and LB_CLOSE_WAIT_MS in
 * kafka_in.h, whether the broker answers or not; the wait for librdkafka's
 * destroy after it, LB_DESTROY_WAIT_MS, comes out of the flush's share). */
#define LB_EXIT_MARGIN_MS (LB_DLQ_CLOSE_FLUSH_MS + 5000)

/**
 * @returns the exit bound: the most a shutdown after SIGTERM takes, in ms.
 *          shutdown.timeout.ms (the drain) + api.timeout.ms +
 *          api.timeout.hold.ms (the wait for requests still at the API,
 *          counted from the drain's end) + LB_EXIT_MARGIN_MS. A stop grace
 *          period (docker, Kubernetes) must exceed it.
 */
int64_t lb_config_exit_bound_ms(const lb_config_t *conf);

/**
 * @brief Re-reads the apps file (apps=@PATH) and takes its client keys and,
 *        unless keys_only, its per-app settings (the apps' policies
 *        follow) and whether others may read it. The file must list
 *        the same app ids as before: adding or removing an app needs a
 *        restart (queued actions refer to apps by position). On any error
 *        nothing changes.
 * @returns the number of keys that changed (0 or more), or -1 with why
 *          set (no apps file, unreadable, malformed, other app ids, a
 *          setting lb_config_validate would refuse).
 */
int lb_config_reload_apps(lb_config_t *conf, int keys_only, char *why,
                          size_t why_size);

/**
 * @brief Writes app's effective policy and where each value comes from, as
 *        --check-config prints it and the bridge logs it: "app ID:
 *        batch.max.wait.ms 5000 (apps file line 3), batch.urgent
 *        event:Purchase (all apps), batch.session.end stop (all apps)".
 */
void lb_config_describe_app(const lb_config_t *conf, size_t app, char *buf,
                            size_t size);

/** @returns the index of app_id in conf->apps, or -1. */
int lb_config_app_index(const lb_config_t *conf, const char *app_id,
                        size_t len);

#endif
