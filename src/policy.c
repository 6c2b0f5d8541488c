/*
 * policy.c: the name lists of the per-app policy (policy.h): parsing,
 * formatting and matching an event against them.
 */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "why.h"

static const char event_prefix[] = "event:";

void lb_names_free(lb_names_t *names)
{
        for (size_t i = 0; i < names->cnt; i++)
                free(names->v[i].name);
        free(names->v);
        names->v = NULL;
        names->cnt = 0;
}

/* Adds one entry of a list (trimmed, non-empty) to l, at position pos. */
static int entry_add(lb_names_t *l, char *s, size_t pos, char *why,
                     size_t why_size)
{
        lb_match_t m = {.field = LB_MATCH_ACTION};
        size_t plen = sizeof(event_prefix) - 1;
        if (!strncmp(s, event_prefix, plen)) {
                m.field = LB_MATCH_EVENT;
                s = lb_trim(s + plen);
                if (!*s)
                        return lb_why(why, why_size,
                                      "element %zu names no event after "
                                      "'event:'",
                                      pos);
        }
        size_t len = strlen(s);
        if (len > LB_POLICY_NAME_MAX)
                return lb_why(why, why_size,
                              "element %zu is %zu bytes, more than %d", pos,
                              len, LB_POLICY_NAME_MAX);
        for (size_t i = 0; i < l->cnt; i++)
                if (l->v[i].field == m.field && !strcmp(l->v[i].name, s))
                        return lb_why(
                            why, why_size, "lists '%s%s' twice",
                            m.field == LB_MATCH_EVENT ? event_prefix : "", s);
        if (!(m.name = strdup(s)))
                return lb_why(why, why_size, "out of memory");
        m.len = len;
        l->v[l->cnt++] = m;
        return 0;
}

int lb_names_parse(const char *value, lb_names_t *out, char *why,
                   size_t why_size)
{
        char **v;
        size_t n;
        if (lb_list_parse(value, 1, &v, &n, why, why_size))
                return -1;
        lb_names_t l = {0};
        int rc = 0;
        if (n && !(l.v = calloc(n, sizeof(*l.v))))
                rc = lb_why(why, why_size, "out of memory");
        for (size_t i = 0; i < n && !rc; i++)
                rc = entry_add(&l, v[i], i + 1, why, why_size);
        lb_list_free(v, n);
        if (rc) {
                lb_names_free(&l);
                return -1;
        }
        lb_names_free(out);
        *out = l;
        return 0;
}

void lb_names_format(const lb_names_t *names, char *buf, size_t size)
{
        if (!size)
                return;
        buf[0] = '\0';
        if (!names->cnt) {
                snprintf(buf, size, "(none)");
                return;
        }
        size_t n = 0;
        for (size_t i = 0; i < names->cnt && n < size; i++) {
                const lb_match_t *m = &names->v[i];
                int w = snprintf(buf + n, size - n, "%s%s%s", i ? ", " : "",
                                 m->field == LB_MATCH_EVENT ? event_prefix : "",
                                 m->name);
                if (w < 0)
                        return;
                n += (size_t)w;
        }
}

static int matches(const lb_names_t *l, lb_field_eq_fn eq, void *opaque)
{
        for (size_t i = 0; l && i < l->cnt; i++)
                if (eq(l->v[i].field, l->v[i].name, l->v[i].len, opaque))
                        return 1;
        return 0;
}

lb_close_t lb_policy_classify(const lb_policy_t *p, lb_field_eq_fn eq,
                              void *opaque)
{
        if (matches(p->urgent, eq, opaque))
                return LB_CLOSE_URGENT;
        if (matches(p->session_end, eq, opaque))
                return LB_CLOSE_SESSION_END;
        return LB_CLOSE_NONE;
}
