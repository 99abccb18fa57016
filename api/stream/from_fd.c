/* SPDX-License-Identifier: MIT */
/*
 * api/stream/from_fd.c - weft_stream_from_fd: a stream over a descriptor
 * the program already has. A connected stream socket gets the socket
 * transport (RECV/SEND); a pipe end, a FIFO or a character device (a
 * tty) gets the small fd transport below (READ/WRITE at no offset: RECV
 * fails on what is not a socket); a regular file or a block device is a
 * file stream (weft_file_stream), from the fd's own position.
 *
 * The descriptor's flags are left as they are: io_uring reads and writes
 * pipes and ttys without O_NONBLOCK, and changing it would change it for
 * every process sharing the open file (a terminal).
 */
#include "api/fs/fs_impl.h"
#include "api/stream/stream_impl.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/file.h>
#include <weft/uring.h>

#define WF_FD_CHUNK ((size_t)1 << 30)

static ssize_t fd_recv(weft_stream *s, void *buf, size_t max)
{
    struct wf_sock_stream *x = (struct wf_sock_stream *)s;
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    io_uring_prep_read(sqe, x->fd, buf,
                       (unsigned)(max < WF_FD_CHUNK ? max : WF_FD_CHUNK),
                       (__u64)-1);
    return wf_stream_await(s, sqe, "weft_stream_recv");
}

static ssize_t fd_send(weft_stream *s, const void *buf, size_t len)
{
    struct wf_sock_stream *x = (struct wf_sock_stream *)s;
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    io_uring_prep_write(sqe, x->fd, buf,
                        (unsigned)(len < WF_FD_CHUNK ? len : WF_FD_CHUNK),
                        (__u64)-1);
    ssize_t rc = wf_stream_await(s, sqe, "weft_stream_send");
    return rc == 0 && len ? -EPIPE : rc; /* a write of nothing: no reader */
}

static int fd_send_eof(weft_stream *s)
{
    (void)s;
    return -ENOTSUP; /* the write end closes with the stream */
}

static int fd_close(weft_stream *s)
{
    return wf_close(((struct wf_sock_stream *)s)->fd) < 0 ? -errno : 0;
}

static int fd_fd(const weft_stream *s)
{
    return ((const struct wf_sock_stream *)s)->fd;
}

static const struct wf_stream_ops fd_ops = {
    .recv = fd_recv,
    .send = fd_send,
    .send_eof = fd_send_eof,
    .close = fd_close,
    .fd = fd_fd,
};

/* A connected stream socket, not a listener: 0, or why not. */
static int socket_check(int fd)
{
    int type = 0, acc = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno;
    if (type != SOCK_STREAM && type != SOCK_SEQPACKET)
        return -EINVAL; /* datagrams are not a byte stream */
    len = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc)
        return -EINVAL; /* a listener: weft_listener_from_fd */
    struct sockaddr_storage peer;
    len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
        return -errno; /* -ENOTCONN: not connected */
    return 0;
}

/* The fd transport over fd (closed on failure too). */
static int fd_stream_new(int fd, weft_stream **out)
{
    struct wf_sock_stream *x = wf_malloc(sizeof *x);
    if (!x) {
        wf_close(fd);
        return -ENOMEM;
    }
    wf_stream_init(&x->base, &fd_ops);
    x->fd = fd;
    x->ms = NULL; /* not a socket stream's ops: never used */
    *out = &x->base;
    return 0;
}

/* A file stream over fd (closed on failure too). */
static int file_stream_new(int fd, weft_stream **out)
{
    weft_file *f;
    int rc = wf_file_from_fd(fd, &f);
    if (rc < 0) {
        wf_close(fd);
        return rc;
    }
    weft_stream *s = weft_file_stream(f);
    if (!s) {
        weft_file_close(f); /* closes fd */
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

WF_EXPORT int weft_stream_from_fd(weft_stream **out, int fd)
{
    if (fd < 0)
        return -EBADF;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno; /* -EBADF: nothing to close */
    int rc = -EINVAL;  /* no out; a directory, ... */
    if (out && S_ISSOCK(st.st_mode)) {
        rc = socket_check(fd);
        if (rc == 0)
            return wf_sock_stream_new(fd, out);
    } else if (out && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        return fd_stream_new(fd, out);
    } else if (out && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        return file_stream_new(fd, out);
    }
    wf_close(fd);
    return rc;
}
