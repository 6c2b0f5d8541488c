/*
 * replay_filter.c: the pure part of `leanbridge replay`: option values,
 * dead-letter header reading, the replay verdict and target, the replay
 * count, and the dry run's tallies. No I/O: replay.c reads and produces.
 */
#include "replay_filter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grow.h"

void lb_replay_opts_init(lb_replay_opts_t *o)
{
        memset(o, 0, sizeof(*o));
        o->since_ms = LB_REPLAY_NO_TIME;
        o->until_ms = LB_REPLAY_NO_TIME;
        o->max_replays = -1;
}

static int opt_fail(char *errstr, size_t size, const char *name,
                    const char *why)
{
        snprintf(errstr, size, "--%s: %s", name, why);
        return -1;
}

/* A comma-separated list without empty items. */
static int list_ok(const char *s)
{
        size_t n = strlen(s);
        return n && s[0] != ',' && s[n - 1] != ',' && !strstr(s, ",,");
}

int lb_replay_opts_set(lb_replay_opts_t *o, const char *name, const char *value,
                       char *errstr, size_t errstr_size)
{
        if (!strcmp(name, "dry-run")) {
                o->dry_run = 1;
                return 0;
        }
        if (!strcmp(name, "follow")) {
                o->follow = 1;
                return 0;
        }
        if (!value)
                return opt_fail(errstr, errstr_size, name, "needs a value");
        if (!strcmp(name, "stage") || !strcmp(name, "app")) {
                if (!list_ok(value))
                        return opt_fail(errstr, errstr_size, name,
                                        "needs NAME[,NAME...]");
                *(name[0] == 's' ? &o->stage : &o->app) = value;
        } else if (!strcmp(name, "message")) {
                if (!*value)
                        return opt_fail(errstr, errstr_size, name,
                                        "needs a non-empty text");
                o->message = value;
        } else if (!strcmp(name, "since") || !strcmp(name, "until")) {
                int64_t ms;
                if (lb_replay_parse_time(value, &ms))
                        return opt_fail(errstr, errstr_size, name,
                                        "needs milliseconds since the epoch "
                                        "or an ISO 8601 time such as "
                                        "2026-11-30T18:00:00Z");
                *(name[0] == 's' ? &o->since_ms : &o->until_ms) = ms;
        } else if (!strcmp(name, "max-replays")) {
                char *end;
                errno = 0;
                long long n = strtoll(value, &end, 10);
                if (!isdigit((unsigned char)value[0]) || *end || errno || n < 1)
                        return opt_fail(errstr, errstr_size, name,
                                        "needs a whole number >= 1");
                o->max_replays = n;
        } else if (!strcmp(name, "to") || !strcmp(name, "group")) {
                if (!*value || strlen(value) > LB_TOPIC_MAX)
                        return opt_fail(errstr, errstr_size, name,
                                        "needs a name of 1 to 249 bytes");
                *(name[0] == 't' ? &o->to : &o->group) = value;
        } else {
                return opt_fail(errstr, errstr_size, name, "unknown option");
        }
        return 0;
}

int64_t lb_replay_max_replays(const lb_replay_opts_t *o)
{
        if (o->max_replays >= 0)
                return o->max_replays;
        return o->follow ? LB_REPLAY_FOLLOW_MAX_REPLAYS : -1;
}

int lb_replay_opts_check(const lb_replay_opts_t *o, const char *dlq_topic,
                         char *errstr, size_t errstr_size)
{
        if (o->since_ms != LB_REPLAY_NO_TIME &&
            o->until_ms != LB_REPLAY_NO_TIME && o->since_ms >= o->until_ms) {
                snprintf(errstr, errstr_size, "--since must be before --until");
                return -1;
        }
        if (o->dry_run && o->follow) {
                snprintf(errstr, errstr_size,
                         "--dry-run counts up to the end of the dead-letter "
                         "topic; it cannot --follow");
                return -1;
        }
        if (o->to && dlq_topic && !strcmp(o->to, dlq_topic)) {
                snprintf(errstr, errstr_size,
                         "--to must not be the dead-letter topic (%s)",
                         dlq_topic);
                return -1;
        }
        return 0;
}

/* Reads exactly n digits at *p into *v. */
static int digits(const char **p, int n, int *v)
{
        *v = 0;
        for (int i = 0; i < n; i++, (*p)++) {
                if (!isdigit((unsigned char)**p))
                        return -1;
                *v = *v * 10 + (**p - '0');
        }
        return 0;
}

static int expect(const char **p, char c)
{
        if (**p != c)
                return -1;
        (*p)++;
        return 0;
}

