/*
 * backoff.h: retry delays: exponential with jitter, bounded, honouring the
 * server's Retry-After. Pure: the random draw is passed in.
 */
#ifndef LB_BACKOFF_H
#define LB_BACKOFF_H

#include <stdint.h>

/** Longest server-requested delay honoured (Retry-After), one hour. */
#define LB_BACKOFF_RETRY_AFTER_MAX_MS (3600 * 1000)

/**
 * @brief Delay before retry number `attempt` (1 = first retry):
 *        base = min(max_ms, initial_ms * 2^(attempt-1)); the result is drawn
 *        uniformly from [base/2, base] using rnd in [0,1). When retry_after_ms
 *        >= 0 the delay is at least that (capped at one hour).
 *        Out-of-range inputs are clamped, never undefined: attempt < 1 counts
 *        as 1, negative times as 0, rnd outside [0,1) (or NaN) to that range;
 *        the doubling saturates at max_ms for any attempt.
 */
int64_t lb_backoff_delay_ms(int attempt, int64_t initial_ms, int64_t max_ms,
                            double rnd, int64_t retry_after_ms);

#endif
