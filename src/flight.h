/*
 * flight.h: one batch on its way to the API, as a pure state machine. A
 * flight owns exactly its unresolved actions (a resolved or given-up slot is
 * NULL), keeps the stack of ranges still to send (a 403 splits the current
 * one in halves, sent in order), counts the attempts of the current range,
 * and says what to do next: send, wait (a retry's backoff, or until the
 * ledger frees its users: the caller defers it), or end. Holds are not the
 * flight's: the ledger (ledger.h) keeps the users of a request whose answer
 * never came busy, whether or not a flight still carries them. Pure: time
 * is passed in; no I/O.
 */
#ifndef LB_FLIGHT_H
#define LB_FLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "action.h"

typedef struct {
        lb_action_t **acts; /* the batch's, in send order; NULL = not ours */
        struct lb_user_s **users; /* per slot, moved with it (NULL: none) */
        size_t n;                 /* slots in acts */
        size_t *ranges;           /* (lo, hi) pairs; the top one is current */
        size_t range_cnt;         /* pairs * 2 */
        size_t range_cap;         /* allocated entries */
        int attempt;              /* attempts of the current range */
        int sending;              /* an attempt of the current range runs */
        int64_t due_ms;           /* no attempt before this (backoff, ledger) */
        int split;                /* lb_flight_split made halves */
        /* answers too large to read (lb_flight_answer_cut): */
        int cut;          /* the whole batch's, before any split */
        int cut_alone;    /* one user's own (or one action's) */
        int lost;         /* actions given up: its parts say less */
        size_t read_most; /* the longest range read whole since the cut */
} lb_flight_t;

/** What a flight needs next. */
typedef enum {
        LB_FLIGHT_WAIT, /* an attempt runs, or its next is deferred */
        LB_FLIGHT_SEND, /* send the current range */
        LB_FLIGHT_END,  /* nothing left: release the users */
} lb_flight_step_t;

/**
 * @brief Starts a flight over acts[0..n) (not copied; the slots are the
 *        flight's to clear) with one range holding them all. users (NULL:
 *        none) hold each slot's user record, which stays with its action
 *        when the gaps of given-up actions are closed (who is on the wire
 *        is read from them).
 * @returns 0, or -1 on allocation failure (nothing to free).
 */
int lb_flight_init(lb_flight_t *f, lb_action_t **acts, struct lb_user_s **users,
                   size_t n);

/** @brief Frees the range stack (not the actions). */
void lb_flight_clear(lb_flight_t *f);

/** @returns 1 and the current range [*lo, *hi), or 0 when none is left. */
int lb_flight_range(const lb_flight_t *f, size_t *lo, size_t *hi);

/** @returns what to do at now (see lb_flight_step_t). */
lb_flight_step_t lb_flight_next(const lb_flight_t *f, int64_t now);

/** @returns when lb_flight_next() may change without an answer, or
 *           INT64_MAX while an attempt runs. */
int64_t lb_flight_wake(const lb_flight_t *f);

/** @brief An attempt of the current range went out. */
void lb_flight_sent(lb_flight_t *f);

/**
 * @brief The running attempt ended. The current range keeps its positions
 *        (to match the answer) until it is resolved, split or retried.
 */
void lb_flight_answered(lb_flight_t *f);

/** @brief The attempt that just ended does not count (outage mode). */
void lb_flight_uncount(lb_flight_t *f);

/** @brief No attempt before until (its users are busy in the ledger). */
void lb_flight_defer(lb_flight_t *f, int64_t until);

/** @brief A wait that ends by `by` at the latest (outage mode's probes do
 *         not wait out a long Retry-After); whether its users are busy is
 *         for the caller to check again before it sends. */
void lb_flight_hasten(lb_flight_t *f, int64_t by);

/** @brief Takes slot i out of the flight: @returns its action (or NULL if
 *         it was given up while its attempt ran); the slot becomes NULL. */
lb_action_t *lb_flight_take(lb_flight_t *f, size_t i);

/** @brief The current range's answer was too large to read (the API
 *         applied it): it is split next, or its one action dead-lettered.
 *  @returns 1 when it was the whole batch's (nothing split before). */
int lb_flight_answer_cut(lb_flight_t *f);

/** @brief The current range's answer was read whole. */
void lb_flight_answer_read(lb_flight_t *f);

/**
 * @returns the most actions a request of the flight's app should carry,
 *          by what its answers showed: after its whole batch's answer was
 *          too large to read, the longest range of it read whole since;
 *          0 when that says nothing (no such cut, nothing read since,
 *          actions given up: its parts are smaller than the API showed, or
 *          a range of one user's actions, or of one action, answered too
 *          large: that user's answers (a start is answered with the user's
 *          variables), not the size of the requests, explain the cut).
 */
size_t lb_flight_cut_cap(const lb_flight_t *f);

/** @brief The current range is resolved (every slot taken): pops it. */
void lb_flight_resolved(lb_flight_t *f);

/**
 * @brief Replaces the current range by its halves, the first half current,
 *        the second next, after closing the gaps of given-up actions (a
 *        range left with one action stays, to be sent again; an emptied one
 *        is popped and the next range goes on whole, never having been
 *        sent).
 * @returns 0, or -1 on allocation failure (the flight is unchanged).
 */
int lb_flight_split(lb_flight_t *f);

/** @brief The current range is retried at due_ms, with the gaps of given-up
 * actions closed; if it was emptied, it is popped and the next range goes on
 * without waiting. */
void lb_flight_retry_at(lb_flight_t *f, int64_t due_ms);

/**
 * @brief Gives up every action for which give_up() is true: the slot is
 *        cleared and drop() receives the action. Ranges not being sent are
 *        compacted (order kept, emptied ones removed); the running one keeps
 *        its positions until lb_flight_answered().
 * @returns how many were given up.
 */
size_t lb_flight_give_up(lb_flight_t *f, int (*give_up)(const lb_action_t *a),
                         void (*drop)(lb_action_t *a, void *opaque),
                         void *opaque);

/**
 * @brief Gives up every action but those of the attempt running (all of
 *        them when none runs), as lb_flight_give_up() does: what is on the
 *        wire waits for its answer.
 * @returns how many were given up.
 */
size_t lb_flight_give_up_waiting(lb_flight_t *f,
                                 void (*drop)(lb_action_t *a, void *opaque),
                                 void *opaque);
/** @brief Hands every unresolved action to drop() and clears its slot. */
void lb_flight_abandon(lb_flight_t *f,
                       void (*drop)(lb_action_t *a, void *opaque),
                       void *opaque);

#endif
