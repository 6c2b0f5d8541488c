/*
 * test_apps_watch.c: when the apps file's keys are read again: always on
 * SIGHUP; on a change only once LB_APPS_WATCH_MS passed since the last
 * look and the file was the same at the look before (one written in place
 * is not read half-written); a change is a new inode (a swapped Secret
 * symlink), size or mtime;
 * an unchanged or missing file is no reason; without a path only SIGHUP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "apps_watch.h"
#include "tmpdir.h"

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_sighup_always(void **state)
{
        (void)state;
        lb_apps_watch_t w;
        lb_apps_watch_init(&w, NULL, 0);
        assert_string_equal(lb_apps_watch_due(&w, 1, 1), "SIGHUP");
        assert_null(lb_apps_watch_due(&w, 0, 100000)); /* no file */
}

static void test_change_seen_after_interval(void **state)
{
        (void)state;
        char path[128], tmp[128];
        snprintf(path, sizeof(path), "%s/apps.json", tmpdir);
        snprintf(tmp, sizeof(tmp), "%s/apps.new", tmpdir);
        write_file(path, "{\"a\":1}");
        lb_apps_watch_t w;
        lb_apps_watch_init(&w, path, 1000);
        assert_null(lb_apps_watch_due(&w, 0, 1000 + LB_APPS_WATCH_MS));
        /* swapped like a Secret volume: a new inode, same size */
        write_file(tmp, "{\"a\":2}");
        assert_int_equal(rename(tmp, path), 0);
        assert_null(lb_apps_watch_due(&w, 0, 1000 + LB_APPS_WATCH_MS + 1));
        /* seen changed: read at the next look if it is the same then */
        assert_null(lb_apps_watch_due(&w, 0, 1000 + 2 * LB_APPS_WATCH_MS));
        assert_string_equal(
            lb_apps_watch_due(&w, 0, 1000 + 3 * LB_APPS_WATCH_MS),
            "apps file changed");
        /* read: the same file is no reason any more */
        assert_null(lb_apps_watch_due(&w, 0, 1000 + 4 * LB_APPS_WATCH_MS));
        /* a missing file keeps the keys as they are */
        assert_int_equal(unlink(path), 0);
        assert_null(lb_apps_watch_due(&w, 0, 1000 + 5 * LB_APPS_WATCH_MS));
}

/* A file written in place while it is looked at (a key cut short) is not
 * read until it is the same at two looks in a row. */
static void test_change_read_once_settled(void **state)
{
        (void)state;
        char path[128];
        snprintf(path, sizeof(path), "%s/apps.txt", tmpdir);
        write_file(path, "a1:KEY1\n");
        lb_apps_watch_t w;
        lb_apps_watch_init(&w, path, 0);
        int64_t t = 0;
        write_file(path, "a1:KEY1\na2:KE"); /* caught mid-write */
        assert_null(lb_apps_watch_due(&w, 0, t += LB_APPS_WATCH_MS));
        write_file(path, "a1:KEY1\na2:KEY2\n"); /* done */
        assert_null(lb_apps_watch_due(&w, 0, t += LB_APPS_WATCH_MS));
        assert_string_equal(lb_apps_watch_due(&w, 0, t += LB_APPS_WATCH_MS),
                            "apps file changed");
        assert_null(lb_apps_watch_due(&w, 0, t += LB_APPS_WATCH_MS));
        /* SIGHUP reads it at once, settled or not */
        write_file(path, "a1:KEY9\n");
        assert_string_equal(lb_apps_watch_due(&w, 1, t + 1), "SIGHUP");
        assert_null(lb_apps_watch_due(&w, 0, t += LB_APPS_WATCH_MS));
}

static void test_same_file(void **state)
{
        (void)state;
        struct stat x = {0}, y;
        x.st_ino = 7;
        x.st_size = 10;
        y = x;
        assert_true(lb_apps_same_file(&x, &y));
        y.st_size = 11;
        assert_false(lb_apps_same_file(&x, &y));
        y = x;
        y.st_mtim.tv_nsec = 1;
        assert_false(lb_apps_same_file(&x, &y));
        y = x;
        y.st_ino = 8;
        assert_false(lb_apps_same_file(&x, &y));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sighup_always),
            cmocka_unit_test(test_change_seen_after_interval),
            cmocka_unit_test(test_change_read_once_settled),
            cmocka_unit_test(test_same_file),
        };
        return cmocka_run_group_tests(tests, tmpdir_make, tmpdir_remove);
}
