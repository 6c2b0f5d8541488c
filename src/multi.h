/*
 * multi.h: the multi call's codec. Encodes a request body from actions
 * (stamping "time" at send time) and turns an HTTP result into one verdict
 * per action. Pure: no I/O.
 */
#ifndef LB_MULTI_H
#define LB_MULTI_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"

/** A growable byte buffer. */
typedef struct {
        char *data;
        size_t len;
        size_t cap;
} lb_buf_t;

int lb_buf_append(lb_buf_t *b, const void *p, size_t n);
int lb_buf_printf(lb_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Appends s as a JSON string literal (quotes and escapes included). */
int lb_buf_append_json_string(lb_buf_t *b, const char *s, size_t n);
void lb_buf_reset(lb_buf_t *b);
void lb_buf_free(lb_buf_t *b);

/**
 * @returns the bytes a request adds around its actions' bodies and commas
 *          for this app (upper bound), so packing can respect max bytes.
 */
size_t lb_multi_overhead(const char *app_id, const char *client_key,
                         const char *api_version);

/**
 * @brief Encodes {"appId","clientKey","apiVersion","time","data":[...]}.
 *        Each action's body is its original value, with ,"time":T spliced
 *        in from its Kafka timestamp when time_missing. now_s is the send time.
 * @returns 0, or -1 on allocation failure.
 */
int lb_multi_encode(lb_buf_t *out, const char *app_id, const char *client_key,
                    const char *api_version, double now_s,
                    lb_action_t *const *actions, size_t n);

/** What to do with a whole request after one attempt. */
typedef enum {
        LB_OUTCOME_DONE,  /* per-action verdicts are in results[] */
        LB_OUTCOME_RETRY, /* send again after backoff (same actions) */
        LB_OUTCOME_SPLIT, /* 403 on several actions: split in two halves */
        LB_OUTCOME_DEAD,  /* dead-letter every action: stage http */
} lb_outcome_t;

typedef struct {
        int ok;        /* success:true */
        int warning;   /* success:true with a warning */
        char *message; /* malloc'd error (or warning) message, or NULL */
} lb_action_result_t;

/**
 * @brief Classifies one attempt.
 * @param http_status  0 when the transport failed (no HTTP response)
 * @param body,len     the response body (may be NULL)
 * @param n            actions in the request
 * @param results      n entries, filled for LB_OUTCOME_DONE (free with
 *                     lb_multi_results_clear)
 * @param reason       a one-line reason for RETRY/SPLIT/DEAD
 */
lb_outcome_t lb_multi_classify(int http_status, const char *body, size_t len,
                               size_t n, lb_action_result_t *results,
                               char *reason, size_t reason_size);

void lb_multi_results_clear(lb_action_result_t *results, size_t n);

/**
 * @brief Parses a Retry-After header value (delta-seconds or HTTP date).
 * @returns milliseconds to wait, or -1 when absent or unparseable.
 */
int64_t lb_multi_retry_after_ms(const char *value, int64_t now_epoch_s);

#endif
