/* SPDX-License-Identifier: MIT */
/*
 * api/signal/signal.c - signal receivers: a signalfd per receiver, read
 * by the loop that opened it, and the process's mask kept in step.
 *
 * The mask. A signal a receiver waits for must be blocked in every thread
 * (otherwise the kernel may deliver it to a thread that does not block it,
 * and its default action runs). Masks are per thread, so this file keeps
 * one table for the process: how many open receivers want each signal,
 * and whether it was blocked in the opening thread before the first of
 * them (then closing the last one leaves it blocked). Opening raises the
 * counts and asks each thread to sync; closing lowers them and asks the
 * same. A sync, run on the thread it is for, blocks the signals it was
 * told of that some receiver still wants and unblocks those no receiver
 * wants and that were not blocked before, under the table's lock: so
 * whatever order opens, closes and syncs interleave in on several cores,
 * every thread's mask ends as the table says.
 *
 * Which threads: the caller's (a pthread_sigmask here), and the other
 * cores of its runtime, each by a weft_core_call (shielded: half a mask
 * is worse than a late cancellation). weft's worker pool threads block
 * every signal from their creation (engine/pool.c), so nothing is done
 * for them. Threads the program made itself are its own business.
 *
 * Receiving. POLL_ADD on the signalfd, then a non-blocking read(2) on the
 * loop's thread: a poll consumes nothing, so a cancelled receive loses no
 * signal (a READ on the ring could complete while its cancel is on the
 * way). A read that finds nothing (another receiver for the same signal
 * took it) polls again.
 */
#include "engine/engine.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <weft/core.h>
#include <weft/signal.h>
#include <weft/uring.h>

struct weft_signal_receiver {
    struct wf_gate gate; /* receives inside */
    struct wf_loop *loop;
    int fd;
    sigset_t set;
};

/* ---- the process's table (the one piece of global state here: signal
 * masks are the process's, not a loop's) ---- */

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned table_count[_NSIG];
static bool table_was_blocked[_NSIG]; /* before the first open receiver */

struct mask_sync {
    sigset_t block, unblock; /* the signals this sync is about */
};

/* On the thread it is for: bring its mask in step with the table for
 * the signals of m. */
static void sync_here(const struct mask_sync *m)
{
    sigset_t block, unblock;
    sigemptyset(&block);
    sigemptyset(&unblock);
    pthread_mutex_lock(&table_mu);
    for (int s = 1; s < _NSIG; s++) {
        if (sigismember(&m->block, s) == 1 && table_count[s])
            sigaddset(&block, s);
        if (sigismember(&m->unblock, s) == 1 && !table_count[s] &&
            !table_was_blocked[s])
            sigaddset(&unblock, s);
    }
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
    pthread_mutex_unlock(&table_mu);
}

static int sync_task(void *arg)
{
    sync_here(arg);
    return 0;
}

/* Sync the calling thread, then every other core of its runtime. */
static void sync_all(const struct mask_sync *m)
{
    sync_here(m);
    if (!wf_self())
        return; /* a close outside the loop: this thread only */
    unsigned n = weft_core_count(), self = weft_core_id();
    if (n < 2)
        return;
    weft_scope shield;
    weft_scope_enter(&shield, WEFT_FOREVER);
    weft_scope_set_shield(&shield, true);
    for (unsigned c = 0; c < n; c++)
        if (c != self)
            weft_core_call(c, sync_task, (void *)m);
    weft_scope_exit(&shield, 0);
}

static void table_take(const sigset_t *set)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    pthread_mutex_lock(&table_mu);
    for (int s = 1; s < _NSIG; s++)
        if (sigismember(set, s) == 1 && table_count[s]++ == 0)
            table_was_blocked[s] = sigismember(&cur, s) == 1;
    pthread_mutex_unlock(&table_mu);
}

static void table_give(const sigset_t *set)
{
    pthread_mutex_lock(&table_mu);
    for (int s = 1; s < _NSIG; s++)
        if (sigismember(set, s) == 1)
            table_count[s]--;
    pthread_mutex_unlock(&table_mu);
}

/* ---- receivers ---- */

static int make_set(sigset_t *set, const int *signals, size_t n)
{
    if (!signals || n == 0)
        return -EINVAL;
    sigemptyset(set);
    for (size_t i = 0; i < n; i++) {
        int s = signals[i];
        if (s <= 0 || s >= _NSIG || s == SIGKILL || s == SIGSTOP)
            return -EINVAL;
        if (sigaddset(set, s) < 0) /* glibc's own (SIGCANCEL, SIGSETXID) */
            return -EINVAL;
    }
    return 0;
}

WF_EXPORT int weft_signal_open(weft_signal_receiver **out, const int *signals,
                               size_t n)
{
    struct weft_task *t;
    sigset_t set;
    int bad = out ? make_set(&set, signals, n) : -EINVAL;
    int rc = wf_entry_err(&t, bad, false, true);
    if (rc < 0)
        return rc;
    struct weft_signal_receiver *r = wf_malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    r->set = set;
    r->loop = t->loop;
    wf_gate_init(&r->gate);
    struct mask_sync m = {.block = set};
    sigemptyset(&m.unblock);
    /* Blocked first, then the signalfd: one that comes in between stays
     * pending, and the signalfd sees it. */
    table_take(&set);
    sync_all(&m);
    r->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (r->fd < 0) {
        rc = -errno;
        table_give(&set);
        m.unblock = set;
        sigemptyset(&m.block);
        sync_all(&m);
        wf_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

WF_EXPORT int weft_signal_receive(weft_signal_receiver *r)
{
    struct weft_task *t;
    int rc = wf_entry(&t, r != NULL, r && r->gate.closing);
    if (rc < 0)
        return rc;
    if (r->loop != t->loop)
        return -EPERM;
    wf_gate_enter(&r->gate);
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t got = read(r->fd, &si, sizeof si);
        if (got == (ssize_t)sizeof si) {
            rc = (int)si.ssi_signo;
            break;
        }
        if (got < 0 && errno != EAGAIN && errno != EINTR) {
            rc = -errno;
            break;
        }
        struct io_uring_sqe *sqe = wf_gate_sqe(&r->gate);
        if (!sqe) {
            rc = -EBADF;
            break;
        }
        io_uring_prep_poll_add(sqe, r->fd, POLLIN);
        rc = wf_gate_await(&r->gate, sqe, WEFT_FOREVER, "weft_signal_receive");
        if (rc < 0)
            break;
    }
    wf_gate_leave(&r->gate);
    return rc;
}

WF_EXPORT int weft_signal_close(weft_signal_receiver *r)
{
    if (!r)
        return -EINVAL;
    if (r->gate.closing)
        return -EBADF;
    wf_gate_close(&r->gate, "weft_signal_close");
    int rc = wf_close(r->fd) < 0 ? -errno : 0;
    table_give(&r->set);
    struct mask_sync m = {.unblock = r->set};
    sigemptyset(&m.block);
    sync_all(&m);
    wf_free(r);
    return rc;
}
