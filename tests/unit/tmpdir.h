/*
 * tmpdir.h: a scratch directory for unit tests that write files (config
 * files, fake /proc and /sys trees): made once per test group, removed
 * with everything in it after.
 */
#ifndef LB_TEST_TMPDIR_H
#define LB_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* The directory's path, set by tmpdir_make. */
static char tmpdir[64];

static int tmpdir_rm_entry(const char *path, const struct stat *st, int flag,
                           struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

/* A cmocka group setup: makes tmpdir. */
static int tmpdir_make(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/lb-unit-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

/* A cmocka group teardown: removes tmpdir and all below it. */
static int tmpdir_remove(void **state)
{
        (void)state;
        return nftw(tmpdir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
