/* SPDX-License-Identifier: MIT */
/*
 * engine/testing.c - the engine's helpers for tests: waiting until every
 * other task is blocked (trio's wait_all_tasks_blocked) and the sequencer
 * (trio's Sequencer).
 *
 * A task in weft_wait_all_tasks_blocked waits on the loop's idle queue.
 * While it is not empty, the loop never sleeps in the ring: at the end of
 * each round it looks without waiting, and when no task is ready, the look
 * reaped no completion and nothing was deferred, every task is blocked on
 * something that has not happened yet (a timer, a primitive, an operation
 * the kernel holds): the loop wakes every idle waiter (loop.c).
 */
#include "engine/engine.h"

#include <weft/testing.h>

WF_EXPORT int weft_wait_all_tasks_blocked(void)
{
    struct weft_task *t;
    int rc = wf_entry(&t, true, false);
    if (rc < 0)
        return rc;
    struct wf_waiter wr = {0};
    return wf_waiter_block(&wr, &t->loop->idle_waiters, &t->loop->nidle,
                           "weft_wait_all_tasks_blocked", true);
}

void wf_idle_wake(struct wf_loop *L)
{
    struct wf_waiter *wr;
    while ((wr = wf_waiter_first(&L->idle_waiters)))
        wf_waiter_grant(wr, 0);
}

/* ---- the sequencer ---- */

/* A task waiting for its position's turn. */
struct seq_wait {
    struct wf_waiter wr;
    unsigned position;
};

static struct seq_wait *seq_find(weft_sequencer *s, unsigned position)
{
    for (wf_link *n = s->wf_waiters.next; n != &s->wf_waiters; n = n->next) {
        struct seq_wait *sw = wf_container_of(
            wf_container_of(n, struct wf_waiter, node), struct seq_wait, wr);
        if (sw->position == position)
            return sw;
    }
    return NULL;
}

/* A wait was cancelled: nobody after it can have a turn (trio's rule). */
static void seq_break(weft_sequencer *s)
{
    s->broken = true;
    struct wf_waiter *wr;
    while ((wr = wf_waiter_first(&s->wf_waiters)))
        wf_waiter_grant(wr, -EPIPE);
}

WF_EXPORT void weft_sequencer_init(weft_sequencer *s)
{
    if (!s)
        return;
    s->next = 0;
    s->broken = false;
    s->wf_running = false;
    wf_list_init(&s->wf_waiters);
    s->wf_nwait = 0;
}

WF_EXPORT int weft_sequencer_begin(weft_sequencer *s, unsigned position)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, s != NULL, false);
    if (rc < 0)
        return rc;
    if (s->broken)
        return -EPIPE;
    /* Each position is taken once. */
    if (position < s->next || (position == s->next && s->wf_running) ||
        seq_find(s, position))
        return -EINVAL;
    if (wf_checkpoint_cancelled(t)) {
        seq_break(s);
        return -ECANCELED;
    }
    if (position == s->next) {
        s->wf_running = true;
        return 0;
    }
    struct seq_wait sw = {.position = position};
    rc = wf_waiter_block(&sw.wr, &s->wf_waiters, &s->wf_nwait,
                         "weft_sequencer_begin", true);
    /* 0: weft_sequencer_end handed this position its turn. */
    if (rc == -ECANCELED)
        seq_break(s);
    return rc;
}

WF_EXPORT void weft_sequencer_end(weft_sequencer *s, unsigned position)
{
    if (!s)
        wf_panic("weft_sequencer_end: NULL sequencer");
    if (!s->wf_running || position != s->next)
        wf_panic("weft_sequencer_end(%u): that position has not begun "
                 "(the position under way is %s%u)",
                 position, s->wf_running ? "" : "none; the next is ", s->next);
    s->next = position + 1;
    s->wf_running = false;
    struct seq_wait *sw = s->broken ? NULL : seq_find(s, s->next);
    if (sw) {
        s->wf_running = true;
        wf_waiter_grant(&sw->wr, 0);
    }
}
