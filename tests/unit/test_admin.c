/*
 * test_admin.c: the admin server over real loopback sockets: /metrics,
 * /healthz and /readyz in each health state, 404 and 405, listen-string
 * parsing and bind failures. The client is a raw HTTP/1.0 socket so the
 * test sees exactly what a scraper or a kubelet probe would.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip_or_fail.h"

#include "admin.h"

typedef struct {
        lb_metrics_t metrics;
        lb_health_t health;
        lb_admin_t *admin;
        int port;
} fixture_t;

/*
 * Sends "METHOD path HTTP/1.0" to host:port (host an IPv4 or IPv6
 * literal) and reads the whole response into resp.
 * @returns the status code, or -1 if there was no parsable answer.
 */
static int http_request(const char *host, int port, const char *method,
                        const char *path, char *resp, size_t resp_size)
{
        struct sockaddr_storage ss;
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        struct timeval tv = {5, 0};
        char req[256];
        size_t got = 0;
        int fd, n, status = -1;
        socklen_t slen;

        memset(&ss, 0, sizeof(ss));
        if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
                s4->sin_family = AF_INET;
                s4->sin_port = htons((uint16_t)port);
                slen = sizeof(*s4);
        } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t)port);
                slen = sizeof(*s6);
        } else {
                return -1;
        }
        fd = socket(ss.ss_family, SOCK_STREAM, 0);
        if (fd < 0)
                return -1;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&ss, slen) != 0)
                goto out;
        n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.0\r\nHost: test\r\nContent-Length: 0\r\n"
                     "\r\n",
                     method, path);
        if (write(fd, req, (size_t)n) != n)
                goto out;
        while (got + 1 < resp_size) {
                ssize_t r = read(fd, resp + got, resp_size - 1 - got);

                if (r <= 0)
                        break;
                got += (size_t)r;
        }
        resp[got] = '\0';
        if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
                status = -1;
out:
        close(fd);
        return status;
}

static const char *body_of(const char *resp)
{
        const char *p = strstr(resp, "\r\n\r\n");

        return p ? p + 4 : "";
}

static int get(fixture_t *f, const char *path, char *resp, size_t size)
{
        return http_request("127.0.0.1", f->port, "GET", path, resp, size);
}

static int setup(void **state)
{
        char errstr[256];
        fixture_t *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        lb_metrics_init(&f->metrics);
        f->admin = lb_admin_start("127.0.0.1:0", &f->metrics, &f->health,
                                  "test-1", errstr, sizeof(errstr));
        if (!f->admin) {
                print_error("lb_admin_start: %s\n", errstr);
                free(f);
                return -1;
        }
        f->port = lb_admin_port(f->admin);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        fixture_t *f = *state;

        lb_admin_stop(f->admin);
        free(f);
        return 0;
}

static void test_ephemeral_port(void **state)
{
        fixture_t *f = *state;

        assert_true(f->port > 0 && f->port <= 65535);
        assert_int_equal(lb_admin_port(NULL), -1);
}

static void test_metrics_endpoint(void **state)
{
        fixture_t *f = *state;
        char resp[65536];

        atomic_store(&f->metrics.events_consumed, 3);
        assert_int_equal(get(f, "/metrics", resp, sizeof(resp)), 200);
        assert_non_null(strstr(resp, "\r\nContent-Type: text/plain; "
                                     "version=0.0.4"));
        assert_non_null(
            strstr(body_of(resp), "\nleanbridge_events_consumed_total 3\n"));
        assert_non_null(strstr(body_of(resp), "\nleanbridge_build_info"
                                              "{version=\"test-1\"} 1\n"));
        /* The query string is not part of the path. */
        assert_int_equal(get(f, "/metrics?name[]=x", resp, sizeof(resp)), 200);
}

