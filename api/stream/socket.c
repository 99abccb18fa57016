/* SPDX-License-Identifier: MIT */
/*
 * api/stream/socket.c - the socket transport (TCP, Unix, socketpair): an
 * fd and the two ring operations that may be in flight on it, one recv
 * and one send.
 */
#include "api/stream/stream_impl.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/uring.h>

static struct wf_sock_stream *sock(weft_stream *s)
{
    return (struct wf_sock_stream *)s;
}

/* The most one SQE asks for: its length field has 32 bits, and a length
 * of 4 GiB would become 0 (a false end of stream, a send that takes
 * nothing). The stream layer loops on short transfers. */
#define WF_SOCK_CHUNK ((size_t)1 << 30)

/*
 * Multishot receive (weft_stream_set_multishot): one receive stays armed
 * between the stream's receive calls and puts what arrives into the
 * loop's provided buffers at once; the pieces queue here, and a receive
 * call takes the next one without a submission of its own. The armed
 * receive holds the stream's gate until its terminal CQE, as a
 * listener's armed accepts hold theirs, so a close cancels it and waits.
 *
 * Bounded: once MS_QHIGH pieces (2 where each piece is a whole buffer)
 * or MS_BHIGH bytes wait, the receive is
 * cancelled (the socket's own buffer and TCP's window hold the rest), and
 * the next receive call that finds the queue empty arms it again. Only
 * one receive is ever in flight on the socket: a one-shot receive (every
 * ring buffer out, or multishot turned off) goes out only while nothing
 * is armed, so bytes never change order.
 */
enum { MS_QHIGH = 8, MS_BHIGH = 64 * 1024 };

/* The kernel refused a multishot receive (before 6.0): one-shot for
 * every stream of the process from then on. */
static _Atomic bool ms_refused;

