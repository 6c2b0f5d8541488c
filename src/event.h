/*
 * event.h: one Kafka message value -> a validated action, or a rejection
 * with its stage (parse | validate) and a reason. Pure: no I/O, no globals.
 */
#ifndef LB_EVENT_H
#define LB_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"
#include "config.h"
#include "json_scan.h"

typedef struct {
        int app;           /* index into conf->apps */
        int time_missing;  /* no "time" field: the bridge adds one */
        double time_s;     /* the "time" field (UNIX seconds) unless missing */
        int object_empty;  /* the value is an empty object */
        lb_close_t closes; /* its app's policy: urgent, a session's end */
        size_t user_len;   /* bytes in user[] (without the NUL) */
        /* The identity for limits and ordering: userId, or deviceId when
         * there is no userId, as the API takes a deviceId alone for the
         * user's id (so userId "X" and a deviceId-only "X" are one user
         * to it, and must never be in two requests at once). NUL-ended. */
        char user[LB_USER_ID_MAX + 1];
} lb_event_t;

/**
 * @brief Parses and validates one message value against the input contract:
 *        a JSON object (no duplicate keys, valid UTF-8) with string appId
 *        known to conf, non-empty string action, userId or deviceId a
 *        non-empty string of at most LB_USER_ID_MAX bytes, optional numeric
 *        time, no clientKey; the encoded action must fit a request of
 *        conf->batch_max_bytes given the app's request overhead,
 *        app_overhead[app] (lb_multi_overhead() of each app of conf, worked
 *        out once by the caller: it does not change per event).
 *
 *        The value is forwarded as its original bytes, so it must be exactly
 *        one JSON object: trailing bytes, raw NUL bytes and "\u0000" escapes
 *        are parse errors, as are integers or reals that overflow, and
 *        nesting deeper than jansson's JSON_PARSER_MAX_DEPTH.
 *        out->closes says what the event does to its user's window by its
 *        app's policy (conf->apps[app].policy): its action, or a string
 *        "event" field, named there. A value that
 *        could not fit batch.max.bytes whatever its app is rejected (stage
 *        validate) before it is parsed, so oversized input costs no parse.
 *        Values echoed in errstr are cut to 64 bytes and made printable.
 *        shapes (lb_event_shapes_new, or NULL) only makes it faster.
 * @returns LB_STAGE_NONE on success (out filled), else LB_STAGE_PARSE or
 *          LB_STAGE_VALIDATE with a one-line reason in errstr.
 */
lb_stage_t lb_event_parse(const lb_config_t *conf, const size_t *app_overhead,
                          lb_json_shapes_t *shapes, const char *value,
                          size_t len, lb_event_t *out, char *errstr,
                          size_t errstr_size);

/**
 * @brief The shapes lb_event_parse learns from the events it has accepted
 *        (json_scan.h, lb_json_shapes_t), so that it checks the next ones
 *        of a known shape with fewer instructions; the result is the same
 *        with them or without them (shapes NULL). One per thread that
 *        parses; free() it.
 * @returns them, or NULL when out of memory.
 */
lb_json_shapes_t *lb_event_shapes_new(void);

/**
 * @brief The "time" member of a value that is one JSON object (UNIX
 *        seconds, as the API reads it). Scans only; for a value the bridge
 *        did not parse, such as a dead letter's.
 * @returns 0 with *time_s set, or -1 (not an object, no numeric time).
 */
int lb_event_time(const char *value, size_t len, double *time_s);

/**
 * @brief The age bound (input.max.age.ms): whether an action is older than
 *        max_age_ms at now_ms, by its own time (UNIX seconds, has_time) or
 *        else its Kafka timestamp (ms; <= 0: unknown, never too old). A
 *        time in the future is not old. max_age_ms <= 0 is no bound.
 * @returns 1 (too old: a one-line reason in errstr, which may be NULL) or 0.
 */
int lb_event_too_old(int has_time, double time_s, int64_t timestamp_ms,
                     int64_t now_ms, int64_t max_age_ms, char *errstr,
                     size_t errstr_size);

/** Upper bound of the bytes lb_multi adds to an action whose time is
 *  missing: ',"time":' plus a number. */
#define LB_EVENT_TIME_SPLICE_MAX 40

/**
 * @returns the upper bound of an action's encoded size in "data":
 *          value_len, plus one byte for the comma that separates it from
 *          the previous action, plus LB_EVENT_TIME_SPLICE_MAX when
 *          time_missing. A request's size is bounded by
 *          lb_multi_overhead() + the sum of its actions' body_len.
 */
size_t lb_event_body_len(size_t value_len, int time_missing);

#endif
