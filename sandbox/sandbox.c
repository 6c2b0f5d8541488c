/*
 * leanbridge-sandbox: a local stand-in for the Leanplum-style multi endpoint.
 *
 * Owns: the HTTP server (libmicrohttpd, 127.0.0.1 unless --bind), validation of
 * multi requests, the documented limits (users/actions per call), detection of
 * concurrent requests for one user, per-action answers, fault injection, the
 * JSON-lines logs of accepted actions and of requests, and GET /stats.
 *
 * It shares no code with the bridge on purpose: it checks the bridge from the
 * outside, the way the real API would. The only state shared between request
 * threads is one struct sbx (counters, PRNG and busy users under sbx->lock,
 * log files under sbx->log_lock). See sandbox/README.md for usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#define SBX_MAX_STATUS   600
#define SBX_MAX_ID_CHARS 400

/* Injected faults; the index also picks the option's probability. */
enum sbx_fault {
        SBX_F_NONE,
        SBX_F_500,       /* 500, nothing accepted */
        SBX_F_429,       /* 429 + Retry-After, nothing accepted */
        SBX_F_SLOW,      /* sleep --slow-ms, then 504, nothing accepted */
        SBX_F_DROP,      /* connection cut mid-answer, nothing accepted */
        SBX_F_MALFORMED, /* 200 with invalid JSON, nothing accepted */
        SBX_F_WRONGLEN,  /* 200 with one entry too many/few, nothing accepted */
        SBX_F_LOST,      /* accepted and logged, then connection cut */
        SBX_F_COUNT
};

static const char *const sbx_fault_names[SBX_F_COUNT] = {
    "none", "500", "429", "slow", "drop", "malformed", "wronglen", "lost"};

/* Action names the sandbox knows (the client-side actions of the API). */
static const char *const sbx_actions[] = {"start",
                                          "stop",
                                          "track",
                                          "advance",
                                          "pauseSession",
                                          "resumeSession",
                                          "pauseState",
                                          "resumeState",
                                          "heartbeat",
                                          "setUserAttributes",
                                          "setDeviceAttributes",
                                          "setTrafficSourceInfo"};

struct sbx_names {
        const char **v;
        size_t n;
};

struct sbx_app {
        char *id;
        char *key;
};

struct sbx_opts {
        long port;
        const char *port_file;
        const char *bind; /* IPv4 address to listen on */
        const char *apps_spec;
        long max_users;
        long max_actions;
        long max_body;
        const char *log_path;
        const char *req_log_path;
        const char *stats_file;
        const char *down_file;
        struct sbx_names fail_events;
        struct sbx_names warn_events;
        long seed;
        double p[SBX_F_COUNT];
        long retry_after;
        long slow_ms;
        long delay_ms;
        long help;
};

struct sbx_stats {
        uint64_t requests;
        uint64_t by_status[SBX_MAX_STATUS];
        uint64_t dropped;
        uint64_t actions_accepted;
        uint64_t actions_failed;
        uint64_t actions_warned;
        uint64_t max_users_seen;
        uint64_t max_actions_seen;
        uint64_t user_overlap;
        uint64_t limit_violations;
        uint64_t faults[SBX_F_COUNT];
        uint64_t inflight;
        uint64_t max_inflight;
};

/* The one context: everything a request thread may touch. */
struct sbx {
        struct sbx_opts opt;
        struct sbx_app *apps;
        size_t n_apps;
        int log_fd;
        int req_log_fd;
        pthread_mutex_t lock; /* stats, rng, busy, next_req, stopping */
        pthread_cond_t wake;  /* broadcast on shutdown: cuts sleeps short */
        pthread_mutex_t log_lock;
        uint64_t rng;
        uint64_t next_req;
        json_t *busy; /* busy-user key -> true, for in-flight requests */
        bool stopping;
        struct sbx_stats st;
};

/* One HTTP request to /api, kept in MHD's con_cls between calls. */
struct sbx_request {
        char *body;
        size_t len;
        size_t cap;
        bool too_big;
        bool answered;
        uint64_t seq;
        double recv_ms;
};

/* A growable byte buffer; allocation failure aborts (a test tool). */
struct sbx_buf {
        char *p;
        size_t len;
        size_t cap;
};

/* A parsed, structurally valid multi request. */
struct sbx_multi {
        json_t *root;
        const char *app_id; /* borrowed from root */
        json_t *data;       /* borrowed from root */
        json_t *users;      /* identity -> true: the distinct users */
        size_t n_actions;
};

/* What the request gets back, and what is recorded about it. */
struct sbx_reply {
        unsigned status;
        struct sbx_buf body;
        const char *error; /* static message for the request log */
        long retry_after;  /* seconds; 0 = no header */
        const char *allow; /* Allow header for 405 */
        enum sbx_fault fault;
        bool cut; /* send part of the body, then close */
        size_t accepted;
        size_t failed;
        size_t warned;
};

/* ---- small helpers ---------------------------------------------------- */

static void sbx_oom(void)
{
        fputs("leanbridge-sandbox: out of memory\n", stderr);
        abort();
}

static void sbx_buf_add(struct sbx_buf *b, const char *s, size_t n)
{
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                b->p = realloc(b->p, cap);
                if (!b->p)
                        sbx_oom();
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

static void sbx_buf_str(struct sbx_buf *b, const char *s)
{
        sbx_buf_add(b, s, strlen(s));
}

static void sbx_buf_fmt(struct sbx_buf *b, const char *fmt, ...)
{
        char tmp[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(tmp))
                abort(); /* only used for short numeric fragments */
        sbx_buf_add(b, tmp, (size_t)n);
}

static int sbx_buf_dump_cb(const char *s, size_t n, void *data)
{
        sbx_buf_add(data, s, n);
        return 0;
}

/* Appends @p j as compact JSON (default real precision: round-trips). */
static void sbx_buf_json(struct sbx_buf *b, const json_t *j)
{
        if (json_dump_callback(j, sbx_buf_dump_cb, b,
                               JSON_COMPACT | JSON_ENCODE_ANY) != 0)
                sbx_oom();
}

/* Appends @p s as a JSON string, or null. */
static void sbx_buf_jstr(struct sbx_buf *b, const char *s)
{
        json_t *j;

        if (!s) {
                sbx_buf_str(b, "null");
                return;
        }
        j = json_string(s);
        if (!j)
                sbx_oom();
        sbx_buf_json(b, j);
        json_decref(j);
}

static double sbx_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool sbx_names_has(const struct sbx_names *l, const char *s)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->v[i], s) == 0)
                        return true;
        return false;
}

