/*
 * kafka_conf.h: builds a librdkafka configuration for one side (consumer or
 * DLQ producer) from the bridge's kafka.* properties, with the bridge's
 * required settings forced, and librdkafka's logs and errors routed to our
 * sink with the secret properties' values taken out.
 */
#ifndef LB_KAFKA_CONF_H
#define LB_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

/**
 * @brief A new rd_kafka_conf_t for side (LB_KAFKA_CONSUMER or
 *        LB_KAFKA_PRODUCER): the bridge's defaults, then every kafka.*
 *        property that applies to that side in order, then the settings the
 *        delivery guarantee depends on.
 * @returns the conf (caller owns), or NULL with errstr naming the key and
 *          librdkafka's own message.
 */
rd_kafka_conf_t *lb_kafka_conf_new(const lb_config_t *conf,
                                   lb_kafka_side_t side, char *errstr,
                                   size_t errstr_size);

/**
 * @brief What making a client for side from conf would refuse, checked
 *        before startup: each property, then how they go together (a
 *        client is made and let go at once).
 * @returns 0, or -1 with errstr saying why.
 */
int lb_kafka_conf_check(const lb_config_t *conf, lb_kafka_side_t side,
                        char *errstr, size_t errstr_size);

/**
 * @returns msg, or buf (cap bytes) holding msg cut where a secret kafka.*
 *          value (of the first configuration a client was made from) begins,
 *          or right after a secret property's name, and marked [redacted]:
 *          librdkafka's messages may quote them. Thread-safe.
 */
const char *lb_kafka_redact(const char *msg, char *buf, size_t cap);

/** @brief Logs librdkafka's error callback (err, reason) as a warning of
 *         component, redacted. */
void lb_kafka_warn(const char *component, int err, const char *reason);

#endif
