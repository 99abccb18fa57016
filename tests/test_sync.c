/* SPDX-License-Identifier: MIT */
/*
 * tests/test_sync.c - Event, Lock, Semaphore, Condition and CapacityLimiter
 * (API.md "Synchronisation", weft/sync.h): what each call returns, FIFO
 * hand-off, misuse, statistics, and the hand-off races arranged in both
 * orders: granted first then cancelled (the waiter keeps what it was
 * given; its next checkpoint reports the cancellation), and cancelled
 * first then granted (the waiter gets -ECANCELED; the grant goes to the
 * next waiter or stays available). A seeded random stress test ends the
 * suite.
 *
 * Waiters are arranged deterministically: the test task yields until the
 * primitive's statistics show them queued, then grants and cancels in the
 * order under test, in one go, before any waiter runs again.
 */
#include "helpers.h"

#include <limits.h>

/* ---- shared helpers ---- */

static size_t event_waiting(const void *o)
{
    weft_event_stats st;
    CHECK_EQ(weft_event_statistics(o, &st), 0);
    return st.tasks_waiting;
}

static size_t lock_waiting(const void *o)
{
    weft_lock_stats st;
    CHECK_EQ(weft_lock_statistics(o, &st), 0);
    return st.tasks_waiting;
}

static weft_task *lock_owner(const weft_lock *l)
{
    weft_lock_stats st;
    CHECK_EQ(weft_lock_statistics(l, &st), 0);
    CHECK_EQ(st.locked, st.owner != NULL);
    return st.owner;
}

static size_t sem_waiting(const void *o)
{
    weft_semaphore_stats st;
    CHECK_EQ(weft_semaphore_statistics(o, &st), 0);
    return st.tasks_waiting;
}

static size_t cond_waiting(const void *o)
{
    weft_condition_stats st;
    CHECK_EQ(weft_condition_statistics(o, &st), 0);
    return st.tasks_waiting;
}

static weft_task *cond_owner(const weft_condition *c)
{
    weft_condition_stats st;
    CHECK_EQ(weft_condition_statistics(c, &st), 0);
    return st.lock.owner;
}

static size_t cond_lock_waiting(const void *o)
{
    weft_condition_stats st;
    CHECK_EQ(weft_condition_statistics(o, &st), 0);
    return st.lock.tasks_waiting;
}

static size_t lim_waiting(const void *o)
{
    weft_limiter_stats st;
    CHECK_EQ(weft_limiter_statistics(o, &st), 0);
    return st.tasks_waiting;
}

/* The limiter's three counts agree with each other and with its
 * statistics. */
static bool lim_counts_at(const weft_limiter *l, unsigned total,
                          unsigned borrowed, const char *file, int line)
{
    weft_limiter_stats st;
    unsigned avail = total > borrowed ? total - borrowed : 0;
    bool ok = weft_limiter_statistics(l, &st) == 0 &&
              weft_limiter_total_tokens(l) == total &&
              weft_limiter_borrowed_tokens(l) == borrowed &&
              weft_limiter_available_tokens(l) == avail &&
              st.total_tokens == total && st.borrowed_tokens == borrowed;
    if (ok)
        return true;
    return th_fail_at(file, line,
                      "limiter total/borrowed/available %u/%u/%u (stats "
                      "%u/%u), expected %u/%u/%u",
                      weft_limiter_total_tokens(l),
                      weft_limiter_borrowed_tokens(l),
                      weft_limiter_available_tokens(l), st.total_tokens,
                      st.borrowed_tokens, total, borrowed, avail);
}
#define lim_counts(l, total, borrowed)                                         \
    lim_counts_at(l, total, borrowed, __FILE__, __LINE__)

/*
 * A waiter of the race and FIFO tests: it enters its own scope (which the
 * test task cancels through this struct), waits, and records what the
 * wait returned, whether it then held what it waited for, and what its
 * next checkpoint returned. It lets go before it ends.
 */
struct waiter {
    void *obj; /* the primitive */
    int *seq;  /* shared: order of success */
    int id;
    weft_scope scope;
    weft_task *task;
    bool entered, done;
    int rc;      /* the wait's result */
    bool held;   /* it held the lock/token on return */
    int next_cp; /* its next checkpoint, when rc == 0 */
    int order;   /* its place among successful waits, from 1 */
    int exit_rc; /* weft_scope_exit's result */
};

static void waiter_begin(struct waiter *w)
{
    w->task = weft_task_current();
    w->next_cp = 1; /* not reached */
    weft_scope_enter(&w->scope, WEFT_FOREVER);
    w->entered = true;
}

static int waiter_end(struct waiter *w)
{
    if (w->rc >= 0 && w->seq)
        w->order = ++*w->seq;
    int rc = w->rc < 0 ? w->rc : (w->next_cp == 1 ? 0 : w->next_cp);
    w->exit_rc = weft_scope_exit(&w->scope, rc);
    w->done = true;
    return 0;
}

static void waiters_init(struct waiter *w, size_t n, void *obj, int *seq)
{
    memset(w, 0, n * sizeof *w);
    for (size_t i = 0; i < n; i++) {
        w[i].obj = obj;
        w[i].seq = seq;
        w[i].id = (int)i;
    }
}

static bool spawn_all(weft_group *g, weft_fn fn, struct waiter *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!CHECK_EQ(weft_group_spawn(g, fn, &w[i]), 0))
            return false;
    return true;
}

/* rc is 0, the task kept what it got though cancelled, and its next
 * checkpoint said so; the scope caught the cancellation. */
static void check_granted_then_cancelled(const struct waiter *w)
{
    CHECK(w->done);
    CHECK_EQ(w->rc, 0);
    CHECK(w->held);
    CHECK_EQ(w->next_cp, -ECANCELED);
    CHECK_EQ(w->exit_rc, 0);
    CHECK(weft_scope_cancel_called(&w->scope));
}

static void check_cancelled(const struct waiter *w)
{
    CHECK(w->done);
    CHECK_EQ(w->rc, -ECANCELED);
    CHECK(!w->held);
    CHECK_EQ(w->order, 0);
    CHECK_EQ(w->exit_rc, 0);
    CHECK(weft_scope_cancelled_caught(&w->scope));
}

static void check_plain_success(const struct waiter *w)
{
    CHECK(w->done);
    CHECK_EQ(w->rc, 0);
    CHECK(w->held);
    CHECK_EQ(w->next_cp, 0);
    CHECK_EQ(w->exit_rc, 0);
}

/* ================= Event ================= */

static int event_waiter(void *arg)
{
    struct waiter *w = arg;
    waiter_begin(w);
    w->rc = weft_event_wait(w->obj);
    if (w->rc == 0) {
        w->held = weft_event_is_set(w->obj);
        w->next_cp = weft_checkpoint();
    }
    return waiter_end(w);
}

static int event_wakes_all_main(void *arg)
{
    weft_event e;
    struct waiter w[8];
    weft_group g;

    weft_event_init(&e);
    CHECK(!weft_event_is_set(&e));
    CHECK_EQ(event_waiting(&e), 0);
    waiters_init(w, 8, &e, NULL);
    weft_group_enter(&g);
    spawn_all(&g, event_waiter, w, 8);
    yield_until(event_waiting, &e, 8);
    for (int i = 0; i < 8; i++)
        CHECK(!w[i].done);
    weft_event_set(&e);
    CHECK(weft_event_is_set(&e));
    CHECK_EQ(event_waiting(&e), 0); /* all woken at once */
    weft_event_set(&e);             /* a second set changes nothing */
    CHECK(weft_event_is_set(&e));
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < 8; i++)
        check_plain_success(&w[i]);
    return 0;
}

static void test_event_set_wakes_every_waiter(void **state)
{
    run_in_loop(event_wakes_all_main, NULL);
}

static int event_after_set_main(void *arg)
{
    weft_event e;
    weft_scope s;

    weft_event_init(&e);
    weft_event_set(&e);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_event_wait(&e), 0);
    CHECK(weft_event_is_set(&e));
    /* still a checkpoint: a cancelled task gets -ECANCELED, set or not */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_event_wait(&e), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK_EQ(weft_event_wait(NULL), -EINVAL);
    CHECK_EQ(weft_event_statistics(&e, NULL), -EINVAL);
    return 0;
}

static void test_event_wait_after_set_returns_at_once(void **state)
{
    run_in_loop(event_after_set_main, NULL);
}

