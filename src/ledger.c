/*
 * ledger.c: the ledger of ledger.h. Owns its entries (a hash table keyed by
 * app and identity, each with its own copy of the identity and its tags);
 * knows nothing of actions, flights or partitions. An entry lives while its
 * user is on the wire or held; the entries held are counted, and the
 * earliest end of a hold is cached, so expiring is a scan only when a hold
 * has ended.
 */
#include "ledger.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

#define TABLE_INIT_SIZE 64

typedef struct entry_s {
        struct entry_s *hnext;
        uint64_t hash;
        int app;
        int on_wire;        /* requests carrying the user, not yet ended */
        int64_t hold_until; /* an unanswered request may run until then */
        uint64_t *tags;
        size_t ntags, tags_cap;
        size_t id_len;
        char id[];
} entry_t;

struct lb_ledger_s {
        entry_t **table; /* power-of-two size */
        size_t mask;
        size_t n;            /* entries */
        size_t held;         /* entries with hold_until set */
        int64_t next_expiry; /* no hold ends before this */
};

lb_ledger_t *lb_ledger_new(void)
{
        lb_ledger_t *l = calloc(1, sizeof(*l));
        if (!l)
                return NULL;
        l->table = calloc(TABLE_INIT_SIZE, sizeof(*l->table));
        if (!l->table) {
                free(l);
                return NULL;
        }
        l->mask = TABLE_INIT_SIZE - 1;
        l->next_expiry = INT64_MAX;
        return l;
}

static void entry_free(entry_t *e)
{
        free(e->tags);
        free(e);
}

void lb_ledger_destroy(lb_ledger_t *l)
{
        if (!l)
                return;
        for (size_t i = 0; i <= l->mask; i++) {
                entry_t *e = l->table[i];
                while (e) {
                        entry_t *next = e->hnext;
                        entry_free(e);
                        e = next;
                }
        }
        free(l->table);
        free(l);
}

static entry_t **find(const lb_ledger_t *l, int app, const char *id, size_t len,
                      uint64_t hash)
{
        entry_t **pp = &l->table[hash & l->mask];
        for (; *pp; pp = &(*pp)->hnext) {
                entry_t *e = *pp;
                if (e->hash == hash && e->app == app && e->id_len == len &&
                    !memcmp(e->id, id, len))
                        return pp;
        }
        return pp;
}

static void grow(lb_ledger_t *l)
{
        size_t size = (l->mask + 1) * 2;
        entry_t **table = calloc(size, sizeof(*table));
        if (!table)
                return; /* longer chains, still correct */
        for (size_t i = 0; i <= l->mask; i++) {
                entry_t *e = l->table[i];
                while (e) {
                        entry_t *next = e->hnext;
                        e->hnext = table[e->hash & (size - 1)];
                        table[e->hash & (size - 1)] = e;
                        e = next;
                }
        }
        free(l->table);
        l->table = table;
        l->mask = size - 1;
}

static entry_t *entry_new(lb_ledger_t *l, int app, const char *id, size_t len,
                          uint64_t hash)
{
        entry_t *e = calloc(1, sizeof(*e) + len);
        if (!e)
                return NULL;
        e->hash = hash;
        e->app = app;
        e->id_len = len;
        memcpy(e->id, id, len);
        if (l->n > l->mask)
                grow(l);
        e->hnext = l->table[hash & l->mask];
        l->table[hash & l->mask] = e;
        l->n++;
        return e;
}

/* Adds the tags e lacks. @returns 0, or -1 (e unchanged). */
static int add_tags(entry_t *e, const uint64_t *tags, size_t ntags)
{
        size_t need = e->ntags + ntags;
        if (need > e->tags_cap) {
                uint64_t *t = realloc(e->tags, need * sizeof(*t));
                if (!t)
                        return -1;
                e->tags = t;
                e->tags_cap = need;
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

static void unlink_free(lb_ledger_t *l, entry_t **pp)
{
        entry_t *e = *pp;
        *pp = e->hnext;
        l->n--;
        entry_free(e);
}

int lb_ledger_sent(lb_ledger_t *l, int app, const char *id, size_t len,
                   const uint64_t *tags, size_t ntags)
{
        uint64_t hash = lb_user_hash(app, id, len);
        entry_t **pp = find(l, app, id, len, hash);
        int fresh = !*pp;
        entry_t *e = fresh ? entry_new(l, app, id, len, hash) : *pp;
        if (!e)
                return -1;
        if (add_tags(e, tags, ntags)) {
                if (fresh)
                        unlink_free(l, find(l, app, id, len, hash));
                return -1;
        }
        e->on_wire++;
        return 0;
}

/* Sets or clears e's hold, keeping the held count and the cache. */
static void set_hold(lb_ledger_t *l, entry_t *e, int64_t until)
{
        l->held += (until != 0) - (e->hold_until != 0);
        e->hold_until = until;
        if (until && until < l->next_expiry)
                l->next_expiry = until;
}

void lb_ledger_answered(lb_ledger_t *l, int app, const char *id, size_t len,
                        int64_t hold_until, int64_t now)
{
        entry_t **pp = find(l, app, id, len, lb_user_hash(app, id, len));
        entry_t *e = *pp;
        if (!e || e->on_wire == 0)
                return;
        e->on_wire--;
        if (hold_until > now && hold_until > e->hold_until)
                set_hold(l, e, hold_until);
        if (e->on_wire == 0 && e->hold_until <= now) {
                set_hold(l, e, 0);
                unlink_free(l, pp);
        }
}

int64_t lb_ledger_until(const lb_ledger_t *l, int app, const char *id,
                        size_t len)
{
        const entry_t *e = *find(l, app, id, len, lb_user_hash(app, id, len));
        if (!e)
                return 0;
        return e->on_wire ? INT64_MAX : e->hold_until;
}

static int busy(const entry_t *e, int64_t now)
{
        return e->on_wire > 0 || e->hold_until > now;
}

void lb_ledger_expire(lb_ledger_t *l, int64_t now)
{
        if (!l->held || now < l->next_expiry)
                return;
        l->next_expiry = INT64_MAX;
        for (size_t i = 0; i <= l->mask; i++) {
                entry_t **pp = &l->table[i];
                while (*pp) {
                        entry_t *e = *pp;
                        if (e->hold_until && e->hold_until <= now)
                                set_hold(l, e, 0);
                        if (!busy(e, now)) {
                                unlink_free(l, pp);
                                continue;
                        }
                        if (e->hold_until && e->hold_until < l->next_expiry)
                                l->next_expiry = e->hold_until;
                        pp = &e->hnext;
                }
        }
}

size_t lb_ledger_busy(const lb_ledger_t *l, int64_t now)
{
        size_t n = 0;
        if (!l->n)
                return 0;
        for (size_t i = 0; i <= l->mask; i++)
                for (const entry_t *e = l->table[i]; e; e = e->hnext)
                        n += busy(e, now);
        return n;
}

int lb_ledger_busy_tagged(const lb_ledger_t *l, int64_t now,
                          int (*match)(uint64_t tag, const void *arg),
                          const void *arg)
{
        for (size_t i = 0; l->n && i <= l->mask; i++)
                for (const entry_t *e = l->table[i]; e; e = e->hnext) {
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
