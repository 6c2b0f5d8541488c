/*
 * event.c: the input contract. One Kafka message value -> the facts the
 * bridge routes by (app, user identity, whether "time" must be added), or a
 * rejection with its stage and reason. The value itself is never copied or
 * re-serialised: its original bytes are what the API receives, so they must
 * be exactly one JSON object (json_scan checks syntax, UTF-8, duplicate keys
 * and trailing bytes as jansson does, without building a tree). Never looks
 * at a client key except to measure it. Allocates nothing (json_scan only
 * does for objects with more than LB_JSON_KEYS_INLINE keys open at once);
 * the contract's names are prepared for the scanner once per process, and
 * the shapes of accepted events are kept by the caller (lb_json_shapes_t).
 */
#include "event.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"

/* Most bytes of an event's own text echoed into a reason. */
#define ECHO_MAX 64

size_t lb_event_body_len(size_t value_len, int time_missing)
{
        return value_len + 1 + (time_missing ? LB_EVENT_TIME_SPLICE_MAX : 0);
}

static lb_stage_t reject(lb_stage_t stage, char *errstr, size_t errstr_size,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static lb_stage_t reject(lb_stage_t stage, char *errstr, size_t errstr_size,
                         const char *fmt, ...)
{
        if (errstr && errstr_size) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(errstr, errstr_size, fmt, ap);
                va_end(ap);
        }
        return stage;
}

/* Copies up to max bytes of s into dst (max + 4 bytes) with bytes outside
 * printable ASCII replaced by '?', and "..." when cut. */
static const char *echo(char *dst, size_t max, const char *s, size_t n)
{
        size_t m = n > max ? max : n;
        for (size_t i = 0; i < m; i++)
                dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        strcpy(dst + m, n > m ? "..." : "");
        return dst;
}

/* The top-level members the contract looks at. */
enum {
        F_APP_ID,
        F_ACTION,
        F_USER_ID,
        F_DEVICE_ID,
        F_TIME,
        F_CLIENT_KEY,
        F_EVENT,
        F__CNT
};

static const lb_json_field_t contract_fields[F__CNT] = {
    [F_APP_ID] = {.name = "appId", .name_len = 5},
    [F_ACTION] = {.name = "action", .name_len = 6},
    [F_USER_ID] = {.name = "userId", .name_len = 6},
    [F_DEVICE_ID] = {.name = "deviceId", .name_len = 8},
    [F_TIME] = {.name = "time", .name_len = 4},
    [F_CLIENT_KEY] = {.name = "clientKey", .name_len = 9},
    [F_EVENT] = {.name = "event", .name_len = 5},
};

/* The names prepared once for the scanner (it compares keys with them). */
static lb_json_names_t contract;
static pthread_once_t contract_once = PTHREAD_ONCE_INIT;

static void contract_init(void)
{
        lb_json_names_init(&contract, contract_fields, F__CNT);
}

static const char *type_name(lb_json_type_t t)
{
        switch (t) {
        case LB_JSON_OBJECT:
                return "an object";
        case LB_JSON_ARRAY:
                return "an array";
        case LB_JSON_STRING:
                return "a string";
        case LB_JSON_INTEGER:
        case LB_JSON_REAL:
                return "a number";
        case LB_JSON_TRUE:
        case LB_JSON_FALSE:
                return "a boolean";
        case LB_JSON_NULL:
                return "null";
        case LB_JSON_ABSENT:
                break;
        }
        return "unknown";
}

/* Checks an optional user id field (decoded length in v->dlen). @returns 0
 * (absent), 1 (valid) or -1 (invalid, errstr set). */
static int user_field(const lb_json_value_t *v, const char *name, char *errstr,
                      size_t errstr_size)
{
        if (!v->type)
                return 0;
        if (v->type != LB_JSON_STRING) {
                reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                       "%s must be a string, not %s", name, type_name(v->type));
                return -1;
        }
        if (v->dlen == 0) {
                reject(LB_STAGE_VALIDATE, errstr, errstr_size, "%s is empty",
                       name);
                return -1;
        }
        if (v->dlen > LB_USER_ID_MAX) {
                reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                       "%s is %zu bytes, more than %d", name, v->dlen,
                       LB_USER_ID_MAX);
                return -1;
        }
        return 1;
}