static size_t sbx_utf8_chars(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char)*s & 0xC0) != 0x80)
                        n++;
        return n;
}

static void sbx_write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        perror("leanbridge-sandbox: log write");
                        return;
                }
                p += w;
                n -= (size_t)w;
        }
}

/* ---- PRNG, sleeping, stats (all under sbx->lock) ----------------------- */

static uint64_t sbx_splitmix(uint64_t *s)
{
        uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double sbx_random(struct sbx *sb)
{
        uint64_t x;

        pthread_mutex_lock(&sb->lock);
        x = sbx_splitmix(&sb->rng);
        pthread_mutex_unlock(&sb->lock);
        return (double)(x >> 11) * 0x1.0p-53;
}

/* One draw decides the fault: the probabilities are shares of one line. */
static enum sbx_fault sbx_pick_fault(struct sbx *sb)
{
        double sum = 0, u;

        for (int f = SBX_F_NONE + 1; f < SBX_F_COUNT; f++)
                sum += sb->opt.p[f];
        if (sum <= 0)
                return SBX_F_NONE;
        u = sbx_random(sb);
        sum = 0;
        for (int f = SBX_F_NONE + 1; f < SBX_F_COUNT; f++) {
                sum += sb->opt.p[f];
                if (u < sum)
                        return (enum sbx_fault)f;
        }
        return SBX_F_NONE;
}

/* Sleeps @p ms, returning early on shutdown. */
static void sbx_sleep_ms(struct sbx *sb, long ms)
{
        struct timespec until;

        if (ms <= 0)
                return;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&sb->lock);
        while (!sb->stopping && pthread_cond_timedwait(&sb->wake, &sb->lock,
                                                       &until) != ETIMEDOUT)
                ;
        pthread_mutex_unlock(&sb->lock);
}

static bool sbx_stopping(struct sbx *sb)
{
        bool stopping;

        pthread_mutex_lock(&sb->lock);
        stopping = sb->stopping;
        pthread_mutex_unlock(&sb->lock);
        return stopping;
}

static void sbx_inflight(struct sbx *sb, int delta)
{
        pthread_mutex_lock(&sb->lock);
        if (delta > 0) {
                sb->st.inflight++;
                if (sb->st.inflight > sb->st.max_inflight)
                        sb->st.max_inflight = sb->st.inflight;
        } else {
                sb->st.inflight--;
        }
        pthread_mutex_unlock(&sb->lock);
}

static void sbx_max(uint64_t *m, uint64_t v)
{
        if (v > *m)
                *m = v;
}

static json_t *sbx_stats_json(struct sbx *sb)
{
        json_t *by_status = json_object(), *faults = json_object(), *o;
        char code[16];

        pthread_mutex_lock(&sb->lock);
        const struct sbx_stats *s = &sb->st;
        for (int i = 0; i < SBX_MAX_STATUS; i++) {
                if (!s->by_status[i])
                        continue;
                snprintf(code, sizeof(code), "%d", i);
                json_object_set_new(by_status, code,
                                    json_integer((json_int_t)s->by_status[i]));
        }
        if (s->dropped)
                json_object_set_new(by_status, "dropped",
                                    json_integer((json_int_t)s->dropped));
        for (int f = SBX_F_NONE + 1; f < SBX_F_COUNT; f++)
                json_object_set_new(faults, sbx_fault_names[f],
                                    json_integer((json_int_t)s->faults[f]));
        o = json_pack("{sI sO sI sI sI sI sI sI sI sO sI sI}", "requests",
                      (json_int_t)s->requests, "by_status", by_status,
                      "actions_accepted", (json_int_t)s->actions_accepted,
                      "actions_failed", (json_int_t)s->actions_failed,
                      "actions_warned", (json_int_t)s->actions_warned,
                      "max_users_seen", (json_int_t)s->max_users_seen,
                      "max_actions_seen", (json_int_t)s->max_actions_seen,
                      "user_overlap", (json_int_t)s->user_overlap,
                      "limit_violations", (json_int_t)s->limit_violations,
                      "faults", faults, "inflight", (json_int_t)s->inflight,
                      "max_inflight", (json_int_t)s->max_inflight);
        pthread_mutex_unlock(&sb->lock);
        json_decref(by_status);
        json_decref(faults);
        if (!o)
                sbx_oom();
        return o;
}

/* ---- replies ------------------------------------------------------------ */

static void sbx_reply_error(struct sbx_reply *r, unsigned status,
                            const char *msg)
{
        r->status = status;
        r->error = msg;
        r->body.len = 0;
        sbx_buf_str(&r->body, "{\"error\":{\"message\":");
        sbx_buf_jstr(&r->body, msg);
        sbx_buf_str(&r->body, "}}");
}

/* Like sbx_reply_error, with a formatted detail in the body only. */
static void sbx_reply_errorf(struct sbx_reply *r, unsigned status,
                             const char *log_msg, const char *fmt, ...)
{
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        sbx_reply_error(r, status, msg);
        r->error = log_msg;
}

/* A 200 body of @p n plain successes (what drop/wronglen answer). */
static void sbx_reply_successes(struct sbx_reply *r, size_t n)
{
        r->status = 200;
        r->body.len = 0;
        sbx_buf_str(&r->body, "{\"response\":[");
        for (size_t i = 0; i < n; i++)
                sbx_buf_str(&r->body,
                            i ? ",{\"success\":true}" : "{\"success\":true}");
        sbx_buf_str(&r->body, "]}");
}

struct sbx_cut {
        char *body;
        size_t cut;
};

static ssize_t sbx_cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct sbx_cut *c = cls;
        size_t n;

        if (pos >= c->cut)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        n = c->cut - (size_t)pos;
        if (n > max)
                n = max;
        memcpy(buf, c->body + pos, n);
        return (ssize_t)n;
}

