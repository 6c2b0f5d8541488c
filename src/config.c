/*
 * config.c: the configuration key table and everything derived from it:
 * defaults, parsing of one value per type, the file and environment layers,
 * cross-key validation, --help and the example file. Reads the config file and
 * an apps=@PATH file; touches nothing else. Client keys (the apps value) are
 * never copied into an error message or any output, and are wiped on free.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "grow.h"
#include "hash.h"
#include "list.h"
#include "listen.h"
#include "log.h"
#include "why.h"

typedef enum {
        CT_STRING,
        CT_INT,
        CT_BOOL,
        CT_ENUM,
        CT_LIST,
        CT_NAMES, /* a policy name list (policy.h), may be empty */
        CT_APPS,  /* apps: inline list or @PATH, fills conf->apps */
        CT_KAFKA, /* a kafka.* key with a default or a rule of its own */
} ctype_t;

#define KF_REQUIRED 0x1 /* validate fails while unset */
#define KF_SECRET   0x2 /* the value never appears in any output */
#define KF_FOREVER  0x4 /* CT_INT: -1 is also accepted (forever) */
#define KF_AUTO     0x8 /* CT_INT: 0 is also accepted (auto) */

typedef int (*check_fn)(const char *value, char *why, size_t why_size);

typedef struct {
        const char *name;
        ctype_t type;
        int flags;
        const char *def;          /* applied by lb_config_new; NULL: none */
        const char *example;      /* value written to the example file */
        size_t off;               /* the field in lb_config_t */
        size_t cnt_off;           /* CT_LIST: its element count */
        int64_t min, max;         /* CT_INT */
        const char *const *names; /* CT_ENUM: index = stored value */
        lb_kafka_side_t side;     /* CT_KAFKA */
        check_fn check;           /* CT_STRING: extra rule */
        const char *desc;
} cfg_key_t;

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          NULL};
_Static_assert(LB_LOG_ERROR == 0 && LB_LOG_WARN == 1 && LB_LOG_INFO == 2 &&
                   LB_LOG_DEBUG == 3,
               "level_names follows the LB_LOG_* order");
static const char *const format_names[] = {"text", "json", NULL};

static int check_url(const char *value, char *why, size_t why_size);
static int check_nonempty(const char *value, char *why, size_t why_size);
static int check_listen(const char *value, char *why, size_t why_size);

#define OFF(field) offsetof(lb_config_t, field)
#define MS_MAX     INT64_C(3600000) /* one hour */

/* The one table. Order is the order of --help and of the example file. */
static const cfg_key_t keys[] = {
    {.name = "kafka.bootstrap.servers",
     .type = CT_KAFKA,
     .flags = KF_REQUIRED,
     .example = "127.0.0.1:9092",
     .side = LB_KAFKA_BOTH,
     .desc = "Kafka brokers to bootstrap from, host:port[,host:port...]. "
             "Used by the consumer and by the dead-letter producer."},
    {.name = "kafka.group.id",
     .type = CT_KAFKA,
     .def = "leanbridge",
     .side = LB_KAFKA_CONSUMER,
     .desc = "Consumer group. Instances with the same group share the input "
             "partitions; offsets are committed under it."},
    {.name = "kafka.consumer.auto.offset.reset",
     .type = CT_KAFKA,
     .def = "earliest",
     .side = LB_KAFKA_CONSUMER,
     .desc = "Where a group without a committed offset starts, and where "
             "a partition whose position is gone (past retention) goes on: "
             "earliest (nothing written before the first start is skipped) "
             "or latest. Not error: a partition would stop being read."},
    {.name = "input.topics",
     .type = CT_LIST,
     .flags = KF_REQUIRED,
     .example = "leanbridge.events",
     .off = OFF(topics),
     .cnt_off = OFF(topic_cnt),
     .desc = "Comma-separated topics to consume; one message is one action "
             "event."},
    {.name = "input.max.age.ms",
     .type = CT_INT,
     .def = "0",
     .off = OFF(input_max_age_ms),
     .min = 0,
     .max = INT64_C(31622400000),
     .desc = "Dead-letter (stage too_old) events older than this, by their "
             "time field, else their Kafka timestamp: the API treats a late "
             "event as done now (it can trigger campaigns to real users). "
             "0 = no bound. leanbridge replay skips such dead letters too."},
    {.name = "dlq.topic",
     .type = CT_STRING,
     .flags = KF_REQUIRED,
     .example = "leanbridge.dlq",
     .off = OFF(dlq_topic),
     .desc = "Dead-letter topic for events that cannot be delivered, with "
             "the reason in headers. Must not be an input topic."},
    {.name = "apps",
     .type = CT_APPS,
     .flags = KF_REQUIRED | KF_SECRET,
     .example = "app_demo:demo-secret-key",
     .desc = "Apps the bridge sends for: APPID:CLIENTKEY[,APPID:CLIENTKEY...], "
             "or @PATH to a file with one APPID:CLIENTKEY per line ('#' "
             "comments and blank lines allowed; keep it unreadable by "
             "others). Client keys are secrets: never printed or logged."},
    {.name = "api.url",
     .type = CT_STRING,
     .def = "https://api.leanplum.com/api?action=multi",
     .off = OFF(api_url),
     .check = check_url,
     .desc = "The multi endpoint (https://, or http:// for tests: it sends "
             "client keys in clear text, and is warned about at startup)."},
    {.name = "api.version",
     .type = CT_STRING,
     .def = "1.0.6",
     .off = OFF(api_version),
     .check = check_nonempty,
     .desc = "apiVersion sent with every request."},
    {.name = "api.ca.file",
     .type = CT_STRING,
     .def = "",
     .off = OFF(api_ca_file),
     .desc = "CA bundle (PEM) to verify the API's TLS certificate; empty "
             "uses the system's CA store."},
    {.name = "api.tls.insecure",
     .type = CT_BOOL,
     .def = "false",
     .off = OFF(api_tls_insecure),
     .desc = "Skip TLS certificate and host name verification towards the "
             "API. For tests only; logged as a warning at startup."},
    {.name = "api.accept.warnings",
     .type = CT_BOOL,
     .def = "false",
     .off = OFF(api_accept_warnings),
     .desc = "Count an action the API answered success:true with a warning "
             "(e.g. 'User not found; request skipped.': probably not "
             "applied) as delivered instead of dead-lettering it (stage "
             "api_warning). Warnings are counted either way."},
    {.name = "api.timeout.ms",
     .type = CT_INT,
     .def = "30000",
     .off = OFF(api_timeout_ms),
     .min = 1,
     .max = MS_MAX,
     .desc = "Timeout of one request, from connect to the last byte of the "
             "answer."},
    {.name = "api.timeout.hold.ms",
     .type = CT_INT,
     .def = "30000",
     .off = OFF(api_timeout_hold_ms),
     .min = 0,
     .max = MS_MAX,
     .desc = "After a request timed out (the API may still be processing "
             "it), how long its users stay busy before its retry or their "
             "next request goes out. Set it above the API's own processing "
             "limit."},
    {.name = "batch.max.users",
     .type = CT_INT,
     .def = "50",
     .off = OFF(batch_max_users),
     .min = 1,
     .max = 50,
     .desc = "Distinct users per multi call (the API allows at most 50)."},
    {.name = "batch.max.actions",
     .type = CT_INT,
     .def = "500",
     .off = OFF(batch_max_actions),
     .min = 1,
     .max = 500,
     .desc = "Actions per multi call (the API allows at most 500)."},
    {.name = "batch.max.bytes",
     .type = CT_INT,
     .def = "1048576",
     .off = OFF(batch_max_bytes),
     .min = 1024,
     .max = INT64_C(67108864),
     .desc = "Largest request body in bytes. A single event too large for "
             "it is dead-lettered."},
    {.name = "batch.linger.ms",
     .type = CT_INT,
     .def = "500",
     .off = OFF(batch_linger_ms),
     .min = 0,
     .max = 600000,
     .desc = "Least an action waits for company: one that arrives already "
             "late (a backlog, a restart) is sent this long after it was "
             "consumed, with its user's other actions."},
    {.name = "batch.max.wait.ms",
     .type = CT_INT,
     .def = "30000",
     .off = OFF(batch_max_wait_ms),
     .min = 0,
     .max = MS_MAX,
     .desc = "The wait budget: a user's actions are held until its oldest "
             "was written to Kafka this long ago, then sent together (each "
             "distinct user in a request is billed). Longer saves more and "
             "makes commits trail by about as much. Must be >= "
             "batch.linger.ms. Per app: app.APPID.batch.max.wait.ms."},
    {.name = "batch.urgent",
     .type = CT_NAMES,
     .def = "",
     .example = "event:Purchase, event:Sign Up",
     .off = OFF(batch_urgent),
     .desc = "Actions that must not wait (they trigger campaigns): an "
             "action name (the event's action field, e.g. "
             "setUserAttributes) or event:NAME (a track's event field). "
             "Such an action sends its user within batch.linger.ms, with "
             "the user's held actions before it, in order; a user already "
             "at the API waits for it first. Empty: none. Per app: "
             "app.APPID.batch.urgent."},
    {.name = "batch.session.end",
     .type = CT_NAMES,
     .def = "stop",
     .off = OFF(batch_session_end),
     .desc = "Actions that end a session, named as in batch.urgent: the "
             "user's window closes and it is sent within batch.linger.ms "
             "instead of at the end of the budget (a user whose session "
             "ended rarely sends more soon; from a backlog, within "
             "batch.linger.ms of its arrival). Empty: off. Per app: "
             "app.APPID.batch.session.end."},
    {.name = "sender.max.inflight",
     .type = CT_INT,
     .def = "16",
     .off = OFF(sender_max_inflight),
     .min = 1,
     .max = 1024,
     .desc = "Concurrent requests to the API, in total."},
    {.name = "retry.max.attempts",
     .type = CT_INT,
     .flags = KF_FOREVER,
     .def = "10",
     .off = OFF(retry_max_attempts),
     .min = 1,
     .max = 1000000,
     .desc = "Attempts per request before its actions are dead-lettered; "
             "-1 retries forever."},
    {.name = "retry.backoff.initial.ms",
     .type = CT_INT,
     .def = "250",
     .off = OFF(retry_backoff_initial_ms),
     .min = 1,
     .max = MS_MAX,
     .desc = "First retry delay; doubles on each retry, with jitter."},
    {.name = "retry.backoff.max.ms",
     .type = CT_INT,
     .def = "30000",
     .off = OFF(retry_backoff_max_ms),
     .min = 1,
     .max = MS_MAX,
     .desc = "Longest retry delay. Must be >= retry.backoff.initial.ms."},
    {.name = "memory.limit.bytes",
     .type = CT_INT,
     .flags = KF_AUTO,
     .def = "0",
     .off = OFF(memory_limit_bytes),
     .min = INT64_C(16777216),
     .max = INT64_C(1099511627776),
     .desc = "The memory the bridge may use; pending.max.* left at 0 are "
             "sized from it. 0 (auto): the memory cgroup's limit (v1 or v2, "
             "the smallest over the cgroup and its ancestors), or 1 GiB "
             "(1073741824) without one, either capped at the machine's "
             "MemTotal. The chosen bound is logged at startup and printed "
             "by --check-config."},
    {.name = "pending.max.actions",
     .type = CT_INT,
     .flags = KF_AUTO,
     .def = "0",
     .off = OFF(pending_max_actions),
     .min = 1,
     .max = INT64_C(100000000),
     .desc = "Consumption pauses while this many actions are in the bridge "
             "and resumes at half; above 75% the nearest deadlines are sent "
             "early. 0 (auto): the auto pending.max.bytes / 64, so that "
             "pending.max.bytes binds first. Must be >= batch.max.actions."},
    {.name = "pending.max.bytes",
     .type = CT_INT,
     .flags = KF_AUTO,
     .def = "0",
     .off = OFF(pending_max_bytes),
     .min = 1024,
     .max = INT64_C(17179869184),
     .desc = "Consumption pauses while the bridge holds this many bytes for "
             "its live actions (what each one's memory costs: its record, "
             "key, value and headers; their users' records; the start of "
             "their request bodies) and resumes at half; above 75% the "
             "nearest deadlines are sent early. 0 (auto): 40% of "
             "memory.limit.bytes less the consumer's prefetch (its queue "
             "and one fetch, sized from the limit), at least 20%. Must be "
             ">= batch.max.bytes."},
    {.name = "shutdown.timeout.ms",
     .type = CT_INT,
     .def = "10000",
     .off = OFF(shutdown_timeout_ms),
     .min = 0,
     .max = MS_MAX,
     .desc = "On SIGTERM or SIGINT, how long to drain open batches and "
             "in-flight requests before committing and leaving."},
    {.name = "rebalance.timeout.ms",
     .type = CT_INT,
     .def = "10000",
     .off = OFF(rebalance_timeout_ms),
     .min = 0,
     .max = MS_MAX,
     .desc = "How long a partition revocation waits for the partition's "
             "in-flight work before giving it up (it is then redelivered "
             "to the next owner). Requests already at the API are still "
             "waited for, so the next owner cannot overlap them. Also how "
             "long new partitions wait for their committed offset maps "
             "(then they go on without them: what the maps mark done is "
             "redone)."},
    {.name = "handover.flush",
     .type = CT_BOOL,
     .def = "false",
     .off = OFF(handover_flush),
     .desc = "On SIGTERM and on a partition revocation, send the actions "
             "held for their deadline at once (true), or leave them unsent "
             "for the next owner, which reads them again from Kafka with "
             "the same deadlines (false: a handover looks no user up "
             "twice). With no instance left running, held events wait for "
             "the next one: late, never lost."},
    {.name = "commit.metadata.max.bytes",
     .type = CT_INT,
     .def = "4096",
     .off = OFF(commit_metadata_max_bytes),
     .min = 0,
     .max = 1048576,
     .desc = "Room for the offset map in each partition's commit (the "
             "offsets above the committed one that are done, skipped by "
             "the next owner): the brokers' offset.metadata.max.bytes. A "
             "larger map keeps its nearest part; 0 commits no map."},
    {.name = "metrics.listen",
     .type = CT_STRING,
     .def = "",
     .example = "127.0.0.1:9464",
     .off = OFF(metrics_listen),
     .check = check_listen,
     .desc = "host:port (IPv6 as [addr]:port) serving /metrics, /healthz and "
             "/readyz; empty: off."},
    {.name = "log.level",
     .type = CT_ENUM,
     .def = "info",
     .off = OFF(log_level),
     .names = level_names,
     .desc = "Least severe level written to stderr."},
    {.name = "log.format",
     .type = CT_ENUM,
     .def = "text",
     .off = OFF(log_json),
     .names = format_names,
     .desc = "text: one readable line per event; json: one JSON object per "
             "line."},
};

