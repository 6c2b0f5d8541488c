/*
 * backoff.h: retry delays: exponential with jitter, bounded, honouring the
 * server's Retry-After. Pure: the random draw is passed in.
 */
#ifndef LB_BACKOFF_H
#define LB_BACKOFF_H

#include <stdint.h>

/**
 * @brief Delay before retry number `attempt` (1 = first retry):
 *        base = min(max_ms, initial_ms * 2^(attempt-1)); the result is drawn
 *        uniformly from [base/2, base] using rnd in [0,1). When retry_after_ms
 *        >= 0 the delay is at least that (capped at one hour).
 */
int64_t lb_backoff_delay_ms(int attempt, int64_t initial_ms, int64_t max_ms,
                            double rnd, int64_t retry_after_ms);

#endif
