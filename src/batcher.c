/*
 * batcher.c: pending actions per (app, user) and the packing policy in
 * batcher.h. Owns the user records (a hash table keyed by app and identity),
 * each user's FIFO of queued actions, and per app the structures over READY
 * users (not busy, something queued): a min-heap by the user's deadline (its
 * oldest queued action's due time) and a list of the users whose actions
 * fill a request on their own. add() and release() cost O(log users) per
 * user; next() O(apps) to decide plus O(log users) per user taken;
 * abandon() walks everything. Owns queued actions until next() hands them
 * out; only compares an action's partition pointer. The busy gate: a user
 * is busy while in an unreleased batch, and after its release for as long
 * as its ledger entry (ledger.h), which lives in its record, says the API
 * may still be working on it (parked; next() frees the parked users whose
 * time is over). User records live in an arena of the batcher's own
 * (arena.h): a user comes and goes once per wait budget, and malloc's
 * zeroed block and its free cost more than the rest of its adds. No I/O,
 * no clock.
 */
#include "batcher.h"

#include "arena.h"
#include "grow.h"
#include "hash.h"
#include "ledger.h"

#include <stdlib.h>
#include <string.h>

#define NOT_IN_HEAP     UINT32_MAX
#define TABLE_INIT_SIZE 64
#define HEAP_INIT_CAP   16

/* One a user (of one app) with actions queued, in a batch or parked. The
 * bridge holds one per user active within the wait budget: kept small. */
struct lb_user_s {
        struct lb_user_s *hnext;  /* hash chain */
        lb_action_t *head, *tail; /* queued actions, consumed order */
        /* The first action queued since the last close_window (NULL: none);
         * those before it are due at or before closed_due. */
        lb_action_t *open;
        int64_t closed_due;
        struct lb_user_s *fprev, *fnext; /* circular full list */
        uint64_t hash;
        size_t bytes; /* sum of the queued actions' body_len */
        int32_t app;
        uint32_t count; /* queued actions (pending.max.actions < 2^32) */
        /* Ready structures, valid while ready (!busy && count > 0). */
        uint32_t heap_idx;
        uint16_t id_len;          /* at most LB_USER_ID_MAX */
        uint8_t busy : 1;         /* in an unreleased batch, or parked */
        uint8_t parked : 1;       /* released, busy in the ledger */
        uint8_t in_full : 1;      /* in the app's full list */
        lb_ledger_entry_t ledger; /* its slot in the ledger while busy */
        char id[];
};

/* A heap slot holds its key, the user's deadline (its head's due time,
 * constant while the user is ready: adds append later deadlines), so
 * ordering never chases the user pointer. */
typedef struct {
        int64_t key;
        lb_user_t *u;
} slot_t;

typedef struct {
        size_t overhead;     /* request bytes around the actions */
        int64_t max_wait_ms; /* its budget */
        int64_t linger_ms;   /* batch.linger.ms, at most the budget */
        int64_t gather_ms;   /* a due request takes users due this soon */
        size_t n_users;      /* user records of this app (ready or busy) */
        slot_t *heap;        /* ready users, min deadline first */
        size_t heap_len;     /* ready users */
        size_t heap_cap;     /* kept >= n_users so release() cannot fail */
        lb_user_t *full;     /* ready users that fill a request alone */
        size_t max_actions;  /* b->max_actions, or lower (cap_actions) */
        size_t read_max;     /* largest request whose answer was read */
        /* While max_actions is lowered: the actions answered (read whole)
         * since it was last set, the most answer bytes an action took in
         * them, how many a raise waits for (in caps: doubled each time a
         * cap is lowered after a raise), and whether it ever was raised. */
        size_t seen, dense, window;
        int raised;    /* ever: read_max then counts large answers only */
        size_t *holds; /* caps held by cut requests (cap_hold) */
        size_t hold_cnt, hold_cap;
        size_t held_min; /* the lowest of holds, when hold_cnt */
        size_t app_idx;  /* in the app heap; NOT_IN_HEAP: none ready */
        size_t full_next, full_prev; /* the ring of apps with full users */
} app_t;

struct lb_batcher_s {
        lb_arena_t *arena; /* the user records */
        size_t app_cnt;
        size_t max_users, max_actions, max_bytes;
        int64_t linger_ms;
        app_t *apps;
        lb_user_t **table; /* power-of-two size */
        size_t table_mask;
        size_t n_users;
        size_t ready_users;
        size_t pending, pending_bytes;
        /* Apps with ready users by their earliest deadline (ties: the
         * lower index first), and the apps with full users in a ring, in
         * the order they became full, whose head goes first on the next
         * call and then last: a turn costs no scan of every app, however
         * many the apps file lists. */
        size_t *app_heap;
        size_t app_heap_len;
        size_t full_head;              /* app_cnt: no app has full users */
        lb_ledger_t *ledger;           /* where a freed record's entry leaves */
        lb_user_t **parked;            /* released users busy in the ledger */
        size_t parked_cnt, parked_cap; /* cap kept >= n_users */
        size_t bytes; /* of user records, the table, heaps and parking */
};

