/* SPDX-License-Identifier: MIT */
/*
 * engine/shchan.c - shared channels (weft_chan_open_shared): handles any
 * loop (thread) of the process may use, clone and close, with exactly the
 * semantics of engine/chan.c's local channels.
 *
 * The data structure is chan.c's (a ring that grows by doubling up to the
 * capacity, a FIFO of waiting senders and one of waiting receivers, every
 * handle kept until the last closes), guarded by one small spinlock per
 * channel: a critical section is a few loads and stores (no allocation
 * except an unbounded buffer's rare doubling, no syscall, no wake-up), so
 * a thread that finds the lock taken waits some nanoseconds, and yields
 * the CPU after a while in case the holder was preempted.
 *
 * Waiting. A task that must wait puts a record (struct sh_waiter) on its
 * own stack into the channel's queue, under the lock, and blocks. The
 * side that makes progress (a send for a waiting receiver, a receive for
 * a waiting sender, a close) unlinks the record, stores the result (and
 * the item) and moves its state WAITING -> GRANTED under the lock; after
 * unlocking it wakes the task: wf_wake at once if it runs on the
 * waiter's own loop, else it posts the message embedded in the record to
 * that loop's mailbox, whose handler runs wf_wake there. A wake costs a
 * message only when the other side actually waits, and an eventfd write
 * only when that loop sleeps in the kernel.
 *
 * Lifetimes. The record lives on the waiter's stack, and the waiter
 * cannot return before it is woken, i.e. before its own loop ran the
 * message; so the record (and the message in it) is alive for as long
 * as the granter may touch it, and the granter touches it no more after
 * the post. The granter holds a reference on the mailbox across the post
 * (the waiter's loop may end right after running the message). The
 * channel is reference-counted: one reference for its handles (dropped
 * when the last one closes) and one per blocked waiter (dropped by the
 * waiter once woken), so a cancellation hook never locks a freed channel.
 *
 * The cancel race. A cancellation reaches a blocked waiter through its
 * wait's hook, on its own loop, at any moment relative to a granter on
 * another thread. The hook takes the lock and moves the state WAITING ->
 * CANCELLED (unlinking the record: no granter can find it any more) and
 * wakes its task with -ECANCELED; if the state is already GRANTED it does
 * nothing, the wake-up message is on its way and the waiter returns its
 * grant (the hand-off rule of engine.h: granted means granted; the next
 * checkpoint reports the cancellation). Both transitions happen under
 * the lock, so exactly one wins, and a granter only ever sees WAITING
 * records: an item never goes to a cancelled receiver (it goes to the
 * next one, or into the buffer), and a cancelled sender's item is never
 * taken.
 */
#include "engine/engine.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

enum { SW_WAITING, SW_GRANTED, SW_CANCELLED };

struct wf_shchan {
    /* The lock and what every call touches, on one line. */
    _Alignas(64) _Atomic int lock;
    size_t capacity;
    void **buf;
    size_t bufcap, head, count; /* bufcap: a power of two, or 0 */
    wf_link senders, receivers;
    size_t nsend, nrecv;
    size_t open_tx, open_rx;
    _Atomic size_t refs; /* 1 for the handles + 1 per blocked waiter */
    struct wf_end *ends; /* every handle, for the final free */
};

struct sh_waiter {
    struct wf_wait wait;     /* wait.task: the waiting task */
    wf_link node;            /* in senders or receivers, under the lock */
    struct sh_waiter *wnext; /* in a granter's list of wakes to deliver */
    struct wf_msg msg;       /* the wake-up, to the waiter's loop */
    struct wf_loop *loop;
    struct wf_mailbox *mb;
    struct wf_shchan *ch;
    size_t *count;
    const void *key; /* the handle it waits with */
    void *item;
    int res;
    _Atomic int state;
};

static inline struct wf_shchan *sh_of(const struct wf_end *e)
{
    return (struct wf_shchan *)e->ch;
}

static inline bool end_closed(const struct wf_end *e)
{
    return __atomic_load_n(&e->closed, __ATOMIC_ACQUIRE);
}

