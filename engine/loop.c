/* SPDX-License-Identifier: MIT */
/*
 * engine/loop.c - weft_run and the scheduler loop.
 *
 * One loop per thread owns one ring. Each round runs the tasks that were
 * ready when it began (FIFO; a task that yields or blocks switches straight
 * to the next one), then makes one ring call for everything they queued:
 * no wait if tasks are ready, else a wait bounded by the earliest timer.
 * Completions and expired timers ready tasks for the next round.
 * With WEFT_OPT_IOPOLL a second ring carries O_DIRECT reads and writes;
 * while it has any in flight, each ring call polls it and none waits.
 */
#include "engine/engine.h"

#ifdef WEFT_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#include <stdatomic.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__thread struct wf_loop *wf_cur __attribute__((tls_model("initial-exec")));

/* Room for every live task, before one more is made. */
int wf_queues_reserve(struct wf_loop *L, size_t ntasks)
{
    struct wf_queue *q = &L->ready;
    if (ntasks <= q->cap)
        return 0;
    size_t cap = q->cap ? q->cap : 64;
    while (cap < ntasks)
        cap *= 2;
    struct weft_task **v = wf_malloc(cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    /* Re-base the indices: the order, and the mark, stay as they were. */
    size_t n = q->tail - q->head;
    for (size_t i = 0; i < n; i++)
        v[i] = q->v[(q->head + i) & q->mask];
    wf_free(q->v);
    q->mark -= q->head;
    q->tail = n;
    q->head = 0;
    q->v = v;
    q->cap = cap;
    q->mask = cap - 1;
    return 0;
}

static void between_rounds(struct wf_loop *L, bool drain);

/*
 * Switch to the next ready task. When the round is over and tasks are
 * ready for the next one, cross to it right here, on this task's stack:
 * a trip to the scheduler's stack would cost two switches for a ring
 * call that does not wait. The scheduler is needed only to wait, to run
 * other threads' messages, and to reclaim a finished task. next is the
 * next task of this round, or NULL. The await of a ring operation takes
 * the common case, another task of this round, inline
 * (wf_suspend_inline in engine.h) and comes here for the others.
 */
void wf_suspend_to(struct wf_loop *L, struct weft_task *self,
                   struct weft_task *next)
{
    if (!next && wf_queue_later(&L->ready) &&
        !(L->mailbox && wf_mailbox_pending(L))) {
        L->current = NULL; /* completions and timers run as the scheduler */
        between_rounds(L, false);
        wf_queue_new_round(&L->ready);
        next = wf_queue_next(&L->ready);
    }
    if (next == self) {
        /* No switch, so no saved stack pointer: the watermark from here. */
        uint32_t deep =
            (uint32_t)((char *)self - (char *)__builtin_frame_address(0));
        if (deep > self->deep)
            self->deep = deep;
        L->current = self;
        wf_queue_prefetch(&L->ready);
        self->state = WF_RUNNING;
        return;
    }
    if (next) {
        L->current = next;
        wf_queue_prefetch(&L->ready);
        wf_fiber_switch(&self->fiber, &next->fiber, false);
    } else {
        L->current = NULL;
        wf_fiber_switch(&self->fiber, &L->sched, false);
    }
    wf_resumed(self);
}

/* Every other caller comes here for all cases at once: a yield often
 * ends a round, and one call is cheaper than two. */
void wf_suspend(void)
{
    struct wf_loop *L = wf_cur;
    wf_suspend_to(L, L->current, wf_queue_next(&L->ready));
}

void wf_block(struct wf_wait *w)
{
    struct wf_loop *L = wf_cur;
    wf_block_inline(L, L->current, w);
}

void wf_yield(void)
{
    wf_ready(wf_cur->current);
    wf_suspend();
}

void wf_deliver_cancel(struct weft_task *t)
{
    struct wf_wait *w = t->wait;
    if (t->state == WF_BLOCKED && w && w->cancel && !w->cancelling) {
        w->cancelling = true;
        w->cancel(w);
    }
}

/*
 * Keep the tasks' operations in flight within max_inflight (CQ less SQ
 * entries, less WF_STANDING_ROOM, by default), so their completions fit
 * in the CQ. weft's own standing operations (the mailbox's poll, the
 * listeners' armed accepts, streams' multishot receives) are counted
 * apart (ring.standing) and never take the tasks' room: they stay armed for
 * good, so counting them would leave a small max_inflight none at all. Cancels
 * and multishot CQEs are not counted either; the margin and NODROP cover them
 * (an overflow is flushed, never lost).
 */
static void room_cancel(struct wf_wait *w)
{
    wf_list_del(&w->task->link);
    wf_wake(w->task);
}

/*
 * A cancelled task stops waiting at once: it gets its SQE anyway, a little
 * over the bound, and the await that follows (a checkpoint) drops it.
 */
void wf_room_wait_slow(struct wf_loop *L, unsigned need)
{
    struct weft_task *t = L->current;
    while (wf_ring_admitted(&L->ring) + need > L->ring.max_inflight &&
           !(L->ncancelled && wf_cancelled(t))) {
        struct wf_wait w = {.cancel = room_cancel, .what = "room in the ring"};
        wf_list_push(&L->room_waiters, &t->link);
        wf_block(&w);
    }
}

void wf_defer(struct wf_loop *L, struct wf_defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    wf_list_push(&L->deferred, &d->node);
}

void wf_defer_cancel(struct wf_defer *d)
{
    if (!d->queued)
        return;
    d->queued = false;
    wf_list_del(&d->node);
}

static void run_deferred(struct wf_loop *L)
{
    wf_link *n;
    while ((n = wf_list_pop(&L->deferred))) {
        struct wf_defer *d = wf_container_of(n, struct wf_defer, node);
        d->queued = false;
        d->fn(d);
    }
}

static void wake_room_waiters(struct wf_loop *L)
{
    unsigned used = wf_ring_admitted(&L->ring);
    /* A cancelled task may have gone over the bound (wf_room_wait_slow). */
    unsigned room =
        used < L->ring.max_inflight ? L->ring.max_inflight - used : 0;
    wf_link *n;
    /* Each woken task re-checks; waking a few more than fit is harmless. */
    while (room-- && (n = wf_list_pop(&L->room_waiters)))
        wf_wake(wf_container_of(n, struct weft_task, link));
}

/* Run every task that was ready when the round began. */
static void run_round(struct wf_loop *L)
{
    wf_queue_new_round(&L->ready);
    struct weft_task *t;
    while ((t = wf_queue_next(&L->ready))) {
        L->current = t;
        wf_queue_prefetch(&L->ready);
        wf_fiber_switch(&L->sched, &t->fiber, false);
        if (L->dead) {
            wf_task_reclaim(L, L->dead);
            L->dead = NULL;
        }
    }
}

/*
 * The step between two rounds: one ring call for everything the round
 * queued (waiting only if nothing is ready, and no longer than the
 * earliest timer), then whatever it and the clock made ready. The
 * mailbox's messages are run only on the scheduler's stack (drain):
 * they may run user code between tasks.
 */
static void between_rounds(struct wf_loop *L, bool drain)
{
    bool idle = wf_queue_later(&L->ready) == 0 &&
                !(wf_unlikely(L->faults) && wf_faults_holding(L));
    int64_t timeout = -1;
    weft_time next = wf_timer_next(L);
    if (idle && next != WEFT_FOREVER) {
        weft_time now = weft_now();
        timeout = next > now ? next - now : 0;
        /* A virtual clock waits a real while, then jumps (clock.c). */
        if (L->virt && timeout)
            timeout = wf_clock_idle_wait(L);
    }
    /* Polled operations complete only when the loop asks the device: it
     * polls each round, and never sleeps in the main ring meanwhile. */
    bool polling = L->poll && L->poll->inflight;
    /* A task waiting for every other to block needs a look, not a nap. */
    bool wait = idle && timeout != 0 && !L->nidle && !polling;
    /* Other threads must wake a loop that sleeps in the ring. */
    bool woken = wait && L->mailbox && !wf_mailbox_may_sleep(L);
    if (woken)
        wait = false;
    int n = polling ? wf_ring_pump(L->poll, false, 0) : 0;
    n += wf_ring_pump(&L->ring, wait, timeout);
    bool quiet = idle && n == 0 && wf_list_empty(&L->deferred);
    if (L->virt) {
        if (idle && !woken && !polling && next != WEFT_FOREVER &&
            next > L->vnow)
            wf_clock_after_wait(L, next, n);
        else
            L->quiet_since = 0;
    }
    if (!wf_list_empty(&L->deferred))
        run_deferred(L);
    if (L->mailbox && drain)
        wf_mailbox_drain(L);
    if (L->timers)
        wf_timers_expire(L, weft_now());
    if (!wf_list_empty(&L->room_waiters))
        wake_room_waiters(L);
    if (wf_unlikely(L->faults))
        wf_faults_round(L);
    /* Nothing ran, nothing completed, nothing woke: all are blocked. */
    if (L->nidle && quiet && wf_queue_later(&L->ready) == 0)
        wf_idle_wake(L);
}

/* A core of a multi-core runtime other than 0 keeps its loop alive with
 * no task (asleep in its ring) until the runtime stops it. */
static void loop_run(struct wf_loop *L)
{
    while (L->ntasks || L->keep_alive) {
        run_round(L);
        if (L->ntasks || L->keep_alive)
            between_rounds(L, true);
    }
}

static void options_resolve(weft_options *o, const weft_options *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof *o);
    if (!o->sq_entries)
        o->sq_entries = 256;
    if (!o->cq_entries)
        o->cq_entries = 64 * o->sq_entries;
    if (!o->stack_cache)
        o->stack_cache = 1024;
    if (!o->thread_idle)
        o->thread_idle = 10 * WEFT_SEC;
    if (!o->autojump)
        o->autojump = WEFT_MSEC;
}