static void sbx_cut_free(void *cls)
{
        struct sbx_cut *c = cls;

        free(c->body);
        free(c);
}

/* A response that announces the whole body but sends only half of it. */
static struct MHD_Response *sbx_cut_response(struct sbx_reply *r)
{
        struct sbx_cut *c = malloc(sizeof(*c));
        struct MHD_Response *resp;

        if (!c)
                sbx_oom();
        c->body = r->body.p;
        c->cut = r->body.len / 2;
        r->body.p = NULL; /* now owned by c */
        resp = MHD_create_response_from_callback(
            r->body.len, 4096, sbx_cut_reader, c, sbx_cut_free);
        if (!resp)
                sbx_cut_free(c);
        return resp;
}

static enum MHD_Result sbx_send(struct MHD_Connection *conn,
                                struct sbx_reply *r)
{
        struct MHD_Response *resp;
        enum MHD_Result ret;
        char secs[32];

        if (r->cut) {
                resp = sbx_cut_response(r);
        } else {
                resp = MHD_create_response_from_buffer(r->body.len, r->body.p,
                                                       MHD_RESPMEM_MUST_FREE);
                if (resp)
                        r->body.p = NULL; /* now owned by resp */
        }
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
        if (r->retry_after > 0) {
                snprintf(secs, sizeof(secs), "%ld", r->retry_after);
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
                                        secs);
        }
        if (r->allow)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
        ret = MHD_queue_response(conn, r->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* ---- validating a multi request ---------------------------------------- */

/* The user identity: userId, else deviceId (non-empty strings). */
static const char *sbx_identity(const json_t *action)
{
        const char *id = json_string_value(json_object_get(action, "userId"));

        if (id && *id)
                return id;
        id = json_string_value(json_object_get(action, "deviceId"));
        return id && *id ? id : NULL;
}

static const struct sbx_app *sbx_find_app(const struct sbx *sb, const char *id)
{
        for (size_t i = 0; i < sb->n_apps; i++)
                if (strcmp(sb->apps[i].id, id) == 0)
                        return &sb->apps[i];
        return NULL;
}

/* Checks the top-level fields; fills @p m or answers the error in @p r. */
static bool sbx_parse_multi(const struct sbx *sb, const struct sbx_request *rq,
                            struct sbx_multi *m, struct sbx_reply *r)
{
        json_error_t err;
        const struct sbx_app *app;
        const char *key;

        m->root = json_loadb(rq->body ? rq->body : "", rq->len, 0, &err);
        if (!m->root) {
                sbx_reply_errorf(r, 400, "Invalid JSON", "Invalid JSON: %s",
                                 err.text);
                return false;
        }
        if (!json_is_object(m->root)) {
                sbx_reply_error(r, 400, "Request body must be a JSON object");
                return false;
        }
        m->app_id = json_string_value(json_object_get(m->root, "appId"));
        if (!m->app_id) {
                sbx_reply_error(r, 400, "Missing argument appId");
                return false;
        }
        app = sbx_find_app(sb, m->app_id);
        if (!app) {
                sbx_reply_error(r, 400, "App not found");
                return false;
        }
        key = json_string_value(json_object_get(m->root, "clientKey"));
        if (!key || strcmp(key, app->key) != 0) {
                sbx_reply_error(r, 403, "Invalid access key");
                return false;
        }
        if (!json_is_string(json_object_get(m->root, "apiVersion"))) {
                sbx_reply_error(r, 400, "Missing argument apiVersion");
                return false;
        }
        if (!json_is_number(json_object_get(m->root, "time"))) {
                sbx_reply_error(r, 400, "Missing or invalid argument time");
                return false;
        }
        m->data = json_object_get(m->root, "data");
        if (!json_is_array(m->data)) {
                sbx_reply_error(r, 400, "Missing or invalid argument data");
                return false;
        }
        return true;
}

static void sbx_collect_users(struct sbx_multi *m)
{
        size_t i;
        json_t *a;

        m->users = json_object();
        if (!m->users)
                sbx_oom();
        m->n_actions = json_array_size(m->data);
        json_array_foreach(m->data, i, a)
        {
                const char *id = sbx_identity(a);
                if (id)
                        json_object_set_new(m->users, id, json_true());
        }
}

/* Over either limit: 403, the whole request refused. */
static bool sbx_check_limits(struct sbx *sb, const struct sbx_multi *m,
                             struct sbx_reply *r)
{
        size_t users = json_object_size(m->users);
        bool over = true;

        if (users > (size_t)sb->opt.max_users)
                sbx_reply_errorf(r, 403, "Too many users",
                                 "Too many users in one request (%zu > %ld)",
                                 users, sb->opt.max_users);
        else if (m->n_actions > (size_t)sb->opt.max_actions)
                sbx_reply_errorf(r, 403, "Too many actions",
                                 "Too many actions in one request (%zu > %ld)",
                                 m->n_actions, sb->opt.max_actions);
        else
                over = false;
        pthread_mutex_lock(&sb->lock);
        sbx_max(&sb->st.max_users_seen, users);
        sbx_max(&sb->st.max_actions_seen, m->n_actions);
        if (over)
                sb->st.limit_violations++;
        pthread_mutex_unlock(&sb->lock);
        return !over;
}

/* ---- busy users: no two in-flight requests for one (app, user) ---------- */

/* "<len>:<appId><user>": unambiguous for any strings. */
static void sbx_busy_key(struct sbx_buf *k, const char *app, const char *user)
{
        k->len = 0;
        sbx_buf_fmt(k, "%zu:", strlen(app));
        sbx_buf_str(k, app);
        sbx_buf_str(k, user);
}

/* Marks every user of @p m busy, or none if one already is. */
static bool sbx_acquire_users(struct sbx *sb, const struct sbx_multi *m)
{
        struct sbx_buf k = {0};
        const char *user;
        json_t *v;
        bool free_ = true;

        pthread_mutex_lock(&sb->lock);
        json_object_foreach(m->users, user, v)
        {
                sbx_busy_key(&k, m->app_id, user);
                if (json_object_get(sb->busy, k.p)) {
                        free_ = false;
                        break;
                }
        }
        if (free_) {
                json_object_foreach(m->users, user, v)
                {
                        sbx_busy_key(&k, m->app_id, user);
                        json_object_set_new(sb->busy, k.p, json_true());
                }
        } else {
                sb->st.user_overlap++;
        }
        pthread_mutex_unlock(&sb->lock);
        free(k.p);
        return free_;
}

static void sbx_release_users(struct sbx *sb, const struct sbx_multi *m)
{
        struct sbx_buf k = {0};
        const char *user;
        json_t *v;

        pthread_mutex_lock(&sb->lock);
        json_object_foreach(m->users, user, v)
        {
                sbx_busy_key(&k, m->app_id, user);
                json_object_del(sb->busy, k.p);
        }
        pthread_mutex_unlock(&sb->lock);
        free(k.p);
}

/* ---- answering actions -------------------------------------------------- */

enum sbx_verdict { SBX_OK, SBX_WARN, SBX_FAIL };

static bool sbx_known_action(const char *name)
{
        for (size_t i = 0; i < sizeof(sbx_actions) / sizeof(*sbx_actions); i++)
                if (strcmp(sbx_actions[i], name) == 0)
                        return true;
        return false;
}

/* Appends one response entry: {"success":..,"error"|"warning":{..}}. */
static enum sbx_verdict sbx_put_entry(struct sbx_buf *out, enum sbx_verdict v,
                                      const char *msg, const char *detail)
{
        struct sbx_buf m = {0};

        if (v == SBX_OK) {
                sbx_buf_str(out, "{\"success\":true}");
                return v;
        }
        sbx_buf_str(&m, msg);
        if (detail)
                sbx_buf_str(&m, detail);
        sbx_buf_str(out, v == SBX_WARN ? "{\"success\":true,\"warning\":"
                                       : "{\"success\":false,\"error\":");
        sbx_buf_str(out, "{\"message\":");
        sbx_buf_jstr(out, m.p);
        sbx_buf_str(out, "}}");
        free(m.p);
        return v;
}

static enum sbx_verdict sbx_answer_action(const struct sbx_opts *o,
                                          const json_t *a, struct sbx_buf *out)
{
        const char *name = json_string_value(json_object_get(a, "action"));
        const char *id = sbx_identity(a);
        const char *event = NULL;

        if (!json_is_object(a))
                return sbx_put_entry(out, SBX_FAIL, "Action must be an object",
                                     NULL);
        if (!name || !sbx_known_action(name))
                return sbx_put_entry(out, SBX_FAIL, "Action not found", NULL);
        if (!id)
                return sbx_put_entry(out, SBX_FAIL,
                                     "userId or deviceId required", NULL);
        if (sbx_utf8_chars(id) > SBX_MAX_ID_CHARS)
                return sbx_put_entry(out, SBX_FAIL,
                                     "userId or deviceId too long", NULL);
        if (strcmp(name, "track") == 0)
                event = json_string_value(json_object_get(a, "event"));
        if (event && sbx_names_has(&o->fail_events, event))
                return sbx_put_entry(out, SBX_FAIL, "Rejected event ", event);
        if (event && sbx_names_has(&o->warn_events, event))
                return sbx_put_entry(out, SBX_WARN, "Warning for event ",
                                     event);
        return sbx_put_entry(out, SBX_OK, NULL, NULL);
}

static void sbx_log_action(struct sbx_buf *log, const struct sbx_request *rq,
                           const struct sbx_multi *m, const json_t *a)
{
        sbx_buf_fmt(log,
                    "{\"req\":%llu,\"appId\":", (unsigned long long)rq->seq);
        sbx_buf_jstr(log, m->app_id);
        sbx_buf_str(log, ",\"user\":");
        sbx_buf_jstr(log, sbx_identity(a));
        sbx_buf_fmt(log, ",\"recv_ms\":%.3f,\"action\":", rq->recv_ms);
        sbx_buf_json(log, a);
        sbx_buf_str(log, "}\n");
}

/* Answers every action in order and logs the accepted ones (one write). */
static void sbx_answer_all(struct sbx *sb, const struct sbx_request *rq,
                           const struct sbx_multi *m, struct sbx_reply *r)
{
        struct sbx_buf log = {0};
        size_t i;
        json_t *a;

        r->status = 200;
        r->body.len = 0;
        sbx_buf_str(&r->body, "{\"response\":[");
        json_array_foreach(m->data, i, a)
        {
                if (i)
                        sbx_buf_str(&r->body, ",");
                enum sbx_verdict v = sbx_answer_action(&sb->opt, a, &r->body);
                if (v == SBX_FAIL) {
                        r->failed++;
                        continue;
                }
                r->accepted++;
                r->warned += v == SBX_WARN;
                if (sb->log_fd >= 0)
                        sbx_log_action(&log, rq, m, a);
        }
        sbx_buf_str(&r->body, "]}");
        if (log.len) {
                pthread_mutex_lock(&sb->log_lock);
                sbx_write_all(sb->log_fd, log.p, log.len);
                pthread_mutex_unlock(&sb->log_lock);
        }
        free(log.p);
}

/* Turns @p r into the answer of an injected fault (accepts nothing). */
static void sbx_apply_fault(struct sbx *sb, enum sbx_fault f,
                            const struct sbx_multi *m, struct sbx_reply *r)
{
        r->fault = f;
        switch (f) {
        case SBX_F_500:
                sbx_reply_error(r, 500, "Internal server error (injected)");
                break;
        case SBX_F_429:
                sbx_reply_error(r, 429, "Too many requests (injected)");
                r->retry_after = sb->opt.retry_after;
                break;
        case SBX_F_SLOW:
                sbx_sleep_ms(sb, sb->opt.slow_ms);
                sbx_reply_error(r, 504, "Gateway timeout (injected)");
                break;
        case SBX_F_DROP:
                sbx_reply_successes(r, m->n_actions);
                r->cut = true;
                break;
        case SBX_F_MALFORMED:
                r->status = 200;
                r->body.len = 0;
                sbx_buf_str(&r->body, "{\"response\":[{\"success\":tru");
                break;
        case SBX_F_WRONGLEN:
                if (m->n_actions > 0 && sbx_random(sb) < 0.5)
                        sbx_reply_successes(r, m->n_actions - 1);
                else
                        sbx_reply_successes(r, m->n_actions + 1);
                break;
        case SBX_F_LOST:
                r->cut = true; /* r already holds the real answer */
                break;
        case SBX_F_NONE:
        case SBX_F_COUNT:
                break;
        }
}

/*
 * A valid request within the limits: hold its users (429 on overlap), wait
 * --delay-ms, then either answer it (logging accepted actions before the
 * users are released, so the log keeps each user's order) or inject a fault.
 */
static void sbx_serve_multi(struct sbx *sb, const struct sbx_request *rq,
                            const struct sbx_multi *m, struct sbx_reply *r)
{
        enum sbx_fault f;

        if (!sbx_acquire_users(sb, m)) {
                sbx_reply_error(r, 429, "concurrent request for user");
                return;
        }
        sbx_sleep_ms(sb, sb->opt.delay_ms);
        if (sbx_stopping(sb)) {
                sbx_release_users(sb, m);
                sbx_reply_error(r, 503, "Shutting down");
                return;
        }
        f = sbx_pick_fault(sb);
        if (f == SBX_F_NONE || f == SBX_F_LOST)
                sbx_answer_all(sb, rq, m, r);
        sbx_release_users(sb, m);
        if (f != SBX_F_NONE)
                sbx_apply_fault(sb, f, m, r);
}

/* Counters and the request log line, once per /api request. */
static void sbx_record(struct sbx *sb, const struct sbx_request *rq,
                       const struct sbx_multi *m, const struct sbx_reply *r)
{
        struct sbx_buf line = {0};
        unsigned status = r->cut ? 0 : r->status;

        pthread_mutex_lock(&sb->lock);
        sb->st.requests++;
        if (r->cut)
                sb->st.dropped++;
        else if (status < SBX_MAX_STATUS)
                sb->st.by_status[status]++;
        sb->st.faults[r->fault]++;
        sb->st.actions_accepted += r->accepted;
        sb->st.actions_failed += r->failed;
        sb->st.actions_warned += r->warned;
        pthread_mutex_unlock(&sb->lock);
        if (sb->req_log_fd < 0)
                return;
        sbx_buf_fmt(&line,
                    "{\"req\":%llu,\"appId\":", (unsigned long long)rq->seq);
        sbx_buf_jstr(&line, m->app_id);
        sbx_buf_fmt(&line,
                    ",\"status\":%u,\"actions\":%zu,\"users\":%zu,"
                    "\"accepted\":%zu,\"recv_ms\":%.3f,\"reply_ms\":%.3f",
                    status, m->n_actions, json_object_size(m->users),
                    r->accepted, rq->recv_ms, sbx_now_ms());
        if (r->fault != SBX_F_NONE) {
                sbx_buf_str(&line, ",\"fault\":");
                sbx_buf_jstr(&line, sbx_fault_names[r->fault]);
        }
        if (r->error) {
                sbx_buf_str(&line, ",\"error\":");
                sbx_buf_jstr(&line, r->error);
        }
        sbx_buf_str(&line, "}\n");
        pthread_mutex_lock(&sb->log_lock);
        sbx_write_all(sb->req_log_fd, line.p, line.len);
        pthread_mutex_unlock(&sb->log_lock);
        free(line.p);
}

static bool sbx_is_down(const struct sbx *sb)
{
        return sb->opt.down_file && access(sb->opt.down_file, F_OK) == 0;
}

/* The whole body of a POST /api has arrived: answer it. */
static enum MHD_Result sbx_handle_api(struct sbx *sb,
                                      struct MHD_Connection *conn,
                                      struct sbx_request *rq)
{
        struct sbx_reply r = {0};
        struct sbx_multi m = {0};
        enum MHD_Result ret;

        rq->answered = true;
        rq->recv_ms = sbx_now_ms();
        sbx_inflight(sb, +1);
        if (sbx_is_down(sb))
                sbx_reply_error(&r, 503, "Service unavailable");
        else if (rq->too_big)
                sbx_reply_error(&r, 413, "Request body too large");
        else if (sbx_parse_multi(sb, rq, &m, &r)) {
                sbx_collect_users(&m);
                if (sbx_check_limits(sb, &m, &r))
                        sbx_serve_multi(sb, rq, &m, &r);
        }
        sbx_record(sb, rq, &m, &r);
        ret = sbx_send(conn, &r);
        free(r.body.p);
        json_decref(m.users);
        json_decref(m.root);
        sbx_inflight(sb, -1);
        return ret;
}

/* ---- MHD callbacks ----------------------------------------------------- */

static enum MHD_Result sbx_send_json(struct MHD_Connection *conn,
                                     unsigned status, json_t *j)
{
        struct sbx_reply r = {.status = status};

        sbx_buf_json(&r.body, j);
        json_decref(j);
        return sbx_send(conn, &r);
}

static enum MHD_Result sbx_handle_other(struct sbx *sb,
                                        struct MHD_Connection *conn,
                                        const char *url, const char *method)
{
        struct sbx_reply r = {0};
        enum MHD_Result ret;

        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
                sbx_reply_error(&r, 405, "Method not allowed");
                r.allow = "GET, HEAD";
        } else if (strcmp(url, "/stats") == 0) {
                return sbx_send_json(conn, 200, sbx_stats_json(sb));
        } else if (strcmp(url, "/healthz") == 0) {
                r.status = 200;
                sbx_buf_str(&r.body, "{\"status\":\"ok\"}");
        } else {
                sbx_reply_error(&r, 404, "Not found");
        }
        ret = sbx_send(conn, &r);
        free(r.body.p);
        return ret;
}

