/*
 * fuzz_config.c: libFuzzer target for the configuration parser. The input
 * is read as a config file (key = value lines); any bytes must load or fail
 * with a one-line error, validation must not crash, and no error may echo
 * the client key of an inline apps value (an @PATH may be named). Blanks
 * are what the parser trims: isspace(), so \v and \f count.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* Nonzero if FUZZSECRET appears outside the value of an "apps" line (a key
 * name or another value may be echoed in an error; a client key may not). */
static int secret_outside_apps(const uint8_t *data, size_t size)
{
        const char *p = (const char *)data, *stop = p + size;
        while (p < stop) {
                const char *end = memchr(p, '\n', (size_t)(stop - p));
                size_t len = end ? (size_t)(end - p) : (size_t)(stop - p);
                const char *k = p;
                while (k < p + len && isspace((unsigned char)*k))
                        k++;
                const char *eq = k + 4;
                while (eq < p + len && isspace((unsigned char)*eq))
                        eq++;
                int is_apps = eq < p + len && p + len - k > 4 &&
                              !memcmp(k, "apps", 4) && *eq == '=';
                if (is_apps) { /* "@PATH" names a file: not a secret */
                        const char *v = eq + 1;
                        while (v < p + len && isspace((unsigned char)*v))
                                v++;
                        is_apps = !(v < p + len && *v == '@');
                }
                if (!is_apps && memmem(p, len, "FUZZSECRET", 10))
                        return 1;
                p += len + 1;
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char path[] = "/tmp/lbfuzz-config-XXXXXX";
        char err[1024];
        int fd = mkstemp(path);
        if (fd < 0)
                return 0;
        if (write(fd, data, size) != (ssize_t)size) {
                close(fd);
                unlink(path);
                return 0;
        }
        close(fd);
        lb_config_t *conf = lb_config_new();
        err[0] = '\0';
        if (!lb_config_load_file(conf, path, err, sizeof(err)))
                lb_config_validate(conf, err, sizeof(err));
        if (strchr(err, '\n'))
                abort(); /* errors are one line */
        if (strstr(err, "FUZZSECRET") && !secret_outside_apps(data, size))
                abort(); /* a client key leaked into an error */
        lb_config_destroy(conf);
        unlink(path);
        return 0;
}