static _Atomic uint64_t next_loop_serial = 1;

/* The backend WEFT_BACKEND asks for, else the option's; -1: a bad value. */
static int backend_wanted(const weft_options *o)
{
    const char *env = getenv("WEFT_BACKEND");
    if (!env || !*env)
        return (int)o->backend;
    if (!strcmp(env, "uring") || !strcmp(env, "io_uring"))
        return WEFT_BACKEND_URING;
    if (!strcmp(env, "epoll"))
        return WEFT_BACKEND_EPOLL;
    if (!strcmp(env, "auto"))
        return WEFT_BACKEND_AUTO;
    return -1;
}

static __thread const char *last_backend; /* weft_backend_name outside */

WF_EXPORT const char *weft_backend_name(void)
{
    if (wf_cur)
        return wf_cur->ring.ep ? "epoll" : "io_uring";
    return last_backend;
}

/* WEFT_OPT_DIAG or WEFT_DIAG=1: which backend, once per process. */
static void say_backend(const struct wf_loop *L, const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    const char *env = getenv("WEFT_DIAG");
    if (!(L->opts.flags & WEFT_OPT_DIAG) && !(env && *env && *env != '0'))
        return;
    if (atomic_flag_test_and_set(&said))
        return;
    if (!L->ring.ep)
        fprintf(stderr, "weft: backend io_uring\n");
    else if (*why)
        fprintf(stderr, "weft: backend epoll (%s)\n", why);
    else
        fprintf(stderr, "weft: backend epoll (asked for)\n");
}

