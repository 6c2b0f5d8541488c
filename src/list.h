/*
 * list.h: how configuration values are written: trimmed text and comma
 * lists of names (input.topics, batch.urgent, ...). Pure.
 */
#ifndef LB_LIST_H
#define LB_LIST_H

#include <stddef.h>

/** @returns s without leading blanks, its trailing ones cut in place
 *           (blanks: isspace()). */
char *lb_trim(char *s);

/**
 * @brief Splits a comma list; elements are trimmed and must be non-empty
 *        and distinct. A value that is empty or all blank is the empty list
 *        when allow_empty (out NULL, count 0), else an error.
 * @returns 0 with *out (malloc'd strings) and *out_cnt set, or -1 with why
 *          set and nothing allocated.
 */
int lb_list_parse(const char *value, int allow_empty, char ***out,
                  size_t *out_cnt, char *why, size_t why_size);

/** @brief Frees what lb_list_parse gave (NULL is fine). */
void lb_list_free(char **v, size_t n);

#endif