static int event_cancel_main(void *arg)
{
    weft_event e;
    struct waiter w[3];
    weft_group g;
    weft_scope s;

    weft_event_init(&e);
    /* a deadline ends a wait */
    weft_move_on_after(&s, 2 * WEFT_MSEC);
    CHECK_EQ(weft_event_wait(&e), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    CHECK_EQ(event_waiting(&e), 0);
    CHECK(!weft_event_is_set(&e));

    /* a cancel from another task ends one wait and leaves the others */
    waiters_init(w, 3, &e, NULL);
    weft_group_enter(&g);
    spawn_all(&g, event_waiter, w, 3);
    yield_until(event_waiting, &e, 3);
    weft_scope_cancel(&w[1].scope);
    CHECK_EQ(event_waiting(&e), 2);
    th_settle();
    CHECK(w[1].done);
    CHECK(!w[0].done && !w[2].done);
    weft_event_set(&e);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    check_cancelled(&w[1]);
    check_plain_success(&w[0]);
    check_plain_success(&w[2]);
    return 0;
}

static void test_event_cancelled_wait_returns_ecanceled(void **state)
{
    run_in_loop(event_cancel_main, NULL);
}

/* Both orders of "set" and "cancel the waiter's scope". */
static int event_race_main(void *arg)
{
    for (int order = 0; order < 2; order++) {
        weft_event e;
        struct waiter w[2];
        weft_group g;

        weft_event_init(&e);
        waiters_init(w, 2, &e, NULL);
        weft_group_enter(&g);
        spawn_all(&g, event_waiter, w, 2);
        yield_until(event_waiting, &e, 2);
        if (order == 0) {
            weft_event_set(&e);
            weft_scope_cancel(&w[0].scope);
        } else {
            weft_scope_cancel(&w[0].scope);
            CHECK_EQ(event_waiting(&e), 1);
            weft_event_set(&e);
        }
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        if (order == 0)
            check_granted_then_cancelled(&w[0]);
        else
            check_cancelled(&w[0]);
        check_plain_success(&w[1]);
    }
    return 0;
}

static void test_event_set_and_cancel_in_both_orders(void **state)
{
    run_in_loop(event_race_main, NULL);
}

/* ================= Lock ================= */

static int lock_waiter(void *arg)
{
    struct waiter *w = arg;
    weft_lock *l = w->obj;
    waiter_begin(w);
    w->rc = weft_lock_acquire(l);
    if (w->rc == 0) {
        w->held = lock_owner(l) == w->task && weft_lock_locked(l);
        if (w->seq)
            w->order = ++*w->seq;
        w->next_cp = weft_checkpoint();
        CHECK_EQ(lock_owner(l), w->task); /* still, across the checkpoint */
        CHECK_EQ(weft_lock_release(l), 0);
        w->seq = NULL; /* order taken */
    }
    return waiter_end(w);
}

static int lock_basic_main(void *arg)
{
    weft_lock l;

    weft_lock_init(&l);
    CHECK(!weft_lock_locked(&l));
    CHECK_EQ(lock_owner(&l), NULL);
    CHECK_EQ(weft_lock_acquire(&l), 0);
    CHECK(weft_lock_locked(&l));
    CHECK_EQ(lock_owner(&l), weft_task_current());
    CHECK_EQ(weft_lock_release(&l), 0);
    CHECK(!weft_lock_locked(&l));
    CHECK_EQ(weft_lock_try_acquire(&l), 0);
    CHECK(weft_lock_locked(&l));
    CHECK_EQ(weft_lock_release(&l), 0);
    /* releasing a lock nobody holds is misuse */
    CHECK_EQ(weft_lock_release(&l), -EPERM);
    CHECK(!weft_lock_locked(&l));
    CHECK_EQ(weft_lock_acquire(NULL), -EINVAL);
    CHECK_EQ(weft_lock_try_acquire(NULL), -EINVAL);
    CHECK_EQ(weft_lock_release(NULL), -EINVAL);
    CHECK(!weft_lock_locked(NULL));
    CHECK_EQ(weft_lock_statistics(&l, NULL), -EINVAL);
    return 0;
}

static void test_lock_acquire_release_and_locked(void **state)
{
    run_in_loop(lock_basic_main, NULL);
}

static int lock_reacquire_main(void *arg)
{
    weft_lock l;

    weft_lock_init(&l);
    CHECK_EQ(weft_lock_acquire(&l), 0);
    CHECK_EQ(weft_lock_acquire(&l), -EDEADLK);
    CHECK_EQ(weft_lock_try_acquire(&l), -EDEADLK);
    CHECK_EQ(lock_owner(&l), weft_task_current()); /* still held once */
    CHECK_EQ(weft_lock_release(&l), 0);
    CHECK(!weft_lock_locked(&l));
    return 0;
}

static void test_lock_reacquire_by_owner_is_edeadlk(void **state)
{
    run_in_loop(lock_reacquire_main, NULL);
}

struct lock_other {
    weft_lock *l;
    int try_rc, release_rc;
};

static int lock_other_task(void *arg)
{
    struct lock_other *o = arg;
    o->try_rc = weft_lock_try_acquire(o->l);
    o->release_rc = weft_lock_release(o->l);
    return 0;
}

static int lock_other_main(void *arg)
{
    weft_lock l;
    struct lock_other o = {.l = &l};
    weft_group g;

    weft_lock_init(&l);
    CHECK_EQ(weft_lock_acquire(&l), 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, lock_other_task, &o), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(o.try_rc, -EAGAIN);
    CHECK_EQ(o.release_rc, -EPERM);
    CHECK_EQ(lock_owner(&l), weft_task_current()); /* unchanged */
    CHECK_EQ(weft_lock_release(&l), 0);
    return 0;
}

static void
test_lock_try_acquire_eagain_and_release_by_other_eperm(void **state)
{
    run_in_loop(lock_other_main, NULL);
}

static int lock_fifo_main(void *arg)
{
    enum { N = 6 };
    weft_lock l;
    struct waiter w[N];
    weft_group g;
    int seq = 0;

    weft_lock_init(&l);
    CHECK_EQ(weft_lock_acquire(&l), 0);
    waiters_init(w, N, &l, &seq);
    weft_group_enter(&g);
    spawn_all(&g, lock_waiter, w, N);
    yield_until(lock_waiting, &l, N);
    /* queued: try_acquire from the owner is -EDEADLK, the lock is held */
    CHECK_EQ(weft_lock_try_acquire(&l), -EDEADLK);
    CHECK_EQ(weft_lock_release(&l), 0);
    /* handed straight to the first waiter, not left free */
    CHECK_EQ(lock_owner(&l), w[0].task);
    CHECK_EQ(lock_waiting(&l), N - 1);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < N; i++) {
        check_plain_success(&w[i]);
        CHECK_EQ(w[i].order, i + 1);
    }
    CHECK(!weft_lock_locked(&l));
    return 0;
}

static void test_lock_waiters_acquire_in_fifo_order(void **state)
{
    run_in_loop(lock_fifo_main, NULL);
}

static int lock_cancel_main(void *arg)
{
    weft_lock l;
    struct waiter w[3];
    weft_group g;
    weft_scope s;
    int seq = 0;

    weft_lock_init(&l);
    /* a cancelled task cannot take even a free lock */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_lock_acquire(&l), -ECANCELED);
    CHECK(!weft_lock_locked(&l));
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);

    CHECK_EQ(weft_lock_acquire(&l), 0);
    /* a deadline ends a wait; the lock stays with its owner */
    waiters_init(w, 3, &l, &seq);
    weft_group_enter(&g);
    spawn_all(&g, lock_waiter, w, 3);
    yield_until(lock_waiting, &l, 3);
    weft_scope_set_deadline(&w[1].scope, weft_now() - 1);
    th_settle();
    CHECK(w[1].done);
    CHECK_EQ(lock_waiting(&l), 2);
    CHECK_EQ(lock_owner(&l), weft_task_current());
    CHECK_EQ(weft_lock_release(&l), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    check_cancelled(&w[1]);
    check_plain_success(&w[0]);
    check_plain_success(&w[2]);
    CHECK_EQ(w[0].order, 1);
    CHECK_EQ(w[2].order, 2);
    CHECK(!weft_lock_locked(&l));
    return 0;
}

static void test_lock_cancelled_acquire_leaves_the_queue(void **state)
{
    run_in_loop(lock_cancel_main, NULL);
}

/*
 * The hand-off races. The test task holds the lock while one or two tasks
 * wait, then releases and cancels the first waiter's scope, in the order
 * under test, before either waiter runs.
 */
static void lock_race(bool grant_first, bool with_next)
{
    weft_lock l;
    struct waiter w[2];
    weft_group g;
    size_t n = with_next ? 2 : 1;
    int seq = 0;

    weft_lock_init(&l);
    CHECK_EQ(weft_lock_acquire(&l), 0);
    waiters_init(w, n, &l, &seq);
    weft_group_enter(&g);
    spawn_all(&g, lock_waiter, w, n);
    yield_until(lock_waiting, &l, n);
    if (grant_first) {
        CHECK_EQ(weft_lock_release(&l), 0);
        weft_scope_cancel(&w[0].scope);
        CHECK_EQ(lock_owner(&l), w[0].task); /* the cancel took nothing */
    } else {
        weft_scope_cancel(&w[0].scope);
        CHECK_EQ(lock_waiting(&l), n - 1);
        CHECK_EQ(weft_lock_release(&l), 0);
        /* the first waiter is skipped: the lock is free or the next one's */
        CHECK_EQ(lock_owner(&l), with_next ? w[1].task : NULL);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    if (grant_first) {
        check_granted_then_cancelled(&w[0]);
        CHECK_EQ(w[0].order, 1);
    } else {
        check_cancelled(&w[0]);
    }
    if (with_next) {
        check_plain_success(&w[1]);
        CHECK_EQ(w[1].order, grant_first ? 2 : 1);
    }
    CHECK(!weft_lock_locked(&l));
    CHECK_EQ(lock_waiting(&l), 0);
}

static int lock_race_main(void *arg)
{
    bool grant_first = arg != NULL;
    lock_race(grant_first, false);
    lock_race(grant_first, true);
    return 0;
}

static void test_lock_released_then_cancelled_waiter_keeps_it(void **state)
{
    run_in_loop(lock_race_main, (void *)1);
}

static void test_lock_cancelled_then_released_goes_to_next(void **state)
{
    run_in_loop(lock_race_main, NULL);
}

static int lock_stats_main(void *arg)
{
    weft_lock l;
    struct waiter w[2];
    weft_group g;
    weft_lock_stats st;

    weft_lock_init(&l);
    CHECK_EQ(weft_lock_statistics(&l, &st), 0);
    CHECK(!st.locked);
    CHECK_EQ(st.owner, NULL);
    CHECK_EQ(st.tasks_waiting, 0);
    CHECK_EQ(weft_lock_acquire(&l), 0);
    waiters_init(w, 2, &l, NULL);
    weft_group_enter(&g);
    spawn_all(&g, lock_waiter, w, 2);
    yield_until(lock_waiting, &l, 2);
    CHECK_EQ(weft_lock_statistics(&l, &st), 0);
    CHECK(st.locked);
    CHECK_EQ(st.owner, weft_task_current());
    CHECK_EQ(st.tasks_waiting, 2);
    CHECK_EQ(weft_lock_release(&l), 0);
    CHECK_EQ(weft_lock_statistics(&l, &st), 0);
    CHECK(st.locked);
    CHECK_EQ(st.owner, w[0].task);
    CHECK_EQ(st.tasks_waiting, 1);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_lock_statistics(&l, &st), 0);
    CHECK(!st.locked);
    CHECK_EQ(st.tasks_waiting, 0);
    return 0;
}

