/*
 * test_log.c: unit tests of the log sink: level names and threshold, the
 * text and JSON line formats, escaping of control characters, quotes and
 * invalid UTF-8, long messages, errno preservation, and that lines written
 * from many threads never interleave. stderr is redirected to a temporary
 * file for each test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

typedef struct {
        char path[64];
        int saved_fd;
} capture_t;

static void capture_begin(capture_t *c)
{
        snprintf(c->path, sizeof(c->path), "/tmp/lb-test-log-XXXXXX");
        int fd = mkstemp(c->path);
        assert_true(fd >= 0);
        fflush(stderr);
        c->saved_fd = dup(STDERR_FILENO);
        assert_true(c->saved_fd >= 0);
        assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        close(fd);
}

/* Restores stderr and returns what was written (caller frees). */
static char *capture_end(capture_t *c)
{
        fflush(stderr);
        assert_int_equal(dup2(c->saved_fd, STDERR_FILENO), STDERR_FILENO);
        close(c->saved_fd);
        FILE *f = fopen(c->path, "r");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        buf[n] = '\0';
        fclose(f);
        unlink(c->path);
        return buf;
}

static size_t count_lines(const char *s)
{
        size_t n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

static void assert_matches(const char *s, const char *pattern)
{
        regex_t re;
        assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
        int rc = regexec(&re, s, 0, NULL, 0);
        regfree(&re);
        if (rc)
                fail_msg("\"%s\" does not match /%s/", s, pattern);
}

/* Parses one JSON line and returns its message field (caller frees). */
static char *json_message(const char *line, const char *want_level,
                          const char *want_component)
{
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!o)
                fail_msg("not JSON (%s): %s", jerr.text, line);
        assert_true(json_is_object(o));
        assert_int_equal(json_object_size(o), 4);
        assert_string_equal(json_string_value(json_object_get(o, "level")),
                            want_level);
        assert_string_equal(json_string_value(json_object_get(o, "component")),
                            want_component);
        const char *t = json_string_value(json_object_get(o, "time"));
        assert_non_null(t);
        assert_matches(t, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                          "[0-9]{2}\\.[0-9]{3}Z$");
        const char *m = json_string_value(json_object_get(o, "message"));
        assert_non_null(m);
        char *copy = strdup(m);
        json_decref(o);
        return copy;
}

static int reset(void **state)
{
        (void)state;
        lb_log_setup(LB_LOG_INFO, 0);
        return 0;
}

static void test_level_parse(void **state)
{
        (void)state;
        assert_int_equal(lb_log_level_parse("error"), LB_LOG_ERROR);
        assert_int_equal(lb_log_level_parse("warn"), LB_LOG_WARN);
        assert_int_equal(lb_log_level_parse("info"), LB_LOG_INFO);
        assert_int_equal(lb_log_level_parse("debug"), LB_LOG_DEBUG);
        assert_int_equal(lb_log_level_parse("DEBUG"), LB_LOG_DEBUG);
        assert_int_equal(lb_log_level_parse("warning"), -1);
        assert_int_equal(lb_log_level_parse(""), -1);
        assert_int_equal(lb_log_level_parse(NULL), -1);
}

static void test_threshold(void **state)
{
        (void)state;
        lb_log_setup(LB_LOG_WARN, 0);
        assert_true(lb_log_enabled(LB_LOG_ERROR));
        assert_true(lb_log_enabled(LB_LOG_WARN));
        assert_false(lb_log_enabled(LB_LOG_INFO));
        assert_false(lb_log_enabled(LB_LOG_DEBUG));
        capture_t c;
        capture_begin(&c);
        lb_error("t", "e");
        lb_warn("t", "w");
        lb_info("t", "i");
        lb_debug("t", "d");
        char *out = capture_end(&c);
        assert_int_equal(count_lines(out), 2);
        assert_non_null(strstr(out, "ERROR [t] e\n"));
        assert_non_null(strstr(out, "WARN  [t] w\n"));
        free(out);

        lb_log_setup(LB_LOG_DEBUG, 0);
        capture_begin(&c);
        lb_debug("t", "d%d", 1);
        out = capture_end(&c);
        assert_non_null(strstr(out, "DEBUG [t] d1\n"));
        free(out);

        /* out-of-range thresholds are clamped */
        lb_log_setup(99, 0);
        assert_true(lb_log_enabled(LB_LOG_DEBUG));
        lb_log_setup(-5, 0);
        assert_true(lb_log_enabled(LB_LOG_ERROR));
        assert_false(lb_log_enabled(LB_LOG_WARN));
}

