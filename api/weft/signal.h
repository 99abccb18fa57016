/* SPDX-License-Identifier: MIT */
/*
 * weft/signal.h - receiving signals (anyio's open_signal_receiver;
 * API.md, "Signals").
 *
 * While a receiver is open its signals are blocked in the thread that
 * opened it and in every core thread of its runtime (weft's worker pool
 * blocks every signal already), and they are read from a signalfd by the
 * loop that opened it, in the order the kernel queues them. A signal that
 * arrives before the first receive stays pending and is received then.
 */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_signal_receiver weft_signal_receiver;

/*
 * Block signals[0 .. n-1] in every thread weft runs (the caller's, the
 * other cores' of its runtime) and open a receiver for them. From a task;
 * a checkpoint. -EINVAL: no signals, a number out of range, SIGKILL or
 * SIGSTOP, or one the C library keeps for itself. Threads the program
 * made itself must block the signals themselves (or be made after the
 * open, from a thread that has them blocked): the kernel delivers a
 * process-directed signal to any thread that does not block it.
 */
int weft_signal_open(weft_signal_receiver **out, const int *signals, size_t n);
/*
 * The next signal's number: a checkpoint that waits until one of the
 * receiver's signals is pending. A cancelled receive consumes nothing.
 * Only on the loop that opened the receiver (-EPERM elsewhere, as
 * outside a task); -EBADF once closing or closed.
 */
int weft_signal_receive(weft_signal_receiver *r);
/*
 * Close r (receives under way return -EBADF) and restore the mask: each
 * signal that was not blocked when the first open receiver for it was
 * opened is unblocked again in the threads where weft blocked it, once
 * no receiver for it is open. A signal still pending then is delivered
 * as usual (its handler, or its default action). Frees r.
 */
int weft_signal_close(weft_signal_receiver *r);

#ifdef __cplusplus
}
#endif

#endif
