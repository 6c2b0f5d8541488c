/*
 * skip.c: crossing an unreadable record batch (see skip.h). Pure.
 */
#include "skip.h"

void lb_skip_init(lb_skip_t *s)
{
        s->base = s->lo = s->hi = s->probe = -1;
        s->step = 1;
}

int lb_skip_active(const lb_skip_t *s)
{
        return s->base >= 0;
}

int lb_skip_done(const lb_skip_t *s)
{
        return s->base >= 0 && s->hi >= 0 && s->hi - s->lo <= 1;
}

/* The next position: forward from lo while the end is unknown (never
 * past the log's end, where the consumer would reset its position), else
 * the middle of what is left; once known, hi (where reading goes on). */
static int64_t next(lb_skip_t *s, int64_t end)
{
        if (s->hi < 0) {
                s->probe = s->lo + s->step;
                s->step *= 2;
                if (end > s->lo && s->probe > end)
                        s->probe = end;
        } else if (s->hi - s->lo <= 1) {
                s->probe = s->hi;
        } else {
                s->probe = s->lo + (s->hi - s->lo) / 2;
        }
        return s->probe;
}

/* A position at `at` is past the batch. */
static void past(lb_skip_t *s, int64_t at)
{
        if (s->hi < 0 || at < s->hi)
                s->hi = at;
}

int64_t lb_skip_error(lb_skip_t *s, int64_t offset, int64_t end)
{
        if (!lb_skip_active(s)) {
                s->base = s->lo = offset;
                s->hi = -1;
                s->step = 1;
                return next(s, end);
        }
        if (offset == s->base) {
                /* the position is inside the batch */
                if (s->probe > s->lo)
                        s->lo = s->probe;
        } else if (offset > s->base) {
                /* another unreadable batch starts at offset: past ours */
                past(s, offset < s->probe ? offset : s->probe);
        }
        return next(s, end);
}

int64_t lb_skip_message(lb_skip_t *s, int64_t offset, int64_t end)
{
        if (offset > s->base)
                past(s, offset < s->probe ? offset : s->probe);
        return next(s, end);
}