static int ms_push(struct wf_sock_ms *m, char *p, int n, uint16_t bid)
{
    if (m->qlen == m->qcap) {
        unsigned cap = m->qcap ? m->qcap * 2 : 4;
        struct wf_ms_piece *q = wf_malloc(cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        for (unsigned i = 0; i < m->qlen; i++)
            q[i] = m->q[(m->qhead + i) % m->qcap];
        wf_free(m->q);
        m->q = q;
        m->qcap = cap;
        m->qhead = 0;
    }
    m->q[(m->qhead + m->qlen++) % m->qcap] =
        (struct wf_ms_piece){.p = p, .len = (uint32_t)n, .bid = bid};
    m->qbytes += (size_t)n;
    return 0;
}

/* The head piece is done with: its buffer goes back to the ring. */
static void ms_drop_head(struct wf_sock_ms *m)
{
    struct wf_bufs_piece piece = {.bid = m->q[m->qhead].bid, .held = true};
    m->qbytes -= m->q[m->qhead].len;
    m->qhead = (m->qhead + 1) % m->qcap;
    m->qlen--;
    wf_bufs_put(&piece);
}

static void ms_wake(struct wf_sock_ms *m, int res)
{
    struct wf_waiter *wr;
    while ((wr = wf_waiter_first(&m->waiters)))
        wf_waiter_grant(wr, res);
}

/* A piece the armed receive brought: queued, or (no memory, or after
 * such a hole) dropped, and the receive stops for good. */
static void ms_got(struct wf_sock_ms *m, int res, unsigned flags, bool more)
{
    struct wf_loop *L = wf_cur;
    struct wf_bufs_piece piece = {0};
    char *p = wf_bufs_take(L, L->bufs, res, flags, &piece);
    if (m->lost) {
        wf_bufs_put(&piece); /* after a hole nothing more is delivered */
        return;
    }
    if (!p || ms_push(m, p, res, piece.bid) < 0) {
        wf_bufs_put(&piece);
        m->lost = true; /* the stream's bytes now have a hole */
        m->err = p ? -ENOMEM : -EIO;
        if (more && !m->s->gate.closing)
            wf_defer(L, &m->pause);
        return;
    }
    /* Without incremental consumption (before 6.12) each piece is a
     * whole 16 KiB buffer of the ring's 64: two per stream, so that a few
     * streams whose readers stop cannot take every buffer. */
    unsigned qhigh = L->bufs->inc ? MS_QHIGH : 2;
    if (more && !m->s->gate.closing &&
        (m->qlen >= qhigh || m->qbytes >= MS_BHIGH))
        wf_defer(L, &m->pause);
}

/* A CQE of the armed receive: reap context, so no SQEs here. */
static void ms_done(struct wf_completion *c, int res, unsigned flags)
{
    struct wf_sock_ms *m = wf_container_of(c, struct wf_sock_ms, c);
    bool more = flags & IORING_CQE_F_MORE;
    if (res > 0) {
        ms_got(m, res, flags, more);
    } else {
        if (flags & IORING_CQE_F_BUFFER) { /* no bytes, yet a buffer */
            struct wf_bufs_piece none;
            (void)wf_bufs_take(wf_cur, wf_cur->bufs, res, flags, &none);
        }
        if (res == 0) {
            m->eof = true;
        } else if (res == -EINVAL) {
            atomic_store_explicit(&ms_refused, true, memory_order_relaxed);
            m->nobufs = true; /* this receive goes one-shot */
        } else if (res == -ENOBUFS) {
            m->nobufs = true;
        } else if (res != -ECANCELED && !m->lost) {
            m->err = res;
        }
    }
    ms_wake(m, 0);
    if (!more) {
        m->armed = false;
        wf_gate_leave(&m->s->gate); /* the last thing: close may free s */
    }
}

static void ms_pause_run(struct wf_defer *d)
{
    struct wf_sock_ms *m = wf_container_of(d, struct wf_sock_ms, pause);
    if (m->armed)
        wf_standing_cancel(wf_cur, &m->c);
}

static void ms_arm(weft_stream *s, struct wf_sock_ms *m, struct wf_bufring *b)
{
    struct wf_loop *L = wf_cur;
    struct io_uring_sqe *sqe = wf_standing_sqe(L);
    io_uring_prep_recv(sqe, sock(s)->fd, NULL, 0, 0);
    sqe->ioprio |= IORING_RECV_MULTISHOT;
    wf_bufs_select(b, sqe);
    m->armed = true;
    wf_gate_enter(&s->gate); /* until its terminal CQE */
    wf_standing_start(L, sqe, &m->c);
}

/* Wait for the armed receive's next CQE: 0, -ECANCELED, -EBADF. */
static int ms_wait(weft_stream *s, struct wf_sock_ms *m, const char *what)
{
    /* A cancellation that came while this task ran (it was handed bytes,
     * and asks again) has nobody to deliver it: look first. */
    struct weft_task *t;
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    struct wf_waiter wr = {0};
    rc = wf_waiter_block(&wr, &m->waiters, &m->nwait, what, true);
    if (rc < 0)
        return wf_stream_closing(s) ? -EBADF : rc;
    return 0;
}

enum { MS_TAKE, MS_ONESHOT, MS_NOBUFS };

/*
 * Wait until the queue has a piece or the armed receive has ended:
 * MS_TAKE (take from the queue, or its end), MS_ONESHOT (no multishot
 * now: a receive of the caller's own), MS_NOBUFS (every ring buffer is
 * out: one receive into a buffer of the caller's), or -errno.
 */
static int ms_ready(weft_stream *s, struct wf_sock_ms *m, const char *what)
{
    for (;;) {
        if (m->qlen || m->eof || m->err)
            return MS_TAKE;
        if (wf_stream_closing(s))
            return -EBADF;
        if (!m->armed) {
            if (m->nobufs) {
                m->nobufs = false; /* armed again next time */
                return MS_NOBUFS;
            }
            struct wf_bufring *b = wf_bufs(wf_cur);
            if (!m->want || !b ||
                atomic_load_explicit(&ms_refused, memory_order_relaxed))
                return MS_ONESHOT;
            ms_arm(s, m, b); /* may have reaped: look again */
            continue;
        }
        int rc = ms_wait(s, m, what);
        if (rc < 0)
            return rc;
    }
}

/* What a receive returns once the queue is empty: the end (0), or the
 * error that ended the armed receive (once; for good after a loss). */
static ssize_t ms_end(struct wf_sock_ms *m)
{
    int err = m->err;
    if (!m->lost)
        m->err = 0;
    return err;
}

/* Copy queued bytes into buf (as many as fit, across pieces). */
static ssize_t ms_copy(struct wf_sock_ms *m, void *buf, size_t max)
{
    if (!m->qlen)
        return ms_end(m);
    size_t got = 0;
    while (m->qlen && got < max) {
        struct wf_ms_piece *e = &m->q[m->qhead];
        size_t n = e->len < max - got ? e->len : max - got;
        memcpy((char *)buf + got, e->p, n);
        got += n;
        if (n == e->len) {
            ms_drop_head(m);
        } else {
            e->p += n;
            e->len -= (uint32_t)n;
            m->qbytes -= n;
        }
    }
    return (ssize_t)got;
}

/* Lend the head piece: its buffer is the caller's to put back. */
static ssize_t ms_lend(struct wf_sock_ms *m, const void **data,
                       struct wf_bufs_piece *piece)
{
    if (!m->qlen)
        return ms_end(m);
    struct wf_ms_piece *e = &m->q[m->qhead];
    ssize_t n = (ssize_t)e->len;
    *data = e->p;
    piece->bid = e->bid;
    piece->held = true;
    m->qbytes -= e->len;
    m->qhead = (m->qhead + 1) % m->qcap;
    m->qlen--;
    return n;
}

static ssize_t sock_recv(weft_stream *s, void *buf, size_t max)
{
    struct wf_sock_stream *ss = sock(s);
    if (ss->ms && max) { /* (0 bytes: the kernel's answer, at once) */
        int rc = ms_ready(s, ss->ms, "weft_stream_recv");
        if (rc < 0)
            return rc;
        if (rc == MS_TAKE)
            return ms_copy(ss->ms, buf, max);
    }
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    io_uring_prep_recv(sqe, ss->fd, buf,
                       max < WF_SOCK_CHUNK ? max : WF_SOCK_CHUNK, 0);
    return wf_stream_await(s, sqe, "weft_stream_recv");
}

/* A receive whose buffer the kernel picks when data arrives: while it
 * waits, the connection holds none. */
static ssize_t sock_recv_select(weft_stream *s, const void **data,
                                struct wf_bufs_piece *piece)
{
    struct wf_loop *L = wf_cur;
    struct wf_sock_ms *m = sock(s)->ms;
    if (m) {
        int rc = ms_ready(s, m, "weft_stream_recv_borrowed");
        if (rc < 0)
            return rc;
        if (rc == MS_TAKE)
            return ms_lend(m, data, piece);
        if (rc == MS_NOBUFS) {
            /* The stream layer receives into a block of its own next
             * (sock_recv): that receive goes one-shot, not armed again. */
            m->nobufs = true;
            return -ENOBUFS;
        }
    }
    struct wf_bufring *b = wf_bufs(L);
    if (!b)
        return -ENOTSUP;
    /* Every buffer is out (held by readers, or in completions not yet
     * reaped: the count is never below the kernel's): the kernel would
     * answer -ENOBUFS, after a submission and maybe a poll armed for
     * nothing. The stream layer receives into a block of its own. */
    if (b->avail == 0)
        return -ENOBUFS;
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    /* Length 0: as much as the buffer (or what is left of it) holds. */
    io_uring_prep_recv(sqe, sock(s)->fd, NULL, 0, 0);
    wf_bufs_select(b, sqe);
    unsigned flags;
    ssize_t n =
        wf_stream_await_flags(s, sqe, "weft_stream_recv_borrowed", &flags);
    /* A result, even one that came with a cancellation, brings its
     * buffer: the bytes are the caller's, never dropped. */
    void *p = wf_bufs_take(L, b, (int)n, flags, piece);
    if (n > 0 && !p)
        return -EIO; /* bytes with no buffer: cannot happen */
    *data = p;
    return n;
}

static ssize_t sock_send(weft_stream *s, const void *buf, size_t len)
{
    struct wf_sock_stream *ss = sock(s);
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    io_uring_prep_send(sqe, ss->fd, buf,
                       len < WF_SOCK_CHUNK ? len : WF_SOCK_CHUNK, MSG_NOSIGNAL);
    return wf_stream_await(s, sqe, "weft_stream_send");
}

static ssize_t sock_sendv(weft_stream *s, const struct iovec *iov, int n)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)n};
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    io_uring_prep_sendmsg(sqe, sock(s)->fd, &msg, MSG_NOSIGNAL);
    return wf_stream_await(s, sqe, "weft_stream_sendv");
}

