/* SPDX-License-Identifier: MIT */
/*
 * uring/ring.c - ring set-up with the best task-run mode the kernel has,
 * SQE supply that flushes instead of failing, and the one pump that
 * submits, waits and reaps.
 */
#include "uring/ring.h"

#include "epoll/epoll.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif

enum { MODE_AUTO, MODE_DEFER, MODE_COOP, MODE_PLAIN };

/* Features weft cannot do without (all in 5.11+). */
static const struct {
    unsigned bit;
    const char *name;
} required[] = {
    {IORING_FEAT_NODROP, "NODROP"},
    {IORING_FEAT_SUBMIT_STABLE, "SUBMIT_STABLE"},
    {IORING_FEAT_FAST_POLL, "FAST_POLL"},
    {IORING_FEAT_EXT_ARG, "EXT_ARG"},
};

/* Set-up flags per mode, best first; each is tried until one is taken. */
static const unsigned mode_flags[][2] = {
    [MODE_DEFER] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                        IORING_SETUP_TASKRUN_FLAG,
                    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN},
    [MODE_COOP] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
                       IORING_SETUP_TASKRUN_FLAG,
                   IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG},
    [MODE_PLAIN] = {0, 0},
};

static int try_setup(struct wf_ring *r, const struct wf_ring_params *rp,
                     unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags | rp->flags | IORING_SETUP_CQSIZE |
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CLAMP;
    p.cq_entries = rp->cq;
    p.sq_thread_idle = rp->sq_thread_idle;
    if (rp->wq_fd >= 0) {
        p.flags |= IORING_SETUP_ATTACH_WQ;
        p.wq_fd = (unsigned)rp->wq_fd;
    }
    int rc = io_uring_queue_init_params(rp->sq, &r->ring, &p);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (!(p.features & required[i].bit)) {
            io_uring_queue_exit(&r->ring);
            return -EOPNOTSUPP;
        }
    }
    r->setup_flags = p.flags;
    r->sq_entries = p.sq_entries;
    r->cq_entries = p.cq_entries;
    return 0;
}

static int setup_mode(struct wf_ring *r, const struct wf_ring_params *rp,
                      unsigned mode)
{
    int rc = -EINVAL;
    for (int i = 0; i < 2; i++) {
        unsigned f = mode_flags[mode][i];
        rc = try_setup(r, rp, f);
        if (rc != -EINVAL || f == 0)
            break;
    }
    return rc;
}

static void probe_ops(struct wf_ring *r)
{
    memset(r->ops, 0, sizeof r->ops);
    struct io_uring_probe *p = io_uring_get_probe_ring(&r->ring);
    if (!p)
        return;
    for (int op = 0; op < p->ops_len && op < 256; op++)
        if (io_uring_opcode_supported(p, op))
            r->ops[op / 64] |= 1ull << (op % 64);
    io_uring_free_probe(p);
}

static void explain(int rc, char *why, unsigned len)
{
    if (rc == -EOPNOTSUPP) {
        snprintf(why, len,
                 "io_uring unavailable: the kernel's io_uring "
                 "lacks NODROP, SUBMIT_STABLE, FAST_POLL or "
                 "EXT_ARG (Linux 5.11 or later is needed)");
        return;
    }
    if (rc == -ENOMEM) {
        snprintf(why, len,
                 "io_uring unavailable: out of memory making the "
                 "ring (RLIMIT_MEMLOCK, or too many rings)");
        return;
    }
    /* The ring is a file descriptor: io_uring works, fds ran out. */
    if (rc == -EMFILE) {
        snprintf(why, len,
                 "cannot make the ring (%s): the process is out "
                 "of file descriptors (RLIMIT_NOFILE, see "
                 "ulimit -n; close some or raise the limit)",
                 strerror(-rc));
        return;
    }
    if (rc == -ENFILE) {
        snprintf(why, len,
                 "cannot make the ring (%s): the system is out "
                 "of file descriptors (the sysctl fs.file-max)",
                 strerror(-rc));
        return;
    }
    int disabled = -1;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = -1;
        fclose(f);
    }
    int seccomp = 0;
    f = fopen("/proc/self/status", "re");
    if (f) {
        char line[128];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Seccomp: %d", &seccomp) == 1)
                break;
        fclose(f);
    }
    if (disabled > 0)
        snprintf(why, len,
                 "io_uring unavailable (%s): disabled by the "
                 "sysctl kernel.io_uring_disabled=%d",
                 strerror(-rc), disabled);
    else if (seccomp)
        snprintf(why, len,
                 "io_uring unavailable (%s): io_uring_setup is "
                 "blocked by a seccomp filter (a container's "
                 "default profile does this)",
                 strerror(-rc));
    else
        snprintf(why, len,
                 "io_uring unavailable (%s): io_uring_setup "
                 "failed; the kernel may lack CONFIG_IO_URING",
                 strerror(-rc));
}

