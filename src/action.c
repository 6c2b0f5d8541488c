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
    [LB_STAGE_CONSUMER_ERROR] = "consumer_error",
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
            "due",        "full",   "memory",     "shutdown",
            "revocation", "urgent", "session_end"};
        if ((int)reason < 0 || reason >= LB_SEND__COUNT)
                return "unknown";
        return names[reason];
}

lb_send_reason_t lb_close_reason(lb_close_t close)
{
        return close == LB_CLOSE_URGENT ? LB_SEND_URGENT : LB_SEND_SESSION_END;
}

/* The block an action of these lengths takes: the record, the value and,
 * with a key, the key, each with a NUL. */
static size_t block_size(size_t value_len, int has_key, size_t key_len)
{
        return offsetof(lb_action_t, data) + value_len + 1 +
               (has_key ? key_len + 1 : 0);
}

/* What librdkafka 2.0.2 allocates for a header list (rdkafka_header.c):
 * the list (its struct, and an array of a pointer per header) and per
 * header one block with its name and value, each NUL-terminated, after a
 * struct of three sizes and a pointer. */
#define HEADERS_STRUCT 56
#define HEADER_STRUCT  40

static __attribute__((noinline, cold)) size_t
headers_cost(const rd_kafka_headers_t *h)
{
        size_t cnt = rd_kafka_header_cnt(h);
        size_t n = lb_malloc_cost(HEADERS_STRUCT) +
                   lb_malloc_cost(cnt * sizeof(void *));
        for (size_t i = 0; i < cnt; i++) {
                const char *name;
                const void *value;
                size_t size;
                if (rd_kafka_header_get_all(h, i, &name, &value, &size))
                        break;
                n +=
                    lb_malloc_cost(HEADER_STRUCT + strlen(name) + 1 + size + 1);
        }
        return n;
}

/* lb_action_footprint's way for every action: the kept cost is only what
 * most have. */
size_t lb_action_footprint_full(const lb_action_t *a)
{
        size_t n =
            lb_arena_cost(block_size(a->value_len, a->has_key, a->key_len));
        /* The same from consume to free: headers come before it is
         * counted; a dead letter's reason is lb_action_dead_letter_cost's.
         * Few actions have headers: their cost is a call of its own, so
         * the bridge's two calls per action stay short. */
        if (lb_action_headers(a))
                n += lb_malloc_cost(sizeof(*a->extra)) +
                     headers_cost(lb_action_headers(a));
        return n;
}

/* librdkafka 2.0.2's message struct (rd_kafka_msg_t, with its key and
 * value after it when copied), at most; and the leanbridge.* headers of
 * a dead letter (dlq.c): how many, and their name and value bytes
 * besides the reason, at most. */
#define DLQ_MSG_STRUCT   256
#define DLQ_HEADERS      10
#define DLQ_HEADER_BYTES 32

size_t lb_action_dead_letter_cost(const lb_action_t *a)
{
        const char *error = lb_action_error(a);
        const rd_kafka_headers_t *own = lb_action_headers(a);
        size_t reason = error ? strlen(error) + 1 : 0;
        size_t own_cnt = own ? rd_kafka_header_cnt(own) : 0;
        size_t n =
            lb_malloc_cost(DLQ_MSG_STRUCT + a->key_len + a->value_len) +
            lb_malloc_cost(HEADERS_STRUCT) +
            lb_malloc_cost((DLQ_HEADERS + own_cnt) * sizeof(void *)) +
            DLQ_HEADERS * lb_malloc_cost(HEADER_STRUCT + DLQ_HEADER_BYTES) +
            reason + lb_malloc_cost(reason); /* in its header, and in a */
        /* the producer's copy of a's headers; else the record that holds
         * the reason (lb_action_footprint counts it with the headers) */
        n += own ? headers_cost(own) - lb_malloc_cost(HEADERS_STRUCT) -
                       lb_malloc_cost(own_cnt * sizeof(void *))
                 : lb_malloc_cost(sizeof(*a->extra));
        return n;
}

lb_action_t *lb_action_new(lb_arena_t *arena, const void *key, size_t key_len,
                           const void *value, size_t value_len)
{
        if (key_len > LB_ACTION_DATA_MAX || value_len > LB_ACTION_DATA_MAX)
                return NULL;
        size_t cost;
        lb_action_t *a = lb_arena_alloc(
            arena, block_size(value_len, key != NULL, key_len), &cost);
        if (!a)
                return NULL;
        memset(a, 0, offsetof(lb_action_t, data));
        if (cost < (1u << 13))
                a->block_cost = (uint16_t)cost;
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

/* @returns a's extra record, made on first use; NULL out of memory. */
static lb_action_extra_t *extra(lb_action_t *a)
{
        if (!a->extra)
                a->extra = calloc(1, sizeof(*a->extra));
        return a->extra;
}

int lb_action_take_headers(lb_action_t *a, rd_kafka_headers_t *headers)
{
        if (!extra(a))
                return -1;
        a->extra->headers = headers;
        return 0;
}

void lb_action_set_error(lb_action_t *a, lb_stage_t stage, int http_status,
                         const char *message)
{
        a->stage = (uint8_t)stage;
        a->http_status = http_status > 0 && http_status <= UINT16_MAX
                             ? (uint16_t)http_status
                             : 0;
        if (!extra(a))
                return;
        free(a->extra->error);
        a->extra->error = message ? strdup(message) : NULL;
}

void lb_action_destroy(lb_action_t *a)
{
        if (!a)
                return;
        if (a->extra) {
                free(a->extra->error);
                if (a->extra->headers)
                        rd_kafka_headers_destroy(a->extra->headers);
                free(a->extra);
        }
        lb_arena_free(a, block_size(a->value_len, a->has_key, a->key_len));
}