static lb_user_t *user_find(const lb_batcher_t *b, int app, const char *id,
                            size_t len, uint64_t hash)
{
        for (lb_user_t *u = b->table[hash & b->table_mask]; u; u = u->hnext)
                if (u->hash == hash && u->app == app && u->id_len == len &&
                    lb_key_eq(u->id, id, len))
                        return u;
        return NULL;
}

/* What growing an array of elem-byte entries from old to cap entries adds
 * to b's bytes (an array of 0 entries was never allocated). */
static size_t regrow_cost(size_t old, size_t cap, size_t elem)
{
        return lb_malloc_cost(cap * elem) -
               (old ? lb_malloc_cost(old * elem) : 0);
}

static int table_grow(lb_batcher_t *b)
{
        size_t size = (b->table_mask + 1) * 2;
        lb_user_t **table = calloc(size, sizeof(*table));
        if (!table)
                return -1;
        for (size_t i = 0; i <= b->table_mask; i++) {
                lb_user_t *u = b->table[i];
                while (u) {
                        lb_user_t *next = u->hnext;
                        u->hnext = table[u->hash & (size - 1)];
                        table[u->hash & (size - 1)] = u;
                        u = next;
                }
        }
        free(b->table);
        b->bytes += regrow_cost(b->table_mask + 1, size, sizeof(*table));
        b->table = table;
        b->table_mask = size - 1;
        return 0;
}

static int heap_reserve(lb_batcher_t *b, app_t *ap, size_t need)
{
        size_t old = ap->heap_cap;
        slot_t *heap = lb_grow(ap->heap, &ap->heap_cap, need, sizeof(*heap),
                               HEAP_INIT_CAP);
        if (!heap)
                return -1;
        b->bytes += regrow_cost(old, ap->heap_cap, sizeof(*heap));
        ap->heap = heap;
        return 0;
}

/* Keeps room to park every user, so release() cannot fail. */
static int parked_reserve(lb_batcher_t *b, size_t need)
{
        size_t old = b->parked_cap;
        lb_user_t **p =
            lb_grow(b->parked, &b->parked_cap, need, sizeof(*p), HEAP_INIT_CAP);
        if (!p)
                return -1;
        b->bytes += regrow_cost(old, b->parked_cap, sizeof(*p));
        b->parked = p;
        return 0;
}

static lb_user_t *user_new(lb_batcher_t *b, int app, const char *id, size_t len,
                           uint64_t hash)
{
        app_t *ap = &b->apps[app];
        if (b->n_users > b->table_mask && table_grow(b) == -1)
                return NULL;
        if (heap_reserve(b, ap, ap->n_users + 1) == -1 ||
            parked_reserve(b, b->n_users + 1) == -1)
                return NULL;
        size_t cost;
        lb_user_t *u = lb_arena_alloc(b->arena, sizeof(*u) + len, &cost);
        if (!u)
                return NULL;
        memset(u, 0, sizeof(*u));
        b->bytes += cost;
        u->hash = hash;
        u->app = app;
        u->heap_idx = NOT_IN_HEAP;
        u->id_len = len;
        memcpy(u->id, id, len);
        u->hnext = b->table[hash & b->table_mask];
        b->table[hash & b->table_mask] = u;
        b->n_users++;
        ap->n_users++;
        return u;
}

/* Frees a user that is neither ready nor busy and has nothing queued. */
static void user_free(lb_batcher_t *b, lb_user_t *u)
{
        lb_user_t **pp = &b->table[u->hash & b->table_mask];
        while (*pp != u)
                pp = &(*pp)->hnext;
        *pp = u->hnext;
        b->n_users--;
        b->apps[u->app].n_users--;
        b->bytes -= lb_arena_cost(sizeof(*u) + u->id_len);
        if (b->ledger)
                lb_ledger_forget(b->ledger, &u->ledger);
        lb_arena_free(u, sizeof(*u) + u->id_len);
}

/* The deadline heap. */

static void heap_set(app_t *ap, size_t i, slot_t slot)
{
        ap->heap[i] = slot;
        slot.u->heap_idx = i;
}

static void heap_up(app_t *ap, size_t i)
{
        slot_t slot = ap->heap[i];
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (ap->heap[parent].key <= slot.key)
                        break;
                heap_set(ap, i, ap->heap[parent]);
                i = parent;
        }
        heap_set(ap, i, slot);
}

