/*
 * leanbridge-sandbox: a local stand-in for the Leanplum-style multi endpoint.
 *
 * Owns: the HTTP server (libmicrohttpd, 127.0.0.1 unless --bind), validation of
 * multi requests, the documented limits (users/actions per call), detection of
 * concurrent requests for one user, per-action answers, fault injection, the
 * JSON-lines logs of accepted actions and of requests, and GET /stats.
 *
 * It shares no code with the bridge on purpose: it checks the bridge from the
 * outside, the way the real API would. The one exception is json_scan.c, a
 * validator that gives jansson's verdict without building a tree (the
 * sandbox once loaded every body with jansson and cost more CPU per action
 * than the bridge it tests). A body is scanned once; a refused one still
 * gets jansson's own message. The elements of "data" are then walked
 * without checks for the few members read here, and --log holds each
 * accepted action's own text (on one line). Unlike json_loadb(0), a
 * duplicate object key, or a raw NUL byte right after a number or a
 * literal, is invalid JSON here; the bridge sends neither.
 *
 * The only state shared between request threads is one struct sbx (counters,
 * PRNG and busy users under sbx->lock, log files under sbx->log_lock). See
 * sandbox/README.md for usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
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
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "json_scan.h"

#define SBX_MAX_STATUS   600
#define SBX_MAX_ID_CHARS 400
/* The API's version the bridge speaks, and how far a request's time may be
 * from the sandbox's clock (the time of sending, set again on a retry). */
#define SBX_API_VERSION  "1.0.6"
#define SBX_TIME_SLACK_S 600

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
#define SBX_NAME(s) s, sizeof(s) - 1
static const struct {
        const char *name;
        size_t len;
} sbx_actions[] = {{SBX_NAME("start")},
                   {SBX_NAME("stop")},
                   {SBX_NAME("track")},
                   {SBX_NAME("advance")},
                   {SBX_NAME("pauseSession")},
                   {SBX_NAME("resumeSession")},
                   {SBX_NAME("pauseState")},
                   {SBX_NAME("resumeState")},
                   {SBX_NAME("heartbeat")},
                   {SBX_NAME("setUserAttributes")},
                   {SBX_NAME("setDeviceAttributes")},
                   {SBX_NAME("setTrafficSourceInfo")}};

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
        double skip_rate;      /* share of actions answered as skipped */
        double warn_rate;      /* share answered with a "skipped" warning */
        long user_not_found;   /* CreateNever actions of unseen users warn */
        long start_vars_bytes; /* padding of a start's answer ("vars") */
        const char *start_vars_user; /* ... of this user's starts only */
        long seed;
        double p[SBX_F_COUNT];
        long retry_after;
        long slow_ms;
        long delay_ms;
        double p_reset;          /* --preset */
        const char *fail_window; /* --fail-window START_MS:DURATION_MS:STATUS */
        long help;
};

struct sbx_stats {
        uint64_t requests;
        uint64_t by_status[SBX_MAX_STATUS];
        uint64_t dropped;
        uint64_t actions_accepted;
        uint64_t actions_failed;
        uint64_t actions_warned;
        uint64_t actions_skipped;
        uint64_t max_users_seen;
        uint64_t max_actions_seen;
        uint64_t user_overlap;
        uint64_t limit_violations;
        uint64_t rule_violations; /* query, Content-Type, apiVersion, time */
        uint64_t faults[SBX_F_COUNT];
        uint64_t inflight;
        uint64_t max_inflight;
        uint64_t resets;         /* --preset: closed after the body */
        uint64_t window_refused; /* --fail-window: refused */
};

/* A user of an app: its identity's bytes live in a request (its body or its
 * decoded identities) for as long as the entry is in a set. */
struct sbx_user {
        const struct sbx_app *app;
        const char *id; /* NULL: an empty slot */
        size_t len;
        uint64_t hash; /* of the identity */
};

/* A set of users: open addressing, linear probing, at most half full. */
struct sbx_set {
        struct sbx_user *slot;
        size_t cap; /* 0 or a power of two */
        size_t n;
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
        struct sbx_set busy; /* the users of in-flight requests */
        /* --user-not-found: users an action was applied for (own copies
         * of their identities). */
        struct sbx_set known;
        bool stopping;
        struct sbx_stats st;
        double started_ms;           /* --fail-window counts from here */
        long fw_start_ms, fw_len_ms; /* --fail-window; fw_len_ms 0: none */
        unsigned fw_status;
};

/* One HTTP request to /api, kept in MHD's con_cls between calls. */
struct sbx_request {
        char *body;
        size_t len;
        size_t cap;
        bool too_big;
        bool answered;
        uint64_t seq;
        double start_ms; /* its headers arrived: the client had sent it */
        double recv_ms;  /* its whole body had */
};

/* A growable byte buffer; allocation failure aborts (a test tool). */
struct sbx_buf {
        char *p;
        size_t len;
        size_t cap;
};

/* The answer to one action; the order is that of the checks. */
enum sbx_answer {
        SBX_A_OK,
        SBX_A_NOT_OBJECT,
        SBX_A_NOT_FOUND,
        SBX_A_NO_ID,
        SBX_A_ID_TOO_LONG,
        SBX_A_FAIL_EVENT,
        SBX_A_WARN_EVENT,
        /* Decided when answering, not when reading (not applied): */
        SBX_A_SKIP_RATE,
        SBX_A_WARN_RATE,
        SBX_A_USER_NOT_FOUND
};