static void test_text_format(void **state)
{
        (void)state;
        capture_t c;
        capture_begin(&c);
        lb_info("kafka", "joined group %s with %d partitions", "g", 3);
        lb_info(NULL, "no component");
        char *out = capture_end(&c);
        assert_matches(out, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                            "[0-9]{2}\\.[0-9]{3}Z INFO  \\[kafka\\] joined "
                            "group g with 3 partitions\n");
        assert_non_null(strstr(out, "INFO  [-] no component\n"));
        assert_int_equal(count_lines(out), 2);
        free(out);
}

static void test_text_escaping(void **state)
{
        (void)state;
        capture_t c;
        capture_begin(&c);
        lb_warn("co\nmp", "a\nb\rc\td\x01"
                          "e \"q\" \\ \xC3\xA9 \xFF \xE2\x82 end");
        char *out = capture_end(&c);
        assert_int_equal(count_lines(out), 1);
        assert_non_null(strstr(out, "WARN  [co\\nmp] a\\nb\\rc\\td\\x01e "
                                    "\"q\" \\ \xC3\xA9 \xEF\xBF\xBD "
                                    "\xEF\xBF\xBD\xEF\xBF\xBD end\n"));
        free(out);
}

static void test_json_format(void **state)
{
        (void)state;
        lb_log_setup(LB_LOG_DEBUG, 1);
        capture_t c;
        capture_begin(&c);
        lb_error("sender", "request failed: %s (%d)", "timeout", 28);
        char *out = capture_end(&c);
        assert_int_equal(count_lines(out), 1);
        assert_true(out[0] == '{');
        char *m = json_message(out, "error", "sender");
        assert_string_equal(m, "request failed: timeout (28)");
        free(m);
        free(out);

        capture_begin(&c);
        lb_debug("x", "d");
        lb_warn("x", "w");
        lb_info("x", "i");
        out = capture_end(&c);
        assert_int_equal(count_lines(out), 3);
        assert_non_null(strstr(out, "\"level\":\"debug\""));
        assert_non_null(strstr(out, "\"level\":\"warn\""));
        assert_non_null(strstr(out, "\"level\":\"info\""));
        free(out);
}

