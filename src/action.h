/*
 * action.h: the record of one consumed Kafka message on its way through the
 * bridge. Created by the consumer adapter, owned by the batcher while pending,
 * by a batch while in flight, by the DLQ producer while its dead-letter record
 * is unacknowledged, and freed once its offset is marked done.
 */
#ifndef LB_ACTION_H
#define LB_ACTION_H

#include <stddef.h>
#include <stdint.h>

struct lb_arena_s;
struct lb_partition_s;
struct rd_kafka_headers_s;

/** Why an event did not reach (or was refused by) the API. */
typedef enum {
        LB_STAGE_NONE = 0,
        LB_STAGE_PARSE,             /* not JSON, not an object, bad UTF-8 */
        LB_STAGE_VALIDATE,          /* the input contract is broken */
        LB_STAGE_API,               /* the API answered success:false */
        LB_STAGE_HTTP,              /* refused by status (4xx, 403 single) */
        LB_STAGE_RETRIES_EXHAUSTED, /* retryable failures, out of attempts */
        LB_STAGE_API_SKIPPED,       /* success:true with an error: skipped */
        LB_STAGE_API_WARNING,       /* success:true with a warning */
        LB_STAGE_TOO_OLD,           /* older than input.max.age.ms */
        LB_STAGE_CONSUMER_ERROR,    /* unreadable in Kafka (a bad batch) */
        LB_STAGE__COUNT
} lb_stage_t;

/** @returns the stage's name as used in DLQ headers and metrics. */
const char *lb_stage_name(lb_stage_t stage);

/** Why a request was sent when it was; all but DUE send actions before
 *  their deadline (the batcher's packing policy). */
typedef enum {
        LB_SEND_DUE = 0,     /* deadlines reached */
        LB_SEND_FULL,        /* a user's actions fill a request */
        LB_SEND_MEMORY,      /* pending near its bound */
        LB_SEND_SHUTDOWN,    /* flush: the bridge is stopping */
        LB_SEND_REVOCATION,  /* flush: partitions are being revoked */
        LB_SEND_URGENT,      /* an urgent action closed its user's window */
        LB_SEND_SESSION_END, /* a session's end closed its user's window */
        LB_SEND__COUNT
} lb_send_reason_t;

/** What an action does to its user's wait window (policy.h): nothing, or
 *  closes it so that the user goes within batch.linger.ms. */
typedef enum {
        LB_CLOSE_NONE = 0,
        LB_CLOSE_URGENT,      /* an urgent action: its campaign waits */
        LB_CLOSE_SESSION_END, /* the session ended: no company is coming */
} lb_close_t;

/** @returns the send reason of an action sent early because its window
 *           was closed by `close` (LB_SEND_URGENT, LB_SEND_SESSION_END). */
lb_send_reason_t lb_close_reason(lb_close_t close);

/** @returns the reason's name as used in metrics ("due", "full", ...). */
const char *lb_send_reason_name(lb_send_reason_t reason);

/** Largest user or device id the API accepts, in bytes. */
#define LB_USER_ID_MAX 400

/* A held action costs this struct, its key and value, and their two NULs
 * in one block of an arena (arena.h): the struct is kept small because the
 * bridge holds rate x budget of them (lb_action_footprint). */
typedef struct lb_action_s {
        struct lb_action_s *next;         /* user queue / free lists */
        struct lb_partition_s *partition; /* offset tracker (refcounted) */
        int64_t offset;                   /* source offset */
        int64_t timestamp_ms;             /* Kafka message timestamp */
        int64_t arrival_ms;               /* monotonic ms when consumed */
        int64_t due_ms; /* monotonic ms by which it should be sent; a dead
                           letter: when it was first produced (dlq.c) */
        /* What few actions have: the message's own headers, the
         * dead-letter reason. NULL until one is set. */
        struct lb_action_extra_s *extra;
        int32_t app;        /* index into the apps table */
        uint32_t key_len;   /* 0 when there is no key (see has_key) */
        uint32_t value_len; /* never 0 for a non-tombstone */
        /* Upper bound of the encoded action: the value, plus
         * ',"time":T' spliced before its closing brace when time_missing
         * (lb_event_body_len). */
        uint32_t body_len;
        uint16_t attempts;    /* requests that carried this action */
        uint16_t http_status; /* dead letter: 0 when there was no response */
        /* What its block costs (lb_arena_cost), kept when it fits
         * (a small block's always does): the bridge asks twice per
         * action (lb_action_footprint); 0 for a larger block, whose cost
         * is worked out each time. */
        uint16_t block_cost : 13;
        uint16_t has_key : 1; /* the message had a key (maybe empty) */
        uint16_t closes : 2;  /* lb_close_t: what it does to the window */
        uint8_t stage;        /* dead letter: lb_stage_t */
        uint8_t time_missing : 1;
        uint8_t object_empty : 1; /* value is "{}" (no comma before time) */
        uint8_t dlq_cut : 1;      /* the DLQ refused the whole record: cut it */
        uint8_t dlq_alone : 1;    /* the DLQ refused a batch with it: write
                                     it in a batch of its own */
        uint8_t closed_by : 2;    /* lb_close_t: its deadline was brought
                                     forward by a closing action */
        /* value_len bytes + NUL, then key_len bytes + NUL */
        char data[];
} lb_action_t;

/** Longest key or value an action holds (Kafka's own limit is lower). */
#define LB_ACTION_DATA_MAX UINT32_MAX