static struct sbx_request *sbx_request_new(struct sbx *sb,
                                           struct MHD_Connection *conn)
{
        struct sbx_request *rq = calloc(1, sizeof(*rq));
        const char *cl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        if (!rq)
                sbx_oom();
        /* Refuse a body announced too large before reading it. */
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)sb->opt.max_body)
                rq->too_big = true;
        pthread_mutex_lock(&sb->lock);
        rq->seq = ++sb->next_req;
        pthread_mutex_unlock(&sb->lock);
        return rq;
}

/* Accumulates body bytes up to --max-body; past it, discards them. */
static void sbx_request_append(const struct sbx *sb, struct sbx_request *rq,
                               const char *data, size_t n)
{
        if (rq->too_big || rq->answered)
                return;
        if (rq->len + n > (size_t)sb->opt.max_body) {
                rq->too_big = true;
                free(rq->body);
                rq->body = NULL;
                rq->len = rq->cap = 0;
                return;
        }
        if (rq->len + n > rq->cap) {
                size_t cap = rq->cap ? rq->cap : 4096;
                while (cap < rq->len + n)
                        cap *= 2;
                rq->body = realloc(rq->body, cap);
                if (!rq->body)
                        sbx_oom();
                rq->cap = cap;
        }
        memcpy(rq->body + rq->len, data, n);
        rq->len += n;
}