int lb_replay_parse_time(const char *s, int64_t *ms)
{
        const char *p = s;
        if (!*s)
                return -1;
        if (strspn(s, "0123456789") == strlen(s)) {
                if (strlen(s) > 15) /* beyond year 33000: a typo */
                        return -1;
                *ms = strtoll(s, NULL, 10);
                return 0;
        }
        struct tm tm = {0};
        int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
        if (digits(&p, 4, &y) || expect(&p, '-') || digits(&p, 2, &mo) ||
            expect(&p, '-') || digits(&p, 2, &d))
                return -1;
        if (*p) {
                if (expect(&p, 'T') || digits(&p, 2, &h) || expect(&p, ':') ||
                    digits(&p, 2, &mi))
                        return -1;
                if (*p == ':' && (expect(&p, ':') || digits(&p, 2, &sec)))
                        return -1;
                if (*p == 'Z') {
                        p++;
                } else if (*p == '+' || *p == '-') {
                        int sign = *p++ == '-' ? -1 : 1, oh, om;
                        if (digits(&p, 2, &oh) || expect(&p, ':') ||
                            digits(&p, 2, &om) || oh > 23 || om > 59)
                                return -1;
                        off = sign * (oh * 3600 + om * 60);
                } else {
                        return -1; /* a time needs its zone */
                }
                if (*p)
                        return -1;
        }
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
            sec > 59)
                return -1;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        time_t t = timegm(&tm);
        /* timegm normalises 2026-02-31 to March: refuse it. */
        if (tm.tm_mday != d || tm.tm_mon != mo - 1)
                return -1;
        *ms = ((int64_t)t - off) * 1000;
        return 0;
}

void lb_replay_record_init(lb_dlq_record_t *r, int64_t timestamp_ms)
{
        memset(r, 0, sizeof(*r));
        r->source_partition = -1;
        r->source_offset = -1;
        r->timestamp_ms = timestamp_ms;
        r->source_timestamp_ms = -1;
}

int64_t lb_replay_event_timestamp(const lb_dlq_record_t *r)
{
        return r->source_timestamp_ms >= 0 ? r->source_timestamp_ms
                                           : r->timestamp_ms;
}

/* A decimal count of at most 18 digits (no sign, no spaces). */
static int parse_count(const char *p, size_t len, int64_t *v)
{
        if (!p || !len || len > 18)
                return -1;
        int64_t n = 0;
        for (size_t i = 0; i < len; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -1;
                n = n * 10 + (p[i] - '0');
        }
        *v = n;
        return 0;
}

void lb_replay_record_header(lb_dlq_record_t *r, const char *name,
                             const void *value, size_t len)
{
        const char *v = value;
        lb_bytes_t b = {v, v ? len : 0};
        int64_t n;
        if (!strcmp(name, "leanbridge.error.stage"))
                r->stage = b;
        else if (!strcmp(name, "leanbridge.error.message"))
                r->message = b;
        else if (!strcmp(name, "leanbridge.app.id"))
                r->app = b;
        else if (!strcmp(name, "leanbridge.source.topic"))
                r->source_topic = b;
        else if (!strcmp(name, "leanbridge.source.partition"))
                r->source_partition =
                    !parse_count(v, b.len, &n) && n <= INT32_MAX ? (int32_t)n
                                                                 : -1;
        else if (!strcmp(name, "leanbridge.source.offset"))
                r->source_offset = !parse_count(v, b.len, &n) ? n : -1;
        else if (!strcmp(name, "leanbridge.source.timestamp"))
                r->source_timestamp_ms = !parse_count(v, b.len, &n) ? n : -1;
        else if (!strcmp(name, "leanbridge.value.truncated") ||
                 !strcmp(name, "leanbridge.key.truncated") ||
                 !strcmp(name, "leanbridge.headers.dropped"))
                r->cut = 1;
        else if (!strcmp(name, LB_REPLAY_HEADER)) {
                r->replayed_bad = parse_count(v, b.len, &n) != 0;
                r->replayed = r->replayed_bad ? 0 : n;
        }
}

int lb_replay_header_carried(const char *name)
{
        return strncmp(name, LB_HEADER_PREFIX, strlen(LB_HEADER_PREFIX)) != 0;
}

/* Whether bytes b equal one item of the comma-separated list. */
static int list_has(const char *list, lb_bytes_t b)
{
        if (!b.ptr)
                return 0;
        for (const char *p = list;;) {
                const char *c = strchr(p, ',');
                size_t n = c ? (size_t)(c - p) : strlen(p);
                if (n == b.len && !memcmp(p, b.ptr, n))
                        return 1;
                if (!c)
                        return 0;
                p = c + 1;
        }
}

