/*
 * main.c: the command line, configuration layering, signals and exit codes
 * (0 clean shutdown, 1 fatal runtime error, 2 configuration error), for the
 * bridge and for the `replay` subcommand. The only place that exits, but
 * for the exit bound's backstop (exit_watch.c).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "bridge.h"
#include "config.h"
#include "dlq.h"
#include "kafka_conf.h"
#include "kafka_in.h"
#include "listen.h"
#include "log.h"
#include "memlimit.h"
#include "replay.h"
#include "sender.h"
#include "version.h"

extern char **environ;

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested; /* SIGHUP: the client keys */
static int signal_wake_fd = -1; /* write end of the loop's wake pipe */

static void on_signal(int sig)
{
        int saved = errno;
        if (sig == SIGHUP)
                reload_requested = 1;
        else
                stop_requested = 1;
        /* A full pipe already wakes the loop: the result does not matter. */
        if (signal_wake_fd >= 0) {
                ssize_t n = write(signal_wake_fd, "s", 1);
                (void)n;
        }
        errno = saved;
}

/* SIGTERM and SIGINT ask for a clean stop; SIGHUP reloads the apps file's
 * keys (replay has none: it takes no notice). A closed socket is an error
 * return, not a signal. */
static void install_signals(void)
{
        /* SA_RESTART: reading the configuration goes on; the loop's waits
         * end by the wake pipe the handler writes to. */
        struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
}

static void usage(FILE *out)
{
        fprintf(out,
                "Usage: leanbridge [-c FILE] [-X key=value]... "
                "[--check-config] [--version] [--help]\n"
                "       leanbridge replay [-c FILE] [-X key=value]... "
                "[options] (see replay --help)\n"
                "\n"
                "Consumes action events from Kafka, sends them to the multi "
                "API in batches,\ncommits offsets of handled events and "
                "dead-letters what failed.\n"
                "\n"
                "  -c, --config FILE    read key = value lines from FILE\n"
                "  -X key=value         set one key (wins over file and "
                "environment)\n"
                "      --check-config   validate the configuration and exit\n"
                "      --version        print the version and exit\n"
                "  -h, --help           print this help and exit\n"
                "\n"
                "Exit codes: 0 clean shutdown, 1 fatal runtime error, 2 "
                "configuration error.\n\n");
        lb_config_print_help(out);
}

static int config_error(const char *msg)
{
        fprintf(stderr, "leanbridge: configuration error: %s\n", msg);
        return 2;
}

/* Applies the layers, later wins: defaults < file < environment < -X. A
 * secret -X value is hidden from ps once read.
 * @returns the config, or NULL after printing the error (exit code 2). */
static lb_config_t *load_config(const char *file, char **xs, size_t xcnt)
{
        char errstr[1024];
        lb_config_t *conf = lb_config_new();
        if (!conf) {
                config_error("out of memory");
                return NULL;
        }
        if (file && lb_config_load_file(conf, file, errstr, sizeof(errstr)))
                goto fail;
        if (lb_config_load_env(conf, environ, errstr, sizeof(errstr)))
                goto fail;
        for (size_t i = 0; i < xcnt; i++) {
                char *eq = strchr(xs[i], '=');
                if (!eq) {
                        /* not quoted: it may be a mistyped secret */
                        snprintf(errstr, sizeof(errstr),
                                 "-X needs key=value: argument %zu of -X has "
                                 "no '='",
                                 i + 1);
                        goto fail;
                }
                *eq = '\0';
                if (lb_config_set(conf, xs[i], eq + 1, "-X", errstr,
                                  sizeof(errstr))) {
                        *eq = '=';
                        goto fail;
                }
                /* The configuration has its own copy: hide a secret from
                 * ps and /proc/PID/cmdline, which show argv's bytes (the
                 * moments before this remain; prefer the environment or
                 * apps=@FILE for keys). */
                if (lb_config_key_is_secret(xs[i]))
                        memset(eq + 1, '*', strlen(eq + 1));
                *eq = '=';
        }
        return conf;
fail:
        config_error(errstr);
        lb_config_destroy(conf);
        return NULL;
}

