/* SPDX-License-Identifier: MIT */
/*
 * engine/task.c - a task's life: made on a pooled stack, run from its
 * fiber's entry, finished (group bookkeeping in group.c), and reclaimed by
 * the scheduler once it has switched away from the task's stack.
 */
#include "engine/engine.h"

#include <dlfcn.h>
#include <string.h>

_Static_assert(offsetof(struct weft_task, state) < 64,
               "a task's hot fields must share its first cache line");

_Noreturn static void task_entry(void *arg)
{
    struct weft_task *t = arg;
    wf_fiber_started(&t->fiber);
    t->state = WF_RUNNING;
    t->result = t->fn(t->arg);
    if (t->scope != &t->root)
        wf_panic("task '%s' (id %llu) ended inside a cancel scope or group "
                 "it did not exit (%p)",
                 weft_task_name(t), (unsigned long long)t->id,
                 (void *)t->scope);
    if (t->tokens)
        wf_limiter_task_ended(t);
    if (t->group_errors)
        wf_group_errors_free(t);
    t->state = WF_DONE;
    wf_task_finished(t);
    struct wf_loop *L = t->loop;
    L->dead = t;
    L->current = NULL;
    wf_fiber_switch(&t->fiber, &L->sched, true);
    __builtin_unreachable();
}

int wf_task_new(struct wf_loop *L, weft_fn fn, void *arg, const char *name,
                struct weft_task **out)
{
    if (wf_queues_reserve(L, L->ntasks + 1) < 0)
        return -ENOMEM;
    struct weft_task *t = wf_stack_get(L);
    if (!t)
        return -ENOMEM;
    char *lo = (char *)t->slot + L->guard;
    wf_fiber_init(&t->fiber, lo, (size_t)((char *)t - lo), task_entry, t);
    t->loop = L;
    t->scope = &t->root;
    t->wait = NULL;
    t->fn = fn;
    t->arg = arg;
    t->group = NULL;
    t->start = NULL;
    t->tokens = 0;
    t->group_errors = NULL;
    t->on_exit = NULL;
    t->exit_arg = NULL;
    t->id = ++L->next_id;
    t->result = 0;
    t->state = WF_READY;
    t->deep = 0;
    if (name) {
        size_t n = strnlen(name, sizeof t->name - 1);
        memcpy(t->name, name, n);
        t->name[n] = '\0';
    } else {
        t->name[0] = '\0';
    }
    L->ntasks++;
    *out = t;
    return 0;
}

void wf_task_reclaim(struct wf_loop *L, struct weft_task *t)
{
    wf_fiber_destroy(&t->fiber);
    wf_stack_put(L, t);
}

WF_EXPORT weft_task *weft_task_current(void)
{
    return wf_self();
}

void wf_fn_name(weft_fn fn, char *buf, size_t n)
{
    Dl_info info;
    if (dladdr((void *)fn, &info) && info.dli_sname &&
        info.dli_saddr == (void *)fn)
        snprintf(buf, n, "%s", info.dli_sname);
    else if (n)
        buf[0] = '\0';
}

/* An unnamed task is called after its function, as anyio does. */
WF_EXPORT const char *weft_task_name(const weft_task *ct)
{
    if (!ct)
        return "";
    struct weft_task *t = (struct weft_task *)ct;
    if (t->name[0])
        return t->name;
    wf_fn_name(t->fn, t->name, sizeof t->name);
    if (!t->name[0])
        snprintf(t->name, sizeof t->name, "task-%llu",
                 (unsigned long long)t->id);
    return t->name;
}

WF_EXPORT uint64_t weft_task_id(const weft_task *t)
{
    return t ? t->id : 0;
}