static void heap_down(app_t *ap, size_t i)
{
        slot_t slot = ap->heap[i];
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= ap->heap_len)
                        break;
                if (c + 1 < ap->heap_len &&
                    ap->heap[c + 1].key < ap->heap[c].key)
                        c++;
                if (ap->heap[c].key >= slot.key)
                        break;
                heap_set(ap, i, ap->heap[c]);
                i = c;
        }
        heap_set(ap, i, slot);
}

static void heap_push(app_t *ap, lb_user_t *u)
{
        slot_t slot = {u->head->due_ms, u};
        heap_set(ap, ap->heap_len++, slot);
        heap_up(ap, u->heap_idx);
}

static void heap_remove(app_t *ap, lb_user_t *u)
{
        size_t i = u->heap_idx;
        slot_t last = ap->heap[--ap->heap_len];
        u->heap_idx = NOT_IN_HEAP;
        if (last.u == u)
                return;
        heap_set(ap, i, last);
        heap_up(ap, i);
        heap_down(ap, last.u->heap_idx);
}

/* @returns the app's earliest deadline (heap not empty). */
static int64_t earliest(const app_t *ap)
{
        return ap->heap[0].key;
}

/* The app heap: apps with ready users, earliest deadline first. */

static int app_before(const lb_batcher_t *b, size_t x, size_t y)
{
        int64_t kx = earliest(&b->apps[x]), ky = earliest(&b->apps[y]);
        return kx < ky || (kx == ky && x < y);
}

static void app_heap_set(lb_batcher_t *b, size_t i, size_t app)
{
        b->app_heap[i] = app;
        b->apps[app].app_idx = i;
}

static void app_heap_up(lb_batcher_t *b, size_t i)
{
        size_t app = b->app_heap[i];
        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (!app_before(b, app, b->app_heap[parent]))
                        break;
                app_heap_set(b, i, b->app_heap[parent]);
                i = parent;
        }
        app_heap_set(b, i, app);
}

static void app_heap_down(lb_batcher_t *b, size_t i)
{
        size_t app = b->app_heap[i];
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= b->app_heap_len)
                        break;
                if (c + 1 < b->app_heap_len &&
                    app_before(b, b->app_heap[c + 1], b->app_heap[c]))
                        c++;
                if (!app_before(b, b->app_heap[c], app))
                        break;
                app_heap_set(b, i, b->app_heap[c]);
                i = c;
        }
        app_heap_set(b, i, app);
}

/* The app's users' heap changed: its place in the app heap follows. */
static void app_fix(lb_batcher_t *b, size_t app)
{
        app_t *ap = &b->apps[app];
        if (ap->heap_len == 0) {
                if (ap->app_idx == NOT_IN_HEAP)
                        return;
                size_t i = ap->app_idx, last = b->app_heap[--b->app_heap_len];
                ap->app_idx = NOT_IN_HEAP;
                if (last == app)
                        return;
                app_heap_set(b, i, last);
                app_heap_up(b, i);
                app_heap_down(b, b->apps[last].app_idx);
                return;
        }
        if (ap->app_idx == NOT_IN_HEAP)
                app_heap_set(b, b->app_heap_len++, app);
        app_heap_up(b, ap->app_idx);
        app_heap_down(b, ap->app_idx);
}

/* The most actions a request of the app carries now. */
static size_t cap_of(const app_t *ap)
{
        return ap->hold_cnt && ap->held_min < ap->max_actions ? ap->held_min
                                                              : ap->max_actions;
}

/* The full list: ready users whose queued actions fill a request alone. */

static int user_fills(const lb_batcher_t *b, const app_t *ap,
                      const lb_user_t *u)
{
        return u->count >= cap_of(ap) ||
               ap->overhead + u->bytes >= b->max_bytes;
}

/* The app joins the ring of apps with full users, last. */
static void full_app_insert(lb_batcher_t *b, size_t app)
{
        app_t *ap = &b->apps[app];
        if (b->full_head == b->app_cnt) {
                ap->full_next = ap->full_prev = app;
                b->full_head = app;
                return;
        }
        app_t *head = &b->apps[b->full_head];
        ap->full_next = b->full_head;
        ap->full_prev = head->full_prev;
        b->apps[head->full_prev].full_next = app;
        head->full_prev = app;
}

static void full_app_remove(lb_batcher_t *b, size_t app)
{
        app_t *ap = &b->apps[app];
        if (ap->full_next == app) {
                b->full_head = b->app_cnt;
                return;
        }
        b->apps[ap->full_prev].full_next = ap->full_next;
        b->apps[ap->full_next].full_prev = ap->full_prev;
        if (b->full_head == app)
                b->full_head = ap->full_next;
}

static void full_insert(lb_batcher_t *b, app_t *ap, lb_user_t *u)
{
        lb_user_t *head = ap->full;
        u->in_full = 1;
        if (!head) {
                u->fprev = u->fnext = u;
                ap->full = u;
                full_app_insert(b, (size_t)(ap - b->apps));
                return;
        }
        u->fnext = head;
        u->fprev = head->fprev;
        head->fprev->fnext = u;
        head->fprev = u;
}

