/* SPDX-License-Identifier: MIT */
/*
 * api/stream/stream.c - the byte-stream layer over any transport: the
 * busy rules, the read-ahead buffer of recv_exactly/recv_until, closing
 * with operations in flight.
 */
#include "api/stream/stream_impl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/net.h>
#include <weft/uring.h>

static void stream_kill(struct wf_gate *g)
{
    weft_stream *s = wf_container_of(g, weft_stream, gate);
    s->ops->kill(s);
}

void wf_stream_init(weft_stream *s, const struct wf_stream_ops *ops)
{
    memset(s, 0, sizeof *s);
    s->ops = ops;
    wf_gate_init(&s->gate);
    if (ops->kill)
        s->gate.kill = stream_kill;
}

static struct weft_task **side(weft_stream *s, bool receive)
{
    return receive ? &s->receiver : &s->sender;
}

/* The read-ahead's storage goes: freed, or its piece put back. */
static void ahead_drop(weft_stream *s)
{
    if (s->rpiece.held)
        wf_bufs_put(&s->rpiece);
    else
        wf_block_put(s->rbuf, s->rcap);
    s->rbuf = NULL;
    s->rcap = s->rpos = s->rlen = 0;
}

/*
 * Between calls a socket stream keeps no buffer it does not need: an
 * empty read-ahead goes (a stream waiting for data then holds none: its
 * receives take provided buffers, or, without a buffer ring, a block of
 * the loop's list when data comes), and bytes left in a provided
 * buffer move to a block of their own, so that one connection's leftover
 * does not hold a ring buffer (if that allocation fails, they stay).
 * Other transports receive into the read-ahead and keep it.
 */
static void ahead_tidy(weft_stream *s)
{
    if (!s->rbuf || s->lent_ahead)
        return;
    if (!s->rlen) {
        /* Without a buffer ring (the epoll backend, kernels before
         * 5.19) the block goes to the loop's list (wf_block_put), and
         * the next receive of any stream takes it back still cached. */
        if (s->rpiece.held || s->ops->recv_select)
            ahead_drop(s);
        return;
    }
    if (!s->rpiece.held)
        return;
    size_t cap = s->rlen;
    char *b = wf_block_get(&cap);
    if (!b)
        return;
    memcpy(b, s->rbuf + s->rpos, s->rlen);
    wf_bufs_put(&s->rpiece);
    s->rbuf = b;
    s->rcap = cap;
    s->rpos = 0;
}

/* What weft_stream_recv_borrowed lent is done with. */
static void lend_end(weft_stream *s)
{
    wf_bufs_put(&s->lent);
    s->lent_ahead = false;
}

int wf_stream_claim(weft_stream *s, int bad_arg, bool receive)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, s != NULL, false);
    if (rc < 0)
        return rc;
    if (bad_arg)
        return bad_arg;
    if (wf_stream_closing(s))
        return -EBADF;
    if (*side(s, receive))
        return -EBUSY;
    if (wf_checkpoint_cancelled(t))
        return -ECANCELED;
    *side(s, receive) = t;
    wf_gate_enter(&s->gate);
    if (receive) /* the next receive ends a borrow */
        lend_end(s);
    return 0;
}

void wf_stream_unclaim(weft_stream *s, bool receive)
{
    if (receive)
        ahead_tidy(s);
    *side(s, receive) = NULL;
    wf_gate_leave(&s->gate);
}

/* One transport receive; a stream being closed says -EBADF. */
static ssize_t raw_recv(weft_stream *s, void *buf, size_t max)
{
    /* A close may have come between two receives of one call. */
    if (wf_stream_closing(s))
        return -EBADF;
    ssize_t n = s->ops->recv(s, buf, max);
    return wf_stream_closing(s) && n < 0 ? -EBADF : n;
}

ssize_t wf_stream_await(weft_stream *s, struct io_uring_sqe *sqe,
                        const char *what)
{
    unsigned flags;
    return wf_stream_await_flags(s, sqe, what, &flags);
}

