/*
 * test_memlimit.c: unit tests of the memlimit module: locating the memory
 * cgroup's limit files (v1 and v2, host and container mounts, ancestors,
 * escapes, cgroups outside the mount root) from fixture texts of
 * /proc/self/cgroup and /proc/self/mountinfo, parsing limit values and
 * MemTotal, and lb_memlimit_find() on fake /proc and /sys trees under a
 * mkdtemp directory (removed at the end).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memlimit.h"
#include "tmpdir.h"

#define MIB INT64_C(1048576)

static char why[512];

/* ------------------------------------------------------------------ */
/* fixtures                                                           */

/* This kind of machine: cgroup v1 with a unified (v2) hierarchy beside it,
 * the process in a child of the memory hierarchy. */
static const char hybrid_cgroup[] = "9:name=systemd:/\n"
                                    "4:memory:/process_api/305cfda3\n"
                                    "1:cpu:/\n"
                                    "0::/\n";
static const char hybrid_mountinfo[] =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup "
    "rw,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup "
    "rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

/* Docker on cgroup v1 without a cgroup namespace: the memory hierarchy is
 * mounted with the container's cgroup as its root. */
static const char docker_v1_cgroup[] = "12:cpu,cpuacct:/docker/abc\n"
                                       "11:memory:/docker/abc\n";
static const char docker_v1_mountinfo[] =
    "700 690 0:50 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:12 "
    "- cgroup cgroup rw,cpu,cpuacct\n"
    "701 690 0:51 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev "
    "master:15 - cgroup cgroup rw,memory\n";

/* A systemd host on cgroup v2 only. */
static const char v2_host_cgroup[] = "0::/user.slice/user-1000.slice/s.scope\n";
static const char v2_host_mountinfo[] =
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
    "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - "
    "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

/* Docker on cgroup v2 with a private cgroup namespace: the container's
 * cgroup is "/" and the mount's root. */
static const char v2_ns_cgroup[] = "0::/\n";
static const char v2_ns_mountinfo[] =
    "811 803 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 "
    "cgroup rw,nsdelegate\n";

static void locate_ok(const char *cg, const char *mi, lb_cgroup_loc_t *loc)
{
        why[0] = '\0';
        if (lb_memlimit_locate(cg, mi, loc, why, sizeof(why)))
                fail_msg("locate failed: %s", why);
}

static const char *locate_bad(const char *cg, const char *mi)
{
        lb_cgroup_loc_t loc;
        why[0] = '\0';
        assert_int_equal(lb_memlimit_locate(cg, mi, &loc, why, sizeof(why)),
                         -1);
        assert_true(why[0] != '\0');
        return why;
}

static void assert_file(const lb_cgroup_loc_t *loc, int level, const char *want)
{
        char path[4200];
        if (!want) {
                assert_int_equal(
                    lb_memlimit_file(loc, level, path, sizeof(path)), -1);
                return;
        }
        assert_int_equal(lb_memlimit_file(loc, level, path, sizeof(path)), 0);
        assert_string_equal(path, want);
}

