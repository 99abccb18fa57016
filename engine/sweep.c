/* SPDX-License-Identifier: MIT */
/*
 * engine/sweep.c - the cancellation sweep (weft/testing.h): run a
 * scenario once to count its checkpoints, then once per checkpoint k,
 * cancelling the run at the k-th, then under fault injection; after each
 * run, check that the loop left nothing behind.
 *
 * The cancellation is the root task's own scope (the top of the run's
 * scope tree), so every task of the run sees it at its next checkpoint
 * and no scope the scenario enters can catch it, only shield from it: as
 * if the whole program had been cancelled at that moment.
 *
 * What "left nothing" means here: no fd more than before; no task stack
 * still mapped; no ring operation still owed a CQE when the loop ended
 * beyond weft's own standing ones (a task that returned before its
 * terminal CQE would leave one); no weft allocation still live. Pool
 * workers finishing abandoned jobs may free theirs a moment after the
 * loop ends, so a difference is looked at again for a while first.
 */
#include "engine/engine.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/testing.h>

/* What weft_run leaves for the sweep about the run that just ended. */
static __thread bool active;
static __thread uint64_t next_cancel_at;
static __thread uint64_t last_checkpoints;
static __thread unsigned last_inflight;

bool wf_sweep_active(void)
{
    return active;
}

void wf_sweep_fire(struct wf_loop *L)
{
    if (L->root)
        wf_scope_do_cancel(&L->root->root, WF_REASON_CANCEL);
}

void wf_sweep_loop_open(struct wf_loop *L)
{
    L->cancel_at = next_cancel_at;
}

void wf_sweep_loop_end(struct wf_loop *L, unsigned inflight)
{
    last_checkpoints = L->checkpoints;
    last_inflight = inflight;
}

WF_EXPORT uint64_t weft_checkpoint_count(void)
{
    return wf_cur ? wf_cur->checkpoints : 0;
}

/* ---- what a run may leave behind ---- */

struct census {
    int fds;
    long stacks;
    size_t allocs;
};

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void take_census(struct census *c)
{
    c->fds = count_fds();
    c->stacks = wf_stacks_mapped();
    c->allocs = wf_alloc_live();
}

static bool same_census(const struct census *a, const struct census *b)
{
    return a->fds == b->fds && a->stacks == b->stacks && a->allocs == b->allocs;
}

/* 0 if the run left nothing; else what it left, said on stderr. */
static int check_leaks(const struct census *before, const char *run,
                       bool verbose)
{
    struct census after;
    /* Workers finishing abandoned jobs free them a little later. */
    for (int i = 0; i < 200; i++) {
        take_census(&after);
        if (same_census(before, &after))
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    int leaks = !same_census(before, &after) || last_inflight != 0;
    if (leaks && verbose)
        fprintf(stderr,
                "weft_sweep: %s left %d fds, %ld stacks, %zd allocations, "
                "%u ring operations\n",
                run, after.fds - before->fds, after.stacks - before->stacks,
                (ssize_t)(after.allocs - before->allocs), last_inflight);
    return leaks;
}

/* ---- a hang guard: a run that never ends is a failure to report ---- */

struct watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    const char *run;
    weft_time limit;
};

static void *watch(void *arg)
{
    struct watchdog *w = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(w->limit / WEFT_SEC);
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0 && !w->done) {
            fprintf(stderr, "weft_sweep: %s did not end within %lld s\n",
                    w->run, (long long)(w->limit / WEFT_SEC));
            abort();
        }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- one run ---- */

struct sweep {
    weft_fn scenario;
    void *arg;
    const weft_sweep_opts *o;
    weft_sweep_result *r;
    int first_error;
};

static bool allowed(const struct sweep *sw, int rc, bool faults)
{
    if (rc == 0 || rc == -ECANCELED)
        return true;
    /* Under faults any error weft returns may be the injected one; a
     * scenario that finds its own invariant broken says -EPROTO. */
    if (faults && rc != -EPROTO)
        return true;
    for (size_t i = 0; i < sw->o->nallowed; i++)
        if (rc == sw->o->allowed[i])
            return true;
    return false;
}

