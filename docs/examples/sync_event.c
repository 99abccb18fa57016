/* SPDX-License-Identifier: MIT */
/*
 * sync_event.c - an Event as a starting gun.
 *
 * Three workers wait on one event; the root task gets ready, sets it, and
 * every waiter wakes at once. A wait after the set returns at once, and a
 * wait under a deadline that passes first returns -ECANCELED. It prints:
 *
 *     3 workers waiting
 *     worker 0: go
 *     worker 1: go
 *     worker 2: go
 *     a late wait returns at once: 0
 *     a wait that timed out: -ECANCELED
 *
 * Build: part of the docs' examples (example_sync_event); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

struct worker {
    weft_event *go;
    int id;
    int rc;
};

static int worker(void *arg)
{
    struct worker *w = arg;
    w->rc = weft_event_wait(w->go); /* 0, or -ECANCELED */
    if (w->rc == 0)
        printf("worker %d: go\n", w->id);
    return w->rc;
}

static int root(void *arg)
{
    weft_event go;
    struct worker w[3];
    weft_event_stats st;
    weft_group g;
    int rc = 0;

    weft_event_init(&go);
    weft_group_enter(&g);
    for (int i = 0; i < 3 && rc == 0; i++) {
        w[i] = (struct worker){&go, i, -1};
        rc = weft_group_spawn(&g, worker, &w[i]);
    }
    if (rc == 0)
        rc = weft_sleep(5 * WEFT_MSEC); /* they run and block meanwhile */
    weft_event_statistics(&go, &st);
    printf("%zu workers waiting\n", st.tasks_waiting);
    weft_event_set(&go); /* wakes all three */
    rc = weft_group_exit(&g, rc);
    if (rc < 0)
        return rc;

    /* Once set, an event stays set. */
    printf("a late wait returns at once: %d\n", weft_event_wait(&go));

    /* A wait under a deadline: the scope's cancellation ends it. */
    weft_event never;
    weft_scope s;
    weft_event_init(&never);
    weft_move_on_after(&s, 2 * WEFT_MSEC);
    rc = weft_event_wait(&never);
    printf("a wait that timed out: %s\n",
           rc == -ECANCELED ? "-ECANCELED" : "?");
    if (rc != -ECANCELED)
        return -EPROTO;
    rc = weft_scope_exit(&s, rc); /* caught: 0 */
    if (rc < 0 || st.tasks_waiting != 3)
        return rc < 0 ? rc : -EPROTO;
    for (int i = 0; i < 3; i++)
        if (w[i].rc != 0)
            return -EPROTO;
    return 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "sync_event: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