/* One element of "data", read once: where it is, whose it is, its answer. */
struct sbx_action {
        size_t off, len; /* the element in the body */
        const char *id;  /* identity (see struct sbx_user), or NULL */
        size_t id_len;
        enum sbx_answer answer;
        lb_json_value_t event; /* in the body; for the event answers */
        bool create_never;     /* stop, pauseSession, resumeSession, advance */
        bool start;            /* answered with the user's variables */
};

/* A multi request: what the checks have read of it so far. */
struct sbx_multi {
        const char *body; /* the request's body */
        size_t len;
        lb_json_value_t app_id; /* a string once read */
        const struct sbx_app *app;
        lb_json_value_t data;    /* the array */
        struct sbx_action *acts; /* the first --max-actions elements */
        size_t n_actions;        /* all elements */
        struct sbx_set users;    /* the distinct identities */
        char *ids;               /* decoded identities that had escapes */
        size_t ids_len;
};

/* What the request gets back, and what is recorded about it. */
struct sbx_reply {
        unsigned status;
        struct sbx_buf body;
        const char *error; /* static message for the request log */
        long retry_after;  /* seconds; 0 = no header */
        const char *allow; /* Allow header for 405 */
        enum sbx_fault fault;
        bool rule;  /* refused for breaking the request's form (rules) */
        bool cut;   /* send part of the body, then close */
        bool reset; /* the connection was closed after the body: no answer */
        size_t accepted;
        size_t failed;
        size_t warned;
        size_t skipped;
};

/* ---- small helpers ---------------------------------------------------- */

static void sbx_oom(void)
{
        fputs("leanbridge-sandbox: out of memory\n", stderr);
        abort();
}

/* Makes room for @p n more bytes (and the NUL after them). */
static void sbx_buf_reserve(struct sbx_buf *b, size_t n)
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
}