ssize_t wf_stream_await_flags(weft_stream *s, struct io_uring_sqe *sqe,
                              const char *what, unsigned *flags)
{
    if (!s->kernel_deadlines)
        return wf_gate_await_flags(&s->gate, sqe, WEFT_FOREVER, what, flags);
    struct io_uring_sqe again = *sqe; /* prepared, not yet submitted */
    for (;;) {
        ssize_t r = wf_gate_await_flags(
            &s->gate, sqe, weft_current_effective_deadline(), what, flags);
        if (r != -ETIMEDOUT)
            return r;
        /* The kernel ended it at the deadline it was given. If that is
         * the scope's cancellation, the scope must know now (its timers
         * are fired here, before the caller checkpoints). */
        wf_timers_fire_due();
        if (weft_checkpoint_if_cancelled() < 0)
            return -ECANCELED;
        /* The deadline moved later while it waited: the operation was cut
         * short and took nothing, so it goes again with the new one. */
        if (!(sqe = wf_stream_sqe(s)))
            return -EBADF;
        *sqe = again;
    }
}

static size_t take_ahead(weft_stream *s, void *buf, size_t max)
{
    size_t n = s->rlen < max ? s->rlen : max;
    memcpy(buf, s->rbuf + s->rpos, n);
    s->rpos += n;
    s->rlen -= n;
    return n;
}

WF_EXPORT ssize_t weft_stream_recv(weft_stream *s, void *buf, size_t max)
{
    int rc = wf_stream_claim(s, buf || !max ? 0 : -EFAULT, true);
    if (rc < 0)
        return rc;
    ssize_t n;
    if (s->rlen)
        n = (ssize_t)take_ahead(s, buf, max);
    else
        n = raw_recv(s, buf, max);
    wf_stream_unclaim(s, true);
    return n;
}

/* Move the read-ahead out of a provided buffer into a block of cap. */
static int ahead_unpin(weft_stream *s, size_t cap)
{
    char *b = wf_block_get(&cap);
    if (!b)
        return -ENOMEM;
    memcpy(b, s->rbuf + s->rpos, s->rlen);
    wf_bufs_put(&s->rpiece);
    s->rbuf = b;
    s->rcap = cap;
    s->rpos = 0;
    return 0;
}

/* Make room for `more` bytes after the read-ahead's data. */
static int ahead_reserve(weft_stream *s, size_t more)
{
    if (s->rpiece.held) {
        size_t cap = 4096;
        while (cap < s->rlen + more)
            cap *= 2;
        return ahead_unpin(s, cap);
    }
    if (s->rpos && s->rpos + s->rlen + more > s->rcap) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen);
        s->rpos = 0;
    }
    if (s->rlen + more <= s->rcap)
        return 0;
    size_t cap = s->rcap ? s->rcap : 4096;
    while (cap < s->rlen + more)
        cap *= 2;
    char *b = wf_block_get(&cap);
    if (!b)
        return -ENOMEM;
    if (s->rbuf) { /* a larger block: the bytes move to its start */
        memcpy(b, s->rbuf + s->rpos, s->rlen);
        wf_block_put(s->rbuf, s->rcap);
        s->rpos = 0;
    }
    s->rbuf = b;
    s->rcap = cap;
    return 0;
}

/* Put bytes back in front of the read-ahead (a partial read undone). */
static int ahead_unread(weft_stream *s, const void *buf, size_t n)
{
    if (!n)
        return 0;
    if (s->rpos >= n) {
        s->rpos -= n;
    } else {
        int rc = ahead_reserve(s, n);
        if (rc < 0)
            return rc;
        memmove(s->rbuf + n, s->rbuf + s->rpos, s->rlen);
        s->rpos = 0;
    }
    memcpy(s->rbuf + s->rpos, buf, n);
    s->rlen += n;
    return 0;
}