static void full_remove(lb_batcher_t *b, app_t *ap, lb_user_t *u)
{
        u->in_full = 0;
        if (u->fnext == u) {
                ap->full = NULL;
                full_app_remove(b, (size_t)(ap - b->apps));
                return;
        }
        u->fprev->fnext = u->fnext;
        u->fnext->fprev = u->fprev;
        if (ap->full == u)
                ap->full = u->fnext;
}

/* Ready set membership: heap and full list. */

static void ready_insert(lb_batcher_t *b, lb_user_t *u)
{
        app_t *ap = &b->apps[u->app];
        heap_push(ap, u);
        app_fix(b, (size_t)u->app);
        if (user_fills(b, ap, u))
                full_insert(b, ap, u);
        b->ready_users++;
}

static void ready_remove(lb_batcher_t *b, lb_user_t *u)
{
        app_t *ap = &b->apps[u->app];
        heap_remove(ap, u);
        app_fix(b, (size_t)u->app);
        if (u->in_full)
                full_remove(b, ap, u);
        b->ready_users--;
}

lb_batcher_t *lb_batcher_new(const lb_batcher_conf_t *conf)
{
        if (!conf || conf->app_cnt == 0 || conf->max_users < 1 ||
            conf->max_actions < 1 || conf->max_bytes < 1 ||
            conf->linger_ms < 0 || conf->max_wait_ms < 0)
                return NULL;
        lb_batcher_t *b = calloc(1, sizeof(*b));
        if (!b)
                return NULL;
        b->app_cnt = conf->app_cnt;
        b->max_users = (size_t)conf->max_users;
        b->max_actions = (size_t)conf->max_actions;
        b->max_bytes = (size_t)conf->max_bytes;
        b->linger_ms = conf->linger_ms;
        b->arena = lb_arena_new();
        b->apps = calloc(b->app_cnt, sizeof(*b->apps));
        b->app_heap = calloc(b->app_cnt, sizeof(*b->app_heap));
        b->full_head = b->app_cnt;
        b->table = calloc(TABLE_INIT_SIZE, sizeof(*b->table));
        b->table_mask = TABLE_INIT_SIZE - 1;
        b->bytes = regrow_cost(0, TABLE_INIT_SIZE, sizeof(*b->table));
        b->ledger = conf->ledger;
        if (!b->arena || !b->apps || !b->app_heap || !b->table) {
                lb_batcher_destroy(b, NULL);
                return NULL;
        }
        for (size_t i = 0; i < b->app_cnt; i++) {
                b->apps[i].app_idx = NOT_IN_HEAP;
                b->apps[i].max_actions = b->max_actions;
                b->apps[i].window = LB_BATCHER_RAISE_WINDOW;
                b->apps[i].overhead =
                    conf->app_overhead ? conf->app_overhead[i] : 0;
                lb_batcher_set_max_wait(b, i,
                                        conf->app_max_wait_ms
                                            ? conf->app_max_wait_ms[i]
                                            : conf->max_wait_ms);
        }
        return b;
}

void lb_batcher_set_max_wait(lb_batcher_t *b, size_t app, int64_t max_wait_ms)
{
        if (app >= b->app_cnt)
                return;
        app_t *ap = &b->apps[app];
        ap->max_wait_ms = max_wait_ms > 0 ? max_wait_ms : 0;
        ap->linger_ms =
            b->linger_ms < ap->max_wait_ms ? b->linger_ms : ap->max_wait_ms;
        ap->gather_ms = ap->linger_ms < ap->max_wait_ms / 10
                            ? ap->linger_ms
                            : ap->max_wait_ms / 10;
}

size_t lb_batcher_cap_actions(lb_batcher_t *b, size_t app, size_t max_actions)
{
        if (app >= b->app_cnt)
                return 0;
        app_t *ap = &b->apps[app];
        if (max_actions < ap->read_max)
                max_actions = ap->read_max;
        if (max_actions >= 1 && max_actions < ap->max_actions) {
                ap->max_actions = max_actions;
                if (ap->raised && ap->window < SIZE_MAX / 4)
                        ap->window *= 2; /* a raise was one too many */
                ap->seen = ap->dense = 0;
        }
        return ap->max_actions;
}

int lb_batcher_cap_hold(lb_batcher_t *b, size_t app, size_t max_actions)
{
        if (app >= b->app_cnt)
                return -1;
        app_t *ap = &b->apps[app];
        size_t *h =
            lb_grow(ap->holds, &ap->hold_cap, ap->hold_cnt + 1, sizeof(*h), 4);
        if (!h)
                return -1;
        ap->holds = h;
        if (max_actions < 1)
                max_actions = 1;
        if (!ap->hold_cnt || max_actions < ap->held_min)
                ap->held_min = max_actions;
        ap->holds[ap->hold_cnt++] = max_actions;
        return 0;
}

