/*
 * event.c: the input contract. One Kafka message value -> the facts the
 * bridge routes by (app, user identity, whether "time" must be added), or a
 * rejection with its stage and reason. The value itself is never copied or
 * re-serialised: its original bytes are what the API receives, so they must
 * be exactly one JSON object (jansson checks syntax, UTF-8, duplicate keys
 * and trailing bytes). Never looks at a client key except to measure it.
 */
#include "event.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "multi.h"

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

static const char *type_name(const json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
        case JSON_REAL:
                return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "unknown";
}

/* Checks an optional user id field. @returns 0 (absent), 1 (valid, *s and
 * *n set) or -1 (invalid, errstr set). */
static int user_field(json_t *obj, const char *name, const char **s, size_t *n,
                      char *errstr, size_t errstr_size)
{
        json_t *v = json_object_get(obj, name);
        if (!v)
                return 0;
        if (!json_is_string(v)) {
                reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                       "%s must be a string, not %s", name, type_name(v));
                return -1;
        }
        *n = json_string_length(v);
        if (*n == 0) {
                reject(LB_STAGE_VALIDATE, errstr, errstr_size, "%s is empty",
                       name);
                return -1;
        }
        if (*n > LB_USER_ID_MAX) {
                reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                       "%s is %zu bytes, more than %d", name, *n,
                       LB_USER_ID_MAX);
                return -1;
        }
        *s = json_string_value(v);
        return 1;
}

static lb_stage_t validate(const lb_config_t *conf, json_t *obj, size_t len,
                           lb_event_t *out, char *errstr, size_t errstr_size)
{
        char buf[ECHO_MAX + 4];
        json_t *v;

        if (json_object_get(obj, "clientKey"))
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "clientKey must not be in an event");

        v = json_object_get(obj, "appId");
        if (!v)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "missing appId");
        if (!json_is_string(v))
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "appId must be a string, not %s", type_name(v));
        const char *app_id = json_string_value(v);
        size_t app_len = json_string_length(v);
        int app = -1;
        /* app_id holds no NUL (jansson refuses \u0000), so strncmp stops
         * at the end of the shorter id. */
        for (size_t i = 0; i < conf->app_cnt && app < 0; i++)
                if (strncmp(conf->apps[i].id, app_id, app_len) == 0 &&
                    conf->apps[i].id[app_len] == '\0')
                        app = (int)i;
        if (app < 0)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "unknown appId '%s'",
                              echo(buf, ECHO_MAX, app_id, app_len));

        v = json_object_get(obj, "action");
        if (!v)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "missing action");
        if (!json_is_string(v))
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "action must be a string, not %s", type_name(v));
        if (json_string_length(v) == 0)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "action is empty");

        const char *uid = NULL, *did = NULL;
        size_t uid_len = 0, did_len = 0;
        int has_uid =
            user_field(obj, "userId", &uid, &uid_len, errstr, errstr_size);
        if (has_uid < 0)
                return LB_STAGE_VALIDATE;
        int has_did =
            user_field(obj, "deviceId", &did, &did_len, errstr, errstr_size);
        if (has_did < 0)
                return LB_STAGE_VALIDATE;
        if (!has_uid && !has_did)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "missing userId or deviceId");

        v = json_object_get(obj, "time");
        if (v && !json_is_number(v))
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "time must be a number, not %s", type_name(v));

        const lb_app_t *a = &conf->apps[app];
        size_t need =
            lb_event_body_len(len, v == NULL) +
            lb_multi_overhead(a->id, a->client_key, conf->api_version);
        if (need > (uint64_t)conf->batch_max_bytes)
                return reject(LB_STAGE_VALIDATE, errstr, errstr_size,
                              "event larger than batch.max.bytes (%zu bytes "
                              "with request overhead, limit %lld)",
                              need, (long long)conf->batch_max_bytes);

        out->app = app;
        out->time_missing = v == NULL;
        out->object_empty = json_object_size(obj) == 0;
        out->user[0] = has_uid ? 'u' : 'd';
        out->user_len = 1 + (has_uid ? uid_len : did_len);
        memcpy(out->user + 1, has_uid ? uid : did, out->user_len - 1);
        out->user[out->user_len] = '\0';
        return LB_STAGE_NONE;
}

lb_stage_t lb_event_parse(const lb_config_t *conf, const char *value,
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

        json_error_t jerr;
        json_t *root = json_loadb(
            value, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!root) {
                /* jansson's message without its " near '<token>'" tail: the
                 * token could be anything from the event (even a secret); the
                 * byte position and the DLQ copy of the value locate it. */
                char text[sizeof(jerr.text) + 4];
                const char *near = strstr(jerr.text, " near ");
                size_t n =
                    near ? (size_t)(near - jerr.text) : strlen(jerr.text);
                return reject(LB_STAGE_PARSE, errstr, errstr_size,
                              "invalid JSON at byte %d: %s", jerr.position,
                              echo(text, sizeof(jerr.text), jerr.text, n));
        }
        lb_stage_t stage;
        if (!json_is_object(root))
                stage = reject(LB_STAGE_PARSE, errstr, errstr_size,
                               "not a JSON object (%s)", type_name(root));
        else
                stage = validate(conf, root, len, out, errstr, errstr_size);
        json_decref(root);
        return stage;
}