#define KEY_CNT (sizeof(keys) / sizeof(keys[0]))

static const char kafka_prefix[] = "kafka.";
static const char consumer_prefix[] = "kafka.consumer.";
static const char producer_prefix[] = "kafka.producer.";
static const char env_prefix[] = "LEANBRIDGE_";
static const char app_prefix[] = "app.";
static const char env_app_prefix[] = "LEANBRIDGE_APP_";

/* The per-app keys, by lb_app_key_t: the global key each one overrides. */
static const char *const app_key_names[LB_APP_KEY_CNT] = {
    "batch.max.wait.ms", "batch.urgent", "batch.session.end"};

/* Text shared by --help and the example file. */
static const char *const kafka_notes[] = {
    "Any librdkafka property passes through with a prefix: kafka.PROP applies "
    "to the consumer and to the dead-letter producer, kafka.consumer.PROP to "
    "the consumer only, kafka.producer.PROP to the producer only. Setting the "
    "same prefixed key again replaces it; where several apply to one client, "
    "the one set last wins. librdkafka checks them at startup and "
    "--check-config.",
    "Layers, later wins: built-in defaults < the file given with -c "
    "(key = value lines, '#' starts a comment line) < the environment < "
    "-X key=value.",
    "Environment: LEANBRIDGE_ + the key upper-cased with '.' as '_', e.g. "
    "LEANBRIDGE_KAFKA_BOOTSTRAP_SERVERS or LEANBRIDGE_BATCH_LINGER_MS. An "
    "unknown LEANBRIDGE_ variable is an error.",
    "Per app: app.APPID.batch.max.wait.ms, app.APPID.batch.urgent and "
    "app.APPID.batch.session.end set those keys for one app (the app id as "
    "in apps; in the environment LEANBRIDGE_APP_<APPID>_BATCH_MAX_WAIT_MS "
    "and so on, the app id as it is). The apps file may set them too, on "
    "lines 'app.APPID.KEY=VALUE', and is re-read without a restart; a key "
    "set for one app both there and in another layer is an error. "
    "--check-config prints each app's effective settings.",
    NULL,
};

/* Frees a string that may hold a secret, wiping it first. */
static void free_secret(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

static const cfg_key_t *find_key(const char *name)
{
        for (size_t i = 0; i < KEY_CNT; i++)
                if (!strcmp(keys[i].name, name))
                        return &keys[i];
        return NULL;
}

static int has_prefix(const char *s, const char *prefix)
{
        return !strncmp(s, prefix, strlen(prefix));
}

/* Edit distance, for "did you mean"; short keys only. */
static size_t edit_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        size_t row[64];
        if (la >= 64 || lb >= 64)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t best = diag + (a[i - 1] != b[j - 1]);
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

static const char *suggest_key(const char *name)
{
        const char *best = NULL;
        size_t best_d = 3; /* suggest only within two edits */
        for (size_t i = 0; i < KEY_CNT; i++) {
                size_t d = edit_distance(name, keys[i].name);
                if (d < best_d) {
                        best_d = d;
                        best = keys[i].name;
                }
        }
        return best;
}

/* ------------------------------------------------------------------ */
/* Value checks: each writes the reason (never the value) to why.     */

static int check_url(const char *value, char *why, size_t why_size)
{
        if (has_prefix(value, "http://") || has_prefix(value, "https://"))
                return 0;
        return lb_why(why, why_size, "must start with http:// or https://");
}

static int check_nonempty(const char *value, char *why, size_t why_size)
{
        if (*value)
                return 0;
        return lb_why(why, why_size, "must not be empty");
}

static int check_listen(const char *value, char *why, size_t why_size)
{
        struct sockaddr_storage ss;
        int v6;
        if (!*value)
                return 0; /* off */
        return lb_listen_parse(value, &ss, &v6, why, why_size);
}

/* ------------------------------------------------------------------ */
/* Parsers per type.                                                  */

/* Strict base-10 integer: optional '-', digits, nothing else. */
static int parse_int(const char *s, int64_t *out)
{
        const char *p = s[0] == '-' ? s + 1 : s;
        if (!isdigit((unsigned char)*p))
                return -1;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end)
                return -1;
        *out = (int64_t)v;
        return 0;
}

