/*
 * api/stream/stream_impl.h - what a transport implements to be a
 * weft_stream, and the fd-backed socket transport (TCP, Unix,
 * socketpair: api/stream/socket.c). Internal.
 */
#ifndef WF_API_STREAM_IMPL_H
#define WF_API_STREAM_IMPL_H

#include "engine/engine.h"
#include <weft/stream.h>

struct wf_stream_ops {
    /* One transfer each; the stream layer has claimed the side and checks
     * closing before each call; a transport takes its SQE with
     * wf_stream_sqe, which checks it again. */
    ssize_t (*recv)(weft_stream *s, void *buf, size_t max);
    ssize_t (*send)(weft_stream *s, const void *buf, size_t len); /* some */
    int (*send_eof)(weft_stream *s);
    /* Kill operations in flight (the waiters then return). */
    void (*kill)(weft_stream *s);
    /* Release the transport; the stream layer frees s afterwards. */
    int (*close)(weft_stream *s);
    int (*fd)(const weft_stream *s);
};

struct weft_stream {
    const struct wf_stream_ops *ops;
    /* read-ahead, for recv_exactly / recv_until */
    char *rbuf;
    size_t rcap, rpos, rlen;
    struct weft_task *receiver, *sender;
    struct weft_task *closer;     /* waiting in close for the above */
    bool closing;
    bool kernel_deadlines;        /* linked timeouts at the deadline */
};

void wf_stream_init(weft_stream *s, const struct wf_stream_ops *ops);
/* Claim the receive (or send) side for the calling task: 0, -EPERM,
 * -EINVAL, -EBADF (closing), -EBUSY, -ECANCELED; then release it. */
int wf_stream_claim(weft_stream *s, struct weft_task **side);
void wf_stream_unclaim(weft_stream *s, struct weft_task **side);
/* An SQE for a transport's operation, or NULL if the stream began to
 * close while it was taken (then return -EBADF). */
struct io_uring_sqe *wf_stream_sqe(weft_stream *s);
/* The deadline a transport's operation should carry: the effective one
 * if the stream asked for kernel deadlines, else none. */
weft_time wf_stream_deadline(const weft_stream *s);
/* A transport's result: a kernel deadline that fired is the scope's
 * cancellation (its timers are fired now, so the scope knows it). */
ssize_t wf_stream_result(ssize_t r);

/* A socket stream: an fd and the two operations that may be in flight. */
struct wf_sock_stream {
    weft_stream base;
    int fd;
    struct wf_io rio, sio;
};

extern const struct wf_stream_ops wf_sock_ops;
/* A socket stream owning fd (closed on failure too). */
int wf_sock_stream_new(int fd, weft_stream **out);

#endif
