/* SPDX-License-Identifier: MIT */
/*
 * thread_portal.c - calling weft from threads it did not start.
 *
 * A program that already has its own threads (here: two plain pthreads,
 * say the callback threads of some library) opens a portal: a weft loop
 * on a thread of its own. Any thread may then weft_portal_call a function,
 * which runs as a task on the portal's loop (so it may sleep, use
 * channels, scopes, ...) while the calling thread blocks until it
 * returns. All portal tasks run on the one loop thread, so state that
 * only they touch needs no lock. A call whose function fails returns that
 * error; the portal keeps serving.
 *
 * It prints:
 *
 *     a failing call returned -5 (Input/output error); the portal serves on
 *     20 calls counted on the portal's loop
 *
 * Exits 0 when every call returned what its task returned.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#define CALLS_PER_THREAD 10

static int counted; /* touched only by tasks of the portal's loop */

/* A task on the portal's loop: it may block the weft way. */
static int count_call(void *arg)
{
    int rc = weft_sleep(1 * WEFT_MSEC);
    if (rc < 0)
        return rc;
    counted++;
    return (int)(intptr_t)arg * 2;
}

static int read_count(void *arg)
{
    return counted;
}

static int fail_io(void *arg)
{
    return -EIO;
}

struct caller {
    weft_portal *portal;
    int id, bad;
};

static void *library_thread(void *arg)
{
    struct caller *c = arg;
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        int x = c->id * 100 + i;
        if (weft_portal_call(c->portal, count_call, (void *)(intptr_t)x) !=
            x * 2)
            c->bad++;
    }
    return NULL;
}

int main(void)
{
    weft_portal *portal;
    int rc = weft_portal_open(&portal, NULL);
    if (rc < 0) {
        fprintf(stderr, "thread_portal: %s\n", weft_strerror(rc));
        return 1;
    }

    rc = weft_portal_call(portal, fail_io, NULL);
    printf("a failing call returned %d (%s); the portal serves on\n", rc,
           strerror(-rc));
    int ok = rc == -EIO;

    struct caller callers[2] = {{portal, 1, 0}, {portal, 2, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, library_thread, &callers[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);

    int n = weft_portal_call(portal, read_count, NULL);
    printf("%d calls counted on the portal's loop\n", n);
    ok = ok && n == 2 * CALLS_PER_THREAD && !callers[0].bad && !callers[1].bad;

    if (weft_portal_close(portal) < 0) /* waits for calls under way */
        ok = 0;
    return ok ? 0 : 1;
}
