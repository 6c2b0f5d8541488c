/*
 * kafkatool.c: the Kafka side of the test harness, on the same librdkafka the
 * bridge uses. Subcommands:
 *   mock      run librdkafka's mock cluster; print its bootstrap list; take
 *             fault-injection commands on stdin; exit on SIGTERM
 *   produce   produce "key<TAB>value" lines from stdin (value \N = tombstone);
 *             -r RATE paces it at RATE messages/s (the benchmark's steady
 *             mode), -a AGE_MS dates each message AGE_MS in the past (a
 *             backlog written long ago), -X key=value sets any producer
 *             property, -T ID makes it transactional: the lines \BEGIN,
 *             \COMMIT and \ABORT then begin, commit and abort a
 *             transaction
 *   committed print a group's committed offset and high watermark per
 *             partition of a topic
 *   lose      what retention does to a group that fell behind: commits
 *             offset -c for group -g on partition -p, then deletes the
 *             partition's records before offset -o (DeleteRecords)
 *   consume   consume a topic from the start to its end and print the rate
 *             (the benchmark's ceiling), or print its messages
 * Test code only: exits on errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static void die(const char *fmt, const char *arg)
{
        fprintf(stderr, "kafkatool: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        exit(1);
}

static int64_t wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
        char errstr[512];
        if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK)
                die("%s", errstr);
}

static rd_kafka_t *new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
        char errstr[512];
        rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (!rk)
                die("%s", errstr);
        return rk;
}

/* "topic:partitions" */
static void create_topic(rd_kafka_mock_cluster_t *mc, const char *spec)
{
        char name[256];
        int parts = 1;
        const char *colon = strrchr(spec, ':');
        size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
        if (n >= sizeof(name))
                die("topic name too long: %s", spec);
        memcpy(name, spec, n);
        name[n] = '\0';
        if (colon)
                parts = atoi(colon + 1);
        if (rd_kafka_mock_topic_create(mc, name, parts, 1))
                die("cannot create mock topic %s", spec);
}

/* stdin commands: "produce-errors N [ERR]", "commit-errors N [ERR]",
 * "fetch-errors N [ERR]" (the next N requests fail with the broker error
 * code ERR, default NOT_LEADER_FOR_PARTITION),
 * "broker-down ID", "broker-up ID", "rtt ID MS", "leader TOPIC PART ID",
 * "coordinator GROUP ID", "late API N MS [ERR]" (broker 1's next N answers
 * to API key API come MS late, with broker error code ERR, default none). */
static void mock_command(rd_kafka_mock_cluster_t *mc, char *line)
{
        char cmd[64], name[256];
        int a = 0, b = 0;
        if (sscanf(line, "leader %255s %d %d", name, &a, &b) == 3) {
                rd_kafka_mock_partition_set_leader(mc, name, a, b);
                fprintf(stderr, "kafkatool: mock: %s", line);
                return;
        }
        if (sscanf(line, "coordinator %255s %d", name, &a) == 2) {
                rd_kafka_mock_coordinator_set(mc, "group", name, a);
                fprintf(stderr, "kafkatool: mock: %s", line);
                return;
        }
        int c = 0, err = 0;
        if (sscanf(line, "late %d %d %d %d", &a, &b, &c, &err) >= 3) {
                /* broker 1's next b answers to API key a come c ms late,
                 * with error code err (default none) */
                for (int i = 0; i < b; i++)
                        rd_kafka_mock_broker_push_request_error_rtts(
                            mc, 1, (int16_t)a, 1, (rd_kafka_resp_err_t)err, c);
                fprintf(stderr, "kafkatool: mock: %s", line);
                return;
        }
        int n = sscanf(line, "%63s %d %d", cmd, &a, &b);
        if (n < 2)
                return;
        if (!strcmp(cmd, "produce-errors") || !strcmp(cmd, "commit-errors") ||
            !strcmp(cmd, "fetch-errors")) {
                int16_t api = !strcmp(cmd, "produce-errors")  ? 0
                              : !strcmp(cmd, "commit-errors") ? 8
                                                              : 1;
                rd_kafka_resp_err_t *errs = malloc(sizeof(*errs) * (a + 1));
                for (int i = 0; i < a; i++)
                        errs[i] =
                            n == 3 ? (rd_kafka_resp_err_t)b
                                   : RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
                rd_kafka_mock_push_request_errors_array(mc, api, a, errs);
                free(errs);
        } else if (!strcmp(cmd, "broker-down")) {
                rd_kafka_mock_broker_set_down(mc, a);
        } else if (!strcmp(cmd, "broker-up")) {
                rd_kafka_mock_broker_set_up(mc, a);
        } else if (!strcmp(cmd, "rtt") && n == 3) {
                rd_kafka_mock_broker_set_rtt(mc, a, b);
        } else {
                fprintf(stderr, "kafkatool: unknown mock command: %s", line);
                return;
        }
        fprintf(stderr, "kafkatool: mock: %s", line);
}

