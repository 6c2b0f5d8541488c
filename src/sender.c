/*
 * sender.c: libcurl multi adapter. Owns the easy-handle pool (connections
 * are reused through the multi handle's cache), TLS settings (verified by
 * default), timeouts, the response size cap, Retry-After parsing, and the
 * rule of which failed exchanges may still run at the API
 * (lb_sender_unknown()).
 *
 * libcurl resends a request by itself when a reused keep-alive connection
 * dies before any byte of the answer arrived (Curl_retry_request() in
 * lib/transfer.c: "Connection died, retrying a fresh connect", up to 5
 * times; for HTTP it rewinds an uploaded body and sends it again). For a
 * POST the server may already be working on the first copy, so the resend
 * can put a user in two requests at once, with no error reported. libcurl
 * 8.16.0 added CURLOPT_FORBID_RETRY_ON_REUSE; Debian 12 ships 7.88.1. So the
 * body goes through a read callback and the seek callback refuses every
 * rewind: libcurl then fails the transfer with CURLE_SEND_FAIL_REWIND
 * instead of resending, and the bridge holds its users like a timeout's.
 * (We follow no redirects and send no Expect: 100-continue, the other
 * reasons libcurl rewinds.)
 */
#include "sender.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "grow.h"
#include "log.h"

struct lb_sender_s {
        CURLM *multi;
        struct curl_slist *headers;
        CURLU *url; /* parsed once: CURLOPT_URL parses it every transfer */
        char *ca_file;
        int insecure;
        long timeout_ms;
        size_t answer_max; /* lb_config_answer_max_bytes */
        CURL **active;     /* handles in flight */
        size_t active_cnt, active_cap;
        CURL **pool; /* idle easy handles */
        size_t pool_cnt, pool_cap;
};

/* Appends h to a growable handle array. */
static int push_handle(CURL ***arr, size_t *cnt, size_t *cap, CURL *h)
{
        CURL **p = lb_grow(*arr, cap, *cnt + 1, sizeof(*p), 16);
        if (!p)
                return -1;
        *arr = p;
        (*arr)[(*cnt)++] = h;
        return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *opaque)
{
        lb_request_t *req = opaque;
        size_t len = size * n, keep = len;
        long status = 0;
        curl_easy_getinfo(req->handle, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) { /* read on, keep the start */
                size_t room = LB_MULTI_ERROR_BODY_MAX - req->response.len;
                keep = len < room ? len : room;
        } else if (req->response.len + len > req->answer_max) {
                req->answer_cut = 1;
                return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        }
        if (lb_buf_append_upto(&req->response, p, keep, req->answer_max + 1))
                return 0;
        return len;
}

/* Hands the body to libcurl, and counts it. */
static size_t read_cb(char *p, size_t size, size_t n, void *opaque)
{
        lb_request_t *req = opaque;
        size_t left = req->body_len - req->body_given;
        size_t len = req->body_read(req->body_source, p,
                                    size * n < left ? size * n : left);
        req->body_given += len;
        return len;
}

/* Refuses every rewind, so libcurl never resends a body on its own. */
static int seek_cb(void *opaque, curl_off_t offset, int origin)
{
        (void)opaque;
        (void)offset;
        (void)origin;
        return CURL_SEEKFUNC_FAIL;
}

int lb_sender_unknown(int curl_code, int body_sent, int http_status)
{
        switch (curl_code) {
        case CURLE_OK:
                /* a gateway's: the API's answer was bad or late (502, 504;
                 * a CDN's 520 and 524), it may have the request */
                return http_status == 502 || http_status == 504 ||
                       http_status == 520 || http_status == 524;
        case CURLE_WRITE_ERROR:
                return 0;
        case CURLE_SEND_FAIL_REWIND:
                return 1;
        default:
                return body_sent;
        }
}

static size_t header_cb(char *p, size_t size, size_t n, void *opaque)
{
        lb_request_t *req = opaque;
        size_t len = size * n;
        static const char name[] = "retry-after:";
        if (len > sizeof(name) - 1 && !strncasecmp(p, name, sizeof(name) - 1)) {
                char value[128];
                size_t vlen = len - (sizeof(name) - 1);
                if (vlen >= sizeof(value))
                        vlen = sizeof(value) - 1;
                memcpy(value, p + sizeof(name) - 1, vlen);
                value[vlen] = '\0';
                req->retry_after_ms =
                    lb_multi_retry_after_ms(value, (int64_t)time(NULL));
        }
        return len;
}

