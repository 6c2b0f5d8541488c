/*
 * memlimit.c: finds the memory limit of the process: the memory cgroup's
 * limit files (v1 memory.limit_in_bytes, v2 memory.max) of its cgroup and
 * each ancestor up to the mount root, the smallest of them, capped at
 * MemTotal. Reads /proc/self/cgroup, /proc/self/mountinfo, the limit files
 * and /proc/meminfo; writes nothing.
 */
#include "memlimit.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "why.h"

/* Copies the line at *p (without its '\n') into buf and moves *p past it.
 * @returns 0, or -1 at the end of text. A longer line is cut. */
static int next_line(const char **p, char *buf, size_t size)
{
        if (!**p)
                return -1;
        const char *nl = strchr(*p, '\n');
        size_t len = nl ? (size_t)(nl - *p) : strlen(*p);
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(buf, *p, n);
        buf[n] = '\0';
        *p += len + (nl != NULL);
        return 0;
}

/* @returns 1 if the comma-separated list holds name. */
static int list_has(const char *list, const char *name)
{
        size_t n = strlen(name);
        for (const char *p = list; p;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                if (len == n && !memcmp(p, name, n))
                        return 1;
                p = comma ? comma + 1 : NULL;
        }
        return 0;
}

/* The cgroup path of the memory controller's line in /proc/self/cgroup:
 * v1's "N:...memory...:/path", else v2's "0::/path". */
static int cgroup_path(const char *text, int *version, char *path,
                       size_t path_size)
{
        char line[4200];
        int found = 0;
        for (const char *p = text; !next_line(&p, line, sizeof(line));) {
                char *c1 = strchr(line, ':');
                char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c1 = *c2 = '\0';
                const char *controllers = c1 + 1, *where = c2 + 1;
                if (list_has(controllers, "memory")) {
                        *version = 1;
                        snprintf(path, path_size, "%s", where);
                        return 0;
                }
                if (!strcmp(line, "0") && !*controllers) {
                        *version = 2;
                        snprintf(path, path_size, "%s", where);
                        found = 1;
                }
        }
        return found ? 0 : -1;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
        char *out = s;
        for (const char *in = s; *in;) {
                if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' &&
                    in[2] >= '0' && in[2] <= '7' && in[3] >= '0' &&
                    in[3] <= '7') {
                        *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 +
                                        (in[3] - '0'));
                        in += 4;
                } else {
                        *out++ = *in++;
                }
        }
        *out = '\0';
}

/* One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...]
 * - FSTYPE SOURCE SUPEROPTS". */
typedef struct {
        char *root, *mount, *fstype, *super_opts;
} mount_line_t;

static int split_mount_line(char *line, mount_line_t *m)
{
        char *field[6], *save = NULL, *tok;
        for (int i = 0; i < 6; i++)
                if (!(field[i] = strtok_r(i ? NULL : line, " ", &save)))
                        return -1;
        while ((tok = strtok_r(NULL, " ", &save)) && strcmp(tok, "-"))
                ; /* optional fields */
        if (!tok)
                return -1;
        m->root = field[3];
        m->mount = field[4];
        m->fstype = strtok_r(NULL, " ", &save);
        char *source = strtok_r(NULL, " ", &save);
        m->super_opts = strtok_r(NULL, " ", &save);
        if (!m->fstype || !source || !m->super_opts)
                return -1;
        unescape(m->root);
        unescape(m->mount);
        return 0;
}

/* @returns the part of path below root ("" for root itself), or NULL when
 * path is not root or below it. */
static const char *below_root(const char *path, const char *root)
{
        if (!strcmp(root, "/"))
                return strcmp(path, "/") ? path : "";
        size_t n = strlen(root);
        if (strncmp(path, root, n) || (path[n] && path[n] != '/'))
                return NULL;
        return strcmp(path + n, "/") ? path + n : "";
}

int lb_memlimit_locate(const char *cgroup_text, const char *mountinfo_text,
                       lb_cgroup_loc_t *loc, char *why, size_t why_size)
{
        char path[4096];
        if (cgroup_path(cgroup_text, &loc->version, path, sizeof(path)))
                return lb_why(why, why_size,
                              "no memory controller in /proc/self/cgroup");
        int outside_root = 0;
        char line[8400];
        for (const char *p = mountinfo_text;
             !next_line(&p, line, sizeof(line));) {
                mount_line_t m;
                if (split_mount_line(line, &m))
                        continue;
                int ours = loc->version == 2
                               ? !strcmp(m.fstype, "cgroup2")
                               : !strcmp(m.fstype, "cgroup") &&
                                     list_has(m.super_opts, "memory");
                if (!ours)
                        continue;
                const char *rel = below_root(path, m.root);
                if (!rel) {
                        outside_root = 1;
                        continue;
                }
                if (strlen(m.mount) >= sizeof(loc->mount) ||
                    strlen(rel) >= sizeof(loc->relative))
                        continue;
                strcpy(loc->mount, m.mount);
                strcpy(loc->relative, rel);
                /* "/" + "/a" must not make "//a" */
                if (!strcmp(loc->mount, "/"))
                        loc->mount[0] = '\0';
                return 0;
        }
        if (outside_root)
                return lb_why(why, why_size,
                              "cgroup v%d %.200s is outside the root of its "
                              "mount",
                              loc->version, path);
        return lb_why(why, why_size, "cgroup v%d memory hierarchy not mounted",
                      loc->version);
}