/** @brief Asks the CPU for a's record ahead of use: a loop over a
 *         request's actions meets records last touched when they were
 *         consumed, long out of cache, and without this it waits for each
 *         in turn. a may be NULL (an empty slot): the addresses are
 *         integer sums, and a prefetch ignores an address it cannot use. */
static inline void lb_action_prefetch(const lb_action_t *a)
{
        uintptr_t p = (uintptr_t)a;
        __builtin_prefetch((const void *)p);
        __builtin_prefetch((const void *)(p + offsetof(lb_action_t, data) - 1));
}

/** @brief Asks the CPU for a's value (reading a's record): the line after
 *         the record's (lb_action_prefetch's), and its last. */
static inline void lb_action_prefetch_value(const lb_action_t *a)
{
        __builtin_prefetch(a->data + 64);
        __builtin_prefetch(a->data + a->value_len);
}

/** How far ahead a loop over a request's actions asks for their records;
 *  what it reads through a record is asked for half as far ahead. */
#define LB_ACTION_PREFETCH_AHEAD 8

/** @brief Before a loop over acts[from..n): asks for its first records. */
static inline void lb_actions_prefetch_start(lb_action_t *const *acts,
                                             size_t from, size_t n)
{
        for (size_t k = from; k < n && k < from + LB_ACTION_PREFETCH_AHEAD; k++)
                lb_action_prefetch(acts[k]);
}

/**
 * @brief The step at i of a loop over acts[..n) that began with
 *        lb_actions_prefetch_start: asks for the record
 *        LB_ACTION_PREFETCH_AHEAD ahead.
 * @returns acts[i + LB_ACTION_PREFETCH_AHEAD / 2], whose record is there
 *          by now, for the caller to ask for what it will read through it;
 *          NULL past n (or an empty slot).
 */
static inline const lb_action_t *lb_actions_prefetch(lb_action_t *const *acts,
                                                     size_t i, size_t n)
{
        if (i + LB_ACTION_PREFETCH_AHEAD < n)
                lb_action_prefetch(acts[i + LB_ACTION_PREFETCH_AHEAD]);
        return i + LB_ACTION_PREFETCH_AHEAD / 2 < n
                   ? acts[i + LB_ACTION_PREFETCH_AHEAD / 2]
                   : NULL;
}

/** @returns the original value (NUL-terminated after value_len bytes). */
static inline const char *lb_action_value(const lb_action_t *a)
{
        return a->data;
}

/** @returns the original key (NUL-terminated), NULL when it had none. */
static inline const char *lb_action_key(const lb_action_t *a)
{
        return a->has_key ? a->data + a->value_len + 1 : NULL;
}

/** What few actions have, allocated on demand. */
typedef struct lb_action_extra_s {
        /* The message's own headers, only when it had any: they go into
         * its dead letter. Owned by the action. */
        struct rd_kafka_headers_s *headers;
        char *error; /* dead-letter reason (malloc'd), or NULL */
} lb_action_extra_t;

/** @returns the message's headers, NULL when it had none. */
static inline const struct rd_kafka_headers_s *
lb_action_headers(const lb_action_t *a)
{
        return a->extra ? a->extra->headers : NULL;
}

/** @returns the dead-letter reason, NULL when none was set. */
static inline const char *lb_action_error(const lb_action_t *a)
{
        return a->extra ? a->extra->error : NULL;
}

/**
 * @brief Gives the message's headers to the action (freed with it).
 * @returns 0, or -1 out of memory (the headers are not taken).
 */
int lb_action_take_headers(lb_action_t *a, struct rd_kafka_headers_s *headers);

/** @returns the bytes the bridge holds for a while it is alive: its block
 *           (the record with its key and value) and its headers (what
 *           pending.max.bytes counts; its offset's slot is its tracker's,
 *           offsets.h). Constant once its headers are taken: the bridge
 *           adds it when it takes the action and subtracts it when it
 *           frees it. */
size_t lb_action_footprint_full(const lb_action_t *a);

/** @returns lb_action_footprint_full(a): its kept block cost when it has
 *           nothing else (no headers), as most actions. */
static inline size_t lb_action_footprint(const lb_action_t *a)
{
        return a->block_cost && !a->extra ? a->block_cost
                                          : lb_action_footprint_full(a);
}

/** @returns what a's dead letter holds besides a, from the moment it is
 *           handed to the dead-letter producer (its error set) until its
 *           report, however long the topic takes (down, say): the
 *           producer's copy (the message with its key and value, its
 *           headers: a's own and about ten leanbridge.* ones) and the
 *           reason a keeps. Constant meanwhile: the bridge adds it to the
 *           bound with the dead letter and subtracts it at the report. */
size_t lb_action_dead_letter_cost(const lb_action_t *a);

/**
 * @brief Allocates an action holding copies of key and value, in one block
 *        of arena.
 * @returns NULL on allocation failure, or when key_len or value_len is
 *          over LB_ACTION_DATA_MAX.
 */
lb_action_t *lb_action_new(struct lb_arena_s *arena, const void *key,
                           size_t key_len, const void *value, size_t value_len);

/** @brief Sets the dead-letter reason (copies message; without memory the
 *         reason is left unset and the stage names it). */
void lb_action_set_error(lb_action_t *a, lb_stage_t stage, int http_status,
                         const char *message);

/** @brief Frees the action (its block goes back to its arena); NULL is a
 *         no-op. Does not touch the partition. */
void lb_action_destroy(lb_action_t *a);

#endif