/* The headers of every request. Accept-Encoding is in the list rather
 * than left to CURLOPT_ACCEPT_ENCODING: libcurl prints that line afresh for
 * every transfer unless the list has it. CURLOPT_ACCEPT_ENCODING stays
 * set, so answers are still decoded; the value names the decoders this
 * libcurl has, as the line libcurl would print does (without one, that
 * line is left to libcurl). User-Agent stays CURLOPT_USERAGENT: libcurl
 * also sends it on a CONNECT to a proxy, which the list's headers do not
 * reach. @returns NULL when out of memory. */
static struct curl_slist *headers_new(void)
{
        unsigned features = curl_version_info(CURLVERSION_NOW)->features;
        char enc[32] = "", line[64];
        if (features & CURL_VERSION_LIBZ)
                strcat(enc, ", deflate, gzip");
        if (features & CURL_VERSION_BROTLI)
                strcat(enc, ", br");
        if (features & CURL_VERSION_ZSTD)
                strcat(enc, ", zstd");
        snprintf(line, sizeof(line), "Accept-Encoding: %s", enc + 2);
        const char *const lines[] = {"Content-Type: application/json",
                                     "Expect:", enc[0] ? line : NULL};
        struct curl_slist *h = NULL;
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                struct curl_slist *t =
                    lines[i] ? curl_slist_append(h, lines[i]) : h;
                if (!t) {
                        curl_slist_free_all(h);
                        return NULL;
                }
                h = t;
        }
        return h;
}

/* Parses api.url into u as libcurl would parse CURLOPT_URL.
 * @returns 0, -1 (errstr says why) or -2 (out of memory). */
static int parse_url(CURLU *u, const char *url, char *errstr,
                     size_t errstr_size)
{
        CURLUcode uc =
            curl_url_set(u, CURLUPART_URL, url,
                         CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME);
        if (uc == CURLUE_OUT_OF_MEMORY)
                return -2;
        if (uc != CURLUE_OK) {
                snprintf(errstr, errstr_size, "api.url: %s",
                         curl_url_strerror(uc));
                return -1;
        }
        return 0;
}

void lb_sender_printable_url(const char *url, char *buf, size_t size)
{
        char why[128], *clean = NULL;
        CURLU *u = curl_url();
        if (u && !parse_url(u, url, why, sizeof(why)) &&
            curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
            curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_URL, &clean, 0) == CURLUE_OK)
                url = clean;
        snprintf(buf, size, "%s", url);
        curl_free(clean);
        curl_url_cleanup(u);
}

int lb_sender_check_conf(const lb_config_t *conf, char *errstr,
                         size_t errstr_size)
{
        CURLU *u = curl_url();
        int rc = -2;
        if (u)
                rc = parse_url(u, conf->api_url, errstr, errstr_size);
        curl_url_cleanup(u);
        if (rc == -2)
                snprintf(errstr, errstr_size, "out of memory");
        if (rc)
                return -1;
        if (conf->api_ca_file && *conf->api_ca_file &&
            access(conf->api_ca_file, R_OK)) {
                snprintf(errstr, errstr_size,
                         "api.ca.file: cannot read '%s': %s", conf->api_ca_file,
                         strerror(errno));
                return -1;
        }
        return 0;
}

lb_sender_t *lb_sender_new(const lb_config_t *conf, char *errstr,
                           size_t errstr_size)
{
        lb_sender_t *s = calloc(1, sizeof(*s));
        if (!s)
                goto oom;
        s->multi = curl_multi_init();
        s->url = curl_url();
        s->ca_file = conf->api_ca_file && *conf->api_ca_file
                         ? strdup(conf->api_ca_file)
                         : NULL;
        s->insecure = conf->api_tls_insecure;
        if (!strncasecmp(conf->api_url, "http://", 7))
                lb_warn("sender", "api.url is http://: client keys go to the "
                                  "API in clear text");
        s->timeout_ms = (long)conf->api_timeout_ms;
        s->answer_max = (size_t)lb_config_answer_max_bytes(conf);
        s->headers = headers_new();
        if (!s->multi || !s->url || !s->headers)
                goto oom;
        int rc = parse_url(s->url, conf->api_url, errstr, errstr_size);
        if (rc == -2)
                goto oom;
        if (rc) {
                lb_sender_destroy(s);
                return NULL;
        }
        curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                          (long)conf->sender_max_inflight);
        curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS,
                          (long)conf->sender_max_inflight);
        return s;
oom:
        snprintf(errstr, errstr_size, "cannot set up libcurl");
        lb_sender_destroy(s);
        return NULL;
}