static int cmd_mock(int argc, char **argv)
{
        int brokers = 1, opt;
        const char *port_file = NULL;
        char *topics[64];
        int ntopics = 0;
        static const struct option lo[] = {{"brokers", 1, 0, 'n'},
                                           {"topic", 1, 0, 't'},
                                           {"bootstrap-file", 1, 0, 'f'},
                                           {0, 0, 0, 0}};
        while ((opt = getopt_long(argc, argv, "n:t:f:", lo, NULL)) != -1) {
                if (opt == 'n')
                        brokers = atoi(optarg);
                else if (opt == 't' && ntopics < 64)
                        topics[ntopics++] = optarg;
                else if (opt == 'f')
                        port_file = optarg;
                else
                        return 2;
        }
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "log_level", "3");
        rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, conf);
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
        if (!mc)
                die("%s", "cannot start the mock cluster");
        for (int i = 0; i < ntopics; i++)
                create_topic(mc, topics[i]);
        const char *boot = rd_kafka_mock_cluster_bootstraps(mc);
        if (port_file) {
                char tmp[4096];
                snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
                FILE *f = fopen(tmp, "w");
                if (!f || fprintf(f, "%s\n", boot) < 0 || fclose(f) ||
                    rename(tmp, port_file))
                        die("cannot write %s", port_file);
        }
        printf("%s\n", boot);
        fflush(stdout);

        char line[256];
        int stdin_open = 1;
        while (!stop) {
                fd_set rfds;
                struct timeval tv = {0, 200000};
                FD_ZERO(&rfds);
                if (stdin_open)
                        FD_SET(0, &rfds);
                int r = select(1, &rfds, NULL, NULL, &tv);
                if (r > 0) {
                        if (fgets(line, sizeof(line), stdin))
                                mock_command(mc, line);
                        else
                                stdin_open = 0; /* run on until a signal */
                }
        }
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        (void)rk;
        long *failed = opaque;
        if (m->err) {
                (*failed)++;
                fprintf(stderr, "kafkatool: delivery failed: %s\n",
                        rd_kafka_err2str(m->err));
        }
}

/* "key=value" -> conf, for -X. */
static void conf_set_kv(rd_kafka_conf_t *conf, const char *kv)
{
        char k[256];
        const char *eq = strchr(kv, '=');
        if (!eq || (size_t)(eq - kv) >= sizeof(k))
                die("-X needs key=value, not %s", kv);
        memcpy(k, kv, eq - kv);
        k[eq - kv] = '\0';
        conf_set(conf, k, eq + 1);
}

/* With a rate, waits (serving delivery reports) until message number
 * `count` is due: t0 + count / rate. */
static void pace(rd_kafka_t *rk, double rate, double t0, long count)
{
        if (rate <= 0)
                return;
        double due = t0 + count / rate;
        double now;
        while ((now = now_s()) < due && !stop) {
                double ms = (due - now) * 1000;
                rd_kafka_poll(rk, ms > 1 ? 1 : 0);
                if (ms <= 1)
                        break; /* within a millisecond: send now */
        }
}

/* Exits on a transaction API error (test code). */
static void txn_check(rd_kafka_error_t *error, const char *what)
{
        if (!error)
                return;
        fprintf(stderr, "kafkatool: transaction %s: ", what);
        die("%s", rd_kafka_error_string(error));
}

