/*
 * list.c: trimming and comma lists of configuration values (list.h).
 */
#include "list.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "why.h"

char *lb_trim(char *s)
{
        while (isspace((unsigned char)*s))
                s++;
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
                s[--n] = '\0';
        return s;
}

void lb_list_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

int lb_list_parse(const char *value, int allow_empty, char ***out,
                  size_t *out_cnt, char *why, size_t why_size)
{
        char *copy = strdup(value);
        char **v = NULL;
        size_t n = 0;
        int rc = -1;
        if (!copy) {
                lb_why(why, why_size, "out of memory");
                goto out;
        }
        if (allow_empty && !value[strspn(value, " \t\n\v\f\r")]) {
                *out = NULL;
                *out_cnt = 0;
                rc = 0;
                goto out;
        }
        size_t cap = 1;
        for (const char *p = value; *p; p++)
                cap += *p == ',';
        v = calloc(cap, sizeof(*v));
        if (!v) {
                lb_why(why, why_size, "out of memory");
                goto out;
        }
        char *save = copy;
        for (size_t i = 0; i < cap; i++) {
                char *comma = strchr(save, ',');
                if (comma)
                        *comma = '\0';
                char *elem = lb_trim(save);
                save = comma ? comma + 1 : save + strlen(save);
                if (!*elem) {
                        lb_why(why, why_size,
                               "must be a comma-separated list of non-empty "
                               "names (element %zu is empty)",
                               i + 1);
                        goto out;
                }
                for (size_t j = 0; j < n; j++) {
                        if (!strcmp(v[j], elem)) {
                                lb_why(why, why_size, "lists '%s' twice", elem);
                                goto out;
                        }
                }
                if (!(v[n] = strdup(elem))) {
                        lb_why(why, why_size, "out of memory");
                        goto out;
                }
                n++;
        }
        *out = v;
        *out_cnt = n;
        v = NULL;
        rc = 0;
out:
        if (v)
                lb_list_free(v, n);
        free(copy);
        return rc;
}