WF_EXPORT ssize_t weft_stream_recv_exactly(weft_stream *s, void *buf, size_t n)
{
    int rc = wf_stream_claim(s, buf || !n ? 0 : -EFAULT, true);
    if (rc < 0)
        return rc;
    size_t got = 0;
    ssize_t r = 0;
    if (s->rlen)
        got = take_ahead(s, buf, n);
    while (got < n && r >= 0) {
        r = raw_recv(s, (char *)buf + got, n - got);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            break;
    }
    if (got == n) {
        r = (ssize_t)n;
    } else {
        /* Ended or failed part way: what was read stays readable. */
        if (ahead_unread(s, buf, got) < 0)
            r = -ENOMEM;
        else if (r == 0)
            r = got ? -ENODATA : 0;
    }
    wf_stream_unclaim(s, true);
    return r;
}

/* Receive into a provided buffer, checking for a close around it. */
static ssize_t raw_recv_select(weft_stream *s, const void **data,
                               struct wf_bufs_piece *piece)
{
    if (wf_stream_closing(s))
        return -EBADF;
    ssize_t n = s->ops->recv_select(s, data, piece);
    if (wf_stream_closing(s)) {
        if (n <= 0)
            return n < 0 ? -EBADF : n;
        /* Bytes for a stream being closed: nobody will read them, and
         * the close frees what they would point into. */
        wf_bufs_put(piece);
        return -EBADF;
    }
    return n;
}

/*
 * Receive more bytes after the read-ahead's, for the caller to count in
 * rlen. An empty read-ahead takes a provided buffer where the stream has
 * them: the bytes stay where the kernel put them (the buffer becomes the
 * read-ahead), and a reader waiting here holds no buffer. Otherwise the
 * receive goes into the read-ahead's block, after the bytes already
 * there, asking for want bytes at most (clamped to 4-64 KiB: a large max
 * must not reserve max bytes).
 */
static ssize_t ahead_fill(weft_stream *s, size_t want)
{
    if (!s->rlen && s->ops->recv_select) {
        const void *p;
        struct wf_bufs_piece piece = {0};
        ssize_t n = raw_recv_select(s, &p, &piece);
        if (n > 0) {
            ahead_drop(s); /* an empty block, if any */
            s->rpiece = piece;
            s->rbuf = (char *)p;
            s->rcap = (size_t)n; /* the caller counts them in rlen */
            return n;
        }
        if (n != -ENOBUFS && n != -ENOTSUP)
            return n;
    }
    if (want < 4096)
        want = 4096;
    if (want > 65536)
        want = 65536;
    int rc = ahead_reserve(s, want);
    if (rc < 0)
        return rc;
    return raw_recv(s, s->rbuf + s->rpos + s->rlen, want);
}

/* The fallback lender's block: as large as a TLS record. */
enum { WF_LEND_OWN = 16384 };

/*
 * Lend the next bytes: the read-ahead's first, then a provided buffer's,
 * and where the stream has none (another transport, a kernel before
 * 5.19, every buffer out) a block of the stream's own.
 */
static ssize_t lend(weft_stream *s, const void **data)
{
    ssize_t n;
    if (s->rlen) {
        n = (ssize_t)s->rlen;
        *data = s->rbuf + s->rpos;
        s->rpos += s->rlen;
        s->rlen = 0;
        s->lent_ahead = true; /* the block stays until the release */
        return n;
    }
    if (s->ops->recv_select) {
        n = raw_recv_select(s, data, &s->lent);
        if (n != -ENOBUFS && n != -ENOTSUP)
            return n;
    }
    int rc = ahead_reserve(s, WF_LEND_OWN);
    if (rc < 0)
        return rc;
    s->rpos = 0; /* empty: all of it is room */
    n = raw_recv(s, s->rbuf, s->rcap);
    if (n > 0) {
        *data = s->rbuf;
        s->lent_ahead = true;
    }
    return n;
}

WF_EXPORT ssize_t weft_stream_recv_borrowed(weft_stream *s, const void **data)
{
    if (data)
        *data = NULL;
    int rc = wf_stream_claim(s, data ? 0 : -EFAULT, true);
    if (rc < 0)
        return rc;
    ssize_t n = lend(s, data);
    wf_stream_unclaim(s, true);
    return n;
}

