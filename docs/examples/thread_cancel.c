/* SPDX-License-Identifier: MIT */
/*
 * thread_cancel.c - a cancelled weft_to_thread: shielded, or abandoned.
 *
 * A thread cannot be interrupted, so a cancelled call chooses:
 *
 * 1. Shielded (flags 0, the default): the task keeps waiting for the
 *    worker. The worker here polls weft_from_thread_check_cancelled()
 *    between chunks of work and stops early; its result comes back, and
 *    the task's next checkpoint reports the cancellation.
 * 2. WEFT_ABANDON_ON_CANCEL: the call returns -ECANCELED at once. The
 *    worker runs on to its end, so it must own what it touches (here it
 *    frees its own argument), and its limiter token stays borrowed until
 *    it finishes.
 *
 * It prints (N varies):
 *
 *     shielded: worker did N of 100 chunks; result back; next checkpoint: -125
 *     abandoned: returned -125 at once; tokens borrowed: 1
 *     abandoned: worker finished later; tokens borrowed: 0
 *
 * Exits 0 when both behaved as described.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <weft.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* 1. Work in chunks; give up when the waiting task is cancelled. */
static int chunked_work(void *arg)
{
    int done = 0;
    while (done < 100 && weft_from_thread_check_cancelled() == 0) {
        sleep_ms(2); /* one chunk of blocking work */
        done++;
    }
    return done; /* how far it got: the task receives this */
}

static int shielded(void)
{
    weft_scope s;
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    int done = weft_to_thread(chunked_work, NULL, NULL, 0);
    int next = weft_checkpoint(); /* -ECANCELED: the deadline has passed */
    printf("shielded: worker did %d of 100 chunks; result back; "
           "next checkpoint: %d\n",
           done, next);
    int rc = weft_scope_exit(&s, next); /* 0: the scope caught its deadline */
    return rc == 0 && done >= 0 && done < 100 && next == -ECANCELED ? 0
                                                                    : -EPROTO;
}

/* 2. Work that cannot stop early. It owns its argument. */
static atomic_int finished;

struct request {
    char payload[64];
};

static int uninterruptible(void *arg)
{
    struct request *req = arg;
    sleep_ms(50);
    free(req); /* the caller may be long gone: the worker cleans up */
    atomic_store(&finished, 1);
    return 0;
}

static int abandoned(void)
{
    weft_limiter limiter; /* must outlive the abandoned call */
    weft_limiter_init(&limiter, 4);
    struct request *req = calloc(1, sizeof *req);
    if (!req)
        return -ENOMEM;

    weft_scope s;
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    int rc =
        weft_to_thread(uninterruptible, req, &limiter, WEFT_ABANDON_ON_CANCEL);
    printf("abandoned: returned %d at once; tokens borrowed: %u\n", rc,
           weft_limiter_borrowed_tokens(&limiter));
    bool early = rc == -ECANCELED && !atomic_load(&finished);
    rc = weft_scope_exit(&s, rc);

    /* The limiter lives on this stack: wait until the worker gave its
     * token back before returning. */
    while (weft_limiter_borrowed_tokens(&limiter) > 0)
        weft_sleep(5 * WEFT_MSEC);
    printf("abandoned: worker finished later; tokens borrowed: %u\n",
           weft_limiter_borrowed_tokens(&limiter));
    return rc == 0 && early && atomic_load(&finished) ? 0 : -EPROTO;
}

static int root(void *arg)
{
    int rc = shielded();
    int rc2 = abandoned();
    return rc < 0 ? rc : rc2;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "thread_cancel: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
