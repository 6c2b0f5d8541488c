/*
 * concurrency.c: the AIMD limiter of concurrency.h.
 */
#include "concurrency.h"

/* Latency this many times the baseline counts as the API slowing down. */
#define LB_CONC_SLOW_FACTOR 3.0
/* Weight of a new sample in the baseline. */
#define LB_CONC_EWMA 0.1

void lb_concurrency_init(lb_concurrency_t *c, int max, int initial)
{
        c->max = max < 1 ? 1 : max;
        c->limit = initial < 1 ? 1 : initial > c->max ? c->max : initial;
        c->rtt_base_s = 0;
        c->cut_until_ms = 0;
}

static void cut(lb_concurrency_t *c, double rtt_s, int64_t now_ms)
{
        if (now_ms < c->cut_until_ms)
                return; /* one cut per round trip: the rest is the same news */
        c->limit = c->limit / 2 < 1 ? 1 : c->limit / 2;
        double rtt = rtt_s > c->rtt_base_s ? rtt_s : c->rtt_base_s;
        c->cut_until_ms = now_ms + (int64_t)(rtt * 1000) + 1;
}

void lb_concurrency_observe(lb_concurrency_t *c, lb_conc_signal_t sig,
                            double rtt_s, int64_t now_ms)
{
        if (rtt_s < 0)
                rtt_s = 0;
        if (sig == LB_CONC_OVERLOAD) {
                cut(c, rtt_s, now_ms);
                return;
        }
        if (c->rtt_base_s > 0 && rtt_s > LB_CONC_SLOW_FACTOR * c->rtt_base_s &&
            rtt_s > 0.005) {
                cut(c, rtt_s, now_ms);
                /* Let the baseline follow a lasting change, slowly. */
                c->rtt_base_s += LB_CONC_EWMA / 4 * (rtt_s - c->rtt_base_s);
                return;
        }
        c->rtt_base_s =
            c->rtt_base_s > 0
                ? c->rtt_base_s + LB_CONC_EWMA * (rtt_s - c->rtt_base_s)
                : rtt_s;
        c->limit += 1.0 / c->limit; /* about +1 per round trip of answers */
        if (c->limit > c->max)
                c->limit = c->max;
}

int lb_concurrency_limit(const lb_concurrency_t *c)
{
        int l = (int)c->limit;
        return l < 1 ? 1 : l > c->max ? c->max : l;
}
