/* SPDX-License-Identifier: MIT */
/*
 * api/stream/stream_impl.h - what a transport implements to be a
 * weft_stream, the fd-backed socket transport (TCP, Unix, socketpair:
 * api/stream/socket.c) and the pipe transport (api/stream/pipe.c).
 * Internal.
 */
#ifndef WF_API_STREAM_IMPL_H
#define WF_API_STREAM_IMPL_H

#include "engine/engine.h"
#include <sys/uio.h>
#include <weft/stream.h>

struct wf_stream_ops {
    /* One transfer each; the stream layer has claimed the side (and so
     * entered the stream's gate) and checks closing before each call; a
     * transport takes its SQE with wf_stream_sqe and awaits it with
     * wf_stream_await, so that a close cancels it. */
    ssize_t (*recv)(weft_stream *s, void *buf, size_t max);
    ssize_t (*send)(weft_stream *s, const void *buf, size_t len); /* some */
    /* Optional: some of iov[0..n) (n >= 1, no empty entries); without
     * it weft_stream_sendv sends piece by piece with send. */
    ssize_t (*sendv)(weft_stream *s, const struct iovec *iov, int n);
    int (*send_eof)(weft_stream *s);
    /* Optional: cancel what the transport has in flight elsewhere (a
     * file stream's file operations); the gate's own are cancelled. */
    void (*kill)(weft_stream *s);
    /* Release the transport; the stream layer frees s afterwards. */
    int (*close)(weft_stream *s);
    int (*fd)(const weft_stream *s);
    /* Optional: one receive into a buffer the kernel picks from the
     * loop's provided buffers (engine/bufs.c): > 0 with *data and *piece
     * set (the piece is the caller's to put back), 0 at the end, -ENOBUFS
     * (every buffer is out) or -ENOTSUP (the loop has none: receive into
     * a buffer of your own), or -errno. */
    ssize_t (*recv_select)(weft_stream *s, const void **data,
                           struct wf_bufs_piece *piece);
    /* Optional: weft_stream_set_multishot (without it: -ENOTSUP). */
    int (*multishot)(weft_stream *s, bool on);
    /* Optional: bytes the transport holds for the next receives. */
    size_t (*queued)(const weft_stream *s);
};

struct weft_stream {
    const struct wf_stream_ops *ops;
    struct wf_gate gate; /* close waits for the calls inside */
    /* read-ahead, for recv_exactly / recv_until: wf_malloc'd, or (rpiece
     * held) a piece of a provided buffer that a receive filled, with no
     * room after it. Freed (put back) whenever it is empty between calls,
     * so that a stream that waits holds no buffer. */
    char *rbuf;
    size_t rcap, rpos, rlen;
    struct weft_task *receiver, *sender;
    struct wf_bufs_piece rpiece;
    /* what weft_stream_recv_borrowed lent, until the release: a piece of
     * a provided buffer, or (lent_ahead) bytes already taken from rbuf */
    struct wf_bufs_piece lent;
    bool lent_ahead;
    bool kernel_deadlines; /* linked timeouts at the deadline */
};

static inline bool wf_stream_closing(const weft_stream *s)
{
    return s->gate.closing;
}

void wf_stream_init(weft_stream *s, const struct wf_stream_ops *ops);
/* Claim the receive (or send) side for the calling task and enter the
 * gate: 0, or in this order -EPERM, -EINVAL (s NULL), bad_arg (the
 * caller's verdict on its other arguments: 0, -EINVAL or -EFAULT),
 * -EBADF (closing), -EBUSY, -ECANCELED. unclaim releases the side and
 * leaves the gate. */
int wf_stream_claim(weft_stream *s, int bad_arg, bool receive);
void wf_stream_unclaim(weft_stream *s, bool receive);
/* An SQE for a transport's operation, or NULL if the stream began to
 * close while it was taken (then return -EBADF). */
static inline struct io_uring_sqe *wf_stream_sqe(weft_stream *s)
{
    return wf_gate_sqe(&s->gate);
}
/* Await a transport's operation, at the stream's kernel deadline if it
 * asked for them; a close cancels it (-EBADF). */
ssize_t wf_stream_await(weft_stream *s, struct io_uring_sqe *sqe,
                        const char *what);
/* The same, and the terminal CQE's flags (a provided buffer it took). */
ssize_t wf_stream_await_flags(weft_stream *s, struct io_uring_sqe *sqe,
                              const char *what, unsigned *flags);

/* The transport a stream made by weft_stream_new runs on (NULL for
 * weft's own): how weft's transports built on weft/transport.h (TLS)
 * know their own streams. */
struct weft_transport;
const struct weft_transport *wf_stream_transport(const weft_stream *s);

/* A multishot receive's state (api/stream/socket.c): the pieces it
 * queued, oldest first. */
struct wf_ms_piece {
    char *p;
    uint32_t len;
    uint16_t bid;
};

struct wf_sock_ms {
    weft_stream *s;
    struct wf_completion c; /* the armed receive's CQEs */
    struct wf_defer pause;  /* its cancel, sent after the reap */
    struct wf_ms_piece *q;  /* a ring of qcap pieces from qhead */
    unsigned qhead, qlen, qcap;
    size_t qbytes;
    wf_link waiters; /* the receiver, until a piece or the end comes */
    size_t nwait;
    int err;     /* a terminal error, reported once after the queue */
    bool lost;   /* bytes were dropped (no memory to queue them): err */
    bool want;   /* on, by weft_stream_set_multishot */
    bool armed;  /* the kernel has it, and it holds the gate */
    bool eof;    /* the peer's end came: 0 after the queue, for good */
    bool nobufs; /* it ended for want of ring buffers */
};

/* A socket stream: a stream and its fd, and its multishot receive's
 * state once weft_stream_set_multishot turned it on. */
struct wf_sock_stream {
    weft_stream base;
    int fd;
    struct wf_sock_ms *ms;
};

extern const struct wf_stream_ops wf_sock_ops;
/* Whether s is a socket stream whose multishot receive is on, armed or
 * has bytes queued: then nothing but the stream may read its fd (kTLS's
 * receive direction stays in user space). */
bool wf_sock_multishot_on(const weft_stream *s);
/* Before a receive of a socket stream's fd other than the stream's own
 * (weft_unix_recv_fds): 0 when no multishot receive can read the socket
 * (after waiting for one turned off to end), 1 when it queued bytes
 * (hand them out first), -ENOTSUP while on, -ECANCELED, -EBADF. */
int wf_sock_multishot_idle(weft_stream *s, const char *what);
/* The stream whose transport moves the bytes: s, or for a borrowed
 * stream (weft_stream_borrow) the one it borrows, and so on down; for a
 * stapled one its receive side. */
const weft_stream *wf_stream_bottom(const weft_stream *s);
/* A socket stream owning fd (closed on failure too). */
int wf_sock_stream_new(int fd, weft_stream **out);

/* A pipe stream owning fd, one end of a pipe (api/stream/pipe.c): READ
 * and WRITE at offset -1; send_eof closes fd (closed on failure too). */
int wf_pipe_stream_new(int fd, weft_stream **out);

#endif