/* ---- the lock ---- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void sh_lock(struct wf_shchan *ch)
{
    if (wf_likely(
            !atomic_exchange_explicit(&ch->lock, 1, memory_order_acquire)))
        return;
    for (unsigned i = 1;; i++) {
        while (atomic_load_explicit(&ch->lock, memory_order_relaxed)) {
            cpu_relax();
            if ((++i & 127) == 0)
                sched_yield(); /* the holder may be preempted */
        }
        if (!atomic_exchange_explicit(&ch->lock, 1, memory_order_acquire))
            return;
    }
}

static inline void sh_unlock(struct wf_shchan *ch)
{
    atomic_store_explicit(&ch->lock, 0, memory_order_release);
}

/* ---- lifetime ---- */

static void sh_unref(struct wf_shchan *ch)
{
    if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (struct wf_end *e = ch->ends, *next; e; e = next) {
        next = e->next;
        wf_free(e);
    }
    wf_free(ch->buf);
    wf_free(ch);
}

static struct wf_end *new_end(struct wf_shchan *ch)
{
    struct wf_end *e = wf_calloc(1, sizeof(struct weft_chan_tx));
    if (!e)
        return NULL;
    e->ch = (struct wf_chan *)ch;
    e->shared = true;
    return e;
}

WF_EXPORT int weft_chan_open_shared(size_t capacity, weft_chan_tx **tx,
                                    weft_chan_rx **rx)
{
    if (!tx || !rx)
        return -EINVAL;
    *tx = NULL;
    *rx = NULL;
    struct wf_shchan *ch = wf_calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->capacity = capacity;
    wf_list_init(&ch->senders);
    wf_list_init(&ch->receivers);
    atomic_init(&ch->lock, 0);
    atomic_init(&ch->refs, 1);
    struct wf_end *t = new_end(ch), *r = new_end(ch);
    if (!t || !r) {
        wf_free(t);
        wf_free(r);
        wf_free(ch);
        return -ENOMEM;
    }
    t->next = r;
    ch->ends = t;
    ch->open_tx = ch->open_rx = 1;
    *tx = (weft_chan_tx *)t;
    *rx = (weft_chan_rx *)r;
    return 0;
}

/* ---- the buffer (under the lock) ---- */

static int buf_push(struct wf_shchan *ch, void *item)
{
    if (ch->count == ch->bufcap) {
        size_t cap = ch->bufcap ? ch->bufcap * 2 : 16;
        void **buf = wf_malloc(cap * sizeof *buf);
        if (!buf)
            return -ENOMEM;
        for (size_t i = 0; i < ch->count; i++)
            buf[i] = ch->buf[(ch->head + i) & (ch->bufcap - 1)];
        wf_free(ch->buf);
        ch->buf = buf;
        ch->bufcap = cap;
        ch->head = 0;
    }
    ch->buf[(ch->head + ch->count++) & (ch->bufcap - 1)] = item;
    return 0;
}

static void *buf_pop(struct wf_shchan *ch)
{
    void *item = ch->buf[ch->head];
    ch->head = (ch->head + 1) & (ch->bufcap - 1);
    ch->count--;
    return item;
}

/* ---- waiters ---- */

static inline struct sh_waiter *first(wf_link *q)
{
    return wf_list_empty(q) ? NULL
                            : wf_container_of(q->next, struct sh_waiter, node);
}

/* Under the lock: w gets res (its item is set by the caller) and goes on
 * the list of wakes to deliver once the lock is released. */
static void grant(struct sh_waiter *w, int res, struct sh_waiter **wakes)
{
    wf_list_del(&w->node);
    (*w->count)--;
    w->res = res;
    atomic_store_explicit(&w->state, SW_GRANTED, memory_order_release);
    w->wnext = *wakes;
    *wakes = w;
}

/* On the waiter's loop: the message a granter posted. */
static void on_wake(struct wf_loop *L, struct wf_msg *m)
{
    struct sh_waiter *w = wf_container_of(m, struct sh_waiter, msg);
    if (L) /* a blocked task keeps its loop alive: always true */
        wf_wake(w->wait.task);
}

/* After the unlock: wake every granted waiter. Each record may be gone
 * the moment its wake is delivered: read it first, touch it no more. */
static void deliver(struct sh_waiter *w)
{
    while (w) {
        struct sh_waiter *next = w->wnext;
        if (w->loop == wf_cur) {
            wf_wake(w->wait.task);
        } else {
            struct wf_mailbox *mb = w->mb;
            wf_mailbox_get(mb); /* its loop may end once the task runs */
            if (wf_mailbox_post(mb, &w->msg) < 0)
                wf_panic("weft: shared channel: a waiter's loop has ended");
            wf_mailbox_put(mb);
        }
        w = next;
    }
}

