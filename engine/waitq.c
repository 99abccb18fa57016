/* SPDX-License-Identifier: MIT */
/*
 * engine/waitq.c - the waiter queue every sync primitive and channel
 * shares: FIFO, on the waiters' stacks, with the hand-off rule of
 * engine.h (granted means granted; cancelled first means skipped).
 */
#include "engine/engine.h"

static void waiter_cancel(struct wf_wait *w)
{
    struct wf_waiter *wr = wf_container_of(w, struct wf_waiter, wait);
    wf_waiter_grant(wr, -ECANCELED);
}

int wf_waiter_block(struct wf_waiter *wr, wf_link *queue, size_t *count,
                    const char *what, bool cancellable)
{
    wr->wait.cancel = cancellable ? waiter_cancel : NULL;
    wr->wait.what = what;
    wr->count = count;
    wf_list_push(queue, &wr->node);
    (*count)++;
    wf_block(&wr->wait);
    return wr->res;
}

void wf_waiter_grant(struct wf_waiter *wr, int res)
{
    wf_list_del(&wr->node);
    (*wr->count)--;
    wr->res = res;
    wf_wake(wr->wait.task);
}
