/*
 * batcher.c: pending actions per (app, user) and the packing policy in
 * batcher.h. Owns the user records (a hash table keyed by app and identity),
 * each user's FIFO of queued actions, and per app the structures over READY
 * users (not busy, something queued): a min-heap by the arrival of the user's
 * oldest queued action, and buckets of users by pending count with a bitmap
 * of the non-empty ones. add() and release() cost O(log users) per user;
 * next() O(apps) to decide plus O(log users) per user taken (rule 2's check
 * walks at most max_users users and its verdict is cached); abandon() walks
 * everything. Owns queued actions until next() hands them out; only compares
 * an action's partition pointer. No I/O, no clock.
 */
#include "batcher.h"

#include <stdlib.h>
#include <string.h>

#define NOT_IN_HEAP     SIZE_MAX
#define TABLE_INIT_SIZE 64
#define HEAP_INIT_CAP   16

struct lb_user_s {
        struct lb_user_s *hnext; /* hash chain */
        uint64_t hash;
        int app;
        int busy;                 /* in an unreleased batch */
        lb_action_t *head, *tail; /* queued actions, consumed order */
        size_t count;             /* queued actions */
        size_t bytes;             /* sum of their body_len */
        /* Ready structures, valid while ready (!busy && count > 0). */
        size_t heap_idx;
        size_t bucket;
        struct lb_user_s *bprev, *bnext; /* circular list of the bucket */
        size_t id_len;
        char id[];
};

/* A heap slot holds its key, the arrival of the user's oldest queued action
 * (constant while the user is ready: adds append, abandon re-inserts), so
 * ordering and the rule checks never chase the user pointer. */
typedef struct {
        int64_t key;
        lb_user_t *u;
} slot_t;

typedef struct {
        size_t overhead;    /* request bytes around the actions */
        size_t n_users;     /* user records of this app (ready or busy) */
        slot_t *heap;       /* ready users, min arrival of oldest action */
        size_t heap_len;    /* ready users */
        size_t heap_cap;    /* kept >= n_users so release() cannot fail */
        lb_user_t **bucket; /* [min(count, max_actions)]: list head */
        uint64_t *nonempty; /* bitmap over bucket[] */
        size_t ready_actions;
        size_t ready_bytes;
        /* Rule 2's verdict, cached until the ready set changes (next() is
         * called after every add); room: actions that can still be added
         * before a "not full" verdict must be checked again. */
        int full;
        int full_known;
        size_t room;
} app_t;

struct lb_batcher_s {
        size_t app_cnt;
        size_t max_users, max_actions, max_bytes;
        int64_t linger_ms, max_wait_ms;
        app_t *apps;
        lb_user_t **table; /* power-of-two size */
        size_t table_mask;
        size_t n_users;
        size_t ready_users;
        size_t pending, pending_bytes;
        size_t rotate; /* app that goes first on the next call */
};

/* FNV-1a over the identity, the app mixed in, then murmur3's finaliser so
 * the low bits used as the table index depend on every input byte. */
static uint64_t user_hash(int app, const char *id, size_t len)
{
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < len; i++) {
                h ^= (unsigned char)id[i];
                h *= 0x100000001b3ULL;
        }
        h ^= (uint64_t)(unsigned)app * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
        return h;
}

static lb_user_t *user_find(const lb_batcher_t *b, int app, const char *id,
                            size_t len, uint64_t hash)
{
        for (lb_user_t *u = b->table[hash & b->table_mask]; u; u = u->hnext)
                if (u->hash == hash && u->app == app && u->id_len == len &&
                    memcmp(u->id, id, len) == 0)
                        return u;
        return NULL;
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
        b->table = table;
        b->table_mask = size - 1;
        return 0;
}

static int heap_reserve(app_t *ap, size_t need)
{
        if (need <= ap->heap_cap)
                return 0;
        size_t cap = ap->heap_cap ? ap->heap_cap * 2 : HEAP_INIT_CAP;
        if (cap < need)
                cap = need;
        slot_t *heap = realloc(ap->heap, cap * sizeof(*heap));
        if (!heap)
                return -1;
        ap->heap = heap;
        ap->heap_cap = cap;
        return 0;
}

