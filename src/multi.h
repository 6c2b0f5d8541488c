/*
 * multi.h: the multi call's codec. Writes a request body from actions as
 * it is sent (stamping "time" at send time) and turns an HTTP result into
 * one verdict per action. Pure: no I/O.
 */
#ifndef LB_MULTI_H
#define LB_MULTI_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"
#include "event.h"

/** Most characters lb_multi writes for a "time" number (ms precision). */
#define LB_MULTI_TIME_MAX 24
/** Most bytes of a server message copied into a reason or a result. */
#define LB_MULTI_MESSAGE_MAX 200
/** Largest 2xx body lb_multi_classify decodes; a larger one (or one the
 *  sender stopped reading, LB_MULTI_ANSWER_CUT) is split, not retried. */
#define LB_MULTI_RESPONSE_MAX (16 * 1024 * 1024) /* LB_ANSWER_MAX_BYTES */
/** Most bytes of a non-2xx body kept and decoded: its message is a
 *  courtesy, not worth keeping megabytes of HTML for. */
#define LB_MULTI_ERROR_BODY_MAX (64 * 1024)

/** A growable byte buffer. data is NUL-terminated whenever it is non-NULL
 *  (the NUL is not counted in len). A zeroed lb_buf_t is empty. */
typedef struct {
        char *data;
        size_t len;
        size_t cap;
} lb_buf_t;

/** @brief Makes room for n more bytes. @returns 0, or -1 (no memory). */
int lb_buf_reserve(lb_buf_t *b, size_t n);
/** @brief Appends n bytes. @returns 0, or -1 (b unchanged). */
int lb_buf_append(lb_buf_t *b, const void *p, size_t n);
/** lb_buf_append whose room, doubling, stops at most bytes (NUL included)
 *  when len + n + 1 fits in it: a buffer read up to a limit takes no more
 *  than the limit. */