static void test_lock_statistics(void **state)
{
    run_in_loop(lock_stats_main, NULL);
}

/* ================= Semaphore ================= */

static int sem_waiter(void *arg)
{
    struct waiter *w = arg;
    weft_semaphore *s = w->obj;
    waiter_begin(w);
    w->rc = weft_semaphore_acquire(s);
    if (w->rc == 0) {
        w->held = true; /* a token is this task's until it releases */
        if (w->seq)
            w->order = ++*w->seq;
        w->next_cp = weft_checkpoint();
        CHECK_EQ(weft_semaphore_release(s), 0);
        w->seq = NULL;
    }
    return waiter_end(w);
}

static int sem_basic_main(void *arg)
{
    weft_semaphore s;
    weft_semaphore_stats st;

    weft_semaphore_init(&s, 2, 3);
    CHECK_EQ(weft_semaphore_value(&s), 2);
    CHECK_EQ(weft_semaphore_acquire(&s), 0);
    CHECK_EQ(weft_semaphore_value(&s), 1);
    CHECK_EQ(weft_semaphore_try_acquire(&s), 0);
    CHECK_EQ(weft_semaphore_value(&s), 0);
    CHECK_EQ(weft_semaphore_try_acquire(&s), -EAGAIN);
    CHECK_EQ(weft_semaphore_value(&s), 0);
    for (unsigned v = 1; v <= 3; v++) {
        CHECK_EQ(weft_semaphore_release(&s), 0);
        CHECK_EQ(weft_semaphore_value(&s), v);
    }
    /* past the maximum: refused, value unchanged */
    CHECK_EQ(weft_semaphore_release(&s), -EOVERFLOW);
    CHECK_EQ(weft_semaphore_value(&s), 3);
    CHECK_EQ(weft_semaphore_statistics(&s, &st), 0);
    CHECK_EQ(st.tasks_waiting, 0);

    /* max 0: no maximum */
    weft_semaphore_init(&s, 0, 0);
    CHECK_EQ(weft_semaphore_value(&s), 0);
    CHECK_EQ(weft_semaphore_try_acquire(&s), -EAGAIN);
    for (unsigned v = 1; v <= 1000; v++)
        CHECK_EQ(weft_semaphore_release(&s), 0);
    CHECK_EQ(weft_semaphore_value(&s), 1000);

    /* an initial value above the maximum is clamped to it */
    weft_semaphore_init(&s, 5, 2);
    CHECK_EQ(weft_semaphore_value(&s), 2);
    CHECK_EQ(weft_semaphore_release(&s), -EOVERFLOW);

    /* acquire is a checkpoint even with a token free */
    weft_scope sc;
    weft_scope_enter(&sc, WEFT_FOREVER);
    weft_scope_cancel(&sc);
    CHECK_EQ(weft_semaphore_acquire(&s), -ECANCELED);
    CHECK_EQ(weft_semaphore_value(&s), 2);
    CHECK_EQ(weft_scope_exit(&sc, -ECANCELED), 0);

    CHECK_EQ(weft_semaphore_acquire(NULL), -EINVAL);
    CHECK_EQ(weft_semaphore_try_acquire(NULL), -EINVAL);
    CHECK_EQ(weft_semaphore_release(NULL), -EINVAL);
    CHECK_EQ(weft_semaphore_statistics(&s, NULL), -EINVAL);
    return 0;
}

static void test_semaphore_initial_max_overflow_and_try(void **state)
{
    run_in_loop(sem_basic_main, NULL);
}

static int sem_fifo_main(void *arg)
{
    enum { N = 6 };
    weft_semaphore s;
    struct waiter w[N];
    weft_group g;
    int seq = 0;

    weft_semaphore_init(&s, 0, 1);
    waiters_init(w, N, &s, &seq);
    weft_group_enter(&g);
    spawn_all(&g, sem_waiter, w, N);
    yield_until(sem_waiting, &s, N);
    /* queued waiters come first: try_acquire may not jump the queue */
    CHECK_EQ(weft_semaphore_release(&s), 0);
    CHECK_EQ(weft_semaphore_value(&s), 0); /* the token went to w[0] */
    CHECK_EQ(sem_waiting(&s), N - 1);
    CHECK_EQ(weft_semaphore_try_acquire(&s), -EAGAIN);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < N; i++) {
        check_plain_success(&w[i]);
        CHECK_EQ(w[i].order, i + 1);
    }
    CHECK_EQ(weft_semaphore_value(&s), 1);
    return 0;
}

static void test_semaphore_waiters_acquire_in_fifo_order(void **state)
{
    run_in_loop(sem_fifo_main, NULL);
}