static enum MHD_Result sbx_on_request(void *cls, struct MHD_Connection *conn,
                                      const char *url, const char *method,
                                      const char *version,
                                      const char *upload_data,
                                      size_t *upload_data_size, void **con_cls)
{
        struct sbx *sb = cls;
        struct sbx_request *rq = *con_cls;
        struct sbx_reply r = {0};
        enum MHD_Result ret;

        (void)version;
        if (strcmp(url, "/api") != 0)
                return sbx_handle_other(sb, conn, url, method);
        if (strcmp(method, "POST") != 0) {
                sbx_reply_error(&r, 405, "Method not allowed");
                r.allow = "POST";
                ret = sbx_send(conn, &r);
                free(r.body.p);
                return ret;
        }
        if (!rq) {
                *con_cls = rq = sbx_request_new(sb, conn);
                /* First call: headers only. */
                return rq->too_big ? sbx_handle_api(sb, conn, rq) : MHD_YES;
        }
        if (*upload_data_size) {
                sbx_request_append(sb, rq, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        return rq->answered ? MHD_YES : sbx_handle_api(sb, conn, rq);
}

static void sbx_on_completed(void *cls, struct MHD_Connection *conn,
                             void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
        struct sbx_request *rq = *con_cls;

        (void)cls;
        (void)conn;
        (void)toe;
        if (rq) {
                free(rq->body);
                free(rq);
                *con_cls = NULL;
        }
}

/* ---- command line: one table for parsing, defaults and --help ----------- */

enum sbx_opt_type { SBX_OT_LONG, SBX_OT_PROB, SBX_OT_STR, SBX_OT_LIST };

struct sbx_opt_def {
        const char *name;
        enum sbx_opt_type type;
        size_t offset;
        long min, max; /* SBX_OT_LONG bounds */
        const char *def;
        const char *arg;
        const char *help;
};

#define SBX_OFF(f) offsetof(struct sbx_opts, f)

static const struct sbx_opt_def sbx_opt_defs[] = {
    {"port", SBX_OT_LONG, SBX_OFF(port), 0, 65535, "0", "N",
     "TCP port (0 = ephemeral; the port is printed)"},
    {"bind", SBX_OT_STR, SBX_OFF(bind), 0, 0, "127.0.0.1", "ADDR",
     "IPv4 address to listen on (0.0.0.0 only inside a container network)"},
    {"port-file", SBX_OT_STR, SBX_OFF(port_file), 0, 0, NULL, "FILE",
     "write the bound port here once listening (atomic rename)"},
    {"apps", SBX_OT_STR, SBX_OFF(apps_spec), 0, 0, NULL, "SPEC",
     "required: APPID:KEY[,APPID:KEY...] or @FILE (one per line, # comments)"},
    {"max-users", SBX_OT_LONG, SBX_OFF(max_users), 1, 1000000, "50", "N",
     "distinct users per request; over -> 403"},
    {"max-actions", SBX_OT_LONG, SBX_OFF(max_actions), 1, 100000000, "500", "N",
     "actions per request; over -> 403"},
    {"max-body", SBX_OT_LONG, SBX_OFF(max_body), 1, 1L << 40, "67108864",
     "BYTES", "request body cap; over -> 413"},
    {"log", SBX_OT_STR, SBX_OFF(log_path), 0, 0, NULL, "FILE",
     "append one JSON line per accepted action"},
    {"req-log", SBX_OT_STR, SBX_OFF(req_log_path), 0, 0, NULL, "FILE",
     "append one JSON line per /api request"},
    {"stats-file", SBX_OT_STR, SBX_OFF(stats_file), 0, 0, NULL, "FILE",
     "write the final /stats JSON here on shutdown"},
    {"fail-event", SBX_OT_LIST, SBX_OFF(fail_events), 0, 0, NULL, "NAME",
     "repeatable: track with this event -> success:false"},
    {"warn-event", SBX_OT_LIST, SBX_OFF(warn_events), 0, 0, NULL, "NAME",
     "repeatable: track with this event -> success:true + warning"},
    {"seed", SBX_OT_LONG, SBX_OFF(seed), 0, LONG_MAX, "1", "N",
     "seed of the fault PRNG"},
    {"p500", SBX_OT_PROB, SBX_OFF(p[SBX_F_500]), 0, 0, "0", "P",
     "share of requests answered 500"},
    {"p429", SBX_OT_PROB, SBX_OFF(p[SBX_F_429]), 0, 0, "0", "P",
     "share answered 429 with Retry-After"},
    {"retry-after", SBX_OT_LONG, SBX_OFF(retry_after), 0, 86400, "1", "S",
     "Retry-After seconds of injected 429s"},
    {"slow", SBX_OT_PROB, SBX_OFF(p[SBX_F_SLOW]), 0, 0, "0", "P",
     "share that sleep --slow-ms, then get 504"},
    {"slow-ms", SBX_OT_LONG, SBX_OFF(slow_ms), 0, 86400000, "5000", "MS",
     "sleep of --slow requests"},
    {"delay-ms", SBX_OT_LONG, SBX_OFF(delay_ms), 0, 86400000, "0", "MS",
     "every valid request is processed after MS (slow-API mode)"},
    {"pdrop", SBX_OT_PROB, SBX_OFF(p[SBX_F_DROP]), 0, 0, "0", "P",
     "share whose connection is cut mid-answer (not applied)"},
    {"pmalformed", SBX_OT_PROB, SBX_OFF(p[SBX_F_MALFORMED]), 0, 0, "0", "P",
     "share answered 200 with invalid JSON"},
    {"pwronglen", SBX_OT_PROB, SBX_OFF(p[SBX_F_WRONGLEN]), 0, 0, "0", "P",
     "share answered 200 with one entry too many or too few"},
    {"plost", SBX_OT_PROB, SBX_OFF(p[SBX_F_LOST]), 0, 0, "0", "P",
     "share APPLIED and logged, then cut mid-answer (duplicates)"},
    {"down-file", SBX_OT_STR, SBX_OFF(down_file), 0, 0, NULL, "PATH",
     "while PATH exists, every /api request gets 503"},
    {"help", SBX_OT_LONG, SBX_OFF(help), 0, 1, "0", NULL, "this text"},
};

#define SBX_N_OPTS (sizeof(sbx_opt_defs) / sizeof(*sbx_opt_defs))

static void sbx_usage(FILE *f)
{
        fputs("usage: leanbridge-sandbox --apps SPEC [options]\n"
              "A local stand-in for the multi endpoint (POST /api), with\n"
              "GET /stats and GET /healthz. Fault shares are exclusive: one\n"
              "draw per request; their sum must be <= 1.\n\n",
              f);
        for (size_t i = 0; i < SBX_N_OPTS; i++) {
                const struct sbx_opt_def *d = &sbx_opt_defs[i];
                char left[64];
                snprintf(left, sizeof(left), "--%s%s%s", d->name,
                         d->arg ? " " : "", d->arg ? d->arg : "");
                fprintf(f, "  %-22s %s", left, d->help);
                if (d->def && d->arg)
                        fprintf(f, " [%s]", d->def);
                fputc('\n', f);
        }
}

static bool sbx_opt_set(struct sbx_opts *o, const struct sbx_opt_def *d,
                        const char *val)
{
        char *field = (char *)o + d->offset, *end;
        struct sbx_names *l;

        errno = 0;
        switch (d->type) {
        case SBX_OT_LONG: {
                long v = strtol(val ? val : "1", &end, 10);
                if (errno || *end || end == val || v < d->min || v > d->max)
                        return false;
                memcpy(field, &v, sizeof(v));
                return true;
        }
        case SBX_OT_PROB: {
                double v = strtod(val, &end);
                if (errno || *end || end == val || !(v >= 0 && v <= 1))
                        return false;
                memcpy(field, &v, sizeof(v));
                return true;
        }
        case SBX_OT_STR:
                memcpy(field, &val, sizeof(val));
                return true;
        case SBX_OT_LIST:
                l = (struct sbx_names *)(void *)field;
                l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
                if (!l->v)
                        sbx_oom();
                l->v[l->n++] = val;
                return true;
        }
        return false;
}

/* getopt_long values: table index + SBX_OPT_BASE, clear of short options. */
#define SBX_OPT_BASE 1000

/* Parses argv into @p o; returns false with a message on stderr. */
static bool sbx_parse_args(struct sbx_opts *o, int argc, char **argv)
{
        struct option lopts[SBX_N_OPTS + 1];
        double sum = 0;
        int c;

        for (size_t i = 0; i < SBX_N_OPTS; i++) {
                const struct sbx_opt_def *d = &sbx_opt_defs[i];
                lopts[i] = (struct option){
                    d->name, d->arg ? required_argument : no_argument, NULL,
                    SBX_OPT_BASE + (int)i};
                if (d->def && !sbx_opt_set(o, d, d->def))
                        abort(); /* a bad default is a bug */
        }
        lopts[SBX_N_OPTS] = (struct option){0};
        while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
                const struct sbx_opt_def *d;
                if (c == 'h') {
                        o->help = 1;
                        continue;
                }
                if (c < SBX_OPT_BASE)
                        return false; /* getopt printed why */
                d = &sbx_opt_defs[c - SBX_OPT_BASE];
                if (!sbx_opt_set(o, d, optarg)) {
                        fprintf(stderr,
                                "leanbridge-sandbox: bad value for --%s: %s\n",
                                d->name, optarg);
                        return false;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "leanbridge-sandbox: unexpected argument %s\n",
                        argv[optind]);
                return false;
        }
        for (int f = SBX_F_NONE + 1; f < SBX_F_COUNT; f++)
                sum += o->p[f];
        if (sum > 1.0 + 1e-9) {
                fputs("leanbridge-sandbox: fault probabilities sum to more "
                      "than 1\n",
                      stderr);
                return false;
        }
        return true;
}

/* ---- apps --------------------------------------------------------------- */

static char *sbx_trim(char *s)
{
        char *e;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
                         e[-1] == '\n'))
                *--e = '\0';
        return s;
}