int lb_buf_append_upto(lb_buf_t *b, const void *p, size_t n, size_t most);
/** @brief Appends printf-style. @returns 0, or -1 (b unchanged). */
int lb_buf_printf(lb_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/**
 * @brief Appends s (n arbitrary bytes) as a JSON string literal, quotes
 *        included: quote and backslash get a backslash, bytes below 0x20
 *        become \u00XX, valid UTF-8 is copied, and each byte of invalid
 *        UTF-8 becomes \ufffd, so the result is always valid JSON.
 * @returns 0, or -1 (b unchanged).
 */
int lb_buf_append_json_string(lb_buf_t *b, const char *s, size_t n);
/** @returns the bytes lb_buf_append_json_string() would append. */
size_t lb_buf_json_string_len(const char *s, size_t n);
/** @brief Empties b, keeping its memory. */
void lb_buf_reset(lb_buf_t *b);
/** @brief Frees b's memory and empties it; a zeroed b is a no-op. */
void lb_buf_free(lb_buf_t *b);

/**
 * @returns the bytes a request adds around its actions' bodies for this app
 *          (upper bound; NULL strings count as ""), so packing can respect
 *          max bytes. The commas between actions are not included: each
 *          action's lb_event_body_len() counts one.
 */
size_t lb_multi_overhead(const char *app_id, const char *client_key,
                         const char *api_version);

/** The whole seconds of the last "time" a body wrote, as text: the
 *  actions of a request mostly share their second. len 0: none yet. */
typedef struct {
        uint64_t whole;
        int neg;
        size_t len;
        char text[LB_MULTI_TIME_MAX];
} lb_multi_secs_t;

/**
 * A request body {"appId","clientKey","apiVersion","time","data":[...]},
 * written part by part into the caller's buffer (libcurl's upload buffer)
 * as it asks: the body itself is never held. Each action's body is its
 * original value, with ,"time":T spliced in from its Kafka timestamp when
 * time_missing. Times have millisecond precision ("1375295890.25"). The
 * actions are read, not owned: they must live until the body is written.
 * A zeroed one is empty; lb_multi_body_free frees it.
 */
typedef struct {
        size_t len;     /* the whole body's bytes (Content-Length) */
        size_t written; /* bytes lb_multi_body_read gave so far */
        /* where the writing is: */
        lb_buf_t head; /* the bytes before the first action */
        lb_action_t *const *actions;
        size_t n, i; /* actions, and the one being written */
        int part;    /* which part of it (multi.c) */
        const char *at;
        size_t left; /* the part's bytes not yet written */
        char splice[LB_EVENT_TIME_SPLICE_MAX];
        lb_multi_secs_t secs;
} lb_multi_body_t;

/**
 * @brief Starts writing a body of actions[0..n) anew (a retry too): now_s
 *        is the send time. w->len is then its exact length, never more
 *        than lb_multi_overhead() + the sum of the actions'
 *        lb_event_body_len().
 * @returns 0, or -1 on allocation failure.
 */
int lb_multi_body_start(lb_multi_body_t *w, const char *app_id,
                        const char *client_key, const char *api_version,
                        double now_s, lb_action_t *const *actions, size_t n);

/** @brief Writes the body's next bytes to dst, at most cap.
 *  @returns how many; fewer than cap only at its end. */
size_t lb_multi_body_read(lb_multi_body_t *w, char *dst, size_t cap);

/**
 * @brief Copies the bytes w has not written yet into its own memory, so
 *        that its actions may be freed while it is being sent (a partition
 *        revoked mid-upload). A no-op once no action is left to read.
 * @returns 0, or -1 on allocation failure (w unchanged).
 */
int lb_multi_body_detach(lb_multi_body_t *w);

/** @brief Frees w's memory (the actions are not w's). */
void lb_multi_body_free(lb_multi_body_t *w);

/** What to do with a whole request after one attempt. */
typedef enum {
        LB_OUTCOME_DONE,  /* per-action verdicts are in results[] */
        LB_OUTCOME_RETRY, /* send again after backoff (same actions) */
        /* RETRY, and a failure for everyone (outage mode): the request
         * never reached the API's handler (lb_multi_misdirected, or a 403
         * without the API's message: a proxy or a firewall before it) */
        LB_OUTCOME_MISDIRECTED,
        LB_OUTCOME_SPLIT, /* the API's 403, or 413, on several actions:
                             split in halves */
        LB_OUTCOME_DEAD,  /* dead-letter every action: stage http */
        /* 401 or 403 saying the client key is wrong ("access key"): DEAD,
         * unless the caller has loaded a newer key for the app since it
         * encoded the request (a rotation): then send it again */
        LB_OUTCOME_KEY_REFUSED,
} lb_outcome_t;

/** lb_multi_classify flags. */
#define LB_MULTI_ACCEPT_WARNINGS 0x1 /* success:true + warning is delivered */
/* The 2xx answer was over the sender's read limit (at most
 * LB_MULTI_RESPONSE_MAX), so it was not read whole (body holds its start,
 * or nothing). */
#define LB_MULTI_ANSWER_CUT 0x2

/** One action's verdict. Only what the API says it applied is delivered:
 *  success:true with neither an error nor a warning (a null one counts as
 *  none). Everything else names the stage its dead letter carries. */
typedef struct {
        int ok;           /* delivered */
        int warning;      /* the entry had a warning (delivered or not) */
        lb_stage_t stage; /* when !ok: LB_STAGE_API (success:false or a
                             malformed entry), LB_STAGE_API_SKIPPED
                             (success:true with an error) or
                             LB_STAGE_API_WARNING (success:true with a
                             warning, unless LB_MULTI_ACCEPT_WARNINGS) */
        char *message;    /* malloc'd error (or warning) message, or NULL */
} lb_action_result_t;

/**
 * @brief Classifies one attempt (the README's outcome table):
 *        2xx with {"response":[...]} of exactly n entries -> DONE, each
 *        entry judged as lb_action_result_t says; an entry that is not an
 *        object with a boolean success is not ok ("malformed response
 *        entry", stage api). An error wins over a warning; success:true
 *        with an error or warning is never retried (the API would answer
 *        the same). 2xx larger than LB_MULTI_RESPONSE_MAX (or
 *        LB_MULTI_ANSWER_CUT) -> SPLIT when n > 1, else DEAD: the API
 *        applied the request, and would answer it as large again. 2xx of
 *        any other shape -> RETRY. 401 or 403 whose message says
 *        the key is wrong ("access key") -> KEY_REFUSED. 403 without a
 *        message of the API (no JSON error.message: a proxy's or a
 *        firewall's page) -> MISDIRECTED. 403 or 413 -> SPLIT when n > 1,
 *        unless its message says the key or the app is wrong ("access
 *        key", "app not found", "not permitted"); else DEAD. What never
 *        reached the API (lb_multi_misdirected: unless its message says
 *        the key or the app is wrong, as the API would of one app) ->
 *        MISDIRECTED. 408, 429, 5xx and no response (status < 100) ->
 *        RETRY. Any other status -> DEAD. Messages (reason
 * and results) are cut to LB_MULTI_MESSAGE_MAX bytes and made printable ASCII.
 * @param http_status  0 when the transport failed (no HTTP response)
 * @param body,len     the response body (may be NULL)
 * @param n            actions in the request
 * @param flags        LB_MULTI_ACCEPT_WARNINGS, LB_MULTI_ANSWER_CUT or 0
 * @param results      n entries, filled for LB_OUTCOME_DONE only (free with
 *                     lb_multi_results_clear)
 * @param reason       a one-line reason for RETRY/SPLIT/DEAD
 */
lb_outcome_t lb_multi_classify(int http_status, const char *body, size_t len,
                               size_t n, unsigned flags,
                               lb_action_result_t *results, char *reason,
                               size_t reason_size);

/**
 * @returns 1 for the statuses that say the request never reached the API's
 *          handler, so a setting is wrong and every request would get the
 *          same (nothing about the actions): 3xx (a redirect, never
 *          followed: the body carries the client key), 401 and 407 (a
 *          gateway's or proxy's credentials), 404 and 405 (the URL). They
 *          are retried and count as failures for outage mode: a wrong
 *          api.url pauses the input instead of dead-lettering it all.
 */
int lb_multi_misdirected(int http_status);

/** @brief Frees the results' messages and zeroes them; NULL is a no-op. */
void lb_multi_results_clear(lb_action_result_t *results, size_t n);

/**
 * @brief Parses a Retry-After header value (delta-seconds or HTTP date).
 *        Delta-seconds: digits only (huge values saturate). HTTP date: the
 *        IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT"), relative to
 *        now_epoch_s; a date in the past gives 0. Surrounding blanks and
 *        CR/LF (a raw header line's end) are ignored.
 * @returns milliseconds to wait, or -1 when absent or unparseable.
 */
int64_t lb_multi_retry_after_ms(const char *value, int64_t now_epoch_s);

#endif
