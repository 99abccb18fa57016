/* SPDX-License-Identifier: MIT */
/*
 * engine/op.c - ring operations awaited by tasks, and weft/uring.h.
 *
 * The invariant: a task never returns from an operation before its
 * terminal CQE. A cancellation sends ASYNC_CANCEL and keeps waiting (for
 * the cancel's answer too, and sends it again if it missed); if the
 * operation completed anyway, its result is returned and the next
 * checkpoint reports the cancellation.
 */
#include "engine/engine.h"

#include <string.h>
#include <weft/uring.h>

/*
 * The last CQE owed readies the task. Under WEFT_FAULT_DELAY it may be
 * held back a round: the awaits of a loop with faults get the *_faulty
 * handlers below, chosen once in wf_io_await, so that a loop without
 * faults pays nothing here (not even a load of t->loop->faults).
 */
static inline void finish_one(struct wf_io *a, bool faulty)
{
    if (--a->pending)
        return;
    struct weft_task *t = a->wait.task;
    if (faulty && wf_faults_hold(t->loop, t))
        return; /* readied a round later (engine/faults.c) */
    wf_wake(t);
}

/*
 * A one-shot operation posts one CQE. A zero-copy send posts two: its
 * result (with F_MORE), then a notification (F_NOTIF, terminal) once the
 * kernel no longer needs the buffer; the result is the first one's.
 * True at the terminal CQE.
 */
static inline bool op_record(struct wf_io *a, int res, unsigned flags)
{
    a->answered = true;
    if (flags & IORING_CQE_F_MORE) {
        a->res = res;
        return false;
    }
    if (!(flags & IORING_CQE_F_NOTIF))
        a->res = res;
    a->cqe_flags = flags;
    return true;
}

static void op_done(struct wf_completion *c, int res, unsigned flags)
{
    struct wf_io *a = wf_container_of(c, struct wf_io, op);
    if (op_record(a, res, flags))
        finish_one(a, false);
}

static void op_done_faulty(struct wf_completion *c, int res, unsigned flags)
{
    struct wf_io *a = wf_container_of(c, struct wf_io, op);
    if (op_record(a, res, flags))
        finish_one(a, true);
}

/* The task's extra part (engine.h) knows which operation it serves. */
static inline struct wf_io *timeout_io(struct wf_completion *c)
{
    return wf_container_of(c, struct wf_io_extra, timeout)->io;
}

static void timeout_done(struct wf_completion *c, int res, unsigned flags)
{
    struct wf_io *a = timeout_io(c);
    a->tres = res;
    finish_one(a, false);
}

static void timeout_done_faulty(struct wf_completion *c, int res,
                                unsigned flags)
{
    struct wf_io *a = timeout_io(c);
    a->tres = res;
    finish_one(a, true);
}

/*
 * Cancelling an awaited operation. The kernel's answer to each
 * ASYNC_CANCEL comes back to the task's io_extra.cancel (no
 * CQE_SKIP_SUCCESS), and the task waits for it as for the operation's own
 * CQE, so both records are still there when it comes.
 *
 * -ENOENT before the operation has posted anything means the cancel
 * missed it, and it is sent again after the reap. Linux 6.1 does miss:
 * a pipe write (pipes had no FMODE_NOWAIT then) is tried without
 * blocking, polled, found ready, and retried from task work on its way
 * to io-wq; an ASYNC_CANCEL submitted in between finds it in none of the
 * places it searches, and the write then blocks in io-wq for good (the
 * child that would read it waits for its own stdout to be read). Once
 * it has landed, the next cancel finds it (-EALREADY: the worker is
 * signalled, the write ends short). -ENOENT after a CQE (a zero-copy
 * send waiting for its notification) is final: nothing is left to
 * cancel.
 */
static void cancel_answered(struct wf_completion *c, int res, unsigned flags);

/* again: a resend, which the CANCEL_MISS fault never touches (the
 * kernel misses an operation only while it moves between queues). */
