/*
 * apps_watch.c: when the apps file is read again (see apps_watch.h).
 */
#include "apps_watch.h"

#include <string.h>

int lb_apps_same_file(const struct stat *x, const struct stat *y)
{
        return x->st_dev == y->st_dev && x->st_ino == y->st_ino &&
               x->st_size == y->st_size &&
               x->st_mtim.tv_sec == y->st_mtim.tv_sec &&
               x->st_mtim.tv_nsec == y->st_mtim.tv_nsec;
}

void lb_apps_watch_init(lb_apps_watch_t *w, const char *path, int64_t now)
{
        memset(w, 0, sizeof(*w));
        w->path = path;
        w->checked_ms = now;
        if (path)
                stat(path, &w->st);
}

const char *lb_apps_watch_due(lb_apps_watch_t *w, int sighup, int64_t now)
{
        struct stat st;
        if (sighup) {
                if (w->path)
                        stat(w->path, &w->st);
                return "SIGHUP";
        }
        if (!w->path || now - w->checked_ms < LB_APPS_WATCH_MS)
                return NULL;
        w->checked_ms = now;
        if (stat(w->path, &st) || lb_apps_same_file(&st, &w->st)) {
                w->seen_valid = 0;
                return NULL;
        }
        if (!w->seen_valid || !lb_apps_same_file(&st, &w->seen)) {
                w->seen = st; /* changed since: wait for it to settle */
                w->seen_valid = 1;
                return NULL;
        }
        w->seen_valid = 0;
        w->st = st;
        return "apps file changed";
}
