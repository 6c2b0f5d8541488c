/*
 * policy.c: the name lists of the per-app policy (policy.h): parsing,
 * formatting and matching an event against them.
 */
#include "policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Trims s[0..*len) in place of its pointer. */
static const char *trim(const char *s, size_t *len)
{
        while (*len && isspace((unsigned char)*s)) {
                s++;
                (*len)--;
        }
        while (*len && isspace((unsigned char)s[*len - 1]))
                (*len)--;
        return s;
}

/* Adds one trimmed, non-empty entry s[0..len) to l. */
static int entry_add(lb_names_t *l, const char *s, size_t len, size_t pos,
                     char *why, size_t why_size)
{
        lb_match_t m = {.field = LB_MATCH_ACTION};
        size_t plen = sizeof(event_prefix) - 1;
        if (len >= plen && !memcmp(s, event_prefix, plen)) {
                m.field = LB_MATCH_EVENT;
                len -= plen;
                s = trim(s + plen, &len);
                if (!len)
                        return lb_why(why, why_size,
                                      "element %zu names no event after "
                                      "'event:'",
                                      pos);
        }
        if (len > LB_POLICY_NAME_MAX)
                return lb_why(why, why_size,
                              "element %zu is %zu bytes, more than %d", pos,
                              len, LB_POLICY_NAME_MAX);
        for (size_t i = 0; i < l->cnt; i++)
                if (l->v[i].field == m.field && l->v[i].len == len &&
                    !memcmp(l->v[i].name, s, len))
                        return lb_why(why, why_size, "lists '%s%.*s' twice",
                                      m.field == LB_MATCH_EVENT ? event_prefix
                                                                : "",
                                      (int)len, s);
        if (!(m.name = strndup(s, len)))
                return lb_why(why, why_size, "out of memory");
        m.len = len;
        l->v[l->cnt++] = m;
        return 0;
}

int lb_names_parse(const char *value, lb_names_t *out, char *why,
                   size_t why_size)
{
        lb_names_t l = {0};
        size_t all = strlen(value);
        trim(value, &all);
        if (!all) {
                lb_names_free(out);
                return 0;
        }
        size_t cap = 1;
        for (const char *p = value; *p; p++)
                cap += *p == ',';
        if (!(l.v = calloc(cap, sizeof(*l.v))))
                return lb_why(why, why_size, "out of memory");
        const char *p = value;
        for (size_t i = 1; i <= cap; i++) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                const char *s = trim(p, &len);
                if (!len) {
                        lb_names_free(&l);
                        return lb_why(why, why_size,
                                      "must be a comma-separated list of "
                                      "names (element %zu is empty)",
                                      i);
                }
                if (entry_add(&l, s, len, i, why, why_size)) {
                        lb_names_free(&l);
                        return -1;
                }
                p = comma ? comma + 1 : p + len;
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