/* The event as lb_policy_classify sees it: the value and its fields. */
typedef struct {
        const char *value;
        const lb_json_field_t *f;
} policy_view_t;

static int policy_field_eq(lb_match_field_t field, const char *name, size_t len,
                           void *opaque)
{
        const policy_view_t *pv = opaque;
        const lb_json_value_t *v =
            &pv->f[field == LB_MATCH_EVENT ? F_EVENT : F_ACTION].value;
        return v->type == LB_JSON_STRING && v->dlen == len &&
               lb_json_string_eq(pv->value, v, name, len);
}

static lb_stage_t validate(const lb_config_t *conf, const size_t *app_overhead,
                           const char *value, size_t len,
                           const lb_json_field_t *f, size_t members,
                           lb_event_t *out, char *errstr, size_t errstr_size)
{
        char buf[ECHO_MAX + 4];

        if (f[F_CLIENT_KEY].value.type)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "clientKey must not be in an event");

        const lb_json_value_t *v = &f[F_APP_ID].value;
        if (!v->type)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "missing appId");
        if (v->type != LB_JSON_STRING)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "appId must be a string, not %s",
                              type_name(v->type));
        /* Apps are sorted by id: an id without escapes (all of them, in
         * practice) is looked up as it is; one with escapes is compared
         * decoded with each. */
        int app = -1;
        if (v->dlen == v->len)
                app = lb_config_app_index(conf, value + v->off, v->len);
        else
                for (size_t i = 0; i < conf->app_cnt && app < 0; i++)
                        if (lb_json_string_eq(value, v, conf->apps[i].id,
                                              strlen(conf->apps[i].id)))
                                app = (int)i;
        if (app < 0) {
                char id[ECHO_MAX];
                lb_json_unescape(value + v->off, v->len, id, ECHO_MAX);
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "unknown appId '%s'",
                              echo(buf, ECHO_MAX, id, v->dlen));
        }

        v = &f[F_ACTION].value;
        if (!v->type)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "missing action");
        if (v->type != LB_JSON_STRING)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "action must be a string, not %s",
                              type_name(v->type));
        if (v->dlen == 0)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "action is empty");

        const lb_json_value_t *uid = &f[F_USER_ID].value;
        const lb_json_value_t *did = &f[F_DEVICE_ID].value;
        int has_uid = user_field(uid, "userId", errstr, errstr_size);
        if (has_uid < 0)
                return LB_STAGE_VALIDATE;
        int has_did = user_field(did, "deviceId", errstr, errstr_size);
        if (has_did < 0)
                return LB_STAGE_VALIDATE;
        if (!has_uid && !has_did)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "missing userId or deviceId");

        v = &f[F_TIME].value;
        if (v->type && v->type != LB_JSON_INTEGER && v->type != LB_JSON_REAL)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "time must be a number, not %s",
                              type_name(v->type));
        int time_missing = !v->type;
        /* A scanned number ends at a delimiter inside the object, so
         * strtod stops there, within the buffer. */
        double time_s = time_missing ? 0.0 : strtod(value + v->off, NULL);

        size_t need = lb_event_body_len(len, time_missing) + app_overhead[app];
        if (need > (uint64_t)conf->batch_max_bytes)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "event larger than batch.max.bytes (%zu bytes "
                              "with request overhead, limit %lld)",
                              need, (long long)conf->batch_max_bytes);

        const lb_json_value_t *id = has_uid ? uid : did;
        out->app = app;
        out->time_missing = time_missing;
        out->time_s = time_s;
        out->object_empty = members == 0;
        policy_view_t pv = {value, f};
        out->closes =
            lb_policy_classify(&conf->apps[app].policy, policy_field_eq, &pv);
        if (id->dlen == id->len) /* no escapes: the bytes themselves */
                memcpy(out->user, value + id->off, id->len);
        else
                lb_json_unescape(value + id->off, id->len, out->user, id->dlen);
        out->user_len = id->dlen;
        out->user[out->user_len] = '\0';
        return LB_STAGE_NONE;
}

