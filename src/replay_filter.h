/*
 * replay_filter.h: the decisions of `leanbridge replay`, without I/O: its
 * options (parsed from their strings), what a dead-letter record says about
 * itself (read from its leanbridge.* headers), whether a record goes back,
 * where to, the replay count it carries next, and the dry run's tallies.
 */
#ifndef LB_REPLAY_FILTER_H
#define LB_REPLAY_FILTER_H

#include <stddef.h>
#include <stdint.h>

/** The header a replayed record carries: how many times it was replayed. */
#define LB_REPLAY_HEADER "leanbridge.replayed"

/** The bridge's own headers; the others are the original message's. */
#define LB_HEADER_PREFIX "leanbridge."

/** --max-replays of a --follow run without one: a record that keeps
 *  failing goes back this often, then stays in the dead-letter topic. */
#define LB_REPLAY_FOLLOW_MAX_REPLAYS 3

/** An unset --since/--until. */
#define LB_REPLAY_NO_TIME INT64_MIN

typedef struct {
        const char *stage;   /* comma-separated stages; NULL = any */
        const char *app;     /* comma-separated app ids; NULL = any */
        const char *message; /* substring of the error message; NULL = any */
        int64_t since_ms;    /* record time >= since (LB_REPLAY_NO_TIME) */
        int64_t until_ms;    /* record time < until (LB_REPLAY_NO_TIME) */
        int64_t max_replays; /* skip records replayed this often; -1 = unset
                                (off, or LB_REPLAY_FOLLOW_MAX_REPLAYS when
                                following) */
        const char *to;      /* target topic; NULL = the source topic */
        const char *group; /* consumer group; NULL = <kafka.group.id>.replay */
        int dry_run;       /* count, produce nothing, commit nothing */
        int follow;        /* do not stop at the high watermarks */
} lb_replay_opts_t;

/** @brief No filter, no limit, source topics, stop when caught up. */
void lb_replay_opts_init(lb_replay_opts_t *o);

/**
 * @brief Sets the option --name from value (kept by pointer: it must live as
 *        long as o). Flags (dry-run, follow) ignore value.
 * @returns 0, or -1 with errstr naming the option and the reason.
 */
int lb_replay_opts_set(lb_replay_opts_t *o, const char *name, const char *value,
                       char *errstr, size_t errstr_size);

/** @returns the --max-replays in force: the option, else
 *           LB_REPLAY_FOLLOW_MAX_REPLAYS when following, else -1 (off). */
int64_t lb_replay_max_replays(const lb_replay_opts_t *o);

/**
 * @brief Cross-option rules: --since before --until, no --dry-run with
 *        --follow, --to not the dead-letter topic itself.
 * @returns 0, or -1 with errstr.
 */
int lb_replay_opts_check(const lb_replay_opts_t *o, const char *dlq_topic,
                         char *errstr, size_t errstr_size);

/**
 * @brief Parses a record time bound: milliseconds since the epoch (digits
 *        only), or an ISO 8601 date "YYYY-MM-DD" (midnight UTC) or date-time
 *        "YYYY-MM-DDTHH:MM[:SS]" followed by "Z" or "+HH:MM"/"-HH:MM".
 * @returns 0 with *ms set, or -1.
 */
int lb_replay_parse_time(const char *s, int64_t *ms);

/** Bytes inside a header value (not NUL-terminated); ptr NULL = absent. */
typedef struct {
        const char *ptr;
        size_t len;
} lb_bytes_t;