static int cmd_produce(int argc, char **argv)
{
        const char *boot = NULL, *topic = NULL;
        const char *props[64];
        int opt, nprops = 0;
        long failed = 0, count = 0;
        double rate = 0;
        int64_t age_ms = 0;
        const char *txn_id = NULL;
        while ((opt = getopt(argc, argv, "b:t:r:a:X:T:")) != -1) {
                if (opt == 'T')
                        txn_id = optarg;
                else if (opt == 'b')
                        boot = optarg;
                else if (opt == 't')
                        topic = optarg;
                else if (opt == 'r')
                        rate = atof(optarg);
                else if (opt == 'a')
                        age_ms = atoll(optarg);
                else if (opt == 'X' && nprops < 64)
                        props[nprops++] = optarg;
                else
                        return 2;
        }
        if (!boot || !topic)
                die("%s", "produce needs -b BOOTSTRAP -t TOPIC");
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "bootstrap.servers", boot);
        conf_set(conf, "linger.ms", "20");
        conf_set(conf, "batch.num.messages", "10000");
        conf_set(conf, "queue.buffering.max.messages", "1000000");
        conf_set(conf, "enable.idempotence", "true");
        conf_set(conf, "message.max.bytes", "20000000");
        for (int i = 0; i < nprops; i++)
                conf_set_kv(conf, props[i]);
        if (txn_id)
                conf_set(conf, "transactional.id", txn_id);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, &failed);
        rd_kafka_t *rk = new_client(RD_KAFKA_PRODUCER, conf);
        if (txn_id)
                txn_check(rd_kafka_init_transactions(rk, 30000), "init");

        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        double t0 = now_s();
        while ((len = getline(&line, &cap, stdin)) > 0) {
                if (line[len - 1] == '\n')
                        line[--len] = '\0';
                char *tab = memchr(line, '\t', len);
                char *key = NULL, *val = line;
                size_t klen = 0, vlen = len;
                if (tab) {
                        key = line;
                        klen = tab - line;
                        val = tab + 1;
                        vlen = len - klen - 1;
                }
                if (txn_id && !tab && !strcmp(line, "\\BEGIN")) {
                        txn_check(rd_kafka_begin_transaction(rk), "begin");
                        continue;
                }
                if (txn_id && !tab && !strcmp(line, "\\COMMIT")) {
                        txn_check(rd_kafka_commit_transaction(rk, 30000),
                                  "commit");
                        continue;
                }
                if (txn_id && !tab && !strcmp(line, "\\ABORT")) {
                        /* written first: the log holds the aborted records */
                        if (rd_kafka_flush(rk, 30000))
                                die("%s", "flush timed out");
                        txn_check(rd_kafka_abort_transaction(rk, 30000),
                                  "abort");
                        continue;
                }
                if (vlen == 2 && !memcmp(val, "\\N", 2)) {
                        val = NULL;
                        vlen = 0;
                }
                pace(rk, rate, t0, count);
                /* 0 = the producer's own clock (CreateTime now) */
                int64_t ts = age_ms ? wall_ms() - age_ms : 0;
                rd_kafka_resp_err_t err;
                while (
                    (err = rd_kafka_producev(
                         rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                         RD_KAFKA_V_VALUE(val, vlen), RD_KAFKA_V_TIMESTAMP(ts),
                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                         RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(rk, 100);
                if (err)
                        die("produce: %s", rd_kafka_err2str(err));
                count++;
                rd_kafka_poll(rk, 0);
        }
        double secs = now_s() - t0;
        free(line);
        if (rd_kafka_flush(rk, 60000))
                die("%s", "flush timed out");
        rd_kafka_destroy(rk);
        fprintf(stderr,
                "kafkatool: produced %ld, failed %ld, in %.3f s (%.0f msg/s)\n",
                count, failed, secs, secs > 0 ? count / secs : 0.0);
        return failed ? 1 : 0;
}

static const rd_kafka_metadata_topic_t *
topic_metadata(rd_kafka_t *rk, const char *topic,
               const rd_kafka_metadata_t **md)
{
        for (int tries = 0; tries < 50; tries++) {
                rd_kafka_resp_err_t err =
                    rd_kafka_metadata(rk, 1, NULL, md, 5000);
                if (!err) {
                        for (int i = 0; i < (*md)->topic_cnt; i++)
                                if (!strcmp((*md)->topics[i].topic, topic) &&
                                    !(*md)->topics[i].err)
                                        return &(*md)->topics[i];
                        rd_kafka_metadata_destroy(*md);
                }
                usleep(200000);
        }
        die("no metadata for topic %s", topic);
        return NULL;
}

static int cmd_committed(int argc, char **argv)
{
        const char *boot = NULL, *topic = NULL, *group = NULL;
        int opt;
        while ((opt = getopt(argc, argv, "b:t:g:")) != -1) {
                if (opt == 'b')
                        boot = optarg;
                else if (opt == 't')
                        topic = optarg;
                else if (opt == 'g')
                        group = optarg;
                else
                        return 2;
        }
        if (!boot || !topic || !group)
                die("%s", "committed needs -b -t -g");
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "bootstrap.servers", boot);
        conf_set(conf, "group.id", group);
        conf_set(conf, "enable.auto.commit", "false");
        rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, conf);
        const rd_kafka_metadata_t *md;
        const rd_kafka_metadata_topic_t *t = topic_metadata(rk, topic, &md);
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(t->partition_cnt);
        for (int i = 0; i < t->partition_cnt; i++)
                rd_kafka_topic_partition_list_add(parts, topic,
                                                  t->partitions[i].id);
        /* The group coordinator may be moving or loading (after a broker
         * restart): retry those answers for a while. */
        rd_kafka_resp_err_t err;
        for (int tries = 0;; tries++) {
                err = rd_kafka_committed(rk, parts, 10000);
                if (!err || tries >= 40 ||
                    (err != RD_KAFKA_RESP_ERR_NOT_COORDINATOR &&
                     err != RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS &&
                     err != RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE &&
                     err != RD_KAFKA_RESP_ERR__TIMED_OUT))
                        break;
                usleep(500000);
        }
        if (err)
                die("committed: %s", rd_kafka_err2str(err));
        for (int i = 0; i < parts->cnt; i++) {
                int64_t lo, hi;
                err = rd_kafka_query_watermark_offsets(
                    rk, topic, parts->elems[i].partition, &lo, &hi, 10000);
                if (err)
                        die("watermarks: %s", rd_kafka_err2str(err));
                printf("%d %" PRId64 " %" PRId64 "\n",
                       parts->elems[i].partition, parts->elems[i].offset, hi);
        }
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        return 0;
}