static void test_healthz(void **state)
{
        fixture_t *f = *state;
        char resp[4096];

        /* Never beaten: stalled. */
        assert_int_equal(get(f, "/healthz", resp, sizeof(resp)), 503);
        assert_string_equal(body_of(resp), "loop stalled\n");

        lb_health_beat(&f->health);
        assert_int_equal(get(f, "/healthz", resp, sizeof(resp)), 200);
        assert_string_equal(body_of(resp), "ok\n");

        atomic_store(&f->health.loop_heartbeat_ms,
                     lb_admin_now_ms() - LB_ADMIN_STALL_MS + 2000);
        assert_int_equal(get(f, "/healthz", resp, sizeof(resp)), 200);

        atomic_store(&f->health.loop_heartbeat_ms,
                     lb_admin_now_ms() - LB_ADMIN_STALL_MS - 1);
        assert_int_equal(get(f, "/healthz", resp, sizeof(resp)), 503);
        assert_string_equal(body_of(resp), "loop stalled\n");

        /* A wall-clock beat (far ahead of the monotonic clock) is a bug in
         * the writer; it must not read as alive forever. */
        atomic_store(&f->health.loop_heartbeat_ms,
                     lb_admin_now_ms() + 1700000000000LL);
        assert_int_equal(get(f, "/healthz", resp, sizeof(resp)), 503);
}

static void test_readyz(void **state)
{
        fixture_t *f = *state;
        char resp[4096];

        assert_int_equal(get(f, "/readyz", resp, sizeof(resp)), 503);
        assert_string_equal(body_of(resp),
                            "not joined to the consumer group\n");

        /* Joined with no request yet (a quiet topic): ready. Readiness
         * never waits for traffic. */
        atomic_store(&f->health.joined, 1);
        assert_int_equal(get(f, "/readyz", resp, sizeof(resp)), 200);
        assert_string_equal(body_of(resp), "ready\n");

        atomic_store(&f->health.api_unreachable, 1);
        assert_int_equal(get(f, "/readyz", resp, sizeof(resp)), 503);
        assert_string_equal(body_of(resp), "API unreachable\n");

        atomic_store(&f->health.api_unreachable, 0);
        assert_int_equal(get(f, "/readyz", resp, sizeof(resp)), 200);
        assert_string_equal(body_of(resp), "ready\n");

        atomic_store(&f->health.stopping, 1);
        assert_int_equal(get(f, "/readyz", resp, sizeof(resp)), 503);
        assert_string_equal(body_of(resp), "shutting down\n");

        /* Readiness and liveness are separate: a stopping bridge whose
         * loop still turns is alive. */
        lb_health_beat(&f->health);
        assert_int_equal(get(f, "/healthz", resp, sizeof(resp)), 200);
}

static void test_not_found(void **state)
{
        fixture_t *f = *state;
        char resp[4096];

        assert_int_equal(get(f, "/", resp, sizeof(resp)), 404);
        assert_int_equal(get(f, "/nope", resp, sizeof(resp)), 404);
        assert_int_equal(get(f, "/metrics/x", resp, sizeof(resp)), 404);
        assert_int_equal(get(f, "/METRICS", resp, sizeof(resp)), 404);
}

static void test_method_not_allowed(void **state)
{
        fixture_t *f = *state;
        char resp[4096];

        assert_int_equal(http_request("127.0.0.1", f->port, "POST", "/metrics",
                                      resp, sizeof(resp)),
                         405);
        assert_non_null(strstr(resp, "\r\nAllow: GET\r\n"));
        assert_int_equal(http_request("127.0.0.1", f->port, "DELETE", "/readyz",
                                      resp, sizeof(resp)),
                         405);
        assert_int_equal(http_request("127.0.0.1", f->port, "PUT", "/nope",
                                      resp, sizeof(resp)),
                         404);
}