static void sem_race(bool grant_first, bool with_next)
{
    weft_semaphore s;
    struct waiter w[2];
    weft_group g;
    size_t n = with_next ? 2 : 1;
    int seq = 0;

    weft_semaphore_init(&s, 0, 0);
    waiters_init(w, n, &s, &seq);
    weft_group_enter(&g);
    spawn_all(&g, sem_waiter, w, n);
    yield_until(sem_waiting, &s, n);
    if (grant_first) {
        CHECK_EQ(weft_semaphore_release(&s), 0);
        weft_scope_cancel(&w[0].scope);
        CHECK_EQ(weft_semaphore_value(&s), 0); /* w[0] has the token */
        CHECK_EQ(sem_waiting(&s), n - 1);
    } else {
        weft_scope_cancel(&w[0].scope);
        CHECK_EQ(sem_waiting(&s), n - 1);
        CHECK_EQ(weft_semaphore_release(&s), 0);
        /* to the next waiter, or available */
        CHECK_EQ(weft_semaphore_value(&s), with_next ? 0 : 1);
        CHECK_EQ(sem_waiting(&s), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    if (grant_first)
        check_granted_then_cancelled(&w[0]);
    else
        check_cancelled(&w[0]);
    if (with_next)
        check_plain_success(&w[1]);
    /* one token was released into the semaphore, and it is back */
    CHECK_EQ(weft_semaphore_value(&s), 1);
    CHECK_EQ(sem_waiting(&s), 0);
}

static int sem_race_main(void *arg)
{
    bool grant_first = arg != NULL;
    sem_race(grant_first, false);
    sem_race(grant_first, true);
    return 0;
}

static void
test_semaphore_released_then_cancelled_waiter_keeps_token(void **state)
{
    run_in_loop(sem_race_main, (void *)1);
}

static void test_semaphore_cancelled_then_released_goes_to_next(void **state)
{
    run_in_loop(sem_race_main, NULL);
}

/* ================= Condition ================= */

static int cond_waiter(void *arg)
{
    struct waiter *w = arg;
    weft_condition *c = w->obj;
    waiter_begin(w);
    if (!CHECK_EQ(weft_condition_acquire(c), 0))
        return waiter_end(w);
    w->rc = weft_condition_wait(c);
    /* whatever the wait returned, the lock is held again */
    CHECK_EQ(cond_owner(c), w->task);
    w->held = w->rc == 0;
    if (w->rc == 0) {
        if (w->seq)
            w->order = ++*w->seq;
        w->next_cp = weft_checkpoint();
        w->seq = NULL;
    }
    CHECK_EQ(cond_owner(c), w->task);
    CHECK_EQ(weft_condition_release(c), 0);
    return waiter_end(w);
}

static int cond_basic_main(void *arg)
{
    weft_condition c;
    weft_lock given;
    weft_condition_stats st;

    /* its own lock */
    weft_condition_init(&c, NULL);
    CHECK_EQ(cond_owner(&c), NULL);
    CHECK_EQ(weft_condition_wait(&c), -EPERM); /* without the lock */
    CHECK_EQ(weft_condition_acquire(&c), 0);
    CHECK_EQ(cond_owner(&c), weft_task_current());
    CHECK_EQ(weft_condition_statistics(&c, &st), 0);
    CHECK(st.lock.locked);
    CHECK_EQ(st.tasks_waiting, 0);
    CHECK_EQ(weft_condition_release(&c), 0);
    CHECK_EQ(weft_condition_release(&c), -EPERM);

    /* a given lock: the condition and the lock are the same lock */
    weft_lock_init(&given);
    weft_condition_init(&c, &given);
    CHECK_EQ(weft_lock_acquire(&given), 0);
    CHECK_EQ(cond_owner(&c), weft_task_current());
    CHECK_EQ(weft_condition_acquire(&c), -EDEADLK);
    CHECK_EQ(weft_condition_release(&c), 0);
    CHECK(!weft_lock_locked(&given));
    CHECK_EQ(weft_condition_acquire(&c), 0);
    CHECK(weft_lock_locked(&given));
    CHECK_EQ(weft_lock_release(&given), 0);
    CHECK_EQ(weft_condition_wait(&c), -EPERM);

    CHECK_EQ(weft_condition_acquire(NULL), -EINVAL);
    CHECK_EQ(weft_condition_release(NULL), -EINVAL);
    CHECK_EQ(weft_condition_wait(NULL), -EINVAL);
    CHECK_EQ(weft_condition_statistics(&c, NULL), -EINVAL);
    return 0;
}

static void test_condition_own_or_given_lock(void **state)
{
    run_in_loop(cond_basic_main, NULL);
}

struct cond_other {
    weft_condition *c;
    int wait_rc;
};

static int cond_other_task(void *arg)
{
    struct cond_other *o = arg;
    o->wait_rc = weft_condition_wait(o->c);
    return 0;
}

/* Another task holding the lock is not the same as holding it. */
static int cond_eperm_main(void *arg)
{
    weft_condition c;
    struct cond_other o = {.c = &c, .wait_rc = 1};
    weft_group g;

    weft_condition_init(&c, NULL);
    CHECK_EQ(weft_condition_acquire(&c), 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, cond_other_task, &o), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(o.wait_rc, -EPERM);
    CHECK_EQ(cond_owner(&c), weft_task_current());
    CHECK_EQ(weft_condition_release(&c), 0);
    return 0;
}

static void test_condition_wait_without_the_lock_is_eperm(void **state)
{
    run_in_loop(cond_eperm_main, NULL);
}

static int cond_notify_main(void *arg)
{
    enum { N = 6 };
    weft_lock given;
    weft_condition c;
    struct waiter w[N];
    weft_group g;
    int seq = 0;

    weft_lock_init(&given);
    weft_condition_init(&c, &given);
    /* a notification with nobody waiting is not remembered */
    weft_condition_notify(&c, 3);
    weft_condition_notify_all(&c);

    waiters_init(w, N, &c, &seq);
    weft_group_enter(&g);
    spawn_all(&g, cond_waiter, w, N);
    yield_until(cond_waiting, &c, N);
    CHECK(!weft_lock_locked(&given)); /* every waiter let go of it */

    CHECK_EQ(weft_condition_acquire(&c), 0);
    weft_condition_notify(&c, 2);
    CHECK_EQ(cond_waiting(&c), N - 2);
    weft_condition_notify(&c, 0); /* nobody */
    CHECK_EQ(cond_waiting(&c), N - 2);
    CHECK_EQ(weft_condition_release(&c), 0);
    th_settle();
    CHECK(w[0].done && w[1].done);
    for (int i = 2; i < N; i++)
        CHECK(!w[i].done);
    CHECK_EQ(cond_waiting(&c), N - 2);

    CHECK_EQ(weft_condition_acquire(&c), 0);
    weft_condition_notify_all(&c);
    CHECK_EQ(cond_waiting(&c), 0);
    CHECK_EQ(weft_condition_release(&c), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < N; i++) {
        check_plain_success(&w[i]);
        CHECK_EQ(w[i].order, i + 1); /* notified in the order they waited */
    }
    CHECK(!weft_lock_locked(&given));

    /* notify more than wait: all of them, no more */
    seq = 0;
    waiters_init(w, 2, &c, &seq);
    weft_group_enter(&g);
    spawn_all(&g, cond_waiter, w, 2);
    yield_until(cond_waiting, &c, 2);
    weft_condition_notify(&c, 10);
    CHECK_EQ(cond_waiting(&c), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    check_plain_success(&w[0]);
    check_plain_success(&w[1]);
    return 0;
}

static void test_condition_notify_n_and_notify_all(void **state)
{
    run_in_loop(cond_notify_main, NULL);
}

/*
 * A cancelled wait returns -ECANCELED holding the lock again, even when
 * another task held the lock at the moment of the cancellation (the waiter
 * then waits for it, without cancellation).
 */
static int cond_cancel_main(void *arg)
{
    weft_condition c;
    struct waiter w[1];
    weft_group g;
    weft_scope s;

    weft_condition_init(&c, NULL);
    /* in an already cancelled scope: -ECANCELED, the lock kept */
    CHECK_EQ(weft_condition_acquire(&c), 0);
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_condition_wait(&c), -ECANCELED);
    CHECK_EQ(cond_owner(&c), weft_task_current());
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    /* a deadline while waiting: the same */
    weft_move_on_after(&s, WEFT_MSEC);
    CHECK_EQ(weft_condition_wait(&c), -ECANCELED);
    CHECK_EQ(cond_owner(&c), weft_task_current());
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK_EQ(weft_condition_release(&c), 0);

    /* cancelled while another task holds the lock */
    waiters_init(w, 1, &c, NULL);
    weft_group_enter(&g);
    spawn_all(&g, cond_waiter, w, 1);
    yield_until(cond_waiting, &c, 1);
    CHECK_EQ(weft_condition_acquire(&c), 0);
    weft_scope_cancel(&w[0].scope);
    CHECK_EQ(cond_waiting(&c), 0);
    th_settle();
    CHECK(!w[0].done); /* blocked re-acquiring the lock, though cancelled */
    CHECK_EQ(cond_lock_waiting(&c), 1);
    CHECK_EQ(weft_condition_release(&c), 0);
    CHECK_EQ(cond_owner(&c), w[0].task); /* handed to it */
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    check_cancelled(&w[0]); /* and cond_waiter checked it held the lock */
    CHECK_EQ(cond_owner(&c), NULL);
    return 0;
}

static void test_condition_cancelled_wait_holds_the_lock_again(void **state)
{
    run_in_loop(cond_cancel_main, NULL);
}

/*
 * The notify/cancel races, with the test task holding the lock across
 * both (so the waiters must also queue for the lock afterwards).
 */
static void cond_race(bool notify_first, bool with_next)
{
    weft_condition c;
    struct waiter w[2];
    weft_group g;
    size_t n = with_next ? 2 : 1;
    int seq = 0;

    weft_condition_init(&c, NULL);
    waiters_init(w, n, &c, &seq);
    weft_group_enter(&g);
    spawn_all(&g, cond_waiter, w, n);
    yield_until(cond_waiting, &c, n);
    CHECK_EQ(weft_condition_acquire(&c), 0);
    if (notify_first) {
        weft_condition_notify(&c, 1);
        weft_scope_cancel(&w[0].scope);
        CHECK_EQ(cond_waiting(&c), n - 1); /* w[1], if any, still waits */
    } else {
        weft_scope_cancel(&w[0].scope);
        weft_condition_notify(&c, 1);
        CHECK_EQ(cond_waiting(&c), 0); /* the notification went to w[1] */
    }
    CHECK_EQ(weft_condition_release(&c), 0);
    th_settle();
    CHECK(w[0].done);
    if (notify_first && with_next) {
        /* w[0] consumed the only notification: w[1] waits on */
        CHECK(!w[1].done);
        CHECK_EQ(cond_waiting(&c), 1);
        weft_condition_notify(&c, 1);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    if (notify_first) {
        check_granted_then_cancelled(&w[0]);
        CHECK_EQ(w[0].order, 1);
    } else {
        check_cancelled(&w[0]);
    }
    if (with_next)
        check_plain_success(&w[1]);
    CHECK_EQ(cond_owner(&c), NULL);
    CHECK_EQ(cond_waiting(&c), 0);
}

static int cond_race_main(void *arg)
{
    bool notify_first = arg != NULL;
    cond_race(notify_first, false);
    cond_race(notify_first, true);
    return 0;
}

static void test_condition_notified_then_cancelled_waiter_keeps_it(void **state)
{
    run_in_loop(cond_race_main, (void *)1);
}

static void test_condition_cancelled_then_notified_goes_to_next(void **state)
{
    run_in_loop(cond_race_main, NULL);
}

/* ================= Limiter ================= */

static int lim_waiter(void *arg)
{
    struct waiter *w = arg;
    weft_limiter *l = w->obj;
    waiter_begin(w);
    w->rc = weft_limiter_acquire(l);
    if (w->rc == 0) {
        /* holding a token: asking again (no checkpoint) says so */
        w->held = weft_limiter_try_acquire(l) == -EDEADLK;
        if (w->seq)
            w->order = ++*w->seq;
        w->next_cp = weft_checkpoint();
        CHECK_EQ(weft_limiter_release(l), 0);
        w->seq = NULL;
    } else {
        CHECK_EQ(weft_limiter_release(l), -EPERM); /* holds none */
    }
    return waiter_end(w);
}

static int lim_basic_main(void *arg)
{
    weft_limiter l;
    weft_limiter_stats st;

    weft_limiter_init(&l, 2);
    CHECK(lim_counts(&l, 2, 0));
    CHECK_EQ(weft_limiter_statistics(&l, &st), 0);
    CHECK_EQ(st.tasks_waiting, 0);
    CHECK_EQ(weft_limiter_release(&l), -EPERM); /* holds none */
    CHECK_EQ(weft_limiter_acquire(&l), 0);
    CHECK(lim_counts(&l, 2, 1));
    CHECK_EQ(weft_limiter_acquire(&l), -EDEADLK);
    CHECK_EQ(weft_limiter_try_acquire(&l), -EDEADLK);
    CHECK(lim_counts(&l, 2, 1));
    CHECK_EQ(weft_limiter_release(&l), 0);
    CHECK_EQ(weft_limiter_release(&l), -EPERM);
    CHECK(lim_counts(&l, 2, 0));
    CHECK_EQ(weft_limiter_try_acquire(&l), 0);
    CHECK(lim_counts(&l, 2, 1));
    CHECK_EQ(weft_limiter_release(&l), 0);

    CHECK_EQ(weft_limiter_set_total_tokens(&l, 0), -EINVAL);
    CHECK(lim_counts(&l, 2, 0));
    CHECK_EQ(weft_limiter_acquire(NULL), -EINVAL);
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, NULL), -EINVAL);
    CHECK_EQ(weft_limiter_set_total_tokens(NULL, 3), -EINVAL);
    CHECK_EQ(weft_limiter_statistics(&l, NULL), -EINVAL);

    /* acquire is a checkpoint even with tokens free */
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_limiter_acquire(&l), -ECANCELED);
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, &s), -ECANCELED);
    CHECK(lim_counts(&l, 2, 0));
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    return 0;
}

