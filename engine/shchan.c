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
 *
 * The lock-free ring (bounded capacity 1 .. SH_RING_MAX). The buffer is
 * then Vyukov's bounded MPMC queue: cells carrying a sequence number,
 * `enq` and `deq` positions on cache lines of their own; a producer claims
 * a cell by a CAS on `enq`, writes the item and publishes it by storing
 * the cell's sequence (release); a consumer likewise with `deq`. The ring
 * has a power of two of cells, at least 2 (one cell cannot tell full from
 * empty); when that is more than the capacity, a producer also refuses a
 * place once enq - deq reached the capacity. A send or a receive that
 * finds its work done in the ring takes no lock. The lock guards what it
 * guarded before except the items: the two queues of waiters, the open
 * counts, the waiters' states. Counters nsend and nrecv (the lengths of
 * the queues, changed under the lock) are read without it.
 *
 * Under the lock, pump() serves the waiters from the ring, in FIFO
 * order: it pops items for the waiting receivers and pushes the waiting
 * senders' items, while either makes progress; a waiter it serves is
 * granted exactly as above (its item popped for it, or its item pushed),
 * so the hand-off and cancellation rules are unchanged: the ring is
 * "the buffer", and a waiter is only ever served under the lock while
 * WAITING.
 *
 * Fast paths. A send that finds no waiting sender (nsend == 0: no
 * overtaking of waiters) pushes; then, after a seq_cst fence, it reads
 * nrecv, and only if a receiver waits takes the lock and pumps. A receive
 * mirrors it (nrecv == 0, pop, fence, nsend). A side that fails (full,
 * empty, or waiters ahead of it) takes the lock, checks the handle and
 * the open counts, queues its record, increments its counter (seq_cst),
 * fences, and pumps (which retries its own operation, behind the earlier
 * waiters); if the pump granted its own record, it returns at once, else
 * it blocks.
 *
 * No lost wake-up. Say a receiver R blocks on an empty ring while a
 * sender S pushes item x. R did, in order: nrecv++ (seq_cst RMW), fence,
 * then pump's pop, which read the cell of x's position (acquire) and
 * found it unpublished; all under the lock, which R holds from before
 * nrecv++ until its record is queued. S did: publish x (store to the
 * cell's seq), fence, read nrecv. The two seq_cst fences are ordered one
 * way or the other: if R's fence came first, S's read of nrecv after its
 * fence sees R's increment (it precedes R's fence), so S takes the lock,
 * i.e. after R queued its record and unlocked, and its pump pops x (or
 * an earlier item) for R, or finds x already taken by another receiver,
 * which is no loss; if S's fence came first, R's pop after its own fence
 * sees x published, and R takes it (or finds it taken by another
 * receiver, whose taking is then the item's delivery). A pop that failed
 * because x's cell was claimed but not yet published is the first case:
 * S's publication, hence its fence, comes after R's read. The sender's
 * side is the mirror image (a pop frees a cell: deq CAS and the seq
 * store, then fence, then nsend; a waiting sender: nsend++, fence, push,
 * which reads that cell and, below 2 x capacity cells, deq). A stale
 * nonzero counter only costs a needless lock. Close pumps first, so
 * receivers get end of stream only when the ring is empty.
 *
 * One residue of not serialising sends with close: a send on handle h
 * that is already past its check of h when another thread closes h (the
 * last send handle) may push its item after the waiting receivers were
 * told end of stream; the item is not lost (a later receive gets it, or
 * the last receive handle's close drops it like any buffered item). A
 * program that closes a handle while another thread still sends on it
 * has no order between the two anyway.
 */
#include "engine/engine.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

enum { SW_WAITING, SW_GRANTED, SW_CANCELLED };

/* Larger bounded capacities keep the locked buffer, which grows on
 * demand instead of allocating every place at the open. */
#define SH_RING_MAX ((size_t)1 << 16)

struct sh_cell {
    _Atomic size_t seq;
    void *item;
};

struct wf_shchan {
    /* The lock and what every call reads, on one line; written only by
     * the slow paths. */
    _Alignas(64) _Atomic int lock;
    size_t capacity;
    struct sh_cell *cells;       /* the ring (NULL: the locked buffer) */
    size_t mask;                 /* cells - 1 */
    bool exact;                  /* cells == capacity: no enq - deq check */
    _Atomic bool no_rx;          /* every receive handle closed */
    _Atomic size_t nsend, nrecv; /* queue lengths, changed under the lock */
    void **buf; /* the locked buffer (capacity 0, unbounded, large) */
    size_t bufcap, head, count; /* bufcap: a power of two, or 0 */
    wf_link senders, receivers;
    size_t open_tx, open_rx;
    _Atomic size_t refs; /* 1 for the handles + 1 per blocked waiter */
    struct wf_end *ends; /* every handle, for the final free */
    /* The ring's positions, one line each. */
    _Alignas(64) _Atomic size_t enq;
    _Alignas(64) _Atomic size_t deq;
};

struct sh_waiter {
    struct wf_wait wait;     /* wait.task: the waiting task */
    wf_link node;            /* in senders or receivers, under the lock */
    struct sh_waiter *wnext; /* in a granter's list of wakes to deliver */
    struct wf_msg msg;       /* the wake-up, to the waiter's loop */
    struct wf_loop *loop;
    struct wf_mailbox *mb;
    struct wf_shchan *ch;
    _Atomic size_t *count;
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
    wf_free(ch->cells);
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
    if (capacity >= 1 && capacity <= SH_RING_MAX) {
        size_t n = 2;
        while (n < capacity)
            n *= 2;
        ch->cells = wf_malloc(n * sizeof *ch->cells);
        if (!ch->cells) {
            wf_free(ch);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            atomic_init(&ch->cells[i].seq, i);
            ch->cells[i].item = NULL;
        }
        ch->mask = n - 1;
        ch->exact = n == capacity;
    }
    atomic_init(&ch->no_rx, false);
    atomic_init(&ch->nsend, 0);
    atomic_init(&ch->nrecv, 0);
    atomic_init(&ch->enq, 0);
    atomic_init(&ch->deq, 0);
    wf_list_init(&ch->senders);
    wf_list_init(&ch->receivers);
    atomic_init(&ch->lock, 0);
    atomic_init(&ch->refs, 1);
    struct wf_end *t = new_end(ch), *r = new_end(ch);
    if (!t || !r) {
        wf_free(t);
        wf_free(r);
        wf_free(ch->cells);
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

/* ---- the ring (lock-free) ---- */

/* Push item if there is a place: true, else false (full). */
static bool ring_push(struct wf_shchan *ch, void *item)
{
    size_t pos = atomic_load_explicit(&ch->enq, memory_order_relaxed);
    for (;;) {
        struct sh_cell *c = &ch->cells[pos & ch->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)(seq - pos);
        if (dif == 0) {
            /* deq only grows: a place found free here is still free at the
             * CAS, which fails if enq moved. */
            if (!ch->exact &&
                pos - atomic_load_explicit(&ch->deq, memory_order_acquire) >=
                    ch->capacity)
                return false;
            if (atomic_compare_exchange_weak_explicit(&ch->enq, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->item = item;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false; /* the cell still holds the previous lap's item */
        } else {
            pos = atomic_load_explicit(&ch->enq, memory_order_relaxed);
        }
    }
}

/* Pop the oldest item: true, else false (empty, or its producer has not
 * published it yet). */
static bool ring_pop(struct wf_shchan *ch, void **item)
{
    size_t pos = atomic_load_explicit(&ch->deq, memory_order_relaxed);
    for (;;) {
        struct sh_cell *c = &ch->cells[pos & ch->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)(seq - (pos + 1));
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&ch->deq, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *item = c->item;
                atomic_store_explicit(&c->seq, pos + ch->mask + 1,
                                      memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false;
        } else {
            pos = atomic_load_explicit(&ch->deq, memory_order_relaxed);
        }
    }
}

/* ---- the locked buffer (under the lock) ---- */

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
    atomic_fetch_sub_explicit(w->count, 1, memory_order_relaxed);
    w->res = res;
    atomic_store_explicit(&w->state, SW_GRANTED, memory_order_release);
    w->wnext = *wakes;
    *wakes = w;
}

/* Under the lock, ring mode: serve the waiters from the ring, each queue
 * in FIFO order, while either makes progress. */
static void pump(struct wf_shchan *ch, struct sh_waiter **wakes)
{
    for (bool more = true; more;) {
        more = false;
        struct sh_waiter *w;
        while ((w = first(&ch->receivers)) && ring_pop(ch, &w->item)) {
            grant(w, 1, wakes);
            more = true;
        }
        while ((w = first(&ch->senders)) && ring_push(ch, w->item)) {
            grant(w, 0, wakes);
            more = true;
        }
    }
}

/* On the waiter's loop: the message a granter posted. */
static void on_wake(struct wf_loop *L, struct wf_msg *m)
{
    struct sh_waiter *w = wf_container_of(m, struct sh_waiter, msg);
    if (L) /* a blocked task keeps its loop alive: always true */
        wf_wake(w->wait.task);
}

/* After the unlock: wake every granted waiter but self (a caller the pump
 * served before it blocked). Each record may be gone the moment its wake
 * is delivered: read it first, touch it no more. */
static void deliver_but(struct sh_waiter *w, const struct sh_waiter *self)
{
    while (w) {
        struct sh_waiter *next = w->wnext;
        if (w == self) {
            /* not blocked: nothing to wake */
        } else if (w->loop == wf_cur) {
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

static inline void deliver(struct sh_waiter *w)
{
    if (w)
        deliver_but(w, NULL);
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
        atomic_fetch_sub_explicit(w->count, 1, memory_order_relaxed);
        w->res = -ECANCELED;
    }
    sh_unlock(ch);
    if (won)
        wf_wake(wt->task);
}

/* Under the lock: set w up and queue it on q. The count's increment is
 * seq_cst, and followed by a fence: the ring's no-lost-wake-up argument
 * (top of the file). */
static void sh_queue(struct wf_shchan *ch, struct sh_waiter *w, wf_link *q,
                     _Atomic size_t *count, const char *what)
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
    atomic_fetch_add_explicit(count, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
}

/*
 * Called with the lock held and w queued: unlock, deliver wakes, block
 * until granted or cancelled. The caller made sure its loop has a
 * mailbox.
 */
static int sh_sleep(struct wf_shchan *ch, struct sh_waiter *w,
                    struct sh_waiter *wakes)
{
    struct wf_loop *L = wf_cur;
    atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
    sh_unlock(ch);
    deliver(wakes);
    /* No one can wake it before it blocks: a message waits for this
     * thread's scheduler, and the cancel hook runs on this thread. */
    L->remote_waits++;
    wf_block(&w->wait);
    L->remote_waits--;
    int res = w->res;
    sh_unref(ch);
    return res;
}

/* Ring mode, with the lock held: queue w, pump, and block unless the pump
 * served w. Returns w's result. */
static int sh_wait_ring(struct wf_shchan *ch, struct sh_waiter *w, wf_link *q,
                        _Atomic size_t *count, const char *what)
{
    struct sh_waiter *wakes = NULL;
    sh_queue(ch, w, q, count, what);
    pump(ch, &wakes);
    if (atomic_load_explicit(&w->state, memory_order_relaxed) == SW_GRANTED) {
        sh_unlock(ch);
        deliver_but(wakes, w);
        return w->res;
    }
    return sh_sleep(ch, w, wakes);
}

/* After a lock-free push or pop: serve the other side if it waits. The
 * fence orders the ring operation before the read of the counter. */
static inline void after_ring_op(struct wf_shchan *ch, _Atomic size_t *other)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (wf_likely(!atomic_load_explicit(other, memory_order_relaxed)))
        return;
    struct sh_waiter *wakes = NULL;
    sh_lock(ch);
    pump(ch, &wakes);
    sh_unlock(ch);
    deliver(wakes);
}

/* A blocking call needs its loop's mailbox for remote wake-ups. */
static inline int need_mailbox(void)
{
    return wf_likely(wf_cur->mailbox != NULL) ? 0 : wf_mailbox_open(wf_cur);
}

/* ---- send and receive, the locked buffer ---- */

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

/* ---- send and receive, the ring ---- */

/* The fast paths: 0 / 1 done, -EAGAIN to take the slow path. */
static inline int ring_try_send(struct wf_shchan *ch, void *item)
{
    if (atomic_load_explicit(&ch->no_rx, memory_order_acquire))
        return -EPIPE;
    if (atomic_load_explicit(&ch->nsend, memory_order_relaxed) ||
        !ring_push(ch, item))
        return -EAGAIN;
    after_ring_op(ch, &ch->nrecv);
    return 0;
}

static inline int ring_try_recv(struct wf_shchan *ch, void **item)
{
    if (atomic_load_explicit(&ch->nrecv, memory_order_relaxed) ||
        !ring_pop(ch, item))
        return -EAGAIN;
    after_ring_op(ch, &ch->nsend);
    return 1;
}

/* try_send's slow path: serve the waiters, then push unless senders still
 * wait (they are ahead). */
static int ring_try_send_locked(struct wf_shchan *ch, struct wf_end *e,
                                void *item)
{
    struct sh_waiter *wakes = NULL;
    int rc;
    sh_lock(ch);
    if (e->closed) {
        rc = -EBADF;
    } else if (!ch->open_rx) {
        rc = -EPIPE;
    } else {
        pump(ch, &wakes);
        rc = wf_list_empty(&ch->senders) && ring_push(ch, item) ? 0 : -EAGAIN;
        if (rc == 0)
            pump(ch, &wakes); /* a receiver may wait */
    }
    sh_unlock(ch);
    deliver(wakes);
    return rc;
}

static int ring_try_recv_locked(struct wf_shchan *ch, struct wf_end *e,
                                void **item)
{
    struct sh_waiter *wakes = NULL;
    int rc;
    sh_lock(ch);
    if (e->closed) {
        rc = -EBADF;
    } else {
        pump(ch, &wakes);
        if (wf_list_empty(&ch->receivers) && ring_pop(ch, item)) {
            rc = 1;
            pump(ch, &wakes); /* a sender may wait */
        } else {
            rc = ch->open_tx ? -EAGAIN : 0;
        }
    }
    sh_unlock(ch);
    deliver(wakes);
    return rc;
}

int wf_shchan_send(weft_chan_tx *tx, void *item)
{
    struct weft_task *t;
    int rc = wf_entry(&t, true, end_closed(&tx->e));
    if (rc < 0)
        return rc;
    struct wf_shchan *ch = sh_of(&tx->e);
    if (ch->cells && (rc = ring_try_send(ch, item)) != -EAGAIN)
        return rc;
    if ((rc = need_mailbox()) < 0)
        return rc;
    struct sh_waiter *wakes = NULL;
    struct sh_waiter w = {.item = item, .key = tx};
    sh_lock(ch);
    if (ch->cells) {
        if (tx->e.closed || !ch->open_rx) {
            rc = tx->e.closed ? -EBADF : -EPIPE;
            sh_unlock(ch);
            return rc;
        }
        return sh_wait_ring(ch, &w, &ch->senders, &ch->nsend, "weft_chan_send");
    }
    rc = send_locked(ch, &tx->e, item, &wakes);
    if (rc != -EAGAIN) {
        sh_unlock(ch);
        deliver(wakes);
        return rc;
    }
    sh_queue(ch, &w, &ch->senders, &ch->nsend, "weft_chan_send");
    return sh_sleep(ch, &w, NULL);
}

int wf_shchan_try_send(weft_chan_tx *tx, void *item)
{
    struct wf_shchan *ch = sh_of(&tx->e);
    if (ch->cells) {
        if (end_closed(&tx->e))
            return -EBADF;
        int rc = ring_try_send(ch, item);
        return rc != -EAGAIN ? rc : ring_try_send_locked(ch, &tx->e, item);
    }
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
    struct wf_shchan *ch = sh_of(&rx->e);
    if (ch->cells && ring_try_recv(ch, item) == 1)
        return 1;
    if ((rc = need_mailbox()) < 0)
        return rc;
    struct sh_waiter *wakes = NULL;
    struct sh_waiter w = {.key = rx};
    sh_lock(ch);
    if (ch->cells) {
        if (rx->e.closed) {
            sh_unlock(ch);
            return -EBADF;
        }
        if (!ch->open_tx) { /* no sender can wait: the ring is the rest */
            rc = ring_pop(ch, item) ? 1 : 0;
            sh_unlock(ch);
            return rc;
        }
        rc = sh_wait_ring(ch, &w, &ch->receivers, &ch->nrecv, "weft_chan_recv");
    } else {
        rc = recv_locked(ch, &rx->e, item, &wakes);
        if (rc != -EAGAIN) {
            sh_unlock(ch);
            deliver(wakes);
            return rc;
        }
        sh_queue(ch, &w, &ch->receivers, &ch->nrecv, "weft_chan_recv");
        rc = sh_sleep(ch, &w, NULL);
    }
    if (rc == 1)
        *item = w.item;
    return rc;
}

int wf_shchan_try_recv(weft_chan_rx *rx, void **item)
{
    struct wf_shchan *ch = sh_of(&rx->e);
    if (ch->cells) {
        if (end_closed(&rx->e))
            return -EBADF;
        return ring_try_recv(ch, item) == 1
                   ? 1
                   : ring_try_recv_locked(ch, &rx->e, item);
    }
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
    if (ch->cells)
        pump(ch, &wakes); /* what the ring holds goes to waiters first */
    if (tx) {
        ch->open_tx--;
        grant_all(&ch->senders, e, -EBADF, &wakes);
        if (!ch->open_tx)
            grant_all(&ch->receivers, NULL, 0, &wakes); /* end of stream */
    } else {
        ch->open_rx--;
        grant_all(&ch->receivers, e, -EBADF, &wakes);
        if (!ch->open_rx) {
            atomic_store_explicit(&ch->no_rx, true, memory_order_release);
            grant_all(&ch->senders, NULL, -EPIPE, &wakes);
            ch->count = 0; /* undeliverable now (the ring's: see stats) */
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
    size_t used = ch->count;
    if (ch->cells && ch->open_rx) {
        /* deq first: enq >= deq, and a stale deq only overcounts */
        size_t d = atomic_load_explicit(&ch->deq, memory_order_acquire);
        used = atomic_load_explicit(&ch->enq, memory_order_acquire) - d;
        if (used > ch->capacity)
            used = ch->capacity;
    }
    st->current_buffer_used = used;
    st->max_buffer_size = ch->capacity;
    st->open_send_streams = ch->open_tx;
    st->open_receive_streams = ch->open_rx;
    st->tasks_waiting_send = atomic_load(&ch->nsend);
    st->tasks_waiting_receive = atomic_load(&ch->nrecv);
    sh_unlock(ch);
    return 0;
}
