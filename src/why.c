/*
 * why.c: the refusal message of why.h.
 */
#include "why.h"

#include <stdarg.h>
#include <stdio.h>

int lb_why(char *why, size_t why_size, const char *fmt, ...)
{
        if (why && why_size) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, why_size, fmt, ap);
                va_end(ap);
        }
        return -1;
}