/* The polled ring's size: O_DIRECT reads and writes in flight at once
 * beyond it go to the main ring. */
enum { WF_POLL_ENTRIES = 128 };

/*
 * WEFT_OPT_IOPOLL's second ring, on io_uring only. The epoll backend
 * ignores the option, as it ignores SQPOLL: it has no ring to poll, and
 * the files' reads and writes work there as always.
 */
static int poll_open(struct wf_loop *L)
{
    if (!(L->opts.flags & WEFT_OPT_IOPOLL) || L->ring.ep)
        return 0;
    struct wf_ring *r = wf_calloc(1, sizeof *r);
    if (!r)
        return wf_run_error_set(-ENOMEM, "weft_options: WEFT_OPT_IOPOLL: "
                                         "out of memory for the polled ring");
    char why[WF_RING_WHY];
    int rc = wf_ring_init_polled(r, WF_POLL_ENTRIES, why, sizeof why);
    if (rc < 0) {
        wf_free(r);
        return wf_run_error_set(rc, why);
    }
    L->poll = r;
    return 0;
}

static void poll_close(struct wf_loop *L)
{
    if (!L->poll)
        return;
    wf_ring_exit(L->poll);
    wf_free(L->poll);
    L->poll = NULL;
}

static int loop_open(struct wf_loop *L, const weft_options *in, int wq_fd)
{
    L->serial =
        atomic_fetch_add_explicit(&next_loop_serial, 1, memory_order_relaxed);
    options_resolve(&L->opts, in);
    if (L->opts.clock != WEFT_CLOCK_REAL && L->opts.clock != WEFT_CLOCK_VIRTUAL)
        return wf_run_error_set(-EINVAL,
                                "weft_options.clock: neither "
                                "WEFT_CLOCK_REAL nor WEFT_CLOCK_VIRTUAL");
    if (L->opts.autojump < 0)
        return wf_run_error_set(-EINVAL, "weft_options.autojump < 0");
    L->virt = L->opts.clock == WEFT_CLOCK_VIRTUAL;
    int backend = backend_wanted(&L->opts);
    if (backend < 0)
        return wf_run_error_set(-EINVAL, "WEFT_BACKEND: neither uring, "
                                         "epoll nor auto");
    char why[WF_RING_WHY] = "";
    struct wf_ring_params rp = {.backend = (unsigned)backend,
                                .sq = L->opts.sq_entries,
                                .cq = L->opts.cq_entries,
                                .mode = L->opts.ring_mode,
                                .wq_fd = wq_fd,
                                .iowq_max_workers = L->opts.iowq_max_workers,
                                .sq_thread_idle = L->opts.sq_thread_idle};
    if (L->opts.flags & WEFT_OPT_SQPOLL)
        rp.flags |= IORING_SETUP_SQPOLL;
    /* An IOPOLL ring runs only pollable O_DIRECT reads and writes
     * (others fail -EINVAL or -EOPNOTSUPP): not the loop's wake-ups,
     * receives, polls or cancels. So the main ring stays as it is, and
     * a second one (poll_open) takes the files' polled reads and writes.
     * An option of the caller's that needs io_uring: AUTO does not fall
     * back to epoll, as with SQPOLL. */
    if (L->opts.flags & WEFT_OPT_IOPOLL)
        rp.no_fallback = true;
    if (L->opts.sq_thread_idle && !(L->opts.flags & WEFT_OPT_SQPOLL))
        return wf_run_error_set(-EINVAL, "weft_options.sq_thread_idle "
                                         "without WEFT_OPT_SQPOLL");
    int rc = wf_ring_init(&L->ring, &rp, why, sizeof why);
    if (rc < 0)
        return wf_run_error_set(rc, why);
    rc = poll_open(L);
    if (rc < 0) {
        wf_ring_exit(&L->ring);
        return rc;
    }
    wf_run_error_set(0, NULL);
    say_backend(L, why);
    last_backend = L->ring.ep ? "epoll" : "io_uring";
    unsigned room = L->ring.cq_entries > L->ring.sq_entries
                        ? L->ring.cq_entries - L->ring.sq_entries
                        : L->ring.cq_entries / 2;
    /* The standing operations' terminal CQEs come out of the same CQ. */
    room -= room / 2 < WF_STANDING_ROOM ? room / 2 : WF_STANDING_ROOM;
    L->ring.max_inflight = L->opts.max_inflight ? L->opts.max_inflight : room;
    if (L->ring.max_inflight < 2)
        L->ring.max_inflight = 2;
    L->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t stack = L->opts.stack_size;
    if (!stack) {
        /* Room for a 64 KiB buffer on the stack, as in libdill; pages
         * are committed only when touched. ASan's redzones make frames
         * several times larger, so it keeps 4x. */
#ifdef WF_ASAN
        stack = 1024 * 1024;
#else
        stack = 256 * 1024;
#endif
    }
    size_t min = 4 * L->page + sizeof(struct weft_task);
    if (stack < min)
        stack = min;
    L->stack_size = (stack + L->page - 1) & ~(L->page - 1);
    L->guard = (WF_GUARD + L->page - 1) & ~(L->page - 1);
    L->slot_len = L->guard + L->stack_size;
    L->pool_cap = L->opts.stack_cache;
    wf_list_init(&L->room_waiters);
    wf_list_init(&L->deferred);
    wf_list_init(&L->idle_waiters);
    wf_sweep_loop_open(L);
#ifdef WEFT_HAVE_VALGRIND_H
    L->valgrind = RUNNING_ON_VALGRIND != 0;
#endif
    rc = wf_faults_open(L);
    if (rc < 0) {
        poll_close(L);
        wf_ring_exit(&L->ring);
        return rc;
    }
    wf_fiber_adopt_thread(&L->sched);
    wf_scope_link(&L->system, NULL, NULL, 0);
    if (in && in->thread_idle)
        wf_pool_set_idle(in->thread_idle);
    return 0;
}

