/*
 * kafka_conf.c: kafka.* properties -> rd_kafka_conf_t. Owns the list of
 * settings the bridge forces (manual offset store, idempotent DLQ producer)
 * and the log callback that sends librdkafka's lines to lb_log.
 */
#include "kafka_conf.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct {
        const char *name;
        const char *value;
} kv_t;

/* Defaults a user may override. */
static const kv_t consumer_defaults[] = {
    {"auto.commit.interval.ms", "1000"},
    {"partition.assignment.strategy", "range,roundrobin"},
    /* Smaller per-partition fetches keep the overshoot past the prefetch
     * thresholds (config.h's LB_PREFETCH_*, sized from the memory limit),
     * and so the memory, small. Measured in docs/performance.md
     * (1M-event backlog: 100000 / 1 MB gave 124k events/s and 99 MB RSS;
     * 150000 / 256 KiB, 170k events/s and 104 MB). */
    {"max.partition.fetch.bytes", "262144"},
    {"statistics.interval.ms", "5000"},
};
static const kv_t producer_defaults[] = {
    {"linger.ms", "5"},
    /* A dead-letter record carries the original value whole: allow what
     * the consumer may receive. The DLQ topic's max.message.bytes should
     * be at least the input topics' (a batch it refuses is written again
     * one record a batch; a record it refuses alone is written cut). */
    {"message.max.bytes", "16777216"},
    {"message.timeout.ms", "120000"},
};

/* Settings the delivery guarantee depends on: applied last. */
static const kv_t consumer_forced[] = {
    /* The bridge commits itself, every auto.commit.interval.ms, with the
     * offset map as metadata (librdkafka 2.0.2's store drops metadata) */
    {"enable.auto.offset.store", "false"},
    {"enable.auto.commit", "false"},
    /* the end of a partition zeroes its consume delay (the scaling
     * signal); the loop reads the event and takes nothing from it */
    {"enable.partition.eof", "true"},
};
static const kv_t producer_forced[] = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
    /* a dead letter is done when its success is reported */
    {"delivery.report.only.error", "false"},
};

/* Properties (any value, or the one named) a side cannot run with, and
 * why: refused at startup. A value is compared as librdkafka holds it once
 * set (so "t", "1" and "TRUE" are all "true"). */
typedef struct {
        int consumer; /* the side: 1 the consumer, 0 the producer */
        const char *name;
        const char *value; /* NULL: any */
        const char *why;
} refusal_t;
static const refusal_t refused[] = {
    {0, "transactional.id", NULL,
     "the dead-letter producer is not transactional: a transactional "
     "producer refuses every record sent outside a transaction"},
    /* a record the topic refuses (too large, invalid) would then end the
     * producer (fatal), the bridge with it, and the next start on the same
     * event: a crash loop instead of writing it cut or alone */
    {0, "enable.gapless.guarantee", "true",
     "it makes a record the topic refuses fatal to the dead-letter "
     "producer (the bridge writes such a record again, cut or alone)"},
    /* librdkafka then stops reading a partition whose position is gone
     * (past retention, or a group without commits) and reports an error
     * the bridge cannot act on: the partition would never be read again */
    {1, "auto.offset.reset", "error",
     "'error' would leave a partition whose position is gone unread for "
     "good; use earliest or latest"},
};

/* @returns why p, set in kc, cannot be on the side, or NULL. */
static const char *refusal(const rd_kafka_conf_t *kc, const lb_kafka_prop_t *p,
                           int consumer)
{
        for (size_t r = 0; r < sizeof(refused) / sizeof(refused[0]); r++) {
                if (refused[r].consumer != consumer ||
                    strcmp(p->name, refused[r].name))
                        continue;
                char v[64];
                size_t n = sizeof(v);
                if (!refused[r].value ||
                    (rd_kafka_conf_get(kc, p->name, v, &n) ==
                         RD_KAFKA_CONF_OK &&
                     !strcmp(v, refused[r].value)))
                        return refused[r].why;
        }
        return NULL;
}

