/*
 * backoff.c: retry delays (exponential, full-range jitter over the upper
 * half, Retry-After floor). Pure arithmetic: the caller draws the random
 * number and keeps the attempt count; nothing here overflows for any input.
 */
#include "backoff.h"

#include <math.h>

int64_t lb_backoff_delay_ms(int attempt, int64_t initial_ms, int64_t max_ms,
                            double rnd, int64_t retry_after_ms)
{
        if (attempt < 1)
                attempt = 1;
        if (initial_ms < 0)
                initial_ms = 0;
        if (max_ms < 0)
                max_ms = 0;
        if (!(rnd >= 0.0)) /* negative or NaN */
                rnd = 0.0;
        if (rnd >= 1.0)
                rnd = nextafter(1.0, 0.0);

        /* base = min(max_ms, initial_ms << (attempt - 1)), without ever
         * shifting past the cap; at most 63 doublings reach any cap. */
        int64_t base = initial_ms < max_ms ? initial_ms : max_ms;
        for (int i = 1; i < attempt && base > 0 && base < max_ms; i++)
                base = base > max_ms / 2 ? max_ms : base * 2;

        int64_t half = base / 2;
        int64_t span = base - half + 1; /* values in [half, base] */
        int64_t delay = half + (int64_t)((double)span * rnd);
        if (delay > base) /* rounding of span * rnd for huge spans */
                delay = base;

        if (retry_after_ms >= 0) {
                int64_t floor_ms =
                    retry_after_ms < LB_BACKOFF_RETRY_AFTER_MAX_MS
                        ? retry_after_ms
                        : LB_BACKOFF_RETRY_AFTER_MAX_MS;
                if (delay < floor_ms)
                        delay = floor_ms;
        }
        return delay;
}
