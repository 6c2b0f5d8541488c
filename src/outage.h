/*
 * outage.h: whether the API is failing for everyone (outage mode), as a
 * pure state machine fed with request outcomes. The bridge enters outage
 * mode when retriable failures (transport errors and timeouts, 429, 5xx)
 * hit every request for a while: at least min_failures failures of at least
 * two different requests, spanning at least window_ms, with no success in
 * between. A single request that keeps failing alone never starts it (its
 * retry.max.attempts keep their meaning). Any success leaves it at once.
 * While in it, the bridge pauses its input, sends one probe at a time after
 * a capped backoff (lb_outage_probes() gives the step), and retriable
 * failures neither count as attempts nor dead-letter. Pure: time is passed
 * in; no I/O.
 */
#ifndef LB_OUTAGE_H
#define LB_OUTAGE_H

#include <stdint.h>

typedef struct {
        int64_t window_ms; /* failures only, for at least this long */
        int min_failures;  /* and at least this many */
        int active;        /* in outage mode */
        int run;           /* retriable failures since the last success */
        int requests;      /* different requests among them (2 is enough) */
        int64_t run_start; /* when the first of them came */
        uintptr_t last_id; /* the request of the last failure */
        int probes;        /* failures while active */
} lb_outage_t;

/** @brief Starts outside outage mode. */
void lb_outage_init(lb_outage_t *o, int64_t window_ms, int min_failures);

/**
 * @brief Feeds one finished request.
 * @param id the request's identity (same for each attempt of a request)
 * @param failed 1 for a retriable failure, 0 for any other answer
 * @returns 1 if the outcome entered or left outage mode, else 0.
 */
int lb_outage_observe(lb_outage_t *o, uintptr_t id, int failed, int64_t now);

/**
 * @brief Leaves outage mode without an answer: nothing is left to probe
 *        with (every request given up, a quiet input); the next requests
 *        tell anew. Outside outage mode a run of failures is kept.
 * @returns 1 if it was in outage mode.
 */
int lb_outage_leave(lb_outage_t *o);

/** @returns 1 in outage mode. */
int lb_outage_active(const lb_outage_t *o);

/** @returns failures since outage mode began (the probes' backoff step). */
int lb_outage_probes(const lb_outage_t *o);

#endif