/* Writes s as a JSON string (bytes >= 0x80 passed through). */
static void print_json_string(const char *s, size_t n)
{
        putchar('"');
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '"' || c == '\\')
                        printf("\\%c", c);
                else if (c < 0x20)
                        printf("\\u%04x", c);
                else
                        putchar(c);
        }
        putchar('"');
}

/* One JSON line: partition, offset, timestamp, key, value, headers. */
static void print_message(rd_kafka_message_t *m)
{
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_timestamp_type_t tstype;
        printf("{\"partition\":%d,\"offset\":%" PRId64 ",\"timestamp\":%" PRId64
               ",\"key\":",
               m->partition, m->offset, rd_kafka_message_timestamp(m, &tstype));
        if (m->key)
                print_json_string(m->key, m->key_len);
        else
                printf("null");
        printf(",\"value\":");
        if (m->payload)
                print_json_string(m->payload, m->len);
        else
                printf("null");
        printf(",\"headers\":{");
        if (!rd_kafka_message_headers(m, &hdrs)) {
                const char *name;
                const void *val;
                size_t size;
                for (size_t i = 0;
                     !rd_kafka_header_get_all(hdrs, i, &name, &val, &size);
                     i++) {
                        if (i)
                                putchar(',');
                        print_json_string(name, strlen(name));
                        putchar(':');
                        print_json_string(val ? val : "", val ? size : 0);
                }
        }
        printf("}}\n");
}

/* Reads every partition of topic from the beginning to the high watermark
 * seen at start. -p prints each message as a JSON line. */