/* The secret kafka.* properties whose values librdkafka's messages may
 * echo (a parse error of sasl.oauthbearer.config quotes it from where it
 * failed), taken from the first configuration a client is made from: the
 * kafka.* properties never change after startup. */
#define SECRETS_MAX 16
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static lb_kafka_prop_t secrets[SECRETS_MAX]; /* copies, kept to exit */
static size_t secret_cnt;
static int secrets_known;

static void secrets_take(const lb_config_t *conf)
{
        char key[256];
        pthread_mutex_lock(&secrets_lock);
        for (size_t i = 0; !secrets_known && i < conf->kafka_cnt; i++) {
                const lb_kafka_prop_t *p = &conf->kafka[i];
                snprintf(key, sizeof(key), "kafka.%s", p->name);
                if (!lb_config_key_is_secret(key) || secret_cnt == SECRETS_MAX)
                        continue;
                lb_kafka_prop_t *c = &secrets[secret_cnt];
                c->name = strdup(p->name);
                c->value = strdup(p->value);
                if (c->name && c->value) {
                        secret_cnt++;
                } else {
                        free(c->name);
                        free(c->value);
                }
        }
        secrets_known = 1;
        pthread_mutex_unlock(&secrets_lock);
}

/* Where msg must be cut: at a secret's value (4 bytes or more), or right
 * after a secret property's name (what follows may quote its value);
 * NULL: nowhere. */
static const char *secret_cut(const char *msg)
{
        const char *cut = NULL, *at;
        for (size_t i = 0; i < secret_cnt; i++) {
                const lb_kafka_prop_t *p = &secrets[i];
                if (strlen(p->value) >= 4 && (at = strstr(msg, p->value)) &&
                    (!cut || at < cut))
                        cut = at;
                if ((at = strstr(msg, p->name)) &&
                    (at += strlen(p->name), !cut || at < cut))
                        cut = at;
        }
        return cut;
}

const char *lb_kafka_redact(const char *msg, char *buf, size_t cap)
{
        pthread_mutex_lock(&secrets_lock);
        const char *cut = msg ? secret_cut(msg) : NULL;
        pthread_mutex_unlock(&secrets_lock);
        if (!cut)
                return msg;
        snprintf(buf, cap, "%.*s [redacted]", (int)(cut - msg), msg);
        return buf;
}

void lb_kafka_warn(const char *component, int err, const char *reason)
{
        char buf[1024];
        lb_warn(component, "%s: %s", rd_kafka_err2name(err),
                lb_kafka_redact(reason, buf, sizeof(buf)));
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        (void)rk;
        char clean[1024];
        int lvl = level <= 3   ? LB_LOG_ERROR
                  : level <= 4 ? LB_LOG_WARN
                  : level <= 6 ? LB_LOG_INFO
                               : LB_LOG_DEBUG;
        lb_log(lvl, "kafka", "%s: %s", fac,
               lb_kafka_redact(buf, clean, sizeof(clean)));
}

static int set_all(rd_kafka_conf_t *kc, const kv_t *kv, size_t n,
                   const char *what, char *errstr, size_t errstr_size)
{
        char err[512];
        for (size_t i = 0; i < n; i++) {
                if (rd_kafka_conf_set(kc, kv[i].name, kv[i].value, err,
                                      sizeof(err)) != RD_KAFKA_CONF_OK) {
                        snprintf(errstr, errstr_size, "%s '%s': %s", what,
                                 kv[i].name, err);
                        return -1;
                }
        }
        return 0;
}

/* The consumer's prefetch as the memory limit sized it (config.h): each
 * setting no kafka.* key sets (one that does is the user's own line, which
 * librdkafka judges and names). */
