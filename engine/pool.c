/* SPDX-License-Identifier: MIT */
/*
 * engine/pool.c - the thread bridge: the per-process worker pool,
 * weft_to_thread and weft_from_thread_*.
 *
 * Workers never touch a ring. A finished job, or a call from a worker, is
 * a message posted to the owning loop's mailbox (engine/mailbox.c).
 * Threads are made on demand (every queued job gets a free worker of its
 * own, since jobs may wait on each other) and retire after
 * weft_options.thread_idle.
 */
#include "engine/bridge.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- the worker pool, one per process ---- */

struct wf_job_wait;

struct wf_job {
    struct wf_msg msg; /* "done", to the loop */
    weft_fn fn;
    void *arg;
    int result;
    struct wf_mailbox *mb;
    weft_limiter *limiter;
    struct wf_job_wait *waiter; /* on the waiting task's stack; NULL once
                                   abandoned (loop thread only) */
    struct wf_job *qnext;       /* in the pool's queue */
    _Atomic int cancelled;
    bool abandon; /* the job is on the heap, and may be left */
};

/* The waiting task's side, on its stack: after an abandon the task reads
 * only this, never the job (the loop may free the job before the task
 * runs again). */
struct wf_job_wait {
    struct wf_wait wait;
    struct wf_job *job;
    bool abandoned;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wf_job *head, *tail;
    _Atomic size_t queued; /* read without the lock by spinners */
    unsigned nthreads;
    unsigned nidle;    /* workers free for a job (each takes one) */
    unsigned nwaiting; /* of those, asleep on cv (the rest spin) */
    weft_time idle;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .idle = 10 * WEFT_SEC};

static bool job_queued(void *unused)
{
    return atomic_load_explicit(&pool.queued, memory_order_relaxed) != 0;
}
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* The pool's condvar times its waits by CLOCK_MONOTONIC. */
static void pool_cond_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* A forked child inherits the pool's state but none of its threads. */
static void pool_after_fork(void)
{
    pthread_mutex_init(&pool.mu, NULL);
    pool_cond_init();
    pool.head = pool.tail = NULL;
    atomic_store(&pool.queued, 0);
    pool.nthreads = pool.nidle = pool.nwaiting = 0;
}

static void pool_init(void)
{
    pthread_atfork(NULL, NULL, pool_after_fork);
    pool_cond_init();
}

static __thread struct wf_job *worker_job; /* the job this worker runs */

/*
 * A worker counts as idle (spare) from the moment its job's function
 * returns, before it posts the result: the loop may submit the next job
 * as soon as it sees the result, and must then find a spare worker rather
 * than make a thread.
 */
static void run_job(struct wf_job *job)
{
    struct wf_mailbox *mb = job->mb;
    worker_job = job;
    job->result = job->fn(job->arg);
    worker_job = NULL;
    pthread_mutex_lock(&pool.mu);
    pool.nidle++;
    pthread_mutex_unlock(&pool.mu);
    /* After the post the loop may free the job: touch it no more. */
    if (wf_mailbox_post(mb, &job->msg) < 0)
        wf_free(job); /* the loop has ended; only abandoned jobs get here */
    wf_mailbox_put(mb);
}

