/* SPDX-License-Identifier: MIT */
/*
 * engine/mailbox.c - each loop's mailbox: the lock-free way in from other
 * threads (workers, portal callers), and how they wake a sleeping loop.
 *
 * A message is pushed onto the owning loop's mailbox (a Treiber stack);
 * the sender wakes the loop only when the loop said it may be asleep: it
 * sets `sleeping` before its ring wait and checks the stack after, the
 * sender pushes and then checks `sleeping` (both sequentially consistent,
 * so one of them sees the other). The wake-up is an eventfd write that a
 * multishot POLL_ADD on the ring turns into a completion (an
 * IORING_OP_READ of an eventfd is avoided: it hangs on some 6.15
 * kernels); WEFT_OPT_WAKE_MSG_RING uses IORING_OP_MSG_RING from a small
 * ring per worker instead, for comparison. A mailbox is reference-counted
 * so that a worker finishing an abandoned job after its loop has ended
 * finds it still there, marked dead.
 */
#include "engine/bridge.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#define DEAD ((struct wf_msg *)1)

struct wf_mailbox {
    _Atomic(struct wf_msg *) head;
    _Atomic int sleeping;
    _Atomic unsigned refs;
    int efd;
    int ring_fd; /* a dup of the loop's ring, for MSG_RING */
    bool msg_ring;
    bool armed; /* the eventfd poll is in the ring */
    struct wf_completion poll;
    struct wf_completion msg;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

bool wf_spin_for(bool (*ready)(void *), void *arg)
{
    weft_time end = 0;
    for (unsigned i = 0;; i++) {
        if (ready(arg))
            return true;
        cpu_relax();
        if ((i & 63) == 0) {
            weft_time now = wf_real_now(); /* real even on a virtual loop */
            if (!end)
                end = now + WF_SPIN_NS;
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
        mb->armed = false; /* re-armed after the reap, see wf_mailbox_drain */
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
    struct io_uring_sqe *sqe = wf_standing_sqe(L);
    io_uring_prep_poll_multishot(sqe, mb->efd, POLLIN);
    wf_standing_start(L, sqe, &mb->poll); /* takes none of the tasks' room */
    mb->armed = true;
}

int wf_mailbox_open(struct wf_loop *L)
{
    if (L->mailbox)
        return 0;
    struct wf_mailbox *mb = wf_calloc(1, sizeof *mb);
    if (!mb)
        return -ENOMEM;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0) {
        int rc = -errno;
        wf_free(mb);
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
    wf_close(mb->efd);
    if (mb->ring_fd >= 0)
        wf_close(mb->ring_fd);
    wf_free(mb);
}

static __thread struct io_uring *wake_ring; /* a worker's, for MSG_RING */
static __thread bool is_worker;

static void wake(struct wf_mailbox *mb)
{
    /* Other threads (portal callers) have no ring to send from: eventfd. */
    if (mb->msg_ring && is_worker) {
        if (!wake_ring) {
            struct io_uring *r =
                malloc(sizeof *r); /* the worker thread's: not counted */
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

/*
 * From any thread. -ESHUTDOWN once the loop has ended. The load that sees
 * DEAD is an acquire (pairing with wf_mailbox_close's exchange), so what
 * the loop thread did before it closed (a cancelled job's last writes) is
 * visible to a caller that then frees the message (pool.c run_job).
 */
int wf_mailbox_post(struct wf_mailbox *mb, struct wf_msg *m)
{
    struct wf_msg *h = atomic_load_explicit(&mb->head, memory_order_acquire);
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

unsigned wf_mailbox_standing(struct wf_loop *L)
{
    return L->mailbox && L->mailbox->armed ? 1 : 0;
}

bool wf_mailbox_pending(struct wf_loop *L)
{
    return msg_waiting(L->mailbox);
}

bool wf_mailbox_may_sleep(struct wf_loop *L)
{
    struct wf_mailbox *mb = L->mailbox;
    arm(L); /* its multishot poll may have ended in the last reap */
    /* Only other threads can wake us (workers, other cores, a shared
     * channel's other side): watch for them a little first. */
    if ((L->jobs_out || L->remote_waits ||
         (wf_unlikely(L->rt) && wf_cores_spin(L))) &&
        L->ring.inflight <= 1 && wf_spin_for(msg_waiting, mb))
        return false;
    atomic_store(&mb->sleeping, 1);
    return atomic_load(&mb->head) == NULL;
}

void wf_mailbox_drain(struct wf_loop *L)
{
    struct wf_mailbox *mb = L->mailbox;
    atomic_store_explicit(&mb->sleeping, 0, memory_order_relaxed);
    if (atomic_load_explicit(&mb->head, memory_order_relaxed))
        run_msgs(
            L, atomic_exchange_explicit(&mb->head, NULL, memory_order_acquire));
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

void wf_mailbox_worker_start(void)
{
    is_worker = true;
}

void wf_mailbox_worker_exit(void)
{
    if (wake_ring) {
        io_uring_queue_exit(wake_ring);
        free(wake_ring);
        wake_ring = NULL;
    }
}
