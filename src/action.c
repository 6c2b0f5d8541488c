/*
 * action.c: allocation of action records, their footprint, and stage names.
 * The record's key and value live in the same allocation as the record; the
 * message's headers (librdkafka's, detached from the message) are its own
 * and freed with it.
 */
#include "action.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "offsets.h"

static const char *const stage_names[LB_STAGE__COUNT] = {
    [LB_STAGE_NONE] = "none",
    [LB_STAGE_PARSE] = "parse",
    [LB_STAGE_VALIDATE] = "validate",
    [LB_STAGE_API] = "api",
    [LB_STAGE_HTTP] = "http",
    [LB_STAGE_RETRIES_EXHAUSTED] = "retries_exhausted",
    [LB_STAGE_API_SKIPPED] = "api_skipped",
    [LB_STAGE_API_WARNING] = "api_warning",
    [LB_STAGE_TOO_OLD] = "too_old",
};

const char *lb_stage_name(lb_stage_t stage)
{
        if ((int)stage < 0 || stage >= LB_STAGE__COUNT)
                return "unknown";
        return stage_names[stage];
}

const char *lb_send_reason_name(lb_send_reason_t reason)
{
        static const char *const names[LB_SEND__COUNT] = {
            "due", "full", "memory", "shutdown", "revocation"};
        if ((int)reason < 0 || reason >= LB_SEND__COUNT)
                return "unknown";
        return names[reason];
}

/* An estimate of a header list's cost in librdkafka: its list, and per
 * header a struct with the name and value next to it. */
#define HEADERS_BASE 64
#define HEADER_EACH  64

size_t lb_action_footprint(const lb_action_t *a)
{
        size_t n = offsetof(lb_action_t, data) + a->value_len + 1 +
                   (a->has_key ? a->key_len + 1 : 0);
        n = (n + 7) & ~(size_t)7; /* the arena's alignment */
        n += LB_PARTITION_ENTRY_BYTES;
        if (a->headers)
                n += HEADERS_BASE +
                     HEADER_EACH * rd_kafka_header_cnt(a->headers);
        return n;
}

lb_action_t *lb_action_new(lb_arena_t *arena, const void *key, size_t key_len,
                           const void *value, size_t value_len)
{
        if (key_len > LB_ACTION_DATA_MAX || value_len > LB_ACTION_DATA_MAX)
                return NULL;
        size_t klen = key ? key_len + 1 : 0;
        lb_action_t *a = lb_arena_alloc(arena, offsetof(lb_action_t, data) +
                                                   value_len + 1 + klen);
        if (!a)
                return NULL;
        memset(a, 0, offsetof(lb_action_t, data));
        a->value_len = (uint32_t)value_len;
        if (value_len)
                memcpy(a->data, value, value_len);
        a->data[value_len] = '\0';
        if (key) {
                char *k = a->data + value_len + 1;
                a->has_key = 1;
                a->key_len = (uint32_t)key_len;
                if (key_len)
                        memcpy(k, key, key_len);
                k[key_len] = '\0';
        }
        return a;
}

void lb_action_set_error(lb_action_t *a, lb_stage_t stage, int http_status,
                         const char *message)
{
        a->stage = (uint8_t)stage;
        a->http_status = http_status > 0 && http_status <= UINT16_MAX
                             ? (uint16_t)http_status
                             : 0;
        free(a->error);
        a->error = message ? strdup(message) : NULL;
}

void lb_action_destroy(lb_action_t *a)
{
        if (!a)
                return;
        free(a->error);
        if (a->headers)
                rd_kafka_headers_destroy(a->headers);
        lb_arena_free(a);
}