static int uring_init(struct wf_ring *r, const struct wf_ring_params *rp,
                      char *why, unsigned whylen)
{
    unsigned sq = rp->sq, cq = rp->cq, mode = rp->mode;
    int rc;
    /* SQPOLL takes none of the task-run flags (the kernel's thread runs
     * the task work): AUTO ends at PLAIN, a forced mode fails. */
    if (mode == MODE_AUTO) {
        rc = setup_mode(r, rp, MODE_DEFER);
        if (rc == -EINVAL)
            rc = setup_mode(r, rp, MODE_COOP);
        if (rc == -EINVAL)
            rc = setup_mode(r, rp, MODE_PLAIN);
    } else {
        rc = setup_mode(r, rp, mode); /* wf_ring_init checked it */
    }
    if (rc < 0) {
        if (rc == -EINVAL && (rp->flags & IORING_SETUP_SQPOLL) &&
            mode != MODE_AUTO && mode != MODE_PLAIN)
            snprintf(why, whylen,
                     "io_uring: WEFT_OPT_SQPOLL takes ring_mode AUTO or "
                     "PLAIN only (the kernel refuses task-run flags with "
                     "SQPOLL)");
        else if (rc == -EINVAL)
            snprintf(why, whylen,
                     "io_uring: the kernel refused the ring "
                     "set-up (mode %u, %u/%u entries%s%s)",
                     mode, sq, cq,
                     rp->flags & IORING_SETUP_SQPOLL ? ", SQPOLL" : "",
                     rp->flags & IORING_SETUP_IOPOLL ? ", IOPOLL" : "");
        else if (rc == -EPERM && (rp->flags & IORING_SETUP_SQPOLL))
            snprintf(why, whylen,
                     "io_uring: WEFT_OPT_SQPOLL refused (%s): before Linux "
                     "5.11 it needs CAP_SYS_ADMIN",
                     strerror(-rc));
        else
            explain(rc, why, whylen);
        return rc;
    }
    /* A bound on the io-wq's workers (5.15+): bounded and unbounded
     * work alike. The kernel keeps one io-wq per thread (5.12+), so the
     * bound is this ring's thread's. */
    if (rp->iowq_max_workers) {
        unsigned v[2] = {rp->iowq_max_workers, rp->iowq_max_workers};
        rc = io_uring_register_iowq_max_workers(&r->ring, v);
        if (rc < 0) {
            snprintf(why, whylen,
                     "io_uring: weft_options.iowq_max_workers: the kernel "
                     "refused IORING_REGISTER_IOWQ_MAX_WORKERS (%s; Linux "
                     "5.15 or later is needed)",
                     strerror(-rc));
            io_uring_queue_exit(&r->ring);
            return rc;
        }
    }
    /* Saves an fd lookup per io_uring_enter; optional (5.18+). */
    (void)io_uring_register_ring_fd(&r->ring);
    probe_ops(r);
    return 0;
}

/*
 * Whether AUTO may fall back to epoll after io_uring refused: the ring is
 * refused by the system (seccomp, the sysctl, a kernel without it or too
 * old), not a bad option of the caller's, and not out of descriptors,
 * which epoll would be too.
 */
static bool may_fall_back(int rc, const struct wf_ring_params *rp)
{
    if (rp->flags & (IORING_SETUP_SQPOLL | IORING_SETUP_IOPOLL) ||
        rp->mode != MODE_AUTO || rp->no_fallback)
        return false;
    return rc != -EMFILE && rc != -ENFILE;
}

