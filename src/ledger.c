/*
 * ledger.c: the ledger of ledger.h. Owns the busy slots (a dense array:
 * each names its entry, which names it back) with each busy user's
 * requests on the wire, hold and tags; knows nothing of actions, flights
 * or partitions. The slots held are counted, and the earliest end of a
 * hold is cached, so expiring is a walk of the busy slots only when a hold
 * has ended.
 */
#include "ledger.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

typedef struct {
        lb_ledger_entry_t *e; /* the user's entry, which names this slot */
        int64_t hold_until;   /* an unanswered request may run until then */
        /* The tags: in one while they fit (tags_cap <= 1), which spares an
         * allocation for the usual user (its actions share a partition);
         * else in many. */
        union {
                uint64_t one;
                uint64_t *many;
        } tags;
        uint32_t ntags, tags_cap;
        int32_t on_wire; /* requests carrying the user, not yet ended */
} slot_t;

struct lb_ledger_s {
        slot_t *slots; /* the busy users */
        size_t n, cap;
        size_t held;         /* slots with hold_until set */
        int64_t next_expiry; /* no hold ends before this */
};

/* s's tags (writable when s is). */
static uint64_t *tags_of(const slot_t *s)
{
        return s->tags_cap > 1 ? s->tags.many : (uint64_t *)&s->tags.one;
}

static void tags_free(slot_t *s)
{
        if (s->tags_cap > 1)
                free(s->tags.many);
}

static int has_tag(const slot_t *s, uint64_t tag)
{
        const uint64_t *v = tags_of(s);
        for (size_t j = 0; j < s->ntags; j++)
                if (v[j] == tag)
                        return 1;
        return 0;
}

lb_ledger_t *lb_ledger_new(void)
{
        lb_ledger_t *l = calloc(1, sizeof(*l));
        if (l)
                l->next_expiry = INT64_MAX;
        return l;
}

void lb_ledger_destroy(lb_ledger_t *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++)
                tags_free(&l->slots[i]);
        free(l->slots);
        free(l);
}

static slot_t *slot_of(const lb_ledger_t *l, const lb_ledger_entry_t *e)
{
        return e->slot ? &l->slots[e->slot - 1] : NULL;
}

/* Adds the tags s lacks. @returns 0, or -1 (s unchanged). */
static int add_tags(slot_t *s, const uint64_t *tags, size_t ntags)
{
        size_t need = s->ntags;
        for (size_t i = 0; i < ntags; i++)
                need += !has_tag(s, tags[i]);
        if (need > 1 && need > s->tags_cap) {
                uint64_t *t = realloc(s->tags_cap > 1 ? s->tags.many : NULL,
                                      need * sizeof(*t));
                if (!t)
                        return -1;
                if (s->tags_cap <= 1 && s->ntags)
                        t[0] = s->tags.one;
                s->tags.many = t;
                s->tags_cap = (uint32_t)need;
        }
        for (size_t i = 0; i < ntags; i++)
                if (!has_tag(s, tags[i]))
                        tags_of(s)[s->ntags++] = tags[i];
        return 0;
}

/* Sets or clears s's hold, keeping the held count and the cache. */
static void set_hold(lb_ledger_t *l, slot_t *s, int64_t until)
{
        l->held += (until != 0) - (s->hold_until != 0);
        s->hold_until = until;
        if (until && until < l->next_expiry)
                l->next_expiry = until;
}

/* Slot i's user goes idle: its tags freed, the last slot moved in. */
static void release(lb_ledger_t *l, size_t i)
{
        slot_t *s = &l->slots[i];
        set_hold(l, s, 0);
        tags_free(s);
        s->e->slot = 0;
        if (i != --l->n) {
                *s = l->slots[l->n];
                s->e->slot = (uint32_t)i + 1;
        }
}

int lb_ledger_sent(lb_ledger_t *l, lb_ledger_entry_t *e, const uint64_t *tags,
                   size_t ntags)
{
        slot_t *s = slot_of(l, e);
        if (!s) {
                slot_t *n =
                    lb_grow(l->slots, &l->cap, l->n + 1, sizeof(*n), 64);
                if (!n)
                        return -1;
                l->slots = n;
                s = &l->slots[l->n];
                memset(s, 0, sizeof(*s));
                s->e = e;
                if (add_tags(s, tags, ntags))
                        return -1;
                e->slot = (uint32_t)++l->n;
        } else if (add_tags(s, tags, ntags)) {
                return -1;
        }
        s->on_wire++;
        return 0;
}

void lb_ledger_answered(lb_ledger_t *l, lb_ledger_entry_t *e,
                        int64_t hold_until, int64_t now)
{
        slot_t *s = slot_of(l, e);
        if (!s || s->on_wire == 0)
                return;
        s->on_wire--;
        if (hold_until > now && hold_until > s->hold_until)
                set_hold(l, s, hold_until);
        if (s->on_wire == 0 && s->hold_until <= now)
                release(l, e->slot - 1);
}

int64_t lb_ledger_until(const lb_ledger_t *l, const lb_ledger_entry_t *e)
{
        const slot_t *s = l ? slot_of(l, e) : NULL;
        if (!s)
                return 0;
        return s->on_wire ? INT64_MAX : s->hold_until;
}

static int busy(const slot_t *s, int64_t now)
{
        return s->on_wire > 0 || s->hold_until > now;
}

void lb_ledger_expire(lb_ledger_t *l, int64_t now)
{
        if (!l->held || now < l->next_expiry)
                return;
        l->next_expiry = INT64_MAX;
        for (size_t i = 0; i < l->n;) {
                slot_t *s = &l->slots[i];
                if (s->hold_until && s->hold_until <= now)
                        set_hold(l, s, 0);
                if (!busy(s, now)) {
                        release(l, i); /* the last slot moves to i */
                        continue;
                }
                if (s->hold_until && s->hold_until < l->next_expiry)
                        l->next_expiry = s->hold_until;
                i++;
        }
}

void lb_ledger_forget(lb_ledger_t *l, lb_ledger_entry_t *e)
{
        if (e->slot)
                release(l, e->slot - 1);
}

size_t lb_ledger_busy(const lb_ledger_t *l, int64_t now)
{
        size_t n = 0;
        for (size_t i = 0; i < l->n; i++)
                n += busy(&l->slots[i], now);
        return n;
}

int lb_ledger_busy_tagged(const lb_ledger_t *l, int64_t now,
                          int (*match)(uint64_t tag, const void *arg),
                          const void *arg)
{
        for (size_t i = 0; i < l->n; i++) {
                const slot_t *s = &l->slots[i];
                if (!busy(s, now))
                        continue;
                for (size_t t = 0; t < s->ntags; t++)
                        if (match(tags_of(s)[t], arg))
                                return 1;
        }
        return 0;
}

int64_t lb_ledger_next_expiry(const lb_ledger_t *l)
{
        return l->held ? l->next_expiry : INT64_MAX;
}
