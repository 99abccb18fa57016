/* SPDX-License-Identifier: MIT */
/*
 * epoll/epoll.h - the second backend: the loop's SQEs carried out with
 * epoll, non-blocking system calls and a worker pool, for systems that
 * refuse io_uring (API.md, "Backends"; docs/guide/backends.md).
 *
 * It sits where uring/ring.c does and keeps its contract: the engine
 * writes SQEs into r->ring's SQ (here plain memory of the same shape),
 * and each wf_completion gets the res and flags the kernel would have
 * posted. So every rule above this layer - cancellation, deadlines,
 * multishot, the answered cancel - is the same code on both backends.
 *
 * How each operation is carried out:
 * - sockets, pipes, eventfd, signalfd, pidfd: tried at once without
 *   blocking; if it would block, the operation waits on the descriptor,
 *   which is registered once, edge-triggered, for both directions, and
 *   tried again at each edge;
 * - regular files: a read is tried at once from the page cache
 *   (RWF_NOWAIT); anything that may block (reads that missed, writes,
 *   opens, stats, renames, fsync...) runs on the loop's worker threads;
 * - linked timeouts: a heap of deadlines that bounds epoll_wait;
 * - ASYNC_CANCEL: a waiting operation is just taken off its descriptor,
 *   a queued job off the queue (-ECANCELED, the cancel answers 0); a job
 *   a worker runs is let finish (-EALREADY), as io-wq does.
 */
#ifndef WF_EPOLL_H
#define WF_EPOLL_H

#include "uring/ring.h"

int wf_epoll_init(struct wf_ring *r, const struct wf_ring_params *rp, char *why,
                  unsigned whylen);
void wf_epoll_exit(struct wf_ring *r);
/* Carry out the SQEs queued so far; their completions wait for a pump. */
void wf_epoll_submit(struct wf_ring *r);
/* As wf_ring_pump. */
int wf_epoll_pump(struct wf_ring *r, bool wait, int64_t timeout_ns);
/* fd is about to be closed: forget what is known of it (its registration,
 * its kind), so that a descriptor reusing the number starts afresh. */
void wf_epoll_forget(struct wf_ring *r, int fd);

#endif
