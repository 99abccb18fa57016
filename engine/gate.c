/* SPDX-License-Identifier: MIT */
/*
 * engine/gate.c - closing an object while tasks use it (Seastar's gate),
 * once for every object that needs it: streams, listeners, UDP sockets,
 * files, and whatever comes next (processes, signal receivers, TLS).
 *
 * Every call on the object enters its gate and leaves it when done; the
 * ring operations it awaits are listed on the gate while the kernel has
 * them. Closing shuts the gate (nothing new enters: -EBADF), cancels the
 * listed operations (their callers then see -EBADF) and waits until every
 * call has left. Only then may the object be freed: a task that was handed
 * a result and has not yet run again is still inside, so it can never
 * wake up to freed memory.
 *
 * Operations that no task awaits (a listener's armed accepts) hold the
 * gate too: they enter when armed and leave on their terminal CQE, so
 * closing waits for them the same way.
 */
#include "engine/engine.h"

#include <weft/uring.h>

void wf_gate_init(struct wf_gate *g)
{
    g->users = 0;
    g->closing = false;
    g->closer = NULL;
    g->kill = NULL;
    wf_list_init(&g->ops);
}

void wf_gate_leave(struct wf_gate *g)
{
    if (--g->users == 0 && g->closer)
        wf_wake(g->closer);
}

struct io_uring_sqe *wf_gate_sqe(struct wf_gate *g)
{
    struct io_uring_sqe *sqe = wf_sqe();
    /* Taking it may have waited for ring room, and a close meanwhile
     * cancelled only the operations it could see. */
    if (g->closing) {
        wf_sqe_drop(wf_cur, sqe);
        return NULL;
    }
    return sqe;
}

int wf_gate_await_flags(struct wf_gate *g, struct io_uring_sqe *sqe,
                        weft_time deadline, const char *what, unsigned *flags)
{
    struct wf_gate_op op;
    op.io.killed = false;
    op.io.cqe_flags = 0; /* an SQE dropped before submission has none */
    wf_list_push(&g->ops, &op.node);
    int rc = wf_io_await(&op.io, sqe, deadline, what);
    wf_list_del(&op.node);
    *flags = op.io.cqe_flags;
    /* Cut short by the close: the object is gone for this caller. */
    return rc < 0 && g->closing ? -EBADF : rc;
}

int wf_gate_await(struct wf_gate *g, struct io_uring_sqe *sqe,
                  weft_time deadline, const char *what)
{
    struct wf_gate_op op;
    op.io.killed = false;
    wf_list_push(&g->ops, &op.node);
    int rc = wf_io_await(&op.io, sqe, deadline, what);
    wf_list_del(&op.node);
    /* Cut short by the close: the object is gone for this caller. */
    return rc < 0 && g->closing ? -EBADF : rc;
}

int wf_gate_await_polled(struct wf_gate *g, struct io_uring_sqe *sqe,
                         const char *what)
{
    struct wf_gate_op op;
    op.io.killed = false;
    wf_list_push(&g->ops, &op.node);
    int rc = wf_io_await_polled(&op.io, sqe, what);
    wf_list_del(&op.node);
    return rc < 0 && g->closing ? -EBADF : rc;
}

void wf_gate_shut(struct wf_gate *g, bool kill_ops)
{
    g->closing = true;
    if (!kill_ops)
        return;
    for (wf_link *n = g->ops.next; n != &g->ops; n = n->next)
        wf_io_kill(&wf_container_of(n, struct wf_gate_op, node)->io);
    if (g->kill)
        g->kill(g);
}

void wf_gate_wait(struct wf_gate *g, const char *what)
{
    if (!g->users)
        return;
    struct weft_task *t = wf_self();
    if (!t)
        wf_panic("%s: calls under way on the object and no task to wait "
                 "for them (close it inside the loop)",
                 what);
    while (g->users) {
        struct wf_wait w = {.what = what};
        g->closer = t;
        wf_block(&w);
        g->closer = NULL;
    }
}

void wf_gate_close(struct wf_gate *g, const char *what)
{
    wf_gate_shut(g, true);
    wf_gate_wait(g, what);
}
