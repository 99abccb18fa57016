/* SPDX-License-Identifier: MIT */
/*
 * engine/cores.c - the multi-core runtime: weft_run_cores, and tasks
 * across cores (weft_core_call, weft_group_spawn_on).
 *
 * One loop per core, each on a thread pinned to one CPU of the process's
 * affinity mask; the calling thread is core 0's. Cores talk only through
 * their mailboxes (engine/mailbox.c): a task on another core is started
 * by a message to that core's loop, and its end is a message back to the
 * loop that waits for it. Tasks never migrate.
 *
 * Shutdown. Cores 1.. keep their loops alive with no task (asleep in the
 * ring) until told to stop. Every task on a core other than 0 is there
 * because a task somewhere waits for it (a core_call's caller, a group's
 * weft_group_exit), and every such waiter is, in the end, held by core
 * 0's main: so once core 0's loop has no task left, no task is left
 * anywhere and no message is in flight. Core 0 then posts a stop message
 * to every other core, joins their threads and closes its own loop.
 *
 * Cancellation across cores. A remote task runs inside a scope of its
 * own on its core. A cancel message cancels that scope; the waiter then
 * waits for the task's end message as usual. The cancel message lives in
 * the waiter's record, so the target acknowledges it, and the record is
 * given back only once both the end and the acknowledgement are in. A
 * group's remote child has a node in the group's scope tree
 * (WF_SCOPE_REMOTE, no task): deliver() (engine/scope.c) reaches it like
 * any task blocked there, shields included, and posts the cancel.
 */
#include "engine/bridge.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

struct wf_runtime;

struct wf_core {
    struct wf_runtime *rt;
    unsigned id;
    int cpu;
    pthread_t thread;
    bool joinable;
    struct wf_mailbox *mb; /* a reference: any core posts here */
    struct wf_msg stop;
    int rc; /* its start: 0, or -errno */
    char why[WF_RING_WHY];
};

struct wf_runtime {
    unsigned n;
    struct wf_core *cores;
    const weft_options *opts;
    int wq_fd; /* core 0's ring: the io-wq the others attach to */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned reported; /* threads that said whether their loop started */
    int verdict;       /* 0: not yet; 1: run; -1: give up */
};

/* ---- the runtime ---- */

static void stop_run(struct wf_loop *L, struct wf_msg *m)
{
    (void)m;
    if (L)
        L->keep_alive = false;
}

/* The loop of core c, on its thread: its mailbox, and who it is. */
static int core_attach(struct wf_loop *L, struct wf_core *c)
{
    int rc = wf_mailbox_open(L);
    if (rc < 0)
        return wf_run_error_set(rc, "weft_run_cores: cannot make a core's "
                                    "mailbox (its eventfd)");
    L->rt = c->rt;
    L->core = c->id;
    L->keep_alive = c->id != 0;
    c->mb = L->mailbox;
    wf_mailbox_get(c->mb);
    c->stop.fn = stop_run;
    return 0;
}

static void *core_thread(void *arg)
{
    struct wf_core *c = arg;
    struct wf_runtime *rt = c->rt;
    struct wf_loop *L = NULL;
    int rc = wf_loop_open(&L, rt->opts, rt->wq_fd);
    if (rc == 0) {
        rc = core_attach(L, c);
        if (rc < 0) {
            snprintf(c->why, sizeof c->why, "%s", wf_run_error_why());
            wf_loop_close(L, rc);
            L = NULL;
        }
    } else {
        snprintf(c->why, sizeof c->why, "%s", wf_run_error_why());
    }
    pthread_mutex_lock(&rt->mu);
    c->rc = rc;
    rt->reported++;
    pthread_cond_broadcast(&rt->cv);
    while (!rt->verdict)
        pthread_cond_wait(&rt->cv, &rt->mu);
    int verdict = rt->verdict;
    pthread_mutex_unlock(&rt->mu);
    if (L) {
        if (verdict > 0)
            wf_loop_run_main(L, NULL, NULL);
        wf_loop_close(L, 0);
    }
    return NULL;
}

static void runtime_free(struct wf_runtime *rt)
{
    for (unsigned i = 0; i < rt->n; i++)
        if (rt->cores[i].mb)
            wf_mailbox_put(rt->cores[i].mb);
    pthread_mutex_destroy(&rt->mu);
    pthread_cond_destroy(&rt->cv);
    wf_free(rt->cores);
    wf_free(rt);
}

/* Test hook (tests/test_cores.c): core k's thread cannot be made. */
unsigned wf_cores_fail_thread;