static int one_run(struct sweep *sw, uint64_t cancel_at, uint64_t seed)
{
    char run[64];
    if (seed)
        snprintf(run, sizeof run, "the run with fault seed %llu",
                 (unsigned long long)seed);
    else if (cancel_at)
        snprintf(run, sizeof run, "the run cancelled at checkpoint %llu",
                 (unsigned long long)cancel_at);
    else
        snprintf(run, sizeof run, "the uncancelled run");
    weft_options opts = {0};
    if (sw->o->loop)
        opts = *sw->o->loop;
    weft_faults f = {.seed = seed, .kinds = WEFT_FAULT_ALL, .rate = 50000};
    if (seed)
        opts.faults = &f;

    struct census before;
    take_census(&before);
    struct watchdog w = {.mu = PTHREAD_MUTEX_INITIALIZER,
                         .cv = PTHREAD_COND_INITIALIZER,
                         .run = run,
                         .limit = 60 * WEFT_SEC};
    pthread_t th;
    bool guarded = pthread_create(&th, NULL, watch, &w) == 0;
    next_cancel_at = cancel_at;
    active = true;
    int rc = weft_run(sw->scenario, sw->arg, &opts);
    active = false;
    next_cancel_at = 0;
    if (guarded) {
        pthread_mutex_lock(&w.mu);
        w.done = true;
        pthread_cond_signal(&w.cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(th, NULL);
    }

    weft_sweep_result *r = sw->r;
    r->runs++;
    int bad = 0;
    if (check_leaks(&before, run, sw->o->verbose)) {
        r->leaks++;
        bad = -EBADFD;
    }
    if (!allowed(sw, rc, seed != 0)) {
        r->failures++;
        if (sw->o->verbose)
            fprintf(stderr, "weft_sweep: %s returned %d (%s)\n", run, rc,
                    weft_strerror(rc));
        bad = rc < 0 ? rc : -EPROTO;
    }
    if (bad) {
        if (!r->first_failing_point && !r->first_failing_seed) {
            r->first_failing_point = cancel_at;
            r->first_failing_seed = seed;
        }
        if (!sw->first_error)
            sw->first_error = bad;
    }
    return rc;
}

/* The k-th point to try of 1..n: every point, but in an order that
 * covers the whole range early (bit-reversed), so that a budget that
 * runs out still has tried points from start to end. */
static uint64_t nth_point(uint64_t i, unsigned bits)
{
    uint64_t rev = 0;
    for (unsigned b = 0; b < bits; b++)
        rev |= ((i >> b) & 1) << (bits - 1 - b);
    return rev + 1;
}

static weft_time real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (weft_time)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

WF_EXPORT int weft_sweep(weft_fn scenario, void *arg,
                         const weft_sweep_opts *opts, weft_sweep_result *r)
{
    if (!scenario || !r)
        return -EINVAL;
    if (wf_cur)
        return -EBUSY; /* it runs loops of its own */
    weft_sweep_opts none = {0};
    struct sweep sw = {scenario, arg, opts ? opts : &none, r, 0};
    memset(r, 0, sizeof *r);
    weft_time start = real_now();
    weft_time end = sw.o->budget ? start + sw.o->budget : WEFT_FOREVER;
    /* With fault seeds to try, the points leave them a fifth. */
    weft_time points_end =
        sw.o->budget && sw.o->fault_seeds ? start + sw.o->budget / 5 * 4 : end;

    one_run(&sw, 0, 0);
    uint64_t n = r->checkpoints = last_checkpoints;
    unsigned bits = 0;
    while (((uint64_t)1 << bits) < n)
        bits++;
    for (uint64_t i = 0; i < ((uint64_t)1 << bits) && real_now() < points_end;
         i++) {
        uint64_t k = nth_point(i, bits);
        if (k > n)
            continue;
        one_run(&sw, k, 0);
        r->points++;
    }
    uint64_t seed = sw.o->first_seed ? sw.o->first_seed : 1;
    for (unsigned i = 0; i < sw.o->fault_seeds && real_now() < end; i++) {
        one_run(&sw, 0, seed + i);
        r->seeds++;
    }
    return sw.first_error;
}
