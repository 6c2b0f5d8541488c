/*
 * log.c: the process-wide log sink. Formats one line (text or JSON) per call
 * and writes it to stderr with a single fwrite under a mutex, so lines from
 * different threads never interleave. Control characters and invalid UTF-8
 * in the component and message are escaped or replaced, so one call is
 * always exactly one line. Knows nothing of the configuration or secrets.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = LB_LOG_INFO;
static atomic_int log_json;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_text[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

/* Worst case growth of one input byte when escaped: "\u00XX". */
#define ESC_MAX      6
#define LINE_FIXED   128 /* time, level, punctuation */
#define STACK_LINE   4096
#define STACK_FORMAT 1024

void lb_log_setup(int level, int json)
{
        if (level < LB_LOG_ERROR)
                level = LB_LOG_ERROR;
        if (level > LB_LOG_DEBUG)
                level = LB_LOG_DEBUG;
        atomic_store(&log_level, level);
        atomic_store(&log_json, !!json);
}

int lb_log_level_parse(const char *name)
{
        if (!name)
                return -1;
        for (int i = LB_LOG_ERROR; i <= LB_LOG_DEBUG; i++)
                if (!strcasecmp(name, level_names[i]))
                        return i;
        return -1;
}

int lb_log_enabled(int level)
{
        return level <= atomic_load(&log_level);
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
        unsigned char c = s[0];
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
                n = 2;
        else if (c >= 0xE0 && c <= 0xEF)
                n = 3;
        else if (c >= 0xF0 && c <= 0xF4)
                n = 4;
        else
                return 0;
        if (n > avail)
                return 0;
        if (c == 0xE0)
                lo = 0xA0;
        else if (c == 0xED)
                hi = 0x9F;
        else if (c == 0xF0)
                lo = 0x90;
        else if (c == 0xF4)
                hi = 0x8F;
        if (s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (s[i] < 0x80 || s[i] > 0xBF)
                        return 0;
        return n;
}

/* Appends s[0..n) to out escaped for the format; returns the new end. The
 * caller provides ESC_MAX bytes per input byte. */
static char *put_escaped(char *out, const char *s, size_t n, int json)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0;
        while (i < n) {
                unsigned char c = p[i];
                if (c >= 0x80) {
                        size_t u = utf8_len(p + i, n - i);
                        if (u) {
                                memcpy(out, p + i, u);
                                out += u;
                                i += u;
                        } else {
                                memcpy(out, "\xEF\xBF\xBD", 3); /* U+FFFD */
                                out += 3;
                                i++;
                        }
                        continue;
                }
                i++;
                char esc = 0;
                switch (c) {
                case '\n':
                        esc = 'n';
                        break;
                case '\r':
                        esc = 'r';
                        break;
                case '\t':
                        esc = 't';
                        break;
                case '"':
                case '\\':
                        if (json)
                                esc = (char)c;
                        break;
                case '\b':
                        if (json)
                                esc = 'b';
                        break;
                case '\f':
                        if (json)
                                esc = 'f';
                        break;
                default:
                        break;
                }
                if (esc) {
                        *out++ = '\\';
                        *out++ = esc;
                } else if (c < 0x20 || c == 0x7F) {
                        if (json) {
                                memcpy(out, "\\u00", 4);
                                out += 4;
                        } else {
                                memcpy(out, "\\x", 2);
                                out += 2;
                        }
                        *out++ = hex[c >> 4];
                        *out++ = hex[c & 0xF];
                } else {
                        *out++ = (char)c;
                }
        }
        return out;
}

static void format_time(char *buf, size_t size)
{
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* lb_log's and lb_log_unlocked's line, written under the sink's lock
 * (locked) or by one write(2) that waits for no lock. */
static void vlog(int level, const char *component, int locked, const char *fmt,
                 va_list args)
{
        if (!lb_log_enabled(level))
                return;
        if (level < LB_LOG_ERROR)
                level = LB_LOG_ERROR;
        int saved_errno = errno;
        char msg_stack[STACK_FORMAT], line_stack[STACK_LINE];
        char *msg = msg_stack, *line = line_stack;
        va_list ap;

        va_copy(ap, args);
        int r = vsnprintf(msg_stack, sizeof(msg_stack), fmt, ap);
        va_end(ap);
        size_t msg_len = r < 0 ? 0 : (size_t)r;
        if (msg_len >= sizeof(msg_stack)) {
                char *heap = malloc(msg_len + 1);
                if (heap) {
                        va_copy(ap, args);
                        vsnprintf(heap, msg_len + 1, fmt, ap);
                        va_end(ap);
                        msg = heap;
                } else {
                        msg_len = sizeof(msg_stack) - 1; /* truncated */
                }
        }

        if (!component)
                component = "-";
        size_t comp_len = strnlen(component, 64);
        size_t need = LINE_FIXED + ESC_MAX * (comp_len + msg_len);
        if (need > sizeof(line_stack)) {
                line = malloc(need);
                if (!line) {
                        line = line_stack;
                        msg_len = (sizeof(line_stack) - LINE_FIXED) / ESC_MAX -
                                  comp_len;
                }
        }

        int json = atomic_load(&log_json);
        char ts[40];
        format_time(ts, sizeof(ts));
        char *p = line;
        if (json) {
                p += sprintf(p,
                             "{\"time\":\"%s\",\"level\":\"%s\","
                             "\"component\":\"",
                             ts, level_names[level]);
                p = put_escaped(p, component, comp_len, 1);
                p += sprintf(p, "\",\"message\":\"");
                p = put_escaped(p, msg, msg_len, 1);
                p += sprintf(p, "\"}\n");
        } else {
                p += sprintf(p, "%s %s [", ts, level_text[level]);
                p = put_escaped(p, component, comp_len, 0);
                p += sprintf(p, "] ");
                p = put_escaped(p, msg, msg_len, 0);
                *p++ = '\n';
        }

        if (locked) {
                pthread_mutex_lock(&log_lock);
                fwrite(line, 1, (size_t)(p - line), stderr);
                fflush(stderr);
                pthread_mutex_unlock(&log_lock);
        } else if (write(2, line, (size_t)(p - line)) < 0) {
                /* nowhere left to say it */
        }

        if (line != line_stack)
                free(line);
        if (msg != msg_stack)
                free(msg);
        errno = saved_errno;
}

void lb_log(int level, const char *component, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vlog(level, component, 1, fmt, ap);
        va_end(ap);
}

void lb_log_unlocked(int level, const char *component, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vlog(level, component, 0, fmt, ap);
        va_end(ap);
}

int lb_log_throttle(lb_log_throttle_t *t, int64_t now_ms, int64_t period_ms,
                    uint64_t *held)
{
        if (t->said_ms && now_ms - t->said_ms < period_ms) {
                t->held++;
                return 0;
        }
        *held = t->held;
        t->held = 0;
        t->said_ms = now_ms > 0 ? now_ms : 1;
        return 1;
}
