/* SPDX-License-Identifier: MIT */
/*
 * engine/dump.c - weft_dump_tasks: the loop's scope tree, printed with
 * every group, scope and task, and what each blocked task waits for.
 */
#include "engine/engine.h"

static const char *state_name(const struct weft_task *t)
{
    switch (t->state) {
    case WF_READY:
        return "ready";
    case WF_RUNNING:
        return "running";
    case WF_BLOCKED:
        return t->wait && t->wait->what ? t->wait->what : "blocked";
    default:
        return "done";
    }
}

static int depth_of(const weft_scope *s)
{
    int d = 0;
    while ((s = s->wf_parent))
        d++;
    return d;
}

static void print_tree(FILE *out, const weft_scope *top, weft_time now);

static void print_node(FILE *out, const weft_scope *s, weft_time now)
{
    fprintf(out, "%*s", 2 * depth_of(s), "");
    if (s->wf_flags & WF_SCOPE_TASKROOT) {
        const struct weft_task *t = s->wf_task;
        fprintf(out, "task %llu '%s'", (unsigned long long)t->id,
                weft_task_name(t));
        if (t->loop->rt)
            fprintf(out, " on core %u", t->loop->core);
        fprintf(out, ": %s%s\n", t->start ? "starting, " : "", state_name(t));
        return;
    }
    if (s->wf_flags & WF_SCOPE_REMOTE) {
        char what[96];
        wf_remote_describe(s, what, sizeof what);
        fprintf(out, "remote child: %s\n", what);
        return;
    }
    if (s->wf_flags & WF_SCOPE_GROUP) {
        const weft_group *g = wf_container_of(s, weft_group, wf_scope);
        fprintf(out, "group %p: %zu children", (const void *)g, g->wf_children);
    } else {
        fprintf(out, "scope %p", (const void *)s);
    }
    if (s->wf_timer.when != WEFT_FOREVER)
        fprintf(out, ", deadline in %.3f ms",
                (double)(s->wf_timer.when - now) / WEFT_MSEC);
    if (s->wf_flags & WF_SCOPE_SHIELD)
        fputs(", shielded", out);
    if (s->wf_flags & WF_SCOPE_CANCELLED)
        fputs(", cancelled", out);
    fputc('\n', out);
}

WF_EXPORT void weft_dump_tasks(FILE *out)
{
    struct wf_loop *L = wf_cur;
    if (!out)
        out = stderr;
    if (!L) {
        fputs("weft: no loop runs on this thread\n", out);
        return;
    }
    weft_time now = weft_now();
    if (L->rt)
        fprintf(out, "weft loop of core %u (of %u): ", L->core,
                weft_core_count());
    else
        fputs("weft loop: ", out);
    fprintf(out, "%zu tasks, %u operations in flight\n", L->ntasks,
            L->ring.inflight);
    if (L->root) /* NULL once main has returned */
        print_tree(out, &L->root->root, now);
    if (!wf_list_empty(&L->system.wf_kids)) {
        fputs("tasks of no group (calls from other threads and cores):\n", out);
        print_tree(out, &L->system, now);
    }
    fflush(out);
}

static void print_tree(FILE *out, const weft_scope *top, weft_time now)
{
    const weft_scope *s = top;
    /* Pre-order walk of the tree, iterative like scope.c's. */
    for (;;) {
        print_node(out, s, now);
        if (!wf_list_empty(&s->wf_kids)) {
            s = wf_container_of(s->wf_kids.next, weft_scope, wf_node);
            continue;
        }
        while (s != top && s->wf_node.next == &s->wf_parent->wf_kids)
            s = s->wf_parent;
        if (s == top)
            break;
        s = wf_container_of(s->wf_node.next, weft_scope, wf_node);
    }
}