/* Takes the users of the app's full list that no longer fill a request
 * (its cap rose) off it: they wait for their deadline again. */
static void full_recheck(lb_batcher_t *b, app_t *ap)
{
        size_t n = 0;
        lb_user_t *u = ap->full;
        if (u)
                do
                        n++;
                while ((u = u->fnext) != ap->full);
        u = ap->full;
        for (size_t i = 0; i < n; i++) {
                lb_user_t *next = u->fnext;
                if (!user_fills(b, ap, u))
                        full_remove(b, ap, u);
                u = next;
        }
}

void lb_batcher_cap_release(lb_batcher_t *b, size_t app, size_t max_actions)
{
        if (app >= b->app_cnt)
                return;
        app_t *ap = &b->apps[app];
        if (max_actions < 1)
                max_actions = 1;
        size_t before = cap_of(ap), i = 0;
        while (i < ap->hold_cnt && ap->holds[i] != max_actions)
                i++;
        if (i == ap->hold_cnt)
                return;
        ap->holds[i] = ap->holds[--ap->hold_cnt];
        ap->held_min = SIZE_MAX;
        for (i = 0; i < ap->hold_cnt; i++)
                if (ap->holds[i] < ap->held_min)
                        ap->held_min = ap->holds[i];
        if (cap_of(ap) > before)
                full_recheck(b, ap);
}

size_t lb_batcher_answer_read(lb_batcher_t *b, size_t app, size_t n,
                              size_t bytes, size_t budget)
{
        if (app >= b->app_cnt || !n)
                return 0;
        app_t *ap = &b->apps[app];
        /* Once a cap was raised, only a large answer read whole vouches
         * for its size: small ones (the calm that raised it) say nothing
         * of the next burst, which must still be able to lower it. */
        if (n > ap->read_max && (!ap->raised || bytes >= budget / 4))
                ap->read_max = n;
        if (ap->max_actions >= b->max_actions || ap->hold_cnt)
                return 0;
        size_t per = bytes / n + (bytes % n != 0);
        if (per > ap->dense)
                ap->dense = per;
        ap->seen += n;
        if (ap->seen / ap->window < ap->max_actions)
                return 0;
        size_t next = ap->max_actions < b->max_actions / 2 ? 2 * ap->max_actions
                                                           : b->max_actions;
        int fits = ap->dense <= budget / 2 / next;
        ap->seen = ap->dense = 0;
        if (!fits)
                return 0;
        ap->max_actions = next;
        ap->raised = 1;
        full_recheck(b, ap);
        return next;
}

void lb_batcher_set_overhead(lb_batcher_t *b, size_t app, size_t overhead)
{
        if (app < b->app_cnt)
                b->apps[app].overhead = overhead;
}

void lb_batcher_destroy(lb_batcher_t *b, void (*free_action)(lb_action_t *))
{
        if (!b)
                return;
        for (size_t i = 0; b->table && i <= b->table_mask; i++) {
                lb_user_t *u = b->table[i];
                while (u) {
                        lb_user_t *next = u->hnext;
                        lb_action_t *a = u->head;
                        while (a) {
                                lb_action_t *an = a->next;
                                if (free_action)
                                        free_action(a);
                                a = an;
                        }
                        if (b->ledger)
                                lb_ledger_forget(b->ledger, &u->ledger);
                        u = next; /* its block goes with the arena */
                }
        }
        for (size_t i = 0; b->apps && i < b->app_cnt; i++) {
                free(b->apps[i].heap);
                free(b->apps[i].holds);
        }
        free(b->apps);
        free(b->app_heap);
        free(b->table);
        free(b->parked);
        lb_arena_destroy(b->arena);
        free(b);
}

/* The end of a span counted from an action's Kafka write (age_ms before
 * its arrival; a negative age, a producer clock ahead, counts as 0), but
 * at least floor_ms after its arrival. */
static int64_t after_write(int64_t arrival_ms, int64_t age_ms, int64_t span_ms,
                           int64_t floor_ms)
{
        int64_t left = span_ms - (age_ms > 0 ? age_ms : 0);
        return arrival_ms + (left > floor_ms ? left : floor_ms);
}

int64_t lb_batcher_due_ms(const lb_batcher_t *b, int app, int64_t arrival_ms,
                          int64_t age_ms)
{
        const app_t *ap = &b->apps[app];
        return after_write(arrival_ms, age_ms, ap->max_wait_ms, ap->linger_ms);
}

