/* SPDX-License-Identifier: MIT */
/*
 * engine/group.c - task groups: spawn and start, the end of every task,
 * and the errors a group keeps (anyio's ExceptionGroup).
 */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

/* weft_group_start's record, on the starter's stack. */
struct wf_start {
    struct weft_task *waiter;
    void *value;
    int rc;
    bool done;
};

WF_EXPORT void weft_group_enter(weft_group *g)
{
    struct weft_task *t = wf_self();
    if (!t)
        wf_panic("weft_group_enter called outside a weft task");
    if (!g)
        wf_panic("weft_group_enter: NULL group");
    wf_scope_check_fresh(t, &g->wf_scope, "weft_group_enter");
    g->wf_host = NULL;
    g->wf_children = 0;
    g->wf_nerr = 0;
    g->wf_more = NULL;
    g->wf_child_cancelled = false;
    wf_scope_link(&g->wf_scope, t->scope, t, WF_SCOPE_GROUP);
    t->scope = &g->wf_scope;
}

bool wf_group_open(const weft_group *g, const struct wf_loop *L)
{
    const weft_scope *s = &g->wf_scope;
    return (s->wf_flags & WF_SCOPE_GROUP) && s->wf_state == WF_SCOPE_LIVE &&
           s->wf_task && s->wf_task->loop == L;
}

/* A child of g, its root hanging from attach (g's scope if NULL), ready. */
static int make_child(struct wf_loop *L, weft_group *g, const char *name,
                      weft_fn fn, void *arg, weft_scope *attach,
                      struct weft_task **out)
{
    struct weft_task *c;
    int rc = wf_task_new(L, fn, arg, name, &c);
    if (rc < 0)
        return rc;
    c->group = g;
    g->wf_children++;
    wf_scope_link(&c->root, attach ? attach : &g->wf_scope, c,
                  WF_SCOPE_TASKROOT);
    wf_ready(c);
    if (out)
        *out = c;
    return 0;
}

/* The arguments of a spawn or start: fn, and g open on this loop. */
static bool spawn_args_ok(const weft_group *g, weft_fn fn)
{
    return wf_cur && g && fn && wf_group_open(g, wf_cur);
}

static int spawn(weft_group *g, const char *name, weft_fn fn, void *arg)
{
    struct weft_task *self;
    int rc = wf_entry_nowait(&self, spawn_args_ok(g, fn), false);
    if (rc < 0)
        return rc;
    return make_child(self->loop, g, name, fn, arg, NULL, NULL);
}

/* For another thread's call: a child of g made from the scheduler. */
int wf_spawn_into(struct wf_loop *L, weft_group *g, weft_fn fn, void *arg)
{
    if (!wf_group_open(g, L))
        return -EINVAL;
    return make_child(L, g, NULL, fn, arg, NULL, NULL);
}

/* A task of no group, hanging from attach; on_exit gets its result. */
int wf_spawn_system(struct wf_loop *L, weft_fn fn, void *arg,
                    weft_scope *attach, void (*on_exit)(struct weft_task *),
                    void *exit_arg)
{
    struct weft_task *c;
    int rc = wf_task_new(L, fn, arg, NULL, &c);
    if (rc < 0)
        return rc;
    c->on_exit = on_exit;
    c->exit_arg = exit_arg;
    wf_scope_link(&c->root, attach, c, WF_SCOPE_TASKROOT);
    wf_ready(c);
    return 0;
}

WF_EXPORT int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
    return spawn(g, NULL, fn, arg);
}

WF_EXPORT int weft_group_spawn_named(weft_group *g, const char *name,
                                     weft_fn fn, void *arg)
{
    return spawn(g, name, fn, arg);
}

WF_EXPORT int weft_group_start_named(weft_group *g, const char *name,
                                     weft_fn fn, void *arg, void **value)
{
    struct weft_task *self;
    int rc = wf_entry(&self, spawn_args_ok(g, fn), false);
    if (rc < 0)
        return rc;
    struct wf_start st = {.waiter = self};
    struct weft_task *c;
    /* Until it has started, the task runs under the starter's scopes. */
    rc = make_child(self->loop, g, name, fn, arg, self->scope, &c);
    if (rc < 0)
        return rc;
    c->start = &st;
    struct wf_wait w = {.what = "weft_group_start"};
    while (!st.done)
        wf_block(&w);
    if (st.rc == 0 && value)
        *value = st.value;
    return st.rc;
}

