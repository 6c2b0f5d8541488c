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

/** Writes a body's next bytes to dst, at most cap, as libcurl asks for
 *  them. @returns how many; fewer than cap only at the body's end. */
typedef size_t(lb_body_read_cb)(void *source, char *dst, size_t cap);

/** One HTTP exchange. The caller owns it; the sender fills the results. */
typedef struct lb_request_s {
        void *opaque; /* the caller's record */
        /* the body, set before lb_sender_submit: body_len bytes that
         * body_read writes from body_source as they are sent (the sender
         * keeps no copy; a retry is a new submit, the body started anew) */
        lb_body_read_cb *body_read;
        void *body_source;
        size_t body_len;
        /* results, valid in the completion callback: */
        int http_status;   /* 0 when no HTTP response arrived */
        char error[256];   /* transport error text, or "" */
        int unknown;       /* lb_sender_unknown(): the API may still run it */
        size_t answer_max; /* the sender's read limit of a 2xx answer
                              (lb_config_answer_max_bytes) */
        int answer_cut;    /* a 2xx answer over answer_max: read up to it,
                              then the transfer was ended */
        size_t body_given; /* body bytes handed to libcurl so far */
        lb_buf_t response; /* 2xx: up to answer_max bytes; else
                              the first LB_MULTI_ERROR_BODY_MAX bytes */
        int64_t retry_after_ms; /* from Retry-After, or -1 */
        double duration_s;
        void *handle; /* the sender's, while in flight */
} lb_request_t;

typedef void(lb_sender_done_cb)(void *opaque, lb_request_t *req);

/**
 * @brief Whether a finished exchange's answer never came while the API may
 *        have the whole request and still be working on it, so its users
 *        must stay busy for api.timeout.hold.ms (pure):
 *        - an HTTP answer: only 502 and 504 (a gateway gave up on an
 *          upstream that may still run the request);
 *        - CURLE_WRITE_ERROR: no (we refused the answer: it came);
 *        - CURLE_SEND_FAIL_REWIND: yes (a reused connection died after the
 *          body went out, and the sender refused libcurl's silent resend);
 *        - any other error (timeout, reset, EOF, partial answer, TLS or
 *          HTTP/2 error): yes if the whole body was handed over, else no
 *          (a connect error, or a request cut before its end, cannot run).
 * @param curl_code the CURLcode of the transfer
 * @param body_sent 1 if the whole body was handed to libcurl
 * @param http_status the status when curl_code is CURLE_OK
 */
int lb_sender_unknown(int curl_code, int body_sent, int http_status);

/**
 * @brief Writes api.url as it may be printed: without the user name and
 *        password it may carry (a gateway's basic auth); the URL as given
 *        when libcurl cannot parse it (lb_sender_check_conf refuses it).
 */
void lb_sender_printable_url(const char *url, char *buf, size_t size);

/**
 * @brief What lb_sender_new would refuse, checked before startup: api.url
 *        as libcurl parses it, and api.ca.file readable.
 * @returns 0, or -1 with errstr naming the key.
 */
int lb_sender_check_conf(const lb_config_t *conf, char *errstr,
                         size_t errstr_size);

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
