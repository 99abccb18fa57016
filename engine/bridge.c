/*
 * engine/bridge.c - the thread bridge: the per-process worker pool,
 * each loop's mailbox (the lock-free way in from other threads), and
 * weft_to_thread / weft_from_thread_*.
 *
 * Workers never touch a ring. A finished job, or a call from a worker, is
 * a message pushed onto the owning loop's mailbox (a Treiber stack); the
 * worker wakes the loop only when the loop said it may be asleep: it
 * sets `sleeping` before its ring wait and checks the stack after, the
 * worker pushes and then checks `sleeping` (both sequentially consistent,
 * so one of them sees the other). The wake-up is an eventfd write that a
 * multishot POLL_ADD on the ring turns into a completion (an
 * IORING_OP_READ of an eventfd is avoided: it hangs on some 6.15
 * kernels); WEFT_OPT_WAKE_MSG_RING uses IORING_OP_MSG_RING from a small
 * ring per worker instead, for comparison. A mailbox is reference-counted
 * so that a worker finishing an abandoned job after its loop has ended
 * finds it still there, marked dead.
 */
#include "engine/engine.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <unistd.h>

#define DEAD ((struct wf_msg *)1)

struct wf_mailbox {
    _Atomic(struct wf_msg *) head;
    _Atomic int sleeping;
    _Atomic unsigned refs;
    int efd;
    int ring_fd;              /* a dup of the loop's ring, for MSG_RING */
    bool msg_ring;
    bool armed;               /* the eventfd poll is in the ring */
    struct wf_completion poll;
    struct wf_completion msg;
};

/* ---- one-shot notifications between threads (a futex) ---- */

struct wf_notify {
    _Atomic uint32_t done;
};