/* Start cores 1..n-1; 0 once all run, else every thread is joined. */
static int start_others(struct wf_runtime *rt)
{
    unsigned made = 0;
    int rc = 0;
    for (unsigned i = 1; i < rt->n; i++) {
        struct wf_core *c = &rt->cores[i];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(c->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof set, &set);
        rc = i == wf_cores_fail_thread
                 ? -EAGAIN
                 : -pthread_create(&c->thread, &attr, core_thread, c);
        pthread_attr_destroy(&attr);
        if (rc < 0) {
            snprintf(c->why, sizeof c->why,
                     "weft_run_cores: cannot make core %u's thread", i);
            c->rc = rc;
            break;
        }
        c->joinable = true;
        made++;
    }
    pthread_mutex_lock(&rt->mu);
    while (rt->reported < made)
        pthread_cond_wait(&rt->cv, &rt->mu);
    unsigned bad = 0;
    for (unsigned i = 1; i < rt->n && !bad; i++)
        if (rt->cores[i].rc < 0)
            bad = i;
    rt->verdict = bad ? -1 : 1;
    pthread_cond_broadcast(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
    if (!bad)
        return 0;
    for (unsigned i = 1; i < rt->n; i++)
        if (rt->cores[i].joinable)
            pthread_join(rt->cores[i].thread, NULL);
    char why[WF_RING_WHY + 32];
    snprintf(why, sizeof why, "core %u: %s", bad, rt->cores[bad].why);
    return wf_run_error_set(rt->cores[bad].rc, why);
}

WF_EXPORT int weft_run_cores(unsigned ncores, weft_fn main, void *arg,
                             const weft_options *opts)
{
    if (wf_cur)
        return -EBUSY;
    wf_run_error_set(0, NULL);
    if (!main)
        return -EINVAL;
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) < 0)
        return -errno;
    unsigned ncpu = (unsigned)CPU_COUNT(&mask);
    if (ncores == 0)
        ncores = ncpu;
    if (ncores > ncpu)
        return wf_run_error_set(-EINVAL,
                                "weft_run_cores: more cores than CPUs in the "
                                "process's affinity mask (sched_getaffinity)");
    if (ncores == 1)
        return weft_run(main, arg, opts);
    if (opts && opts->clock == WEFT_CLOCK_VIRTUAL)
        return wf_run_error_set(-EINVAL,
                                "weft_run_cores: the virtual clock is one "
                                "loop's; it needs ncores 1");
    struct wf_runtime *rt = wf_calloc(1, sizeof *rt);
    struct wf_core *cores = wf_calloc(ncores, sizeof *cores);
    if (!rt || !cores) {
        wf_free(rt);
        wf_free(cores);
        return -ENOMEM;
    }
    rt->n = ncores;
    rt->cores = cores;
    rt->opts = opts;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->cv, NULL);
    for (int cpu = 0, i = 0; cpu < CPU_SETSIZE && (unsigned)i < ncores; cpu++)
        if (CPU_ISSET(cpu, &mask)) {
            cores[i] =
                (struct wf_core){.rt = rt, .id = (unsigned)i, .cpu = cpu};
            i++;
        }
    /* The calling thread is core 0's, pinned while the runtime runs. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cores[0].cpu, &one);
    pthread_t self = pthread_self();
    int rc = -pthread_setaffinity_np(self, sizeof one, &one);
    if (rc < 0) {
        runtime_free(rt);
        return rc;
    }
    struct wf_loop *L;
    rc = wf_loop_open(&L, opts, -1);
    if (rc == 0) {
        rc = core_attach(L, &cores[0]);
        if (rc == 0) {
            rt->wq_fd = L->ring.ep ? -1 : L->ring.ring.ring_fd;
            rc = start_others(rt);
        }
        if (rc == 0) {
            rc = wf_loop_run_main(L, main, arg);
            /* Core 0 has no task left: no core has (see the top). */
            for (unsigned i = 1; i < ncores; i++) {
                wf_mailbox_post(cores[i].mb, &cores[i].stop);
                pthread_join(cores[i].thread, NULL);
            }
        }
        wf_loop_close(L, rc);
    }
    pthread_setaffinity_np(self, sizeof mask, &mask);
    runtime_free(rt);
    return rc;
}

WF_EXPORT unsigned weft_core_count(void)
{
    struct wf_loop *L = wf_cur;
    return !L ? 0 : L->rt ? L->rt->n : 1;
}

WF_EXPORT unsigned weft_core_id(void)
{
    return wf_cur ? wf_cur->core : 0;
}