static void assert_contains(const char *hay, const char *needle)
{
        if (!strstr(hay, needle))
                fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* ------------------------------------------------------------------ */
/* locating the limit files                                           */

static void test_v1_hybrid_child(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        locate_ok(hybrid_cgroup, hybrid_mountinfo, &loc);
        assert_int_equal(loc.version, 1);
        assert_string_equal(loc.mount, "/sys/fs/cgroup/memory");
        assert_string_equal(loc.relative, "/process_api/305cfda3");
        assert_file(&loc, 0,
                    "/sys/fs/cgroup/memory/process_api/305cfda3/"
                    "memory.limit_in_bytes");
        assert_file(&loc, 1,
                    "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes");
        assert_file(&loc, 2, "/sys/fs/cgroup/memory/memory.limit_in_bytes");
        assert_file(&loc, 3, NULL);
}

static void test_v1_docker_root_is_own_cgroup(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        locate_ok(docker_v1_cgroup, docker_v1_mountinfo, &loc);
        assert_int_equal(loc.version, 1);
        assert_string_equal(loc.relative, "");
        assert_file(&loc, 0, "/sys/fs/cgroup/memory/memory.limit_in_bytes");
        assert_file(&loc, 1, NULL);
}

static void test_v1_mount_root_is_an_ancestor(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        locate_ok("3:memory:/kubepods/pod1/ctr\n",
                  "5 1 0:9 /kubepods /sys/fs/cgroup/memory rw - cgroup cgroup "
                  "rw,memory\n",
                  &loc);
        assert_string_equal(loc.relative, "/pod1/ctr");
        assert_file(&loc, 0,
                    "/sys/fs/cgroup/memory/pod1/ctr/memory.limit_in_bytes");
        assert_file(&loc, 1,
                    "/sys/fs/cgroup/memory/pod1/memory.limit_in_bytes");
        assert_file(&loc, 2, "/sys/fs/cgroup/memory/memory.limit_in_bytes");
        assert_file(&loc, 3, NULL);
}

static void test_v1_shared_hierarchy_and_options(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        /* memory shares a hierarchy with cpu; the first line with
         * "memory_x" must not count as the memory controller; optional
         * fields before "-" are skipped; "\040" is a space. */
        locate_ok("5:memory_x:/no\n"
                  "4:cpu,memory:/a b\n",
                  "9 1 0:1 / /mnt/memory_x rw - cgroup cgroup rw,memory_x\n"
                  "10 1 0:2 / /mnt/cg\\040mem rw shared:5 master:3 - cgroup "
                  "none rw,cpu,memory\n",
                  &loc);
        assert_int_equal(loc.version, 1);
        assert_string_equal(loc.mount, "/mnt/cg mem");
        assert_string_equal(loc.relative, "/a b");
        assert_file(&loc, 0, "/mnt/cg mem/a b/memory.limit_in_bytes");
}

static void test_v2_host(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        locate_ok(v2_host_cgroup, v2_host_mountinfo, &loc);
        assert_int_equal(loc.version, 2);
        assert_string_equal(loc.mount, "/sys/fs/cgroup");
        assert_file(&loc, 0,
                    "/sys/fs/cgroup/user.slice/user-1000.slice/s.scope/"
                    "memory.max");
        assert_file(&loc, 1,
                    "/sys/fs/cgroup/user.slice/user-1000.slice/memory.max");
        assert_file(&loc, 2, "/sys/fs/cgroup/user.slice/memory.max");
        assert_file(&loc, 3, "/sys/fs/cgroup/memory.max");
        assert_file(&loc, 4, NULL);
}

static void test_v2_namespace(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        locate_ok(v2_ns_cgroup, v2_ns_mountinfo, &loc);
        assert_int_equal(loc.version, 2);
        assert_string_equal(loc.relative, "");
        assert_file(&loc, 0, "/sys/fs/cgroup/memory.max");
        assert_file(&loc, 1, NULL);
}

static void test_v2_mounted_at_slash_and_nested_root(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        locate_ok("0::/system.slice/docker-1.scope/app\n",
                  "1 0 0:5 /system.slice/docker-1.scope / rw - cgroup2 "
                  "cgroup2 rw\n",
                  &loc);
        assert_string_equal(loc.mount, "");
        assert_string_equal(loc.relative, "/app");
        assert_file(&loc, 0, "/app/memory.max");
        assert_file(&loc, 1, "/memory.max");
        assert_file(&loc, 2, NULL);
}

static void test_locate_errors(void **state)
{
        (void)state;
        assert_contains(
            locate_bad("1:cpu:/\n2:name=systemd:/\n", hybrid_mountinfo),
            "no memory controller");
        assert_contains(locate_bad("", ""), "no memory controller");
        /* a memory line but only a cgroup2 mount */
        assert_contains(locate_bad("4:memory:/x\n", v2_ns_mountinfo),
                        "cgroup v1 memory hierarchy not mounted");
        /* a 0:: line but only v1 mounts */
        assert_contains(locate_bad(v2_host_cgroup, docker_v1_mountinfo),
                        "cgroup v2 memory hierarchy not mounted");
        /* outside the mount's root, also by a shared prefix */
        assert_contains(locate_bad("11:memory:/other\n", docker_v1_mountinfo),
                        "cgroup v1 /other is outside the root of its mount");
        assert_contains(
            locate_bad("11:memory:/docker/abcd\n", docker_v1_mountinfo),
            "outside the root");
        /* malformed lines are skipped */
        lb_cgroup_loc_t loc;
        locate_ok("garbage\n4:memory\n4:memory:/m\n",
                  "short line\n"
                  "1 2 3 4 5 6 no separator\n"
                  "1 2 0:1 / /cg rw - cgroup\n"
                  "1 2 0:1 / /cg rw - cgroup cgroup rw,memory\n",
                  &loc);
        assert_file(&loc, 0, "/cg/m/memory.limit_in_bytes");
}

static void test_file_does_not_fit(void **state)
{
        (void)state;
        lb_cgroup_loc_t loc;
        locate_ok(hybrid_cgroup, hybrid_mountinfo, &loc);
        char small[16];
        assert_int_equal(lb_memlimit_file(&loc, 0, small, sizeof(small)), -1);
}

/* ------------------------------------------------------------------ */
/* values                                                             */

static void test_parse_value(void **state)
{
        (void)state;
        int64_t v = -7;
        assert_int_equal(lb_memlimit_parse_value("max\n", &v), 0);
        assert_int_equal(v, -7);
        assert_int_equal(lb_memlimit_parse_value("536870912\n", &v), 1);
        assert_int_equal(v, 512 * MIB);
        assert_int_equal(lb_memlimit_parse_value(" 1024 ", &v), 1);
        assert_int_equal(v, 1024);
        assert_int_equal(lb_memlimit_parse_value("0", &v), 1);
        assert_int_equal(v, 0);
        /* v1's "unlimited" and anything from 2^62 up */
        assert_int_equal(lb_memlimit_parse_value("9223372036854771712\n", &v),
                         0);
        assert_int_equal(lb_memlimit_parse_value("4611686018427387904", &v), 0);
        assert_int_equal(lb_memlimit_parse_value("18446744073709551615", &v),
                         0);
        assert_int_equal(lb_memlimit_parse_value("4611686018427387903", &v), 1);
        assert_int_equal(v, INT64_C(4611686018427387903));
        const char *bad[] = {"",
                             "\n",
                             "12ab",
                             "-5",
                             "1 2",
                             "MAX",
                             "max1",
                             "18446744073709551616",
                             "123456789012345678901"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (lb_memlimit_parse_value(bad[i], &v) != -1)
                        fail_msg("'%s' parsed", bad[i]);
}

static void test_parse_meminfo(void **state)
{
        (void)state;
        int64_t v = 0;
        assert_int_equal(lb_memlimit_parse_meminfo("MemTotal:       24683584 "
                                                   "kB\nMemFree:  1 kB\n",
                                                   &v),
                         0);
        assert_int_equal(v, INT64_C(24683584) * 1024);
        assert_int_equal(lb_memlimit_parse_meminfo("MemFree: 1 kB\n"
                                                   "MemTotal: 2048 kB",
                                                   &v),
                         0);
        assert_int_equal(v, 2048 * 1024);
        assert_int_equal(lb_memlimit_parse_meminfo("MemFree: 1 kB\n", &v), -1);
        assert_int_equal(lb_memlimit_parse_meminfo("MemTotal: x kB\n", &v), -1);
        assert_int_equal(lb_memlimit_parse_meminfo("MemTotal: 5 MB\n", &v), -1);
        assert_int_equal(lb_memlimit_parse_meminfo("", &v), -1);
}

/* ------------------------------------------------------------------ */
/* lb_memlimit_find on fake trees                                     */

static void put(const char *rel, const char *content)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
        for (char *p = path + strlen(tmpdir) + 1; (p = strchr(p, '/')); p++) {
                *p = '\0';
                mkdir(path, 0755);
                *p = '/';
        }
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static const char v1_tree_mountinfo[] =
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
static const char meminfo_16g[] = "MemTotal: 16777216 kB\n";

static void test_find_smallest_ancestor(void **state)
{
        (void)state;
        put("proc/self/cgroup", "4:memory:/a/b\n");
        put("proc/self/mountinfo", v1_tree_mountinfo);
        put("proc/meminfo", meminfo_16g);
        put("sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n");
        put("sys/fs/cgroup/memory/a/memory.limit_in_bytes", "536870912\n");
        put("sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "1073741824\n");
        lb_memlimit_t m;
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, 512 * MIB);
        char want[600];
        snprintf(want, sizeof(want),
                 "cgroup v1 %s/sys/fs/cgroup/memory/a/memory.limit_in_bytes",
                 tmpdir);
        assert_string_equal(m.source, want);

        /* the cgroup's own is the smallest */
        put("sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "268435456\n");
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, 256 * MIB);
        assert_contains(m.source, "/a/b/memory.limit_in_bytes");

        /* MemTotal below the limit caps it */
        put("proc/meminfo", "MemTotal: 131072 kB\n");
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, 128 * MIB);
        snprintf(want, sizeof(want),
                 "MemTotal of %s/proc/meminfo, below cgroup v1 ", tmpdir);
        assert_contains(m.source, want);
}

static void test_find_no_limit_is_the_default(void **state)
{
        (void)state;
        put("proc/self/cgroup", "0::/c\n");
        put("proc/self/mountinfo", v2_ns_mountinfo);
        put("proc/meminfo", meminfo_16g);
        put("sys/fs/cgroup/c/memory.max", "max\n");
        /* the v2 root has no memory.max at all */
        lb_memlimit_t m;
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, LB_MEMLIMIT_DEFAULT_BYTES);
        assert_string_equal(m.source, "default 1 GiB: no cgroup memory limit");

        put("sys/fs/cgroup/c/memory.max", "805306368\n");
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, 768 * MIB);
        assert_contains(m.source, "cgroup v2 ");
        assert_contains(m.source, "/sys/fs/cgroup/c/memory.max");

        /* the default is capped at MemTotal too */
        put("sys/fs/cgroup/c/memory.max", "garbage\n");
        put("proc/meminfo", "MemTotal: 524288 kB\n");
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, 512 * MIB);
        assert_contains(m.source, "below default 1 GiB: no cgroup memory "
                                  "limit");
}

