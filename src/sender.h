/*
 * sender.h: HTTP transport for multi calls over libcurl's multi interface,
 * driven from the loop thread. Knows nothing of batches or verdicts: it
 * POSTs a body and reports status, response body, Retry-After and timing.
 */
#ifndef LB_SENDER_H
#define LB_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "multi.h"

typedef struct lb_sender_s lb_sender_t;

/** One HTTP exchange. The caller owns it; the sender fills the results. */
typedef struct lb_request_s {
        void *opaque;  /* the caller's record */
        lb_buf_t body; /* request body, set before lb_sender_submit */
        /* results, valid in the completion callback: */
        int http_status;   /* 0 when no HTTP response arrived */
        char error[256];   /* transport error text, or "" */
        int unknown;       /* the answer never came: the API may still run it */
        lb_buf_t response; /* 2xx: up to LB_MULTI_RESPONSE_MAX bytes; else
                              the first LB_MULTI_ERROR_BODY_MAX bytes */
        int64_t retry_after_ms; /* from Retry-After, or -1 */
        double duration_s;
        void *handle; /* the sender's, while in flight */
} lb_request_t;

typedef void(lb_sender_done_cb)(void *opaque, lb_request_t *req);

lb_sender_t *lb_sender_new(const lb_config_t *conf, char *errstr,
                           size_t errstr_size);

/** @brief Starts the POST. @returns 0, or -1 (the request is not taken). */
int lb_sender_submit(lb_sender_t *s, lb_request_t *req);

/** @brief Drives transfers and calls done for each finished one. */
void lb_sender_perform(lb_sender_t *s, lb_sender_done_cb *done, void *opaque);

/** @brief Waits for socket activity, a byte on wake_fd, or timeout_ms. */
void lb_sender_wait(lb_sender_t *s, int wake_fd, int timeout_ms);

/** @returns requests in flight. */
size_t lb_sender_inflight(const lb_sender_t *s);

/** @brief Aborts transfers still running (their done is not called) and
 *         frees. NULL is a no-op. */
void lb_sender_destroy(lb_sender_t *s);

#endif
