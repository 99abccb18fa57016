/* SPDX-License-Identifier: MIT */
/*
 * api/net/listener.c - listeners: accepting, queueing and closing.
 *
 * A listener owns its accept operations: they stay armed between accept
 * calls (multishot where the kernel has it), their connections queue in
 * the listener, and closing it cancels them and waits for their terminal
 * CQEs. A connection accepted for a task that was cancelled meanwhile is
 * queued for the next accept, never lost.
 */
#include "api/net/net_impl.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { QHIGH = 256 }; /* queued connections before multishot pauses */

static bool any_armed(const struct weft_listener *l)
{
    for (int i = 0; i < l->nacc; i++)
        if (l->acc[i].armed)
            return true;
    return false;
}

static int q_push(struct weft_listener *l, int fd)
{
    if (l->qlen == l->qcap) {
        size_t cap = l->qcap ? l->qcap * 2 : 16;
        int *q = wf_malloc(cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < l->qlen; i++)
            q[i] = l->q[(l->qhead + i) % l->qcap];
        wf_free(l->q);
        l->q = q;
        l->qcap = cap;
        l->qhead = 0;
    }
    l->q[(l->qhead + l->qlen++) % l->qcap] = fd;
    return 0;
}

static int q_pop(struct weft_listener *l)
{
    int fd = l->q[l->qhead];
    l->qhead = (l->qhead + 1) % l->qcap;
    l->qlen--;
    return fd;
}

/* A completion of an accept: reap context, so no SQEs here. */
static void accept_done(struct wf_completion *c, int res, unsigned flags)
{
    struct wf_acceptor *a = wf_container_of(c, struct wf_acceptor, c);
    struct weft_listener *l = a->l;
    if (res >= 0) {
        if (l->gate.closing || q_push(l, res) < 0)
            wf_close(res);
        else if (l->qlen >= QHIGH && a->armed)
            wf_defer(wf_cur, &l->pause); /* no SQE may be taken here */
    } else if (res == -EINVAL && a->multishot) {
        l->multishot = false; /* an old kernel: one-shot from now on */
    } else if (res != -ECANCELED) {
        l->err = res; /* -EMFILE and friends: the accepter hears of it */
    }
    struct wf_waiter *wr = wf_waiter_first(&l->waiters);
    if (wr)
        wf_waiter_grant(wr, 0);
    if (!(flags & IORING_CQE_F_MORE)) {
        a->armed = false;
        wf_gate_leave(&l->gate); /* the last thing: close may free l */
    }
}

static void arm(struct weft_listener *l)
{
    struct wf_loop *L = wf_cur;
    for (int i = 0; i < l->nacc; i++) {
        struct wf_acceptor *a = &l->acc[i];
        if (a->armed)
            continue;
        struct io_uring_sqe *sqe = wf_standing_sqe(L);
        a->multishot = l->multishot;
        if (a->multishot)
            io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL,
                                           SOCK_CLOEXEC);
        else
            io_uring_prep_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
        wf_standing_start(L, sqe, &a->c);
        a->armed = true;
        wf_gate_enter(&l->gate); /* until its terminal CQE */
    }
}

/* A flood nobody accepts fast enough: stop pulling from the backlog
 * (the kernel's backlog then bounds it); accept re-arms once drained. */
static void throttle(struct weft_listener *l)
{
    for (int i = 0; i < l->nacc; i++)
        if (l->acc[i].armed && l->acc[i].multishot)
            wf_standing_cancel(wf_cur, &l->acc[i].c);
}

/* One accept: a queued connection, a queued error, or a wait. */
static int accept_one(weft_listener *l, weft_stream **out)
{
    for (;;) {
        if (l->gate.closing)
            return -EBADF;
        if (l->qlen) {
            int fd = q_pop(l);
            if (l->tcp)
                wf_set_nodelay(fd);
            return wf_sock_stream_new(fd, out);
        }
        if (l->err) {
            int rc = l->err;
            l->err = 0;
            return rc;
        }
        arm(l);
        /* Arming may have flushed the SQ and reaped: look again. */
        if (l->qlen || l->err || l->gate.closing)
            continue;
        struct wf_waiter wr = {0};
        int rc = wf_waiter_block(&wr, &l->waiters, &l->nwait,
                                 "weft_listener_accept", true);
        if (rc < 0)
            return rc;
    }
}

/* A drain (serve.c): refuse new connections (unless keep), cancel the
 * armed accepts and wait for their terminal CQEs; what they accepted
 * stays queued for wf_listener_take. */