/* a (queued last, written to Kafka age_ms before it arrived) closes u's
 * window: every queued action due later than linger_ms after a was written
 * (at the latest when a arrives) is due then. A session end that arrives
 * with its budget spent (a backlog) keeps the floor every such action has,
 * linger_ms after it arrives: a backlog brings the user's next sessions
 * right behind it, and they share the request instead of paying another
 * lookup. Deadlines stay non-decreasing along the queue (a suffix is
 * lowered to one value), so only a queue whose last deadline is later has
 * anything to lower. A ready user's heap key follows its head. */
static void close_window(lb_batcher_t *b, lb_user_t *u, lb_action_t *a,
                         int64_t age_ms)
{
        app_t *ap = &b->apps[a->app];
        int64_t floor =
            a->closes == LB_CLOSE_SESSION_END && age_ms >= ap->max_wait_ms
                ? ap->linger_ms
                : 0;
        int64_t due = after_write(a->arrival_ms, age_ms, ap->linger_ms, floor);
        int lower = a->due_ms > due; /* a is due last: is anything later? */
        /* What an earlier close left is due by then already, unless this
         * one is due earlier (Kafka timestamps that go back): a user's
         * closes look at each of its actions once, not its whole queue
         * each time (a backlog's busy user queues thousands). */
        lb_action_t *x = due >= u->closed_due && u->open ? u->open : u->head;
        for (; lower && x; x = x->next) {
                if (x->due_ms > due) {
                        x->due_ms = due;
                        x->closed_by = a->closes;
                }
        }
        u->open = NULL; /* everything queued is due by then */
        u->closed_due = due;
        if (lower && u->heap_idx != NOT_IN_HEAP) {
                ap->heap[u->heap_idx].key = u->head->due_ms;
                heap_up(ap, u->heap_idx);
                app_fix(b, (size_t)u->app);
        }
}

int lb_batcher_add(lb_batcher_t *b, lb_action_t *a, const char *user,
                   size_t user_len, int64_t age_ms)
{
        if (a->app < 0 || (size_t)a->app >= b->app_cnt || user_len > UINT16_MAX)
                return -2;
        app_t *ap = &b->apps[a->app];
        if (ap->overhead > b->max_bytes ||
            a->body_len > b->max_bytes - ap->overhead)
                return -2;
        uint64_t hash = lb_user_hash(a->app, user, user_len);
        lb_user_t *u = user_find(b, a->app, user, user_len, hash);
        if (!u && !(u = user_new(b, a->app, user, user_len, hash)))
                return -1;

        a->due_ms = lb_batcher_due_ms(b, a->app, a->arrival_ms, age_ms);
        /* Deadlines never decrease along a user's queue, so its head holds
         * the user's deadline. Raising a's to its predecessor's keeps a
         * within budget: that one arrived earlier with at most max_wait. */
        if (u->tail && u->tail->due_ms > a->due_ms)
                a->due_ms = u->tail->due_ms;
        a->closed_by = LB_CLOSE_NONE;
        a->next = NULL;
        if (u->tail)
                u->tail->next = a;
        else
                u->head = a;
        u->tail = a;
        if (!u->open)
                u->open = a;
        u->count++;
        u->bytes += a->body_len;
        b->pending++;
        b->pending_bytes += a->body_len;
        if (a->closes)
                close_window(b, u, a, age_ms);
        if (u->busy)
                return 0;
        if (u->count == 1)
                ready_insert(b, u);
        else if (!u->in_full && user_fills(b, ap, u))
                full_insert(b, ap, u);
        return 0;
}

static int fits(const lb_batcher_t *b, const lb_batch_t *batch,
                const lb_action_t *a)
{
        return batch->n < cap_of(&b->apps[batch->app]) &&
               batch->bytes + a->body_len <= b->max_bytes;
}

/* Moves u into the batch with its queued actions that fit, from the head.
 * The first action of an empty batch always goes: it fitted when it was
 * queued (lb_batcher_add), so only a longer client key since
 * (lb_batcher_set_overhead) makes it not fit now. Refused, it would be
 * refused on every turn, an empty request each time, and hold up every
 * user due after it; taken, its request exceeds the byte cap by that
 * growth, with nothing else in it.
 * @returns 0 (u untouched) if its first action does not fit a batch that
 *          has actions: the request is full. */
static int take(lb_batcher_t *b, lb_batch_t *batch, lb_user_t *u)
{
        lb_action_t *a = u->head;
        if (batch->n && !fits(b, batch, a))
                return 0;
        ready_remove(b, u);
        /* The next user due is most likely taken next: its first action,
         * held since it was consumed and long out of cache as u's are,
         * comes while u's are taken (a user's actions are a list, each
         * found from the one before: this is the one a wait can overlap). */
        const app_t *ap = &b->apps[u->app];
        if (ap->heap_len)
                lb_action_prefetch(ap->heap[0].u->head);
        u->busy = 1;
        batch->users[batch->n_users++] = u;
        do {
                if (u->open == a) /* what stays came after it */
                        u->open = a->next;
                u->head = a->next;
                a->next = NULL;
                batch->user_of[batch->n] = u;
                batch->actions[batch->n++] = a;
                batch->bytes += a->body_len;
                u->count--;
                u->bytes -= a->body_len;
                b->pending--;
                b->pending_bytes -= a->body_len;
                a = u->head;
        } while (a && fits(b, batch, a));
        if (!u->head)
                u->tail = NULL;
        return 1;
}

