/*
 * admin.c: the admin HTTP server on libmicrohttpd's internal thread. Owns
 * the three GET endpoints and the translation
 * of the loop's health flags into status codes. It only reads the metrics
 * and health state, never logs request contents, and binds exactly the
 * address metrics.listen names.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "listen.h"
#include "log.h"

/* Slow or idle clients are dropped after this long; scrapes are quick. One
 * address (a scraper, a prober) needs a connection or two: at most
 * ADMIN_CONN_PER_IP each, so no one client can take every connection and
 * leave the orchestrator's probes waiting. */
#define ADMIN_CONN_TIMEOUT_S 10
#define ADMIN_CONN_LIMIT     64
#define ADMIN_CONN_PER_IP    8
/* libmicrohttpd warns about every broken connection: said at most once a
 * period once serving, with how many were held back. */
#define ADMIN_WARN_MS 10000

struct lb_admin_s {
        struct MHD_Daemon *daemon;
        lb_metrics_t *metrics; /* not owned */
        lb_health_t *health;   /* not owned */
        char *version;         /* owned copy, or NULL */
        struct sockaddr_storage addr;
        /* The first libmicrohttpd message while starting, for errstr. */
        atomic_int starting;
        atomic_flag start_err_taken;
        char start_err[256];
        lb_log_throttle_t warn; /* libmicrohttpd's thread only */
};

int64_t lb_admin_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lb_health_beat(lb_health_t *h)
{
        atomic_store_explicit(&h->loop_heartbeat_ms, lb_admin_now_ms(),
                              memory_order_relaxed);
}

/* libmicrohttpd's messages go to the one log sink (JSON-safe). */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        lb_admin_t *a = cls;
        char msg[256];
        size_t n;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        uint64_t held = 0;
        if (atomic_load(&a->starting)) {
                if (!atomic_flag_test_and_set(&a->start_err_taken))
                        memcpy(a->start_err, msg, n + 1);
        } else if (!lb_log_throttle(&a->warn, lb_admin_now_ms(), ADMIN_WARN_MS,
                                    &held)) {
                return;
        }
        lb_warn("admin", "libmicrohttpd: %s (%" PRIu64 " more held back)", msg,
                held);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status,
                             const char *text)
{
        struct MHD_Response *r;
        enum MHD_Result ret;

        r = MHD_create_response_from_buffer(strlen(text), (void *)text,
                                            MHD_RESPMEM_PERSISTENT);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; charset=utf-8");
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
                MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
        ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result serve_metrics(lb_admin_t *a, struct MHD_Connection *c)
{
        struct MHD_Response *r;
        enum MHD_Result ret;
        char *text = lb_metrics_render(a->metrics, a->version);

        if (!text)
                return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                             "out of memory\n");
        r = MHD_create_response_from_buffer_with_free_callback(strlen(text),
                                                               text, free);
        if (!r) {
                free(text);
                return MHD_NO;
        }
        /* text is now owned by r */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8");
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
}

static int loop_alive(const lb_health_t *h)
{
        int64_t beat =
            atomic_load_explicit(&h->loop_heartbeat_ms, memory_order_relaxed);
        int64_t age = lb_admin_now_ms() - beat;

        /* A beat from the future means another clock was used (wall time):
         * report stalled rather than alive forever. The small negative
         * allowance covers a beat stored after we read the clock. */
        return beat != 0 && age < LB_ADMIN_STALL_MS && age > -1000;
}

static enum MHD_Result serve_ready(const lb_health_t *h,
                                   struct MHD_Connection *c)
{
        if (atomic_load(&h->stopping))
                return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                             "shutting down\n");
        if (!atomic_load(&h->joined))
                return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                             "not joined to the consumer group\n");
        if (atomic_load(&h->api_unreachable))
                return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                             "API unreachable\n");
        return reply(c, MHD_HTTP_OK, "ready\n");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *http_version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
        lb_admin_t *a = cls;

        (void)http_version;
        (void)upload_data;
        (void)upload_data_size;
        (void)req_cls;
        if (strcmp(url, "/metrics") != 0 && strcmp(url, "/healthz") != 0 &&
            strcmp(url, "/readyz") != 0)
                return reply(c, MHD_HTTP_NOT_FOUND, "not found\n");
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
                return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                             "method not allowed\n");
        if (strcmp(url, "/metrics") == 0)
                return serve_metrics(a, c);
        if (strcmp(url, "/healthz") == 0)
                return loop_alive(a->health)
                           ? reply(c, MHD_HTTP_OK, "ok\n")
                           : reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                   "loop stalled\n");
        return serve_ready(a->health, c);
}

lb_admin_t *lb_admin_start(const char *listen, lb_metrics_t *m, lb_health_t *h,
                           const char *version, char *errstr,
                           size_t errstr_size)
{
        unsigned int flags =
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO;
        lb_admin_t *a;
        int v6 = 0;
        uint16_t port;

        a = calloc(1, sizeof(*a));
        if (!a) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        atomic_flag_clear(&a->start_err_taken);
        a->metrics = m;
        a->health = h;
        if (version && !(a->version = strdup(version))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        char why[256];
        if (lb_listen_parse(listen, &a->addr, &v6, why, sizeof(why))) {
                snprintf(errstr, errstr_size, "metrics.listen: %s", why);
                goto fail;
        }
        if (v6) {
                flags |= MHD_USE_DUAL_STACK;
                port = ntohs(((struct sockaddr_in6 *)&a->addr)->sin6_port);
        } else {
                port = ntohs(((struct sockaddr_in *)&a->addr)->sin_port);
        }

        atomic_store(&a->starting, 1);
        a->daemon = MHD_start_daemon(
            flags, port, NULL, NULL, handle, a, MHD_OPTION_EXTERNAL_LOGGER,
            mhd_log, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a->addr,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)ADMIN_CONN_TIMEOUT_S,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)ADMIN_CONN_LIMIT,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)ADMIN_CONN_PER_IP,
            MHD_OPTION_END);
        atomic_store(&a->starting, 0);
        if (!a->daemon) {
                snprintf(errstr, errstr_size, "metrics.listen \"%s\": %s",
                         listen,
                         a->start_err[0] ? a->start_err
                                         : "cannot start the HTTP server");
                goto fail;
        }
        return a;
fail:
        free(a->version);
        free(a);
        return NULL;
}

int lb_admin_port(const lb_admin_t *a)
{
        const union MHD_DaemonInfo *info;

        if (!a)
                return -1;
        info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
        return info ? info->port : -1;
}

void lb_admin_stop(lb_admin_t *a)
{
        if (!a)
                return;
        MHD_stop_daemon(a->daemon);
        free(a->version);
        free(a);
}