static int make_wake_pipe(int fds[2])
{
        if (pipe(fds))
                return -1;
        for (int i = 0; i < 2; i++) {
                fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
                fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        }
        return 0;
}

static void replay_usage(FILE *out)
{
        fprintf(out,
                "Usage: leanbridge replay [-c FILE] [-X key=value]... "
                "[options]\n"
                "\n"
                "Reads the dead-letter topic (dlq.topic) from the replay's "
                "consumer group and\nproduces each chosen record's key, value, "
                "timestamp and own headers back to its\nsource topic (header "
                "leanbridge.source.topic and .partition), with header\n"
                "leanbridge.replayed = how often it was replayed. Stops at "
                "the high watermarks\ntaken at start. The group's progress is "
                "committed only after the produces are\nacknowledged. Needs "
                "kafka.* and dlq.topic; the bridge's other keys are "
                "accepted.\n"
                "\n"
                "  -c, --config FILE      read key = value lines from FILE\n"
                "  -X key=value           set one key\n"
                "      --stage S[,S...]   only these stages (parse, validate, "
                "too_old, api,\n"
                "                         api_skipped, api_warning, http, "
                "retries_exhausted;\n"
                "                         consumer_error records are never "
                "replayed)\n"
                "      --app ID[,ID...]   only these apps\n"
                "      --message TEXT     only records whose error message "
                "contains TEXT\n"
                "      --since TIME       only records dead-lettered at or "
                "after TIME (ms since the epoch,\n"
                "                         or 2026-11-30, "
                "2026-11-30T18:00:00Z, ...+02:00)\n"
                "      --until TIME       only records before TIME\n"
                "      --max-replays N    skip records already replayed N "
                "times (default\n"
                "                         with --follow: 3; else no "
                "limit)\n"
                "      --to TOPIC         produce to TOPIC instead of the "
                "source topic\n"
                "      --group NAME       the replay's consumer group "
                "(default: the\n"
                "                         bridge's kafka.group.id + "
                "\".replay\"); records a\n"
                "                         filter skipped are committed too: "
                "use a new group\n"
                "                         to replay them later with "
                "another filter\n"
                "      --dry-run          count what would be replayed by "
                "stage, app and\n"
                "                         message; produce and commit "
                "nothing\n"
                "      --follow           keep replaying new dead letters "
                "until SIGTERM\n"
                "  -h, --help             print this help and exit\n"
                "\n"
                "A record written cut (leanbridge.value.truncated) goes back "
                "as the whole\noriginal read from its source offset, or is "
                "skipped and counted when that\nis gone. With "
                "input.max.age.ms set, older events are skipped and "
                "counted.\n"
                "\n"
                "Exit codes: 0 done (or stopped by SIGTERM/SIGINT after a "
                "checkpoint), 1 fatal\nerror (nothing unacknowledged is "
                "committed: rerun), 2 configuration error.\n");
}

/* The command line both commands share: -c FILE and -X key=value, the
 * layers load_config() applies. */
typedef struct {
        const char *file;
        char **xs; /* -X values, in order */
        size_t xcnt;
} layers_t;

/* @returns 1 if opt was -c or -X (taken into ly), else 0. */
static int layer_opt(layers_t *ly, int opt, char *arg)
{
        if (opt == 'c')
                ly->file = arg;
        else if (opt == 'X')
                ly->xs[ly->xcnt++] = arg;
        else
                return 0;
        return 1;
}

/* @returns 1 (after saying so) if arguments are left after the options. */
static int stray_argument(int argc, char **argv)
{
        if (optind >= argc)
                return 0;
        fprintf(stderr, "leanbridge: unexpected argument '%s'\n", argv[optind]);
        return 1;
}

