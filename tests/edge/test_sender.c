/*
 * test_sender.c: the libcurl adapter (src/sender.c) against a one-shot HTTP
 * server on 127.0.0.1 in a thread: status, body and Retry-After reach the
 * request; an error body is kept only up to LB_MULTI_ERROR_BODY_MAX bytes
 * (the rest is read and dropped, the status is still reported); which
 * failed exchanges may still run at the API (lb_sender_unknown()); and
 * libcurl's silent resend on a reused connection that died after the body
 * went out is refused: the exchange fails as unknown, and the server never
 * sees a second copy. A URL libcurl cannot parse stops the start; the
 * headers are sent once each, and compressed answers are decoded.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <curl/curl.h>

#include "config.h"
#include "multi.h"
#include "sender.h"

typedef struct {
        int listen_fd;
        const char *head; /* status line and headers, without the blank line */
        size_t body_len;  /* bytes of 'x' answered */
        const char *body; /* else these body_len bytes */
        char request[8192]; /* the last request's start */
} server_t;

/* Reads one request from fd into sv->request: headers, then Content-Length
 * bytes. @returns the bytes read (0: the peer sent nothing). */
static size_t read_request(server_t *sv, int fd)
{
        char *buf = sv->request;
        size_t size = sizeof(sv->request);
        size_t got = 0;
        char *end = NULL;
        buf[0] = '\0';
        while (!end && got < size - 1) {
                ssize_t n = read(fd, buf + got, size - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
                buf[got] = '\0';
                end = strstr(buf, "\r\n\r\n");
        }
        const char *cl = strstr(buf, "Content-Length: ");
        size_t want = cl ? strtoul(cl + 16, NULL, 10) : 0;
        size_t have = end ? got - (size_t)(end + 4 - buf) : 0;
        while (have < want) {
                char rest[4096];
                ssize_t n = read(fd, rest, sizeof(rest));
                if (n <= 0)
                        break;
                have += (size_t)n;
        }
        return got;
}

/* Reads the request, answers, closes. */
static void *serve_once(void *opaque)
{
        server_t *sv = opaque;
        int fd = accept(sv->listen_fd, NULL, NULL);
        read_request(sv, fd);
        char head[512];
        int hl =
            snprintf(head, sizeof(head),
                     "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     sv->head, sv->body_len);
        if (write(fd, head, (size_t)hl) != hl)
                fail_msg("write");
        char *body = malloc(sv->body_len + 1);
        if (sv->body)
                memcpy(body, sv->body, sv->body_len);
        else
                memset(body, 'x', sv->body_len);
        for (size_t off = 0; off < sv->body_len;) {
                ssize_t n = write(fd, body + off, sv->body_len - off);
                if (n <= 0)
                        break;
                off += (size_t)n;
        }
        free(body);
        close(fd);
        return NULL;
}

/* Answers a first request on a keep-alive connection, reads a second one
 * on it and closes without answering (a server gone after taking the
 * body); then counts, for a second, the connections of a resend. */
static void *serve_then_die(void *opaque)
{
        server_t *sv = opaque;
        static const char ok[] =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        int fd = accept(sv->listen_fd, NULL, NULL);
        read_request(sv, fd);
        if (write(fd, ok, sizeof(ok) - 1) != (ssize_t)sizeof(ok) - 1)
                fail_msg("write");
        read_request(sv, fd);
        close(fd);
        struct pollfd p = {.fd = sv->listen_fd, .events = POLLIN};
        while (poll(&p, 1, 1000) > 0) {
                /* libcurl may connect afresh, then give up before sending
                 * (the refused rewind): only a request counts */
                fd = accept(sv->listen_fd, NULL, NULL);
                sv->body_len += read_request(sv, fd) > 0;
                close(fd);
        }
        return NULL;
}

static void on_done(void *opaque, lb_request_t *req)
{
        (void)req;
        *(int *)opaque = 1;
}

/* Starts fn serving sv on an ephemeral port; @returns a sender to it. */
static lb_sender_t *serve(server_t *sv, void *(*fn)(void *), pthread_t *th,
                          lb_config_t **conf)
{
        struct sockaddr_in addr = {.sin_family = AF_INET,
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(addr);
        sv->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(sv->listen_fd >= 0);
        assert_int_equal(bind(sv->listen_fd, (struct sockaddr *)&addr, alen),
                         0);
        assert_int_equal(listen(sv->listen_fd, 4), 0);
        assert_int_equal(
            getsockname(sv->listen_fd, (struct sockaddr *)&addr, &alen), 0);
        assert_int_equal(pthread_create(th, NULL, fn, sv), 0);

        char url[64], err[256];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api?action=multi",
                 ntohs(addr.sin_port));
        *conf = lb_config_new();
        assert_int_equal(
            lb_config_set(*conf, "api.url", url, "test", err, sizeof(err)), 0);
        lb_sender_t *s = lb_sender_new(*conf, err, sizeof(err));
        assert_non_null(s);
        return s;
}

/* A request body read from a string, as libcurl asks for it. */
typedef struct {
        const char *text;
        size_t off;
} text_body_t;

static size_t text_read(void *source, char *dst, size_t cap)
{
        text_body_t *t = source;
        size_t left = strlen(t->text) - t->off;
        size_t n = cap < left ? cap : left;
        memcpy(dst, t->text + t->off, n);
        t->off += n;
        return n;
}

/* Sends req with the body "{}" and waits for its end. */
static void post(lb_sender_t *s, lb_request_t *req)
{
        static text_body_t body;
        body = (text_body_t){.text = "{}"};
        req->body_read = text_read;
        req->body_source = &body;
        req->body_len = strlen(body.text);
        assert_int_equal(lb_sender_submit(s, req), 0);
        int done = 0;
        while (!done) {
                lb_sender_wait(s, -1, 100);
                lb_sender_perform(s, on_done, &done);
        }
}

/* One POST against a server answering head + body_len bytes. */
static void exchange(const char *head, size_t body_len, lb_request_t *req)
{
        server_t sv = {.head = head, .body_len = body_len};
        pthread_t th;
        lb_config_t *conf;
        lb_sender_t *s = serve(&sv, serve_once, &th, &conf);
        post(s, req);
        lb_sender_destroy(s);
        lb_config_destroy(conf);
        pthread_join(th, NULL);
        close(sv.listen_fd);
}

static void test_ok_body_and_retry_after(void **state)
{
        (void)state;
        lb_request_t req = {0};
        exchange("HTTP/1.1 200 OK\r\nRetry-After: 7", 100000, &req);
        assert_int_equal(req.http_status, 200);
        assert_int_equal(req.unknown, 0);
        assert_int_equal(req.response.len, 100000);
        assert_int_equal(req.retry_after_ms, 7000);
        lb_buf_free(&req.response);
}

static void test_error_body_is_capped(void **state)
{
        (void)state;
        lb_request_t req = {0};
        exchange("HTTP/1.1 400 Bad Request", 1 << 20, &req);
        assert_int_equal(req.http_status, 400); /* read whole, not aborted */
        assert_string_equal(req.error, "");
        assert_int_equal(req.response.len, LB_MULTI_ERROR_BODY_MAX);
        lb_buf_free(&req.response);
}

static void test_gateway_answer_is_unknown(void **state)
{
        (void)state;
        lb_request_t req = {0};
        exchange("HTTP/1.1 502 Bad Gateway", 10, &req);
        assert_int_equal(req.http_status, 502);
        assert_int_equal(req.unknown, 1);
        lb_buf_free(&req.response);
}

/* The second request goes on the reused connection, which the server
 * closes after reading it: libcurl would resend it on a fresh connection
 * (Curl_retry_request); the sender refuses, and reports it unknown. */
static void test_no_silent_resend(void **state)
{
        (void)state;
        server_t sv = {0};
        pthread_t th;
        lb_config_t *conf;
        lb_sender_t *s = serve(&sv, serve_then_die, &th, &conf);
        lb_request_t first = {0}, second = {0};
        post(s, &first);
        assert_int_equal(first.http_status, 200);
        post(s, &second);
        assert_int_equal(second.http_status, 0);
        assert_int_equal(second.unknown, 1);
        pthread_join(th, NULL);
        assert_int_equal(sv.body_len, 0); /* no second copy arrived */
        lb_sender_destroy(s);
        lb_config_destroy(conf);
        close(sv.listen_fd);
        lb_buf_free(&first.response);
        lb_buf_free(&second.response);
}

/* The header lines of a request head that start with name. */
static int header_lines(const char *req, const char *name)
{
        char key[64];
        int n = 0;
        snprintf(key, sizeof(key), "\r\n%s", name);
        for (const char *p = strstr(req, key); p; p = strstr(p + 1, key))
                n++;
        return n;
}

/* Whether the request head has exactly one header line starting with
 * name, and it is line. */
static int header_is(const char *req, const char *name, const char *line)
{
        char whole[128];
        snprintf(whole, sizeof(whole), "\r\n%s\r\n", line);
        return header_lines(req, name) == 1 && strstr(req, whole) != NULL;
}

/* User-Agent and Accept-Encoding are sent once each, the latter naming
 * this libcurl's decoders (it is in the header list); a gzip answer is
 * decoded. */
static void test_headers_and_decoding(void **state)
{
        (void)state;
        static const char gz[] =
            "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\x2a\x4a\x2d"
            "\x2e\xc8\xcf\x2b\x4e\x55\xb2\x8a\xae\x56\x2a\x2e\x4d\x4e\x4e"
            "\x2d\x2e\x56\xb2\x2a\x29\x2a\x4d\xad\x8d\xad\x05\x00\x79\xe7"
            "\x28\xfe\x1f\x00\x00\x00";
        server_t sv = {.head = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip",
                       .body = gz,
                       .body_len = sizeof(gz) - 1};
        pthread_t th;
        lb_config_t *conf;
        lb_sender_t *s = serve(&sv, serve_once, &th, &conf);
        lb_request_t req = {0};
        post(s, &req);
        lb_sender_destroy(s);
        lb_config_destroy(conf);
        pthread_join(th, NULL);
        close(sv.listen_fd);
        assert_int_equal(req.http_status, 200);
        assert_string_equal(req.response.data,
                            "{\"response\":[{\"success\":true}]}");
        const char *r = sv.request;
        assert_true(header_is(r, "User-Agent:", "User-Agent: leanbridge"));
        assert_true(header_is(r, "Accept:", "Accept: */*"));
        assert_true(
            header_is(r, "Content-Type:", "Content-Type: application/json"));
        assert_int_equal(header_lines(r, "Expect:"), 0);
        char enc[64] = "Accept-Encoding: deflate, gzip";
        unsigned features = curl_version_info(CURLVERSION_NOW)->features;
        assert_true(features & CURL_VERSION_LIBZ); /* gzip decoded above */
        if (features & CURL_VERSION_BROTLI)
                strcat(enc, ", br");
        if (features & CURL_VERSION_ZSTD)
                strcat(enc, ", zstd");
        assert_true(header_is(r, "Accept-Encoding:", enc));
        lb_buf_free(&req.response);
}

/* The URL is parsed once, at start: one libcurl cannot parse stops the
 * start with libcurl's reason (it would fail every request). */
static void test_bad_url_refused(void **state)
{
        (void)state;
        static const char *const bad[] = {"http://", "http://exa mple/api"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char err[256] = "";
                lb_config_t *conf = lb_config_new();
                assert_int_equal(lb_config_set(conf, "api.url", bad[i], "test",
                                               err, sizeof(err)),
                                 0);
                assert_null(lb_sender_new(conf, err, sizeof(err)));
                assert_non_null(strstr(err, "api.url: "));
                lb_config_destroy(conf);
        }
}

static void test_unknown_rule(void **state)
{
        (void)state;
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 200), 0);
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 500), 0);
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 503), 0);
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 429), 0);
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 502), 1);
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 504), 1);
        /* a CDN in front of the API: reached it and timed out (524), or
         * got no sound answer from it (520); 522 is its connect timeout */
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 524), 1);
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 520), 1);
        assert_int_equal(lb_sender_unknown(CURLE_OK, 1, 522), 0);
        assert_int_equal(lb_sender_unknown(CURLE_OPERATION_TIMEDOUT, 1, 0), 1);
        assert_int_equal(lb_sender_unknown(CURLE_OPERATION_TIMEDOUT, 0, 0), 0);
        assert_int_equal(lb_sender_unknown(CURLE_GOT_NOTHING, 1, 0), 1);
        assert_int_equal(lb_sender_unknown(CURLE_RECV_ERROR, 1, 0), 1);
        assert_int_equal(lb_sender_unknown(CURLE_PARTIAL_FILE, 1, 0), 1);
        assert_int_equal(lb_sender_unknown(CURLE_SEND_ERROR, 1, 0), 1);
        assert_int_equal(lb_sender_unknown(CURLE_SEND_ERROR, 0, 0), 0);
        assert_int_equal(lb_sender_unknown(CURLE_SEND_FAIL_REWIND, 0, 0), 1);
        assert_int_equal(lb_sender_unknown(CURLE_COULDNT_CONNECT, 0, 0), 0);
        assert_int_equal(lb_sender_unknown(CURLE_WRITE_ERROR, 1, 0), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ok_body_and_retry_after),
            cmocka_unit_test(test_error_body_is_capped),
            cmocka_unit_test(test_gateway_answer_is_unknown),
            cmocka_unit_test(test_no_silent_resend),
            cmocka_unit_test(test_bad_url_refused),
            cmocka_unit_test(test_headers_and_decoding),
            cmocka_unit_test(test_unknown_rule),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
