/*
 * concurrency.h: adaptive request concurrency toward the API (AIMD, in the
 * spirit of Vector's adaptive request concurrency). The limit grows by about
 * one per round trip while answers come back fine and latency stays near
 * its baseline; it halves (at most once per round trip) on 429, 5xx,
 * transport errors, or latency far above the baseline. Always within
 * [1, max]. Pure: time and latencies are passed in.
 */
#ifndef LB_CONCURRENCY_H
#define LB_CONCURRENCY_H

#include <stdint.h>

typedef struct {
        double limit;         /* current limit (fractional while growing) */
        int max;              /* sender.max.inflight */
        double rtt_base_s;    /* EWMA of good round trips; 0 = none yet */
        int64_t cut_until_ms; /* no further cut before this time */
} lb_concurrency_t;

/** Outcome classes the limiter reacts to. */
typedef enum {
        LB_CONC_OK,       /* an HTTP answer that is not overload */
        LB_CONC_OVERLOAD, /* 429, 5xx, transport error or timeout */
} lb_conc_signal_t;

/** @brief Starts at min(initial, max). */
void lb_concurrency_init(lb_concurrency_t *c, int max, int initial);

/** @brief Feeds one finished request. */
void lb_concurrency_observe(lb_concurrency_t *c, lb_conc_signal_t sig,
                            double rtt_s, int64_t now_ms);

/** @returns the whole number of requests allowed in flight now (>= 1). */
int lb_concurrency_limit(const lb_concurrency_t *c);

#endif
