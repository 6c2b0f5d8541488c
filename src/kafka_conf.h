/*
 * kafka_conf.h: builds a librdkafka configuration for one side (consumer or
 * DLQ producer) from the bridge's kafka.* properties, with the bridge's
 * required settings forced, and librdkafka's logs routed to our sink.
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

#endif