/* The waiter's cancel hook, on its own loop. */
static void sh_cancel(struct wf_wait *wt)
{
    struct sh_waiter *w = wf_container_of(wt, struct sh_waiter, wait);
    if (atomic_load_explicit(&w->state, memory_order_acquire) != SW_WAITING)
        return;                   /* granted: the wake-up is on its way */
    struct wf_shchan *ch = w->ch; /* alive: w holds a reference */
    sh_lock(ch);
    int expect = SW_WAITING;
    bool won = atomic_compare_exchange_strong(&w->state, &expect, SW_CANCELLED);
    if (won) {
        wf_list_del(&w->node);
        (*w->count)--;
        w->res = -ECANCELED;
    }
    sh_unlock(ch);
    if (won)
        wf_wake(wt->task);
}

/*
 * Called with the lock held: queue w on q, unlock, block until granted or
 * cancelled. The caller made sure its loop has a mailbox.
 */
static int sh_block(struct wf_shchan *ch, struct sh_waiter *w, wf_link *q,
                    size_t *count, const char *what)
{
    struct wf_loop *L = wf_cur;
    w->wait.cancel = sh_cancel;
    w->wait.what = what;
    w->wait.task = L->current;
    w->msg.fn = on_wake;
    w->loop = L;
    w->mb = L->mailbox;
    w->ch = ch;
    w->count = count;
    atomic_init(&w->state, SW_WAITING);
    wf_list_push(q, &w->node);
    (*count)++;
    atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
    sh_unlock(ch);
    /* No one can wake it before it blocks: a message waits for this
     * thread's scheduler, and the cancel hook runs on this thread. */
    L->remote_waits++;
    wf_block(&w->wait);
    L->remote_waits--;
    int res = w->res;
    sh_unref(ch);
    return res;
}

/* A blocking call needs its loop's mailbox for remote wake-ups. */
static inline int need_mailbox(void)
{
    return wf_likely(wf_cur->mailbox != NULL) ? 0 : wf_mailbox_open(wf_cur);
}

/* ---- send and receive ---- */

/* Under the lock: 0, -EAGAIN (would wait), or an error. */
static int send_locked(struct wf_shchan *ch, struct wf_end *e, void *item,
                       struct sh_waiter **wakes)
{
    if (e->closed)
        return -EBADF;
    if (!ch->open_rx)
        return -EPIPE;
    struct sh_waiter *r = first(&ch->receivers);
    if (r) {
        r->item = item;
        grant(r, 1, wakes);
        return 0;
    }
    if (ch->count < ch->capacity)
        return buf_push(ch, item);
    return -EAGAIN;
}

/* Under the lock: 1, 0 (end of stream), -EAGAIN, or -EBADF. */
static int recv_locked(struct wf_shchan *ch, struct wf_end *e, void **item,
                       struct sh_waiter **wakes)
{
    if (e->closed)
        return -EBADF;
    struct sh_waiter *s = first(&ch->senders);
    if (ch->count) {
        *item = buf_pop(ch);
        /* The first waiting sender's item takes the freed place. */
        if (s && buf_push(ch, s->item) == 0)
            grant(s, 0, wakes);
        return 1;
    }
    if (s) {
        *item = s->item;
        grant(s, 0, wakes);
        return 1;
    }
    return ch->open_tx ? -EAGAIN : 0;
}

int wf_shchan_send(weft_chan_tx *tx, void *item)
{
    struct weft_task *t;
    int rc = wf_entry(&t, true, end_closed(&tx->e));
    if (rc < 0)
        return rc;
    if ((rc = need_mailbox()) < 0)
        return rc;
    struct wf_shchan *ch = sh_of(&tx->e);
    struct sh_waiter *wakes = NULL;
    sh_lock(ch);
    rc = send_locked(ch, &tx->e, item, &wakes);
    if (rc != -EAGAIN) {
        sh_unlock(ch);
        deliver(wakes);
        return rc;
    }
    struct sh_waiter w = {.item = item, .key = tx};
    return sh_block(ch, &w, &ch->senders, &ch->nsend, "weft_chan_send");
}