lb_json_shapes_t *lb_event_shapes_new(void)
{
        lb_json_shapes_t *sh = malloc(sizeof(*sh));
        if (sh) {
                pthread_once(&contract_once, contract_init);
                lb_json_shapes_init(sh, &contract);
        }
        return sh;
}

lb_stage_t lb_event_parse(const lb_config_t *conf, const size_t *app_overhead,
                          lb_json_shapes_t *shapes, const char *value,
                          size_t len, lb_event_t *out, char *errstr,
                          size_t errstr_size)
{
        if (errstr && errstr_size)
                errstr[0] = '\0';
        if (!value || len == 0)
                return reject(LB_STAGE_PARSE, errstr, errstr_size,
                              "empty value");
        /* Cheapest possible encoding first: no parse for what cannot fit. */
        if (conf->batch_max_bytes <= 0 ||
            lb_event_body_len(len, 0) > (uint64_t)conf->batch_max_bytes)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "event larger than batch.max.bytes (%zu bytes, "
                              "limit %lld)",
                              len, (long long)conf->batch_max_bytes);

        lb_json_field_t f[F__CNT]; /* values only: names in contract */
        lb_json_result_t res;
        if (!shapes) /* shapes hold the contract's names, prepared */
                pthread_once(&contract_once, contract_init);
        /* The reason is jansson's message without its " near '<token>'"
         * tail: the token could be anything from the event (even a secret);
         * the byte position and the DLQ copy of the value locate it. */
        if (shapes ? lb_json_scan_shaped(value, len, shapes, f, &res)
                   : lb_json_scan_names(value, len, &contract, f, &res))
                return reject(LB_STAGE_PARSE, errstr, errstr_size,
                              "invalid JSON at byte %zu: %s", res.err_pos,
                              res.err_text);
        if (res.type != LB_JSON_OBJECT)
                return reject(LB_STAGE_PARSE, errstr, errstr_size,
                              "not a JSON object (%s)", type_name(res.type));
        return validate(conf, app_overhead, value, len, f, res.members, out,
                        errstr, errstr_size);
}

int lb_event_time(const char *value, size_t len, double *time_s)
{
        lb_json_field_t f = {.name = "time", .name_len = 4};
        lb_json_result_t res;
        if (!value || !len || lb_json_scan(value, len, &f, 1, &res) ||
            res.type != LB_JSON_OBJECT ||
            (f.value.type != LB_JSON_INTEGER && f.value.type != LB_JSON_REAL))
                return -1;
        /* Ends at a delimiter inside the object: strtod stops there. */
        *time_s = strtod(value + f.value.off, NULL);
        return 0;
}

int lb_event_too_old(int has_time, double time_s, int64_t timestamp_ms,
                     int64_t now_ms, int64_t max_age_ms, char *errstr,
                     size_t errstr_size)
{
        if (max_age_ms <= 0)
                return 0;
        double at_ms;
        const char *by = "time";
        if (has_time && isfinite(time_s)) {
                at_ms = time_s * 1000.0;
        } else if (timestamp_ms > 0) {
                at_ms = (double)timestamp_ms;
                by = "Kafka timestamp";
        } else {
                return 0;
        }
        double age_ms = (double)now_ms - at_ms;
        if (!(age_ms > (double)max_age_ms))
                return 0;
        reject(LB_STAGE_TOO_OLD, errstr, errstr_size,
               "event %.0f s old (by its %s), more than input.max.age.ms "
               "(%lld ms)",
               age_ms / 1000.0, by, (long long)max_age_ms);
        return 1;
}