static void test_find_unreadable(void **state)
{
        (void)state;
        /* nothing under root: no /proc at all */
        lb_memlimit_t m;
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, LB_MEMLIMIT_DEFAULT_BYTES);
        assert_contains(m.source, "default 1 GiB: cannot read ");
        assert_contains(m.source, "/proc/self/cgroup: No such file");
        assert_contains(m.source, "; MemTotal unknown (cannot read ");

        put("proc/self/cgroup", "4:memory:/a\n");
        lb_memlimit_find(tmpdir, &m);
        assert_contains(m.source, "/proc/self/mountinfo: No such file");

        put("proc/self/mountinfo", "");
        lb_memlimit_find(tmpdir, &m);
        assert_int_equal(m.bytes, LB_MEMLIMIT_DEFAULT_BYTES);
        assert_contains(m.source, "default 1 GiB: cgroup v1 memory hierarchy "
                                  "not mounted");
}

static void test_find_real_machine(void **state)
{
        (void)state;
        /* whatever this machine has: a positive limit and a source */
        lb_memlimit_t m;
        lb_memlimit_find("", &m);
        assert_true(m.bytes > 0);
        assert_true(m.source[0] != '\0');
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_v1_hybrid_child),
            cmocka_unit_test(test_v1_docker_root_is_own_cgroup),
            cmocka_unit_test(test_v1_mount_root_is_an_ancestor),
            cmocka_unit_test(test_v1_shared_hierarchy_and_options),
            cmocka_unit_test(test_v2_host),
            cmocka_unit_test(test_v2_namespace),
            cmocka_unit_test(test_v2_mounted_at_slash_and_nested_root),
            cmocka_unit_test(test_locate_errors),
            cmocka_unit_test(test_file_does_not_fit),
            cmocka_unit_test(test_parse_value),
            cmocka_unit_test(test_parse_meminfo),
            cmocka_unit_test_setup_teardown(test_find_smallest_ancestor,
                                            tmpdir_make, tmpdir_remove),
            cmocka_unit_test_setup_teardown(test_find_no_limit_is_the_default,
                                            tmpdir_make, tmpdir_remove),
            cmocka_unit_test_setup_teardown(test_find_unreadable, tmpdir_make,
                                            tmpdir_remove),
            cmocka_unit_test(test_find_real_machine),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
