/*
 * ledger.c: the ledger of ledger.h. Owns the list of busy entries (the
 * entries themselves live in the batcher's user records) and each entry's
 * tags while it is busy; knows nothing of actions, flights or partitions.
 * The entries held are counted, and the earliest end of a hold is cached,
 * so expiring is a walk of the busy list only when a hold has ended.
 */
#include "ledger.h"

#include <stdlib.h>
#include <string.h>

struct lb_ledger_s {
        lb_ledger_entry_t busy; /* list head: busy.next is the first */
        size_t held;            /* entries with hold_until set */
        int64_t next_expiry;    /* no hold ends before this */
};

lb_ledger_t *lb_ledger_new(void)
{
        lb_ledger_t *l = calloc(1, sizeof(*l));
        if (!l)
                return NULL;
        l->busy.next = l->busy.prev = &l->busy;
        l->next_expiry = INT64_MAX;
        return l;
}

void lb_ledger_destroy(lb_ledger_t *l)
{
        free(l);
}

static int linked(const lb_ledger_entry_t *e)
{
        return e->next != NULL;
}

/* Adds the tags e lacks. @returns 0, or -1 (e unchanged). */
static int add_tags(lb_ledger_entry_t *e, const uint64_t *tags, size_t ntags)
{
        size_t need = e->ntags + ntags;
        if (need > e->tags_cap) {
                uint64_t *t = realloc(e->tags, need * sizeof(*t));
                if (!t)
                        return -1;
                e->tags = t;
                e->tags_cap = (uint32_t)need;
        }
        for (size_t i = 0; i < ntags; i++) {
                size_t j = 0;
                while (j < e->ntags && e->tags[j] != tags[i])
                        j++;
                if (j == e->ntags)
                        e->tags[e->ntags++] = tags[i];
        }
        return 0;
}

/* Sets or clears e's hold, keeping the held count and the cache. */
static void set_hold(lb_ledger_t *l, lb_ledger_entry_t *e, int64_t until)
{
        l->held += (until != 0) - (e->hold_until != 0);
        e->hold_until = until;
        if (until && until < l->next_expiry)
                l->next_expiry = until;
}

/* e goes idle: out of the list, its tags freed. */
static void unlink_entry(lb_ledger_t *l, lb_ledger_entry_t *e)
{
        set_hold(l, e, 0);
        e->prev->next = e->next;
        e->next->prev = e->prev;
        free(e->tags);
        memset(e, 0, sizeof(*e));
}

int lb_ledger_sent(lb_ledger_t *l, lb_ledger_entry_t *e, const uint64_t *tags,
                   size_t ntags)
{
        if (add_tags(e, tags, ntags))
                return -1;
        if (!linked(e)) {
                e->prev = l->busy.prev;
                e->next = &l->busy;
                e->prev->next = e;
                l->busy.prev = e;
        }
        e->on_wire++;
        return 0;
}

void lb_ledger_answered(lb_ledger_t *l, lb_ledger_entry_t *e,
                        int64_t hold_until, int64_t now)
{
        if (!linked(e) || e->on_wire == 0)
                return;
        e->on_wire--;
        if (hold_until > now && hold_until > e->hold_until)
                set_hold(l, e, hold_until);
        if (e->on_wire == 0 && e->hold_until <= now)
                unlink_entry(l, e);
}

int64_t lb_ledger_until(const lb_ledger_entry_t *e)
{
        if (!linked(e))
                return 0;
        return e->on_wire ? INT64_MAX : e->hold_until;
}

static int busy(const lb_ledger_entry_t *e, int64_t now)
{
        return e->on_wire > 0 || e->hold_until > now;
}

void lb_ledger_expire(lb_ledger_t *l, int64_t now)
{
        if (!l->held || now < l->next_expiry)
                return;
        l->next_expiry = INT64_MAX;
        for (lb_ledger_entry_t *e = l->busy.next, *next; e != &l->busy;
             e = next) {
                next = e->next;
                if (e->hold_until && e->hold_until <= now)
                        set_hold(l, e, 0);
                if (!busy(e, now)) {
                        unlink_entry(l, e);
                        continue;
                }
                if (e->hold_until && e->hold_until < l->next_expiry)
                        l->next_expiry = e->hold_until;
        }
}

void lb_ledger_forget(lb_ledger_t *l, lb_ledger_entry_t *e)
{
        if (linked(e))
                unlink_entry(l, e);
        else
                free(e->tags);
}

size_t lb_ledger_busy(const lb_ledger_t *l, int64_t now)
{
        size_t n = 0;
        for (const lb_ledger_entry_t *e = l->busy.next; e != &l->busy;
             e = e->next)
                n += busy(e, now);
        return n;
}

int lb_ledger_busy_tagged(const lb_ledger_t *l, int64_t now,
                          int (*match)(uint64_t tag, const void *arg),
                          const void *arg)
{
        for (const lb_ledger_entry_t *e = l->busy.next; e != &l->busy;
             e = e->next) {
                if (!busy(e, now))
                        continue;
                for (size_t t = 0; t < e->ntags; t++)
                        if (match(e->tags[t], arg))
                                return 1;
        }
        return 0;
}

int64_t lb_ledger_next_expiry(const lb_ledger_t *l)
{
        return l->held ? l->next_expiry : INT64_MAX;
}