static int sock_send_eof(weft_stream *s)
{
    return shutdown(sock(s)->fd, SHUT_WR) < 0 ? -errno : 0;
}

static int sock_multishot(weft_stream *s, bool on)
{
    struct wf_sock_stream *ss = sock(s);
    struct wf_sock_ms *m = ss->ms;
    if (!on) {
        if (m) {
            m->want = false;
            if (m->armed)
                wf_standing_cancel(wf_cur, &m->c);
        }
        return 0;
    }
    if (!wf_bufs(wf_cur) ||
        atomic_load_explicit(&ms_refused, memory_order_relaxed))
        return -ENOTSUP;
    if (!m) {
        m = wf_calloc(1, sizeof *m);
        if (!m)
            return -ENOMEM;
        m->s = s;
        m->c.fn = ms_done;
        m->pause.fn = ms_pause_run;
        wf_list_init(&m->waiters);
        ss->ms = m;
    }
    m->want = true; /* armed by the next receive */
    return 0;
}

int wf_sock_multishot_idle(weft_stream *s, const char *what)
{
    struct wf_sock_ms *m = s->ops == &wf_sock_ops ? sock(s)->ms : NULL;
    while (m) {
        if (m->qlen)
            return 1;
        if (m->want)
            return -ENOTSUP;
        if (!m->armed)
            break;
        int rc = ms_wait(s, m, what); /* turned off: its last CQE */
        if (rc < 0)
            return rc;
    }
    return 0;
}