static int contains(lb_bytes_t hay, const char *needle)
{
        return hay.ptr && memmem(hay.ptr, hay.len, needle, strlen(needle));
}

int lb_replay_target(const lb_replay_opts_t *o, const lb_dlq_record_t *r,
                     const char *dlq_topic, char *topic, int32_t *partition)
{
        if (o->to) {
                snprintf(topic, LB_TOPIC_MAX + 1, "%s", o->to);
                *partition = -1;
                return 0;
        }
        lb_bytes_t s = r->source_topic;
        if (!s.ptr || !s.len || s.len > LB_TOPIC_MAX || memchr(s.ptr, 0, s.len))
                return -1;
        memcpy(topic, s.ptr, s.len);
        topic[s.len] = '\0';
        if (dlq_topic && !strcmp(topic, dlq_topic))
                return -1; /* it would loop */
        *partition = r->source_partition;
        return 0;
}

lb_replay_verdict_t lb_replay_decide(const lb_replay_opts_t *o,
                                     const lb_dlq_record_t *r,
                                     const char *dlq_topic)
{
        if ((o->stage && !list_has(o->stage, r->stage)) ||
            (o->app && !list_has(o->app, r->app)) ||
            (o->message && !contains(r->message, o->message)))
                return LB_REPLAY_SKIP_FILTER;
        if ((o->since_ms != LB_REPLAY_NO_TIME ||
             o->until_ms != LB_REPLAY_NO_TIME) &&
            r->timestamp_ms < 0)
                return LB_REPLAY_SKIP_FILTER;
        if ((o->since_ms != LB_REPLAY_NO_TIME &&
             r->timestamp_ms < o->since_ms) ||
            (o->until_ms != LB_REPLAY_NO_TIME &&
             r->timestamp_ms >= o->until_ms))
                return LB_REPLAY_SKIP_FILTER;
        /* A count that cannot be read cannot be shown to be under the limit. */
        int64_t max = lb_replay_max_replays(o);
        if (max >= 0 && (r->replayed_bad || r->replayed >= max))
                return LB_REPLAY_SKIP_MAX_REPLAYS;
        static const char unreadable[] = "consumer_error";
        if (r->stage.len == sizeof(unreadable) - 1 &&
            !memcmp(r->stage.ptr, unreadable, r->stage.len))
                return LB_REPLAY_SKIP_UNREADABLE;
        char topic[LB_TOPIC_MAX + 1];
        int32_t partition;
        if (lb_replay_target(o, r, dlq_topic, topic, &partition))
                return LB_REPLAY_SKIP_NO_TARGET;
        return LB_REPLAY_GO;
}

size_t lb_replay_next_count(const lb_dlq_record_t *r, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%" PRId64,
                         r->replayed_bad ? 1 : r->replayed + 1);
        return n < 0 ? 0 : (size_t)n;
}

/* Compares a counted name with len bytes of name, as strcmp orders. */
static int name_cmp(const char *a, const char *b, size_t len)
{
        size_t alen = strlen(a);
        int c = memcmp(a, b, alen < len ? alen : len);
        if (c)
                return c;
        return alen < len ? -1 : alen > len;
}

int lb_tally_add(lb_tally_t *t, const char *name, size_t len)
{
        size_t lo = 0, hi = t->n;
        len = strnlen(name, len); /* a name is text: up to a NUL byte */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = name_cmp(t->v[mid].name, name, len);
                if (!c) {
                        t->v[mid].count++;
                        return 0;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        lb_tally_entry_t *v = lb_grow(t->v, &t->cap, t->n + 1, sizeof(*v), 16);
        if (!v)
                return -1;
        t->v = v;
        char *copy = malloc(len + 1);
        if (!copy)
                return -1;
        memcpy(copy, name, len);
        copy[len] = '\0';
        memmove(&t->v[lo + 1], &t->v[lo], (t->n - lo) * sizeof(*t->v));
        t->v[lo] = (lb_tally_entry_t){copy, 1};
        t->n++;
        return 0;
}

static int by_count(const void *a, const void *b)
{
        const lb_tally_entry_t *x = a, *y = b;
        if (x->count != y->count)
                return x->count > y->count ? -1 : 1;
        return strcmp(x->name, y->name);
}

void lb_tally_by_count(lb_tally_t *t)
{
        if (t->n)
                qsort(t->v, t->n, sizeof(*t->v), by_count);
}

void lb_tally_free(lb_tally_t *t)
{
        for (size_t i = 0; i < t->n; i++)
                free(t->v[i].name);
        free(t->v);
        memset(t, 0, sizeof(*t));
}
