/*
 * engine/loop.c - weft_run and the scheduler loop.
 *
 * One loop per thread owns one ring. Each round runs the tasks that were
 * ready when it began (FIFO; a task that yields or blocks switches straight
 * to the next one), then makes one ring call for everything they queued:
 * no wait if tasks are ready, else a wait bounded by the earliest timer.
 * Completions and expired timers ready tasks for the next round.
 */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__thread struct wf_loop *wf_cur __attribute__((tls_model("initial-exec")));

WF_EXPORT weft_time weft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (weft_time)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

void wf_ready(struct weft_task *t)
{
    t->state = WF_READY;
    wf_list_push(&t->loop->runq, &t->runq);
}

void wf_wake(struct weft_task *t)
{
    t->wait = NULL;
    wf_ready(t);
}

void wf_suspend(void)
{
    struct wf_loop *L = wf_cur;
    struct weft_task *self = L->current;
    wf_link *n = wf_list_pop(&L->batch);
    if (n) {
        struct weft_task *next = wf_container_of(n, struct weft_task, runq);
        L->current = next;
        wf_fiber_switch(&self->fiber, &next->fiber, false);
    } else {
        L->current = NULL;
        wf_fiber_switch(&self->fiber, &L->sched, false);
    }
    self->state = WF_RUNNING;
}

void wf_block(struct wf_wait *w)
{
    struct weft_task *t = wf_cur->current;
    w->task = t;
    w->cancelling = false;
    t->wait = w;
    t->state = WF_BLOCKED;
    wf_suspend();
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

/* Keep operations in flight within what the CQ holds (no overflow). */
void wf_room_wait(struct wf_loop *L, unsigned need)
{
    while (L->ring.inflight + need > L->ring.max_inflight) {
        struct weft_task *t = L->current;
        struct wf_wait w = {.what = "room in the ring"};
        wf_list_push(&L->room_waiters, &t->runq);
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
    unsigned room = L->ring.max_inflight - L->ring.inflight;
    wf_link *n;
    /* Each woken task re-checks; waking a few more than fit is harmless. */
    while (room-- && (n = wf_list_pop(&L->room_waiters)))
        wf_wake(wf_container_of(n, struct weft_task, runq));
}

/* Run every task that was ready when the round began. */
static void run_round(struct wf_loop *L)
{
    wf_list_splice(&L->batch, &L->runq);
    wf_link *n;
    while ((n = wf_list_pop(&L->batch))) {
        struct weft_task *t = wf_container_of(n, struct weft_task, runq);
        L->current = t;
        wf_fiber_switch(&L->sched, &t->fiber, false);
        if (L->dead) {
            wf_task_reclaim(L, L->dead);
            L->dead = NULL;
        }
    }
}

static void loop_run(struct wf_loop *L)
{
    while (L->ntasks) {
        run_round(L);
        if (!L->ntasks)
            break;
        bool idle = wf_list_empty(&L->runq);
        int64_t timeout = -1;
        weft_time next = wf_timer_next(L);
        if (idle && next != WEFT_FOREVER) {
            weft_time now = weft_now();
            timeout = next > now ? next - now : 0;
        }
        bool wait = idle && timeout != 0;
        /* Other threads must wake a loop that sleeps in the ring. */
        if (wait && L->mailbox && !wf_mailbox_sleep(L))
            wait = false;
        wf_ring_pump(&L->ring, wait, timeout);
        if (!wf_list_empty(&L->deferred))
            run_deferred(L);
        if (L->mailbox)
            wf_mailbox_wake_up(L);
        if (L->timers)
            wf_timers_expire(L, weft_now());
        if (!wf_list_empty(&L->room_waiters))
            wake_room_waiters(L);
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
}

static int loop_open(struct wf_loop *L, const weft_options *in)
{
    options_resolve(&L->opts, in);
    char why[WF_RING_WHY] = "";
    int rc = wf_ring_init(&L->ring, L->opts.sq_entries, L->opts.cq_entries,
                          L->opts.ring_mode, why, sizeof why);
    if (rc < 0)
        return wf_run_error_set(rc, why);
    wf_run_error_set(0, NULL);
    unsigned room = L->ring.cq_entries > L->ring.sq_entries
                        ? L->ring.cq_entries - L->ring.sq_entries
                        : L->ring.cq_entries / 2;
    L->ring.max_inflight = L->opts.max_inflight ? L->opts.max_inflight : room;
    if (L->ring.max_inflight < 2)
        L->ring.max_inflight = 2;
    L->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t stack = L->opts.stack_size;
    if (!stack) {
#ifdef WF_ASAN
        stack = 256 * 1024;
#else
        stack = 64 * 1024;
#endif
    }
    size_t min = 4 * L->page + sizeof(struct weft_task);
    if (stack < min)
        stack = min;
    L->stack_size = (stack + L->page - 1) & ~(L->page - 1);
    L->pool_cap = L->opts.stack_cache;
    wf_list_init(&L->runq);
    wf_list_init(&L->batch);
    wf_list_init(&L->room_waiters);
    wf_list_init(&L->deferred);
    wf_fiber_adopt_thread(&L->sched);
    wf_scope_link(&L->system, NULL, NULL, 0);
    if (in && in->thread_idle)
        wf_pool_set_idle(in->thread_idle);
    return 0;
}

static void loop_close(struct wf_loop *L)
{
    wf_stack_pool_drain(L);
    wf_borrow_table_free(&L->borrows);
    wf_ring_exit(&L->ring);
}

WF_EXPORT int weft_run(weft_fn main, void *arg, const weft_options *opts)
{
    if (!main)
        return -EINVAL;
    if (wf_cur)
        return -EBUSY; /* a loop already runs on this thread */
    struct wf_loop *L = calloc(1, sizeof *L);
    if (!L)
        return -ENOMEM;
    int rc = loop_open(L, opts);
    if (rc < 0) {
        free(L);
        return rc;
    }
    wf_cur = L;
    wf_overflow_guard_install(L);
    struct weft_task *root;
    rc = wf_task_new(L, main, arg, "main", &root);
    if (rc == 0) {
        L->root = root;
        wf_scope_link(&root->root, NULL, root, WF_SCOPE_TASKROOT);
        wf_ready(root);
        loop_run(L);
        rc = L->result;
    }
    wf_mailbox_close(L);
    wf_overflow_guard_remove(L);
    wf_cur = NULL;
    loop_close(L);
    free(L);
    return rc;
}
