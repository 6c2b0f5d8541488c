/*
 * skip.h: crossing a record batch the consumer cannot read (corrupt, or
 * undecompressable), as a pure state machine. librdkafka reports such a
 * batch as an error at its first offset and fetches it again for ever;
 * the error does not say where the batch ends, and a position inside it
 * gives the same error. So the bridge finds the end itself, by moving the
 * consumer's position: forward in doubling steps until a position reads
 * on (a message, or another batch's error), then by halving the gap, until
 * the first offset past the batch is known exactly (about 2 log2(n) moves
 * for a batch of n). Messages read while probing are not taken: the
 * consumer comes back to them once the end is known, so nothing after the
 * batch is skipped. Pure: the caller moves the consumer.
 */
#ifndef LB_SKIP_H
#define LB_SKIP_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/** @returns whether err says a record batch cannot be read (corrupt, or
 *           undecompressable): librdkafka reports it at the batch's first
 *           offset and fetches it again for ever. */
static inline int lb_skip_unreadable(rd_kafka_resp_err_t err)
{
        return err == RD_KAFKA_RESP_ERR__BAD_COMPRESSION ||
               err == RD_KAFKA_RESP_ERR__BAD_MSG;
}

typedef struct {
        int64_t base;  /* the unreadable batch's first offset (-1: none) */
        int64_t lo;    /* the highest offset known to be in it */
        int64_t hi;    /* the lowest offset known past it (-1: not yet) */
        int64_t probe; /* the position the consumer was last moved to */
        int64_t step;  /* the next forward step while hi is unknown */
} lb_skip_t;

/** @brief No batch being crossed. */
void lb_skip_init(lb_skip_t *s);

/** @returns nonzero while a batch is being crossed. */
int lb_skip_active(const lb_skip_t *s);

/**
 * @brief The consumer reported an unreadable batch at offset (starting a
 *        crossing when none runs). end: the partition's log end offset
 *        (-1: not known); no position goes past it.
 * @returns the position to move the consumer to.
 */
int64_t lb_skip_error(lb_skip_t *s, int64_t offset, int64_t end);

/**
 * @brief A message at offset was read while crossing, or the log's end
 *        was reached there: the last position is past the batch (the
 *        message is not taken). end as for lb_skip_error().
 * @returns the position to move the consumer to.
 */
int64_t lb_skip_message(lb_skip_t *s, int64_t offset, int64_t end);

/** @returns nonzero once the batch's end is known: its offsets are
 *           base..hi-1, and reading goes on at hi. */
int lb_skip_done(const lb_skip_t *s);

#endif
