/* SPDX-License-Identifier: MIT */
/*
 * weft/stream.h - byte streams (anyio's ByteStream and
 * BufferedByteReceiveStream): TCP, Unix, socketpair and file streams
 * behind one interface.
 *
 * A stream is used by one receiving and one sending task at a time; a
 * second concurrent receiver (or sender) gets -EBUSY. Bytes read ahead by
 * recv_exactly/recv_until are returned by the next recv. Every call is a
 * checkpoint; a cancelled receive loses no bytes (what was read is kept
 * for the next call), a cancelled send may have sent part of its bytes
 * (like a failed write: the stream is then only fit to close).
 */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include <sys/types.h>
#include <sys/uio.h>
#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stream weft_stream;

/* >0 bytes, 0 end of stream, -EBADF closed, -EBUSY, -ECANCELED, -errno */
ssize_t weft_stream_recv(weft_stream *s, void *buf, size_t max);
/* all of len, or -errno (-EPIPE/-ECONNRESET: the peer is gone) */
ssize_t weft_stream_send(weft_stream *s, const void *buf, size_t len);
/* n; 0 if it ended before any byte; -ENODATA if it ended part way (the
 * bytes received stay readable) */
ssize_t weft_stream_recv_exactly(weft_stream *s, void *buf, size_t n);
/* bytes before delim (delim consumed; 0 is an empty record); -EMSGSIZE if
 * the record would be longer than max (no delim ends within max +
 * delim_len bytes; nothing consumed); -ENODATA if the stream ended before
 * a delimiter, with or without bytes (those stay readable by recv) */
ssize_t weft_stream_recv_until(weft_stream *s, void *buf, size_t max,
                               const void *delim, size_t delim_len);
/*
 * Extra: receive without a buffer of your own. On success returns the
 * number of bytes (> 0) and points *data at them; they stay valid, and
 * the stream's, until weft_stream_release(s), the next receive call on s
 * that gets past its entry checks, or weft_stream_close(s). 0 at the end
 * of the stream, else as weft_stream_recv (-EBUSY, -EBADF, -ECANCELED,
 * -errno; -EFAULT: data NULL); *data is NULL unless bytes came.
 * Bytes read ahead (by recv_until, recv_exactly) come first, all at once.
 * On a socket stream the kernel picks the buffer when data arrives (the
 * loop's provided-buffer ring, Linux 5.19+): a connection waiting here
 * holds no buffer. Elsewhere (another transport, an older kernel, or
 * every ring buffer lent at once) the bytes land in a block of the
 * stream's own (16 KiB), held while it waits. A cancellation that comes
 * after the kernel filled a buffer returns the bytes (and the next
 * checkpoint reports it): nothing is lost. Release promptly: a piece held
 * keeps its ring buffer from the loop's other connections.
 */
ssize_t weft_stream_recv_borrowed(weft_stream *s, const void **data);
/*
 * Extra: the bytes recv_borrowed lent are done with: the buffer goes back
 * to the ring (or the stream's block is freed). 0 (also with nothing
 * lent); -EINVAL s NULL; -EBADF closing; -EBUSY while a receive is under
 * way on s (it already ended the borrow); -EPERM outside a task. Not a
 * checkpoint.
 */
