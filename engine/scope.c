/* SPDX-License-Identifier: MIT */
/*
 * engine/scope.c - cancel scopes, level-triggered as in trio.
 *
 * Scopes form one tree per loop: each scope hangs from the scope that
 * enclosed it, and each task has a root node hanging from its group's
 * scope (or, while weft_group_start waits, from its starter's scope). A
 * task is cancelled while some scope between its innermost one and the
 * nearest shield has had cancel called. Cancelling a scope walks its
 * subtree, skipping shielded branches, and pokes the wait of every task
 * blocked there.
 */
#include "engine/engine.h"

#ifdef WEFT_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)0)
#endif

#define SCOPE_MAGIC 0x5c09e5c0u

static void deadline_fired(struct weft__timer *tm);

void wf_scope_link(weft_scope *s, weft_scope *parent, struct weft_task *t,
                   uint16_t flags)
{
    s->wf_parent = parent;
    s->wf_task = t;
    s->wf_flags = flags;
    s->wf_reason = WF_REASON_NONE;
    s->wf_state = WF_SCOPE_LIVE;
    s->wf_magic = SCOPE_MAGIC;
    s->wf_timer.when = WEFT_FOREVER;
    s->wf_timer.armed = false;
    s->wf_timer.fire = deadline_fired;
    wf_list_init(&s->wf_kids);
    if (parent)
        wf_list_push(&parent->wf_kids, &s->wf_node);
    else
        wf_list_init(&s->wf_node);
}

void wf_scope_reparent(weft_scope *s, weft_scope *parent)
{
    wf_list_del(&s->wf_node);
    s->wf_parent = parent;
    wf_list_push(&parent->wf_kids, &s->wf_node);
}

void wf_scope_unlink(struct wf_loop *L, weft_scope *s)
{
    if (!wf_list_empty(&s->wf_kids))
        wf_panic("scope %p exited while scopes or tasks inside it are "
                 "still live",
                 (void *)s);
    wf_timer_disarm(L, &s->wf_timer);
    if (s->wf_flags & WF_SCOPE_CANCELLED)
        L->ncancelled--;
    wf_list_del(&s->wf_node);
    s->wf_state = WF_SCOPE_EXITED;
}

bool wf_cancelled(const struct weft_task *t)
{
    for (const weft_scope *s = t->scope; s; s = s->wf_parent) {
        if (s->wf_flags & WF_SCOPE_CANCELLED)
            return true;
        if (s->wf_flags & WF_SCOPE_SHIELD)
            return false;
    }
    return false;
}

bool wf_scope_outer_visible(const weft_scope *s)
{
    if (s->wf_flags & WF_SCOPE_SHIELD)
        return false;
    for (const weft_scope *p = s->wf_parent; p; p = p->wf_parent) {
        if (p->wf_flags & WF_SCOPE_CANCELLED)
            return true;
        if (p->wf_flags & WF_SCOPE_SHIELD)
            return false;
    }
    return false;
}

/* The first child of p, from link n on, that an outer cancel reaches. */
static weft_scope *first_reached(weft_scope *p, wf_link *n)
{
    for (; n != &p->wf_kids; n = n->next) {
        weft_scope *c = wf_container_of(n, weft_scope, wf_node);
        if (!(c->wf_flags & WF_SCOPE_SHIELD))
            return c;
    }
    return NULL;
}

/* Poke every task blocked in top's subtree (iterative: no recursion). */
static void deliver(weft_scope *top)
{
    weft_scope *s = top;
    for (;;) {
        if (s->wf_task && s->wf_task->scope == s)
            wf_deliver_cancel(s->wf_task);
        else if (wf_unlikely(s->wf_flags & WF_SCOPE_REMOTE))
            wf_remote_cancel(s);
        weft_scope *next = first_reached(s, s->wf_kids.next);
        while (!next) {
            if (s == top)
                return;
            weft_scope *p = s->wf_parent;
            next = first_reached(p, s->wf_node.next);
            s = p;
        }
        s = next;
    }
}

