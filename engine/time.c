/* SPDX-License-Identifier: MIT */
/*
 * engine/time.c - sleeping and checkpoints. A sleep is a node in the
 * loop's timer heap and a wait record on the sleeper's stack: no SQE, no
 * allocation.
 */
#include "engine/engine.h"

WF_EXPORT int weft_checkpoint(void)
{
    struct weft_task *t;
    int rc = wf_entry(&t, true, false);
    if (rc < 0)
        return rc;
    wf_yield();
    return t->loop->ncancelled && wf_cancelled(t) ? -ECANCELED : 0;
}

WF_EXPORT int weft_checkpoint_if_cancelled(void)
{
    struct weft_task *t;
    return wf_entry(&t, true, false);
}

WF_EXPORT int weft_cancel_shielded_checkpoint(void)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, true, false);
    if (rc < 0)
        return rc;
    wf_yield();
    return 0;
}

struct wf_sleep {
    struct wf_wait wait;
    struct weft__timer timer;
    int res;
};

static void sleep_fired(struct weft__timer *tm)
{
    struct wf_sleep *sl = wf_container_of(tm, struct wf_sleep, timer);
    wf_wake(sl->wait.task);
}

static void sleep_cancel(struct wf_wait *w)
{
    struct wf_sleep *sl = wf_container_of(w, struct wf_sleep, wait);
    wf_timer_disarm(w->task->loop, &sl->timer);
    sl->res = -ECANCELED;
    wf_wake(w->task);
}

WF_EXPORT int weft_sleep_until(weft_time deadline)
{
    struct weft_task *t;
    int rc = wf_entry(&t, true, false);
    if (rc < 0)
        return rc;
    if (deadline <= 0 || deadline <= weft_now()) {
        wf_yield();
        return t->loop->ncancelled && wf_cancelled(t) ? -ECANCELED : 0;
    }
    struct wf_sleep sl = {
        .wait = {.cancel = sleep_cancel, .what = "weft_sleep"},
        .timer = {.fire = sleep_fired},
    };
    if (deadline != WEFT_FOREVER)
        wf_timer_arm(t->loop, &sl.timer, deadline);
    else
        sl.wait.what = "weft_sleep_forever";
    wf_block(&sl.wait);
    return sl.res;
}

WF_EXPORT int weft_sleep(weft_time delay)
{
    if (delay <= 0)
        return weft_sleep_until(0);
    weft_time now = weft_now();
    if (delay >= WEFT_FOREVER - now)
        return weft_sleep_until(WEFT_FOREVER - 1);
    return weft_sleep_until(now + delay);
}

WF_EXPORT int weft_sleep_forever(void)
{
    return weft_sleep_until(WEFT_FOREVER);
}