static void test_json_escaping(void **state)
{
        (void)state;
        lb_log_setup(LB_LOG_INFO, 1);
        capture_t c;
        capture_begin(&c);
        lb_info("c\"o\\mp", "q\" b\\ n\n r\r t\t bs\b ff\f nul?\x01\x1f "
                            "del\x7f ok\xC3\xA9 \xF0\x9F\x98\x80 bad\xC0\xAF "
                            "sur\xED\xA0\x80 cut\xE2");
        char *out = capture_end(&c);
        assert_int_equal(count_lines(out), 1);
        assert_non_null(strstr(out, "\\u0001\\u001f"));
        assert_non_null(strstr(out, "\\u007f"));
        char *m = json_message(out, "info", "c\"o\\mp");
        assert_string_equal(m, "q\" b\\ n\n r\r t\t bs\b ff\f nul?\x01\x1f "
                               "del\x7f ok\xC3\xA9 \xF0\x9F\x98\x80 "
                               "bad\xEF\xBF\xBD\xEF\xBF\xBD "
                               "sur\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                               "cut\xEF\xBF\xBD");
        free(m);
        free(out);
}

static void test_long_message(void **state)
{
        (void)state;
        size_t n = 100000;
        char *big = malloc(n + 1);
        assert_non_null(big);
        for (size_t i = 0; i < n; i++)
                big[i] = i % 1000 == 999 ? '\n' : (char)('a' + i % 26);
        big[n] = '\0';
        for (int json = 0; json <= 1; json++) {
                lb_log_setup(LB_LOG_INFO, json);
                capture_t c;
                capture_begin(&c);
                lb_info("big", "%s|", big);
                char *out = capture_end(&c);
                assert_int_equal(count_lines(out), 1);
                if (json) {
                        char *m = json_message(out, "info", "big");
                        assert_int_equal(strlen(m), n + 1);
                        assert_memory_equal(m, big, n);
                        free(m);
                } else {
                        /* each '\n' became the two characters "\n" */
                        assert_non_null(strstr(out, "|\n"));
                        assert_true(strlen(out) > n + n / 1000);
                }
                free(out);
        }
        free(big);
}

static void test_errno_preserved(void **state)
{
        (void)state;
        capture_t c;
        capture_begin(&c);
        errno = ENOENT;
        lb_info("t", "x");
        assert_int_equal(errno, ENOENT);
        errno = EAGAIN;
        lb_debug("t", "filtered");
        assert_int_equal(errno, EAGAIN);
        free(capture_end(&c));
}

#define THREADS 8
#define LINES   2000

static void *writer(void *arg)
{
        int id = (int)(intptr_t)arg;
        for (int i = 0; i < LINES; i++)
                lb_info("thread",
                        "writer %d line %d "
                        "..................................",
                        id, i);
        return NULL;
}

static void test_threads(void **state)
{
        (void)state;
        for (int json = 0; json <= 1; json++) {
                lb_log_setup(LB_LOG_INFO, json);
                capture_t c;
                capture_begin(&c);
                pthread_t t[THREADS];
                for (int i = 0; i < THREADS; i++)
                        assert_int_equal(pthread_create(&t[i], NULL, writer,
                                                        (void *)(intptr_t)i),
                                         0);
                for (int i = 0; i < THREADS; i++)
                        pthread_join(t[i], NULL);
                char *out = capture_end(&c);
                assert_int_equal(count_lines(out), THREADS * LINES);
                /* every line is whole: per writer, lines come in order */
                int next[THREADS] = {0};
                char *save = NULL;
                for (char *line = strtok_r(out, "\n", &save); line;
                     line = strtok_r(NULL, "\n", &save)) {
                        int id, n;
                        const char *p = strstr(line, "writer ");
                        assert_non_null(p);
                        assert_int_equal(
                            sscanf(p, "writer %d line %d", &id, &n), 2);
                        assert_true(id >= 0 && id < THREADS);
                        assert_int_equal(n, next[id]);
                        next[id]++;
                        if (json) {
                                char *m = json_message(line, "info", "thread");
                                free(m);
                        } else {
                                assert_non_null(
                                    strstr(line, "INFO  [thread] writer "));
                        }
                }
                free(out);
        }
}

static void test_throttle(void **state)
{
        (void)state;
        lb_log_throttle_t t = {0};
        uint64_t held = 99;
        /* The first at once, whatever the clock says. */
        assert_true(lb_log_throttle(&t, 0, 10000, &held));
        assert_int_equal(held, 0);
        /* Then held back for the period, counted. */
        assert_false(lb_log_throttle(&t, 1, 10000, &held));
        assert_false(lb_log_throttle(&t, 9999, 10000, &held));
        assert_true(lb_log_throttle(&t, 10001, 10000, &held));
        assert_int_equal(held, 2);
        assert_false(lb_log_throttle(&t, 20000, 10000, &held));
        assert_true(lb_log_throttle(&t, 20001, 10000, &held));
        assert_int_equal(held, 1);
        /* A quiet spell: said again at once, nothing held. */
        assert_true(lb_log_throttle(&t, 90000, 10000, &held));
        assert_int_equal(held, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_level_parse, reset),
            cmocka_unit_test_setup(test_threshold, reset),
            cmocka_unit_test_setup(test_text_format, reset),
            cmocka_unit_test_setup(test_text_escaping, reset),
            cmocka_unit_test_setup(test_json_format, reset),
            cmocka_unit_test_setup(test_json_escaping, reset),
            cmocka_unit_test_setup(test_long_message, reset),
            cmocka_unit_test_setup(test_errno_preserved, reset),
            cmocka_unit_test_setup(test_threads, reset),
            cmocka_unit_test(test_throttle),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
