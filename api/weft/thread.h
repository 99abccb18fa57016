/* SPDX-License-Identifier: MIT */
/*
 * weft/thread.h - the thread bridge (anyio.to_thread, anyio.from_thread,
 * BlockingPortal).
 *
 * weft_to_thread runs a blocking function on a worker thread while the
 * calling task waits; workers come from one pool per process, made on
 * demand and retired after weft_options.thread_idle (10 s) idle. From a
 * worker, weft_from_thread_run / _run_sync call back into the loop that
 * sent it. A portal is a loop on a thread of its own that any thread may
 * call into.
 */
#ifndef WEFT_THREAD_H
#define WEFT_THREAD_H

#include <weft/base.h>
#include <weft/sync.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_ABANDON_ON_CANCEL 1u

/*
 * Run fn(arg) on a worker thread, holding a token of limiter (NULL = the
 * loop's default, 40 tokens) until it returns. Without
 * WEFT_ABANDON_ON_CANCEL the wait is shielded: a cancellation is noted
 * (weft_from_thread_check_cancelled sees it), fn's result is returned, and
 * the next checkpoint reports it. With it, a cancellation returns
 * -ECANCELED at once; the worker's result is dropped when it finishes and
 * its token is held until then (so a limiter of the caller's must outlive
 * the worker's function, not just the call).
 * -EPERM outside a task.
 */
int weft_to_thread(weft_fn fn, void *arg, weft_limiter *limiter,
                   unsigned flags);
weft_limiter *weft_default_thread_limiter(void); /* NULL outside a loop */

/* In a weft_to_thread worker: run fn as a task on its loop, wait, return
 * its result. -EPERM from any other thread; -ESHUTDOWN if the loop has
 * ended (an abandoned call outlived it). */
int weft_from_thread_run(weft_fn fn, void *arg);
/* The same, but fn runs as a plain function on the loop's thread, between
 * tasks (it must not block; weft calls that need a task return -EPERM). */
int weft_from_thread_run_sync(weft_fn fn, void *arg);
/* In a worker: -ECANCELED if the waiting task has been cancelled, else 0;
 * -EPERM from any other thread. */
int weft_from_thread_check_cancelled(void);

typedef struct weft_portal weft_portal; /* anyio BlockingPortal */
int weft_portal_open(weft_portal **p, const weft_options *opts);
/* From any thread but the portal's own: run fn as a task on the portal's
 * loop, wait, return its result. -EBADF once closing has begun. */
int weft_portal_call(weft_portal *p, weft_fn fn, void *arg);
/* Waits for the calls under way, stops the loop, joins its thread, frees p. */
int weft_portal_close(weft_portal *p);

#ifdef __cplusplus
}
#endif
#endif
