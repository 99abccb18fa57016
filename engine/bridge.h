/* SPDX-License-Identifier: MIT */
/*
 * engine/bridge.h - what the thread bridge's files share (mailbox.c,
 * pool.c, portal.c): one-shot notifications between threads, the spin
 * before sleeping, and the worker's identity. Internal to engine/.
 */
#ifndef WF_ENGINE_BRIDGE_H
#define WF_ENGINE_BRIDGE_H

#include "engine/engine.h"

#include <stdatomic.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- one-shot notifications between threads (a futex) ---- */

struct wf_notify {
    _Atomic uint32_t done;
};

static inline void notify_wait(struct wf_notify *n)
{
    while (!atomic_load_explicit(&n->done, memory_order_acquire))
        syscall(SYS_futex, &n->done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static inline void notify_post(struct wf_notify *n)
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
#define WF_SPIN_NS (20 * WEFT_USEC)

/* Spin until ready(arg) or WF_SPIN_NS passes; true if it got ready. */
bool wf_spin_for(bool (*ready)(void *), void *arg);

/* mailbox.c: this thread is a pool worker (it may wake loops with
 * MSG_RING); a retiring worker frees its wake-up ring. */
void wf_mailbox_worker_start(void);
void wf_mailbox_worker_exit(void);

#endif