static void cancel_send(struct wf_io *a, bool again)
{
    struct wf_loop *L = a->wait.task->loop;
    struct wf_io_extra *x = &a->wait.task->io_extra;
    uint64_t target = (uint64_t)(uintptr_t)&a->op;
    if (wf_unlikely(L->faults) && !again && wf_faults_cancel_miss(L))
        target = (uint64_t)(uintptr_t)&x->cancel; /* no operation's */
    x->cancel.fn = cancel_answered;
    wf_ring_cancel_answered(&L->ring, target, &x->cancel);
}

static void recancel(struct wf_defer *d)
{
    struct wf_io *a = wf_container_of(d, struct wf_io_extra, recancel)->io;
    /* The miss kept its place in pending: for the resend, or given up
     * here if the operation's CQE came in the same reap. */
    if (a->answered)
        finish_one(a, a->wait.task->loop->faults != NULL);
    else
        cancel_send(a, true);
}

static void cancel_answered(struct wf_completion *c, int res, unsigned flags)
{
    (void)flags;
    struct wf_io_extra *x = wf_container_of(c, struct wf_io_extra, cancel);
    struct wf_io *a = x->io;
    struct wf_loop *L = a->wait.task->loop;
    if (res == -ENOENT && !a->answered && !x->recancel.queued) {
        x->recancel.fn = recancel;
        wf_defer(L, &x->recancel); /* no SQE inside a handler */
        return;
    }
    finish_one(a, L->faults != NULL);
}

/* Send an ASYNC_CANCEL for io unless it has already answered. The first
 * one readies the task's extra part for the answers. */
static void io_cancel(struct wf_io *a)
{
    /* A polled operation cannot be cancelled (wf_io_await_polled): it
     * ends by itself, soon. */
    if (a->answered || a->op.polled)
        return;
    struct wf_io_extra *x = &a->wait.task->io_extra;
    x->io = a;
    if (!a->cancels++)
        x->recancel.queued = false;
    a->pending++;
    cancel_send(a, false);
}

/*
 * The virtual clock's deadline: the kernel knows only real time, so the
 * timer heap cancels the operation, and the CQE that follows (-ECANCELED)
 * reads as the linked timeout's would (-ETIME, so -ETIMEDOUT).
 */
static void vdeadline_fired(struct weft__timer *tm)
{
    struct wf_io *a = wf_container_of(tm, struct wf_io_extra, vtimer)->io;
    a->tres = -ETIME;
    if (!a->wait.cancelling && !a->killed)
        io_cancel(a);
}

static void op_cancel(struct wf_wait *w)
{
    io_cancel(wf_container_of(w, struct wf_io, wait));
}

struct io_uring_sqe *wf_sqe(void)
{
    struct wf_loop *L = wf_cur;
    if (!L || !L->current)
        return NULL;
    wf_room_wait(L, 2);
    /* Two free slots: await_until's linked timeout must follow at once. */
    wf_ring_reserve(&L->ring, 2);
    /* Not zeroed: every io_uring_prep_* call writes all of it. */
    return wf_ring_take(&L->ring);
}

/* weft/uring.h: the ring is io_uring's only on that backend. */
static inline bool raw_ring(void)
{
    return wf_cur && !wf_cur->ring.ep;
}

WF_EXPORT struct io_uring_sqe *weft_uring_sqe(void)
{
    return raw_ring() ? wf_sqe() : NULL;
}

/* An SQE that will not be awaited: take it back, or make it a no-op (on
 * the polled ring the kernel refuses a NOP; its failure's CQE has
 * user_data 0, which nobody waits for). */
void wf_sqe_drop(struct wf_loop *L, struct io_uring_sqe *sqe)
{
    struct wf_ring *r = &L->ring;
    if (L->poll && sqe >= L->poll->ring.sq.sqes &&
        sqe < L->poll->ring.sq.sqes + L->poll->sq_entries)
        r = L->poll;
    if (wf_ring_unget(r, sqe))
        return;
    io_uring_prep_nop(sqe);
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
}

