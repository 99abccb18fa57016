/* SPDX-License-Identifier: MIT */
/*
 * engine/limiter.c - anyio's CapacityLimiter: a number of tokens, each
 * held by one borrower (a task, or any pointer the caller names).
 *
 * A limiter lives on its user's stack and has no destroy call, so it owns
 * no memory: its borrowers are kept in one hash table per loop, keyed by
 * the limiter's id (unique per weft_limiter_init) and the borrower: a
 * pointer the caller names, or a task, named by its id (unique in the
 * loop; a task's record is reused by later tasks, so never its address).
 * The
 * table grows by doubling and is freed with the loop, so steady-state
 * acquire/release allocate nothing.
 */
#include "engine/engine.h"

#include <stdatomic.h>
#include <stdlib.h>

#define TOMB UINT64_MAX

static _Atomic uint64_t next_limiter_id = 1;

/* A borrower: b, or (b NULL) the task with id task. */
struct key {
    const void *b;
    uint64_t task;
};

/* The borrower that a call naming b means: the calling task t itself
 * (weft_limiter_acquire, or on_behalf_of the current task) is its id. */
static struct key key_of(const void *b, const struct weft_task *t)
{
    if (t && b == t)
        return (struct key){NULL, t->id};
    return (struct key){b, 0};
}

static size_t slot_of(uint64_t id, struct key k, size_t mask)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)k.b ^
                 k.task * 0xd6e8feb86659fd93ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (size_t)h & mask;
}

/* The slot holding (id, k), or NULL. */
static struct wf_borrow *find(struct wf_borrow_table *bt, uint64_t id,
                              struct key k)
{
    if (!bt->cap)
        return NULL;
    size_t mask = bt->cap - 1;
    for (size_t i = slot_of(id, k, mask);; i = (i + 1) & mask) {
        struct wf_borrow *s = &bt->slots[i];
        if (s->id == 0)
            return NULL;
        if (s->id == id && s->borrower == k.b && s->task == k.task)
            return s;
    }
}

static void put(struct wf_borrow *slots, size_t cap, uint64_t id, struct key k)
{
    size_t mask = cap - 1;
    size_t i = slot_of(id, k, mask);
    while (slots[i].id != 0 && slots[i].id != TOMB)
        i = (i + 1) & mask;
    slots[i].id = id;
    slots[i].borrower = k.b;
    slots[i].task = k.task;
}

static int grow(struct wf_borrow_table *bt)
{
    size_t cap = bt->cap ? bt->cap : 32;
    if (bt->used * 2 >= cap)
        cap *= 2;
    struct wf_borrow *slots = wf_calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < bt->cap; i++)
        if (bt->slots[i].id != 0 && bt->slots[i].id != TOMB)
            put(slots, cap, bt->slots[i].id,
                (struct key){bt->slots[i].borrower, bt->slots[i].task});
    wf_free(bt->slots);
    bt->slots = slots;
    bt->cap = cap;
    bt->tombs = 0;
    return 0;
}

static int insert(struct wf_borrow_table *bt, uint64_t id, struct key k)
{
    /* Keep a quarter free, tombstones counted, so probes stay short. */
    if ((bt->used + bt->tombs + 1) * 4 > bt->cap * 3) {
        int rc = grow(bt);
        if (rc < 0)
            return rc;
    }
    put(bt->slots, bt->cap, id, k);
    bt->used++;
    return 0;
}

static void erase(struct wf_borrow_table *bt, struct wf_borrow *s)
{
    s->id = TOMB;
    s->borrower = NULL;
    s->task = 0;
    bt->used--;
    bt->tombs++;
}

void wf_borrow_table_free(struct wf_borrow_table *bt)
{
    wf_free(bt->slots);
    bt->slots = NULL;
    bt->cap = bt->used = bt->tombs = 0;
}

WF_EXPORT void weft_limiter_init(weft_limiter *l, unsigned total_tokens)
{
    wf_list_init(&l->wf_waiters);
    l->wf_nwait = 0;
    l->wf_total = total_tokens ? total_tokens : 1;
    l->wf_borrowed = 0;
    l->wf_id =
        atomic_fetch_add_explicit(&next_limiter_id, 1, memory_order_relaxed);
}

static struct wf_borrow_table *table(void)
{
    return wf_cur ? &wf_cur->borrows : NULL;
}

/* Take a token for b now, or say why not (-EAGAIN: none free). */
static int take_now(weft_limiter *l, struct wf_borrow_table *bt, struct key k)
{
    if (find(bt, l->wf_id, k))
        return -EDEADLK;
    if (l->wf_borrowed >= l->wf_total || l->wf_nwait)
        return -EAGAIN;
    int rc = insert(bt, l->wf_id, k);
    if (rc < 0)
        return rc;
    l->wf_borrowed++;
    return 0;
}

/* A waiter's borrower: its key, or (NULL) the waiting task itself. */
static struct key waiter_key(const struct wf_waiter *wr)
{
    return wr->key ? (struct key){wr->key, 0}
                   : (struct key){NULL, wr->wait.task->id};
}

