/* SPDX-License-Identifier: MIT */
/*
 * hello.c - a task group with two sleeping tasks.
 *
 * The root task opens a group, spawns two tasks that sleep for different
 * times, and waits for both in weft_group_exit. It prints:
 *
 *     short: slept 10 ms
 *     long: slept 20 ms
 *     both tasks done
 *
 * Build: part of the docs' examples (example_hello); exits 0 on success.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <weft.h>

struct nap {
    weft_time delay;
    bool done;
};

static int sleeper(void *arg)
{
    struct nap *nap = arg;
    int rc = weft_sleep(nap->delay);
    if (rc < 0)
        return rc; /* -ECANCELED: the group was cancelled */
    printf("%s: slept %lld ms\n", weft_task_name(weft_task_current()),
           (long long)(nap->delay / WEFT_MSEC));
    nap->done = true;
    return 0;
}

static int root(void *arg)
{
    /* On the root task's stack: alive until weft_group_exit returns, and
     * so for as long as any child can use it. */
    struct nap naps[2] = {{10 * WEFT_MSEC, false}, {20 * WEFT_MSEC, false}};
    weft_group g;
    int rc;

    weft_group_enter(&g);
    rc = weft_group_spawn_named(&g, "short", sleeper, &naps[0]);
    if (rc == 0)
        rc = weft_group_spawn_named(&g, "long", sleeper, &naps[1]);
    rc = weft_group_exit(&g, rc); /* waits for both */
    if (rc < 0)
        return rc;

    if (!naps[0].done || !naps[1].done)
        return -EPROTO; /* cannot happen: exit waited for both */
    printf("both tasks done\n");
    return 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "hello: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