/* Takes ready users whose deadline is at or before cutoff, earliest first,
 * until the request is full or `early` actions are taken (0: no limit). A
 * user due after `due` (company within the gather horizon) comes only if
 * all its actions fit: cut in two, it would be billed twice. */
static void take_earliest(lb_batcher_t *b, lb_batch_t *batch, app_t *ap,
                          int64_t due, int64_t cutoff, size_t early)
{
        while (batch->n_users < b->max_users && ap->heap_len > 0 &&
               earliest(ap) <= cutoff && (!early || batch->n < early)) {
                lb_user_t *u = ap->heap[0].u;
                if (earliest(ap) > due &&
                    (batch->n + u->count > cap_of(ap) ||
                     batch->bytes + u->bytes > b->max_bytes))
                        return;
                if (!take(b, batch, u))
                        return;
        }
}

/* Takes the app's full users, in the order they became full. */
static void take_full(lb_batcher_t *b, lb_batch_t *batch, app_t *ap)
{
        while (batch->n_users < b->max_users && ap->full)
                if (!take(b, batch, ap->full))
                        return;
}

static lb_batch_t *batch_new(const lb_batcher_t *b, size_t app,
                             lb_send_reason_t reason)
{
        const app_t *ap = &b->apps[app];
        size_t max_u =
            ap->heap_len < b->max_users ? ap->heap_len : b->max_users;
        lb_batch_t *batch = calloc(1, sizeof(*batch));
        if (!batch)
                return NULL;
        size_t cap = cap_of(ap);
        size_t max_n = b->pending < cap ? b->pending : cap;
        batch->actions = malloc(max_n * sizeof(*batch->actions));
        batch->users = malloc(max_u * sizeof(*batch->users));
        batch->user_of = malloc(max_n * sizeof(*batch->user_of));
        if (!batch->actions || !batch->users || !batch->user_of) {
                free(batch->actions);
                free(batch->users);
                free(batch->user_of);
                free(batch);
                return NULL;
        }
        batch->app = (int)app;
        batch->reason = reason;
        batch->bytes = ap->overhead;
        return batch;
}

/* @returns the app with the earliest deadline of all (the lowest index
 * among equals), or app_cnt. */
static size_t earliest_app(const lb_batcher_t *b)
{
        return b->app_heap_len ? b->app_heap[0] : b->app_cnt;
}

/* @returns an app with full users, the apps taking turns, or app_cnt. */
static size_t full_app(lb_batcher_t *b)
{
        size_t app = b->full_head;
        if (app < b->app_cnt)
                b->full_head = b->apps[app].full_next;
        return app;
}

/* u leaves the busy gate: ready if it has actions queued, else freed. */
static void user_unbusy(lb_batcher_t *b, lb_user_t *u)
{
        u->busy = 0;
        u->parked = 0;
        if (u->count > 0)
                ready_insert(b, u);
        else
                user_free(b, u);
}

void lb_batcher_release(lb_batcher_t *b, lb_batch_t *batch, int64_t now_ms)
{
        if (!batch)
                return;
        for (size_t i = 0; i < batch->n_users; i++) {
                lb_user_t *u = batch->users[i];
                if (lb_ledger_until(b->ledger, &u->ledger) > now_ms) {
                        u->parked = 1;
                        b->parked[b->parked_cnt++] = u;
                } else {
                        user_unbusy(b, u);
                }
        }
        free(batch->actions);
        free(batch->users);
        free(batch->user_of);
        free(batch);
}

/* Parked users the ledger no longer holds leave the gate. */
static void unpark(lb_batcher_t *b, int64_t now_ms)
{
        for (size_t i = 0; i < b->parked_cnt;) {
                lb_user_t *u = b->parked[i];
                if (lb_ledger_until(b->ledger, &u->ledger) > now_ms) {
                        i++;
                        continue;
                }
                b->parked[i] = b->parked[--b->parked_cnt];
                user_unbusy(b, u);
        }
}