static void notify_wait(struct wf_notify *n)
{
    while (!atomic_load_explicit(&n->done, memory_order_acquire))
        syscall(SYS_futex, &n->done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static void notify_post(struct wf_notify *n)
{
    atomic_store_explicit(&n->done, 1, memory_order_release);
    syscall(SYS_futex, &n->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/*
 * How long a worker that just finished watches for the next job, and a
 * loop waiting only for workers watches its mailbox, before either goes
 * to sleep in the kernel. A cross-thread wake-up costs several
 * microseconds here (a futex or an eventfd and a ring wake); a short spin
 * turns a run of to_thread calls into hand-offs through memory.
 */
#define SPIN_NS (20 * WEFT_USEC)

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spin until ready(arg) or SPIN_NS passes; true if it got ready. */
static bool spin_for(bool (*ready)(void *), void *arg)
{
    weft_time end = 0;
    for (unsigned i = 0;; i++) {
        if (ready(arg))
            return true;
        cpu_relax();
        if ((i & 63) == 0) {
            weft_time now = weft_now();
            if (!end)
                end = now + SPIN_NS;
            else if (now >= end)
                return false;
            /* Give the core away if another thread needs it (the very
             * worker we wait for may share it). */
            if (i)
                sched_yield();
        }
    }
}

/* ---- the mailbox ---- */

static void on_poll(struct wf_completion *c, int res, unsigned flags)
{
    struct wf_mailbox *mb = wf_container_of(c, struct wf_mailbox, poll);
    /*
     * The counter is never read back: a multishot poll posts on every
     * write's wake-up, readable or not before, so a read would only cost
     * a syscall per wake-up. (It would take 2^64 - 1 wakes to fill it.)
     */
    if (!(flags & IORING_CQE_F_MORE))
        mb->armed = false; /* re-armed after the reap, see wake_up */
}

static void on_msg(struct wf_completion *c, int res, unsigned flags)
{
    /* Nothing to do: the CQE woke the loop, which drains after the reap. */
}

static void arm(struct wf_loop *L)
{
    struct wf_mailbox *mb = L->mailbox;
    if (mb->armed) /* watched even with MSG_RING: non-workers write it */
        return;
    struct io_uring_sqe *sqe = wf_ring_sqe(&L->ring);
    io_uring_prep_poll_multishot(sqe, mb->efd, POLLIN);
    wf_ring_track(&L->ring, sqe, &mb->poll);
    mb->armed = true;
}

int wf_mailbox_open(struct wf_loop *L)
{
    if (L->mailbox)
        return 0;
    struct wf_mailbox *mb = calloc(1, sizeof *mb);
    if (!mb)
        return -ENOMEM;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0) {
        int rc = -errno;
        free(mb);
        return rc;
    }
    mb->ring_fd = -1;
    mb->msg_ring = (L->opts.flags & WEFT_OPT_WAKE_MSG_RING) &&
                   wf_ring_has_op(&L->ring, IORING_OP_MSG_RING);
    if (mb->msg_ring) {
        mb->ring_fd = fcntl(L->ring.ring.ring_fd, F_DUPFD_CLOEXEC, 0);
        if (mb->ring_fd < 0)
            mb->msg_ring = false;
    }
    mb->poll.fn = on_poll;
    mb->msg.fn = on_msg;
    mb->msg.untracked = true;
    atomic_init(&mb->head, NULL);
    atomic_init(&mb->refs, 1);
    L->mailbox = mb;
    arm(L);
    return 0;
}

void wf_mailbox_get(struct wf_mailbox *mb)
{
    atomic_fetch_add_explicit(&mb->refs, 1, memory_order_relaxed);
}

void wf_mailbox_put(struct wf_mailbox *mb)
{
    if (atomic_fetch_sub_explicit(&mb->refs, 1, memory_order_acq_rel) != 1)
        return;
    close(mb->efd);
    if (mb->ring_fd >= 0)
        close(mb->ring_fd);
    free(mb);
}

static __thread struct io_uring *wake_ring; /* a worker's, for MSG_RING */
static __thread bool is_worker;

static void wake(struct wf_mailbox *mb)
{
    /* Other threads (portal callers) have no ring to send from: eventfd. */
    if (mb->msg_ring && is_worker) {
        if (!wake_ring) {
            struct io_uring *r = malloc(sizeof *r);
            if (r && io_uring_queue_init(4, r, 0) == 0)
                wake_ring = r;
            else
                free(r);
        }
        if (wake_ring) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(wake_ring);
            io_uring_prep_msg_ring(sqe, mb->ring_fd, 0,
                                   (uint64_t)(uintptr_t)&mb->msg, 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_submit(wake_ring);
            struct io_uring_cqe *cqe;
            while (io_uring_peek_cqe(wake_ring, &cqe) == 0)
                io_uring_cqe_seen(wake_ring, cqe);
            return;
        }
    }
    uint64_t one = 1;
    ssize_t n = write(mb->efd, &one, sizeof one);
    (void)n;
}

/* From any thread. -ESHUTDOWN once the loop has ended. */
int wf_mailbox_post(struct wf_mailbox *mb, struct wf_msg *m)
{
    struct wf_msg *h = atomic_load_explicit(&mb->head, memory_order_relaxed);
    do {
        if (h == DEAD)
            return -ESHUTDOWN;
        m->next = h;
    } while (!atomic_compare_exchange_weak(&mb->head, &h, m));
    if (atomic_load(&mb->sleeping))
        wake(mb);
    return 0;
}

/* Run every message, oldest first (the stack holds them newest first). */
static void run_msgs(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_msg *fifo = NULL;
    while (m) {
        struct wf_msg *next = m->next;
        m->next = fifo;
        fifo = m;
        m = next;
    }
    while (fifo) {
        struct wf_msg *next = fifo->next;
        fifo->fn(L, fifo);
        fifo = next;
    }
}

static bool msg_waiting(void *mb)
{
    return atomic_load_explicit(&((struct wf_mailbox *)mb)->head,
                                memory_order_relaxed) != NULL;
}

bool wf_mailbox_pending(struct wf_loop *L)
{
    return msg_waiting(L->mailbox);
}

bool wf_mailbox_sleep(struct wf_loop *L)
{
    struct wf_mailbox *mb = L->mailbox;
    arm(L); /* its multishot poll may have ended in the last reap */
    /* Only workers can wake us: watch for them a little first. */
    if (L->jobs_out && L->ring.inflight <= 1 && spin_for(msg_waiting, mb))
        return false;
    atomic_store(&mb->sleeping, 1);
    return atomic_load(&mb->head) == NULL;
}

void wf_mailbox_wake_up(struct wf_loop *L)
{
    struct wf_mailbox *mb = L->mailbox;
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
    if (atomic_load_explicit(&mb->head, memory_order_relaxed))
        run_msgs(L, atomic_exchange_explicit(&mb->head, NULL,
                                             memory_order_acquire));
    arm(L);
}

void wf_mailbox_close(struct wf_loop *L)
{
    struct wf_mailbox *mb = L->mailbox;
    if (!mb)
        return;
    L->mailbox = NULL;
    struct wf_msg *m = atomic_exchange(&mb->head, DEAD);
    run_msgs(NULL, m);
    wf_mailbox_put(mb);
}

/* ---- the worker pool, one per process ---- */

struct wf_job_wait;

struct wf_job {
    struct wf_msg msg;        /* "done", to the loop */
    weft_fn fn;
    void *arg;
    int result;
    struct wf_mailbox *mb;
    weft_limiter *limiter;
    struct wf_job_wait *waiter; /* on the waiting task's stack; NULL once
                                   abandoned (loop thread only) */
    struct wf_job *qnext;     /* in the pool's queue */
    _Atomic int cancelled;
    bool abandon;             /* the job is on the heap, and may be left */
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
    _Atomic size_t queued;       /* read without the lock by spinners */
    unsigned nthreads;
    unsigned nidle;              /* workers free for a job (each takes one) */
    unsigned nwaiting;           /* of those, asleep on cv (the rest spin) */
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
        free(job); /* the loop has ended; only abandoned jobs get here */
    wf_mailbox_put(mb);
}

static void *worker_main(void *unused)
{
    is_worker = true;
    pthread_mutex_lock(&pool.mu);
    pool.nidle++;
    for (;;) {
        if (!pool.head) {
            /* Watch for a while: a job queued meanwhile needs no wake-up. */
            pthread_mutex_unlock(&pool.mu);
            spin_for(job_queued, NULL);
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
                if (wake_ring) {
                    io_uring_queue_exit(wake_ring);
                    free(wake_ring);
                    wake_ring = NULL;
                }
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
        free(job);
        return;
    }
    L->jobs_out--;
    if (!job->waiter) { /* abandoned: its token is held until now */
        weft_limiter_release_on_behalf_of(job->limiter, job);
        free(job);
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

int wf_to_thread(weft_fn fn, void *arg, weft_limiter *limiter,
                 unsigned flags, bool *submitted)
{
    struct weft_task *t;
    if (submitted)
        *submitted = false;
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    if (!fn || (flags & ~WEFT_ABANDON_ON_CANCEL))
        return -EINVAL;
    struct wf_loop *L = t->loop;
    rc = wf_mailbox_open(L);
    if (rc < 0)
        return rc;
    struct wf_job local, *job = &local;
    bool abandon = flags & WEFT_ABANDON_ON_CANCEL;
    if (abandon && !(job = malloc(sizeof *job)))
        return -ENOMEM;
    memset(job, 0, sizeof *job);
    job->msg.fn = job_done;
    job->fn = fn;
    job->arg = arg;
    job->mb = L->mailbox;
    job->limiter = limiter ? limiter : weft_default_thread_limiter();
    job->abandon = abandon;
    atomic_init(&job->cancelled, 0);
    struct wf_job_wait jw = {.wait = {.cancel = job_cancel,
                                      .what = "weft_to_thread"},
                             .job = job};
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
            free(job);
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
        free(job);
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
    weft_scope *attach = !job->abandon ? job->waiter->wait.task->scope
                                       : &L->system;
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

/* ---- portals ---- */

struct weft_portal {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight;
    bool closing, started;
    int rc;                  /* weft_run's, if the loop did not start */
    struct wf_loop *loop;
    struct wf_mailbox *mb;
    weft_group *group;
    bool stop;               /* set by the close message */
    struct weft_task *root;
    weft_options opts;
    bool has_opts;
};

static int portal_main(void *arg)
{
    struct weft_portal *p = arg;
    struct wf_loop *L = wf_cur;
    int rc = wf_mailbox_open(L);
    weft_group g;
    weft_group_enter(&g);
    pthread_mutex_lock(&p->mu);
    p->loop = L;
    p->root = wf_self();
    p->group = &g;
    if (rc == 0) {
        p->mb = L->mailbox;
        wf_mailbox_get(p->mb);
    }
    p->rc = rc;
    p->started = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    while (rc == 0 && !p->stop) {
        struct wf_wait w = {.what = "portal: waiting for calls"};
        wf_block(&w);
    }
    return weft_group_exit(&g, 0);
}

static void *portal_thread(void *arg)
{
    struct weft_portal *p = arg;
    int rc = weft_run(portal_main, p, p->has_opts ? &p->opts : NULL);
    pthread_mutex_lock(&p->mu);
    if (!p->started) {
        p->rc = rc;
        p->started = true;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

WF_EXPORT int weft_portal_open(weft_portal **out, const weft_options *opts)
{
    if (!out)
        return -EINVAL;
    struct weft_portal *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (opts) {
        p->opts = *opts;
        p->has_opts = true;
    }
    int rc = -pthread_create(&p->thread, NULL, portal_thread, p);
    if (rc == 0) {
        pthread_mutex_lock(&p->mu);
        while (!p->started)
            pthread_cond_wait(&p->cv, &p->mu);
        rc = p->rc;
        pthread_mutex_unlock(&p->mu);
        if (rc < 0)
            pthread_join(p->thread, NULL);
    }
    if (rc < 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

struct wf_portal_call {
    struct wf_msg msg;
    struct weft_portal *p;
    weft_fn fn;
    void *arg;
    int result;
    struct wf_notify done;
};

static int portal_task(void *arg)
{
    struct wf_portal_call *c = arg;
    c->result = c->fn(c->arg);
    notify_post(&c->done);
    return 0; /* one call's failure is its caller's, not the portal's */
}

static void portal_call_run(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_portal_call *c = wf_container_of(m, struct wf_portal_call, msg);
    int rc = L ? wf_spawn_into(L, c->p->group, portal_task, c) : -ESHUTDOWN;
    if (rc < 0) {
        c->result = rc;
        notify_post(&c->done);
    }
}

WF_EXPORT int weft_portal_call(weft_portal *p, weft_fn fn, void *arg)
{
    if (!p || !fn)
        return -EINVAL;
    if (wf_cur && wf_cur == p->loop)
        return -EDEADLK; /* it would wait for itself */
    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        return -EBADF;
    }
    p->inflight++;
    pthread_mutex_unlock(&p->mu);
    struct wf_portal_call c = {
        .msg = {.fn = portal_call_run}, .p = p, .fn = fn, .arg = arg};
    atomic_init(&c.done.done, 0);
    int rc = wf_mailbox_post(p->mb, &c.msg);
    if (rc == 0) {
        notify_wait(&c.done);
        rc = c.result;
    }
    pthread_mutex_lock(&p->mu);
    if (--p->inflight == 0 && p->closing)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

struct wf_portal_stop {
    struct wf_msg msg;
    struct weft_portal *p;
};

static void portal_stop_run(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_portal_stop *s = wf_container_of(m, struct wf_portal_stop, msg);
    if (L) {
        s->p->stop = true;
        wf_wake(s->p->root);
    }
}

WF_EXPORT int weft_portal_close(weft_portal *p)
{
    if (!p)
        return -EINVAL;
    if (wf_cur && wf_cur == p->loop)
        return -EDEADLK;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    while (p->inflight)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    struct wf_portal_stop s = {.msg = {.fn = portal_stop_run}, .p = p};
    int rc = wf_mailbox_post(p->mb, &s.msg);
    pthread_join(p->thread, NULL);
    wf_mailbox_put(p->mb);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    return rc < 0 ? rc : 0;
}