/** What a dead-letter record says about itself. Points into its headers. */
typedef struct {
        lb_bytes_t stage;         /* leanbridge.error.stage */
        lb_bytes_t message;       /* leanbridge.error.message */
        lb_bytes_t app;           /* leanbridge.app.id */
        lb_bytes_t source_topic;  /* leanbridge.source.topic */
        int32_t source_partition; /* leanbridge.source.partition; -1 none */
        int64_t source_offset;    /* leanbridge.source.offset; -1 none */
        int cut;              /* leanbridge.value.truncated, .key.truncated or
                                 .headers.dropped: written cut, not the event */
        int64_t replayed;     /* leanbridge.replayed; 0 when absent */
        int replayed_bad;     /* that header is there but not a count */
        int64_t timestamp_ms; /* the record's time (when it was written,
                                 or an older bridge's: the event's); -1 =
                                 none */
        int64_t source_timestamp_ms; /* leanbridge.source.timestamp: the
                                        event's; -1 none */
} lb_dlq_record_t;

/** @brief An empty record view with the record's timestamp (-1: none). */
void lb_replay_record_init(lb_dlq_record_t *r, int64_t timestamp_ms);

/** @returns the event's Kafka timestamp: its header's, else the record's
 *           (dead letters of older bridges kept the event's). */
int64_t lb_replay_event_timestamp(const lb_dlq_record_t *r);

/**
 * @brief Takes one header into the view (the last one of a name wins);
 *        headers of other names are ignored. value (NULL for a null
 *        header) must outlive r.
 */
void lb_replay_record_header(lb_dlq_record_t *r, const char *name,
                             const void *value, size_t len);

/** @returns 1 when a header of this name is the original message's, to be
 *           carried into its dead letter and back on replay (every name
 *           outside LB_HEADER_PREFIX), else 0. */
int lb_replay_header_carried(const char *name);

typedef enum {
        LB_REPLAY_GO = 0,
        LB_REPLAY_SKIP_FILTER,      /* --stage/--app/--message/time */
        LB_REPLAY_SKIP_MAX_REPLAYS, /* replayed --max-replays times already */
        LB_REPLAY_SKIP_NO_TARGET,   /* no --to and no usable source topic */
        LB_REPLAY_SKIP_UNREADABLE,  /* stage consumer_error: no event kept */
} lb_replay_verdict_t;

/**
 * @brief Decides one record. A record of stage consumer_error carries no
 *        event (Kafka could not hand it out): nothing goes back. A record
 *        with no valid target (no --to and
 *        the source topic header absent, empty, too long, or naming the
 *        dead-letter topic) is never replayed.
 */
lb_replay_verdict_t lb_replay_decide(const lb_replay_opts_t *o,
                                     const lb_dlq_record_t *r,
                                     const char *dlq_topic);

/** Longest Kafka topic name. */
#define LB_TOPIC_MAX 249

/**
 * @brief Where r goes: --to (any partition: the producer's partitioner
 *        picks by key), else its source topic and, when known, its source
 *        partition (where the key's other events are).
 * @param topic at least LB_TOPIC_MAX + 1 bytes.
 * @returns 0 with topic and *partition (-1 = let the partitioner pick), or
 *          -1 when r has no valid target.
 */
int lb_replay_target(const lb_replay_opts_t *o, const lb_dlq_record_t *r,
                     const char *dlq_topic, char *topic, int32_t *partition);

/**
 * @brief The leanbridge.replayed value the replayed copy of r carries: its
 *        count plus one (1 when the header was absent or not a count).
 * @returns the length written to buf (NUL-terminated).
 */
size_t lb_replay_next_count(const lb_dlq_record_t *r, char *buf, size_t size);

/** One counted name. */
typedef struct {
        char *name;
        uint64_t count;
} lb_tally_entry_t;

/** Counts by name (stage, app or message) for --dry-run. */
typedef struct {
        lb_tally_entry_t *v; /* sorted by name until lb_tally_by_count */
        size_t n, cap;
} lb_tally_t;

/** @brief Counts one occurrence of name (len bytes). @returns 0 or -1
 *         (out of memory). */
int lb_tally_add(lb_tally_t *t, const char *name, size_t len);

/** @brief Orders the entries by count, highest first, then by name. No
 *         lb_tally_add after this. */
void lb_tally_by_count(lb_tally_t *t);

/** @brief Frees the entries; the tally is empty again. */
void lb_tally_free(lb_tally_t *t);

#endif
