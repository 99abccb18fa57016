/* SPDX-License-Identifier: MIT */
/*
 * api/stream/pipe.c - the pipe transport: one end of a pipe (a child
 * process's stdin, stdout or stderr). RECV and SEND fail on a pipe, so it
 * reads and writes with READ and WRITE at offset -1 (the fd's position:
 * none, for a pipe). send_eof closes the fd, which is how a pipe's reader
 * sees the end.
 *
 * A write into a pipe with no reader raises SIGPIPE on the thread that
 * does it (the loop's own, when io_uring writes inline or from task
 * work). While a pipe write is in flight the loop's thread keeps SIGPIPE
 * blocked, and a SIGPIPE raised meanwhile is taken back (sigtimedwait),
 * so the write is -EPIPE and nothing else, as a socket's send with
 * MSG_NOSIGNAL.
 */
#include "api/stream/stream_impl.h"

#include <signal.h>
#include <unistd.h>
#include <weft/uring.h>

struct wf_pipe_stream {
    weft_stream base;
    int fd; /* -1 once send_eof closed it */
};

static struct wf_pipe_stream *pipe_of(weft_stream *s)
{
    return (struct wf_pipe_stream *)s;
}

/* The most one SQE asks for (its length field has 32 bits). */
#define WF_PIPE_CHUNK ((size_t)1 << 30)

static ssize_t pipe_recv(weft_stream *s, void *buf, size_t max)
{
    int fd = pipe_of(s)->fd;
    if (fd < 0)
        return -EBADF;
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    io_uring_prep_read(sqe, fd, buf,
                       (unsigned)(max < WF_PIPE_CHUNK ? max : WF_PIPE_CHUNK),
                       (__u64)-1);
    return wf_stream_await(s, sqe, "weft_stream_recv");
}

/* SIGPIPE held back on this thread while its pipe writes are in flight. */
static __thread unsigned sigpipe_holds;
static __thread bool sigpipe_was_blocked, sigpipe_was_pending;

static void sigpipe_hold(void)
{
    if (sigpipe_holds++)
        return;
    sigset_t one, old, pending;
    sigemptyset(&one);
    sigaddset(&one, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &one, &old);
    sigpipe_was_blocked = sigismember(&old, SIGPIPE);
    sigpipe_was_pending =
        sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

static void sigpipe_release(void)
{
    if (--sigpipe_holds)
        return;
    sigset_t one, pending;
    sigemptyset(&one);
    sigaddset(&one, SIGPIPE);
    if (!sigpipe_was_pending && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&one, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    if (!sigpipe_was_blocked)
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

static ssize_t pipe_send(weft_stream *s, const void *buf, size_t len)
{
    int fd = pipe_of(s)->fd;
    if (fd < 0)
        return -EPIPE; /* after send_eof, as a socket after SHUT_WR */
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe)
        return -EBADF;
    io_uring_prep_write(sqe, fd, buf,
                        (unsigned)(len < WF_PIPE_CHUNK ? len : WF_PIPE_CHUNK),
                        (__u64)-1);
    sigpipe_hold();
    ssize_t n = wf_stream_await(s, sqe, "weft_stream_send");
    sigpipe_release();
    return n;
}

static int pipe_send_eof(weft_stream *s)
{
    struct wf_pipe_stream *ps = pipe_of(s);
    if (ps->fd < 0)
        return 0;
    int fd = ps->fd;
    ps->fd = -1;
    return wf_close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static int pipe_close(weft_stream *s)
{
    return pipe_send_eof(s);
}

static int pipe_fd(const weft_stream *s)
{
    int fd = ((const struct wf_pipe_stream *)s)->fd;
    return fd < 0 ? -EBADF : fd;
}

static const struct wf_stream_ops wf_pipe_ops = {
    .recv = pipe_recv,
    .send = pipe_send,
    .send_eof = pipe_send_eof,
    .close = pipe_close,
    .fd = pipe_fd,
};

int wf_pipe_stream_new(int fd, weft_stream **out)
{
    struct wf_pipe_stream *ps = wf_malloc(sizeof *ps);
    if (!ps) {
        wf_close(fd);
        return -ENOMEM;
    }
    wf_stream_init(&ps->base, &wf_pipe_ops);
    ps->fd = fd;
    *out = &ps->base;
    return 0;
}