static int cmd_consume(int argc, char **argv)
{
        const char *boot = NULL, *topic = NULL;
        int opt, print = 0;
        while ((opt = getopt(argc, argv, "b:t:p")) != -1) {
                if (opt == 'b')
                        boot = optarg;
                else if (opt == 't')
                        topic = optarg;
                else if (opt == 'p')
                        print = 1;
                else
                        return 2;
        }
        if (!boot || !topic)
                die("%s", "consume needs -b -t");
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "bootstrap.servers", boot);
        conf_set(conf, "group.id", "kafkatool-consume");
        conf_set(conf, "enable.auto.commit", "false");
        conf_set(conf, "enable.partition.eof", "true");
        rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, conf);
        rd_kafka_poll_set_consumer(rk);
        const rd_kafka_metadata_t *md;
        const rd_kafka_metadata_topic_t *t = topic_metadata(rk, topic, &md);
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(t->partition_cnt);
        int remaining = 0;
        for (int i = 0; i < t->partition_cnt; i++) {
                int64_t lo, hi;
                int32_t p = t->partitions[i].id;
                if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi,
                                                     10000))
                        die("%s", "watermarks failed");
                if (hi > lo) {
                        rd_kafka_topic_partition_list_add(parts, topic, p)
                            ->offset = RD_KAFKA_OFFSET_BEGINNING;
                        remaining++;
                }
        }
        double t0 = now_s();
        long count = 0, bytes = 0;
        rd_kafka_assign(rk, parts);
        while (remaining > 0 && !stop) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        remaining--;
                } else if (m->err) {
                        fprintf(stderr, "kafkatool: %s\n",
                                rd_kafka_message_errstr(m));
                } else {
                        count++;
                        bytes += m->len;
                        if (print)
                                print_message(m);
                }
                rd_kafka_message_destroy(m);
        }
        double secs = now_s() - t0;
        fprintf(stderr,
                "kafkatool: consumed %ld messages (%ld bytes) in %.3f s: "
                "%.0f msg/s\n",
                count, bytes, secs, secs > 0 ? count / secs : 0.0);
        if (!print)
                printf("%ld %.6f\n", count, secs);
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_metadata_destroy(md);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return 0;
}

static int cmd_lose(int argc, char **argv)
{
        const char *boot = NULL, *topic = NULL, *group = NULL;
        long part = -1, commit = -1, before = -1;
        int opt;
        while ((opt = getopt(argc, argv, "b:t:g:p:c:o:")) != -1) {
                if (opt == 'b')
                        boot = optarg;
                else if (opt == 't')
                        topic = optarg;
                else if (opt == 'g')
                        group = optarg;
                else if (opt == 'p')
                        part = atol(optarg);
                else if (opt == 'c')
                        commit = atol(optarg);
                else if (opt == 'o')
                        before = atol(optarg);
                else
                        return 2;
        }
        if (!boot || !topic || !group || part < 0 || commit < 0 || before < 0)
                die("%s", "lose needs -b -t -g -p -c -o");
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "bootstrap.servers", boot);
        conf_set(conf, "group.id", group);
        conf_set(conf, "enable.auto.commit", "false");
        rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, conf);
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, (int32_t)part)->offset =
            commit;
        rd_kafka_resp_err_t err = rd_kafka_commit(rk, l, 0);
        if (!err && l->elems[0].err)
                err = l->elems[0].err;
        if (err)
                die("commit: %s", rd_kafka_err2str(err));
        l->elems[0].offset = before;
        rd_kafka_DeleteRecords_t *del = rd_kafka_DeleteRecords_new(l);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_DeleteRecords(rk, &del, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
        if (!ev)
                die("%s", "delete records: no answer in 30 s");
        const rd_kafka_topic_partition_list_t *r =
            rd_kafka_DeleteRecords_result_offsets(
                rd_kafka_event_DeleteRecords_result(ev));
        err = rd_kafka_event_error(ev);
        if (!err && r && r->cnt)
                err = r->elems[0].err;
        if (err)
                die("delete records: %s", rd_kafka_err2str(err));
        printf("%ld %ld\n", commit, r->elems[0].offset);
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_DeleteRecords_destroy(del);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: lb-kafkatool mock|produce|committed|"
                                "consume|lose [options]\n");
                return 2;
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        signal(SIGPIPE, SIG_IGN);
        const char *cmd = argv[1];
        argc--;
        argv++;
        if (!strcmp(cmd, "mock"))
                return cmd_mock(argc, argv);
        if (!strcmp(cmd, "produce"))
                return cmd_produce(argc, argv);
        if (!strcmp(cmd, "committed"))
                return cmd_committed(argc, argv);
        if (!strcmp(cmd, "consume"))
                return cmd_consume(argc, argv);
        if (!strcmp(cmd, "lose"))
                return cmd_lose(argc, argv);
        fprintf(stderr, "lb-kafkatool: unknown command %s\n", cmd);
        return 2;
}