static void test_limiter_tokens_edeadlk_and_eperm(void **state)
{
    run_in_loop(lim_basic_main, NULL);
}

static int lim_behalf_main(void *arg)
{
    weft_limiter l;
    int a, b;
    static const char c = 'c';
    const void *borrowers[] = {&a, &b, &c, (const void *)(uintptr_t)0x1000};

    weft_limiter_init(&l, 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, borrowers[i]), 0);
        CHECK(lim_counts(&l, 4, (unsigned)i + 1));
    }
    /* each pointer holds one token at most */
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, &a), -EDEADLK);
    CHECK_EQ(weft_limiter_try_acquire_on_behalf_of(&l, &b), -EDEADLK);
    /* full: a new borrower must wait */
    CHECK_EQ(weft_limiter_try_acquire(&l), -EAGAIN);
    CHECK_EQ(weft_limiter_try_acquire_on_behalf_of(&l, &l), -EAGAIN);
    /* the task itself is not any of those borrowers */
    CHECK_EQ(weft_limiter_release(&l), -EPERM);
    /* release only for a pointer that holds one */
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &l), -EPERM);
    CHECK(lim_counts(&l, 4, 4));
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &c), 0);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &c), -EPERM);
    CHECK(lim_counts(&l, 4, 3));
    /* the freed token can go to the task */
    CHECK_EQ(weft_limiter_try_acquire(&l), 0);
    CHECK(lim_counts(&l, 4, 4));
    CHECK_EQ(weft_limiter_release(&l), 0);
    for (int i = 0; i < 4; i++)
        if (borrowers[i] != &c)
            CHECK_EQ(weft_limiter_release_on_behalf_of(&l, borrowers[i]), 0);
    CHECK(lim_counts(&l, 4, 0));

    /* two limiters do not share borrowers */
    weft_limiter m;
    weft_limiter_init(&m, 1);
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, &a), 0);
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&m, &a), 0);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&m, &b), -EPERM);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&m, &a), 0);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &a), 0);
    CHECK(lim_counts(&l, 4, 0));
    CHECK(lim_counts(&m, 1, 0));

    /* many borrowers (the borrower table grows and shrinks) */
    weft_limiter big;
    static char many[5000];
    weft_limiter_init(&big, 5000);
    for (int i = 0; i < 5000; i++)
        if (!CHECK_EQ(weft_limiter_acquire_on_behalf_of(&big, &many[i]), 0))
            break;
    CHECK(lim_counts(&big, 5000, 5000));
    for (int i = 0; i < 5000; i += 2)
        CHECK_EQ(weft_limiter_release_on_behalf_of(&big, &many[i]), 0);
    for (int i = 0; i < 5000; i++)
        CHECK_EQ(weft_limiter_release_on_behalf_of(&big, &many[i]),
                 i % 2 ? 0 : -EPERM);
    CHECK(lim_counts(&big, 5000, 0));
    return 0;
}

static void test_limiter_on_behalf_of_any_pointer(void **state)
{
    run_in_loop(lim_behalf_main, NULL);
}

struct lim_busy {
    weft_limiter *l;
    int inside, most;
    int rc;
};

static int lim_busy_task(void *arg)
{
    struct lim_busy *b = arg;
    int rc = weft_limiter_acquire(b->l);
    if (!CHECK_EQ(rc, 0))
        return 0;
    b->inside++;
    if (b->inside > b->most)
        b->most = b->inside;
    CHECK_LE(b->inside, (int)weft_limiter_total_tokens(b->l));
    /* tokens handed on to tasks that have not run yet count too */
    CHECK_GE(weft_limiter_borrowed_tokens(b->l), (unsigned)b->inside);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_checkpoint(), 0);
    b->inside--;
    CHECK_EQ(weft_limiter_release(b->l), 0);
    return 0;
}

static int lim_bound_main(void *arg)
{
    weft_limiter l;
    struct lim_busy b = {.l = &l};
    weft_group g;

    weft_limiter_init(&l, 3);
    weft_group_enter(&g);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(weft_group_spawn(&g, lim_busy_task, &b), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(b.most, 3);
    CHECK_EQ(b.inside, 0);
    CHECK(lim_counts(&l, 3, 0));
    return 0;
}

static void test_limiter_bounds_concurrent_borrowers(void **state)
{
    run_in_loop(lim_bound_main, NULL);
}

static int lim_fifo_main(void *arg)
{
    enum { N = 5 };
    weft_limiter l;
    struct waiter w[N];
    weft_group g;
    weft_limiter_stats st;
    int seq = 0;

    weft_limiter_init(&l, 1);
    CHECK_EQ(weft_limiter_acquire(&l), 0);
    waiters_init(w, N, &l, &seq);
    weft_group_enter(&g);
    spawn_all(&g, lim_waiter, w, N);
    yield_until(lim_waiting, &l, N);
    CHECK_EQ(weft_limiter_statistics(&l, &st), 0);
    CHECK_EQ(st.total_tokens, 1);
    CHECK_EQ(st.borrowed_tokens, 1);
    CHECK_EQ(st.tasks_waiting, N);
    CHECK_EQ(weft_limiter_release(&l), 0);
    CHECK(lim_counts(&l, 1, 1)); /* straight to w[0] */
    CHECK_EQ(lim_waiting(&l), N - 1);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < N; i++) {
        check_plain_success(&w[i]);
        CHECK_EQ(w[i].order, i + 1);
    }
    CHECK(lim_counts(&l, 1, 0));
    return 0;
}

static void test_limiter_waiters_borrow_in_fifo_order(void **state)
{
    run_in_loop(lim_fifo_main, NULL);
}

/* Raising the total hands the new tokens to waiters at once. */
static int lim_raise_main(void *arg)
{
    enum { N = 4 };
    weft_limiter l;
    struct waiter w[N];
    weft_group g;
    int seq = 0;

    weft_limiter_init(&l, 1);
    CHECK_EQ(weft_limiter_acquire(&l), 0);
    waiters_init(w, N, &l, &seq);
    weft_group_enter(&g);
    spawn_all(&g, lim_waiter, w, N);
    yield_until(lim_waiting, &l, N);
    CHECK_EQ(weft_limiter_set_total_tokens(&l, 3), 0);
    CHECK(lim_counts(&l, 3, 3)); /* two waiters got one each */
    CHECK_EQ(lim_waiting(&l), N - 2);
    CHECK_EQ(weft_limiter_set_total_tokens(&l, 3 + N), 0);
    CHECK(lim_counts(&l, 3 + N, 1 + N));
    CHECK_EQ(lim_waiting(&l), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < N; i++) {
        check_plain_success(&w[i]);
        CHECK_EQ(w[i].order, i + 1);
    }
    CHECK(lim_counts(&l, 3 + N, 1));
    CHECK_EQ(weft_limiter_release(&l), 0);
    CHECK(lim_counts(&l, 3 + N, 0));
    return 0;
}

static void test_limiter_raising_total_wakes_waiters(void **state)
{
    run_in_loop(lim_raise_main, NULL);
}

/* Lowering the total below what is borrowed takes nothing back, and new
 * borrowers wait until enough tokens are returned. */