void wf_scope_do_cancel(weft_scope *s, int reason)
{
    if (s->wf_flags & WF_SCOPE_CANCELLED)
        return;
    struct wf_loop *L = s->wf_task->loop;
    s->wf_flags |= WF_SCOPE_CANCELLED;
    s->wf_reason = (uint8_t)reason;
    L->ncancelled++;
    wf_timer_disarm(L, &s->wf_timer);
    deliver(s);
}

static void deadline_fired(struct weft__timer *tm)
{
    weft_scope *s = wf_container_of(tm, weft_scope, wf_timer);
    wf_scope_do_cancel(s, WF_REASON_DEADLINE);
}

static struct weft_task *need_task(const char *call)
{
    struct weft_task *t = wf_self();
    if (!t)
        wf_panic("%s called outside a weft task", call);
    return t;
}

static bool live(const weft_scope *s)
{
    if (!s)
        return false;
    /* A scope not entered yet is whatever the user's stack held: reading
     * its magic anyway is the point (it tells a live scope entered again
     * from a fresh one), so Valgrind is told the bytes are meant. */
    VALGRIND_MAKE_MEM_DEFINED(&s->wf_magic, sizeof s->wf_magic);
    VALGRIND_MAKE_MEM_DEFINED(&s->wf_state, sizeof s->wf_state);
    return s->wf_magic == SCOPE_MAGIC && s->wf_state == WF_SCOPE_LIVE;
}

/* Arm, disarm or fire a live scope's deadline (now: 0 if not read yet). */
static void apply_deadline(weft_scope *s, weft_time deadline, weft_time now)
{
    struct wf_loop *L = s->wf_task->loop;
    s->wf_timer.when = deadline;
    if (s->wf_flags & WF_SCOPE_CANCELLED)
        return;
    if (deadline == WEFT_FOREVER)
        wf_timer_disarm(L, &s->wf_timer);
    else if (deadline <= (now ? now : weft_now()))
        wf_scope_do_cancel(s, WF_REASON_DEADLINE);
    else
        wf_timer_arm(L, &s->wf_timer, deadline);
}

/* Entering a scope that is live already would make it its own ancestor. */
void wf_scope_check_fresh(const struct weft_task *t, const weft_scope *s,
                          const char *call)
{
    if (!live(s))
        return; /* the usual case: never entered, or exited */
    for (const weft_scope *p = t->scope; p; p = p->wf_parent)
        if (p == s)
            wf_panic("%s(%p): this scope is already entered (and not "
                     "exited) in task '%s'",
                     call, (void *)s, weft_task_name(t));
}

static void enter(weft_scope *s, weft_time deadline, weft_time now)
{
    struct weft_task *t = need_task("weft_scope_enter");
    if (!s)
        wf_panic("weft_scope_enter: NULL scope");
    wf_scope_check_fresh(t, s, "weft_scope_enter");
    wf_scope_link(s, t->scope, t, 0);
    t->scope = s;
    if (deadline != WEFT_FOREVER)
        apply_deadline(s, deadline, now);
}

WF_EXPORT void weft_scope_enter(weft_scope *s, weft_time deadline)
{
    enter(s, deadline, 0);
}

WF_EXPORT void weft_move_on_after(weft_scope *s, weft_time delay)
{
    if (delay == WEFT_FOREVER) {
        enter(s, WEFT_FOREVER, 0);
        return;
    }
    weft_time now = weft_now();
    if (delay > 0 && now > WEFT_FOREVER - delay)
        enter(s, WEFT_FOREVER - 1, now);
    else
        enter(s, now + delay, now);
}

WF_EXPORT void weft_fail_after(weft_scope *s, weft_time delay)
{
    weft_move_on_after(s, delay);
    s->wf_flags |= WF_SCOPE_FAIL;
}

/* Close s in task t and say what the code after it sees. */
int wf_scope_close(struct weft_task *t, weft_scope *s, int rc)
{
    bool caught = rc == -ECANCELED && (s->wf_flags & WF_SCOPE_CANCELLED) &&
                  !wf_scope_outer_visible(s);
    wf_scope_unlink(t->loop, s);
    t->scope = s->wf_parent;
    if (!caught)
        return rc;
    s->wf_flags |= WF_SCOPE_CAUGHT;
    if ((s->wf_flags & WF_SCOPE_FAIL) && s->wf_reason == WF_REASON_DEADLINE)
        return -ETIMEDOUT;
    return 0;
}