static int set_prefetch(rd_kafka_conf_t *kc, const lb_config_t *conf,
                        char *errstr, size_t errstr_size)
{
        const struct {
                const char *name;
                int64_t (*value)(const lb_config_t *conf);
        } sized[] = {
            {"queued.max.messages.kbytes", lb_config_prefetch_kbytes},
            {"queued.min.messages", lb_config_prefetch_messages},
            {"fetch.max.bytes", lb_config_prefetch_fetch},
        };
        for (size_t i = 0; i < sizeof(sized) / sizeof(sized[0]); i++) {
                if (lb_config_kafka_get(conf, sized[i].name, LB_KAFKA_CONSUMER))
                        continue;
                char v[24];
                snprintf(v, sizeof(v), "%" PRId64, sized[i].value(conf));
                const kv_t kv = {sized[i].name, v};
                if (set_all(kc, &kv, 1, "default", errstr, errstr_size))
                        return -1;
        }
        return 0;
}

rd_kafka_conf_t *lb_kafka_conf_new(const lb_config_t *conf,
                                   lb_kafka_side_t side, char *errstr,
                                   size_t errstr_size)
{
        int consumer = side == LB_KAFKA_CONSUMER;
        secrets_take(conf);
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        char err[512];

        if (set_all(kc, consumer ? consumer_defaults : producer_defaults,
                    consumer ? sizeof(consumer_defaults) / sizeof(kv_t)
                             : sizeof(producer_defaults) / sizeof(kv_t),
                    "default", errstr, errstr_size) ||
            (consumer && set_prefetch(kc, conf, errstr, errstr_size)))
                goto fail;
        for (size_t i = 0; i < conf->kafka_cnt; i++) {
                const lb_kafka_prop_t *p = &conf->kafka[i];
                if (p->side != LB_KAFKA_BOTH && p->side != side)
                        continue;
                const char *why = NULL;
                if (rd_kafka_conf_set(kc, p->name, p->value, err,
                                      sizeof(err)) != RD_KAFKA_CONF_OK ||
                    (why = refusal(kc, p, consumer))) {
                        const char *prefix =
                            p->side == LB_KAFKA_CONSUMER   ? "kafka.consumer."
                            : p->side == LB_KAFKA_PRODUCER ? "kafka.producer."
                                                           : "kafka.";
                        snprintf(errstr, errstr_size,
                                 "invalid configuration key '%s%s': %s", prefix,
                                 p->name, why ? why : err);
                        goto fail;
                }
        }
        if (set_all(kc, consumer ? consumer_forced : producer_forced,
                    consumer ? sizeof(consumer_forced) / sizeof(kv_t)
                             : sizeof(producer_forced) / sizeof(kv_t),
                    "required setting", errstr, errstr_size))
                goto fail;
        rd_kafka_conf_set_log_cb(kc, log_cb);
        return kc;
fail:
        rd_kafka_conf_destroy(kc);
        return NULL;
}

static void silent_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                          const char *buf)
{
        (void)rk;
        (void)level;
        (void)fac;
        (void)buf;
}

int lb_kafka_conf_check(const lb_config_t *conf, lb_kafka_side_t side,
                        char *errstr, size_t errstr_size)
{
        char err[512];
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(conf, side, errstr, errstr_size);
        if (!kc)
                return -1;
        /* librdkafka checks how the properties go together (the session
         * timeout against max.poll.interval.ms, what idempotence needs) only
         * when a client is made: one is, and let go at once, silent (it
         * may have started to connect). */
        rd_kafka_conf_set_log_cb(kc, silent_log_cb);
        rd_kafka_t *rk = rd_kafka_new(
            side == LB_KAFKA_CONSUMER ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER,
            kc, err, sizeof(err));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                snprintf(errstr, errstr_size, "kafka.%s properties: %s",
                         side == LB_KAFKA_CONSUMER ? "consumer" : "producer",
                         err);
                return -1;
        }
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return 0;
}