static int parse_bool(const char *s, int *out)
{
        static const char *const t[] = {"true", "1", "yes", "on"};
        static const char *const f[] = {"false", "0", "no", "off"};
        for (size_t i = 0; i < 4; i++) {
                if (!strcasecmp(s, t[i])) {
                        *out = 1;
                        return 0;
                }
                if (!strcasecmp(s, f[i])) {
                        *out = 0;
                        return 0;
                }
        }
        return -1;
}

/* ------------------------------------------------------------------ */
/* apps                                                               */

typedef struct {
        lb_app_t app;
        size_t where; /* entry or line number, for messages */
} app_entry_t;

/* An "app.APPID.KEY = VALUE" line of the apps file. */
typedef struct {
        lb_app_setting_t set;
        unsigned line;
} file_setting_t;

typedef struct {
        app_entry_t *v;
        size_t n, cap;
        file_setting_t *set;
        size_t set_n, set_cap;
} app_list_t;

static void free_app(lb_app_t *a)
{
        free(a->id);
        free_secret(a->client_key);
        for (int k = 0; k < LB_APP_KEY_CNT; k++)
                lb_names_free(&a->file[k].names);
}

static void free_setting(lb_app_setting_t *st)
{
        free(st->app_id);
        lb_names_free(&st->value.names);
}

/* Whether st sets key of app id[0..id_len). */
static int setting_is(const lb_app_setting_t *st, int key, const char *id,
                      size_t id_len)
{
        return (int)st->key == key && strlen(st->app_id) == id_len &&
               !memcmp(st->app_id, id, id_len);
}

/* @returns the index of app id[0..len) in apps[0..n) (sorted by id: it
 *          bisects), or -1. */