int wf_ring_init(struct wf_ring *r, const struct wf_ring_params *rp, char *why,
                 unsigned whylen)
{
    memset(r, 0, sizeof *r);
    /* The option means the same whichever backend the loop gets. */
    if (rp->mode > MODE_PLAIN) {
        snprintf(why, whylen, "weft_options.ring_mode %u is not a mode",
                 rp->mode);
        return -EINVAL;
    }
    if (rp->backend == WF_BACKEND_EPOLL)
        return wf_epoll_init(r, rp, why, whylen);
    if (rp->backend != WF_BACKEND_AUTO && rp->backend != WF_BACKEND_URING) {
        snprintf(why, whylen, "weft_options.backend %u is not a backend",
                 rp->backend);
        return -EINVAL;
    }
    int rc = uring_init(r, rp, why, whylen);
    if (rc < 0 && rp->backend == WF_BACKEND_AUTO && may_fall_back(rc, rp)) {
        char ewhy[WF_RING_WHY];
        memset(r, 0, sizeof *r);
        if (wf_epoll_init(r, rp, ewhy, sizeof ewhy) == 0)
            return 0; /* why keeps io_uring's refusal */
    }
    return rc;
}

/*
 * The polled ring for files: IOPOLL, with the task-run flags the kernel
 * takes beside it, best first (SINGLE_ISSUER and DEFER_TASKRUN since 6.0
 * and 6.1; before, plain). No CQSIZE worries: only the loop's own polled
 * reads and writes go there, at most entries of them at once.
 */
int wf_ring_init_polled(struct wf_ring *r, unsigned entries, char *why,
                        unsigned whylen)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER,
        0,
    };
    struct wf_ring_params rp = {.sq = entries,
                                .cq = 2 * entries,
                                .wq_fd = -1,
                                .flags = IORING_SETUP_IOPOLL};
    int rc = -EINVAL;
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        rc = try_setup(r, &rp, tries[i]);
        if (rc != -EINVAL)
            break;
    }
    if (rc < 0) {
        snprintf(why, whylen,
                 "io_uring: WEFT_OPT_IOPOLL: the kernel refused the polled "
                 "ring for files (IORING_SETUP_IOPOLL, %u entries: %s)",
                 entries, strerror(-rc));
        return rc;
    }
    (void)io_uring_register_ring_fd(&r->ring);
    probe_ops(r);
    /* A polled operation finds a free SQE and a CQE slot without a wait:
     * beyond this many at once, the caller uses the main ring. */
    r->max_inflight = r->sq_entries;
    return 0;
}

void wf_ring_exit(struct wf_ring *r)
{
    if (r->ep) {
        wf_epoll_exit(r);
        return;
    }
    io_uring_queue_exit(&r->ring);
}

static inline unsigned sq_flags(const struct wf_ring *r)
{
    return IO_URING_READ_ONCE(*r->ring.sq.kflags);
}

static unsigned reap(struct wf_ring *r);

/*
 * Submit what is queued; a CQ backlog (-EBUSY, -EAGAIN) is drained and the
 * submission retried. Any other failure means the ring itself is broken:
 * there is no caller to hand an SQE-less state to, so say so and stop.
 */
static void flush(struct wf_ring *r)
{
    if (r->ep) {
        wf_epoll_submit(r);
        return;
    }
    for (int tries = 0;; tries++) {
        int rc = io_uring_submit(&r->ring);
        if (rc >= 0)
            return;
        if ((rc == -EBUSY || rc == -EAGAIN || rc == -EINTR) && tries < 100000) {
            io_uring_get_events(&r->ring);
            reap(r);
            continue;
        }
        fprintf(stderr, "weft: io_uring_submit failed: %s\n", strerror(-rc));
        abort();
    }
}

/* Taking an SQE may flush and reap, which would run the CQEs of the reap
 * under way a second time: completion handlers must defer such work. */
static void not_in_handler(const struct wf_ring *r)
{
    if (r->in_handler) {
        fprintf(stderr, "weft: an SQE was taken inside a completion "
                        "handler (defer it with wf_defer)\n");
        abort();
    }
}

struct io_uring_sqe *wf_ring_sqe(struct wf_ring *r)
{
    struct io_uring_sqe *sqe;
    not_in_handler(r);
    while (!(sqe = io_uring_get_sqe(&r->ring)))
        flush(r);
    return sqe;
}

void wf_ring_flush_for(struct wf_ring *r, unsigned n)
{
    unsigned left;
    while ((left = io_uring_sq_space_left(&r->ring)) < n)
        flush(r);
    r->sq_end = r->ring.sq.sqe_tail + left;
}

bool wf_ring_unget(struct wf_ring *r, struct io_uring_sqe *sqe)
{
    struct io_uring_sq *sq = &r->ring.sq;
    if (sq->sqe_tail == sq->sqe_head ||
        sqe != &sq->sqes[(sq->sqe_tail - 1) & sq->ring_mask])
        return false;
    sq->sqe_tail--;
    return true;
}

