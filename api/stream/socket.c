/* SPDX-License-Identifier: MIT */
/*
 * api/stream/socket.c - the socket transport (TCP, Unix, socketpair): an
 * fd and the two ring operations that may be in flight on it, one recv
 * and one send.
 */
#include "api/stream/stream_impl.h"

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

static ssize_t sock_recv(weft_stream *s, void *buf, size_t max)
{
    struct wf_sock_stream *ss = sock(s);
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
    struct wf_bufring *b = wf_bufs(L);
    if (!b)
        return -ENOTSUP;
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

static int sock_close(weft_stream *s)
{
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
    .close = sock_close,
    .fd = sock_fd,
    .recv_select = sock_recv_select,
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