/* `leanbridge replay ...`: argv[0] is "replay". */
static int replay_main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, 0, 'c'},
            {"help", no_argument, 0, 'h'},
            {"stage", required_argument, 0, 0},
            {"app", required_argument, 0, 0},
            {"message", required_argument, 0, 0},
            {"since", required_argument, 0, 0},
            {"until", required_argument, 0, 0},
            {"max-replays", required_argument, 0, 0},
            {"to", required_argument, 0, 0},
            {"group", required_argument, 0, 0},
            {"dry-run", no_argument, 0, 0},
            {"follow", no_argument, 0, 0},
            {0, 0, 0, 0}};
        layers_t ly = {.xs = calloc((size_t)argc + 1, sizeof(char *))};
        int opt, idx, rc = 2;
        char errstr[1024];
        lb_config_t *conf = NULL;
        lb_replay_opts_t ro;

        lb_replay_opts_init(&ro);
        while ((opt = getopt_long(argc, argv, "c:X:h", opts, &idx)) != -1) {
                if (layer_opt(&ly, opt, optarg))
                        continue;
                if (opt == 'h') {
                        replay_usage(stdout);
                        rc = 0;
                        goto out;
                }
                if (opt != 0) {
                        fprintf(stderr, "Try 'leanbridge replay --help'.\n");
                        goto out;
                }
                if (lb_replay_opts_set(&ro, opts[idx].name, optarg, errstr,
                                       sizeof(errstr))) {
                        config_error(errstr);
                        goto out;
                }
        }
        if (stray_argument(argc, argv) ||
            !(conf = load_config(ly.file, ly.xs, ly.xcnt)))
                goto out;
        if (lb_replay_check_conf(conf, &ro, errstr, sizeof(errstr))) {
                config_error(errstr);
                goto out;
        }
        lb_log_setup(conf->log_level, conf->log_json);
        rc = lb_replay_run(conf, &ro, &stop_requested);
out:
        lb_config_destroy(conf);
        free(ly.xs);
        return rc;
}

/* Sizes what is auto in the memory bound from the memory this process may
 * use (its cgroup's limit, else the default), validates conf for the
 * bridge and logs what deserves a warning.
 * @returns 0, or 2 after printing the error. */
static int bridge_check(lb_config_t *conf)
{
        char errstr[1024];
        lb_memlimit_t found;
        lb_memlimit_find("", &found);
        if (lb_config_resolve_memory(conf, found.bytes, found.source))
                return config_error("out of memory");
        if (lb_config_validate(conf, errstr, sizeof(errstr)) ||
            lb_kafka_conf_check(conf, LB_KAFKA_CONSUMER, errstr,
                                sizeof(errstr)) ||
            lb_kafka_conf_check(conf, LB_KAFKA_PRODUCER, errstr,
                                sizeof(errstr)) ||
            lb_sender_check_conf(conf, errstr, sizeof(errstr)))
                return config_error(errstr);
        char why[256];
        if (conf->metrics_listen && *conf->metrics_listen &&
            lb_listen_try(conf->metrics_listen, why, sizeof(why))) {
                snprintf(errstr, sizeof(errstr), "metrics.listen \"%s\": %s",
                         conf->metrics_listen, why);
                return config_error(errstr);
        }
        lb_log_setup(conf->log_level, conf->log_json);
        if (conf->apps_file_world_readable)
                lb_warn("config", LB_APPS_WORLD_READABLE);
        return 0;
}

/* Runs the bridge until SIGTERM/SIGINT or a fatal error.
 * @returns the exit code (0 or 1). */