/* ---- a task on another core ---- */

/*
 * One remote task: a core_call's (on its caller's stack) or a group
 * child's (on the heap, freed by the group's loop). start and cancel go
 * to the target core, end and ack come back.
 */
struct wf_remote {
    struct wf_msg start, cancel, end, ack;
    struct wf_mailbox *origin_mb, *target_mb;
    unsigned core; /* the target */
    weft_fn fn;
    void *arg;
    weft_time deadline; /* of the remote task's scope */
    bool start_cancelled;
    /* the target's side (its loop only, until end or ack is posted) */
    weft_scope scope;
    uint8_t rstate; /* 0: not in its scope yet; 1: in it; 2: out */
    bool cancel_req;
    int result; /* written before end */
    char name[32];
    /* the origin's side */
    struct wf_wait wait; /* core_call's caller */
    weft_group *g;       /* a group's child */
    weft_scope node;     /* its node in g's scope tree */
    char label[32];      /* fn's name, for weft_dump_tasks */
    bool ended, cancel_posted, acked;
};

static bool remote_done(const struct wf_remote *r)
{
    return r->ended && (!r->cancel_posted || r->acked);
}

static int remote_main(void *arg)
{
    struct wf_remote *r = arg;
    struct weft_task *t = wf_self(); /* a task: it runs as one */
    if (!t)
        wf_panic("remote_main: not in a task");
    weft_scope_enter(&r->scope, r->deadline);
    r->rstate = 1;
    if (r->start_cancelled || r->cancel_req)
        wf_scope_do_cancel(&r->scope, WF_REASON_CANCEL);
    int rc = r->fn(r->arg);
    /* Its own scope catches nothing: the result goes back as it is. */
    if (t->scope != &r->scope)
        wf_panic("task '%s' on core %u returned inside a cancel scope or "
                 "group it did not exit",
                 weft_task_name(t), t->loop->core);
    wf_scope_unlink(t->loop, &r->scope);
    t->scope = r->scope.wf_parent;
    r->rstate = 2;
    return rc;
}

static void remote_exit(struct weft_task *t)
{
    struct wf_remote *r = t->exit_arg;
    r->result = t->result;
    snprintf(r->name, sizeof r->name, "%s", weft_task_name(t));
    wf_mailbox_post(r->origin_mb, &r->end); /* r is not touched after */
}

static void remote_start(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_remote *r = wf_container_of(m, struct wf_remote, start);
    int rc = -ESHUTDOWN;
    if (L) {
        struct weft_task *t;
        L->xlast = wf_real_now();
        rc = wf_task_new(L, remote_main, r, NULL, &t);
        if (rc == 0) {
            wf_fn_name(r->fn, t->name, sizeof t->name);
            t->on_exit = remote_exit;
            t->exit_arg = r;
            wf_scope_link(&t->root, &L->system, t, WF_SCOPE_TASKROOT);
            wf_ready(t);
            return;
        }
    }
    r->result = rc;
    r->name[0] = '\0';
    wf_mailbox_post(r->origin_mb, &r->end);
}

static void remote_cancel_run(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_remote *r = wf_container_of(m, struct wf_remote, cancel);
    if (L) {
        if (r->rstate == 1)
            wf_scope_do_cancel(&r->scope, WF_REASON_CANCEL);
        else if (r->rstate == 0)
            r->cancel_req = true;
    }
    wf_mailbox_post(r->origin_mb, &r->ack); /* r is not touched after */
}

/* The end or the ack, back on the origin's loop. */
static void remote_back(struct wf_loop *L, struct wf_remote *r)
{
    if (L)
        L->xreplies--;
    if (!remote_done(r))
        return;
    if (!r->g)
        wf_wake(r->wait.task); /* core_call's caller */
    else
        wf_free(r);
}

static void remote_end(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_remote *r = wf_container_of(m, struct wf_remote, end);
    r->ended = true;
    if (r->g) {
        weft_group *g = r->g;
        wf_list_del(&r->node.wf_node);
        r->node.wf_state = WF_SCOPE_EXITED;
        wf_group_child_ended(g, r->result, r->name);
    }
    remote_back(L, r);
}

static void remote_ack(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_remote *r = wf_container_of(m, struct wf_remote, ack);
    r->acked = true;
    remote_back(L, r);
}

static void post_cancel(struct wf_loop *L, struct wf_remote *r)
{
    if (r->ended || r->cancel_posted)
        return;
    r->cancel_posted = true;
    L->xreplies++;
    wf_mailbox_post(r->target_mb, &r->cancel);
}

