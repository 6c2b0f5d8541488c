/*
 * admin.h: the operator's HTTP endpoint (libmicrohttpd, its own thread):
 * GET /metrics (Prometheus text), /healthz (the loop is alive), /readyz
 * (joined the group and the API reachable). Binds only metrics.listen.
 */
#ifndef LB_ADMIN_H
#define LB_ADMIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

typedef struct lb_admin_s lb_admin_t;

/** State the loop publishes for the health endpoints. */
typedef struct {
        atomic_int_fast64_t loop_heartbeat_ms; /* monotonic ms of last turn */
        atomic_int joined;                     /* has an assignment */
        atomic_int api_ok;     /* last request had an HTTP answer */
        atomic_int stopping;   /* shutting down */
} lb_health_t;

/**
 * @brief Starts serving on listen ("host:port"; host may be an IPv4
 *        address, "localhost", or "[::1]"-style IPv6).
 * @returns the server, or NULL with errstr set.
 */
lb_admin_t *lb_admin_start(const char *listen, lb_metrics_t *m,
                           lb_health_t *h, const char *version, char *errstr,
                           size_t errstr_size);

/** @returns the port actually bound (useful with port 0). */
int lb_admin_port(const lb_admin_t *a);

/** @brief Stops the server; NULL is a no-op. */
void lb_admin_stop(lb_admin_t *a);

#endif