int lb_memlimit_file(const lb_cgroup_loc_t *loc, int level, char *path,
                     size_t path_size)
{
        size_t len = strlen(loc->relative);
        for (int i = 0; i < level; i++) {
                if (!len)
                        return -1;
                while (len && loc->relative[len - 1] != '/')
                        len--;
                len--; /* the '/' itself: relative starts with one */
        }
        int n = snprintf(
            path, path_size, "%s%.*s/%s", loc->mount, (int)len, loc->relative,
            loc->version == 2 ? "memory.max" : "memory.limit_in_bytes");
        return n < 0 || (size_t)n >= path_size ? -1 : 0;
}

int lb_memlimit_parse_value(const char *text, int64_t *bytes)
{
        while (isspace((unsigned char)*text))
                text++;
        size_t len = strlen(text);
        while (len && isspace((unsigned char)text[len - 1]))
                len--;
        if (len == 3 && !memcmp(text, "max", 3))
                return 0;
        if (!len || len > 20)
                return -1;
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
                if (!isdigit((unsigned char)text[i]))
                        return -1;
                unsigned d = (unsigned)(text[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -1;
                v = v * 10 + d;
        }
        if (v >= (uint64_t)LB_MEMLIMIT_NONE_FROM)
                return 0;
        *bytes = (int64_t)v;
        return 1;
}

int lb_memlimit_parse_meminfo(const char *text, int64_t *bytes)
{
        char line[256];
        for (const char *p = text; !next_line(&p, line, sizeof(line));) {
                unsigned long long kb;
                char unit[8];
                if (sscanf(line, "MemTotal: %llu %7s", &kb, unit) == 2 &&
                    !strcmp(unit, "kB") && kb < (1ULL << 50)) {
                        *bytes = (int64_t)kb * 1024;
                        return 0;
                }
        }
        return -1;
}

/* ------------------------------------------------------------------ */
/* Reading the real files                                             */

/* Reads a whole (small, /proc or /sys) file.
 * @returns a malloc'd NUL-terminated copy, or NULL with errno set. */
static char *read_text(const char *path)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        size_t len = 0, cap = 4096;
        char *buf = malloc(cap);
        while (buf) {
                len += fread(buf + len, 1, cap - len - 1, f);
                if (ferror(f) || len < cap - 1)
                        break;
                char *bigger = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
                if (!bigger) {
                        free(buf);
                        buf = NULL;
                        errno = ENOMEM;
                        break;
                }
                buf = bigger;
                cap *= 2;
        }
        int failed = buf && ferror(f);
        fclose(f);
        if (failed) {
                free(buf);
                errno = EIO;
                return NULL;
        }
        if (buf)
                buf[len] = '\0';
        return buf;
}

/* The smallest limit over the cgroup and its ancestors, with its file in
 * path. @returns 1 (a limit), 0 (none), -1 (why set). */
static int cgroup_limit(const char *root, int64_t *bytes, int *version,
                        char *path, size_t path_size, char *why,
                        size_t why_size)
{
        char cg_file[4200], mi_file[4200];
        snprintf(cg_file, sizeof(cg_file), "%s/proc/self/cgroup", root);
        snprintf(mi_file, sizeof(mi_file), "%s/proc/self/mountinfo", root);
        char *cg = read_text(cg_file);
        if (!cg)
                return lb_why(why, why_size, "cannot read %.300s: %s", cg_file,
                              strerror(errno));
        char *mi = read_text(mi_file);
        if (!mi) {
                lb_why(why, why_size, "cannot read %.300s: %s", mi_file,
                       strerror(errno));
                free(cg);
                return -1;
        }
        lb_cgroup_loc_t *loc = malloc(sizeof(*loc));
        int rc = -1;
        if (!loc) {
                lb_why(why, why_size, "out of memory");
                goto out;
        }
        if (lb_memlimit_locate(cg, mi, loc, why, why_size))
                goto out;
        *version = loc->version;
        rc = 0;
        char file[4096], at[4200];
        for (int level = 0; !lb_memlimit_file(loc, level, file, sizeof(file));
             level++) {
                snprintf(at, sizeof(at), "%s%s", root, file);
                char *text = read_text(at);
                int64_t v;
                if (text && lb_memlimit_parse_value(text, &v) == 1 &&
                    (!rc || v < *bytes)) {
                        *bytes = v;
                        snprintf(path, path_size, "%s", at);
                        rc = 1;
                }
                free(text);
        }
out:
        free(loc);
        free(mi);
        free(cg);
        return rc;
}

void lb_memlimit_find(const char *root, lb_memlimit_t *out)
{
        char why[512], path[4200];
        int version = 0;
        int64_t bytes = 0;
        int rc = cgroup_limit(root, &bytes, &version, path, sizeof(path), why,
                              sizeof(why));
        if (rc == 1) {
                out->bytes = bytes;
                snprintf(out->source, sizeof(out->source), "cgroup v%d %.480s",
                         version, path);
        } else {
                out->bytes = LB_MEMLIMIT_DEFAULT_BYTES;
                snprintf(out->source, sizeof(out->source),
                         "default 1 GiB: %.480s",
                         rc ? why : "no cgroup memory limit");
        }

        char meminfo_file[4200];
        snprintf(meminfo_file, sizeof(meminfo_file), "%s/proc/meminfo", root);
        char *meminfo = read_text(meminfo_file);
        int64_t total;
        if (!meminfo) {
                size_t n = strlen(out->source);
                snprintf(out->source + n, sizeof(out->source) - n,
                         "; MemTotal unknown (cannot read %.200s: %s)",
                         meminfo_file, strerror(errno));
        } else if (!lb_memlimit_parse_meminfo(meminfo, &total) &&
                   total < out->bytes) {
                char was[sizeof(out->source)];
                memcpy(was, out->source, sizeof(was));
                out->bytes = total;
                snprintf(out->source, sizeof(out->source),
                         "MemTotal of %.200s, below %.280s", meminfo_file, was);
        }
        free(meminfo);
}