static int app_find(const lb_app_t *apps, size_t n, const char *app_id,
                    size_t len)
{
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const char *id = apps[mid].id;
                size_t id_len = strlen(id);
                int c = memcmp(id, app_id, id_len < len ? id_len : len);
                if (!c)
                        c = id_len < len ? -1 : id_len > len;
                if (!c)
                        return (int)mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

/* @returns the per-app key of "app.APPID.KEY" with *id, *id_len set to
 *          APPID (non-empty), or -1 when name is no such key. */
static int app_key_split(const char *name, const char **id, size_t *id_len)
{
        if (!has_prefix(name, app_prefix))
                return -1;
        const char *rest = name + strlen(app_prefix);
        size_t n = strlen(rest);
        for (int k = 0; k < LB_APP_KEY_CNT; k++) {
                size_t kl = strlen(app_key_names[k]);
                if (n > kl + 1 && rest[n - kl - 1] == '.' &&
                    !strcmp(rest + n - kl, app_key_names[k])) {
                        *id = rest;
                        *id_len = n - kl - 1;
                        return k;
                }
        }
        return -1;
}

static int not_app_key(char *why, size_t why_size, const char *what,
                       const char *name)
{
        return lb_why(why, why_size,
                      "%s '%.100s' is no per-app key: app.APPID.%s, "
                      "app.APPID.%s or app.APPID.%s",
                      what, name, app_key_names[0], app_key_names[1],
                      app_key_names[2]);
}

/* Parses a per-app value into *out (zeroed by the caller). */
static int app_value_parse(lb_app_key_t key, const char *value,
                           lb_app_value_t *out, char *why, size_t why_size)
{
        if (key != LB_APP_MAX_WAIT)
                return lb_names_parse(value, &out->names, why, why_size);
        const cfg_key_t *k = find_key(app_key_names[key]);
        int64_t v;
        if (parse_int(value, &v) || v < k->min || v > k->max)
                return lb_why(why, why_size,
                              "must be an integer from %" PRId64 " to %" PRId64,
                              k->min, k->max);
        out->max_wait_ms = v;
        return 0;
}

/* The effective policy of app a: the apps file's setting, else the
 * layers' app.APPID.KEY, else the key for all apps. */
static void app_resolve(const lb_config_t *conf, lb_app_t *a)
{
        const lb_app_value_t *v[LB_APP_KEY_CNT] = {0};
        for (size_t j = 0; j < conf->app_setting_cnt; j++) {
                const lb_app_setting_t *st = &conf->app_settings[j];
                if (!strcmp(st->app_id, a->id))
                        v[st->key] = &st->value;
        }
        for (int k = 0; k < LB_APP_KEY_CNT; k++)
                if (a->file_line[k])
                        v[k] = &a->file[k];
        a->policy.max_wait_ms = v[LB_APP_MAX_WAIT]
                                    ? v[LB_APP_MAX_WAIT]->max_wait_ms
                                    : conf->batch_max_wait_ms;
        a->policy.urgent =
            v[LB_APP_URGENT] ? &v[LB_APP_URGENT]->names : &conf->batch_urgent;
        a->policy.session_end = v[LB_APP_SESSION_END]
                                    ? &v[LB_APP_SESSION_END]->names
                                    : &conf->batch_session_end;
}

static void apps_resolve(lb_config_t *conf)
{
        for (size_t i = 0; i < conf->app_cnt; i++)
                app_resolve(conf, &conf->apps[i]);
}

/* Sets app.APPID.KEY from a layer (a later layer replaces it). */
static int app_setting_set(lb_config_t *conf, const char *id, size_t id_len,
                           lb_app_key_t key, const char *value, char *why,
                           size_t why_size)
{
        lb_app_value_t v = {0};
        if (app_value_parse(key, value, &v, why, why_size))
                return -1;
        for (size_t j = 0; j < conf->app_setting_cnt; j++) {
                lb_app_setting_t *st = &conf->app_settings[j];
                if (setting_is(st, key, id, id_len)) {
                        lb_names_free(&st->value.names);
                        st->value = v;
                        return 0;
                }
        }
        lb_app_setting_t *arr = realloc(
            conf->app_settings, (conf->app_setting_cnt + 1) * sizeof(*arr));
        char *copy = strndup(id, id_len);
        if (arr)
                conf->app_settings = arr;
        if (!arr || !copy) {
                free(copy);
                lb_names_free(&v.names);
                return lb_why(why, why_size, "out of memory");
        }
        arr[conf->app_setting_cnt++] =
            (lb_app_setting_t){.app_id = copy, .key = key, .value = v};
        return 0;
}

/* Parses an apps file line "app.APPID.KEY = VALUE" (eq: its '='). Values
 * are never quoted back: the file holds secrets. */
static int file_setting_add(app_list_t *l, char *s, char *eq, unsigned line,
                            const char *what, char *why, size_t why_size)
{
        *eq = '\0';
        const char *name = lb_trim(s), *id;
        size_t id_len;
        int key = app_key_split(name, &id, &id_len);
        if (key < 0 && strncmp(name, "app.", 4))
                /* not quoted: it may be a key (base64 ends with '=') */
                return lb_why(why, why_size,
                              "%s is no APPID:CLIENTKEY entry and no "
                              "per-app key (app.APPID.KEY = VALUE)",
                              what);
        if (key < 0)
                return not_app_key(why, why_size, what, name);
        for (size_t j = 0; j < l->set_n; j++)
                if (setting_is(&l->set[j].set, key, id, id_len))
                        return lb_why(why, why_size,
                                      "%s sets '%s' again (line %u)", what,
                                      name, l->set[j].line);
        file_setting_t fs = {.line = line};
        fs.set.key = key;
        char bad[256];
        if (app_value_parse(key, lb_trim(eq + 1), &fs.set.value, bad,
                            sizeof(bad)))
                return lb_why(why, why_size, "%s: '%s' %s", what, name, bad);
        file_setting_t *v =
            lb_grow(l->set, &l->set_cap, l->set_n + 1, sizeof(*v), 8);
        if (!v) {
                lb_names_free(&fs.set.value.names);
                return lb_why(why, why_size, "out of memory");
        }
        l->set = v;
        if (!(fs.set.app_id = strndup(id, id_len))) {
                lb_names_free(&fs.set.value.names);
                return lb_why(why, why_size, "out of memory");
        }
        l->set[l->set_n++] = fs;
        return 0;
}

static void free_apps(lb_app_t *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free_app(&v[i]);
        free(v);
}

static void free_app_list(app_list_t *l)
{
        for (size_t i = 0; i < l->n; i++)
                free_app(&l->v[i].app);
        free(l->v);
        for (size_t i = 0; i < l->set_n; i++)
                free_setting(&l->set[i].set);
        free(l->set);
}

/* Parses one "APPID:CLIENTKEY" (modified in place). `what` names the entry
 * ("entry 2", "apps file 'x' line 3") for messages, which never quote it. */
static int app_add(app_list_t *l, char *entry, size_t where, const char *what,
                   char *why, size_t why_size)
{
        char *colon = strchr(entry, ':');
        if (!colon)
                return lb_why(why, why_size,
                              "%s: expected APPID:CLIENTKEY (no ':')", what);
        *colon = '\0';
        char *id = lb_trim(entry);
        char *key = lb_trim(colon + 1);
        if (!*id)
                return lb_why(why, why_size, "%s: empty app id", what);
        if (!*key)
                return lb_why(why, why_size, "%s: empty client key", what);
        app_entry_t *v = lb_grow(l->v, &l->cap, l->n + 1, sizeof(*v), 8);
        if (!v)
                return lb_why(why, why_size, "out of memory");
        l->v = v;
        app_entry_t *e = &l->v[l->n];
        memset(&e->app, 0, sizeof(e->app));
        e->app.id = strdup(id);
        e->app.client_key = strdup(key);
        e->where = where;
        if (!e->app.id || !e->app.client_key) {
                free_app(&e->app);
                return lb_why(why, why_size, "out of memory");
        }
        l->n++;
        return 0;
}

static int apps_parse_inline(app_list_t *l, char *value, char *why,
                             size_t why_size)
{
        size_t entry = 1;
        char *p = value;
        for (;;) {
                char *comma = strchr(p, ',');
                if (comma)
                        *comma = '\0';
                char what[32];
                snprintf(what, sizeof(what), "entry %zu", entry);
                char *e = lb_trim(p);
                if (!*e)
                        return lb_why(why, why_size, "%s is empty", what);
                if (app_add(l, e, entry, what, why, why_size))
                        return -1;
                if (!comma)
                        return 0;
                p = comma + 1;
                entry++;
        }
}

static int apps_parse_file(app_list_t *l, const char *path, int *world_readable,
                           char *why, size_t why_size)
{
        char *line = NULL;
        size_t line_cap = 0;
        unsigned lineno = 0;
        int rc = -1;
        if (!*path)
                return lb_why(why, why_size, "'@' must be followed by a path");
        FILE *f = fopen(path, "re");
        if (!f)
                return lb_why(why, why_size, "cannot open apps file '%s': %s",
                              path, strerror(errno));
        struct stat st;
        if (fstat(fileno(f), &st)) {
                lb_why(why, why_size, "cannot stat apps file '%s': %s", path,
                       strerror(errno));
                goto out;
        }
        *world_readable = !!(st.st_mode & S_IROTH);
        errno = 0;
        while (getline(&line, &line_cap, f) != -1) {
                lineno++;
                char *s = lb_trim(line);
                if (!*s || *s == '#')
                        continue;
                char what[64 + 32];
                snprintf(what, sizeof(what), "apps file '%.64s' line %u", path,
                         lineno);
                char *eq = strchr(s, '='), *colon = strchr(s, ':');
                if (eq && (!colon || colon > eq)) {
                        if (file_setting_add(l, s, eq, lineno, what, why,
                                             why_size))
                                goto out;
                } else if (app_add(l, s, lineno, what, why, why_size)) {
                        goto out;
                }
        }
        if (ferror(f)) {
                lb_why(why, why_size, "cannot read apps file '%s': %s", path,
                       strerror(errno ? errno : EIO));
                goto out;
        }
        if (!l->n) {
                lb_why(why, why_size, "apps file '%s' lists no app", path);
                goto out;
        }
        rc = 0;
out:
        if (line) {
                explicit_bzero(line, line_cap);
                free(line);
        }
        fclose(f);
        return rc;
}

static int app_entry_id_cmp(const void *a, const void *b)
{
        const app_entry_t *x = a, *y = b;
        return strcmp(x->app.id, y->app.id);
}

static int app_entry_cmp(const void *a, const void *b)
{
        const app_entry_t *x = a, *y = b;
        int c = app_entry_id_cmp(a, b);
        if (c)
                return c;
        return x->where < y->where ? -1 : x->where > y->where;
}

/* Sorts by id (app_find bisects, a reload pairs ids by position), rejects
 * duplicates naming the two entries by position, and moves the apps into a
 * plain array. */
static int apps_finish(app_list_t *l, int from_file, lb_app_t **out, char *why,
                       size_t why_size)
{
        qsort(l->v, l->n, sizeof(*l->v), app_entry_cmp);
        for (size_t i = 1; i < l->n; i++)
                if (!strcmp(l->v[i - 1].app.id, l->v[i].app.id))
                        return lb_why(why, why_size,
                                      "%s %zu and %zu have the same app id",
                                      from_file ? "lines" : "entries",
                                      l->v[i - 1].where, l->v[i].where);
        /* The file's settings go to their apps (ids are sorted). */
        for (size_t j = 0; j < l->set_n; j++) {
                file_setting_t *fs = &l->set[j];
                app_entry_t key = {.app.id = fs->set.app_id};
                app_entry_t *e =
                    bsearch(&key, l->v, l->n, sizeof(*l->v), app_entry_id_cmp);
                if (!e)
                        return lb_why(why, why_size,
                                      "line %u sets a key of app '%.64s', "
                                      "which the file does not list",
                                      fs->line, fs->set.app_id);
                e->app.file_line[fs->set.key] = fs->line;
                e->app.file[fs->set.key] = fs->set.value;
                fs->set.value = (lb_app_value_t){0};
        }
        lb_app_t *apps = malloc(l->n * sizeof(*apps));
        if (!apps)
                return lb_why(why, why_size, "out of memory");
        for (size_t i = 0; i < l->n; i++)
                apps[i] = l->v[i].app;
        free(l->v);
        l->v = NULL;
        l->n = l->cap = 0;
        for (size_t j = 0; j < l->set_n; j++)
                free_setting(&l->set[j].set);
        free(l->set);
        l->set = NULL;
        l->set_n = l->set_cap = 0;
        *out = apps;
        return 0;
}

/* One slot of conf->app_slots: app -1 is empty. */
struct lb_app_slot_s {
        uint64_t hash;
        size_t len;
        int app;
};

/* @returns a new index of apps[0..n) for lb_config_app_index, *mask set;
 *          NULL when out of memory. */
static struct lb_app_slot_s *app_slots_new(const lb_app_t *apps, size_t n,
                                           size_t *mask)
{
        size_t cap = 4;
        while (cap < 2 * n)
                cap *= 2;
        struct lb_app_slot_s *slots = malloc(cap * sizeof(*slots));
        if (!slots)
                return NULL;
        for (size_t i = 0; i < cap; i++)
                slots[i].app = -1;
        for (size_t a = 0; a < n; a++) {
                size_t len = strlen(apps[a].id);
                uint64_t h = lb_hash_words(LB_FNV1A_SEED, apps[a].id, len);
                size_t i = h & (cap - 1);
                while (slots[i].app >= 0)
                        i = (i + 1) & (cap - 1);
                slots[i] = (struct lb_app_slot_s){h, len, (int)a};
        }
        *mask = cap - 1;
        return slots;
}

static int set_apps(lb_config_t *conf, const char *value, char *why,
                    size_t why_size)
{
        app_list_t l = {0};
        lb_app_t *apps = NULL;
        int world_readable = 0, rc = -1;
        char *copy = strdup(value);
        if (!copy) {
                lb_why(why, why_size, "out of memory");
                goto out;
        }
        int from_file = copy[0] == '@';
        if (from_file) {
                if (apps_parse_file(&l, lb_trim(copy + 1), &world_readable, why,
                                    why_size))
                        goto out;
        } else if (apps_parse_inline(&l, copy, why, why_size)) {
                goto out;
        }
        size_t n = l.n;
        if (apps_finish(&l, from_file, &apps, why, why_size))
                goto out;
        char *path = NULL;
        size_t mask;
        struct lb_app_slot_s *slots = app_slots_new(apps, n, &mask);
        if (!slots || (from_file && !(path = strdup(lb_trim(copy + 1))))) {
                free(slots);
                free_apps(apps, n);
                lb_why(why, why_size, "out of memory");
                goto out;
        }
        free_apps(conf->apps, conf->app_cnt);
        free(conf->apps_path);
        free(conf->app_slots);
        conf->apps = apps;
        conf->app_cnt = n;
        conf->app_slots = slots;
        conf->app_slot_mask = mask;
        conf->apps_file_world_readable = world_readable;
        conf->apps_path = path;
        rc = 0;
out:
        free_app_list(&l);
        free_secret(copy);
        return rc;
}

/* Checks apps[0..n) (resolved) against the rest of conf: each budget
 * covers batch.linger.ms, no key of an app is set both in the apps file
 * and in a layer, and every layer's app.APPID.KEY names an app. */
static int apps_check(const lb_config_t *conf, const lb_app_t *apps, size_t n,
                      char *why, size_t why_size)
{
        for (size_t i = 0; i < n; i++) {
                const lb_app_t *a = &apps[i];
                if (a->policy.max_wait_ms >= conf->batch_linger_ms)
                        continue;
                char where[64] = "";
                if (a->file_line[LB_APP_MAX_WAIT])
                        snprintf(where, sizeof(where), " (apps file line %u)",
                                 a->file_line[LB_APP_MAX_WAIT]);
                return lb_why(why, why_size,
                              "'app.%.64s.batch.max.wait.ms'%s (%" PRId64
                              ") must be >= 'batch.linger.ms' (%" PRId64 ")",
                              a->id, where, a->policy.max_wait_ms,
                              conf->batch_linger_ms);
        }
        for (size_t j = 0; j < conf->app_setting_cnt; j++) {
                const lb_app_setting_t *st = &conf->app_settings[j];
                int i = app_find(apps, n, st->app_id, strlen(st->app_id));
                if (i < 0)
                        return lb_why(why, why_size,
                                      "'app.%.64s.%s' names app '%.64s', which "
                                      "is not in 'apps'",
                                      st->app_id, app_key_names[st->key],
                                      st->app_id);
                if (apps[i].file_line[st->key])
                        return lb_why(
                            why, why_size,
                            "'app.%.64s.%s' is set both in the apps "
                            "file (line %u) and in the configuration: "
                            "set it in one place",
                            st->app_id, app_key_names[st->key],
                            apps[i].file_line[st->key]);
        }
        return 0;
}

int lb_config_reload_apps(lb_config_t *conf, int keys_only, char *why,
                          size_t why_size)
{
        app_list_t l = {0};
        lb_app_t *apps = NULL;
        int world_readable = 0, changed = 0;
        if (!conf->apps_path)
                return lb_why(why, why_size, "apps is not a file (@PATH)");
        if (apps_parse_file(&l, conf->apps_path, &world_readable, why,
                            why_size)) {
                free_app_list(&l);
                return -1;
        }
        size_t n = l.n;
        if (apps_finish(&l, 1, &apps, why, why_size)) {
                free_app_list(&l);
                return -1;
        }
        /* Both sorted by id: the same ids pair up by position. */
        for (size_t i = 0; i < n || i < conf->app_cnt; i++) {
                if (i < n && i < conf->app_cnt &&
                    !strcmp(apps[i].id, conf->apps[i].id))
                        continue;
                int added =
                    i < n && (i >= conf->app_cnt ||
                              lb_config_app_index(conf, apps[i].id,
                                                  strlen(apps[i].id)) < 0);
                lb_why(why, why_size,
                       "apps file '%s' %s app '%.64s': adding or removing an "
                       "app needs a restart",
                       conf->apps_path, added ? "adds" : "drops",
                       added ? apps[i].id : conf->apps[i].id);
                free_apps(apps, n);
                return -1;
        }
        for (size_t i = 0; i < n; i++)
                app_resolve(conf, &apps[i]);
        if (apps_check(conf, apps, n, why, why_size)) {
                free_apps(apps, n);
                return -1;
        }
        for (size_t i = 0; i < n; i++) {
                lb_app_t *a = &conf->apps[i], *b = &apps[i];
                if (strcmp(b->client_key, a->client_key)) {
                        char *old = a->client_key;
                        a->client_key = b->client_key;
                        b->client_key = old;
                        a->key_gen++;
                        changed++;
                }
                for (int k = 0; !keys_only && k < LB_APP_KEY_CNT; k++) {
                        lb_app_value_t v = a->file[k];
                        a->file[k] = b->file[k];
                        b->file[k] = v;
                        a->file_line[k] = b->file_line[k];
                }
        }
        if (!keys_only) {
                apps_resolve(conf);
                conf->apps_file_world_readable = world_readable;
        }
        free_apps(apps, n);
        return changed;
}

/* Where app a's value of key k comes from, for lb_config_describe_app. */
static void app_value_origin(const lb_config_t *conf, const lb_app_t *a, int k,
                             char *buf, size_t size)
{
        if (a->file_line[k]) {
                snprintf(buf, size, "apps file line %u", a->file_line[k]);
                return;
        }
        for (size_t j = 0; j < conf->app_setting_cnt; j++) {
                if (setting_is(&conf->app_settings[j], k, a->id,
                               strlen(a->id))) {
                        snprintf(buf, size, "app.%.64s.%s", a->id,
                                 app_key_names[k]);
                        return;
                }
        }
        snprintf(buf, size, "all apps");
}

void lb_config_describe_app(const lb_config_t *conf, size_t app, char *buf,
                            size_t size)
{
        const lb_app_t *a = &conf->apps[app];
        char from[LB_APP_KEY_CNT][96], urgent[512], end[512];
        for (int k = 0; k < LB_APP_KEY_CNT; k++)
                app_value_origin(conf, a, k, from[k], sizeof(from[k]));
        lb_names_format(a->policy.urgent, urgent, sizeof(urgent));
        lb_names_format(a->policy.session_end, end, sizeof(end));
        snprintf(buf, size,
                 "app %.64s: batch.max.wait.ms %" PRId64
                 " (%s), batch.urgent %s (%s), batch.session.end %s (%s)",
                 a->id, a->policy.max_wait_ms, from[LB_APP_MAX_WAIT], urgent,
                 from[LB_APP_URGENT], end, from[LB_APP_SESSION_END]);
}

int lb_config_app_index(const lb_config_t *conf, const char *app_id, size_t len)
{
        if (!conf->app_slots) /* apps set by hand, as tests do */
                return app_find(conf->apps, conf->app_cnt, app_id, len);
        uint64_t h = lb_hash_words(LB_FNV1A_SEED, app_id, len);
        for (size_t i = h & conf->app_slot_mask;;
             i = (i + 1) & conf->app_slot_mask) {
                const struct lb_app_slot_s *s = &conf->app_slots[i];
                if (s->app < 0)
                        return -1;
                if (s->hash == h && s->len == len &&
                    lb_key_eq(conf->apps[s->app].id, app_id, len))
                        return s->app;
        }
}

/* ------------------------------------------------------------------ */
/* kafka.*                                                            */

static int kafka_add(lb_config_t *conf, const char *name, lb_kafka_side_t side,
                     const char *value, char *why, size_t why_size)
{
        lb_kafka_prop_t p = {
            .name = strdup(name), .value = strdup(value), .side = side};
        if (!p.name || !p.value) {
                free(p.name);
                free_secret(p.value);
                return lb_why(why, why_size, "out of memory");
        }
        /* Same name and side: drop the old one; the new one goes last so
         * "set last wins" holds across sides too. */
        for (size_t i = 0; i < conf->kafka_cnt; i++) {
                lb_kafka_prop_t *o = &conf->kafka[i];
                if (o->side == side && !strcmp(o->name, name)) {
                        free(o->name);
                        free_secret(o->value);
                        memmove(o, o + 1,
                                (conf->kafka_cnt - i - 1) * sizeof(*o));
                        conf->kafka_cnt--;
                        break;
                }
        }
        lb_kafka_prop_t *v =
            realloc(conf->kafka, (conf->kafka_cnt + 1) * sizeof(*v));
        if (!v) {
                free(p.name);
                free_secret(p.value);
                return lb_why(why, why_size, "out of memory");
        }
        conf->kafka = v;
        conf->kafka[conf->kafka_cnt++] = p;
        return 0;
}

const char *lb_config_kafka_get(const lb_config_t *conf, const char *name,
                                lb_kafka_side_t side)
{
        for (size_t i = conf->kafka_cnt; i-- > 0;) {
                const lb_kafka_prop_t *p = &conf->kafka[i];
                if ((p->side == side || p->side == LB_KAFKA_BOTH) &&
                    !strcmp(p->name, name))
                        return p->value;
        }
        return NULL;
}

/* Splits a kafka.* key into property name and side; NULL if no property
 * name follows the prefix. */
static const char *kafka_split(const char *key, lb_kafka_side_t *side)
{
        const char *name;
        if (has_prefix(key, consumer_prefix)) {
                *side = LB_KAFKA_CONSUMER;
                name = key + sizeof(consumer_prefix) - 1;
        } else if (has_prefix(key, producer_prefix)) {
                *side = LB_KAFKA_PRODUCER;
                name = key + sizeof(producer_prefix) - 1;
        } else {
                *side = LB_KAFKA_BOTH;
                name = key + sizeof(kafka_prefix) - 1;
                if (!strcmp(name, "consumer") || !strcmp(name, "producer"))
                        return NULL;
        }
        return *name ? name : NULL;
}

static int is_known_key(const char *key)
{
        return find_key(key) || has_prefix(key, kafka_prefix);
}

/* ------------------------------------------------------------------ */
/* Setting one key                                                    */

static int set_value(lb_config_t *conf, const cfg_key_t *k, const char *value,
                     char *why, size_t why_size)
{
        char *base = (char *)conf;
        switch (k->type) {
        case CT_STRING: {
                if (k->check && k->check(value, why, why_size))
                        return -1;
                char *s = strdup(value);
                if (!s)
                        return lb_why(why, why_size, "out of memory");
                char **field = (char **)(base + k->off);
                free(*field);
                *field = s;
                return 0;
        }
        case CT_INT: {
                int64_t v;
                int ok = !parse_int(value, &v) &&
                         ((v >= k->min && v <= k->max) ||
                          (v == -1 && (k->flags & KF_FOREVER)) ||
                          (v == 0 && (k->flags & KF_AUTO)));
                if (!ok && (k->flags & KF_FOREVER))
                        return lb_why(why, why_size,
                                      "must be -1 (forever) or an integer from "
                                      "%" PRId64 " to %" PRId64,
                                      k->min, k->max);
                if (!ok && (k->flags & KF_AUTO))
                        return lb_why(why, why_size,
                                      "must be 0 (auto) or an integer from "
                                      "%" PRId64 " to %" PRId64,
                                      k->min, k->max);
                if (!ok)
                        return lb_why(why, why_size,
                                      "must be an integer from %" PRId64
                                      " to %" PRId64,
                                      k->min, k->max);
                *(int64_t *)(base + k->off) = v;
                return 0;
        }
        case CT_BOOL: {
                int v;
                if (parse_bool(value, &v))
                        return lb_why(
                            why, why_size,
                            "must be true, false, yes, no, on, off, 1 "
                            "or 0");
                *(int *)(base + k->off) = v;
                return 0;
        }
        case CT_ENUM: {
                for (int i = 0; k->names[i]; i++) {
                        if (!strcasecmp(value, k->names[i])) {
                                *(int *)(base + k->off) = i;
                                return 0;
                        }
                }
                char list[128] = "";
                for (int i = 0; k->names[i]; i++) {
                        size_t n = strlen(list);
                        snprintf(list + n, sizeof(list) - n, "%s%s",
                                 i ? (k->names[i + 1] ? ", " : " or ") : "",
                                 k->names[i]);
                }
                return lb_why(why, why_size, "must be %s", list);
        }
        case CT_LIST: {
                char **v;
                size_t n;
                if (lb_list_parse(value, 0, &v, &n, why, why_size))
                        return -1;
                char ***field = (char ***)(base + k->off);
                size_t *cnt = (size_t *)(base + k->cnt_off);
                lb_list_free(*field, *cnt);
                *field = v;
                *cnt = n;
                return 0;
        }
        case CT_NAMES:
                return lb_names_parse(value, (lb_names_t *)(base + k->off), why,
                                      why_size);
        case CT_APPS:
                return set_apps(conf, value, why, why_size);
        case CT_KAFKA: {
                lb_kafka_side_t unused;
                const char *prop = kafka_split(k->name, &unused);
                return kafka_add(conf, prop, k->side, value, why, why_size);
        }
        }
        return lb_why(why, why_size, "unsupported key type");
}

int lb_config_key_is_secret(const char *key)
{
        if (!strcmp(key, "apps"))
                return 1;
        return has_prefix(key, kafka_prefix) &&
               (strstr(key, "password") || strstr(key, "secret") ||
                strstr(key, "key.pem") || strstr(key, "oauthbearer.config"));
}

int lb_config_set(lb_config_t *conf, const char *key, const char *value,
                  const char *origin, char *errstr, size_t errstr_size)
{
        char from[256] = "";
        if (origin)
                snprintf(from, sizeof(from), " (from %s)", origin);
        if (!value)
                return lb_why(errstr, errstr_size,
                              "configuration key '%s'%s needs a value", key,
                              from);

        const cfg_key_t *k = find_key(key);
        char why[512];
        const char *id;
        size_t id_len;
        int app_key = app_key_split(key, &id, &id_len);
        if (!k && app_key < 0 && has_prefix(key, app_prefix)) {
                not_app_key(why, sizeof(why), "configuration key", key);
                return lb_why(errstr, errstr_size, "%s%s", why, from);
        }
        if (!k && has_prefix(key, kafka_prefix)) {
                lb_kafka_side_t side;
                const char *prop = kafka_split(key, &side);
                if (!prop)
                        return lb_why(errstr, errstr_size,
                                      "configuration key '%s'%s names no "
                                      "librdkafka property (kafka.PROP, "
                                      "kafka.consumer.PROP or "
                                      "kafka.producer.PROP)",
                                      key, from);
                if (kafka_add(conf, prop, side, value, why, sizeof(why)))
                        return lb_why(errstr, errstr_size,
                                      "cannot set '%s'%s: %s", key, from, why);
                return 0;
        }
        if (!k && app_key < 0) {
                const char *near = suggest_key(key);
                if (near)
                        return lb_why(errstr, errstr_size,
                                      "unknown configuration key '%s'%s; did "
                                      "you mean '%s'?",
                                      key, from, near);
                return lb_why(errstr, errstr_size,
                              "unknown configuration key '%s'%s", key, from);
        }
        if (app_key >= 0 ? app_setting_set(conf, id, id_len, app_key, value,
                                           why, sizeof(why))
                         : set_value(conf, k, value, why, sizeof(why))) {
                if (k && (k->flags & KF_SECRET))
                        return lb_why(errstr, errstr_size,
                                      "invalid value for '%s'%s: %s", key, from,
                                      why);
                return lb_why(errstr, errstr_size,
                              "invalid value for '%s'%s: %s, got '%.100s'", key,
                              from, why, value);
        }
        apps_resolve(conf);
        return 0;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                          */

lb_config_t *lb_config_new(void)
{
        lb_config_t *conf = calloc(1, sizeof(*conf));
        if (!conf)
                return NULL;
        for (size_t i = 0; i < KEY_CNT; i++) {
                if (!keys[i].def)
                        continue;
                char why[256];
                if (set_value(conf, &keys[i], keys[i].def, why, sizeof(why))) {
                        /* only allocation can fail here: defaults are
                         * covered by the unit tests */
                        lb_config_destroy(conf);
                        return NULL;
                }
        }
        return conf;
}

void lb_config_destroy(lb_config_t *conf)
{
        if (!conf)
                return;
        for (size_t i = 0; i < conf->kafka_cnt; i++) {
                free(conf->kafka[i].name);
                free_secret(conf->kafka[i].value);
        }
        free(conf->kafka);
        lb_list_free(conf->topics, conf->topic_cnt);
        free_apps(conf->apps, conf->app_cnt);
        free(conf->app_slots);
        free(conf->apps_path);
        free(conf->memory_limit_source);
        for (size_t i = 0; i < conf->app_setting_cnt; i++)
                free_setting(&conf->app_settings[i]);
        free(conf->app_settings);
        for (size_t i = 0; i < KEY_CNT; i++) {
                if (keys[i].type == CT_STRING)
                        free(*(char **)((char *)conf + keys[i].off));
                else if (keys[i].type == CT_NAMES)
                        lb_names_free(
                            (lb_names_t *)((char *)conf + keys[i].off));
        }
        free(conf);
}

/* ------------------------------------------------------------------ */
/* Layers                                                             */

int lb_config_load_file(lb_config_t *conf, const char *path, char *errstr,
                        size_t errstr_size)
{
        char *line = NULL;
        size_t line_cap = 0;
        unsigned lineno = 0;
        int rc = -1;
        FILE *f = fopen(path, "re");
        if (!f)
                return lb_why(errstr, errstr_size,
                              "cannot open configuration file '%s': %s", path,
                              strerror(errno));
        errno = 0;
        while (getline(&line, &line_cap, f) != -1) {
                lineno++;
                char *s = line;
                if (lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
                        s += 3; /* UTF-8 byte order mark */
                s = lb_trim(s);
                if (!*s || *s == '#')
                        continue;
                char *eq = strchr(s, '=');
                if (!eq) {
                        lb_why(errstr, errstr_size,
                               "%s:%u: expected 'key = value' (no '=')", path,
                               lineno);
                        goto out;
                }
                *eq = '\0';
                char *key = lb_trim(s);
                char *value = lb_trim(eq + 1);
                if (!*key) {
                        lb_why(errstr, errstr_size,
                               "%s:%u: expected 'key = value' (no key before "
                               "'=')",
                               path, lineno);
                        goto out;
                }
                char origin[512];
                snprintf(origin, sizeof(origin), "file %s:%u", path, lineno);
                if (lb_config_set(conf, key, value, origin, errstr,
                                  errstr_size))
                        goto out;
                errno = 0;
        }
        if (ferror(f)) {
                lb_why(errstr, errstr_size,
                       "cannot read configuration file '%s': %s", path,
                       strerror(errno ? errno : EIO));
                goto out;
        }
        rc = 0;
out:
        if (line) {
                explicit_bzero(line, line_cap);
                free(line);
        }
        fclose(f);
        return rc;
}

/* LEANBRIDGE_APP_<APPID>_<KEY>=value (name_len bytes of name): the app
 * id as it is, the key upper-cased with '.' as '_'. */
static int env_apply_app(lb_config_t *conf, const char *var, size_t name_len,
                         const char *value, char *errstr, size_t errstr_size)
{
        const char *rest = var + sizeof(env_app_prefix) - 1;
        size_t n = name_len - (sizeof(env_app_prefix) - 1);
        for (int k = 0; k < LB_APP_KEY_CNT; k++) {
                char suffix[64] = "_";
                size_t sl = 1;
                for (const char *p = app_key_names[k]; *p; p++)
                        suffix[sl++] =
                            *p == '.' ? '_' : (char)toupper((unsigned char)*p);
                if (n <= sl || memcmp(rest + n - sl, suffix, sl))
                        continue;
                char key[512], origin[300];
                snprintf(key, sizeof(key), "%s%.*s.%s", app_prefix,
                         (int)(n - sl), rest, app_key_names[k]);
                snprintf(origin, sizeof(origin), "environment %.*s",
                         (int)(name_len < 280 ? name_len : 280), var);
                return lb_config_set(conf, key, value, origin, errstr,
                                     errstr_size);
        }
        return lb_why(errstr, errstr_size,
                      "unknown environment variable '%.*s': "
                      "%s<APPID>_ takes BATCH_MAX_WAIT_MS, BATCH_URGENT or "
                      "BATCH_SESSION_END",
                      (int)(name_len < 280 ? name_len : 280), var,
                      env_app_prefix);
}

/* One LEANBRIDGE_* variable; `specific` selects the kafka.consumer.* and
 * kafka.producer.* pass. Returns 1 if the variable belongs to the other
 * pass or is not ours. */
static int env_apply(lb_config_t *conf, const char *var, int specific,
                     char *errstr, size_t errstr_size)
{
        const char *eq = strchr(var, '=');
        if (!eq || !has_prefix(var, env_prefix))
                return 1;
        size_t name_len = (size_t)(eq - var);
        if (has_prefix(var, env_app_prefix))
                return specific ? 1
                                : env_apply_app(conf, var, name_len, eq + 1,
                                                errstr, errstr_size);
        char *name = strndup(var, name_len);
        char *key = strndup(var + sizeof(env_prefix) - 1,
                            name_len - (sizeof(env_prefix) - 1));
        int rc = -1;
        if (!name || !key) {
                lb_why(errstr, errstr_size, "out of memory");
                goto out;
        }
        for (char *p = key; *p; p++)
                *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        int is_specific = has_prefix(key, consumer_prefix) ||
                          has_prefix(key, producer_prefix);
        if (is_specific != specific) {
                rc = 1;
                goto out;
        }
        if (!is_known_key(key)) {
                const char *near = suggest_key(key);
                lb_why(errstr, errstr_size,
                       "unknown environment variable '%s': no configuration "
                       "key '%s'%s%s%s",
                       name, key, near ? "; did you mean '" : "",
                       near ? near : "", near ? "'?" : "");
                goto out;
        }
        char origin[300];
        snprintf(origin, sizeof(origin), "environment %.280s", name);
        rc = lb_config_set(conf, key, eq + 1, origin, errstr, errstr_size);
out:
        free(name);
        free(key);
        return rc;
}

int lb_config_load_env(lb_config_t *conf, char **envp, char *errstr,
                       size_t errstr_size)
{
        if (!envp)
                return 0;
        /* The environment has no order: apply kafka.PROP before the
         * kafka.consumer/producer.PROP variables so the side-specific one
         * wins within this layer. */
        for (int specific = 0; specific <= 1; specific++)
                for (char **e = envp; *e; e++)
                        if (env_apply(conf, *e, specific, errstr, errstr_size) <
                            0)
                                return -1;
        return 0;
}

/* ------------------------------------------------------------------ */
/* Validation                                                         */

static int missing(char *errstr, size_t errstr_size, const char *key,
                   const char *detail)
{
        return lb_why(errstr, errstr_size,
                      "missing required configuration key '%s'%s", key, detail);
}

static int at_least(char *errstr, size_t errstr_size, const char *key,
                    int64_t v, const char *other, int64_t ov)
{
        if (v >= ov)
                return 0;
        return lb_why(errstr, errstr_size,
                      "'%s' (%" PRId64 ") must be >= '%s' (%" PRId64 ")", key,
                      v, other, ov);
}

/* at_least for a pending bound: 0 is not sized yet (nothing to check); a
 * sized one says what it came from. */
static int pending_at_least(char *errstr, size_t errstr_size,
                            const lb_config_t *conf, const char *key, int64_t v,
                            int is_auto, const char *other, int64_t ov)
{
        if (!v || v >= ov)
                return 0;
        if (!is_auto)
                return at_least(errstr, errstr_size, key, v, other, ov);
        return lb_why(errstr, errstr_size,
                      "'%s' (%" PRId64 ", auto from the memory limit %" PRId64
                      " bytes, %.300s) must be >= '%s' (%" PRId64
                      "): set memory.limit.bytes or '%s'",
                      key, v, conf->memory_limit_bytes,
                      conf->memory_limit_source ? conf->memory_limit_source
                                                : "",
                      other, ov, key);
}

static int64_t fetch_floor(const lb_config_t *conf);

int lb_config_validate(const lb_config_t *conf, char *errstr,
                       size_t errstr_size)
{
        const char *c =
            lb_config_kafka_get(conf, "bootstrap.servers", LB_KAFKA_CONSUMER);
        const char *p =
            lb_config_kafka_get(conf, "bootstrap.servers", LB_KAFKA_PRODUCER);
        if ((!c || !*c) && (!p || !*p))
                return missing(errstr, errstr_size, "kafka.bootstrap.servers",
                               "");
        if (!c || !*c)
                return missing(errstr, errstr_size, "kafka.bootstrap.servers",
                               " (the consumer has none)");
        if (!p || !*p)
                return missing(errstr, errstr_size, "kafka.bootstrap.servers",
                               " (the dead-letter producer has none)");
        const char *g =
            lb_config_kafka_get(conf, "group.id", LB_KAFKA_CONSUMER);
        if (!g || !*g)
                return missing(errstr, errstr_size, "kafka.group.id", "");
        if (!conf->topic_cnt)
                return missing(errstr, errstr_size, "input.topics", "");
        if (!conf->dlq_topic || !*conf->dlq_topic)
                return missing(errstr, errstr_size, "dlq.topic", "");
        if (!conf->app_cnt)
                return missing(errstr, errstr_size, "apps", "");

        for (size_t i = 0; i < conf->topic_cnt; i++)
                if (!strcmp(conf->topics[i], conf->dlq_topic))
                        return lb_why(errstr, errstr_size,
                                      "'dlq.topic' (%s) must not be one of "
                                      "'input.topics'",
                                      conf->dlq_topic);

        if (at_least(errstr, errstr_size, "batch.max.wait.ms",
                     conf->batch_max_wait_ms, "batch.linger.ms",
                     conf->batch_linger_ms) ||
            at_least(errstr, errstr_size, "retry.backoff.max.ms",
                     conf->retry_backoff_max_ms, "retry.backoff.initial.ms",
                     conf->retry_backoff_initial_ms) ||
            pending_at_least(errstr, errstr_size, conf, "pending.max.actions",
                             conf->pending_max_actions,
                             conf->pending_max_actions_auto,
                             "batch.max.actions", conf->batch_max_actions) ||
            pending_at_least(errstr, errstr_size, conf, "pending.max.bytes",
                             conf->pending_max_bytes,
                             conf->pending_max_bytes_auto, "batch.max.bytes",
                             conf->batch_max_bytes) ||
            apps_check(conf, conf->apps, conf->app_cnt, errstr, errstr_size))
                return -1;
        /* The consumer's prefetch comes on top of the bound (which is at
         * least 20% of the limit) and the process itself: over half the
         * limit, they cannot all fit, and the bridge would be killed for
         * its memory instead of told. Sized from the limit, it fits: only
         * kafka.* keys set can make it too large. */
        int64_t prefetch = lb_config_prefetch_bytes(conf);
        if (conf->memory_limit_bytes && prefetch > conf->memory_limit_bytes / 2)
                return lb_why(
                    errstr, errstr_size,
                    "the memory limit (%" PRId64 " bytes, %.300s) leaves no "
                    "room for the consumer's prefetch (%" PRId64 " bytes, at "
                    "most half the limit: "
                    "'kafka.consumer.queued.max.messages.kbytes' %" PRId64
                    ", 'kafka.consumer.queued.min.messages' %" PRId64
                    ", 'kafka.consumer.fetch.max.bytes' %" PRId64
                    ", at least 'kafka.consumer.message.max.bytes' %" PRId64
                    ") besides the actions held: raise the limit "
                    "(memory.limit.bytes, or the container's) or lower the "
                    "keys set",
                    conf->memory_limit_bytes,
                    conf->memory_limit_source ? conf->memory_limit_source : "",
                    prefetch, lb_config_prefetch_kbytes(conf),
                    lb_config_prefetch_messages(conf),
                    lb_config_prefetch_fetch(conf), fetch_floor(conf));
        return 0;
}

/* ------------------------------------------------------------------ */
/* The memory bound                                                   */

static int64_t min64(int64_t a, int64_t b)
{
        return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
        return a > b ? a : b;
}

/* pct % of n, for any n < 2^62. */
static int64_t share(int64_t n, int pct)
{
        return n / 100 * pct + n % 100 * pct / 100;
}

/* A kafka.consumer property as a number: its value when a kafka.* key
 * sets it (0 if not a positive number: librdkafka refuses it at startup),
 * else dflt. */
static int64_t consumer_number(const lb_config_t *conf, const char *name,
                               int64_t dflt)
{
        const char *v = lb_config_kafka_get(conf, name, LB_KAFKA_CONSUMER);
        if (!v)
                return dflt;
        /* as librdkafka reads it (hex and octal too); it refuses what is
         * cut here */
        long long n = strtoll(v, NULL, 0);
        return n > 0 ? (int64_t)min64(n, INT64_C(1) << 40) : 0;
}

int64_t lb_config_prefetch_kbytes(const lb_config_t *conf)
{
        return consumer_number(conf, "queued.max.messages.kbytes",
                               conf->prefetch_kbytes ? conf->prefetch_kbytes
                                                     : LB_PREFETCH_KBYTES);
}

int64_t lb_config_prefetch_messages(const lb_config_t *conf)
{
        return consumer_number(conf, "queued.min.messages",
                               conf->prefetch_messages ? conf->prefetch_messages
                                                       : LB_PREFETCH_MESSAGES);
}

/* librdkafka refuses a fetch.max.bytes under message.max.bytes */
static int64_t fetch_floor(const lb_config_t *conf)
{
        return consumer_number(conf, "message.max.bytes", 1000000);
}

int64_t lb_config_prefetch_fetch(const lb_config_t *conf)
{
        return consumer_number(conf, "fetch.max.bytes",
                               max64(lb_config_prefetch_kbytes(conf) * 1024 / 4,
                                     fetch_floor(conf)));
}

int64_t lb_config_answer_max_bytes(const lb_config_t *conf)
{
        if (conf->memory_limit_bytes <= 0)
                return LB_ANSWER_MAX_BYTES;
        int64_t each = share(conf->memory_limit_bytes, LB_ANSWERS_PCT) /
                       max64(conf->sender_max_inflight, 1);
        return max64(LB_ANSWER_MIN_BYTES, min64(each, LB_ANSWER_MAX_BYTES));
}

int64_t lb_config_prefetch_bytes(const lb_config_t *conf)
{
        int64_t fetch = lb_config_prefetch_fetch(conf);
        return lb_config_prefetch_kbytes(conf) * 1024 + fetch +
               (lb_config_prefetch_messages(conf) +
                fetch / LB_PREFETCH_RECORD_BYTES) *
                   LB_QUEUED_MESSAGE_BYTES;
}

/* Shrinks the prefetch settings no kafka.* key sets, together, until the
 * prefetch takes at most LB_PREFETCH_MAX_PCT % of limit (fetch.max.bytes'
 * floor makes it a few steps at small limits), never under 1 MiB and
 * 1,000 messages. */
static void size_prefetch(lb_config_t *conf, int64_t limit)
{
        int64_t budget = share(limit, LB_PREFETCH_MAX_PCT), bytes;
        conf->prefetch_kbytes = conf->prefetch_messages = 0;
        for (int step = 0;
             step < 4 && (bytes = lb_config_prefetch_bytes(conf)) > budget;
             step++) {
                double scale = (double)budget / (double)bytes;
                conf->prefetch_kbytes = max64(
                    (int64_t)((double)lb_config_prefetch_kbytes(conf) * scale),
                    1024);
                conf->prefetch_messages =
                    max64((int64_t)((double)lb_config_prefetch_messages(conf) *
                                    scale),
                          1000);
        }
}

int lb_config_resolve_memory(lb_config_t *conf, int64_t found_bytes,
                             const char *found_source)
{
        if (!conf->memory_limit_bytes || conf->memory_limit_auto) {
                conf->memory_limit_auto = 1;
                conf->memory_limit_bytes = found_bytes;
        } else {
                found_source = "memory.limit.bytes";
        }
        char *source = strdup(found_source);
        if (!source)
                return -1;
        free(conf->memory_limit_source);
        conf->memory_limit_source = source;

        const cfg_key_t *kb = find_key("pending.max.bytes");
        const cfg_key_t *ka = find_key("pending.max.actions");
        int64_t limit = conf->memory_limit_bytes; /* < 2^62: no overflow */
        size_prefetch(conf, limit);
        int64_t auto_bytes = max64(share(limit, LB_PENDING_AUTO_PCT) -
                                       lb_config_prefetch_bytes(conf),
                                   share(limit, LB_PENDING_AUTO_FLOOR_PCT));
        auto_bytes = min64(auto_bytes, kb->max);
        if (!conf->pending_max_bytes || conf->pending_max_bytes_auto) {
                conf->pending_max_bytes_auto = 1;
                conf->pending_max_bytes = auto_bytes;
        }
        if (!conf->pending_max_actions || conf->pending_max_actions_auto) {
                conf->pending_max_actions_auto = 1;
                conf->pending_max_actions = min64(
                    auto_bytes / LB_PENDING_AUTO_BYTES_PER_ACTION, ka->max);
        }
        return 0;
}

void lb_config_describe_memory(const lb_config_t *conf, char *buf, size_t size)
{
        char bytes_from[96] = "set";
        if (conf->pending_max_bytes_auto)
                snprintf(bytes_from, sizeof(bytes_from),
                         "auto: %d%% less the consumer's prefetch, at least "
                         "%d%%",
                         LB_PENDING_AUTO_PCT, LB_PENDING_AUTO_FLOOR_PCT);
        snprintf(
            buf, size,
            "memory limit %" PRId64 " bytes (%s); consumer prefetch "
            "%" PRId64 " bytes (queued.max.messages.kbytes %" PRId64
            ", queued.min.messages %" PRId64 ", fetch.max.bytes %" PRId64
            "); pending.max.bytes %" PRId64 " (%s), pending.max.actions "
            "%" PRId64 " (%s)",
            conf->memory_limit_bytes,
            conf->memory_limit_source ? conf->memory_limit_source
                                      : "not resolved",
            lb_config_prefetch_bytes(conf), lb_config_prefetch_kbytes(conf),
            lb_config_prefetch_messages(conf), lb_config_prefetch_fetch(conf),
            conf->pending_max_bytes, bytes_from, conf->pending_max_actions,
            conf->pending_max_actions_auto ? "auto" : "set");
}

/* ------------------------------------------------------------------ */
/* --help and the example file                                        */

/* Writes text word-wrapped to `width` columns, each line starting with
 * `prefix`. */
static void wrap(FILE *out, const char *prefix, const char *text, int width)
{
        int avail = width - (int)strlen(prefix);
        const char *p = text;
        while (*p) {
                while (*p == ' ')
                        p++;
                if (!*p)
                        break;
                int len = 0, last_space = -1;
                while (p[len] && len < avail) {
                        if (p[len] == ' ')
                                last_space = len;
                        len++;
                }
                if (p[len] && p[len] != ' ' && last_space > 0)
                        len = last_space;
                fprintf(out, "%s%.*s\n", prefix, len, p);
                p += len;
        }
}

static void describe_type(const cfg_key_t *k, char *buf, size_t size)
{
        switch (k->type) {
        case CT_INT:
                if (k->flags & KF_FOREVER)
                        snprintf(buf, size,
                                 "integer, -1 or %" PRId64 "..%" PRId64, k->min,
                                 k->max);
                else if (k->flags & KF_AUTO)
                        snprintf(buf, size,
                                 "integer, 0 (auto) or %" PRId64 "..%" PRId64,
                                 k->min, k->max);
                else
                        snprintf(buf, size, "integer %" PRId64 "..%" PRId64,
                                 k->min, k->max);
                return;
        case CT_BOOL:
                snprintf(buf, size, "boolean");
                return;
        case CT_ENUM: {
                size_t n = 0;
                buf[0] = '\0';
                for (int i = 0; k->names[i] && n < size; i++)
                        n += (size_t)snprintf(buf + n, size - n, "%s%s",
                                              i ? "|" : "", k->names[i]);
                return;
        }
        case CT_LIST:
                snprintf(buf, size, "list");
                return;
        case CT_NAMES:
                snprintf(buf, size, "list of ACTION or event:NAME");
                return;
        case CT_APPS:
                snprintf(buf, size, "secret");
                return;
        case CT_KAFKA:
                snprintf(buf, size, "%s",
                         k->side == LB_KAFKA_CONSUMER ? "consumer property"
                                                      : "string");
                return;
        case CT_STRING:
                break;
        }
        snprintf(buf, size, "string");
}

void lb_config_print_help(FILE *out)
{
        fprintf(out, "Configuration keys:\n\n");
        for (size_t i = 0; i < KEY_CNT; i++) {
                const cfg_key_t *k = &keys[i];
                char type[96];
                describe_type(k, type, sizeof(type));
                if (k->flags & KF_REQUIRED)
                        fprintf(out, "  %s  (%s, required)\n", k->name, type);
                else if (k->def && *k->def)
                        fprintf(out, "  %s  (%s, default %s)\n", k->name, type,
                                k->def);
                else
                        fprintf(out, "  %s  (%s, default empty)\n", k->name,
                                type);
                wrap(out, "        ", k->desc, 78);
        }
        for (size_t i = 0; kafka_notes[i]; i++) {
                fputc('\n', out);
                wrap(out, "", kafka_notes[i], 78);
        }
}

void lb_config_print_example(FILE *out)
{
        fprintf(out,
                "# leanbridge: example configuration with every key.\n"
                "# Generated from the key table in src/config.c (the same "
                "table --help\n"
                "# prints); tests/unit/test_config.c checks that they "
                "agree.\n"
                "#\n"
                "# Lines are 'key = value'; a line whose first non-blank "
                "character is '#'\n"
                "# is a comment ('#' inside a value is part of the value). "
                "Required keys\n"
                "# are set to local sample values; the others are commented "
                "out and show\n"
                "# their defaults.\n");
        for (size_t i = 0; kafka_notes[i]; i++) {
                fprintf(out, "#\n");
                wrap(out, "# ", kafka_notes[i], 78);
        }
        for (size_t i = 0; i < KEY_CNT; i++) {
                const cfg_key_t *k = &keys[i];
                fputc('\n', out);
                wrap(out, "# ", k->desc, 78);
                if (k->flags & KF_REQUIRED)
                        fprintf(out, "%s = %s\n", k->name, k->example);
                else if (k->def && *k->def)
                        fprintf(out, "# %s = %s\n", k->name, k->def);
                else if (k->example)
                        fprintf(out, "# %s =\n# %s = %s\n", k->name, k->name,
                                k->example);
                else
                        fprintf(out, "# %s =\n", k->name);
        }
        fprintf(out, "\n# librdkafka properties, for example a SASL_SSL "
                     "cluster:\n"
                     "# kafka.security.protocol = SASL_SSL\n"
                     "# kafka.sasl.mechanisms = SCRAM-SHA-512\n"
                     "# kafka.sasl.username = leanbridge\n"
                     "# kafka.sasl.password = change-me\n"
                     "# kafka.ssl.ca.location = /etc/ssl/certs/kafka-ca.pem\n"
                     "# kafka.consumer.session.timeout.ms = 45000\n"
                     "# kafka.producer.linger.ms = 5\n");
}

int64_t lb_config_exit_bound_ms(const lb_config_t *conf)
{
        return conf->shutdown_timeout_ms + conf->api_timeout_ms +
               conf->api_timeout_hold_ms + LB_EXIT_MARGIN_MS;
}