WF_EXPORT int weft_stream_release(weft_stream *s)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, s != NULL, false);
    if (rc < 0)
        return rc;
    if (wf_stream_closing(s))
        return -EBADF;
    if (s->receiver)
        return -EBUSY; /* a receive is under way: it ended the borrow */
    lend_end(s);
    ahead_tidy(s);
    return 0;
}

static const char *find(const char *hay, size_t n, const char *d, size_t dn)
{
    if (dn == 0)
        return hay;
    for (size_t i = 0; i + dn <= n; i++) {
        const char *p = memchr(hay + i, d[0], n - i - dn + 1);
        if (!p)
            return NULL;
        if (memcmp(p, d, dn) == 0)
            return p;
        i = (size_t)(p - hay);
    }
    return NULL;
}

WF_EXPORT ssize_t weft_stream_recv_until(weft_stream *s, void *buf, size_t max,
                                         const void *delim, size_t delim_len)
{
    int bad = !delim_len || max > SSIZE_MAX - delim_len ? -EINVAL
              : (!buf && max) || !delim                 ? -EFAULT
                                                        : 0;
    int rc = wf_stream_claim(s, bad, true);
    if (rc < 0)
        return rc;
    ssize_t r;
    size_t scanned = 0; /* no match starts before this */
    for (;;) {
        /* No buffer yet (rbuf NULL) holds no delimiter: NULL + 0 is
         * undefined behaviour in C, so do not form it. */
        const char *hit = s->rlen > scanned
                              ? find(s->rbuf + s->rpos + scanned,
                                     s->rlen - scanned, delim, delim_len)
                              : NULL;
        if (hit) {
            size_t len = (size_t)(hit - (s->rbuf + s->rpos));
            if (len > max) {
                r = -EMSGSIZE;
                break;
            }
            memcpy(buf, s->rbuf + s->rpos, len);
            s->rpos += len + delim_len;
            s->rlen -= len + delim_len;
            r = (ssize_t)len;
            break;
        }
        if (s->rlen >= max + delim_len) {
            r = -EMSGSIZE; /* the delimiter would end past max */
            break;
        }
        if (s->rlen >= delim_len)
            scanned = s->rlen - delim_len + 1;
        r = ahead_fill(s, max + delim_len - s->rlen);
        if (r <= 0) {
            /* As anyio's IncompleteRead: 0 stays "an empty record". */
            if (r == 0)
                r = -ENODATA;
            break;
        }
        s->rlen += (size_t)r;
    }
    wf_stream_unclaim(s, true);
    return r;
}

WF_EXPORT ssize_t weft_stream_send(weft_stream *s, const void *buf, size_t len)
{
    int rc = wf_stream_claim(s, buf || !len ? 0 : -EFAULT, false);
    if (rc < 0)
        return rc;
    size_t done = 0;
    ssize_t r = 0;
    while (done < len && r >= 0) {
        if (wf_stream_closing(s)) {
            r = -EBADF;
            break;
        }
        r = s->ops->send(s, (const char *)buf + done, len - done);
        if (r > 0)
            done += (size_t)r;
        else if (r == 0)
            r = -EIO; /* a transport that takes nothing */
    }
    if (r >= 0)
        r = (ssize_t)len;
    else if (wf_stream_closing(s))
        r = -EBADF;
    wf_stream_unclaim(s, false);
    return r;
}

/* The verdict on sendv's arguments, and their total. */
static int sendv_args(const struct iovec *iov, int iovcnt, size_t *total)
{
    *total = 0;
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    if (!iov && iovcnt)
        return -EFAULT;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EFAULT;
        if (iov[i].iov_len > (size_t)SSIZE_MAX - *total)
            return -EINVAL;
        *total += iov[i].iov_len;
    }
    return 0;
}

/* Up to this many pieces go to the transport at once from the caller's
 * stack; a longer array goes in runs of this many. */