static int acquire(weft_limiter *l, const void *b, bool wait)
{
    struct weft_task *t;
    int rc =
        wait ? wf_entry(&t, l && b, false) : wf_entry_nowait(&t, l && b, false);
    if (rc < 0)
        return rc;
    struct wf_borrow_table *bt = &t->loop->borrows;
    struct key k = key_of(b, t);
    rc = take_now(l, bt, k);
    if (rc == -EAGAIN && wait) {
        /* The releaser records k as a borrower before it wakes us. */
        struct wf_waiter wr = {.key = k.b};
        rc = wf_waiter_block(&wr, &l->wf_waiters, &l->wf_nwait,
                             "weft_limiter_acquire", true);
    }
    if (rc == 0 && b == t)
        t->tokens++; /* checked when the task ends */
    return rc;
}

/* Hand free tokens to waiters, first come first served. */
static void hand_on(weft_limiter *l, struct wf_borrow_table *bt)
{
    struct wf_waiter *wr;
    while (l->wf_borrowed < l->wf_total &&
           (wr = wf_waiter_first(&l->wf_waiters))) {
        struct key k = waiter_key(wr);
        if (find(bt, l->wf_id, k)) { /* it got one meanwhile */
            wf_waiter_grant(wr, -EDEADLK);
            continue;
        }
        if (insert(bt, l->wf_id, k) < 0) {
            wf_waiter_grant(wr, -ENOMEM);
            continue;
        }
        l->wf_borrowed++;
        wf_waiter_grant(wr, 0);
    }
}

static int release(weft_limiter *l, const void *b)
{
    struct wf_borrow_table *bt = table();
    if (!bt)
        return -EPERM;
    if (!l || !b)
        return -EINVAL;
    struct weft_task *t = wf_self();
    struct wf_borrow *s = find(bt, l->wf_id, key_of(b, t));
    if (!s)
        return -EPERM;
    erase(bt, s);
    l->wf_borrowed--;
    if (t && b == t && t->tokens)
        t->tokens--;
    hand_on(l, bt);
    return 0;
}

/*
 * A task that ends holding tokens it took for itself is a bug that would
 * otherwise show up far away: the tokens would stay borrowed for good (no
 * call can name the ended task to release them), and the limiter would
 * slowly run dry. It ends the program with a message that names the task.
 */
void wf_limiter_task_ended(struct weft_task *t)
{
    struct wf_borrow_table *bt = &t->loop->borrows;
    for (size_t i = 0; i < bt->cap; i++) {
        struct wf_borrow *s = &bt->slots[i];
        if (s->id != 0 && s->id != TOMB && !s->borrower && s->task == t->id)
            wf_panic("task '%s' (id %llu) ended holding a limiter token: "
                     "release it (weft_limiter_release) before returning",
                     weft_task_name(t), (unsigned long long)t->id);
    }
}

WF_EXPORT int weft_limiter_acquire(weft_limiter *l)
{
    return acquire(l, wf_self(), true);
}

WF_EXPORT int weft_limiter_acquire_on_behalf_of(weft_limiter *l,
                                                const void *borrower)
{
    return acquire(l, borrower, true);
}

WF_EXPORT int weft_limiter_try_acquire(weft_limiter *l)
{
    return acquire(l, wf_self(), false);
}

WF_EXPORT int weft_limiter_try_acquire_on_behalf_of(weft_limiter *l,
                                                    const void *borrower)
{
    return acquire(l, borrower, false);
}

WF_EXPORT int weft_limiter_release(weft_limiter *l)
{
    return release(l, wf_self());
}

WF_EXPORT int weft_limiter_release_on_behalf_of(weft_limiter *l,
                                                const void *borrower)
{
    return release(l, borrower);
}

WF_EXPORT int weft_limiter_set_total_tokens(weft_limiter *l, unsigned total)
{
    if (!l || total == 0)
        return -EINVAL;
    l->wf_total = total;
    struct wf_borrow_table *bt = table();
    if (bt)
        hand_on(l, bt);
    return 0;
}

WF_EXPORT unsigned weft_limiter_total_tokens(const weft_limiter *l)
{
    return l ? l->wf_total : 0;
}

WF_EXPORT unsigned weft_limiter_borrowed_tokens(const weft_limiter *l)
{
    return l ? l->wf_borrowed : 0;
}

WF_EXPORT unsigned weft_limiter_available_tokens(const weft_limiter *l)
{
    return l && l->wf_total > l->wf_borrowed ? l->wf_total - l->wf_borrowed : 0;
}

WF_EXPORT int weft_limiter_statistics(const weft_limiter *l,
                                      weft_limiter_stats *st)
{
    if (!l || !st)
        return -EINVAL;
    st->total_tokens = l->wf_total;
    st->borrowed_tokens = l->wf_borrowed;
    st->tasks_waiting = l->wf_nwait;
    return 0;
}
