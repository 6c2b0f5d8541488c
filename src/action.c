/*
 * action.c: allocation of action records and stage names. The record's key
 * and value live in the same allocation as the record; its copy of the
 * message's headers (librdkafka's) is its own and freed with it.
 */
#include "action.h"

#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>

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

lb_action_t *lb_action_new(const void *key, size_t key_len, const void *value,
                           size_t value_len)
{
        size_t klen = key ? key_len : 0;
        lb_action_t *a = malloc(sizeof(*a) + klen + value_len + 2);
        if (!a)
                return NULL;
        memset(a, 0, sizeof(*a));
        char *p = (char *)(a + 1);
        a->value = p;
        a->value_len = value_len;
        if (value_len)
                memcpy(p, value, value_len);
        p[value_len] = '\0';
        if (key) {
                a->key = p + value_len + 1;
                a->key_len = klen;
                if (klen)
                        memcpy(a->key, key, klen);
                a->key[klen] = '\0';
        }
        return a;
}

void lb_action_set_error(lb_action_t *a, lb_stage_t stage, int http_status,
                         const char *message)
{
        a->stage = stage;
        a->http_status = http_status;
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
        free(a);
}
