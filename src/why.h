/*
 * why.h: how a function that can refuse its input says why: a one-line
 * message written into the caller's buffer (which may be NULL or empty).
 */
#ifndef LB_WHY_H
#define LB_WHY_H

#include <stddef.h>

/**
 * @brief Writes the printf-formatted message into why[0..why_size).
 * @returns -1, so that a refusal is one statement: return lb_why(...).
 */
int lb_why(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