static inline bool cancel_result(int res)
{
    return res < 0 && (res == -ECANCELED || res == -EINTR);
}

/*
 * Under Valgrind: the kernel writes a read's buffer from io_uring, where
 * Valgrind cannot see it, so the bytes would look uninitialised to
 * Memcheck. Note what an operation may write before it is submitted (the
 * SQE is the kernel's after that), and mark it written once it is done.
 */
#ifdef WEFT_HAVE_VALGRIND_H
#include <sys/socket.h>
#include <sys/uio.h>
#include <valgrind/memcheck.h>

struct vg_note {
    uint8_t op;
    void *addr, *addr2;
    uint32_t len;
};

static void vg_note(struct vg_note *n, const struct io_uring_sqe *sqe)
{
    /* A buffer the kernel picks is marked where its address is known
     * (engine/bufs.c). */
    n->op = sqe->flags & IOSQE_BUFFER_SELECT ? IORING_OP_NOP : sqe->opcode;
    n->addr = (void *)(uintptr_t)sqe->addr;
    n->addr2 = (void *)(uintptr_t)sqe->addr2;
    n->len = sqe->len;
}

static void vg_iov_written(const struct iovec *iov, size_t n, size_t bytes)
{
    for (size_t i = 0; i < n && bytes; i++) {
        size_t k = iov[i].iov_len < bytes ? iov[i].iov_len : bytes;
        VALGRIND_MAKE_MEM_DEFINED(iov[i].iov_base, k);
        bytes -= k;
    }
}

static void vg_written(const struct vg_note *n, int res)
{
    if (res < 0)
        return;
    switch (n->op) {
    case IORING_OP_READ:
    case IORING_OP_READ_FIXED:
    case IORING_OP_RECV:
        VALGRIND_MAKE_MEM_DEFINED(n->addr, (size_t)res);
        break;
    case IORING_OP_READV:
        vg_iov_written(n->addr, n->len, (size_t)res);
        break;
    case IORING_OP_RECVMSG: {
        struct msghdr *mh = n->addr;
        VALGRIND_MAKE_MEM_DEFINED(mh, sizeof *mh);
        vg_iov_written(mh->msg_iov, mh->msg_iovlen, (size_t)res);
        if (mh->msg_name)
            VALGRIND_MAKE_MEM_DEFINED(mh->msg_name, mh->msg_namelen);
        if (mh->msg_control)
            VALGRIND_MAKE_MEM_DEFINED(mh->msg_control, mh->msg_controllen);
        break;
    }
    case IORING_OP_STATX:
        VALGRIND_MAKE_MEM_DEFINED(n->addr2, sizeof(struct statx));
        break;
    case IORING_OP_FILES_UPDATE:
        VALGRIND_MAKE_MEM_DEFINED(n->addr, n->len * sizeof(int));
        break;
    default:
        break;
    }
}
#else
struct vg_note {
    char unused;
};
#define vg_note(n, sqe) ((void)(n), (void)(sqe))
#define vg_written(n, res) ((void)(n), (void)(res))
#endif

/* What every await sets before it blocks, field by field: the timeout's
 * half is set only when it is used. */
static inline void io_init(struct wf_io *io, const char *what)
{
    io->op.fn = op_done;
    io->op.untracked = false;
    io->op.standing = false;
    io->op.polled = false;
    io->wait.cancel = op_cancel;
    io->wait.what = what;
    io->res = 0;
    io->tres = 0;
    io->pending = 1;
    io->cancels = 0;
    io->killed = false;
    io->answered = false;
}

/* A result that says "cancelled" reads as the deadline's, or the scope's
 * (or the close's), when either asked for it. */
static inline int io_result(const struct wf_io *io)
{
    int res = io->res;
    if (wf_likely(!cancel_result(res)))
        return res;
    if (io->tres == -ETIME)
        return -ETIMEDOUT;
    if (io->wait.cancelling || io->killed)
        return -ECANCELED;
    return res;
}