static CURL *take_handle(lb_sender_t *s)
{
        if (s->pool_cnt)
                return s->pool[--s->pool_cnt];
        CURL *h = curl_easy_init();
        if (!h)
                return NULL;
        curl_easy_setopt(h, CURLOPT_CURLU, s->url);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->headers);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        /* A transfer that times out in the middle of a name lookup leaves
         * the lookup's thread to end (and free itself) alone: without
         * this, libcurl waits for it, and the loop with it, as long as the
         * system's resolver takes (40 s with a pod's search domains and a
         * silent name server: test_dns_stall.py). */
        curl_easy_setopt(h, CURLOPT_QUICK_EXIT, 1L);
        /* What may still run at the API after a failed exchange
         * (lb_sender_unknown) and the refused resend (seek_cb) are
         * HTTP/1.1's reasoning: over HTTP/2 a stream the server refused,
         * never processed, would count as unknown and hold its users. */
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                         s->timeout_ms < 10000 ? s->timeout_ms : 10000L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "leanbridge");
        if (s->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
        if (s->insecure) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        return h;
}

static void give_handle(lb_sender_t *s, CURL *h)
{
        if (push_handle(&s->pool, &s->pool_cnt, &s->pool_cap, h))
                curl_easy_cleanup(h);
}

int lb_sender_submit(lb_sender_t *s, lb_request_t *req)
{
        CURL *h = take_handle(s);
        if (!h)
                return -1;
        req->http_status = 0;
        req->error[0] = '\0';
        req->unknown = 0;
        req->answer_cut = 0;
        req->answer_max = s->answer_max;
        req->body_given = 0;
        req->retry_after_ms = -1;
        req->duration_s = 0;
        lb_buf_reset(&req->response);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->body_len);
        curl_easy_setopt(h, CURLOPT_READDATA, req);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, req);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, req);
        curl_easy_setopt(h, CURLOPT_PRIVATE, req);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, req->error);
        if (push_handle(&s->active, &s->active_cnt, &s->active_cap, h)) {
                give_handle(s, h);
                return -1;
        }
        if (curl_multi_add_handle(s->multi, h) != CURLM_OK) {
                s->active_cnt--;
                give_handle(s, h);
                return -1;
        }
        req->handle = h;
        return 0;
}

void lb_sender_perform(lb_sender_t *s, lb_sender_done_cb *done, void *opaque)
{
        int running, left;
        CURLMsg *msg;
        curl_multi_perform(s->multi, &running);
        while ((msg = curl_multi_info_read(s->multi, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                CURL *h = msg->easy_handle;
                CURLcode code = msg->data.result;
                lb_request_t *req = NULL;
                long status = 0;
                double secs = 0;
                curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&req);
                curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &secs);
                if (code == CURLE_OK || req->answer_cut)
                        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
                else if (!req->error[0])
                        snprintf(req->error, sizeof(req->error), "%s",
                                 curl_easy_strerror(code));
                curl_multi_remove_handle(s->multi, h);
                curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
                for (size_t i = 0; i < s->active_cnt; i++)
                        if (s->active[i] == h) {
                                s->active[i] = s->active[--s->active_cnt];
                                break;
                        }
                give_handle(s, h);
                req->handle = NULL;
                /* a cut answer is an answer: the status says what it was */
                req->http_status =
                    code == CURLE_OK || req->answer_cut ? (int)status : 0;
                req->unknown = lb_sender_unknown(
                    code, req->body_given == req->body_len, (int)status);
                req->duration_s = secs;
                done(opaque, req);
        }
}

void lb_sender_wait(lb_sender_t *s, int wake_fd, int timeout_ms)
{
        struct curl_waitfd extra = {.fd = wake_fd, .events = CURL_WAIT_POLLIN};
        curl_multi_poll(s->multi, wake_fd >= 0 ? &extra : NULL,
                        wake_fd >= 0 ? 1 : 0, timeout_ms, NULL);
}

size_t lb_sender_inflight(const lb_sender_t *s)
{
        return s->active_cnt;
}

void lb_sender_destroy(lb_sender_t *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->active_cnt; i++) {
                curl_multi_remove_handle(s->multi, s->active[i]);
                curl_easy_cleanup(s->active[i]);
        }
        free(s->active);
        if (s->multi)
                curl_multi_cleanup(s->multi);
        for (size_t i = 0; i < s->pool_cnt; i++)
                curl_easy_cleanup(s->pool[i]);
        free(s->pool);
        curl_slist_free_all(s->headers);
        curl_url_cleanup(s->url);
        free(s->ca_file);
        free(s);
}