static lb_user_t *user_new(lb_batcher_t *b, int app, const char *id, size_t len,
                           uint64_t hash)
{
        app_t *ap = &b->apps[app];
        if (b->n_users > b->table_mask && table_grow(b) == -1)
                return NULL;
        if (heap_reserve(ap, ap->n_users + 1) == -1)
                return NULL;
        lb_user_t *u = calloc(1, sizeof(*u) + len);
        if (!u)
                return NULL;
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
        free(u);
}

/* The age heap: keyed by the arrival of the user's oldest queued action. */

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
        slot_t slot = {u->head->arrival_ms, u};
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

/* @returns the arrival of the app's oldest ready action (heap not empty). */
static int64_t oldest(const app_t *ap)
{
        return ap->heap[0].key;
}

/* Count buckets: circular doubly linked lists, appended at the tail, so
 * users of equal count leave in the order they reached that count. */

static size_t bucket_of(const lb_batcher_t *b, const lb_user_t *u)
{
        return u->count < b->max_actions ? u->count : b->max_actions;
}

static void bucket_insert(const lb_batcher_t *b, app_t *ap, lb_user_t *u)
{
        size_t k = bucket_of(b, u);
        lb_user_t *head = ap->bucket[k];
        u->bucket = k;
        if (!head) {
                u->bprev = u->bnext = u;
                ap->bucket[k] = u;
                ap->nonempty[k / 64] |= 1ULL << (k % 64);
                return;
        }
        u->bnext = head;
        u->bprev = head->bprev;
        head->bprev->bnext = u;
        head->bprev = u;
}

static void bucket_remove(app_t *ap, lb_user_t *u)
{
        size_t k = u->bucket;
        if (u->bnext == u) {
                ap->bucket[k] = NULL;
                ap->nonempty[k / 64] &= ~(1ULL << (k % 64));
                return;
        }
        u->bprev->bnext = u->bnext;
        u->bnext->bprev = u->bprev;
        if (ap->bucket[k] == u)
                ap->bucket[k] = u->bnext;
}

/* @returns the highest non-empty bucket index <= k, or 0 if none (bucket 0
 *          is always empty: a ready user has something queued). */
static size_t bucket_top(const app_t *ap, size_t k)
{
        size_t w = k / 64;
        uint64_t bits = ap->nonempty[w];
        if (k % 64 != 63)
                bits &= (1ULL << (k % 64 + 1)) - 1;
        for (;;) {
                if (bits)
                        return w * 64 + 63 - (size_t)__builtin_clzll(bits);
                if (w == 0)
                        return 0;
                bits = ap->nonempty[--w];
        }
}

/* Ready set membership: heap, bucket and the app's ready counters. */

static void ready_insert(lb_batcher_t *b, lb_user_t *u)
{
        app_t *ap = &b->apps[u->app];
        heap_push(ap, u);
        bucket_insert(b, ap, u);
        ap->ready_actions += u->count;
        ap->ready_bytes += u->bytes;
        ap->full_known = 0;
        b->ready_users++;
}

static void ready_remove(lb_batcher_t *b, lb_user_t *u)
{
        app_t *ap = &b->apps[u->app];
        heap_remove(ap, u);
        bucket_remove(ap, u);
        ap->ready_actions -= u->count;
        ap->ready_bytes -= u->bytes;
        ap->full_known = 0;
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
        b->max_wait_ms = conf->max_wait_ms;
        b->apps = calloc(b->app_cnt, sizeof(*b->apps));
        b->table = calloc(TABLE_INIT_SIZE, sizeof(*b->table));
        b->table_mask = TABLE_INIT_SIZE - 1;
        if (!b->apps || !b->table)
                goto fail;
        for (size_t i = 0; i < b->app_cnt; i++) {
                app_t *ap = &b->apps[i];
                ap->overhead = conf->app_overhead ? conf->app_overhead[i] : 0;
                ap->bucket = calloc(b->max_actions + 1, sizeof(*ap->bucket));
                ap->nonempty =
                    calloc(b->max_actions / 64 + 1, sizeof(*ap->nonempty));
                if (!ap->bucket || !ap->nonempty)
                        goto fail;
        }
        return b;
fail:
        lb_batcher_destroy(b, NULL);
        return NULL;
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
                        free(u);
                        u = next;
                }
        }
        for (size_t i = 0; b->apps && i < b->app_cnt; i++) {
                free(b->apps[i].heap);
                free(b->apps[i].bucket);
                free(b->apps[i].nonempty);
        }
        free(b->apps);
        free(b->table);
        free(b);
}