/* Adds the APPID:KEY items of one comma-separated list. */
static bool sbx_add_apps(struct sbx *sb, char *list)
{
        char *save = NULL, *item, *colon;

        for (item = strtok_r(list, ",", &save); item;
             item = strtok_r(NULL, ",", &save)) {
                item = sbx_trim(item);
                if (!*item)
                        continue;
                colon = strchr(item, ':');
                if (!colon || colon == item || !colon[1]) {
                        fprintf(stderr,
                                "leanbridge-sandbox: bad --apps item '%s' "
                                "(want APPID:KEY)\n",
                                item);
                        return false;
                }
                *colon = '\0';
                sb->apps =
                    realloc(sb->apps, (sb->n_apps + 1) * sizeof(*sb->apps));
                if (!sb->apps)
                        sbx_oom();
                sb->apps[sb->n_apps].id = strdup(sbx_trim(item));
                sb->apps[sb->n_apps].key = strdup(sbx_trim(colon + 1));
                if (!sb->apps[sb->n_apps].id || !sb->apps[sb->n_apps].key)
                        sbx_oom();
                sb->n_apps++;
        }
        return true;
}

static bool sbx_load_apps(struct sbx *sb, const char *spec)
{
        char *copy, *line = NULL;
        size_t cap = 0;
        bool ok = true;
        FILE *f;

        if (spec[0] != '@') {
                copy = strdup(spec);
                if (!copy)
                        sbx_oom();
                ok = sbx_add_apps(sb, copy);
                free(copy);
                return ok && sb->n_apps > 0;
        }
        f = fopen(spec + 1, "r");
        if (!f) {
                fprintf(stderr, "leanbridge-sandbox: %s: %s\n", spec + 1,
                        strerror(errno));
                return false;
        }
        while (ok && getline(&line, &cap, f) != -1)
                if (*sbx_trim(line) != '#')
                        ok = sbx_add_apps(sb, line);
        free(line);
        fclose(f);
        return ok && sb->n_apps > 0;
}

