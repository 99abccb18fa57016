/* SPDX-License-Identifier: MIT */
/*
 * engine/timer.c - the per-loop timer heap: every sleep and every scope
 * deadline is a node here, and the earliest bounds the ring wait.
 *
 * A pairing heap of intrusive nodes: insert O(1), removal of any node
 * O(log n) amortised, and no allocation, so arming a deadline cannot fail.
 */
#include "engine/engine.h"

typedef struct weft__timer wf_timer;

/* Join two detached heaps; the later root becomes the earlier's child. */
static wf_timer *meld(wf_timer *a, wf_timer *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->when < a->when) {
        wf_timer *t = a;
        a = b;
        b = t;
    }
    b->next = a->child;
    if (a->child)
        a->child->prev = b;
    b->prev = a;
    a->child = b;
    return a;
}

/* The standard two-pass merge of a sibling list into one heap. */
static wf_timer *merge_pairs(wf_timer *first)
{
    wf_timer *stack = NULL;
    while (first) {
        wf_timer *a = first, *b = a->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b)
            b->next = b->prev = NULL;
        wf_timer *m = meld(a, b);
        m->next = stack; /* a stack of pairs, reusing next */
        stack = m;
    }
    wf_timer *root = NULL;
    while (stack) {
        wf_timer *m = stack;
        stack = m->next;
        m->next = NULL;
        root = meld(root, m);
    }
    return root;
}

void wf_timer_arm(struct wf_loop *L, wf_timer *t, weft_time when)
{
    if (t->armed)
        wf_timer_disarm(L, t);
    t->when = when;
    t->child = t->next = t->prev = NULL;
    t->armed = true;
    L->timers = meld(L->timers, t);
}

void wf_timer_disarm(struct wf_loop *L, wf_timer *t)
{
    if (!t->armed)
        return;
    t->armed = false;
    if (t == L->timers) {
        L->timers = merge_pairs(t->child);
    } else {
        if (t->prev->child == t)
            t->prev->child = t->next;
        else
            t->prev->next = t->next;
        if (t->next)
            t->next->prev = t->prev;
        t->next = t->prev = NULL;
        L->timers = meld(L->timers, merge_pairs(t->child));
    }
    if (L->timers)
        L->timers->prev = NULL;
    t->child = NULL;
}

void wf_timers_expire(struct wf_loop *L, weft_time now)
{
    while (L->timers && L->timers->when <= now) {
        wf_timer *t = L->timers;
        wf_timer_disarm(L, t);
        t->fire(t);
    }
}

void wf_timers_fire_due(void)
{
    struct wf_loop *L = wf_cur;
    if (L && L->timers)
        wf_timers_expire(L, weft_now());
}