bool wf_sock_multishot_on(const weft_stream *s)
{
    if (s->ops != &wf_sock_ops)
        return false;
    const struct wf_sock_ms *m = ((const struct wf_sock_stream *)s)->ms;
    return m && (m->want || m->armed || m->qlen);
}

static size_t sock_queued(const weft_stream *s)
{
    const struct wf_sock_ms *m = ((const struct wf_sock_stream *)s)->ms;
    return m ? m->qbytes : 0;
}

/* The gate's kill: the receiver hears -EBADF, the armed receive is
 * cancelled (the gate waits for its terminal CQE). */
static void sock_kill(weft_stream *s)
{
    struct wf_sock_ms *m = sock(s)->ms;
    if (!m)
        return;
    wf_defer_cancel(&m->pause);
    ms_wake(m, -EBADF);
    if (!m->armed)
        return;
    if (!wf_cur)
        wf_panic("weft_stream_close: a multishot receive in flight and no "
                 "loop to cancel it (close streams inside the loop)");
    wf_standing_cancel(wf_cur, &m->c);
}

static int sock_close(weft_stream *s)
{
    struct wf_sock_ms *m = sock(s)->ms;
    if (m) {
        wf_defer_cancel(&m->pause);
        while (m->qlen)
            ms_drop_head(m);
        wf_free(m->q);
        wf_free(m);
    }
    return wf_close(sock(s)->fd) < 0 ? -errno : 0;
}

static int sock_fd(const weft_stream *s)
{
    return ((const struct wf_sock_stream *)s)->fd;
}

const struct wf_stream_ops wf_sock_ops = {
    .recv = sock_recv,
    .send = sock_send,
    .sendv = sock_sendv,
    .send_eof = sock_send_eof,
    .kill = sock_kill,
    .close = sock_close,
    .fd = sock_fd,
    .recv_select = sock_recv_select,
    .multishot = sock_multishot,
    .queued = sock_queued,
};

int wf_sock_stream_new(int fd, weft_stream **out)
{
    struct wf_sock_stream *ss = wf_malloc(sizeof *ss);
    if (!ss) {
        wf_close(fd);
        return -ENOMEM;
    }
    wf_stream_init(&ss->base, &wf_sock_ops);
    ss->fd = fd;
    ss->ms = NULL;
    *out = &ss->base;
    return 0;
}

WF_EXPORT int weft_stream_pair(weft_stream **a, weft_stream **b)
{
    if (!a || !b)
        return -EINVAL;
    *a = *b = NULL; /* on every failure, not a stale handle */
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    int rc = wf_sock_stream_new(fds[0], a);
    if (rc < 0) {
        wf_close(fds[1]);
        return rc;
    }
    rc = wf_sock_stream_new(fds[1], b);
    if (rc < 0) {
        weft_stream_close(*a);
        *a = NULL;
        return rc;
    }
    return 0;
}