WF_EXPORT int weft_group_start(weft_group *g, weft_fn fn, void *arg,
                               void **value)
{
    return weft_group_start_named(g, NULL, fn, arg, value);
}

WF_EXPORT void weft_task_started(void *value)
{
    struct weft_task *t = wf_self();
    if (!t || !t->start)
        return; /* not being started, or started already */
    struct wf_start *st = t->start;
    t->start = NULL;
    st->value = value;
    st->rc = 0;
    st->done = true;
    wf_scope_reparent(&t->root, &t->group->wf_scope);
    wf_wake(st->waiter);
}

/*
 * Every error is kept (API.md). The first WEFT_GROUP_ERRORS_KEPT live in
 * the group; the rest in an array the host task owns: a group has no
 * destroy call, and it is read by its host, so the array is freed when the
 * host task ends. Out of memory, an error is still counted.
 */
struct weft__group_more {
    struct weft__group_more *next; /* the host task's list */
    size_t n, cap;
    struct wf_err {
        int rc;
        char name[28];
    } e[];
};

static struct wf_err *more_slot(weft_group *g)
{
    struct weft__group_more *m = g->wf_more;
    if (m && m->n < m->cap)
        return &m->e[m->n++];
    struct weft_task *host = g->wf_scope.wf_task;
    size_t cap = m ? m->cap * 2 : 8;
    struct weft__group_more *n = wf_malloc(sizeof *n + cap * sizeof n->e[0]);
    if (!n)
        return NULL;
    n->n = m ? m->n : 0;
    n->cap = cap;
    if (m)
        memcpy(n->e, m->e, m->n * sizeof m->e[0]);
    /* The host's list owns it; the old array is replaced in place. */
    n->next = m ? m->next : host->group_errors;
    if (m) {
        struct weft__group_more **pp = &host->group_errors;
        while (*pp != m)
            pp = &(*pp)->next;
        *pp = n;
        wf_free(m);
    } else {
        host->group_errors = n;
    }
    g->wf_more = n;
    return &n->e[n->n++];
}

void wf_group_errors_free(struct weft_task *t)
{
    struct weft__group_more *m = t->group_errors;
    while (m) {
        struct weft__group_more *next = m->next;
        wf_free(m);
        m = next;
    }
    t->group_errors = NULL;
}

static void set_err(int *rc_out, char *name_out, size_t name_size, int rc,
                    const char *name)
{
    *rc_out = rc;
    snprintf(name_out, name_size, "%s", name ? name : "");
}

/* Keep an error: appended, or first (the host body's). */
static void keep_error(weft_group *g, bool first, int rc, const char *name)
{
    size_t n = g->wf_nerr++;
    if (!first) {
        if (n < WEFT_GROUP_ERRORS_KEPT) {
            set_err(&g->wf_err[n].rc, g->wf_err[n].name,
                    sizeof g->wf_err[n].name, rc, name);
        } else {
            struct wf_err *e = more_slot(g);
            if (e)
                set_err(&e->rc, e->name, sizeof e->name, rc, name);
        }
        return;
    }
    /* First: everything moves one place on, the last inline one to the
     * front of the rest. */
    if (n >= WEFT_GROUP_ERRORS_KEPT) {
        struct wf_err *e = more_slot(g);
        if (e) {
            struct weft__group_more *m = g->wf_more;
            memmove(&m->e[1], &m->e[0], (m->n - 1) * sizeof m->e[0]);
            m->e[0].rc = g->wf_err[WEFT_GROUP_ERRORS_KEPT - 1].rc;
            memcpy(m->e[0].name, g->wf_err[WEFT_GROUP_ERRORS_KEPT - 1].name,
                   sizeof m->e[0].name);
        }
        n = WEFT_GROUP_ERRORS_KEPT - 1;
    }
    memmove(&g->wf_err[1], &g->wf_err[0], n * sizeof g->wf_err[0]);
    set_err(&g->wf_err[0].rc, g->wf_err[0].name, sizeof g->wf_err[0].name, rc,
            name);
}

