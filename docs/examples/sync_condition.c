/* SPDX-License-Identifier: MIT */
/*
 * sync_condition.c - a Condition: wait until a counter is high enough.
 *
 * Two waiters each wait, holding the condition's lock, until the number of
 * finished jobs reaches their target; the root task finishes jobs one by
 * one and calls notify_all after each. A wait always returns with the
 * lock held again, also when it is cancelled, so the code after it can
 * read the counter safely either way. It prints:
 *
 *     waiter for 2: saw 2 jobs
 *     waiter for 4: saw 4 jobs
 *     waiter for 99: gave up at 4 jobs (-ECANCELED), lock held
 *
 * Build: part of the docs' examples (example_sync_condition); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

struct jobs {
    weft_condition changed; /* with its own lock, guarding done */
    int done;
};

struct waiter {
    struct jobs *j;
    int target;
    int seen;
};

/* Wait (holding the lock) until j->done >= target. */
static int wait_for(struct jobs *j, int target, int *seen)
{
    int rc = weft_condition_acquire(&j->changed);
    if (rc < 0)
        return rc;
    while (j->done < target && rc == 0)
        rc = weft_condition_wait(&j->changed); /* lock held on return */
    *seen = j->done;
    weft_condition_release(&j->changed);
    return rc;
}

static int waiter(void *arg)
{
    struct waiter *w = arg;
    int rc = wait_for(w->j, w->target, &w->seen);
    if (rc == 0)
        printf("waiter for %d: saw %d jobs\n", w->target, w->seen);
    return rc;
}

static int root(void *arg)
{
    struct jobs j = {.done = 0};
    struct waiter w[2];
    weft_group g;
    int rc = 0;

    weft_condition_init(&j.changed, NULL);
    weft_group_enter(&g);
    for (int i = 0; i < 2 && rc == 0; i++) {
        w[i] = (struct waiter){&j, 2 * (i + 1), 0};
        rc = weft_group_spawn(&g, waiter, &w[i]);
    }
    for (int n = 0; n < 4 && rc == 0; n++) {
        rc = weft_sleep(WEFT_MSEC); /* a job */
        if (rc == 0)
            rc = weft_condition_acquire(&j.changed);
        if (rc == 0) {
            j.done++;
            weft_condition_notify_all(&j.changed);
            weft_condition_release(&j.changed);
        }
    }
    rc = weft_group_exit(&g, rc);
    if (rc < 0)
        return rc;

    /* A target never reached: the deadline ends the wait. */
    weft_scope s;
    int seen = -1;
    weft_move_on_after(&s, 2 * WEFT_MSEC);
    rc = wait_for(&j, 99, &seen);
    printf("waiter for 99: gave up at %d jobs (%s), lock held\n", seen,
           rc == -ECANCELED ? "-ECANCELED" : "?");
    rc = weft_scope_exit(&s, rc);
    if (rc < 0 || seen != 4 || w[0].seen < 2 || w[1].seen < 4)
        return rc < 0 ? rc : -EPROTO;
    return 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "sync_condition: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