static void loop_close(struct wf_loop *L, int rc)
{
    wf_faults_close(L, rc);
    wf_stack_pool_drain(L);
    wf_free(L->ready.v);
    wf_borrow_table_free(&L->borrows);
    wf_bufs_close(L);
    wf_free(L->fixed); /* the rings' exits unregister the buffers */
    poll_close(L);
    wf_ring_exit(&L->ring);
}

int wf_loop_open(struct wf_loop **out, const weft_options *opts, int wq_fd)
{
    struct wf_loop *L = wf_calloc(1, sizeof *L);
    if (!L)
        return -ENOMEM;
    int rc = loop_open(L, opts, wq_fd);
    if (rc < 0) {
        wf_free(L);
        return rc;
    }
    wf_cur = L;
    wf_overflow_guard_install(L);
    *out = L;
    return 0;
}

int wf_loop_run_main(struct wf_loop *L, weft_fn main, void *arg)
{
    if (!main) {
        loop_run(L);
        return 0;
    }
    struct weft_task *root;
    int rc = wf_task_new(L, main, arg, "main", &root);
    if (rc < 0)
        return rc;
    L->root = root;
    L->root_id = root->id;
    wf_scope_link(&root->root, NULL, root, WF_SCOPE_TASKROOT);
    wf_ready(root);
    loop_run(L);
    return L->result;
}

void wf_loop_close(struct wf_loop *L, int rc)
{
    /* Owed CQEs now, less the mailbox's standing poll: a task that
     * returned before its terminal CQE would leave one (the sweep looks). */
    wf_sweep_loop_end(L, L->ring.inflight - wf_mailbox_standing(L) +
                             (L->poll ? L->poll->inflight : 0));
    wf_mailbox_close(L);
    wf_overflow_guard_remove(L);
    wf_cur = NULL;
    loop_close(L, rc);
    wf_free(L);
}

WF_EXPORT int weft_run(weft_fn main, void *arg, const weft_options *opts)
{
    if (wf_cur)
        return -EBUSY;         /* a loop already runs on this thread */
    wf_run_error_set(0, NULL); /* an earlier failure's reason is over */
    if (!main)
        return -EINVAL;
    struct wf_loop *L;
    int rc = wf_loop_open(&L, opts, -1);
    if (rc < 0)
        return rc;
    rc = wf_loop_run_main(L, main, arg);
    wf_loop_close(L, rc);
    return rc;
}