int lb_batcher_add(lb_batcher_t *b, lb_action_t *a, const char *user,
                   size_t user_len)
{
        if (a->app < 0 || (size_t)a->app >= b->app_cnt)
                return -2;
        app_t *ap = &b->apps[a->app];
        if (ap->overhead > b->max_bytes ||
            a->body_len > b->max_bytes - ap->overhead)
                return -2;
        uint64_t hash = user_hash(a->app, user, user_len);
        lb_user_t *u = user_find(b, a->app, user, user_len, hash);
        if (!u && !(u = user_new(b, a->app, user, user_len, hash)))
                return -1;

        int was_ready = !u->busy && u->count > 0;
        a->next = NULL;
        a->user = u;
        if (u->tail)
                u->tail->next = a;
        else
                u->head = a;
        u->tail = a;
        u->count++;
        u->bytes += a->body_len;
        b->pending++;
        b->pending_bytes += a->body_len;
        if (u->busy)
                return 0;
        /* One more ready action raises the total of the max_users heaviest
         * users by at most one: a "not full" verdict with room holds. */
        int keep = ap->full_known && !ap->full && ap->room > 1;
        if (!was_ready) {
                ready_insert(b, u);
        } else {
                /* The oldest action (heap key) is unchanged. */
                ap->ready_actions++;
                ap->ready_bytes += a->body_len;
                if (bucket_of(b, u) != u->bucket) {
                        bucket_remove(ap, u);
                        bucket_insert(b, ap, u);
                }
        }
        if (keep && ap->overhead + ap->ready_bytes < b->max_bytes) {
                ap->full_known = 1;
                ap->room--;
        } else {
                ap->full_known = 0;
        }
        return 0;
}

static int fits(const lb_batcher_t *b, const lb_batch_t *batch,
                const lb_action_t *a)
{
        return batch->n < b->max_actions &&
               batch->bytes + a->body_len <= b->max_bytes;
}

/* Moves u into the batch with its queued actions that fit, from the head.
 * @returns 0 (u untouched) if its first action does not fit: the request
 *          is full. */