void wf_ring_cancel(struct wf_ring *r, struct wf_completion *c)
{
    not_in_handler(r);
    struct io_uring_sqe *sqe = wf_ring_sqe(r);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)c, 0);
    /* Success needs no CQE; a failure (already done) posts one with 0. */
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
}

void wf_ring_cancel_answered(struct wf_ring *r, uint64_t target,
                             struct wf_completion *answer)
{
    not_in_handler(r);
    struct io_uring_sqe *sqe = wf_ring_sqe(r);
    io_uring_prep_cancel64(sqe, target, 0);
    answer->untracked = true;
    answer->standing = false;
    io_uring_sqe_set_data(sqe, answer);
}

/*
 * Dispatch the CQEs posted so far: the tail is read once, the head
 * written once, and in_handler is raised for the whole batch (weft never
 * sets IORING_SETUP_CQE32, so a CQE is one slot).
 */
static unsigned reap_batch(struct wf_ring *r)
{
    struct io_uring_cq *cq = &r->ring.cq;
    unsigned head = *cq->khead;
    unsigned tail = io_uring_smp_load_acquire(cq->ktail);
    if (head == tail)
        return 0;
    unsigned mask = cq->ring_mask;
    r->in_handler++;
    for (unsigned i = head; i != tail; i++) {
        const struct io_uring_cqe *cqe = &cq->cqes[i & mask];
        struct wf_completion *c = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;
        if (!c)
            continue;
        /* Read before fn, which may free c. */
        if (!(flags & IORING_CQE_F_MORE) && !c->untracked) {
            r->inflight--;
            r->standing -= c->standing;
        }
        c->fn(c, res, flags);
    }
    r->in_handler--;
    io_uring_smp_store_release(cq->khead, tail);
    return tail - head;
}

/* Dispatch every CQE there is, overflowed ones included. */
static unsigned reap(struct wf_ring *r)
{
    unsigned total = 0;
    for (;;) {
        unsigned n = reap_batch(r);
        total += n;
        if (n)
            continue;
        /* NODROP kept what did not fit; entering flushes it to the CQ. */
        if (!(sq_flags(r) & IORING_SQ_CQ_OVERFLOW))
            return total;
        io_uring_get_events(&r->ring);
    }
}

/*
 * Whether completions may be waiting in the kernel that only an enter
 * with GETEVENTS posts: deferred task work, an overflow backlog, or a
 * polled ring's operations in the device.
 */
static bool events_pending(const struct wf_ring *r)
{
    /* A polled ring's completions are found only by asking the device:
     * an enter with GETEVENTS, min_complete 0, polls it once. */
    if (r->inflight && (r->setup_flags & IORING_SETUP_IOPOLL))
        return true;
    if (sq_flags(r) & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN))
        return true;
    /* Without TASKRUN_FLAG the kernel does not say; ask if anything is out. */
    return r->inflight && (r->setup_flags & (IORING_SETUP_DEFER_TASKRUN |
                                             IORING_SETUP_TASKRUN_FLAG)) ==
                              IORING_SETUP_DEFER_TASKRUN;
}

int wf_ring_pump(struct wf_ring *r, bool wait, int64_t timeout_ns)
{
    if (__builtin_expect(r->ep != NULL, 0))
        return wf_epoll_pump(r, wait, timeout_ns);
    int rc = 0;
    if (wait && !io_uring_cq_ready(&r->ring)) {
        struct io_uring_cqe *cqe;
        if (timeout_ns < 0) {
            rc = io_uring_submit_and_wait(&r->ring, 1);
        } else {
            struct __kernel_timespec ts = {
                .tv_sec = timeout_ns / 1000000000,
                .tv_nsec = timeout_ns % 1000000000,
            };
            rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
        }
    } else if (io_uring_sq_ready(&r->ring) || events_pending(r)) {
        rc = io_uring_submit_and_get_events(&r->ring);
    }
    if (rc == -EBUSY || rc == -EAGAIN)
        flush(r);
    return (int)reap(r);
}

int wf_ring_files_table(struct wf_ring *r, unsigned n)
{
    if (r->ep)
        return -EOPNOTSUPP; /* plain descriptors on epoll */
    return io_uring_register_files_sparse(&r->ring, n);
}

void wf_ring_files_clear(struct wf_ring *r, int slot)
{
    if (r->ep)
        return;
    int none = -1;
    io_uring_register_files_update(&r->ring, (unsigned)slot, &none, 1);
}