int weft_stream_release(weft_stream *s);
/*
 * Extra: keep one multishot receive armed on a socket stream between its
 * receive calls (on: true), or stop (false). What arrives goes at once
 * into the loop's provided buffers and queues on the stream; each
 * receive call (recv, recv_borrowed, recv_until, recv_exactly) takes
 * from the queue without a submission of its own, and waits only when it
 * is empty. For request/response traffic: one completion per message, no
 * submission, no poll armed per receive. Armed lazily, by the next
 * receive; every rule of the receive calls holds (a cancelled receive
 * loses nothing: the bytes stay queued; close gives -EBADF and waits for
 * the armed receive to end). Bounded: once 8 pieces (2 before Linux
 * 6.12) or 64 KiB wait, the receive is cancelled and the next receive
 * that empties the queue arms it again. weft_stream_buffered counts the
 * queued bytes, and
 * weft_wait_readable on weft_stream_fd does not see them: check
 * weft_stream_buffered first. Receives may then also return -ENOMEM
 * for good (a piece the stream had no memory to queue: a hole). 0;
 * -ENOTSUP where there is no multishot receive (not a socket stream, the
 * epoll backend, a kernel without buffer rings; 5.19 refuses the first
 * armed receive, and receives go one-shot: they work as before);
 * -EINVAL s NULL; -EBADF closing; -EPERM outside a task; -ENOMEM. Not a
 * checkpoint.
 */
int weft_stream_set_multishot(weft_stream *s, bool on);
int weft_stream_send_eof(weft_stream *s); /* half-close; -ENOTSUP if none */
/*
 * Extra: send every byte of iov[0..iovcnt) in order (a header and a body
 * in one call): the total, or -errno as send. On a socket stream it is
 * one sendmsg on the ring (more only if the kernel takes part of it).
 * -EINVAL: iovcnt < 0 or > IOV_MAX, or a total past SSIZE_MAX; -EFAULT:
 * iov NULL with iovcnt > 0, or a NULL base with a length.
 */
ssize_t weft_stream_sendv(weft_stream *s, const struct iovec *iov, int iovcnt);
/*
 * Extra: anyio's StapledByteStream: one stream that receives from
 * receive_side and sends into send_side, and owns both from now on (on
 * failure both are closed). send_eof is send_side's send_eof, or, where
 * that has none (-ENOTSUP), closing send_side; close closes both. The two
 * may be the same kind or not (a pipe's two ends, a process's stdout and
 * stdin); they must be different streams (-EINVAL).
 */
int weft_stream_staple(weft_stream **out, weft_stream *receive_side,
                       weft_stream *send_side);
/* Cancels the stream's operations in flight, waits for them, closes the
 * transport and frees s, whatever the result (always frees s). */
int weft_stream_close(weft_stream *s);
int weft_stream_pair(weft_stream **a, weft_stream **b); /* socketpair */
/*
 * A stream over a descriptor the program already has; it takes fd (and
 * closes it on failure too, except -EBADF: no descriptor). A connected
 * stream socket (TCP, Unix) is a socket stream; a pipe end, a FIFO or a
 * tty reads and writes with READ/WRITE (send_eof: -ENOTSUP; a write to a
 * pipe with no reader is -EPIPE, and the kernel also raises SIGPIPE:
 * ignore it); a regular file is a file stream (weft_file_stream) from the
 * fd's position. -EINVAL: a listening or datagram socket, a directory;
 * -ENOTCONN: a socket that is not connected. The fd's flags are kept.
 */
int weft_stream_from_fd(weft_stream **out, int fd);

/*
 * Extra: a stream that uses s without owning it: its calls are s's
 * (receive, send, sendv, send_eof, fd), and closing it leaves s open. For
 * a wrapper that takes ownership (weft_tls_wrap) of a stream somebody
 * else closes: the connection weft_listener_serve hands a handler, which
 * serve closes when the handler returns. s must outlive the borrowed
 * stream; -EINVAL if either argument is NULL, -ENOMEM.
 */
int weft_stream_borrow(weft_stream **out, weft_stream *s);
/* Extra: the file descriptor under a socket or file stream, or -ENOTSUP. */
int weft_stream_fd(const weft_stream *s);
/* Extra: the bytes read ahead (by recv_until, or an early end of
 * recv_exactly) and those a multishot receive has queued, which the next
 * receive returns without reading the fd: check it before
 * weft_wait_readable(weft_stream_fd(s)). 0 for NULL. */
size_t weft_stream_buffered(const weft_stream *s);

#ifdef __cplusplus
}
#endif
#endif
