/*
 * test_policy.c: the per-app policy's name lists (src/policy.c): parsing
 * (trimming, "event:" names, empty lists, the errors), formatting, and the
 * order of classification (urgent before a session's end).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static void test_parse(void **state)
{
        (void)state;
        lb_names_t l = {0};
        char why[256], buf[256];
        assert_int_equal(lb_names_parse(" stop ,event: Log out , event:x", &l,
                                        why, sizeof(why)),
                         0);
        assert_int_equal(l.cnt, 3);
        assert_int_equal(l.v[0].field, LB_MATCH_ACTION);
        assert_string_equal(l.v[0].name, "stop");
        assert_int_equal(l.v[0].len, 4);
        assert_int_equal(l.v[1].field, LB_MATCH_EVENT);
        assert_string_equal(l.v[1].name, "Log out");
        assert_string_equal(l.v[2].name, "x");
        lb_names_format(&l, buf, sizeof(buf));
        assert_string_equal(buf, "stop, event:Log out, event:x");
        /* The same name as an action and as an event are two names. */
        assert_int_equal(lb_names_parse("x, event:x", &l, why, sizeof(why)), 0);
        assert_int_equal(l.cnt, 2);
        /* Empty: the empty list (a setting turned off). */
        assert_int_equal(lb_names_parse("  ", &l, why, sizeof(why)), 0);
        assert_int_equal(l.cnt, 0);
        lb_names_format(&l, buf, sizeof(buf));
        assert_string_equal(buf, "(none)");
        /* A cut format stays a string. */
        assert_int_equal(lb_names_parse("abcdef,ghijkl", &l, why, sizeof(why)),
                         0);
        lb_names_format(&l, buf, 8);
        assert_string_equal(buf, "abcdef,");
        lb_names_free(&l);
}

static void test_parse_errors(void **state)
{
        (void)state;
        lb_names_t l = {0};
        char why[256], big[LB_POLICY_NAME_MAX + 16];
        assert_int_equal(lb_names_parse("keep", &l, why, sizeof(why)), 0);
        const struct {
                const char *value, *why;
        } bad[] = {
            {"a,,b", "element 2 is empty"},
            {"a,", "element 2 is empty"},
            {"event:  ", "element 1 names no event after 'event:'"},
            {"a, a", "lists 'a' twice"},
            {"event:a,event:a", "lists 'event:a' twice"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(
                    lb_names_parse(bad[i].value, &l, why, sizeof(why)), -1);
                if (!strstr(why, bad[i].why))
                        fail_msg("%s: '%s', want '%s'", bad[i].value, why,
                                 bad[i].why);
                /* a refused value leaves the list as it was */
                assert_int_equal(l.cnt, 1);
                assert_string_equal(l.v[0].name, "keep");
        }
        memset(big, 'x', LB_POLICY_NAME_MAX + 1);
        big[LB_POLICY_NAME_MAX + 1] = '\0';
        assert_int_equal(lb_names_parse(big, &l, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "more than 256"));
        big[LB_POLICY_NAME_MAX] = '\0';
        assert_int_equal(lb_names_parse(big, &l, why, sizeof(why)), 0);
        lb_names_free(&l);
}

/* The event of a test: its action and event fields. */
typedef struct {
        const char *action, *event;
} view_t;

static int eq(lb_match_field_t field, const char *name, size_t len,
              void *opaque)
{
        const view_t *v = opaque;
        const char *s = field == LB_MATCH_EVENT ? v->event : v->action;
        return s && strlen(s) == len && !memcmp(s, name, len);
}

static void test_classify(void **state)
{
        (void)state;
        lb_names_t urgent = {0}, end = {0};
        char why[64];
        assert_int_equal(
            lb_names_parse("event:Purchase, start", &urgent, why, sizeof(why)),
            0);
        assert_int_equal(lb_names_parse("stop", &end, why, sizeof(why)), 0);
        lb_policy_t p = {
            .max_wait_ms = 1, .urgent = &urgent, .session_end = &end};
        assert_int_equal(lb_policy_classify(&p, eq, &(view_t){"track", "Buy"}),
                         LB_CLOSE_NONE);
        assert_int_equal(
            lb_policy_classify(&p, eq, &(view_t){"track", "Purchase"}),
            LB_CLOSE_URGENT);
        assert_int_equal(lb_policy_classify(&p, eq, &(view_t){"start", NULL}),
                         LB_CLOSE_URGENT);
        assert_int_equal(lb_policy_classify(&p, eq, &(view_t){"stop", NULL}),
                         LB_CLOSE_SESSION_END);
        assert_int_equal(
            lb_policy_classify(&p, eq, &(view_t){"stop", "Purchase"}),
            LB_CLOSE_URGENT);
        /* An event named like an action is not that action. */
        assert_int_equal(lb_policy_classify(&p, eq, &(view_t){"x", "stop"}),
                         LB_CLOSE_NONE);
        /* No lists: nothing closes. */
        lb_policy_t none = {0};
        assert_int_equal(
            lb_policy_classify(&none, eq, &(view_t){"stop", "Purchase"}),
            LB_CLOSE_NONE);
        lb_names_free(&urgent);
        lb_names_free(&end);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),
            cmocka_unit_test(test_parse_errors),
            cmocka_unit_test(test_classify),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
