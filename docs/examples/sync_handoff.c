/* SPDX-License-Identifier: MIT */
/*
 * sync_handoff.c - the hand-off guarantee, both ways round.
 *
 * A worker waits for a lock that the root task holds. The root then does
 * two things before the worker runs again: it releases the lock (which
 * hands it to the worker) and cancels the worker's scope. The order of
 * the two decides the outcome, and nothing is lost either way:
 *
 *     release, then cancel: acquire 0, holds it, next checkpoint -ECANCELED
 *     cancel, then release: acquire -ECANCELED, lock left free
 *
 * Build: part of the docs' examples (example_sync_handoff); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <weft.h>

struct worker {
    weft_lock *lock;
    weft_scope scope; /* the root cancels it */
    int acquire_rc, next_rc;
    bool held;
};

static int worker(void *arg)
{
    struct worker *w = arg;
    weft_scope_enter(&w->scope, WEFT_FOREVER);
    int rc = w->acquire_rc = weft_lock_acquire(w->lock);
    if (rc == 0) {
        /* The lock is ours even though the scope is cancelled by now:
         * the cancellation shows at the next checkpoint. */
        w->held = weft_lock_locked(w->lock);
        rc = w->next_rc = weft_checkpoint();
        weft_lock_release(w->lock);
    }
    return weft_scope_exit(&w->scope, rc); /* catches its cancel: 0 */
}

static int race(bool release_first, struct worker *w)
{
    weft_lock lock;
    weft_lock_stats st;
    weft_group g;

    weft_lock_init(&lock);
    weft_lock_acquire(&lock);
    *w = (struct worker){.lock = &lock, .next_rc = 1};
    weft_group_enter(&g);
    int rc = weft_group_spawn(&g, worker, w);
    do { /* until the worker waits for the lock */
        weft_lock_statistics(&lock, &st);
    } while (rc == 0 && st.tasks_waiting == 0 && (rc = weft_checkpoint()) == 0);
    if (release_first) {
        weft_lock_release(&lock);     /* handed to the worker */
        weft_scope_cancel(&w->scope); /* too late to take it back */
    } else {
        weft_scope_cancel(&w->scope); /* the worker leaves the queue */
        weft_lock_release(&lock);     /* nobody waits: left free */
    }
    rc = weft_group_exit(&g, rc);
    return rc < 0 ? rc : weft_lock_locked(&lock) ? -EPROTO : 0;
}

static int root(void *arg)
{
    struct worker w;
    int rc = race(true, &w);
    if (rc < 0)
        return rc;
    printf("release, then cancel: acquire %d, %s, next checkpoint %s\n",
           w.acquire_rc, w.held ? "holds it" : "?",
           w.next_rc == -ECANCELED ? "-ECANCELED" : "?");
    if (w.acquire_rc != 0 || !w.held || w.next_rc != -ECANCELED)
        return -EPROTO;

    if ((rc = race(false, &w)) < 0)
        return rc;
    printf("cancel, then release: acquire %s, lock left free\n",
           w.acquire_rc == -ECANCELED ? "-ECANCELED" : "?");
    return w.acquire_rc == -ECANCELED && !w.held ? 0 : -EPROTO;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "sync_handoff: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
