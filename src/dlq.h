/*
 * dlq.h: the dead-letter producer. Writes an action's original key, value
 * and timestamp to dlq.topic with leanbridge.* error headers, idempotently
 * (acks=all), retries a record that failed, and reports each record back
 * once: acknowledged, or failed once stopping.
 */
#ifndef LB_DLQ_H
#define LB_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"
#include "config.h"

typedef struct lb_dlq_s lb_dlq_t;

/** Called once per produced record from lb_dlq_poll(); err 0 = acked. */
typedef void(lb_dlq_report_cb)(void *opaque, lb_action_t *a, int err,
                               const char *errstr);

/**
 * @returns the producer, or NULL with errstr (bad kafka.* property, ...).
 *          wake_fd (or -1) is written when reports are waiting.
 */
lb_dlq_t *lb_dlq_new(const lb_config_t *conf, lb_dlq_report_cb *report,
                     void *opaque, int wake_fd, char *errstr,
                     size_t errstr_size);

/** Largest key and value bytes of a record written cut (a->dlq_cut). */
#define LB_DLQ_CUT_KEY   128
#define LB_DLQ_CUT_VALUE 256

/**
 * @brief Queues a's dead-letter record; one that fails is produced again
 *        (after a delay, in the order they failed) until it is
 *        acknowledged, or until stopping.
 *
 * A record whose batch the broker refused, as too large (the topic's
 * max.message.bytes) or for a record it cannot take (INVALID_RECORD: a
 * compacted topic, a record without a key), is written again in a batch of
 * its own (a->dlq_alone), by a second producer, and so are new records for
 * LB_DLQ_ALONE_MS after such a refusal (dead letters of one partition may
 * then be written out of their order). A record too large for the producer
 * (message.max.bytes locally, or refused so by the broker when alone: then
 * a->dlq_cut is set before the report) is written cut: key and value cut to
 * LB_DLQ_CUT_KEY and LB_DLQ_CUT_VALUE bytes, with leanbridge.key.truncated
 * and leanbridge.value.truncated giving the original lengths, without the
 * original's headers (leanbridge.headers.dropped: how many); the source
 * headers point at the whole message. Exactly one report follows:
 * acknowledged, or failed after lb_dlq_stop_retrying().
 */
void lb_dlq_send(lb_dlq_t *d, lb_action_t *a);

/** @brief Serves delivery reports and produces the records due again. */
void lb_dlq_poll(lb_dlq_t *d);

/** @returns when a record is next produced again (INT64_MAX: none). */
int64_t lb_dlq_next_retry(const lb_dlq_t *d);

/** @returns how many times a record waited for another try: its delivery
 *           failed, or the producer refused it or had no room for it. */
uint64_t lb_dlq_retries(const lb_dlq_t *d);

/** @brief From now on a record that fails is reported failed, not
 *         retried; those waiting are reported now. */
void lb_dlq_stop_retrying(lb_dlq_t *d);

/**
 * @brief Reports the records waiting to be produced again whose partitions
 *        were revoked as failed, now (as one that fails later is): their
 *        events are the next owner's, which reads them again and writes
 *        its own dead letters.
 * @returns how many.
 */
size_t lb_dlq_give_up_revoked(lb_dlq_t *d);

/** @returns records produced and not yet reported. */
size_t lb_dlq_outstanding(const lb_dlq_t *d);

/** @returns dead letters sent and neither written nor given up yet (with
 *           the producer, or waiting to be produced again). */
size_t lb_dlq_waiting(const lb_dlq_t *d);

/** @returns how long the oldest of those has waited since it was first
 *           produced, in ms (counted from the start of its second); 0
 *           when none waits. */
int64_t lb_dlq_oldest_ms(const lb_dlq_t *d, int64_t now_ms);

/** @returns nonzero once the producer hit a fatal error (restart needed). */
int lb_dlq_fatal(const lb_dlq_t *d, char *errstr, size_t errstr_size);

/** @brief Waits up to timeout_ms for outstanding reports, purges the rest
 *         (reported with an error, so every action comes back once), then
 *         frees. NULL is a no-op. */
void lb_dlq_destroy(lb_dlq_t *d, int timeout_ms);

#endif
