/*
 * apps_watch.h: when the apps file's client keys are read again: on SIGHUP,
 * or when the file is another one than when last read (a Kubernetes Secret
 * volume swaps a symlink: a new inode; an edit: a new size or mtime) and
 * was the same at the look before, looked at every LB_APPS_WATCH_MS: a
 * file caught while it is written in place (a key cut short) waits until
 * it has stopped changing. Decides only; the reload itself is
 * lb_config_reload_apps().
 */
#ifndef LB_APPS_WATCH_H
#define LB_APPS_WATCH_H

#include <stdint.h>
#include <sys/stat.h>

/* How often the apps file is looked at for a change. */
#define LB_APPS_WATCH_MS 5000

typedef struct {
        const char *path; /* NULL: no apps file, only SIGHUP */
        struct stat st;   /* the file when last read */
        struct stat seen; /* a changed file at the last look ... */
        int seen_valid;   /* ... if there was one */
        int64_t checked_ms;
} lb_apps_watch_t;

/** @brief Starts watching path (may be NULL), as read at now. */
void lb_apps_watch_init(lb_apps_watch_t *w, const char *path, int64_t now);

/**
 * @returns why the keys are to be read again now ("SIGHUP" when sighup,
 *          "apps file changed"), or NULL; the file as it is now counts as
 *          read.
 */
const char *lb_apps_watch_due(lb_apps_watch_t *w, int sighup, int64_t now);

/** @returns nonzero when x and y are the same file, unchanged. */
int lb_apps_same_file(const struct stat *x, const struct stat *y);

#endif
