/* SPDX-License-Identifier: MIT */
/*
 * engine/sync.c - Event, Lock, Semaphore and Condition (anyio's), over the
 * waiter queue of waitq.c. Uncontended paths touch only the primitive:
 * no syscall, no allocation, no yield.
 */
#include "engine/engine.h"

#include <limits.h>

/* ---- Event ---- */

WF_EXPORT void weft_event_init(weft_event *e)
{
    wf_list_init(&e->wf_waiters);
    e->wf_nwait = 0;
    e->wf_set = false;
}

WF_EXPORT void weft_event_set(weft_event *e)
{
    if (!e || e->wf_set)
        return;
    e->wf_set = true;
    struct wf_waiter *wr;
    while ((wr = wf_waiter_first(&e->wf_waiters)))
        wf_waiter_grant(wr, 0);
}

WF_EXPORT bool weft_event_is_set(const weft_event *e)
{
    return e && e->wf_set;
}

WF_EXPORT int weft_event_wait(weft_event *e)
{
    struct weft_task *t;
    int rc = wf_entry(&t, e != NULL, false);
    if (rc < 0)
        return rc;
    if (e->wf_set)
        return 0;
    struct wf_waiter wr = {0};
    return wf_waiter_block(&wr, &e->wf_waiters, &e->wf_nwait, "weft_event_wait",
                           true);
}

WF_EXPORT int weft_event_statistics(const weft_event *e, weft_event_stats *st)
{
    if (!e || !st)
        return -EINVAL;
    st->tasks_waiting = e->wf_nwait;
    return 0;
}

/* ---- Lock ---- */

WF_EXPORT void weft_lock_init(weft_lock *l)
{
    wf_list_init(&l->wf_waiters);
    l->wf_nwait = 0;
    l->wf_owner = NULL;
    l->wf_owner_id = 0;
    l->wf_owner_loop = 0;
}

/* Owners are named by task id and loop (wf_task_is), not by record. */
static bool lock_owned_by(const weft_lock *l, const struct weft_task *t)
{
    return l->wf_owner_id && wf_task_is(t, l->wf_owner_id, l->wf_owner_loop);
}

static void lock_set_owner(weft_lock *l, struct weft_task *t)
{
    l->wf_owner = t;
    l->wf_owner_id = t ? t->id : 0;
    l->wf_owner_loop = t ? t->loop->serial : 0;
}

/* cancellable = false: condition_wait's shielded re-acquire. */
static int lock_acquire(weft_lock *l, bool cancellable)
{
    struct weft_task *t;
    int rc = cancellable ? wf_entry(&t, l != NULL, false)
                         : wf_entry_nowait(&t, l != NULL, false);
    if (rc < 0)
        return rc;
    if (lock_owned_by(l, t))
        return -EDEADLK;
    if (!l->wf_owner_id && !l->wf_nwait) {
        lock_set_owner(l, t);
        return 0;
    }
    struct wf_waiter wr = {0};
    /* On success the releaser made this task the owner already. */
    return wf_waiter_block(&wr, &l->wf_waiters, &l->wf_nwait,
                           "weft_lock_acquire", cancellable);
}

WF_EXPORT int weft_lock_acquire(weft_lock *l)
{
    return lock_acquire(l, true);
}

WF_EXPORT int weft_lock_try_acquire(weft_lock *l)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, l != NULL, false);
    if (rc < 0)
        return rc;
    if (lock_owned_by(l, t))
        return -EDEADLK;
    if (l->wf_owner_id || l->wf_nwait)
        return -EAGAIN;
    lock_set_owner(l, t);
    return 0;
}

WF_EXPORT int weft_lock_release(weft_lock *l)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, l != NULL, false);
    if (rc < 0)
        return rc;
    if (!lock_owned_by(l, t))
        return -EPERM;
    struct wf_waiter *next = wf_waiter_first(&l->wf_waiters);
    lock_set_owner(l, next ? next->wait.task : NULL);
    if (next)
        wf_waiter_grant(next, 0);
    return 0;
}

WF_EXPORT bool weft_lock_locked(const weft_lock *l)
{
    return l && l->wf_owner_id;
}

WF_EXPORT int weft_lock_statistics(const weft_lock *l, weft_lock_stats *st)
{
    if (!l || !st)
        return -EINVAL;
    st->locked = l->wf_owner_id != 0;
    st->owner = l->wf_owner;
    st->owner_id = l->wf_owner_id;
    st->tasks_waiting = l->wf_nwait;
    return 0;
}