/* ---- startup and shutdown ----------------------------------------------- */

static int sbx_open_log(const char *path)
{
        int fd;

        if (!path)
                return -1;
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                fprintf(stderr, "leanbridge-sandbox: %s: %s\n", path,
                        strerror(errno));
        return fd;
}

/* Writes @p text to @p path via a temporary file and rename(2). */
static bool sbx_write_file(const char *path, const char *text)
{
        char tmp[4096];
        FILE *f;

        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
        f = fopen(tmp, "w");
        if (!f || fputs(text, f) == EOF || fclose(f) != 0 ||
            rename(tmp, path) != 0) {
                fprintf(stderr, "leanbridge-sandbox: %s: %s\n", path,
                        strerror(errno));
                return false;
        }
        return true;
}

static bool sbx_init(struct sbx *sb)
{
        pthread_condattr_t ca;

        sb->log_fd = sbx_open_log(sb->opt.log_path);
        sb->req_log_fd = sbx_open_log(sb->opt.req_log_path);
        if ((sb->opt.log_path && sb->log_fd < 0) ||
            (sb->opt.req_log_path && sb->req_log_fd < 0))
                return false;
        sb->rng = (uint64_t)sb->opt.seed;
        sb->busy = json_object();
        if (!sb->busy)
                sbx_oom();
        pthread_mutex_init(&sb->lock, NULL);
        pthread_mutex_init(&sb->log_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&sb->wake, &ca);
        pthread_condattr_destroy(&ca);
        return true;
}