lb_batch_t *lb_batcher_next(lb_batcher_t *b, int64_t now_ms,
                            lb_send_reason_t flush, size_t early)
{
        unpark(b, now_ms);
        if (b->ready_users == 0)
                return NULL;
        size_t app = earliest_app(b);
        lb_send_reason_t reason = LB_SEND_DUE;
        int64_t cutoff = now_ms + b->apps[app].gather_ms;
        if (earliest(&b->apps[app]) > now_ms) {
                size_t fapp = full_app(b);
                if (fapp < b->app_cnt) {
                        lb_batch_t *batch = batch_new(b, fapp, LB_SEND_FULL);
                        if (batch)
                                take_full(b, batch, &b->apps[fapp]);
                        return batch;
                }
                if (flush == LB_SEND_SHUTDOWN || flush == LB_SEND_REVOCATION)
                        reason = flush;
                else if (early)
                        reason = LB_SEND_MEMORY;
                else
                        return NULL;
                cutoff = INT64_MAX;
        }
        lb_batch_t *batch = batch_new(b, app, reason);
        if (batch)
                take_earliest(b, batch, &b->apps[app],
                              reason == LB_SEND_DUE ? now_ms : INT64_MAX,
                              cutoff, reason == LB_SEND_MEMORY ? early : 0);
        return batch;
}

int64_t lb_batcher_next_deadline(const lb_batcher_t *b)
{
        size_t app = earliest_app(b);
        int64_t t = app < b->app_cnt ? earliest(&b->apps[app]) : INT64_MAX;
        for (size_t i = 0; i < b->parked_cnt; i++) {
                const lb_user_t *u = b->parked[i];
                int64_t until = lb_ledger_until(b->ledger, &u->ledger);
                if (u->count > 0 && until < t)
                        t = until;
        }
        return t;
}

/* Removes u's queued actions of partition p, keeping the rest in order. */
static size_t user_abandon(lb_batcher_t *b, lb_user_t *u,
                           const lb_partition_t *p,
                           void (*drop)(lb_action_t *, void *), void *opaque)
{
        lb_action_t *a = u->head;
        while (a && a->partition != p)
                a = a->next;
        if (!a)
                return 0;
        int ready = !u->busy;
        if (ready)
                ready_remove(b, u);
        size_t removed = 0;
        lb_action_t **pp = &u->head;
        u->tail = NULL;
        while ((a = *pp) != NULL) {
                if (a->partition != p) {
                        u->tail = a;
                        pp = &a->next;
                        continue;
                }
                if (u->open == a)
                        u->open = a->next;
                *pp = a->next;
                a->next = NULL;
                u->count--;
                u->bytes -= a->body_len;
                b->pending--;
                b->pending_bytes -= a->body_len;
                removed++;
                drop(a, opaque);
        }
        if (u->count > 0) {
                if (ready)
                        ready_insert(b, u);
        } else if (!u->busy) {
                user_free(b, u);
        }
        return removed;
}

size_t lb_batcher_abandon(lb_batcher_t *b, const lb_partition_t *p,
                          void (*drop)(lb_action_t *, void *), void *opaque)
{
        size_t removed = 0;
        if (!b->pending) /* the table is as large as the most users held */
                return 0;
        for (size_t i = 0; i <= b->table_mask; i++) {
                lb_user_t *u = b->table[i];
                while (u) {
                        lb_user_t *next = u->hnext;
                        removed += user_abandon(b, u, p, drop, opaque);
                        u = next;
                }
        }
        return removed;
}

/* Makes u's queued actions up to its last of partition p due by now_ms.
 * @returns how many of p it holds. */
static size_t user_expedite(lb_batcher_t *b, lb_user_t *u,
                            const lb_partition_t *p, int64_t now_ms)
{
        lb_action_t *last = NULL;
        size_t n = 0;
        for (lb_action_t *a = u->head; a; a = a->next)
                if (a->partition == p) {
                        last = a;
                        n++;
                }
        if (!last)
                return 0;
        for (lb_action_t *a = u->head;; a = a->next) {
                if (a->due_ms > now_ms)
                        a->due_ms = now_ms;
                if (a == last)
                        break;
        }
        if (u->heap_idx != NOT_IN_HEAP) {
                app_t *ap = &b->apps[u->app];
                ap->heap[u->heap_idx].key = u->head->due_ms;
                heap_up(ap, u->heap_idx);
                app_fix(b, (size_t)u->app);
        }
        return n;
}

size_t lb_batcher_expedite(lb_batcher_t *b, const lb_partition_t *p,
                           int64_t now_ms)
{
        size_t n = 0;
        if (!b->pending) /* as lb_batcher_abandon */
                return 0;
        for (size_t i = 0; i <= b->table_mask; i++)
                for (lb_user_t *u = b->table[i]; u; u = u->hnext)
                        n += user_expedite(b, u, p, now_ms);
        return n;
}

lb_ledger_entry_t *lb_batcher_ledger_entry(lb_user_t *u)
{
        return &u->ledger;
}

size_t lb_batcher_pending(const lb_batcher_t *b)
{
        return b->pending;
}

size_t lb_batcher_bytes(const lb_batcher_t *b)
{
        return b->bytes;
}

size_t lb_batcher_pending_bytes(const lb_batcher_t *b)
{
        return b->pending_bytes;
}