void wf_remote_cancel(weft_scope *node)
{
    struct wf_remote *r = wf_container_of(node, struct wf_remote, node);
    post_cancel(wf_cur, r);
}

static void call_cancel(struct wf_wait *w)
{
    struct wf_remote *r = wf_container_of(w, struct wf_remote, wait);
    post_cancel(w->task->loop, r);
}

static void remote_init(struct wf_remote *r, struct wf_loop *L, unsigned core,
                        weft_fn fn, void *arg)
{
    memset(r, 0, sizeof *r);
    r->start.fn = remote_start;
    r->cancel.fn = remote_cancel_run;
    r->end.fn = remote_end;
    r->ack.fn = remote_ack;
    r->origin_mb = L->mailbox;
    r->target_mb = L->rt->cores[core].mb;
    r->core = core;
    r->fn = fn;
    r->arg = arg;
    r->deadline = WEFT_FOREVER;
}

static void remote_post(struct wf_loop *L, struct wf_remote *r)
{
    L->xreplies++;
    wf_mailbox_post(r->target_mb, &r->start);
}

bool wf_cores_spin(struct wf_loop *L)
{
    return L->xreplies ||
           (L->xlast && wf_real_now() - L->xlast < 2 * WEFT_MSEC);
}

/* core_call on the caller's own core: a task under the caller's scopes. */
struct wf_local_call {
    struct wf_wait wait;
    int result;
    bool done;
};

static void local_exit(struct weft_task *t)
{
    struct wf_local_call *lc = t->exit_arg;
    lc->result = t->result;
    lc->done = true;
    if (lc->wait.task->wait == &lc->wait)
        wf_wake(lc->wait.task);
}

WF_EXPORT int weft_core_call(unsigned core, weft_fn fn, void *arg)
{
    struct weft_task *t;
    int rc = wf_entry(&t, fn && core < weft_core_count(), false);
    if (rc < 0)
        return rc;
    struct wf_loop *L = t->loop;
    if (core == L->core) {
        /* Its cancellation reaches the task directly: the wait has none. */
        struct wf_local_call lc = {.wait = {.what = "weft_core_call (own "
                                                    "core)"}};
        rc = wf_spawn_system(L, fn, arg, t->scope, local_exit, &lc);
        if (rc < 0)
            return rc;
        while (!lc.done)
            wf_block(&lc.wait);
        return lc.result;
    }
    struct wf_remote r;
    remote_init(&r, L, core, fn, arg);
    r.wait.cancel = call_cancel;
    r.wait.what = "weft_core_call (another core)";
    remote_post(L, &r);
    while (!remote_done(&r))
        wf_block(&r.wait);
    return r.result;
}

/* The earliest deadline over node's ancestors, up to the nearest shield;
 * *cancelled if one of them is cancelled. */
static weft_time node_deadline(const weft_scope *node, bool *cancelled)
{
    weft_time d = WEFT_FOREVER;
    *cancelled = false;
    for (const weft_scope *s = node->wf_parent; s; s = s->wf_parent) {
        if (s->wf_flags & WF_SCOPE_CANCELLED)
            *cancelled = true;
        if (s->wf_timer.when < d)
            d = s->wf_timer.when;
        if (s->wf_flags & WF_SCOPE_SHIELD)
            break;
    }
    return d;
}

WF_EXPORT int weft_group_spawn_on(weft_group *g, unsigned core, weft_fn fn,
                                  void *arg)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(
        &t, g && fn && wf_group_open(g, wf_cur) && core < weft_core_count(),
        false);
    if (rc < 0)
        return rc;
    struct wf_loop *L = t->loop;
    if (core == L->core)
        return weft_group_spawn(g, fn, arg);
    struct wf_remote *r = wf_malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    remote_init(r, L, core, fn, arg);
    r->g = g;
    wf_scope_link(&r->node, &g->wf_scope, NULL, WF_SCOPE_REMOTE);
    wf_fn_name(fn, r->label, sizeof r->label);
    r->deadline = node_deadline(&r->node, &r->start_cancelled);
    g->wf_children++;
    remote_post(L, r);
    return 0;
}

/* weft_dump_tasks: a group's child on another core. */
void wf_remote_describe(const weft_scope *node, char *buf, size_t n)
{
    const struct wf_remote *r = wf_container_of(node, struct wf_remote, node);
    snprintf(buf, n, "task '%s' on core %u%s", r->label[0] ? r->label : "?",
             r->core, r->cancel_posted ? ", cancel sent" : "");
}
