/* SPDX-License-Identifier: MIT */
/*
 * weft/transport.h - writing a transport: what a program implements to
 * make its own kind of weft_stream (a framing layer, a compressor, a
 * stream over a device weft does not know, TLS itself: api/tls/tls.c is
 * built on exactly this header).
 *
 * A transport moves bytes; the stream layer around it gives every
 * transport the rest of weft/stream.h for free: recv_exactly, recv_until
 * and their read-ahead, the -EBUSY rule (one receiving and one sending
 * task at a time), the entry checks (-EBADF after close, -ECANCELED in a
 * cancelled scope), sendv, and a close that waits for the calls under
 * way.
 *
 * The callbacks run in the calling task and may block on any weft call
 * (another stream's recv/send, weft_uring_await, a sleep, a channel):
 *
 *   - recv: move some bytes into buf (1..max) and return how many, 0 at
 *     the end of the stream, or -errno. Never called with max 0.
 *   - send: take some of the bytes (1..len) and return how many, or
 *     -errno; the stream layer calls again for the rest. Never called
 *     with len 0.
 *   - sendv (optional): the same for an iovec array (iovcnt >= 1, no
 *     empty entries); without it, sendv sends each piece with send.
 *   - send_eof (optional): half-close; without it send_eof is -ENOTSUP.
 *   - kill (optional): the stream is being closed; make whatever the
 *     callbacks are blocked in end soon. Rarely needed: every weft call
 *     the callbacks make is already cut short by the close (see below).
 *   - close: release the transport and impl; called once, after every
 *     call has left (weft_stream_close frees the stream after it).
 *   - fd (optional): the descriptor under the transport, for
 *     weft_stream_fd; without it weft_stream_fd is -ENOTSUP.
 *
 * Cancellation and close. The callbacks see the caller's scopes: a
 * cancelled caller gets -ECANCELED from the weft calls inside, and the
 * callback returns it (or, if bytes moved despite it, the count: a call
 * that completed returns its result). weft_stream_close cancels each
 * callback under way as if through a scope of its own around it (the
 * weft calls inside return -ECANCELED, and the stream layer gives the
 * caller -EBADF), then waits for them to return before it calls close.
 * A receive callback must keep what it has read but not yet returned for
 * the next call, so that a cancelled receive loses nothing.
 */
#ifndef WEFT_TRANSPORT_H
#define WEFT_TRANSPORT_H

#include <sys/types.h>
#include <sys/uio.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_transport {
    ssize_t (*recv)(void *impl, void *buf, size_t max);
    ssize_t (*send)(void *impl, const void *buf, size_t len);
    ssize_t (*sendv)(void *impl, const struct iovec *iov, int iovcnt);
    int (*send_eof)(void *impl);
    void (*kill)(void *impl);
    int (*close)(void *impl);
    int (*fd)(const void *impl);
} weft_transport;

/*
 * A stream over ops and impl (which the stream owns from now on: on
 * failure ops->close(impl) has been called). ops must stay valid while
 * the stream lives; recv, send and close are required (-EINVAL). Not a
 * checkpoint; may be called outside a loop.
 */
int weft_stream_new(weft_stream **out, const weft_transport *ops, void *impl);
/* The impl a stream was made with; NULL for weft's own transports. */
void *weft_stream_impl(const weft_stream *s);
/* True once weft_stream_close has begun: a callback that loops should
 * stop (its weft calls return -ECANCELED from then on). */
bool weft_stream_closing(const weft_stream *s);

#ifdef __cplusplus
}
#endif
#endif