static int lim_lower_main(void *arg)
{
    weft_limiter l;
    struct waiter w[1];
    weft_group g;
    int tok[3];

    weft_limiter_init(&l, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, &tok[i]), 0);
    CHECK_EQ(weft_limiter_set_total_tokens(&l, 1), 0);
    CHECK(lim_counts(&l, 1, 3)); /* available 0, not negative */
    CHECK_EQ(weft_limiter_try_acquire(&l), -EAGAIN);
    waiters_init(w, 1, &l, NULL);
    weft_group_enter(&g);
    spawn_all(&g, lim_waiter, w, 1);
    yield_until(lim_waiting, &l, 1);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &tok[0]), 0);
    CHECK(lim_counts(&l, 1, 2));
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &tok[1]), 0);
    CHECK(lim_counts(&l, 1, 1));
    th_settle();
    CHECK(!w[0].done);
    CHECK_EQ(lim_waiting(&l), 1);
    CHECK_EQ(weft_limiter_try_acquire(&l), -EAGAIN);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &tok[2]), 0);
    CHECK(lim_counts(&l, 1, 1)); /* the waiter's now */
    CHECK_EQ(lim_waiting(&l), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    check_plain_success(&w[0]);
    CHECK(lim_counts(&l, 1, 0));
    return 0;
}

static void
test_limiter_lowering_total_blocks_until_enough_released(void **state)
{
    run_in_loop(lim_lower_main, NULL);
}

/* Two tasks wait on behalf of one borrower: the first gets a token; when
 * the next token frees up, the second learns that the borrower holds one
 * already (-EDEADLK), and that token stays available. */
struct lim_behalf_waiter {
    weft_limiter *l;
    const void *borrower;
    int rc;
};

static int lim_behalf_waiter_task(void *arg)
{
    struct lim_behalf_waiter *w = arg;
    w->rc = weft_limiter_acquire_on_behalf_of(w->l, w->borrower);
    return 0;
}

static int lim_same_borrower_main(void *arg)
{
    weft_limiter l;
    int job, a, b;
    struct lim_behalf_waiter w[2] = {{&l, &job, 1}, {&l, &job, 1}};
    weft_group g;

    weft_limiter_init(&l, 2);
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, &a), 0);
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, &b), 0);
    weft_group_enter(&g);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(weft_group_spawn(&g, lim_behalf_waiter_task, &w[i]), 0);
    yield_until(lim_waiting, &l, 2);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &a), 0);
    CHECK_EQ(lim_waiting(&l), 1);
    CHECK(lim_counts(&l, 2, 2)); /* b and job */
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &b), 0);
    CHECK_EQ(lim_waiting(&l), 0);
    CHECK(lim_counts(&l, 2, 1)); /* job only: the freed token stays */
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(w[0].rc, 0);
    CHECK_EQ(w[1].rc, -EDEADLK);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, &job), 0);
    CHECK(lim_counts(&l, 2, 0));
    return 0;
}

static void
test_limiter_second_waiter_for_same_borrower_is_edeadlk(void **state)
{
    run_in_loop(lim_same_borrower_main, NULL);
}

static void lim_race(bool grant_first, bool with_next)
{
    weft_limiter l;
    struct waiter w[2];
    weft_group g;
    size_t n = with_next ? 2 : 1;
    int seq = 0;

    weft_limiter_init(&l, 1);
    CHECK_EQ(weft_limiter_acquire(&l), 0);
    waiters_init(w, n, &l, &seq);
    weft_group_enter(&g);
    spawn_all(&g, lim_waiter, w, n);
    yield_until(lim_waiting, &l, n);
    if (grant_first) {
        CHECK_EQ(weft_limiter_release(&l), 0);
        weft_scope_cancel(&w[0].scope);
        CHECK(lim_counts(&l, 1, 1)); /* w[0] borrows it */
        CHECK_EQ(lim_waiting(&l), n - 1);
    } else {
        weft_scope_cancel(&w[0].scope);
        CHECK_EQ(lim_waiting(&l), n - 1);
        CHECK_EQ(weft_limiter_release(&l), 0);
        CHECK(lim_counts(&l, 1, with_next ? 1 : 0));
        CHECK_EQ(lim_waiting(&l), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    if (grant_first)
        check_granted_then_cancelled(&w[0]);
    else
        check_cancelled(&w[0]);
    if (with_next)
        check_plain_success(&w[1]);
    CHECK(lim_counts(&l, 1, 0));
    CHECK_EQ(lim_waiting(&l), 0);
}

static int lim_race_main(void *arg)
{
    bool grant_first = arg != NULL;
    lim_race(grant_first, false);
    lim_race(grant_first, true);
    return 0;
}

static void
test_limiter_released_then_cancelled_waiter_keeps_token(void **state)
{
    run_in_loop(lim_race_main, (void *)1);
}

static void test_limiter_cancelled_then_released_goes_to_next(void **state)
{
    run_in_loop(lim_race_main, NULL);
}

/* ================= outside a loop ================= */

static void test_sync_calls_outside_a_loop_are_eperm(void **state)
{
    weft_event e;
    weft_lock l;
    weft_semaphore s;
    weft_condition c;
    weft_limiter m;

    weft_event_init(&e);
    assert_rc(weft_event_wait(&e), -EPERM);
    weft_lock_init(&l);
    assert_rc(weft_lock_acquire(&l), -EPERM);
    assert_rc(weft_lock_try_acquire(&l), -EPERM);
    assert_rc(weft_lock_release(&l), -EPERM);
    weft_semaphore_init(&s, 1, 0);
    assert_rc(weft_semaphore_acquire(&s), -EPERM);
    weft_condition_init(&c, NULL);
    assert_rc(weft_condition_wait(&c), -EPERM);
    weft_limiter_init(&m, 1);
    assert_rc(weft_limiter_acquire(&m), -EPERM);
    assert_rc(weft_limiter_try_acquire(&m), -EPERM);
    assert_rc(weft_limiter_release(&m), -EPERM);
    assert_rc(weft_limiter_acquire_on_behalf_of(&m, &m), -EPERM);
    assert_rc(weft_limiter_release_on_behalf_of(&m, &m), -EPERM);
}

/* ================= stress ================= */

/*
 * ~200 tasks pick random operations on one lock, one semaphore, one
 * condition, one limiter and a few events, under random deadlines, and
 * cancel each other's current operation at random. Invariants are checked
 * as they go (one task inside the lock; no more semaphore or limiter
 * holders than tokens; a lock held again after every condition wait) and
 * at the end (lock free, semaphore back to its initial value, limiter with
 * nothing borrowed, no task waiting anywhere).
 */
enum {
    ST_TASKS = 200,
    ST_OPS = 40,
    ST_SEM = 4,
    ST_LIM = 3,
    ST_LIM_MAX = 6,
    ST_EVENTS = 8,
};

enum st_op {
    OP_LOCK,
    OP_TRYLOCK,
    OP_SEM,
    OP_TRYSEM,
    OP_COND_WAIT,
    OP_COND_NOTIFY,
    OP_LIM,
    OP_LIM_BEHALF,
    OP_TRYLIM,
    OP_LIM_SET,
    OP_EVENT_WAIT,
    OP_EVENT_SET,
    OP_CANCEL,
    OP_SLEEP,
    OP_COUNT
};

struct stress {
    uint64_t rng;
    weft_lock lock;
    weft_semaphore sem;
    weft_condition cond;
    weft_limiter lim;
    weft_event ev[ST_EVENTS];
    unsigned ev_sets[ST_EVENTS];
    int lock_inside, sem_holders, lim_holders;
    weft_scope *slots[ST_TASKS];
    char behalf[ST_TASKS];
    unsigned long ok, cancelled, granted_then_cancelled, cancels, deadlines;
};

struct st_task {
    struct stress *st;
    int id;
};

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static unsigned rnd_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd(s) % n);
}

