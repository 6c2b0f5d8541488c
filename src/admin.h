/*
 * admin.h: the operator's HTTP endpoint (libmicrohttpd, its own thread):
 * GET /metrics (Prometheus text), /healthz (the loop is alive), /readyz
 * (joined the group, and the API not failing at the transport level).
 * Binds only metrics.listen.
 * It reads lb_metrics_t and lb_health_t and never writes them.
 */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

typedef struct lb_admin_s lb_admin_t;

/** /healthz fails once the loop's heartbeat is this old. */
#define LB_ADMIN_STALL_MS 10000
/* How long the API must have answered no request, while one failed
 * without an answer, for /readyz to say "API unreachable": one request cut
 * among others answered is not. */
#define LB_READY_API_SILENT_MS 10000

/**
 * State the loop publishes for the health endpoints. Zero it (or use
 * {0}) before the loop starts: a heartbeat of 0 reads as "stalled".
 */
typedef struct {
        /* lb_admin_now_ms() at the loop's last turn (lb_health_beat) */
        atomic_int_fast64_t loop_heartbeat_ms;
        atomic_int joined; /* had an assignment (an empty one counts) */
        /* a request got no HTTP answer (connect, DNS, TLS, reset, timeout)
         * and none has been answered for LB_READY_API_SILENT_MS; 0 until a
         * request fails, and again once nothing is left to send, so a
         * quiet topic is never "unready" */
        atomic_int api_unreachable;
        atomic_int stopping; /* shutting down */
} lb_health_t;

/**
 * @returns milliseconds on CLOCK_MONOTONIC: the clock of
 *          loop_heartbeat_ms. Never use wall-clock time for it.
 */
int64_t lb_admin_now_ms(void);

/** @brief Stores lb_admin_now_ms() as the heartbeat; call once per turn. */
void lb_health_beat(lb_health_t *h);

/**
 * @brief Starts serving on listen ("host:port"). host is an IPv4 literal
 *        ("0.0.0.0" for every interface), "localhost" (127.0.0.1 only), or
 *        a bracketed IPv6 literal ("[::1]"; "[::]" also accepts IPv4).
 *        Port 0 binds an ephemeral port (see lb_admin_port). m and h stay
 *        owned by the caller and must outlive the server; version (the
 *        build_info label, NULL = "unknown") is copied.
 * @returns the server, or NULL with errstr set.
 */
lb_admin_t *lb_admin_start(const char *listen, lb_metrics_t *m, lb_health_t *h,
                           const char *version, char *errstr,
                           size_t errstr_size);

/** @returns the port actually bound (useful with port 0). */
int lb_admin_port(const lb_admin_t *a);

/** @brief Stops the server and waits for its thread; NULL is a no-op. */
void lb_admin_stop(lb_admin_t *a);

#endif