static void test_bad_listen(void **state)
{
        static const char *const bad[] = {
            "",
            "nonsense",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "127.0.0.1:-1",
            "127.0.0.1:80x",
            ":9100",
            "example.com:9100",
            "127.1:9100",
            "::1:9100",
            "[::1:9100",
            "[]:9100",
            "[127.0.0.1]:9100",
            "[not-v6]:9100",
            "256.0.0.1:9100",
        };
        lb_metrics_t *m = malloc(sizeof(*m));
        lb_health_t h = {0};
        char errstr[256];
        size_t i;

        (void)state;
        assert_non_null(m);
        lb_metrics_init(m);
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                errstr[0] = '\0';
                if (lb_admin_start(bad[i], m, &h, "v", errstr,
                                   sizeof(errstr)) != NULL)
                        fail_msg("accepted listen \"%s\"", bad[i]);
                if (errstr[0] == '\0')
                        fail_msg("no errstr for \"%s\"", bad[i]);
        }
        errstr[0] = '\0';
        assert_null(lb_admin_start(NULL, m, &h, "v", errstr, sizeof(errstr)));
        assert_true(errstr[0] != '\0');
        lb_admin_stop(NULL);
        free(m);
}

static void test_port_in_use(void **state)
{
        fixture_t *f = *state;
        char listen[64], errstr[256] = "";

        snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
        assert_null(lb_admin_start(listen, &f->metrics, &f->health, "v", errstr,
                                   sizeof(errstr)));
        print_message("port in use: %s\n", errstr);
        assert_non_null(strstr(errstr, listen));
}

static void test_localhost_and_fixed_port(void **state)
{
        fixture_t *f = *state;
        lb_admin_t *a;
        char listen[64], errstr[256], resp[65536];
        int port;

        a = lb_admin_start("localhost:0", &f->metrics, &f->health, NULL, errstr,
                           sizeof(errstr));
        assert_non_null(a);
        port = lb_admin_port(a);
        assert_int_equal(http_request("127.0.0.1", port, "GET", "/metrics",
                                      resp, sizeof(resp)),
                         200);
        assert_non_null(strstr(body_of(resp), "{version=\"unknown\"} 1\n"));
        lb_admin_stop(a);

        a = lb_admin_start("0.0.0.0:0", &f->metrics, &f->health, "v", errstr,
                           sizeof(errstr));
        if (!a)
                fail_msg("%s", errstr);
        assert_int_equal(http_request("127.0.0.1", lb_admin_port(a), "GET",
                                      "/healthz", resp, sizeof(resp)),
                         503);
        lb_admin_stop(a);

        /* The port just released, asked for by number. */
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
        a = lb_admin_start(listen, &f->metrics, &f->health, "v", errstr,
                           sizeof(errstr));
        if (!a)
                fail_msg("%s", errstr);
        assert_int_equal(lb_admin_port(a), port);
        lb_admin_stop(a);
}

static void test_ipv6_loopback(void **state)
{
        fixture_t *f = *state;
        lb_admin_t *a;
        char errstr[256], resp[65536];
        int probe = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        int have_v6 =
            probe >= 0 && bind(probe, (struct sockaddr *)&s6, sizeof(s6)) == 0;

        if (probe >= 0)
                close(probe);
        if (!have_v6)
                skip_or_fail("no IPv6 loopback here for the [::1] test");
        a = lb_admin_start("[::1]:0", &f->metrics, &f->health, "v", errstr,
                           sizeof(errstr));
        if (!a)
                fail_msg("%s", errstr);
        assert_int_equal(http_request("::1", lb_admin_port(a), "GET",
                                      "/metrics", resp, sizeof(resp)),
                         200);
        /* Bound to ::1 only: not reachable over IPv4 loopback. */
        assert_int_equal(http_request("127.0.0.1", lb_admin_port(a), "GET",
                                      "/metrics", resp, sizeof(resp)),
                         -1);
        lb_admin_stop(a);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_ephemeral_port, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
            cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
            cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
            cmocka_unit_test_setup_teardown(test_method_not_allowed, setup,
                                            teardown),
            cmocka_unit_test(test_bad_listen),
            cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
            cmocka_unit_test_setup_teardown(test_localhost_and_fixed_port,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_ipv6_loopback, setup,
                                            teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