static uint64_t stress_seed(void)
{
    const char *env = getenv("WEFT_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x5eedf00d2024ull;
    return seed ? seed : 1;
}

static void st_count(struct stress *st, int rc)
{
    if (rc == 0) {
        st->ok++;
        if (weft_checkpoint_if_cancelled() == -ECANCELED)
            st->granted_then_cancelled++;
    } else if (rc == -ECANCELED) {
        st->cancelled++;
    }
}

/* A few checkpoints while holding something; cancellation is ignored. */
static void st_hold(struct stress *st)
{
    for (unsigned n = rnd_below(&st->rng, 3); n; n--)
        (void)weft_checkpoint();
}

static void st_lock(struct stress *st, bool try)
{
    int rc =
        try ? weft_lock_try_acquire(&st->lock) : weft_lock_acquire(&st->lock);
    st_count(st, rc);
    if (rc != 0) {
        if (try)
            CHECK_EQ(rc, -EAGAIN);
        else
            CHECK_EQ(rc, -ECANCELED);
        return;
    }
    CHECK_EQ(st->lock_inside, 0);
    CHECK_EQ(lock_owner(&st->lock), weft_task_current());
    st->lock_inside++;
    st_hold(st);
    st->lock_inside--;
    CHECK_EQ(weft_lock_release(&st->lock), 0);
}

static void st_sem(struct stress *st, bool try)
{
    int rc = try ? weft_semaphore_try_acquire(&st->sem)
                 : weft_semaphore_acquire(&st->sem);
    st_count(st, rc);
    if (rc != 0) {
        CHECK_EQ(rc, try ? -EAGAIN : -ECANCELED);
        return;
    }
    st->sem_holders++;
    CHECK_LE(st->sem_holders + (int)weft_semaphore_value(&st->sem), ST_SEM);
    st_hold(st);
    st->sem_holders--;
    CHECK_EQ(weft_semaphore_release(&st->sem), 0);
}

static void st_cond_wait(struct stress *st)
{
    int rc = weft_condition_acquire(&st->cond);
    if (rc != 0) {
        CHECK_EQ(rc, -ECANCELED);
        return;
    }
    rc = weft_condition_wait(&st->cond);
    st_count(st, rc);
    CHECK(rc == 0 || rc == -ECANCELED);
    CHECK_EQ(cond_owner(&st->cond), weft_task_current());
    CHECK_EQ(weft_condition_release(&st->cond), 0);
}

static void st_cond_notify(struct stress *st)
{
    if (weft_condition_acquire(&st->cond) != 0)
        return;
    if (rnd_below(&st->rng, 4) == 0)
        weft_condition_notify_all(&st->cond);
    else
        weft_condition_notify(&st->cond, rnd_below(&st->rng, 3));
    CHECK_EQ(weft_condition_release(&st->cond), 0);
}

static void st_lim(struct stress *st, int id, int how)
{
    const void *me = how == 1 ? (const void *)&st->behalf[id]
                              : (const void *)weft_task_current();
    int rc = how == 0   ? weft_limiter_acquire(&st->lim)
             : how == 1 ? weft_limiter_acquire_on_behalf_of(&st->lim, me)
                        : weft_limiter_try_acquire(&st->lim);
    st_count(st, rc);
    if (rc != 0) {
        CHECK_EQ(rc, how == 2 ? -EAGAIN : -ECANCELED);
        return;
    }
    st->lim_holders++;
    CHECK_LE(st->lim_holders, ST_LIM_MAX);
    /* tokens handed on but not yet seen by their task count as borrowed */
    CHECK_GE(weft_limiter_borrowed_tokens(&st->lim), st->lim_holders);
    CHECK_EQ(weft_limiter_try_acquire_on_behalf_of(&st->lim, me), -EDEADLK);
    st_hold(st);
    st->lim_holders--;
    CHECK_EQ(weft_limiter_release_on_behalf_of(&st->lim, me), 0);
}

static void st_event_wait(struct stress *st)
{
    unsigned k = rnd_below(&st->rng, ST_EVENTS);
    unsigned before = st->ev_sets[k];
    bool was_set = weft_event_is_set(&st->ev[k]);
    int rc = weft_event_wait(&st->ev[k]);
    st_count(st, rc);
    if (rc == 0)
        CHECK(was_set || st->ev_sets[k] != before);
    else
        CHECK_EQ(rc, -ECANCELED);
}

static void st_event_set(struct stress *st)
{
    unsigned k = rnd_below(&st->rng, ST_EVENTS);
    if (weft_event_is_set(&st->ev[k])) {
        /* a new event in its place; nobody can be waiting on a set one */
        CHECK_EQ(event_waiting(&st->ev[k]), 0);
        weft_event_init(&st->ev[k]);
        return;
    }
    st->ev_sets[k]++;
    weft_event_set(&st->ev[k]);
    CHECK_EQ(event_waiting(&st->ev[k]), 0);
}

static void st_cancel_other(struct stress *st, int id)
{
    unsigned j = rnd_below(&st->rng, ST_TASKS);
    if ((int)j != id && st->slots[j]) {
        weft_scope_cancel(st->slots[j]);
        st->cancels++;
    }
}

static void st_one_op(struct stress *st, int id, enum st_op op)
{
    switch (op) {
    case OP_LOCK:
        st_lock(st, false);
        break;
    case OP_TRYLOCK:
        st_lock(st, true);
        break;
    case OP_SEM:
        st_sem(st, false);
        break;
    case OP_TRYSEM:
        st_sem(st, true);
        break;
    case OP_COND_WAIT:
        st_cond_wait(st);
        break;
    case OP_COND_NOTIFY:
        st_cond_notify(st);
        break;
    case OP_LIM:
        st_lim(st, id, 0);
        break;
    case OP_LIM_BEHALF:
        st_lim(st, id, 1);
        break;
    case OP_TRYLIM:
        st_lim(st, id, 2);
        break;
    case OP_LIM_SET:
        CHECK_EQ(weft_limiter_set_total_tokens(
                     &st->lim, 1 + rnd_below(&st->rng, ST_LIM_MAX)),
                 0);
        break;
    case OP_EVENT_WAIT:
        st_event_wait(st);
        break;
    case OP_EVENT_SET:
        st_event_set(st);
        break;
    case OP_CANCEL:
        st_cancel_other(st, id);
        break;
    case OP_SLEEP:
        (void)weft_sleep((weft_time)rnd_below(&st->rng, 100) * WEFT_USEC);
        break;
    default:
        break;
    }
}

static int st_worker(void *arg)
{
    struct st_task *t = arg;
    struct stress *st = t->st;

    for (int i = 0; i < ST_OPS; i++) {
        enum st_op op = (enum st_op)rnd_below(&st->rng, OP_COUNT);
        weft_scope s;
        /* waits that only another task's action ends always get a
         * deadline; the others get one a third of the time */
        bool must = op == OP_COND_WAIT || op == OP_EVENT_WAIT;
        if (must || rnd_below(&st->rng, 3) == 0) {
            weft_move_on_after(&s, (weft_time)rnd_below(&st->rng, 1000) *
                                       WEFT_USEC);
            st->deadlines++;
        } else {
            weft_scope_enter(&s, WEFT_FOREVER);
        }
        st->slots[t->id] = &s;
        st_one_op(st, t->id, op);
        st->slots[t->id] = NULL;
        /* a cancellation of this scope is caught here, whatever the op
         * returned (a granted call returns 0 in a cancelled scope) */
        CHECK_EQ(weft_scope_exit(&s, weft_checkpoint_if_cancelled()), 0);
    }
    return 0;
}

static int stress_main(void *arg)
{
    struct stress *st = arg;
    static struct st_task tasks[ST_TASKS];
    weft_group g;

    weft_lock_init(&st->lock);
    weft_semaphore_init(&st->sem, ST_SEM, ST_SEM);
    weft_condition_init(&st->cond, NULL);
    weft_limiter_init(&st->lim, ST_LIM);
    for (int k = 0; k < ST_EVENTS; k++)
        weft_event_init(&st->ev[k]);
    weft_group_enter(&g);
    for (int i = 0; i < ST_TASKS; i++) {
        tasks[i].st = st;
        tasks[i].id = i;
        CHECK_EQ(weft_group_spawn(&g, st_worker, &tasks[i]), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);

    CHECK(!weft_lock_locked(&st->lock));
    CHECK_EQ(lock_waiting(&st->lock), 0);
    CHECK_EQ(st->lock_inside, 0);
    CHECK_EQ(weft_semaphore_value(&st->sem), ST_SEM);
    CHECK_EQ(sem_waiting(&st->sem), 0);
    CHECK_EQ(cond_owner(&st->cond), NULL);
    CHECK_EQ(cond_waiting(&st->cond), 0);
    CHECK_EQ(weft_limiter_borrowed_tokens(&st->lim), 0);
    CHECK_EQ(lim_waiting(&st->lim), 0);
    CHECK_EQ(st->lim_holders, 0);
    for (int k = 0; k < ST_EVENTS; k++)
        CHECK_EQ(event_waiting(&st->ev[k]), 0);
    return 0;
}

static void test_sync_random_stress(void **state)
{
    static struct stress st;
    memset(&st, 0, sizeof st);
    st.rng = stress_seed();
    print_message("seed 0x%llx (set WEFT_TEST_SEED to repeat)\n",
                  (unsigned long long)st.rng);
    run_in_loop(stress_main, &st);
    print_message("%lu succeeded (%lu of them granted then cancelled), "
                  "%lu cancelled; %lu cancels, %lu deadlines\n",
                  st.ok, st.granted_then_cancelled, st.cancelled, st.cancels,
                  st.deadlines);
}

/* ---- owners are tasks, not their (reused) records ---- */

/* A lock left held by a task that ended is not owned by the next task,
 * which gets the same record (repros/lock_owner_recycled.c). */
static weft_lock recyc_lock;
static weft_task *recyc_first;

static int recyc_taker(void *arg)
{
    recyc_first = weft_task_current();
    return weft_lock_acquire(&recyc_lock); /* keeps it */
}

static int recyc_other(void *arg)
{
    CHECK_EQ(weft_task_current(), recyc_first); /* the record is reused */
    CHECK_EQ(weft_lock_try_acquire(&recyc_lock), -EAGAIN);
    CHECK_EQ(weft_lock_release(&recyc_lock), -EPERM);
    CHECK(weft_lock_locked(&recyc_lock));
    weft_lock_stats st;
    CHECK_EQ(weft_lock_statistics(&recyc_lock, &st), 0);
    CHECK_NE(st.owner_id, weft_task_id(weft_task_current()));
    CHECK_NE(st.owner_id, 0);
    return 0;
}

static int recyc_lock_main(void *arg)
{
    weft_lock_init(&recyc_lock);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recyc_taker, NULL), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recyc_other, NULL), 0);
    return weft_group_exit(&g, 0);
}

static void test_lock_held_by_ended_task_is_not_owned_by_next_task(void **s)
{
    run_in_loop(recyc_lock_main, NULL);
}

/* A lock held by an ended task of an earlier loop is not owned by the task
 * with the same id in a later loop on the same thread. */
static int recyc_loop_other(void *arg)
{
    CHECK_EQ(weft_lock_try_acquire(&recyc_lock), -EAGAIN);
    CHECK_EQ(weft_lock_release(&recyc_lock), -EPERM);
    return 0;
}

