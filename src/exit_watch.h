/*
 * exit_watch.h: the exit bound's backstop. Once the final commit is made,
 * what the process still does (leaving the group, librdkafka's cleanup,
 * the dead-letter producer's last flush) has bounds of its own; a call
 * into librdkafka that never returns (2.0.2 can drop a request its
 * group's end purges, and the caller waits for its answer forever) would
 * still keep the process past the bound, until SIGKILL. A thread waits out
 * what is left of the bound and ends the process, naming the step it was
 * stuck in. Nothing is lost by that: what was done is committed, and what
 * was not is redone by the next owner.
 */
#ifndef LB_EXIT_WATCH_H
#define LB_EXIT_WATCH_H

#include <stdint.h>

/**
 * @brief Ends the process with code (_exit) if it is still running ms from
 *        now, after logging the step set last (lb_exit_watch_step). Call
 *        once, when nothing but cleanup is left.
 * @returns 0, or -1 when no thread could be started (then nothing watches).
 */
int lb_exit_watch_start(int64_t ms, int code);

/** @brief Names the step the process is in (a string literal), for the
 *         watch's line. Thread-safe. */
void lb_exit_watch_step(const char *step);

#endif