void wf_scope_check_innermost(struct weft_task *t, weft_scope *s,
                              const char *call)
{
    if (!live(s))
        wf_panic("%s: scope %p is not live (never entered, or exited "
                 "already)",
                 call, (void *)s);
    if (s->wf_task != t)
        wf_panic("%s: scope %p was entered by task '%s', not by the "
                 "calling task '%s'",
                 call, (void *)s, weft_task_name(s->wf_task),
                 weft_task_name(t));
    if (t->scope != s)
        wf_panic("scope exited out of order: %s(%p) in task '%s', but the "
                 "innermost scope is %p (exit it first)",
                 call, (void *)s, weft_task_name(t), (void *)t->scope);
}

WF_EXPORT int weft_scope_exit(weft_scope *s, int rc)
{
    struct weft_task *t = need_task("weft_scope_exit");
    wf_scope_check_innermost(t, s, "weft_scope_exit");
    if (s->wf_flags & WF_SCOPE_GROUP)
        wf_panic("weft_scope_exit(%p): this is a group's scope; leave it "
                 "with weft_group_exit",
                 (void *)s);
    return wf_scope_close(t, s, rc);
}

WF_EXPORT void weft_scope_cancel(weft_scope *s)
{
    if (live(s))
        wf_scope_do_cancel(s, WF_REASON_CANCEL);
}

WF_EXPORT void weft_scope_set_deadline(weft_scope *s, weft_time deadline)
{
    if (!s)
        return;
    if (live(s))
        apply_deadline(s, deadline, 0);
    else
        s->wf_timer.when = deadline;
}

WF_EXPORT weft_time weft_scope_deadline(const weft_scope *s)
{
    return s ? s->wf_timer.when : WEFT_FOREVER;
}

WF_EXPORT void weft_scope_set_shield(weft_scope *s, bool shield)
{
    if (!s)
        return;
    if (shield) {
        s->wf_flags |= WF_SCOPE_SHIELD;
        return;
    }
    bool was = s->wf_flags & WF_SCOPE_SHIELD;
    s->wf_flags &= ~WF_SCOPE_SHIELD;
    /* Outer cancellation now reaches the tasks blocked inside. */
    if (was && live(s) && wf_scope_outer_visible(s))
        deliver(s);
}

WF_EXPORT bool weft_scope_shield(const weft_scope *s)
{
    return s && (s->wf_flags & WF_SCOPE_SHIELD);
}

WF_EXPORT bool weft_scope_cancel_called(const weft_scope *s)
{
    if (!s)
        return false;
    if (s->wf_flags & WF_SCOPE_CANCELLED)
        return true;
    /* A deadline that passed before the loop got to its timer cancels the
     * scope now (as trio's does), so that exit agrees with this answer. */
    if (live(s) && s->wf_timer.when != WEFT_FOREVER &&
        s->wf_timer.when <= weft_now() && wf_cur == s->wf_task->loop) {
        wf_scope_do_cancel((weft_scope *)s, WF_REASON_DEADLINE);
        return true;
    }
    return false;
}

WF_EXPORT bool weft_scope_cancelled_caught(const weft_scope *s)
{
    return s && (s->wf_flags & WF_SCOPE_CAUGHT);
}

WF_EXPORT weft_time weft_current_effective_deadline(void)
{
    struct weft_task *t = wf_self();
    if (!t)
        return WEFT_FOREVER;
    weft_time d = WEFT_FOREVER;
    for (const weft_scope *s = t->scope; s; s = s->wf_parent) {
        if (s->wf_flags & WF_SCOPE_CANCELLED)
            return -WEFT_FOREVER;
        if (s->wf_timer.when < d)
            d = s->wf_timer.when;
        if (s->wf_flags & WF_SCOPE_SHIELD)
            break;
    }
    return d;
}
