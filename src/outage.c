/*
 * outage.c: the outage-mode state machine of outage.h. Owns nothing but its
 * counters.
 */
#include "outage.h"

void lb_outage_init(lb_outage_t *o, int64_t window_ms, int min_failures)
{
        *o =
            (lb_outage_t){.window_ms = window_ms, .min_failures = min_failures};
}

static int success(lb_outage_t *o)
{
        int was = o->active;
        o->active = o->run = o->requests = o->probes = 0;
        o->last_id = 0;
        return was;
}

int lb_outage_observe(lb_outage_t *o, uintptr_t id, int failed, int64_t now)
{
        if (!failed)
                return success(o);
        if (o->active) {
                o->probes++;
                return 0;
        }
        if (!o->run++)
                o->run_start = now;
        if (o->requests < 2 && (o->requests == 0 || id != o->last_id))
                o->requests++;
        o->last_id = id;
        if (o->run >= o->min_failures && o->requests >= 2 &&
            now - o->run_start >= o->window_ms) {
                o->active = 1;
                return 1;
        }
        return 0;
}

int lb_outage_leave(lb_outage_t *o)
{
        return o->active && success(o);
}

int lb_outage_active(const lb_outage_t *o)
{
        return o->active;
}

int lb_outage_probes(const lb_outage_t *o)
{
        return o->probes;
}