/*
 * The common await: no deadline, no fault injection, no Valgrind. It is
 * kept apart from io_full so that its frame stays small (no timespec, no
 * Valgrind note, few saved registers), and it blocks and switches to the
 * next task inline (no frames of wf_block's between it and the switch): a
 * task touches fewer lines of its stack per operation, and 64 tasks'
 * stacks must share the L1.
 */
static inline __attribute__((always_inline)) int
io_plain(struct wf_loop *L, struct weft_task *t, struct wf_io *io,
         struct io_uring_sqe *sqe, const char *what)
{
    io_init(io, what);
    /* weft needs the terminal CQE, whatever the caller asked for. */
    sqe->flags &= ~(IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_LINK);
    wf_ring_track(&L->ring, sqe, &io->op);
    wf_block_inline(L, t, &io->wait);
    io->pending = 0;
    return io_result(io);
}

/* Any await: a deadline (a linked timeout, or on a virtual clock a timer),
 * fault injection's hooks. */
static int io_run(struct wf_loop *L, struct wf_io *io, struct io_uring_sqe *sqe,
                  weft_time deadline, const char *what)
{
    int rc;
    io_init(io, what);
    if (wf_unlikely(L->faults)) {
        if (wf_faults_submit(L, sqe, &rc)) {
            /* An error instead of the operation: the kernel never sees
             * it, so nothing was moved. Still a schedule point, as the
             * real operation would have been. */
            wf_sqe_drop(L, sqe);
            io->pending = 0;
            wf_yield();
            return rc;
        }
        io->op.fn = op_done_faulty;
    }
    /* weft needs the terminal CQE, whatever the caller asked for. */
    sqe->flags &= ~(IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_LINK);
    wf_ring_track(&L->ring, sqe, &io->op);
    struct __kernel_timespec ts;
    struct wf_io_extra *x = &L->current->io_extra;
    bool vdeadline = deadline != WEFT_FOREVER && L->virt;
    if (vdeadline) {
        x->io = io;
        x->vtimer = (struct weft__timer){.fire = vdeadline_fired};
        wf_timer_arm(L, &x->vtimer, deadline);
    } else if (deadline != WEFT_FOREVER) {
        x->io = io;
        x->timeout.fn =
            wf_unlikely(L->faults) ? timeout_done_faulty : timeout_done;
        x->timeout.untracked = false;
        x->timeout.standing = false;
        sqe->flags |= IOSQE_IO_LINK;
        ts.tv_sec = deadline / WEFT_SEC;
        ts.tv_nsec = deadline % WEFT_SEC;
        if (deadline < 0)
            ts.tv_sec = ts.tv_nsec = 0;
        struct io_uring_sqe *tsqe = wf_ring_sqe(&L->ring);
        io_uring_prep_link_timeout(tsqe, &ts, IORING_TIMEOUT_ABS);
        wf_ring_track(&L->ring, tsqe, &x->timeout);
        io->pending = 2;
    }
    wf_block(&io->wait);
    io->pending = 0;
    if (vdeadline)
        wf_timer_disarm(L, &x->vtimer);
    return io_result(io);
}

/* Out of line: the hot path's frame holds none of this. */
static __attribute__((noinline)) int
io_full(struct wf_loop *L, struct wf_io *io, struct io_uring_sqe *sqe,
        weft_time deadline, const char *what)
{
    if (!L->valgrind)
        return io_run(L, io, sqe, deadline, what);
    struct vg_note vg;
    vg_note(&vg, sqe);
    int rc = io_run(L, io, sqe, deadline, what);
    vg_written(&vg, io->res);
    return rc;
}

