/*
 * log.h: the one log sink: text or JSON lines on stderr, levels, component
 * names, and the throttle of messages that can come in floods. librdkafka's
 * log callback goes through it too. Callers never pass secrets; the sink
 * does not know them.
 */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdint.h>

enum { LB_LOG_ERROR = 0, LB_LOG_WARN, LB_LOG_INFO, LB_LOG_DEBUG };

/** @brief Sets the threshold and format (text=0, json=1). Thread-safe. */
void lb_log_setup(int level, int json);

/** @returns the level for "error".."debug", or -1. */
int lb_log_level_parse(const char *name);

/** @returns nonzero if a message at level would be written. */
int lb_log_enabled(int level);

/**
 * @brief Writes one line: time, level, component, message. In JSON format
 *        the message is a string field; printf-style formatting.
 */
void lb_log(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * @brief lb_log's line written by one write(2), waiting for no lock: for
 *        a thread that must not wait for one held by a stuck writer (a
 *        full stderr pipe). May interleave with a line being written.
 */
void lb_log_unlocked(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A warning that can come for every record of a flood: said at most once
 * a period, with how many were held back. */
typedef struct {
        int64_t said_ms; /* when it was last said; 0: never */
        uint64_t held;   /* held back since */
} lb_log_throttle_t;

/**
 * @brief Whether to say the next of t's messages now (at most once every
 *        period_ms; the first at once). *held: how many were held back
 *        before this one, when it is said.
 */
int lb_log_throttle(lb_log_throttle_t *t, int64_t now_ms, int64_t period_ms,
                    uint64_t *held);

#define lb_error(comp, ...) lb_log(LB_LOG_ERROR, comp, __VA_ARGS__)
#define lb_warn(comp, ...)  lb_log(LB_LOG_WARN, comp, __VA_ARGS__)
#define lb_info(comp, ...)  lb_log(LB_LOG_INFO, comp, __VA_ARGS__)
#define lb_debug(comp, ...)                                                    \
        do {                                                                   \
                if (lb_log_enabled(LB_LOG_DEBUG))                              \
                        lb_log(LB_LOG_DEBUG, comp, __VA_ARGS__);               \
        } while (0)

#endif
