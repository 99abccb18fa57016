/* SPDX-License-Identifier: MIT */
/*
 * engine/portal.c - portals (anyio's BlockingPortal): a loop on a thread
 * of its own that any thread may call into; close waits for the calls
 * under way.
 */
#include "engine/bridge.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- portals ---- */

struct weft_portal {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight;
    bool closing, started;
    int rc; /* weft_run's, if the loop did not start */
    struct wf_loop *loop;
    struct wf_mailbox *mb;
    weft_group *group;
    bool stop; /* set by the close message */
    struct weft_task *root;
    weft_options opts;
    bool has_opts;
};

static int portal_main(void *arg)
{
    struct weft_portal *p = arg;
    struct wf_loop *L = wf_cur;
    int rc = wf_mailbox_open(L);
    weft_group g;
    weft_group_enter(&g);
    pthread_mutex_lock(&p->mu);
    p->loop = L;
    p->root = wf_self();
    p->group = &g;
    if (rc == 0) {
        p->mb = L->mailbox;
        wf_mailbox_get(p->mb);
    }
    p->rc = rc;
    p->started = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    while (rc == 0 && !p->stop) {
        struct wf_wait w = {.what = "portal: waiting for calls"};
        wf_block(&w);
    }
    return weft_group_exit(&g, 0);
}

static void *portal_thread(void *arg)
{
    struct weft_portal *p = arg;
    int rc = weft_run(portal_main, p, p->has_opts ? &p->opts : NULL);
    pthread_mutex_lock(&p->mu);
    if (!p->started) {
        p->rc = rc;
        p->started = true;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

WF_EXPORT int weft_portal_open(weft_portal **out, const weft_options *opts)
{
    if (!out)
        return -EINVAL;
    struct weft_portal *p = wf_calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (opts) {
        p->opts = *opts;
        p->has_opts = true;
    }
    int rc = -pthread_create(&p->thread, NULL, portal_thread, p);
    if (rc == 0) {
        pthread_mutex_lock(&p->mu);
        while (!p->started)
            pthread_cond_wait(&p->cv, &p->mu);
        rc = p->rc;
        pthread_mutex_unlock(&p->mu);
        if (rc < 0)
            pthread_join(p->thread, NULL);
    }
    if (rc < 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        wf_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

struct wf_portal_call {
    struct wf_msg msg;
    struct weft_portal *p;
    weft_fn fn;
    void *arg;
    int result;
    struct wf_notify done;
};

static int portal_task(void *arg)
{
    struct wf_portal_call *c = arg;
    c->result = c->fn(c->arg);
    notify_post(&c->done);
    return 0; /* one call's failure is its caller's, not the portal's */
}

static void portal_call_run(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_portal_call *c = wf_container_of(m, struct wf_portal_call, msg);
    int rc = L ? wf_spawn_into(L, c->p->group, portal_task, c) : -ESHUTDOWN;
    if (rc < 0) {
        c->result = rc;
        notify_post(&c->done);
    }
}

WF_EXPORT int weft_portal_call(weft_portal *p, weft_fn fn, void *arg)
{
    if (!p || !fn)
        return -EINVAL;
    if (wf_cur && wf_cur == p->loop)
        return -EDEADLK; /* it would wait for itself */
    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        return -EBADF;
    }
    p->inflight++;
    pthread_mutex_unlock(&p->mu);
    struct wf_portal_call c = {
        .msg = {.fn = portal_call_run}, .p = p, .fn = fn, .arg = arg};
    atomic_init(&c.done.done, 0);
    int rc = wf_mailbox_post(p->mb, &c.msg);
    if (rc == 0) {
        notify_wait(&c.done);
        rc = c.result;
    }
    pthread_mutex_lock(&p->mu);
    if (--p->inflight == 0 && p->closing)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

struct wf_portal_stop {
    struct wf_msg msg;
    struct weft_portal *p;
};

static void portal_stop_run(struct wf_loop *L, struct wf_msg *m)
{
    struct wf_portal_stop *s = wf_container_of(m, struct wf_portal_stop, msg);
    if (L) {
        s->p->stop = true;
        wf_wake(s->p->root);
    }
}

WF_EXPORT int weft_portal_close(weft_portal *p)
{
    if (!p)
        return -EINVAL;
    if (wf_cur && wf_cur == p->loop)
        return -EDEADLK;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    while (p->inflight)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    struct wf_portal_stop s = {.msg = {.fn = portal_stop_run}, .p = p};
    int rc = wf_mailbox_post(p->mb, &s.msg);
    pthread_join(p->thread, NULL);
    wf_mailbox_put(p->mb);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    wf_free(p);
    return rc < 0 ? rc : 0;
}