int wf_shchan_try_send(weft_chan_tx *tx, void *item)
{
    struct wf_shchan *ch = sh_of(&tx->e);
    struct sh_waiter *wakes = NULL;
    sh_lock(ch);
    int rc = send_locked(ch, &tx->e, item, &wakes);
    sh_unlock(ch);
    deliver(wakes);
    return rc;
}

int wf_shchan_recv(weft_chan_rx *rx, void **item)
{
    struct weft_task *t;
    int rc = wf_entry(&t, item != NULL, end_closed(&rx->e));
    if (rc < 0)
        return rc;
    if ((rc = need_mailbox()) < 0)
        return rc;
    struct wf_shchan *ch = sh_of(&rx->e);
    struct sh_waiter *wakes = NULL;
    sh_lock(ch);
    rc = recv_locked(ch, &rx->e, item, &wakes);
    if (rc != -EAGAIN) {
        sh_unlock(ch);
        deliver(wakes);
        return rc;
    }
    struct sh_waiter w = {.key = rx};
    rc = sh_block(ch, &w, &ch->receivers, &ch->nrecv, "weft_chan_recv");
    if (rc == 1)
        *item = w.item;
    return rc;
}

int wf_shchan_try_recv(weft_chan_rx *rx, void **item)
{
    struct wf_shchan *ch = sh_of(&rx->e);
    struct sh_waiter *wakes = NULL;
    sh_lock(ch);
    int rc = recv_locked(ch, &rx->e, item, &wakes);
    sh_unlock(ch);
    deliver(wakes);
    return rc;
}

/* ---- clone, close, statistics ---- */

struct wf_end *wf_shchan_clone(struct wf_end *e, bool tx)
{
    if (end_closed(e))
        return NULL;
    struct wf_shchan *ch = sh_of(e);
    struct wf_end *c = new_end(ch); /* allocated outside the lock */
    if (!c)
        return NULL;
    sh_lock(ch);
    if (e->closed) {
        sh_unlock(ch);
        wf_free(c);
        return NULL;
    }
    c->next = ch->ends;
    ch->ends = c;
    if (tx)
        ch->open_tx++;
    else
        ch->open_rx++;
    sh_unlock(ch);
    return c;
}

/* Under the lock: grant every waiter of q that used handle key (NULL:
 * all) with res. */
static void grant_all(wf_link *q, const void *key, int res,
                      struct sh_waiter **wakes)
{
    for (wf_link *n = q->next, *next; n != q; n = next) {
        next = n->next;
        struct sh_waiter *w = wf_container_of(n, struct sh_waiter, node);
        if (!key || w->key == key)
            grant(w, res, wakes);
    }
}

void wf_shchan_close(struct wf_end *e, bool tx)
{
    struct wf_shchan *ch = sh_of(e);
    struct sh_waiter *wakes = NULL;
    sh_lock(ch);
    if (e->closed) {
        sh_unlock(ch);
        return;
    }
    __atomic_store_n(&e->closed, true, __ATOMIC_RELEASE);
    if (tx) {
        ch->open_tx--;
        grant_all(&ch->senders, e, -EBADF, &wakes);
        if (!ch->open_tx)
            grant_all(&ch->receivers, NULL, 0, &wakes); /* end of stream */
    } else {
        ch->open_rx--;
        grant_all(&ch->receivers, e, -EBADF, &wakes);
        if (!ch->open_rx) {
            grant_all(&ch->senders, NULL, -EPIPE, &wakes);
            ch->count = 0; /* undeliverable now */
        }
    }
    bool last = !ch->open_tx && !ch->open_rx;
    sh_unlock(ch);
    deliver(wakes);
    if (last)
        sh_unref(ch);
}

int wf_shchan_stats(const struct wf_end *e, weft_chan_stats *st)
{
    if (!st)
        return -EINVAL;
    struct wf_shchan *ch = sh_of(e);
    sh_lock(ch);
    st->current_buffer_used = ch->count;
    st->max_buffer_size = ch->capacity;
    st->open_send_streams = ch->open_tx;
    st->open_receive_streams = ch->open_rx;
    st->tasks_waiting_send = ch->nsend;
    st->tasks_waiting_receive = ch->nrecv;
    sh_unlock(ch);
    return 0;
}
