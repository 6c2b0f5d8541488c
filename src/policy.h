/*
 * policy.h: what an app's actions are held for. Per app: its wait budget,
 * the actions that send their user at once (urgent) and those that end a
 * session (the user's window closes: it goes within batch.linger.ms). Owns
 * the name lists these are configured with ("ACTION" or "event:NAME") and
 * the matching of one event against them. Pure: no I/O, no globals.
 */
#ifndef LB_POLICY_H
#define LB_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"

/** Which field of an event a name is matched against. */
typedef enum {
        LB_MATCH_ACTION = 0, /* the "action" field: "stop", "track", ... */
        LB_MATCH_EVENT,      /* the "event" field (of a track) */
} lb_match_field_t;

typedef struct {
        lb_match_field_t field;
        size_t len;
        char *name; /* without the "event:" prefix; NUL-terminated */
} lb_match_t;

/** A configured list of names; cnt 0 matches nothing. */
typedef struct {
        lb_match_t *v;
        size_t cnt;
} lb_names_t;

/** One app's effective policy; the lists belong to the configuration. */
typedef struct {
        int64_t max_wait_ms;
        const lb_names_t *urgent;
        const lb_names_t *session_end;
} lb_policy_t;

/* Longest name in a list, in bytes. */
#define LB_POLICY_NAME_MAX 256

/**
 * @brief Parses a comma list of names: each "ACTION" or "event:NAME",
 *        trimmed, non-empty, at most LB_POLICY_NAME_MAX bytes, none twice.
 *        An empty (or all blank) value is the empty list.
 * @returns 0 (out replaced; the old list freed), or -1 with why set and
 *          out untouched.
 */
int lb_names_parse(const char *value, lb_names_t *out, char *why,
                   size_t why_size);

/** @brief Frees the list's names and array; the list becomes empty. */
void lb_names_free(lb_names_t *names);

/** @brief Writes the list as it is configured ("stop, event:Purchase"), or
 *         "(none)" when empty, cut to size. */
void lb_names_format(const lb_names_t *names, char *buf, size_t size);

/**
 * @brief Whether field `field` of an event equals name[0..len): the
 *        caller's view of the event (event.c compares decoded JSON strings).
 */
typedef int (*lb_field_eq_fn)(lb_match_field_t field, const char *name,
                              size_t len, void *opaque);

/**
 * @returns what the event does to its user's window: LB_CLOSE_URGENT when
 *          a name of p->urgent matches it, else LB_CLOSE_SESSION_END when
 *          one of p->session_end does, else LB_CLOSE_NONE.
 */
lb_close_t lb_policy_classify(const lb_policy_t *p, lb_field_eq_fn eq,
                              void *opaque);

#endif
