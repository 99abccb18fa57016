/* SPDX-License-Identifier: MIT */
/*
 * engine/clock.c - the loop's clock: real (CLOCK_MONOTONIC) or virtual.
 *
 * A virtual loop (weft_options.clock = WEFT_CLOCK_VIRTUAL, trio's
 * MockClock with autojump) keeps its own time, L->vnow, which starts at 0
 * and moves only forward: by weft_clock_advance, and by itself to the
 * earliest timer once every task has been blocked, with no completion,
 * for opts.autojump of real time. weft_now() reads it on the loop's
 * thread; anywhere else it reads the real clock.
 *
 * Kernel-enforced deadlines (linked timeouts) do not follow it: on a
 * virtual loop wf_io_await hands the kernel no deadline and cancels the
 * operation from the timer heap instead (engine/op.c).
 */
#include "engine/engine.h"

#include <time.h>

weft_time wf_real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (weft_time)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

WF_EXPORT weft_time weft_now(void)
{
    struct wf_loop *L = wf_cur;
    if (L && L->virt)
        return L->vnow;
    return wf_real_now();
}

WF_EXPORT int weft_clock_advance(weft_time delta)
{
    struct wf_loop *L = wf_cur;
    if (!L || !L->virt)
        return -EPERM;
    if (delta < 0)
        return -EINVAL;
    /* Never onto WEFT_FOREVER: it means "no deadline". */
    L->vnow = delta >= WEFT_FOREVER - 1 - L->vnow ? WEFT_FOREVER - 1
                                                  : L->vnow + delta;
    L->quiet_since = 0;
    if (L->timers)
        wf_timers_expire(L, L->vnow); /* in deadline order */
    return 0;
}

/*
 * The ring wait of an idle virtual loop whose earliest timer lies ahead:
 * the real time left before the clock may jump, 0 if it may now, -1 if
 * it never jumps (autojump = WEFT_FOREVER). With nothing in flight no
 * completion can come, so there is nothing to wait for.
 */
int64_t wf_clock_idle_wait(struct wf_loop *L)
{
    if (L->opts.autojump == WEFT_FOREVER)
        return -1;
    if (!L->ring.inflight)
        return 0;
    weft_time real = wf_real_now();
    if (!L->quiet_since)
        L->quiet_since = real;
    weft_time left = L->quiet_since + L->opts.autojump - real;
    return left > 0 ? left : 0;
}

/*
 * After the ring call of an idle virtual loop: jump to the earliest timer
 * if nothing happened for autojump of real time (or nothing is in
 * flight); a completion (n > 0) starts the quiet over.
 */
void wf_clock_after_wait(struct wf_loop *L, weft_time next, int n)
{
    if (n > 0 || L->opts.autojump == WEFT_FOREVER) {
        L->quiet_since = 0;
        return;
    }
    if (L->ring.inflight &&
        (!L->quiet_since || wf_real_now() - L->quiet_since < L->opts.autojump))
        return;
    L->quiet_since = 0;
    if (next > L->vnow)
        L->vnow = next;
}