static void
test_lock_held_in_an_ended_loop_is_not_owned_by_a_later_loop(void **s)
{
    weft_lock_init(&recyc_lock);
    run_in_loop(recyc_taker, NULL);      /* main (id 1) keeps it */
    run_in_loop(recyc_loop_other, NULL); /* main again, id 1 */
}

/* A token borrowed on behalf of a task (by its pointer) that then ended
 * is not the token of the next task, which gets the same record: that
 * task's own tokens are keyed by its id. */
static weft_limiter recyc_lim;
static weft_task *recyc_named;

static int recyc_named_task(void *arg)
{
    recyc_named = weft_task_current();
    return 0;
}

static int recyc_lim_other(void *arg)
{
    CHECK_EQ(weft_task_current(), recyc_named); /* the record is reused */
    CHECK_EQ(weft_limiter_release(&recyc_lim), -EPERM);
    CHECK_EQ(weft_limiter_try_acquire(&recyc_lim), 0);
    CHECK_EQ(weft_limiter_borrowed_tokens(&recyc_lim), 2);
    CHECK_EQ(weft_limiter_release(&recyc_lim), 0);
    return 0;
}

static int recyc_lim_main(void *arg)
{
    weft_limiter_init(&recyc_lim, 2);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recyc_named_task, NULL), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    /* the ended task's pointer, as a named borrower */
    CHECK_EQ(weft_limiter_try_acquire_on_behalf_of(&recyc_lim, recyc_named), 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recyc_lim_other, NULL), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_limiter_borrowed_tokens(&recyc_lim), 1);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&recyc_lim, recyc_named), 0);
    return 0;
}

static void
test_limiter_ended_task_pointer_is_not_the_next_tasks_borrower(void **s)
{
    run_in_loop(recyc_lim_main, NULL);
}

/* acquire_on_behalf_of(the current task) is the task's own token. */
static int self_behalf_main(void *arg)
{
    weft_limiter l;
    weft_limiter_init(&l, 1);
    CHECK_EQ(weft_limiter_acquire_on_behalf_of(&l, weft_task_current()), 0);
    CHECK_EQ(weft_limiter_try_acquire(&l), -EDEADLK);
    CHECK_EQ(weft_limiter_release(&l), 0);
    CHECK_EQ(weft_limiter_acquire(&l), 0);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&l, weft_task_current()), 0);
    CHECK_EQ(weft_limiter_borrowed_tokens(&l), 0);
    return 0;
}

static void test_limiter_on_behalf_of_current_task_is_its_own(void **s)
{
    run_in_loop(self_behalf_main, NULL);
}

/*
 * A task that ends holding a token it took for itself ends the program
 * (docs/reference/sync.md, weft_limiter_acquire NOTES): left borrowed, the
 * token could never be released and the limiter would stay a token short.
 * Run in a fresh exec of the suite; the child says which id the task got.
 */
static weft_limiter end_lim;

static int end_holder(void *arg)
{
    fprintf(stderr, "TEST: holder is task %llu\n",
            (unsigned long long)weft_task_id(weft_task_current()));
    return weft_limiter_acquire(&end_lim); /* and no release */
}

static int end_main(void *arg)
{
    weft_group g;

    weft_limiter_init(&end_lim, 2);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "holder", end_holder, NULL), 0);
    int rc = weft_group_exit(&g, 0);
    fprintf(stderr, "TEST: the group exited with %d\n", rc);
    return rc;
}

static void limiter_task_end_child(void)
{
    weft_run(end_main, NULL, NULL);
    _exit(20); /* not reached: the holder's end aborts */
}

static void test_limiter_task_ending_with_its_token_aborts(void **state)
{
    struct th_child c;
    unsigned long long id = 0;
    char want[256];

    th_run_exec_child("limiter_task_end", &c);
    const char *said = strstr(c.err, "TEST: holder is task ");
    if (said)
        id = strtoull(said + strlen("TEST: holder is task "), NULL, 10);
    snprintf(want, sizeof want,
             "weft: task 'holder' (id %llu) ended holding a limiter token: "
             "release it (weft_limiter_release) before returning\n",
             id);
    if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT || !id ||
        !strstr(c.err, want) || strstr(c.err, "the group exited")) {
        th_child_dump(&c);
        fail_msg("expected death by SIGABRT saying: %s", want);
    }
}

/* A token taken on behalf of a borrower is the borrower's: the task that
 * took it may end; it stays borrowed until released on its behalf. */
static int behalf_taker(void *arg)
{
    return weft_limiter_acquire_on_behalf_of(&end_lim, arg);
}

static int behalf_end_main(void *arg)
{
    weft_group g;
    int job;

    weft_limiter_init(&end_lim, 2);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, behalf_taker, &job), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_limiter_borrowed_tokens(&end_lim), 1);
    CHECK_EQ(weft_limiter_release_on_behalf_of(&end_lim, &job), 0);
    CHECK_EQ(weft_limiter_borrowed_tokens(&end_lim), 0);
    return 0;
}

static void test_limiter_token_on_behalf_outlives_the_task(void **state)
{
    run_in_loop(behalf_end_main, NULL);
}

/* With no maximum, release at UINT_MAX is -EOVERFLOW and the value stays
 * (repros/semaphore_wrap.c). Needs no loop. */
static void test_semaphore_without_max_does_not_wrap(void **s)
{
    weft_semaphore sem;
    weft_semaphore_init(&sem, UINT_MAX - 1, 0);
    assert_rc(weft_semaphore_release(&sem), 0);
    assert_true(weft_semaphore_value(&sem) == UINT_MAX);
    assert_rc(weft_semaphore_release(&sem), -EOVERFLOW);
    assert_true(weft_semaphore_value(&sem) == UINT_MAX);
    assert_rc(weft_semaphore_try_acquire(&sem), 0);
    assert_true(weft_semaphore_value(&sem) == UINT_MAX - 1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_event_set_wakes_every_waiter),
    cmocka_unit_test(test_event_wait_after_set_returns_at_once),
    cmocka_unit_test(test_event_cancelled_wait_returns_ecanceled),
    cmocka_unit_test(test_event_set_and_cancel_in_both_orders),
    cmocka_unit_test(test_lock_acquire_release_and_locked),
    cmocka_unit_test(test_lock_reacquire_by_owner_is_edeadlk),
    cmocka_unit_test(test_lock_try_acquire_eagain_and_release_by_other_eperm),
    cmocka_unit_test(test_lock_waiters_acquire_in_fifo_order),
    cmocka_unit_test(test_lock_cancelled_acquire_leaves_the_queue),
    cmocka_unit_test(test_lock_released_then_cancelled_waiter_keeps_it),
    cmocka_unit_test(test_lock_cancelled_then_released_goes_to_next),
    cmocka_unit_test(test_lock_statistics),
    cmocka_unit_test(test_semaphore_initial_max_overflow_and_try),
    cmocka_unit_test(test_semaphore_waiters_acquire_in_fifo_order),
    cmocka_unit_test(test_semaphore_released_then_cancelled_waiter_keeps_token),
    cmocka_unit_test(test_semaphore_cancelled_then_released_goes_to_next),
    cmocka_unit_test(test_condition_own_or_given_lock),
    cmocka_unit_test(test_condition_wait_without_the_lock_is_eperm),
    cmocka_unit_test(test_condition_notify_n_and_notify_all),
    cmocka_unit_test(test_condition_cancelled_wait_holds_the_lock_again),
    cmocka_unit_test(test_condition_notified_then_cancelled_waiter_keeps_it),
    cmocka_unit_test(test_condition_cancelled_then_notified_goes_to_next),
    cmocka_unit_test(test_limiter_tokens_edeadlk_and_eperm),
    cmocka_unit_test(test_limiter_on_behalf_of_any_pointer),
    cmocka_unit_test(test_limiter_bounds_concurrent_borrowers),
    cmocka_unit_test(test_limiter_waiters_borrow_in_fifo_order),
    cmocka_unit_test(test_limiter_raising_total_wakes_waiters),
    cmocka_unit_test(test_limiter_lowering_total_blocks_until_enough_released),
    cmocka_unit_test(test_limiter_second_waiter_for_same_borrower_is_edeadlk),
    cmocka_unit_test(test_limiter_released_then_cancelled_waiter_keeps_token),
    cmocka_unit_test(test_limiter_cancelled_then_released_goes_to_next),
    cmocka_unit_test(test_lock_held_by_ended_task_is_not_owned_by_next_task),
    cmocka_unit_test(
        test_lock_held_in_an_ended_loop_is_not_owned_by_a_later_loop),
    cmocka_unit_test(
        test_limiter_ended_task_pointer_is_not_the_next_tasks_borrower),
    cmocka_unit_test(test_limiter_on_behalf_of_current_task_is_its_own),
    cmocka_unit_test(test_limiter_task_ending_with_its_token_aborts),
    cmocka_unit_test(test_limiter_token_on_behalf_outlives_the_task),
    cmocka_unit_test(test_semaphore_without_max_does_not_wrap),
    cmocka_unit_test(test_sync_calls_outside_a_loop_are_eperm),
    cmocka_unit_test(test_sync_random_stress),
};

static const struct th_exec_entry children[] = {
    {"limiter_task_end", limiter_task_end_child},
};

TH_MAIN_WITH_CHILDREN(tests, children)