static void sbx_destroy(struct sbx *sb)
{
        for (size_t i = 0; i < sb->n_apps; i++) {
                free(sb->apps[i].id);
                free(sb->apps[i].key);
        }
        free(sb->apps);
        free(sb->opt.fail_events.v);
        free(sb->opt.warn_events.v);
        json_decref(sb->busy);
        if (sb->log_fd >= 0)
                close(sb->log_fd);
        if (sb->req_log_fd >= 0)
                close(sb->req_log_fd);
}

static struct MHD_Daemon *sbx_start(struct sbx *sb, uint16_t *port)
{
        struct sockaddr_in sin = {.sin_family = AF_INET};
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *d;

        if (inet_pton(AF_INET, sb->opt.bind, &sin.sin_addr) != 1) {
                fprintf(stderr,
                        "leanbridge-sandbox: --bind: not an IPv4 "
                        "address: %s\n",
                        sb->opt.bind);
                return NULL;
        }
        sin.sin_port = htons((uint16_t)sb->opt.port);
        d = MHD_start_daemon(
            MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                MHD_USE_ERROR_LOG,
            (uint16_t)sb->opt.port, NULL, NULL, sbx_on_request, sb,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
            MHD_OPTION_NOTIFY_COMPLETED, sbx_on_completed, sb, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "leanbridge-sandbox: cannot listen on %s:%ld\n",
                        sb->opt.bind, sb->opt.port);
                return NULL;
        }
        info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        *port = info ? info->port : (uint16_t)sb->opt.port;
        return d;
}

static bool sbx_announce(const struct sbx *sb, uint16_t port)
{
        char text[16];

        printf("leanbridge-sandbox listening on %s:%u\n", sb->opt.bind,
               (unsigned)port);
        fflush(stdout);
        snprintf(text, sizeof(text), "%u\n", (unsigned)port);
        return !sb->opt.port_file || sbx_write_file(sb->opt.port_file, text);
}

/* Stops the daemon: sleeping requests wake up, threads are joined. */
static void sbx_stop(struct sbx *sb, struct MHD_Daemon *d)
{
        pthread_mutex_lock(&sb->lock);
        sb->stopping = true;
        pthread_cond_broadcast(&sb->wake);
        pthread_mutex_unlock(&sb->lock);
        MHD_stop_daemon(d);
        if (sb->opt.stats_file) {
                json_t *st = sbx_stats_json(sb);
                char *text = json_dumps(st, JSON_INDENT(2));
                if (text)
                        sbx_write_file(sb->opt.stats_file, text);
                free(text);
                json_decref(st);
        }
}

int main(int argc, char **argv)
{
        struct sbx sb = {.log_fd = -1, .req_log_fd = -1};
        struct MHD_Daemon *d = NULL;
        sigset_t sigs;
        uint16_t port = 0;
        int sig, rc = 2;

        if (!sbx_parse_args(&sb.opt, argc, argv))
                goto out;
        if (sb.opt.help) {
                sbx_usage(stdout);
                rc = 0;
                goto out;
        }
        if (!sb.opt.apps_spec) {
                fputs("leanbridge-sandbox: --apps is required (see --help)\n",
                      stderr);
                goto out;
        }
        if (!sbx_load_apps(&sb, sb.opt.apps_spec) || !sbx_init(&sb))
                goto out;
        /* Signals go to sigwait() below, never to MHD's threads. */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        rc = 1;
        d = sbx_start(&sb, &port);
        if (!d || !sbx_announce(&sb, port))
                goto out;
        sigwait(&sigs, &sig);
        rc = 0;
out:
        if (d)
                sbx_stop(&sb, d);
        if (sb.busy) {
                pthread_cond_destroy(&sb.wake);
                pthread_mutex_destroy(&sb.log_lock);
                pthread_mutex_destroy(&sb.lock);
        }
        sbx_destroy(&sb);
        return rc;
}