void wf_listener_stop(struct weft_listener *l, bool keep)
{
    if (!keep)
        for (int i = 0; i < l->nacc; i++)
            shutdown(l->acc[i].fd, SHUT_RD); /* connects now get RST */
    for (int i = 0; i < l->nacc; i++)
        if (l->acc[i].armed)
            wf_standing_cancel(wf_cur, &l->acc[i].c);
    while (any_armed(l)) {
        struct wf_waiter wr = {0};
        wf_waiter_block(&wr, &l->waiters, &l->nwait,
                        "weft_listener_serve (drain)", false);
    }
    l->err = 0; /* the shutdown's: nobody accepts any more */
}

int wf_listener_take(struct weft_listener *l, weft_stream **out)
{
    if (!l->qlen)
        return -EAGAIN;
    int fd = q_pop(l);
    if (l->tcp)
        wf_set_nodelay(fd);
    return wf_sock_stream_new(fd, out);
}

WF_EXPORT int weft_listener_accept(weft_listener *l, weft_stream **out)
{
    struct weft_task *t;
    int rc = wf_entry(&t, l && out, l && l->gate.closing);
    if (rc < 0)
        return rc;
    /* Inside the gate until it returns: a close waits for this task even
     * when it has been handed a connection and has not run yet. */
    wf_gate_enter(&l->gate);
    rc = accept_one(l, out);
    wf_gate_leave(&l->gate);
    return rc;
}

/* The gate's kill: wake the accepters, cancel the armed accepts. */
static void listener_kill(struct wf_gate *g)
{
    struct weft_listener *l = wf_container_of(g, struct weft_listener, gate);
    wf_defer_cancel(&l->pause);
    struct wf_waiter *wr;
    while ((wr = wf_waiter_first(&l->waiters)))
        wf_waiter_grant(wr, -EBADF);
    if (!any_armed(l))
        return;
    if (!wf_cur)
        wf_panic("weft_listener_close: accepts in flight and no loop to "
                 "cancel them (close listeners inside the loop)");
    for (int i = 0; i < l->nacc; i++)
        if (l->acc[i].armed)
            wf_standing_cancel(wf_cur, &l->acc[i].c);
}

WF_EXPORT int weft_listener_close(weft_listener *l)
{
    if (!l)
        return -EINVAL;
    if (l->gate.closing)
        return -EBADF;
    wf_gate_close(&l->gate, "weft_listener_close");
    while (l->qlen)
        wf_close(q_pop(l));
    int rc = 0;
    for (int i = 0; i < l->nacc; i++)
        if (wf_close(l->acc[i].fd) < 0 && !rc)
            rc = -errno;
    wf_free(l->q);
    wf_free(l);
    return rc;
}

WF_EXPORT int weft_listener_port(const weft_listener *l)
{
    return l && l->tcp ? l->port : -EINVAL;
}

static void pause_run(struct wf_defer *d)
{
    throttle(wf_container_of(d, struct weft_listener, pause));
}

struct weft_listener *wf_listener_new(bool tcp)
{
    struct weft_listener *l = wf_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->pause.fn = pause_run;
    l->tcp = tcp;
    l->multishot = true;
    wf_list_init(&l->waiters);
    wf_gate_init(&l->gate);
    l->gate.kill = listener_kill;
    return l;
}

int wf_listener_add(struct weft_listener *l, int fd)
{
    if (l->nacc == (int)(sizeof l->acc / sizeof l->acc[0])) {
        wf_close(fd);
        return -ENOSPC;
    }
    struct wf_acceptor *a = &l->acc[l->nacc++];
    a->c.fn = accept_done;
    a->l = l;
    a->fd = fd;
    return 0;
}

void wf_listener_abort(struct weft_listener *l)
{
    for (int i = 0; i < l->nacc; i++)
        wf_close(l->acc[i].fd);
    wf_free(l);
}

WF_EXPORT int weft_listener_from_fd(weft_listener **out, int fd)
{
    if (fd < 0)
        return -EBADF;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno; /* -EBADF: nothing to close */
    int rc = 0, acc = 0, family = 0;
    socklen_t len = sizeof acc;
    if (!out)
        rc = -EINVAL;
    else if (!S_ISSOCK(st.st_mode))
        rc = -ENOTSOCK;
    else if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
        rc = -errno;
    else if (!acc)
        rc = -EINVAL; /* not listening */
    len = sizeof family;
    if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0)
        rc = -errno;
    if (rc == 0 && family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        rc = -EINVAL;
    if (rc == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        rc = -errno;
    struct weft_listener *l = NULL;
    if (rc == 0 && !(l = wf_listener_new(family != AF_UNIX)))
        rc = -ENOMEM;
    if (rc < 0) {
        wf_close(fd);
        return rc;
    }
    if (l->tcp)
        l->port = wf_sock_port(fd);
    wf_listener_add(l, fd); /* the first: cannot fail */
    *out = l;
    return 0;
}
