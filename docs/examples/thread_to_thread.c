/* SPDX-License-Identifier: MIT */
/*
 * thread_to_thread.c - blocking code on worker threads, under a limiter.
 *
 * Eight tasks each "hash a file" with a blocking library call (here: a
 * loop that sleeps with nanosleep, which would stall the whole loop if a
 * task called it directly). weft_to_thread runs each call on a worker
 * while the task waits; the loop keeps running other tasks meanwhile. A
 * limiter of 3 tokens lets at most three of them run at once. It prints
 * (the order of the lines varies):
 *
 *     file 0: hash 1001
 *     ...
 *     file 7: hash 1008
 *     at most 3 ran at once; the loop ticked meanwhile: yes
 *
 * Exits 0 when every hash came back, the limiter held, and the loop ran
 * its ticker task while the workers blocked.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <weft.h>

#define FILES 8

static atomic_int running, most;

/* Stands for a blocking library call: it must not run on the loop. */
static int blocking_hash(void *arg)
{
    int *file = arg;
    int now = atomic_fetch_add(&running, 1) + 1;
    int m = atomic_load(&most);
    while (now > m && !atomic_compare_exchange_weak(&most, &m, now)) {
    }
    struct timespec ts = {0, 20 * 1000 * 1000}; /* 20 ms of "disk" */
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&running, 1);
    return 1001 + *file; /* the result travels back as the return value */
}

struct job {
    int file;
    weft_limiter *limiter;
};

static int hash_task(void *arg)
{
    struct job *j = arg;
    int rc = weft_to_thread(blocking_hash, &j->file, j->limiter, 0);
    if (rc < 0)
        return rc; /* -ECANCELED, or the worker could not be started */
    printf("file %d: hash %d\n", j->file, rc);
    return rc == 1001 + j->file ? 0 : -EPROTO;
}

/* Shows that the loop is free while the workers block. */
static int ticker(void *arg)
{
    int *ticks = arg;
    while (weft_sleep(5 * WEFT_MSEC) == 0)
        ++*ticks;
    return 0; /* cancelled by the root when the work is done */
}

static int root(void *arg)
{
    weft_limiter limiter;
    weft_limiter_init(&limiter, 3); /* three blocking calls at a time */
    struct job jobs[FILES];
    int ticks = 0;

    weft_group tick;
    weft_group_enter(&tick);
    weft_group_spawn(&tick, ticker, &ticks);

    weft_group work;
    weft_group_enter(&work);
    for (int i = 0; i < FILES; i++) {
        jobs[i] = (struct job){i, &limiter};
        weft_group_spawn(&work, hash_task, &jobs[i]);
    }
    int rc = weft_group_exit(&work, 0);

    weft_group_cancel(&tick);
    int trc = weft_group_exit(&tick, 0);
    printf("at most %d ran at once; the loop ticked meanwhile: %s\n",
           atomic_load(&most), ticks > 0 ? "yes" : "no");
    if (rc == 0 && (trc < 0 || atomic_load(&most) > 3 || ticks == 0))
        rc = -EPROTO;
    return rc;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "thread_to_thread: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