/* A child's error: kept, and it cancels the group; -ECANCELED is a
 * cancellation, never an error (API.md). */
static void child_failed(weft_group *g, int rc, const char *name)
{
    if (rc == -ECANCELED) {
        g->wf_child_cancelled = true;
    } else {
        keep_error(g, false, rc, name);
        wf_scope_do_cancel(&g->wf_scope, WF_REASON_CANCEL);
    }
}

/* The end of a task, on its own stack: tell its starter or its group. */
void wf_task_finished(struct weft_task *t)
{
    struct wf_loop *L = t->loop;
    weft_group *g = t->group;
    int rc = t->result;
    if (t->start) {
        struct wf_start *st = t->start;
        t->start = NULL;
        st->rc = rc < 0 ? rc : -ECHILD; /* its error is the starter's */
        st->done = true;
        wf_wake(st->waiter);
    } else if (g && rc < 0) {
        child_failed(g, rc, weft_task_name(t));
    }
    if (t->id == L->root_id) {
        L->result = rc;
        L->root = NULL; /* the record goes back to the pool */
    }
    if (t->on_exit)
        t->on_exit(t);
    wf_list_del(&t->root.wf_node);
    t->root.wf_state = WF_SCOPE_EXITED;
    L->ntasks--;
    if (g && --g->wf_children == 0 && g->wf_host)
        wf_wake(g->wf_host);
}

/* A child on another core ended (its end message, on g's loop). */
void wf_group_child_ended(weft_group *g, int rc, const char *name)
{
    if (rc < 0)
        child_failed(g, rc, name);
    if (--g->wf_children == 0 && g->wf_host)
        wf_wake(g->wf_host);
}

WF_EXPORT int weft_group_exit(weft_group *g, int rc)
{
    struct weft_task *t = wf_self();
    if (!t)
        wf_panic("weft_group_exit called outside a weft task");
    if (!g)
        wf_panic("weft_group_exit: NULL group");
    wf_scope_check_innermost(t, &g->wf_scope, "weft_group_exit");
    if (rc < 0)
        wf_scope_do_cancel(&g->wf_scope, WF_REASON_CANCEL);
    if (rc < 0 && rc != -ECANCELED)
        keep_error(g, true, rc, weft_task_name(t));
    while (g->wf_children) {
        struct wf_wait w = {.what = "weft_group_exit (children)"};
        g->wf_host = t;
        wf_block(&w);
        g->wf_host = NULL;
    }
    if (g->wf_nerr) {
        wf_scope_close(t, &g->wf_scope, 0);
        return g->wf_err[0].rc;
    }
    /* As in trio, the children's cancellations pass through the group. */
    if (rc == 0 && g->wf_child_cancelled)
        rc = -ECANCELED;
    return wf_scope_close(t, &g->wf_scope, rc);
}

WF_EXPORT weft_scope *weft_group_scope(weft_group *g)
{
    return g ? &g->wf_scope : NULL;
}

WF_EXPORT void weft_group_cancel(weft_group *g)
{
    if (g)
        weft_scope_cancel(&g->wf_scope);
}

WF_EXPORT size_t weft_group_error_count(const weft_group *g)
{
    return g ? g->wf_nerr : 0;
}

WF_EXPORT int weft_group_error(const weft_group *g, size_t i,
                               const char **task_name)
{
    if (task_name)
        *task_name = NULL;
    if (!g || i >= g->wf_nerr)
        return -EINVAL;
    if (i < WEFT_GROUP_ERRORS_KEPT) {
        if (task_name)
            *task_name = g->wf_err[i].name;
        return g->wf_err[i].rc;
    }
    const struct weft__group_more *m = g->wf_more;
    i -= WEFT_GROUP_ERRORS_KEPT;
    if (!m || i >= m->n)
        return -ENOMEM; /* counted, but there was no memory to keep it */
    if (task_name)
        *task_name = m->e[i].name;
    return m->e[i].rc;
}