/* ---- Semaphore ---- */

WF_EXPORT void weft_semaphore_init(weft_semaphore *s, unsigned initial,
                                   unsigned max)
{
    wf_list_init(&s->wf_waiters);
    s->wf_nwait = 0;
    s->wf_max = max;
    s->wf_value = max && initial > max ? max : initial;
}

WF_EXPORT int weft_semaphore_acquire(weft_semaphore *s)
{
    struct weft_task *t;
    int rc = wf_entry(&t, s != NULL, false);
    if (rc < 0)
        return rc;
    if (s->wf_value && !s->wf_nwait) {
        s->wf_value--;
        return 0;
    }
    struct wf_waiter wr = {0};
    return wf_waiter_block(&wr, &s->wf_waiters, &s->wf_nwait,
                           "weft_semaphore_acquire", true);
}

WF_EXPORT int weft_semaphore_try_acquire(weft_semaphore *s)
{
    if (!s)
        return -EINVAL;
    if (!s->wf_value || s->wf_nwait)
        return -EAGAIN;
    s->wf_value--;
    return 0;
}

WF_EXPORT int weft_semaphore_release(weft_semaphore *s)
{
    if (!s)
        return -EINVAL;
    if (s->wf_max && s->wf_value >= s->wf_max)
        return -EOVERFLOW;
    if (s->wf_value == UINT_MAX) /* no maximum: never wrap to 0 */
        return -EOVERFLOW;
    struct wf_waiter *next = wf_waiter_first(&s->wf_waiters);
    if (next)
        wf_waiter_grant(next, 0); /* the token passes straight on */
    else
        s->wf_value++;
    return 0;
}

WF_EXPORT unsigned weft_semaphore_value(const weft_semaphore *s)
{
    return s ? s->wf_value : 0;
}

WF_EXPORT int weft_semaphore_statistics(const weft_semaphore *s,
                                        weft_semaphore_stats *st)
{
    if (!s || !st)
        return -EINVAL;
    st->tasks_waiting = s->wf_nwait;
    return 0;
}

/* ---- Condition ---- */

WF_EXPORT void weft_condition_init(weft_condition *c, weft_lock *l)
{
    weft_lock_init(&c->wf_own);
    c->wf_lock = l ? l : &c->wf_own;
    wf_list_init(&c->wf_waiters);
    c->wf_nwait = 0;
}

WF_EXPORT int weft_condition_acquire(weft_condition *c)
{
    return lock_acquire(c ? c->wf_lock : NULL, true);
}

WF_EXPORT int weft_condition_release(weft_condition *c)
{
    return weft_lock_release(c ? c->wf_lock : NULL);
}

WF_EXPORT int weft_condition_wait(weft_condition *c)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, c != NULL, false);
    if (rc < 0)
        return rc;
    if (!lock_owned_by(c->wf_lock, t))
        return -EPERM; /* misuse: reported before the checkpoint */
    rc = wf_entry(&t, true, false);
    if (rc < 0)
        return rc; /* cancelled: the lock stays held */
    weft_lock_release(c->wf_lock);
    struct wf_waiter wr = {0};
    rc = wf_waiter_block(&wr, &c->wf_waiters, &c->wf_nwait,
                         "weft_condition_wait", true);
    /* Shielded: the caller holds the lock again whatever happened. */
    lock_acquire(c->wf_lock, false);
    return rc;
}

WF_EXPORT void weft_condition_notify(weft_condition *c, unsigned n)
{
    struct wf_waiter *wr;
    while (c && n-- && (wr = wf_waiter_first(&c->wf_waiters)))
        wf_waiter_grant(wr, 0);
}

WF_EXPORT void weft_condition_notify_all(weft_condition *c)
{
    struct wf_waiter *wr;
    while (c && (wr = wf_waiter_first(&c->wf_waiters)))
        wf_waiter_grant(wr, 0);
}

WF_EXPORT int weft_condition_statistics(const weft_condition *c,
                                        weft_condition_stats *st)
{
    if (!c || !st)
        return -EINVAL;
    st->tasks_waiting = c->wf_nwait;
    return weft_lock_statistics(c->wf_lock, &st->lock);
}