static void *worker_main(void *unused)
{
    wf_mailbox_worker_start();
    pthread_mutex_lock(&pool.mu);
    pool.nidle++;
    for (;;) {
        if (!pool.head) {
            /* Watch for a while: a job queued meanwhile needs no wake-up. */
            pthread_mutex_unlock(&pool.mu);
            wf_spin_for(job_queued, NULL);
            pthread_mutex_lock(&pool.mu);
        }
        while (!pool.head) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            weft_time now = (weft_time)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
            pool.nwaiting++;
            int rc;
            if (pool.idle >= WEFT_FOREVER - now) { /* never retire */
                rc = pthread_cond_wait(&pool.cv, &pool.mu);
            } else {
                weft_time until = now + pool.idle;
                ts.tv_sec = until / WEFT_SEC;
                ts.tv_nsec = until % WEFT_SEC;
                rc = pthread_cond_timedwait(&pool.cv, &pool.mu, &ts);
            }
            pool.nwaiting--;
            if (rc == ETIMEDOUT && !pool.head) {
                pool.nidle--;
                pool.nthreads--;
                pthread_mutex_unlock(&pool.mu);
                wf_mailbox_worker_exit();
                return NULL;
            }
        }
        struct wf_job *job = pool.head;
        pool.head = job->qnext;
        if (!pool.head)
            pool.tail = NULL;
        pool.queued--;
        pool.nidle--;
        pthread_mutex_unlock(&pool.mu);
        run_job(job);
        pthread_mutex_lock(&pool.mu);
    }
}

static int pool_submit(struct wf_job *job)
{
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool.mu);
    job->qnext = NULL;
    if (pool.tail)
        pool.tail->qnext = job;
    else
        pool.head = job;
    pool.tail = job;
    pool.queued++;
    int rc = 0;
    /* Every queued job needs a free worker of its own: jobs may wait on
     * each other, so none may queue behind a busy one. */
    if (pool.queued > pool.nidle) {
        pthread_t th;
        pthread_attr_t attr;
        sigset_t all, old;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old); /* workers take no signals */
        rc = -pthread_create(&th, &attr, worker_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (rc == 0) {
            pool.nthreads++;
        } else if (pool.nthreads) {
            rc = 0; /* the workers there are will get to it */
        } else {
            /* No worker at all: take the job back. */
            pool.head = pool.tail = NULL;
            pool.queued = 0;
        }
    }
    /* Spinners see the queue themselves; wake a sleeper only for the
     * jobs they cannot take. */
    if (rc == 0 && pool.nwaiting && pool.queued > pool.nidle - pool.nwaiting)
        pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    return rc;
}

void wf_pool_set_idle(weft_time idle)
{
    if (idle <= 0)
        return; /* the default stays */
    pthread_mutex_lock(&pool.mu);
    pool.idle = idle;
    pthread_mutex_unlock(&pool.mu);
}

/* ---- weft_to_thread ---- */

WF_EXPORT weft_limiter *weft_default_thread_limiter(void)
{
    struct wf_loop *L = wf_cur;
    if (!L)
        return NULL;
    if (!L->thread_limiter_ready) {
        weft_limiter_init(&L->thread_limiter, 40);
        L->thread_limiter_ready = true;
    }
    return &L->thread_limiter;
}

/* The worker finished (on the loop thread, from the mailbox). */
static void job_done(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_job *job = wf_container_of(m, struct wf_job, msg);
    if (!L) { /* the loop ended first: only an abandoned job */
        wf_free(job);
        return;
    }
    L->jobs_out--;
    if (!job->waiter) { /* abandoned: its token is held until now */
        weft_limiter_release_on_behalf_of(job->limiter, job);
        wf_free(job);
        return;
    }
    wf_wake(job->waiter->wait.task);
}

static void job_cancel(struct wf_wait *w)
{
    struct wf_job_wait *jw = wf_container_of(w, struct wf_job_wait, wait);
    atomic_store(&jw->job->cancelled, 1);
    if (jw->job->abandon) {
        jw->abandoned = true;
        jw->job->waiter = NULL; /* the job is the loop's to free now */
        wf_wake(w->task);
    }
    /* Otherwise the wait is shielded: the worker's result will come. */
}

WF_EXPORT int weft_to_thread(weft_fn fn, void *arg, weft_limiter *limiter,
                             unsigned flags)
{
    return wf_to_thread(fn, arg, limiter, flags, NULL);
}