static int take(lb_batcher_t *b, lb_batch_t *batch, lb_user_t *u)
{
        lb_action_t *a = u->head;
        if (!fits(b, batch, a))
                return 0;
        ready_remove(b, u);
        u->busy = 1;
        batch->users[batch->n_users++] = u;
        do {
                u->head = a->next;
                a->next = NULL;
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

/* Takes ready users whose oldest action arrived at or before cutoff, oldest
 * first. @returns 0 if the request filled up. */
static int take_oldest(lb_batcher_t *b, lb_batch_t *batch, app_t *ap,
                       int64_t cutoff)
{
        while (batch->n_users < b->max_users && ap->heap_len > 0 &&
               oldest(ap) <= cutoff)
                if (!take(b, batch, ap->heap[0].u))
                        return 0;
        return 1;
}

/* Takes ready users with the most pending actions first. */
static void take_heaviest(lb_batcher_t *b, lb_batch_t *batch, app_t *ap)
{
        while (batch->n_users < b->max_users) {
                size_t k = bucket_top(ap, b->max_actions);
                if (k == 0 || !take(b, batch, ap->bucket[k]))
                        return;
        }
}

/* Rule 2: would take_heaviest() reach max_actions or max_bytes? A dry run of
 * it over the buckets, O(max_users) since whole users are added at once.
 * When not, *room is max_actions minus the actions the run took (or all
 * ready actions, a bound on them). */
static int app_fills(const lb_batcher_t *b, const app_t *ap, size_t *room)
{
        if (ap->ready_actions < b->max_actions &&
            ap->overhead + ap->ready_bytes < b->max_bytes) {
                *room = b->max_actions - ap->ready_actions;
                return 0;
        }
        size_t n = 0, bytes = ap->overhead, users = 0;
        for (size_t k = bucket_top(ap, b->max_actions); k > 0;
             k = bucket_top(ap, k - 1)) {
                const lb_user_t *u = ap->bucket[k];
                do {
                        if (users == b->max_users) {
                                *room = b->max_actions - n;
                                return 0;
                        }
                        /* Not all of u fits: the request fills at u. */
                        if (n + u->count > b->max_actions ||
                            bytes + u->bytes > b->max_bytes)
                                return 1;
                        n += u->count;
                        bytes += u->bytes;
                        users++;
                        if (n == b->max_actions || bytes == b->max_bytes)
                                return 1;
                        u = u->bnext;
                } while (u != ap->bucket[k]);
        }
        *room = b->max_actions - n;
        return 0;
}

static lb_batch_t *batch_new(const lb_batcher_t *b, size_t app)
{
        const app_t *ap = &b->apps[app];
        size_t max_n = ap->ready_actions < b->max_actions ? ap->ready_actions
                                                          : b->max_actions;
        size_t max_u =
            ap->heap_len < b->max_users ? ap->heap_len : b->max_users;
        lb_batch_t *batch = calloc(1, sizeof(*batch));
        if (!batch)
                return NULL;
        batch->actions = malloc(max_n * sizeof(*batch->actions));
        batch->users = malloc(max_u * sizeof(*batch->users));
        if (!batch->actions || !batch->users) {
                free(batch->actions);
                free(batch->users);
                free(batch);
                return NULL;
        }
        batch->app = (int)app;
        batch->bytes = ap->overhead;
        return batch;
}

enum { RULE_OVERDUE, RULE_FULL, RULE_LINGER, RULE_FLUSH, RULE__COUNT };

static int rule_applies(const lb_batcher_t *b, app_t *ap, int rule,
                        int64_t now_ms)
{
        if (ap->heap_len == 0)
                return 0;
        switch (rule) {
        case RULE_OVERDUE:
                return oldest(ap) <= now_ms - b->max_wait_ms;
        case RULE_FULL:
                if (!ap->full_known) {
                        ap->full = app_fills(b, ap, &ap->room);
                        ap->full_known = 1;
                }
                return ap->full;
        case RULE_LINGER:
                return oldest(ap) <= now_ms - b->linger_ms;
        default:
                return 1;
        }
}

/* Fills a request for app as rule says. @returns NULL on allocation
 * failure (nothing taken). */
static lb_batch_t *build(lb_batcher_t *b, size_t app, int rule, int64_t now_ms)
{
        app_t *ap = &b->apps[app];
        lb_batch_t *batch = batch_new(b, app);
        if (!batch)
                return NULL;
        int more = 1;
        if (rule == RULE_OVERDUE)
                more = take_oldest(b, batch, ap, now_ms - b->max_wait_ms);
        else if (rule == RULE_LINGER)
                more = take_oldest(b, batch, ap, now_ms - b->linger_ms);
        if (more)
                take_heaviest(b, batch, ap);
        return batch;
}

lb_batch_t *lb_batcher_next(lb_batcher_t *b, int64_t now_ms, int flush)
{
        if (b->ready_users == 0)
                return NULL;
        for (int rule = 0; rule < RULE__COUNT; rule++) {
                if (rule == RULE_FLUSH && !flush)
                        break;
                size_t app = b->rotate;
                for (size_t i = 0; i < b->app_cnt; i++) {
                        if (rule_applies(b, &b->apps[app], rule, now_ms)) {
                                b->rotate = app + 1 == b->app_cnt ? 0 : app + 1;
                                return build(b, app, rule, now_ms);
                        }
                        if (++app == b->app_cnt)
                                app = 0;
                }
        }
        return NULL;
}

int64_t lb_batcher_next_deadline(const lb_batcher_t *b)
{
        int64_t wait =
            b->linger_ms < b->max_wait_ms ? b->linger_ms : b->max_wait_ms;
        int64_t best = INT64_MAX;
        for (size_t i = 0; i < b->app_cnt; i++) {
                const app_t *ap = &b->apps[i];
                if (ap->heap_len > 0 && oldest(ap) + wait < best)
                        best = oldest(ap) + wait;
        }
        return best;
}

void lb_batcher_release(lb_batcher_t *b, lb_batch_t *batch)
{
        if (!batch)
                return;
        for (size_t i = 0; i < batch->n_users; i++) {
                lb_user_t *u = batch->users[i];
                u->busy = 0;
                if (u->count > 0)
                        ready_insert(b, u);
                else
                        user_free(b, u);
        }
        free(batch->actions);
        free(batch->users);
        free(batch);
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
                *pp = a->next;
                a->next = NULL;
                a->user = NULL;
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

size_t lb_batcher_pending(const lb_batcher_t *b)
{
        return b->pending;
}

size_t lb_batcher_pending_bytes(const lb_batcher_t *b)
{
        return b->pending_bytes;
}
