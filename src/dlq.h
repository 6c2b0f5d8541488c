/*
 * dlq.h: the dead-letter producer. Writes an action's original key, value
 * and timestamp to dlq.topic with leanbridge.* error headers, idempotently
 * (acks=all), and reports each delivery (success or failure) back once.
 */
#ifndef LB_DLQ_H
#define LB_DLQ_H

#include <stddef.h>

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

/** @brief Checks that librdkafka accepts every producer-side property. */
int lb_dlq_check_conf(const lb_config_t *conf, char *errstr,
                      size_t errstr_size);

/** Largest key and value bytes of a record written cut (a->dlq_cut). */
#define LB_DLQ_CUT_KEY   128
#define LB_DLQ_CUT_VALUE 256

/**
 * @brief Queues a's dead-letter record. app_id may be NULL (unknown app).
 *        A record too large for the producer (message.max.bytes locally,
 *        or refused so by the broker: then a->dlq_cut is set before the
 *        report) is written cut: key and value cut to LB_DLQ_CUT_KEY and
 *        LB_DLQ_CUT_VALUE bytes, with leanbridge.key.truncated and
 *        leanbridge.value.truncated giving the original lengths (the
 *        source headers point at the whole message).
 * @returns 0 (a report will follow); -1 when the local queue is full
 *          (retry later, nothing else will fit now); -2 when the producer
 *          refused this record (retry it later; others may pass). No report
 *          follows a nonzero return.
 */
int lb_dlq_produce(lb_dlq_t *d, lb_action_t *a, const char *app_id);

/** @brief Serves delivery reports. */
void lb_dlq_poll(lb_dlq_t *d);

/** @returns records produced and not yet reported. */
size_t lb_dlq_outstanding(const lb_dlq_t *d);

/** @returns nonzero once the producer hit a fatal error (restart needed). */
int lb_dlq_fatal(const lb_dlq_t *d, char *errstr, size_t errstr_size);

/** @brief Waits up to timeout_ms for outstanding reports, purges the rest
 *         (reported with an error, so every action comes back once), then
 *         frees. NULL is a no-op. */
void lb_dlq_destroy(lb_dlq_t *d, int timeout_ms);

#endif