int wf_to_thread(weft_fn fn, void *arg, weft_limiter *limiter, unsigned flags,
                 bool *submitted)
{
    struct weft_task *t;
    if (submitted)
        *submitted = false;
    int rc = wf_entry(&t, fn && !(flags & ~WEFT_ABANDON_ON_CANCEL), false);
    if (rc < 0)
        return rc;
    struct wf_loop *L = t->loop;
    rc = wf_mailbox_open(L);
    if (rc < 0)
        return rc;
    struct wf_job local, *job = &local;
    bool abandon = flags & WEFT_ABANDON_ON_CANCEL;
    if (abandon && !(job = wf_malloc(sizeof *job)))
        return -ENOMEM;
    memset(job, 0, sizeof *job);
    job->msg.fn = job_done;
    job->fn = fn;
    job->arg = arg;
    job->mb = L->mailbox;
    job->limiter = limiter ? limiter : weft_default_thread_limiter();
    job->abandon = abandon;
    atomic_init(&job->cancelled, 0);
    struct wf_job_wait jw = {
        .wait = {.cancel = job_cancel, .what = "weft_to_thread"}, .job = job};
    job->waiter = &jw;
    rc = weft_limiter_acquire_on_behalf_of(job->limiter, job);
    if (rc == 0) {
        wf_mailbox_get(job->mb);
        rc = pool_submit(job);
        if (rc == 0)
            L->jobs_out++;
        if (rc < 0) {
            wf_mailbox_put(job->mb);
            weft_limiter_release_on_behalf_of(job->limiter, job);
        }
    }
    if (rc < 0) {
        if (abandon)
            wf_free(job);
        return rc;
    }
    if (submitted)
        *submitted = true;
    wf_block(&jw.wait);
    if (jw.abandoned)
        return -ECANCELED;
    rc = job->result;
    weft_limiter_release_on_behalf_of(job->limiter, job);
    if (abandon)
        wf_free(job);
    return rc;
}

/* ---- weft_from_thread_* ---- */

struct wf_call {
    struct wf_msg msg;
    weft_fn fn;
    void *arg;
    int result;
    struct wf_notify done;
    struct wf_job *job;
};

static void call_exit(struct weft_task *t)
{
    struct wf_call *c = t->exit_arg;
    c->result = t->result;
    notify_post(&c->done);
}

static void call_run(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_call *c = wf_container_of(m, struct wf_call, msg);
    if (!L) {
        c->result = -ESHUTDOWN;
        notify_post(&c->done);
        return;
    }
    /* Under the waiting task's scopes, so its cancellation reaches fn; an
     * abandonable call's task may leave those scopes, so it hangs apart. */
    struct wf_job *job = c->job;
    weft_scope *attach =
        !job->abandon ? job->waiter->wait.task->scope : &L->system;
    int rc = wf_spawn_system(L, c->fn, c->arg, attach, call_exit, c);
    if (rc < 0) {
        c->result = rc;
        notify_post(&c->done);
    }
}

static void call_run_sync(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_call *c = wf_container_of(m, struct wf_call, msg);
    c->result = L ? c->fn(c->arg) : -ESHUTDOWN;
    notify_post(&c->done);
}

static int call_loop(weft_fn fn, void *arg,
                     void (*how)(struct wf_loop *, struct wf_msg *))
{
    struct wf_job *job = worker_job;
    if (!job)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    struct wf_call c = {.msg = {.fn = how}, .fn = fn, .arg = arg, .job = job};
    atomic_init(&c.done.done, 0);
    int rc = wf_mailbox_post(job->mb, &c.msg);
    if (rc < 0)
        return rc;
    notify_wait(&c.done);
    return c.result;
}

WF_EXPORT int weft_from_thread_run(weft_fn fn, void *arg)
{
    return call_loop(fn, arg, call_run);
}

WF_EXPORT int weft_from_thread_run_sync(weft_fn fn, void *arg)
{
    return call_loop(fn, arg, call_run_sync);
}

WF_EXPORT int weft_from_thread_check_cancelled(void)
{
    struct wf_job *job = worker_job;
    if (!job)
        return -EPERM;
    return atomic_load(&job->cancelled) ? -ECANCELED : 0;
}