int wf_io_await(struct wf_io *io, struct io_uring_sqe *sqe, weft_time deadline,
                const char *what)
{
    struct weft_task *t;
    int rc = wf_entry(&t, sqe != NULL, false);
    if (rc == -ECANCELED) /* t is set: the SQE goes back unsubmitted */
        wf_sqe_drop(t->loop, sqe);
    if (rc < 0)
        return rc;
    struct wf_loop *L = t->loop;
    if (wf_likely(deadline == WEFT_FOREVER && !L->faults && !L->valgrind))
        return io_plain(L, t, io, sqe, what);
    return io_full(L, io, sqe, deadline, what);
}

struct io_uring_sqe *wf_poll_sqe(void)
{
    struct wf_loop *L = wf_cur;
    struct wf_ring *r = L ? L->poll : NULL;
    /* Fault injection works on the main ring's awaits: with it on, every
     * operation goes there. */
    if (!r || !L->current || L->faults || r->inflight >= r->max_inflight)
        return NULL;
    return wf_ring_sqe(r);
}

int wf_io_await_polled(struct wf_io *io, struct io_uring_sqe *sqe,
                       const char *what)
{
    struct weft_task *t;
    int rc = wf_entry(&t, sqe != NULL, false);
    if (rc == -ECANCELED)
        wf_sqe_drop(t->loop, sqe);
    if (rc < 0)
        return rc;
    struct wf_loop *L = t->loop;
    io_init(io, what);
    io->op.polled = true;
    sqe->flags &= ~(IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_LINK);
    struct vg_note vg;
    vg_note(&vg, sqe);
    wf_ring_track(L->poll, sqe, &io->op);
    wf_block(&io->wait);
    io->pending = 0;
    if (L->valgrind)
        vg_written(&vg, io->res);
    if (io->res == -EOPNOTSUPP)
        L->npoll_refused++;
    else
        L->npolled++;
    return io_result(io);
}

int wf_await(struct io_uring_sqe *sqe, const char *what)
{
    struct wf_io io;
    return wf_io_await(&io, sqe, WEFT_FOREVER, what);
}

void wf_io_kill(struct wf_io *io)
{
    if (!io->pending || io->killed || io->wait.cancelling)
        return;
    io->killed = true;
    io_cancel(io);
}

struct io_uring_sqe *wf_standing_sqe(struct wf_loop *L)
{
    return wf_ring_sqe(&L->ring);
}

void wf_standing_start(struct wf_loop *L, struct io_uring_sqe *sqe,
                       struct wf_completion *c)
{
    c->untracked = false;
    wf_ring_track_standing(&L->ring, sqe, c);
}

void wf_standing_cancel(struct wf_loop *L, struct wf_completion *c)
{
    wf_ring_cancel(&L->ring, c);
}

int wf_files_table(struct wf_loop *L, unsigned n)
{
    return wf_ring_files_table(&L->ring, n);
}

void wf_files_clear(struct wf_loop *L, int slot)
{
    wf_ring_files_clear(&L->ring, slot);
}

WF_EXPORT int weft_uring_await(struct io_uring_sqe *sqe)
{
    if (!sqe && wf_cur && wf_cur->ring.ep)
        return -ENOTSUP;
    return wf_await(sqe, "io_uring operation");
}

WF_EXPORT int weft_uring_await_until(struct io_uring_sqe *sqe,
                                     weft_time deadline)
{
    if (!sqe && wf_cur && wf_cur->ring.ep)
        return -ENOTSUP;
    struct wf_io io;
    return wf_io_await(&io, sqe, deadline, "io_uring operation");
}

WF_EXPORT unsigned weft_uring_setup_flags(void)
{
    struct weft_task *t = wf_self();
    return t && raw_ring() ? t->loop->ring.setup_flags : 0;
}

bool wf_has_op(int opcode)
{
    struct weft_task *t = wf_self();
    return t && wf_ring_has_op(&t->loop->ring, opcode);
}

WF_EXPORT bool weft_uring_has_op(int opcode)
{
    struct weft_task *t = wf_self();
    return t && raw_ring() && wf_ring_has_op(&t->loop->ring, opcode);
}