static int bridge_run(lb_config_t *conf)
{
        char errstr[1024];
        int wake[2] = {-1, -1};
        int rc = 1;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) || make_wake_pipe(wake)) {
                lb_error("main", "cannot initialise: %s", strerror(errno));
                goto out;
        }
        signal_wake_fd = wake[1];
        char memory[1024];
        lb_config_describe_memory(conf, memory, sizeof(memory));
        lb_info("main", "%s", memory);
        lb_bridge_t *bridge =
            lb_bridge_new(conf, wake[0], wake[1], errstr, sizeof(errstr));
        if (!bridge) {
                lb_error("main", "%s", errstr);
                goto out;
        }
        lb_info("main",
                "leanbridge %s started: %zu app(s), group %s, exit bound "
                "%" PRId64 " ms",
                LB_VERSION, conf->app_cnt,
                lb_config_kafka_get(conf, "group.id", LB_KAFKA_CONSUMER),
                lb_config_exit_bound_ms(conf));
        rc = lb_bridge_run(bridge, &stop_requested, &reload_requested);
        lb_bridge_destroy(bridge);
        lb_info("main", "stopped (exit %d)", rc);
        if (lb_kafka_in_destroy_left()) {
                fflush(NULL);
                _exit(rc); /* not exit(): librdkafka's threads still run */
        }
        curl_global_cleanup();
out:
        signal_wake_fd = -1;
        if (wake[0] >= 0) {
                close(wake[0]);
                close(wake[1]);
        }
        return rc;
}

int main(int argc, char **argv)
{
        lb_arena_tune_malloc();
        /* First: a signal while the configuration is read (from a slow
         * file, say) is taken then, not the default action's death. */
        install_signals();
        if (argc > 1 && !strcmp(argv[1], "replay"))
                return replay_main(argc - 1, argv + 1);
        static const struct option opts[] = {
            {"config", required_argument, 0, 'c'},
            {"check-config", no_argument, 0, 'C'},
            {"version", no_argument, 0, 'V'},
            {"help", no_argument, 0, 'h'},
            {0, 0, 0, 0}};
        layers_t ly = {.xs = calloc((size_t)argc + 1, sizeof(char *))};
        int check = 0, opt, rc = 2;
        lb_config_t *conf = NULL;

        while ((opt = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
                if (layer_opt(&ly, opt, optarg))
                        continue;
                switch (opt) {
                case 'C':
                        check = 1;
                        break;
                case 'V':
                        printf("leanbridge %s (librdkafka %s, %s)\n",
                               LB_VERSION, rd_kafka_version_str(),
                               curl_version());
                        rc = 0;
                        goto out;
                case 'h':
                        usage(stdout);
                        rc = 0;
                        goto out;
                default:
                        fprintf(stderr, "Try 'leanbridge --help'.\n");
                        goto out;
                }
        }
        if (stray_argument(argc, argv) ||
            !(conf = load_config(ly.file, ly.xs, ly.xcnt)) ||
            bridge_check(conf))
                goto out;
        if (check) {
                char url[2048];
                lb_sender_printable_url(conf->api_url, url, sizeof(url));
                printf("configuration OK: %zu app(s), %zu input topic(s), "
                       "dead-letter topic %s, API %s\n",
                       conf->app_cnt, conf->topic_cnt, conf->dlq_topic, url);
                printf("exit bound: %" PRId64 " ms (shutdown.timeout.ms + "
                       "api.timeout.ms + api.timeout.hold.ms + %d); a stop "
                       "grace period must exceed it\n",
                       lb_config_exit_bound_ms(conf), LB_EXIT_MARGIN_MS);
                char memory[1024];
                lb_config_describe_memory(conf, memory, sizeof(memory));
                printf("%s\n", memory);
                for (size_t i = 0; i < conf->app_cnt; i++) {
                        lb_config_describe_app(conf, i, memory, sizeof(memory));
                        printf("%s\n", memory);
                }
                rc = 0;
                goto out;
        }
        if (conf->api_tls_insecure)
                lb_warn("config", "api.tls.insecure=true: TLS certificates of "
                                  "the API are NOT verified");
        rc = bridge_run(conf);
out:
        lb_config_destroy(conf);
        free(ly.xs);
        return rc;
}