static void sbx_buf_add(struct sbx_buf *b, const char *s, size_t n)
{
        sbx_buf_reserve(b, n);
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

/* Appends the JSON text s[0..n) on one line: in valid JSON a CR or LF byte
 * can only be whitespace, so it becomes a space. */
static void sbx_buf_add_line(struct sbx_buf *b, const char *s, size_t n)
{
        size_t start = b->len;

        sbx_buf_add(b, s, n);
        for (size_t i = start; i < b->len; i++)
                if (b->p[i] == '\n' || b->p[i] == '\r')
                        b->p[i] = ' ';
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

/* Appends the UTF-8 text s[0..n) escaped as jansson's dump escapes it:
 * '"', '\\' and control characters; everything else as it is. */
static void sbx_buf_esc(struct sbx_buf *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t run = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                char e[6] = {'\\', 0, '0', '0', 0, 0};
                size_t elen = 2;

                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                sbx_buf_add(b, s + run, i - run);
                run = i + 1;
                switch (c) {
                case '"':
                case '\\':
                        e[1] = (char)c;
                        break;
                case '\b':
                        e[1] = 'b';
                        break;
                case '\f':
                        e[1] = 'f';
                        break;
                case '\n':
                        e[1] = 'n';
                        break;
                case '\r':
                        e[1] = 'r';
                        break;
                case '\t':
                        e[1] = 't';
                        break;
                default:
                        e[1] = 'u';
                        e[4] = hex[c >> 4];
                        e[5] = hex[c & 15];
                        elen = 6;
                }
                sbx_buf_add(b, e, elen);
        }
        sbx_buf_add(b, s + run, n - run);
}

/* Appends s[0..n) as a JSON string. */
static void sbx_buf_jstrn(struct sbx_buf *b, const char *s, size_t n)
{
        sbx_buf_add(b, "\"", 1);
        sbx_buf_esc(b, s, n);
        sbx_buf_add(b, "\"", 1);
}

/* Appends @p s as a JSON string, or null. */
static void sbx_buf_jstr(struct sbx_buf *b, const char *s)
{
        if (s)
                sbx_buf_jstrn(b, s, strlen(s));
        else
                sbx_buf_str(b, "null");
}

static double sbx_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t sbx_utf8_chars(const char *s, size_t len)
{
        size_t n = 0;

        for (size_t i = 0; i < len; i++)
                if (((unsigned char)s[i] & 0xC0) != 0x80)
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

/* ---- sets of users ----------------------------------------------------- */

/* FNV-1a. */
static uint64_t sbx_hash(const char *s, size_t n)
{
        uint64_t h = 0xCBF29CE484222325ULL;

        for (size_t i = 0; i < n; i++)
                h = (h ^ (unsigned char)s[i]) * 0x100000001B3ULL;
        return h;
}

/* @returns the slot that holds @p u, or the empty one where it would go. */
static struct sbx_user *sbx_set_slot(const struct sbx_set *s,
                                     const struct sbx_user *u)
{
        size_t mask = s->cap - 1;

        for (size_t i = u->hash & mask;; i = (i + 1) & mask) {
                struct sbx_user *e = &s->slot[i];
                if (!e->id ||
                    (e->hash == u->hash && e->app == u->app &&
                     e->len == u->len && memcmp(e->id, u->id, u->len) == 0))
                        return e;
        }
}

static bool sbx_set_has(const struct sbx_set *s, const struct sbx_user *u)
{
        return s->n && sbx_set_slot(s, u)->id;
}

/* Adds @p u unless it is in already. */
static void sbx_set_add(struct sbx_set *s, const struct sbx_user *u)
{
        struct sbx_user *e;

        if (2 * (s->n + 1) > s->cap) {
                struct sbx_set big = {.cap = s->cap ? 2 * s->cap : 64,
                                      .n = s->n};
                big.slot = calloc(big.cap, sizeof(*big.slot));
                if (!big.slot)
                        sbx_oom();
                for (size_t i = 0; i < s->cap; i++)
                        if (s->slot[i].id)
                                *sbx_set_slot(&big, &s->slot[i]) = s->slot[i];
                free(s->slot);
                *s = big;
        }
        e = sbx_set_slot(s, u);
        if (!e->id) {
                *e = *u;
                s->n++;
        }
}

/* Removes @p u, which is in: the entries after it in its run move up. */
static void sbx_set_del(struct sbx_set *s, const struct sbx_user *u)
{
        size_t mask = s->cap - 1;
        size_t hole = (size_t)(sbx_set_slot(s, u) - s->slot);

        for (size_t i = (hole + 1) & mask; s->slot[i].id; i = (i + 1) & mask) {
                size_t home = s->slot[i].hash & mask;
                /* Unless its home lies in (hole, i], it may fill the hole. */
                if (((i - home) & mask) >= ((i - hole) & mask)) {
                        s->slot[hole] = s->slot[i];
                        hole = i;
                }
        }
        s->slot[hole].id = NULL;
        s->n--;
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
        o = json_pack("{sI sO sI sI sI sI sI sI sI sI sO sI sI}", "requests",
                      (json_int_t)s->requests, "by_status", by_status,
                      "actions_accepted", (json_int_t)s->actions_accepted,
                      "actions_failed", (json_int_t)s->actions_failed,
                      "actions_warned", (json_int_t)s->actions_warned,
                      "actions_skipped", (json_int_t)s->actions_skipped,
                      "max_users_seen", (json_int_t)s->max_users_seen,
                      "max_actions_seen", (json_int_t)s->max_actions_seen,
                      "user_overlap", (json_int_t)s->user_overlap,
                      "limit_violations", (json_int_t)s->limit_violations,
                      "faults", faults, "inflight", (json_int_t)s->inflight,
                      "max_inflight", (json_int_t)s->max_inflight);
        json_object_set_new(o, "resets", json_integer((json_int_t)s->resets));
        json_object_set_new(o, "rule_violations",
                            json_integer((json_int_t)s->rule_violations));
        json_object_set_new(o, "window_refused",
                            json_integer((json_int_t)s->window_refused));
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

/* A member the sandbox reads, its value to be filled. */
#define SBX_FIELD(s) ((lb_json_field_t){.name = s, .name_len = sizeof(s) - 1})

static bool sbx_is_ws(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t sbx_skip_ws(const char *b, size_t i)
{
        while (sbx_is_ws(b[i]))
                i++;
        return i;
}

/* A byte of a number or of true, false, null. */
static bool sbx_is_word(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' ||
               c == '+' || c == '.' || c == 'E';
}

/*
 * The walks below take a body that passed lb_json_scan and check nothing:
 * brackets pair up, strings close, every ':' and ',' is in place and no
 * object repeats a key.
 */

/* @returns the end of the value that starts at b[i]. */
static size_t sbx_value_end(const char *b, size_t i)
{
        size_t depth = 0;

        do {
                switch (b[i++]) {
                case '"':
                        for (; b[i] != '"'; i++)
                                i += b[i] == '\\';
                        i++;
                        break;
                case '{':
                case '[':
                        depth++;
                        break;
                case '}':
                case ']':
                        depth--;
                        break;
                default:
                        if (depth == 0) /* a number or a literal */
                                while (sbx_is_word(b[i]))
                                        i++;
                }
        } while (depth);
        return i;
}

/* Reads the string that starts at b[i] (its quote) into @p v.
 * @returns the index after its closing quote. */
static size_t sbx_string_at(const char *b, size_t i, lb_json_value_t *v)
{
        bool esc = false;

        v->type = LB_JSON_STRING;
        v->off = ++i;
        for (; b[i] != '"'; i++)
                if (b[i] == '\\') {
                        esc = true;
                        i++;
                }
        v->len = i - v->off;
        v->dlen = esc ? lb_json_decoded_len(b + v->off, v->len) : v->len;
        return i + 1;
}

/* @returns the value of the field of @p f that @p key names, or NULL. */
static lb_json_value_t *sbx_field(const char *b, const lb_json_value_t *key,
                                  lb_json_field_t *f, size_t n)
{
        for (size_t k = 0; k < n; k++)
                if (lb_json_string_eq(b, key, f[k].name, f[k].name_len))
                        return &f[k].value;
        return NULL;
}

/* Walks the object that starts at b[i] (its '{'): its members named in
 * @p f whose values are strings fill their fields. @returns the index after
 * its '}'. */
static size_t sbx_walk_object(const char *b, size_t i, lb_json_field_t *f,
                              size_t n)
{
        lb_json_value_t v, *slot = NULL; /* slot: a named member's value */
        size_t depth = 0;
        bool key = false; /* a string here is a member's name */

        do {
                switch (b[i++]) {
                case '{':
                case '[':
                        key = ++depth == 1;
                        slot = NULL;
                        break;
                case '}':
                case ']':
                        depth--;
                        break;
                case ',':
                        key = depth == 1;
                        break;
                case ':':
                        break;
                case '"':
                        i = sbx_string_at(b, i - 1, &v);
                        if (key && depth == 1) {
                                key = false;
                                slot = sbx_field(b, &v, f, n);
                        } else if (slot) {
                                *slot = v;
                                slot = NULL;
                        }
                        break;
                case ' ':
                case '\t':
                case '\n':
                case '\r':
                        i = sbx_skip_ws(b, i);
                        break;
                default: /* a number, true, false or null */
                        slot = NULL;
                        while (sbx_is_word(b[i]))
                                i++;
                }
        } while (depth);
        return i;
}

static const struct sbx_app *
sbx_find_app(const struct sbx *sb, const char *body, const lb_json_value_t *id)
{
        for (size_t i = 0; i < sb->n_apps; i++)
                if (lb_json_string_eq(body, id, sb->apps[i].id,
                                      strlen(sb->apps[i].id)))
                        return &sb->apps[i];
        return NULL;
}

/* 400 for a body jansson refuses (never the common case): jansson's own
 * message, or the scanner's where jansson accepted what it refuses. */
static void sbx_reply_invalid(struct sbx_reply *r, const char *body, size_t len,
                              const lb_json_result_t *res)
{
        json_error_t err;
        json_t *j = json_loadb(body, len, 0, &err);

        sbx_reply_errorf(r, 400, "Invalid JSON", "Invalid JSON: %s",
                         j ? res->err_text : err.text);
        json_decref(j);
}

/* Checks the top-level fields; fills @p m or answers the error in @p r. */
static bool sbx_parse_multi(const struct sbx *sb, const struct sbx_request *rq,
                            struct sbx_multi *m, struct sbx_reply *r)
{
        enum { F_APP, F_KEY, F_VERSION, F_TIME, F_DATA, F_COUNT };
        lb_json_field_t f[F_COUNT] = {
            [F_APP] = SBX_FIELD("appId"),
            [F_KEY] = SBX_FIELD("clientKey"),
            [F_VERSION] = SBX_FIELD("apiVersion"),
            [F_TIME] = SBX_FIELD("time"),
            [F_DATA] = SBX_FIELD("data"),
        };
        lb_json_type_t when;
        lb_json_result_t res;

        m->body = rq->body ? rq->body : "";
        m->len = rq->len;
        if (lb_json_scan(m->body, m->len, f, F_COUNT, &res) != 0 ||
            (res.type != LB_JSON_OBJECT && res.type != LB_JSON_ARRAY)) {
                sbx_reply_invalid(r, m->body, m->len, &res);
                return false;
        }
        if (res.type != LB_JSON_OBJECT) {
                sbx_reply_error(r, 400, "Request body must be a JSON object");
                return false;
        }
        if (f[F_APP].value.type != LB_JSON_STRING) {
                sbx_reply_error(r, 400, "Missing argument appId");
                return false;
        }
        m->app_id = f[F_APP].value;
        m->app = sbx_find_app(sb, m->body, &m->app_id);
        if (!m->app) {
                sbx_reply_error(r, 400, "App not found");
                return false;
        }
        if (!lb_json_string_eq(m->body, &f[F_KEY].value, m->app->key,
                               strlen(m->app->key))) {
                sbx_reply_error(r, 403, "Invalid access key");
                return false;
        }
        if (f[F_VERSION].value.type != LB_JSON_STRING) {
                sbx_reply_error(r, 400, "Missing argument apiVersion");
                return false;
        }
        if (!lb_json_string_eq(m->body, &f[F_VERSION].value, SBX_API_VERSION,
                               strlen(SBX_API_VERSION))) {
                sbx_reply_error(r, 400, "Unsupported apiVersion");
                r->rule = true;
                return false;
        }
        when = f[F_TIME].value.type;
        if (when != LB_JSON_INTEGER && when != LB_JSON_REAL) {
                sbx_reply_error(r, 400, "Missing or invalid argument time");
                return false;
        }
        /* the time of sending: a retry carries its own (the API uses it to
         * set the actions' times right) */
        double sent = strtod(m->body + f[F_TIME].value.off, NULL);
        if (sent < sbx_now_ms() / 1e3 - SBX_TIME_SLACK_S ||
            sent > sbx_now_ms() / 1e3 + SBX_TIME_SLACK_S) {
                sbx_reply_error(r, 400, "time is not the time of sending");
                r->rule = true;
                return false;
        }
        m->data = f[F_DATA].value;
        if (m->data.type != LB_JSON_ARRAY) {
                sbx_reply_error(r, 400, "Missing or invalid argument data");
                return false;
        }
        return true;
}

/* Makes string @p v the identity of @p a, unless it is empty. */
static bool sbx_take_id(struct sbx_multi *m, const lb_json_value_t *v,
                        struct sbx_action *a)
{
        if (v->type != LB_JSON_STRING || v->dlen == 0)
                return false;
        a->id_len = v->dlen;
        if (v->dlen == v->len) { /* no escapes: the body's bytes */
                a->id = m->body + v->off;
                return true;
        }
        /* The identities' raw bytes are apart in the body: they fit. */
        if (!m->ids && !(m->ids = malloc(m->len)))
                sbx_oom();
        a->id = m->ids + m->ids_len;
        m->ids_len += lb_json_unescape(m->body + v->off, v->len,
                                       m->ids + m->ids_len, v->dlen);
        return true;
}

static bool sbx_known_action(const char *b, const lb_json_value_t *name)
{
        for (size_t i = 0; i < sizeof(sbx_actions) / sizeof(*sbx_actions); i++)
                if (lb_json_string_eq(b, name, sbx_actions[i].name,
                                      sbx_actions[i].len))
                        return true;
        return false;
}

static bool sbx_names_has(const struct sbx_names *l, const char *b,
                          const lb_json_value_t *s)
{
        for (size_t i = 0; i < l->n; i++)
                if (lb_json_string_eq(b, s, l->v[i], strlen(l->v[i])))
                        return true;
        return false;
}

/* Reads the element at a->off: its length, identity and answer. */
static void sbx_read_action(const struct sbx_opts *o, struct sbx_multi *m,
                            struct sbx_action *a)
{
        enum { F_ACTION, F_USER, F_DEVICE, F_EVENT, F_COUNT };
        lb_json_field_t f[F_COUNT] = {
            [F_ACTION] = SBX_FIELD("action"),
            [F_USER] = SBX_FIELD("userId"),
            [F_DEVICE] = SBX_FIELD("deviceId"),
            [F_EVENT] = SBX_FIELD("event"),
        };
        const char *b = m->body;
        const lb_json_value_t *name = &f[F_ACTION].value;

        a->id = NULL;
        if (b[a->off] != '{') {
                a->len = sbx_value_end(b, a->off) - a->off;
                a->answer = SBX_A_NOT_OBJECT;
                return;
        }
        a->len = sbx_walk_object(b, a->off, f, F_COUNT) - a->off;
        if (!sbx_take_id(m, &f[F_USER].value, a))
                sbx_take_id(m, &f[F_DEVICE].value, a);
        a->event = f[F_EVENT].value;
        a->start = lb_json_string_eq(b, name, "start", 5);
        a->create_never = lb_json_string_eq(b, name, "stop", 4) ||
                          lb_json_string_eq(b, name, "pauseSession", 12) ||
                          lb_json_string_eq(b, name, "resumeSession", 13) ||
                          lb_json_string_eq(b, name, "advance", 7);
        if (!sbx_known_action(b, name))
                a->answer = SBX_A_NOT_FOUND;
        else if (!a->id)
                a->answer = SBX_A_NO_ID;
        else if (a->id_len > SBX_MAX_ID_CHARS &&
                 sbx_utf8_chars(a->id, a->id_len) > SBX_MAX_ID_CHARS)
                a->answer = SBX_A_ID_TOO_LONG;
        else if (!lb_json_string_eq(b, name, "track", 5) ||
                 a->event.type != LB_JSON_STRING)
                a->answer = SBX_A_OK;
        else if (sbx_names_has(&o->fail_events, b, &a->event))
                a->answer = SBX_A_FAIL_EVENT;
        else if (sbx_names_has(&o->warn_events, b, &a->event))
                a->answer = SBX_A_WARN_EVENT;
        else
                a->answer = SBX_A_OK;
}

/* Reads every element of data: all for the distinct users, and while
 * within --max-actions (past it the request is refused) as actions. */
static void sbx_collect(const struct sbx *sb, struct sbx_multi *m)
{
        const char *b = m->body;
        size_t i = sbx_skip_ws(b, m->data.off + 1), cap = 0;

        while (b[i] != ']') {
                struct sbx_action a = {.off = i};
                bool keep = m->n_actions < (size_t)sb->opt.max_actions;

                sbx_read_action(&sb->opt, m, &a);
                if (a.id)
                        sbx_set_add(&m->users, &(struct sbx_user){
                                                   m->app, a.id, a.id_len,
                                                   sbx_hash(a.id, a.id_len)});
                if (keep) {
                        if (m->n_actions == cap) {
                                cap = cap ? 2 * cap : 64;
                                m->acts =
                                    realloc(m->acts, cap * sizeof(*m->acts));
                                if (!m->acts)
                                        sbx_oom();
                        }
                        m->acts[m->n_actions] = a;
                }
                m->n_actions++;
                i = sbx_skip_ws(b, a.off + a.len);
                if (b[i] == ',')
                        i = sbx_skip_ws(b, i + 1);
        }
}

/* Over either limit: 403, the whole request refused. */
static bool sbx_check_limits(struct sbx *sb, const struct sbx_multi *m,
                             struct sbx_reply *r)
{
        size_t users = m->users.n;
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

/* Marks every user of @p m busy, or none if one already is. */
static bool sbx_acquire_users(struct sbx *sb, const struct sbx_multi *m)
{
        const struct sbx_set *u = &m->users;
        bool free_ = true;

        pthread_mutex_lock(&sb->lock);
        for (size_t i = 0; i < u->cap && free_; i++)
                free_ = !u->slot[i].id || !sbx_set_has(&sb->busy, &u->slot[i]);
        if (free_) {
                for (size_t i = 0; i < u->cap; i++)
                        if (u->slot[i].id)
                                sbx_set_add(&sb->busy, &u->slot[i]);
        } else {
                sb->st.user_overlap++;
        }
        pthread_mutex_unlock(&sb->lock);
        return free_;
}

static void sbx_release_users(struct sbx *sb, const struct sbx_multi *m)
{
        const struct sbx_set *u = &m->users;

        pthread_mutex_lock(&sb->lock);
        for (size_t i = 0; i < u->cap; i++)
                if (u->slot[i].id)
                        sbx_set_del(&sb->busy, &u->slot[i]);
        pthread_mutex_unlock(&sb->lock);
}

/* ---- answering actions -------------------------------------------------- */

/* SKIP (success:true + error) and WARN_SKIP (success:true + warning) are
 * received but not applied: not logged, not accepted. */
enum sbx_verdict { SBX_OK, SBX_WARN, SBX_WARN_SKIP, SBX_SKIP, SBX_FAIL };

static const struct {
        enum sbx_verdict verdict;
        const char *msg; /* the event name follows the event ones */
} sbx_answers[] = {
    [SBX_A_OK] = {SBX_OK, NULL},
    [SBX_A_NOT_OBJECT] = {SBX_FAIL, "Action must be an object"},
    [SBX_A_NOT_FOUND] = {SBX_FAIL, "Action not found"},
    [SBX_A_NO_ID] = {SBX_FAIL, "userId or deviceId required"},
    [SBX_A_ID_TOO_LONG] = {SBX_FAIL, "userId or deviceId too long"},
    [SBX_A_FAIL_EVENT] = {SBX_FAIL, "Rejected event "},
    [SBX_A_WARN_EVENT] = {SBX_WARN, "Warning for event "},
    [SBX_A_SKIP_RATE] = {SBX_SKIP, "Action skipped (injected)"},
    [SBX_A_WARN_RATE] = {SBX_WARN_SKIP,
                         "Action probably skipped (injected warning)"},
    [SBX_A_USER_NOT_FOUND] = {SBX_WARN_SKIP,
                              "User not found; request skipped."},
};

/* The answer of an action that passed every check: --skip-rate and
 * --warn-rate (one draw), else --user-not-found for a CreateNever action
 * of a user nothing was applied for yet. A user an action is applied for
 * becomes known. Its users are held, so no other request races on them. */
static enum sbx_answer sbx_decide(struct sbx *sb, const struct sbx_multi *m,
                                  const struct sbx_action *a)
{
        const struct sbx_opts *o = &sb->opt;
        if (a->answer != SBX_A_OK && a->answer != SBX_A_WARN_EVENT)
                return a->answer;
        if (o->skip_rate > 0 || o->warn_rate > 0) {
                double u = sbx_random(sb);
                if (u < o->skip_rate)
                        return SBX_A_SKIP_RATE;
                if (u < o->skip_rate + o->warn_rate)
                        return SBX_A_WARN_RATE;
        }
        if (!o->user_not_found)
                return a->answer;
        struct sbx_user u = {m->app, a->id, a->id_len,
                             sbx_hash(a->id, a->id_len)};
        enum sbx_answer ans = a->answer;
        pthread_mutex_lock(&sb->lock);
        if (!sbx_set_has(&sb->known, &u)) {
                if (a->create_never) {
                        ans = SBX_A_USER_NOT_FOUND;
                } else {
                        char *id = malloc(a->id_len ? a->id_len : 1);
                        if (!id)
                                sbx_oom();
                        memcpy(id, a->id, a->id_len);
                        u.id = id;
                        sbx_set_add(&sb->known, &u);
                }
        }
        pthread_mutex_unlock(&sb->lock);
        return ans;
}

/* Appends one response entry: {"success":..,"error"|"warning":{..}};
 * an applied start's carries "vars" of vars_bytes (the variables the API
 * returns to a session's start; 0: none). */
static enum sbx_verdict sbx_put_entry(struct sbx_buf *out, const char *body,
                                      const struct sbx_action *a,
                                      enum sbx_answer ans, size_t vars_bytes)
{
        enum sbx_verdict v = sbx_answers[ans].verdict;
        const char *msg = sbx_answers[ans].msg;

        if (v == SBX_OK && a->start && vars_bytes) {
                sbx_buf_str(out, "{\"success\":true,\"vars\":{\"pad\":\"");
                sbx_buf_reserve(out, vars_bytes + 2);
                memset(out->p + out->len, 'v', vars_bytes);
                out->len += vars_bytes;
                sbx_buf_str(out, "\"}}");
                return v;
        }
        if (v == SBX_OK) {
                sbx_buf_str(out, "{\"success\":true}");
                return v;
        }
        sbx_buf_str(out, v == SBX_WARN || v == SBX_WARN_SKIP
                             ? "{\"success\":true,\"warning\":"
                         : v == SBX_SKIP ? "{\"success\":true,\"error\":"
                                         : "{\"success\":false,\"error\":");
        sbx_buf_str(out, "{\"message\":\"");
        sbx_buf_esc(out, msg, strlen(msg));
        if (ans == SBX_A_FAIL_EVENT || ans == SBX_A_WARN_EVENT)
                /* a valid string's body is valid inside another string */
                sbx_buf_add(out, body + a->event.off, a->event.len);
        sbx_buf_str(out, "\"}}");
        return v;
}

/* The variables a start of a's user is answered with (--start-vars-*). */
static size_t sbx_vars_bytes(const struct sbx_opts *o,
                             const struct sbx_action *a)
{
        const char *who = o->start_vars_user;
        if (who && (!a->id || a->id_len != strlen(who) ||
                    memcmp(a->id, who, a->id_len) != 0))
                return 0;
        return (size_t)o->start_vars_bytes;
}

/* Answers every action in order and logs the accepted ones (one write). */
static void sbx_answer_all(struct sbx *sb, const struct sbx_request *rq,
                           const struct sbx_multi *m, struct sbx_reply *r)
{
        struct sbx_buf log = {0}, head = {0}, mid = {0};

        r->status = 200;
        r->body.len = 0;
        sbx_buf_reserve(&r->body, 32 + 24 * m->n_actions);
        sbx_buf_str(&r->body, "{\"response\":[");
        if (sb->log_fd >= 0) { /* what every line of the request repeats */
                sbx_buf_fmt(&head, "{\"req\":%llu,\"appId\":",
                            (unsigned long long)rq->seq);
                sbx_buf_jstr(&head, m->app->id);
                sbx_buf_str(&head, ",\"user\":");
                sbx_buf_fmt(&mid, ",\"recv_ms\":%.3f,\"action\":", rq->recv_ms);
                sbx_buf_reserve(&log,
                                m->data.len +
                                    m->n_actions * (head.len + mid.len + 32));
        }
        for (size_t i = 0; i < m->n_actions; i++) {
                const struct sbx_action *a = &m->acts[i];

                if (i)
                        sbx_buf_str(&r->body, ",");
                enum sbx_verdict v =
                    sbx_put_entry(&r->body, m->body, a, sbx_decide(sb, m, a),
                                  sbx_vars_bytes(&sb->opt, a));
                if (v == SBX_FAIL) {
                        r->failed++;
                        continue;
                }
                if (v == SBX_SKIP || v == SBX_WARN_SKIP) {
                        r->skipped++;
                        r->warned += v == SBX_WARN_SKIP;
                        continue;
                }
                r->accepted++;
                r->warned += v == SBX_WARN;
                if (sb->log_fd < 0)
                        continue;
                sbx_buf_add(&log, head.p, head.len);
                sbx_buf_jstrn(&log, a->id, a->id_len);
                sbx_buf_add(&log, mid.p, mid.len);
                sbx_buf_add_line(&log, m->body + a->off, a->len);
                sbx_buf_str(&log, "}\n");
        }
        sbx_buf_str(&r->body, "]}");
        if (log.len) {
                pthread_mutex_lock(&sb->log_lock);
                sbx_write_all(sb->log_fd, log.p, log.len);
                pthread_mutex_unlock(&sb->log_lock);
        }
        free(log.p);
        free(head.p);
        free(mid.p);
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

/* --preset: with that share, closes the connection as soon as the body is
 * read, with no answer, while the request goes on (its users held, then
 * applied and logged): an answer that never came while the API works on. */
static void sbx_maybe_reset(struct sbx *sb, struct sbx_reply *r, int fd)
{
        if (sb->opt.p_reset <= 0 || fd < 0 || sbx_random(sb) >= sb->opt.p_reset)
                return;
        shutdown(fd, SHUT_RDWR);
        r->reset = r->cut = true;
        pthread_mutex_lock(&sb->lock);
        sb->st.resets++;
        pthread_mutex_unlock(&sb->lock);
}

/* --fail-window: whether now is in the outage window (counted). */
static bool sbx_in_fail_window(struct sbx *sb)
{
        double t = sbx_now_ms() - sb->started_ms;
        if (!sb->fw_len_ms || t < sb->fw_start_ms ||
            t >= sb->fw_start_ms + sb->fw_len_ms)
                return false;
        pthread_mutex_lock(&sb->lock);
        sb->st.window_refused++;
        pthread_mutex_unlock(&sb->lock);
        return true;
}

/*
 * A valid request within the limits: hold its users (429 on overlap), wait
 * --delay-ms, then either answer it (logging accepted actions before the
 * users are released, so the log keeps each user's order) or inject a fault.
 * The users stay held for the whole request, a fault's sleep included, as
 * the API queues requests behind a multi call that is processing them.
 */
static void sbx_serve_multi(struct sbx *sb, const struct sbx_request *rq,
                            const struct sbx_multi *m, struct sbx_reply *r,
                            int fd)
{
        enum sbx_fault f;

        if (!sbx_acquire_users(sb, m)) {
                sbx_reply_error(r, 429, "concurrent request for user");
                return;
        }
        sbx_maybe_reset(sb, r, fd);
        sbx_sleep_ms(sb, sb->opt.delay_ms);
        if (sbx_stopping(sb)) {
                sbx_release_users(sb, m);
                sbx_reply_error(r, 503, "Shutting down");
                return;
        }
        f = sbx_pick_fault(sb);
        if (f == SBX_F_NONE || f == SBX_F_LOST)
                sbx_answer_all(sb, rq, m, r);
        if (f != SBX_F_NONE)
                sbx_apply_fault(sb, f, m, r);
        sbx_release_users(sb, m);
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
        sb->st.rule_violations += r->rule;
        sb->st.actions_accepted += r->accepted;
        sb->st.actions_failed += r->failed;
        sb->st.actions_warned += r->warned;
        sb->st.actions_skipped += r->skipped;
        pthread_mutex_unlock(&sb->lock);
        if (sb->req_log_fd < 0)
                return;
        sbx_buf_fmt(&line,
                    "{\"req\":%llu,\"appId\":", (unsigned long long)rq->seq);
        if (m->app_id.type == LB_JSON_STRING) { /* its text, quotes and all */
                sbx_buf_add(&line, m->body + m->app_id.off - 1,
                            m->app_id.len + 2);
        } else
                sbx_buf_str(&line, "null");
        sbx_buf_fmt(&line,
                    ",\"status\":%u,\"actions\":%zu,\"users\":%zu,"
                    "\"accepted\":%zu,\"start_ms\":%.3f,\"recv_ms\":%.3f,"
                    "\"reply_ms\":%.3f",
                    status, m->n_actions, m->users.n, r->accepted, rq->start_ms,
                    rq->recv_ms, sbx_now_ms());
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

/* The request's form outside its body: POST /api?action=multi with a JSON
 * body. @returns false with @p r the error when it is not. */
static bool sbx_form_ok(struct MHD_Connection *conn, struct sbx_reply *r)
{
        const char *action =
            MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "action");
        const char *type = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!action || strcmp(action, "multi") != 0)
                sbx_reply_error(r, 400, "action=multi expected in the query");
        else if (!type || strncasecmp(type, "application/json", 16) != 0)
                sbx_reply_error(r, 415,
                                "Content-Type application/json "
                                "expected");
        else
                return true;
        r->rule = true;
        return false;
}

static bool sbx_is_down(const struct sbx *sb)
{
        return sb->opt.down_file && access(sb->opt.down_file, F_OK) == 0;
}

static int sbx_conn_fd(struct MHD_Connection *conn)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        return ci ? ci->connect_fd : -1;
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
        else if (sbx_in_fail_window(sb)) {
                sbx_reply_error(&r, sb->fw_status, "Outage (injected)");
                if (sb->fw_status == 429) /* as injected 429s do */
                        r.retry_after = sb->opt.retry_after;
        } else if (rq->too_big)
                sbx_reply_error(&r, 413, "Request body too large");
        else if (!sbx_form_ok(conn, &r))
                ;
        else if (sbx_parse_multi(sb, rq, &m, &r)) {
                sbx_collect(sb, &m);
                if (sbx_check_limits(sb, &m, &r))
                        sbx_serve_multi(sb, rq, &m, &r, sbx_conn_fd(conn));
        }
        sbx_record(sb, rq, &m, &r);
        ret = r.reset ? MHD_NO : sbx_send(conn, &r);
        free(r.body.p);
        free(m.acts);
        free(m.users.slot);
        free(m.ids);
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
        rq->start_ms = sbx_now_ms();
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
     "required: APPID:KEY[,APPID:KEY...], @FILE (one per line, # "
     "comments) or env:NAME (either, from that variable)"},
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
    {"skip-rate", SBX_OT_PROB, SBX_OFF(skip_rate), 0, 0, "0", "P",
     "share of actions answered success:true + error (skipped, not applied)"},
    {"warn-rate", SBX_OT_PROB, SBX_OFF(warn_rate), 0, 0, "0", "P",
     "share answered success:true + warning (not applied)"},
    {"user-not-found", SBX_OT_LONG, SBX_OFF(user_not_found), 0, 1, "0", NULL,
     "stop/pauseSession/resumeSession/advance of a user never applied -> "
     "warning 'User not found; request skipped.'"},
    {"start-vars-bytes", SBX_OT_LONG, SBX_OFF(start_vars_bytes), 0, 1L << 30,
     "0", "BYTES",
     "an applied start's answer carries variables of BYTES (big answers)"},
    {"start-vars-user", SBX_OT_STR, SBX_OFF(start_vars_user), 0, 0, NULL, "ID",
     "only this user's starts get --start-vars-bytes"},
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
    {"preset", SBX_OT_PROB, SBX_OFF(p_reset), 0, 0, "0", "P",
     "share whose connection closes right after the body, unanswered, "
     "while the request goes on (applied)"},
    {"fail-window", SBX_OT_STR, SBX_OFF(fail_window), 0, 0, NULL,
     "START_MS:DURATION_MS:STATUS",
     "from START_MS after start, for DURATION_MS, every /api request gets "
     "STATUS (a 429 with Retry-After: --retry-after)"},
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
        if (o->skip_rate + o->warn_rate > 1.0 + 1e-9) {
                fputs("leanbridge-sandbox: --skip-rate and --warn-rate sum "
                      "to more than 1\n",
                      stderr);
                return false;
        }
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

        /* env:NAME: the spec is that variable's value, so that the keys are
         * not in the process's arguments (ps shows those to every user) */
        if (!strncmp(spec, "env:", 4)) {
                const char *v = getenv(spec + 4);
                if (!v || !*v || !strncmp(v, "env:", 4)) {
                        fprintf(stderr,
                                "leanbridge-sandbox: --apps %s: the variable "
                                "is not set\n",
                                spec);
                        return false;
                }
                spec = v;
        }
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

/* Parses --fail-window into sb. */
static bool sbx_parse_fail_window(struct sbx *sb)
{
        const char *w = sb->opt.fail_window;
        char tail;
        if (!w)
                return true;
        if (sscanf(w, "%ld:%ld:%u%c", &sb->fw_start_ms, &sb->fw_len_ms,
                   &sb->fw_status, &tail) != 3 ||
            sb->fw_start_ms < 0 || sb->fw_len_ms <= 0 || sb->fw_status < 100 ||
            sb->fw_status >= SBX_MAX_STATUS) {
                fprintf(stderr,
                        "leanbridge-sandbox: --fail-window: want "
                        "START_MS:DURATION_MS:STATUS, got %s\n",
                        w);
                return false;
        }
        return true;
}

static bool sbx_init(struct sbx *sb)
{
        pthread_condattr_t ca;

        sb->started_ms = sbx_now_ms();
        if (!sbx_parse_fail_window(sb))
                return false;

        sb->log_fd = sbx_open_log(sb->opt.log_path);
        sb->req_log_fd = sbx_open_log(sb->opt.req_log_path);
        if ((sb->opt.log_path && sb->log_fd < 0) ||
            (sb->opt.req_log_path && sb->req_log_fd < 0))
                return false;
        sb->rng = (uint64_t)sb->opt.seed;
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
        free(sb->busy.slot);
        for (size_t i = 0; i < sb->known.cap; i++)
                free((char *)sb->known.slot[i].id);
        free(sb->known.slot);
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
        bool ready = false; /* sbx_init done: locks to destroy */

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
        ready = true;
        /* A request's buffers (body, answer, log lines) reach ~100 KB and
         * live for one request: keep them in the heap, where the next one
         * reuses the pages, rather than map and fault in fresh ones. */
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 128 << 20);
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
        if (ready) {
                pthread_cond_destroy(&sb.wake);
                pthread_mutex_destroy(&sb.log_lock);
                pthread_mutex_destroy(&sb.lock);
        }
        sbx_destroy(&sb);
        return rc;
}