#define WF_SENDV_RUN 16

WF_EXPORT ssize_t weft_stream_sendv(weft_stream *s, const struct iovec *iov,
                                    int iovcnt)
{
    size_t total;
    int rc = wf_stream_claim(s, sendv_args(iov, iovcnt, &total), false);
    if (rc < 0)
        return rc;
    struct iovec run[WF_SENDV_RUN];
    int next = 0;    /* the first piece of iov not yet in run */
    size_t skip = 0; /* bytes of iov[next] already sent */
    ssize_t r = 0;
    for (;;) {
        /* The pieces still to send, from where the last call stopped. */
        int n = 0;
        for (int i = next; i < iovcnt && n < WF_SENDV_RUN; i++) {
            size_t off = i == next ? skip : 0;
            if (iov[i].iov_len > off)
                run[n++] = (struct iovec){(char *)iov[i].iov_base + off,
                                          iov[i].iov_len - off};
        }
        if (!n)
            break;
        if (wf_stream_closing(s)) {
            r = -EBADF;
            break;
        }
        r = s->ops->sendv ? s->ops->sendv(s, run, n)
                          : s->ops->send(s, run[0].iov_base, run[0].iov_len);
        if (r == 0)
            r = -EIO; /* a transport that takes nothing */
        if (r < 0)
            break;
        /* Step past what was taken. */
        size_t took = (size_t)r;
        while (took && next < iovcnt) {
            size_t left = iov[next].iov_len - skip;
            if (took < left) {
                skip += took;
                break;
            }
            took -= left;
            next++;
            skip = 0;
        }
    }
    if (r >= 0)
        r = (ssize_t)total;
    else if (wf_stream_closing(s))
        r = -EBADF;
    wf_stream_unclaim(s, false);
    return r;
}

WF_EXPORT int weft_stream_send_eof(weft_stream *s)
{
    int rc = wf_stream_claim(s, 0, false);
    if (rc < 0)
        return rc;
    rc = s->ops->send_eof ? s->ops->send_eof(s) : -ENOTSUP;
    if (rc < 0 && wf_stream_closing(s))
        rc = -EBADF; /* a blocking half-close (TLS) cut short by close */
    wf_stream_unclaim(s, false);
    return rc;
}

WF_EXPORT int weft_stream_close(weft_stream *s)
{
    if (!s)
        return -EINVAL;
    if (wf_stream_closing(s))
        return -EBADF;
    struct weft_task *self = wf_self();
    if (self && (s->receiver == self || s->sender == self))
        wf_panic("weft_stream_close: called from inside a call on the same "
                 "stream (a transport's callback closing its own stream "
                 "would wait for itself)");
    /* Operations in flight end first: the kernel owns their buffers. */
    wf_gate_close(&s->gate, "weft_stream_close");
    int rc = s->ops->close(s);
    lend_end(s);
    ahead_drop(s);
    wf_free(s);
    return rc;
}

WF_EXPORT int weft_stream_fd(const weft_stream *s)
{
    if (!s)
        return -EINVAL;
    return s->ops->fd ? s->ops->fd(s) : -ENOTSUP;
}

WF_EXPORT void weft_stream_kernel_deadlines(weft_stream *s, bool on)
{
    if (s)
        s->kernel_deadlines = on;
}

/* Read by the loop's own thread only, like every field of s: no lock. */
WF_EXPORT size_t weft_stream_buffered(const weft_stream *s)
{
    if (!s)
        return 0;
    size_t n = s->rlen + (s->ops->queued ? s->ops->queued(s) : 0);
    const weft_stream *b = wf_stream_bottom(s); /* a borrowed stream's */
    return b != s ? n + weft_stream_buffered(b) : n;
}

WF_EXPORT int weft_stream_set_multishot(weft_stream *s, bool on)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, s != NULL, s && wf_stream_closing(s));
    if (rc < 0)
        return rc;
    return s->ops->multishot ? s->ops->multishot(s, on) : -ENOTSUP;
}
