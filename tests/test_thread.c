/* SPDX-License-Identifier: MIT */
/*
 * tests/test_thread.c - the thread bridge (API.md "Thread bridge"):
 * weft_to_thread on pool workers, limiters (the loop's default of 40
 * tokens and a given one), shielded and abandon-on-cancel waits,
 * weft_from_thread_* back into the loop, portals called from threads weft
 * did not start, a loop that ends while an abandoned worker still runs,
 * an abandoned call cancelled just after its worker posted the result,
 * idle workers retiring, and (thread_idle of WEFT_FOREVER) idle workers
 * that never retire and use no CPU.
 *
 * The tests of the main paths run twice (the *_msg_ring twins): with the
 * default wake-up (an eventfd watched by a multishot POLL_ADD) and with
 * WEFT_OPT_WAKE_MSG_RING (skipped where the kernel has no
 * IORING_OP_MSG_RING). Under MSG_RING, workers wake the loop with it and
 * portal callers, which are not workers, still write the eventfd.
 *
 * Races are arranged, not hoped for: a worker that must still be running
 * when the loop looks waits on a gate the test opens afterwards, and a
 * cancel that must come after a worker started waits for the worker's
 * flag. The waits on flags are bounded by generous guards (seconds).
 *
 * Tests that count the process's threads and descriptors run in a fresh
 * exec of this suite (earlier tests leave idle workers behind).
 */
#include "helpers.h"

#include <dirent.h>
#include <stdatomic.h>
#include <sys/resource.h>

#if TH_ASAN
#include <sanitizer/lsan_interface.h>

/* Leak checks on, also when the suite is run by hand (ASAN_OPTIONS in
 * the environment still wins). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=1";
}
#endif

#define GUARD_S 10  /* bound of every wait for another thread's flag */
#define BARRIER_S 5 /* bound of a wait for calls that must run at once */

/* ---- helpers ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* On a plain thread or a worker: wait until *flag is set; false if the
 * guard passed first. */
static bool wait_flag(atomic_int *flag)
{
    weft_time end = th_clock() + GUARD_S * WEFT_SEC;
    while (!atomic_load(flag)) {
        if (th_clock() > end)
            return th_fail_at(__FILE__, __LINE__, "flag never set");
        sleep_ms(1);
    }
    return true;
}

/* In a task (not in a cancelled scope): the same, sleeping on the loop. */
static bool task_wait_flag(atomic_int *flag)
{
    weft_time end = weft_now() + GUARD_S * WEFT_SEC;
    while (!atomic_load(flag)) {
        if (weft_now() > end)
            return th_fail_at(__FILE__, __LINE__, "flag never set");
        if (!CHECK_EQ(weft_sleep(WEFT_MSEC), 0))
            return false;
    }
    return true;
}

static weft_options opts_with(unsigned flags)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    return o;
}

static int probe_msg_ring(void *arg)
{
    *(bool *)arg = weft_uring_has_op(IORING_OP_MSG_RING);
    return 0;
}

static bool msg_ring_supported(void)
{
    static int cached = -1;
    if (cached < 0) {
        bool has = false;
        cached = weft_run(probe_msg_ring, &has, NULL) == 0 && has;
    }
    return cached;
}

/* Run body with WEFT_OPT_WAKE_MSG_RING, or skip where the kernel lacks it. */
static void with_msg_ring(void (*body)(unsigned flags))
{
    th_uring_only("WEFT_OPT_WAKE_MSG_RING wakes a loop through io_uring");
    if (!msg_ring_supported()) {
        print_message("IORING_OP_MSG_RING is not supported by this kernel\n");
        skip();
    }
    body(WEFT_OPT_WAKE_MSG_RING);
}

/* Threads of this process, not counting io_uring's own kernel workers
 * (iou-wrk-*, iou-sqp-*), which the kernel starts and retires on its own
 * schedule; -1 on error. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = '\0';
            fclose(f);
        }
        if (strncmp(comm, "iou-", 4) != 0)
            n++;
    }
    closedir(d);
    return n;
}

static void *nothing(void *arg)
{
    return arg;
}

/* The baseline of count_threads(): first make a thread and join it, so
 * that helper threads a sanitizer starts with the first pthread_create
 * (TSan's background thread) are there before and after alike. */
static int count_threads_baseline(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, nothing, NULL) == 0)
        pthread_join(th, NULL);
    /* A joined thread can stay listed in /proc/self/task for a moment
     * after pthread_join returns: count until two reads agree. */
    int n = count_threads();
    for (int i = 0; i < 100; i++) {
        sleep_ms(1);
        int m = count_threads();
        if (m == n)
            break;
        n = m;
    }
    return n;
}

/* Under ASan: a leak check now (LeakSanitizer), not only at exit. */
static void check_no_leaks(void)
{
#if TH_ASAN
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static unsigned borrowed(weft_limiter *l)
{
    return weft_limiter_borrowed_tokens(l);
}

/* ---- weft_to_thread runs fn on another thread and returns its result ---- */

struct who {
    pthread_t thread;
    int value;
};

static int record_thread(void *arg)
{
    struct who *w = arg;
    w->thread = pthread_self();
    return w->value;
}

static int round_trip_main(void *arg)
{
    pthread_t loop = pthread_self();
    struct who w = {.value = 1234};

    CHECK_EQ(weft_to_thread(record_thread, &w, NULL, 0), 1234);
    CHECK(!pthread_equal(w.thread, loop));
    w.value = -EIO; /* an error is a result like any other */
    CHECK_EQ(weft_to_thread(record_thread, &w, NULL, 0), -EIO);
    for (int i = 0; i < 200; i++) {
        w.value = i;
        w.thread = loop;
        if (!CHECK_EQ(weft_to_thread(record_thread, &w, NULL, 0), i) ||
            !CHECK(!pthread_equal(w.thread, loop)))
            break;
    }
    CHECK_EQ(borrowed(weft_default_thread_limiter()), 0);
    return 0;
}

static void round_trip(unsigned flags)
{
    weft_options o = opts_with(flags);
    run_in_loop_opts(round_trip_main, NULL, &o, 0);
}

static void
test_to_thread_runs_fn_on_another_thread_and_returns_result(void **state)
{
    round_trip(0);
}

static void test_to_thread_runs_fn_on_another_thread_msg_ring(void **state)
{
    with_msg_ring(round_trip);
}

/* ---- the default limiter ---- */

static weft_limiter *other_loops_limiter;

static int record_limiter(void *arg)
{
    other_loops_limiter = weft_default_thread_limiter();
    return 0;
}

static void *other_loop_thread(void *arg)
{
    *(int *)arg = weft_run(record_limiter, NULL, NULL);
    return NULL;
}

static int default_limiter_main(void *arg)
{
    weft_limiter *l = weft_default_thread_limiter();

    if (!CHECK(l != NULL))
        return -EIO;
    CHECK(weft_default_thread_limiter() == l);
    CHECK_EQ(weft_limiter_total_tokens(l), 40);
    CHECK_EQ(weft_limiter_borrowed_tokens(l), 0);
    CHECK_EQ(weft_limiter_available_tokens(l), 40);

    /* Per loop: another thread's loop, alive at the same time, has its own. */
    pthread_t th;
    int rc = -1;
    CHECK_EQ(pthread_create(&th, NULL, other_loop_thread, &rc), 0);
    pthread_join(th, NULL); /* blocks this loop briefly: nothing else runs */
    CHECK_EQ(rc, 0);
    CHECK(other_loops_limiter != NULL);
    CHECK(other_loops_limiter != l);
    return 0;
}

static void test_default_thread_limiter_has_40_tokens_per_loop(void **state)
{
    assert_null(weft_default_thread_limiter()); /* outside a loop */
    run_in_loop(default_limiter_main, NULL);
}

/* ---- limiters cap concurrency ---- */

struct cap {
    atomic_int running, max;
    int limit; /* what max must reach, and not pass */
    int ntasks;
    weft_limiter *limiter; /* NULL = the loop's default */
    int ok;
};

/*
 * Count itself in, then hold on until the cap has been reached (bounded by
 * the guard) and a little more, so that any call a limiter let through
 * beyond its total would overlap with the others and push max past it.
 */
static int cap_worker(void *arg)
{
    struct cap *c = arg;
    int now = atomic_fetch_add(&c->running, 1) + 1;
    int m = atomic_load(&c->max);
    while (now > m && !atomic_compare_exchange_weak(&c->max, &m, now)) {
    }
    weft_time end = th_clock() + BARRIER_S * WEFT_SEC;
    while (atomic_load(&c->max) < c->limit && th_clock() < end)
        sleep_ms(1);
    sleep_ms(5);
    atomic_fetch_sub(&c->running, 1);
    return 0;
}

static int cap_task(void *arg)
{
    struct cap *c = arg;
    int rc = weft_to_thread(cap_worker, c, c->limiter, 0);
    if (CHECK_EQ(rc, 0))
        c->ok++;
    return rc;
}

static int cap_main(void *arg)
{
    struct cap *c = arg;
    weft_group g;

    weft_group_enter(&g);
    for (int i = 0; i < c->ntasks; i++)
        CHECK_EQ(weft_group_spawn(&g, cap_task, c), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(c->ok, c->ntasks);
    CHECK_EQ(atomic_load(&c->max), c->limit);
    CHECK_EQ(atomic_load(&c->running), 0);
    weft_limiter *l = c->limiter ? c->limiter : weft_default_thread_limiter();
    CHECK_EQ(borrowed(l), 0);
    return 0;
}

static void default_cap(unsigned flags)
{
    struct cap c = {.limit = 40, .ntasks = 100};
    weft_options o = opts_with(flags);
    run_in_loop_opts(cap_main, &c, &o, 0);
}

static void test_default_limiter_caps_concurrency_at_40(void **state)
{
    default_cap(0);
}

static void test_default_limiter_caps_concurrency_at_40_msg_ring(void **state)
{
    with_msg_ring(default_cap);
}

static int given_cap_main(void *arg)
{
    struct cap *c = arg;
    weft_limiter lim;

    weft_limiter_init(&lim, 3);
    c->limiter = &lim;
    int rc = cap_main(c);
    CHECK_EQ(weft_limiter_total_tokens(&lim), 3);
    /* the default limiter was not touched */
    CHECK_EQ(borrowed(weft_default_thread_limiter()), 0);
    c->limiter = NULL;
    return rc;
}

static void given_cap(unsigned flags)
{
    struct cap c = {.limit = 3, .ntasks = 12};
    weft_options o = opts_with(flags);
    run_in_loop_opts(given_cap_main, &c, &o, 0);
}

static void test_given_limiter_caps_concurrency_at_its_total(void **state)
{
    given_cap(0);
}

static void test_given_limiter_caps_concurrency_msg_ring(void **state)
{
    with_msg_ring(given_cap);
}

/*
 * Calls made while a worker is still spinning for its next job (just after
 * a call returned) must each get a worker: two calls that only return once
 * both run at the same time must return. Each round makes the spin happen
 * again; whether a round's calls land inside the 20 us spin is up to the
 * scheduler, so the test makes ten rounds.
 */
static int pair_worker(void *arg)
{
    atomic_int *running = arg;
    atomic_fetch_add(running, 1);
    weft_time end = th_clock() + BARRIER_S * WEFT_SEC;
    while (atomic_load(running) < 2 && th_clock() < end)
        sleep_ms(1);
    return atomic_load(running) >= 2 ? 0 : -ETIMEDOUT;
}

static int pair_task(void *arg)
{
    return weft_to_thread(pair_worker, arg, NULL, 0);
}

static int pair_of_calls(void)
{
    atomic_int running = 0;
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, pair_task, &running), 0);
    CHECK_EQ(weft_group_spawn(&g, pair_task, &running), 0);
    return weft_group_exit(&g, 0);
}

static int spin_burst_main(void *arg)
{
    CHECK_EQ(pair_of_calls(), 0);            /* two workers exist */
    CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0); /* both idle in the pool */
    for (int i = 0; i < 10; i++) {
        /* this call's worker spins for the next job as it returns ... */
        CHECK_EQ(weft_to_thread(th_task_return, NULL, NULL, 0), 0);
        /* ... when these two are submitted */
        if (!CHECK_EQ(pair_of_calls(), 0))
            break;
    }
    return 0;
}

static void test_calls_made_while_a_worker_spins_each_get_a_worker(void **state)
{
    run_in_loop(spin_burst_main, NULL);
}

/* ---- a shielded call (no flag) that is cancelled ---- */

struct shielded {
    atomic_int done;
    int seen; /* weft_from_thread_check_cancelled once cancelled */
};

/* Sleeps 50 ms while the scope's 10 ms deadline passes, then watches for
 * the cancellation to reach it (it must, guard aside). */
static int shielded_worker(void *arg)
{
    struct shielded *s = arg;
    sleep_ms(50);
    weft_time end = th_clock() + GUARD_S * WEFT_SEC;
    int rc;
    while ((rc = weft_from_thread_check_cancelled()) == 0 && th_clock() < end)
        sleep_ms(1);
    s->seen = rc;
    atomic_store(&s->done, 1);
    return 42;
}

static int shielded_main(void *arg)
{
    struct shielded s = {.seen = 1};
    weft_scope sc;

    weft_move_on_after(&sc, 10 * WEFT_MSEC);
    int rc = weft_to_thread(shielded_worker, &s, NULL, 0);
    CHECK_EQ(rc, 42);                  /* the worker's result */
    CHECK_EQ(atomic_load(&s.done), 1); /* it waited for the worker */
    CHECK_EQ(s.seen, -ECANCELED);
    CHECK(weft_scope_cancel_called(&sc));
    CHECK_EQ(weft_checkpoint_if_cancelled(), -ECANCELED);
    rc = weft_checkpoint(); /* the next checkpoint reports it */
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&sc, rc), 0);
    CHECK(weft_scope_cancelled_caught(&sc));
    CHECK_EQ(borrowed(weft_default_thread_limiter()), 0);
    return 0;
}

static void shielded(unsigned flags)
{
    weft_options o = opts_with(flags);
    run_in_loop_opts(shielded_main, NULL, &o, 0);
}

static void test_shielded_call_cancelled_returns_result_then_checkpoint_cancels(
    void **state)
{
    shielded(0);
}

static void test_shielded_call_cancelled_msg_ring(void **state)
{
    with_msg_ring(shielded);
}

/* check_cancelled turns from 0 to -ECANCELED when the scope is cancelled
 * (by a sibling, once the worker has looked at it once). */
struct turn {
    weft_scope *scope;
    atomic_int started;
    int before, after;
};

static int turn_worker(void *arg)
{
    struct turn *t = arg;
    t->before = weft_from_thread_check_cancelled();
    atomic_store(&t->started, 1);
    weft_time end = th_clock() + GUARD_S * WEFT_SEC;
    int rc;
    while ((rc = weft_from_thread_check_cancelled()) == 0 && th_clock() < end)
        sleep_ms(1);
    t->after = rc;
    return 0;
}

static int turn_canceller(void *arg)
{
    struct turn *t = arg;
    if (task_wait_flag(&t->started))
        weft_scope_cancel(t->scope);
    return 0;
}

static int turn_main(void *arg)
{
    struct turn t = {.before = 1, .after = 1};
    weft_group g;
    weft_scope sc;

    weft_group_enter(&g);
    weft_scope_enter(&sc, WEFT_FOREVER);
    t.scope = &sc;
    CHECK_EQ(weft_group_spawn(&g, turn_canceller, &t), 0);
    int rc = weft_to_thread(turn_worker, &t, NULL, 0);
    CHECK_EQ(rc, 0);
    CHECK_EQ(t.before, 0);
    CHECK_EQ(t.after, -ECANCELED);
    rc = weft_checkpoint();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&sc, rc), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void turn(unsigned flags)
{
    weft_options o = opts_with(flags);
    run_in_loop_opts(turn_main, NULL, &o, 0);
}

static void test_check_cancelled_turns_after_the_cancel(void **state)
{
    turn(0);
}

static void test_check_cancelled_turns_after_the_cancel_msg_ring(void **state)
{
    with_msg_ring(turn);
}

/* ---- an abandoned call (WEFT_ABANDON_ON_CANCEL) ---- */

struct gated {
    atomic_int started, gate, done;
};

/* Runs until the test opens its gate (guard aside). */
static int gated_worker(void *arg)
{
    struct gated *w = arg;
    atomic_store(&w->started, 1);
    wait_flag(&w->gate);
    atomic_store(&w->done, 1);
    return 7;
}

static int abandon_main(void *arg)
{
    struct gated w = {0};
    weft_limiter lim;
    weft_scope sc;

    weft_limiter_init(&lim, 1);
    weft_move_on_after(&sc, 10 * WEFT_MSEC);
    int rc = weft_to_thread(gated_worker, &w, &lim, WEFT_ABANDON_ON_CANCEL);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(atomic_load(&w.done), 0); /* returned while the worker ran */
    CHECK_EQ(weft_scope_exit(&sc, rc), 0);
    CHECK(weft_scope_cancelled_caught(&sc));

    /* The token stays borrowed while the worker runs ... */
    CHECK_EQ(borrowed(&lim), 1);
    CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
    CHECK_EQ(borrowed(&lim), 1);
    CHECK_EQ(weft_limiter_available_tokens(&lim), 0);
    CHECK_EQ(weft_limiter_try_acquire(&lim), -EAGAIN);
    CHECK_EQ(atomic_load(&w.done), 0);

    /* ... and comes back once it has finished. */
    atomic_store(&w.gate, 1);
    weft_time end = weft_now() + GUARD_S * WEFT_SEC;
    while (borrowed(&lim) != 0 && weft_now() < end)
        CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK_EQ(borrowed(&lim), 0);
    CHECK_EQ(atomic_load(&w.done), 1);
    CHECK_EQ(weft_limiter_try_acquire(&lim), 0);
    CHECK_EQ(weft_limiter_release(&lim), 0);
    return 0;
}

static void abandon(unsigned flags)
{
    weft_options o = opts_with(flags);
    run_in_loop_opts(abandon_main, NULL, &o, 0);
}

static void
test_abandoned_call_returns_at_once_and_holds_token_until_worker_ends(
    void **state)
{
    abandon(0);
}

static void test_abandoned_call_msg_ring(void **state)
{
    with_msg_ring(abandon);
}

/* Without a cancellation, an abandonable call is an ordinary call. */
static int abandon_uncancelled_main(void *arg)
{
    struct who w = {.value = 99};
    CHECK_EQ(weft_to_thread(record_thread, &w, NULL, WEFT_ABANDON_ON_CANCEL),
             99);
    CHECK(!pthread_equal(w.thread, pthread_self()));
    CHECK_EQ(borrowed(weft_default_thread_limiter()), 0);
    return 0;
}

static void test_abandonable_call_not_cancelled_returns_result(void **state)
{
    run_in_loop(abandon_uncancelled_main, NULL);
}

/*
 * An abandonable call whose worker has posted its result when another
 * task cancels the waiter's scope, without yielding in between: the loop
 * takes the result in (and frees the abandoned job) before the waiter
 * runs again, so the waiter must not look at the job any more. It returns
 * the result or -ECANCELED; the ASan build checks that nothing freed is
 * read.
 *
 * The order is arranged: the worker waits on a gate until the canceller
 * (a task) has seen it start; the canceller then opens the gate, blocks
 * the loop's thread (no yield) while the worker returns and posts, and
 * cancels.
 */
#define POSTED_ROUNDS 3
#define POST_MS 20 /* ample time for a worker to return and post */

struct posted {
    struct gated w;
    weft_scope *scope;
    bool in;
    int rc;
};

static int posted_waiter(void *arg)
{
    struct posted *p = arg;
    weft_scope sc;

    weft_scope_enter(&sc, WEFT_FOREVER);
    p->scope = &sc;
    p->in = true;
    p->rc = weft_to_thread(gated_worker, &p->w, NULL, WEFT_ABANDON_ON_CANCEL);
    p->scope = NULL;
    CHECK_EQ(weft_scope_exit(&sc, p->rc < 0 ? p->rc : 0), 0);
    return 0;
}

static int posted_canceller(void *arg)
{
    struct posted *p = arg;

    if (!th_wait_flag(&p->in) || !task_wait_flag(&p->w.started))
        return -ETIMEDOUT;
    atomic_store(&p->w.gate, 1);
    sleep_ms(POST_MS); /* the worker posts its result meanwhile */
    if (CHECK(p->scope != NULL))
        weft_scope_cancel(p->scope);
    return 0;
}

static int posted_main(void *arg)
{
    weft_limiter *lim = weft_default_thread_limiter();

    for (int i = 0; i < POSTED_ROUNDS; i++) {
        struct posted p = {.rc = 1};
        weft_group g;

        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn_named(&g, "waiter", posted_waiter, &p), 0);
        CHECK_EQ(weft_group_spawn_named(&g, "canceller", posted_canceller, &p),
                 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        if (!CHECK(p.rc == 7 || p.rc == -ECANCELED))
            break;
        /* the job was taken in: its token is back */
        weft_time end = weft_now() + GUARD_S * WEFT_SEC;
        while (borrowed(lim) != 0 && weft_now() < end)
            CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
        CHECK_EQ(borrowed(lim), 0);
    }
    return 0;
}

static void posted(unsigned flags)
{
    weft_options o = opts_with(flags);
    run_in_loop_opts(posted_main, NULL, &o, 0);
}

static void
test_abandoned_call_cancelled_after_result_posted_reads_nothing_freed(
    void **state)
{
    posted(0);
}

static void
test_abandoned_call_cancelled_after_result_posted_msg_ring(void **state)
{
    with_msg_ring(posted);
}

/* ---- calling back into the loop: weft_from_thread_run / _run_sync ---- */

struct back {
    pthread_t loop, worker, task_thread, sync_thread;
    int run_rc, sync_rc, null_rc, sync_sleep_rc;
    bool task_was_task;
};

static int back_task(void *arg)
{
    struct back *b = arg;
    b->task_thread = pthread_self();
    b->task_was_task = weft_task_current() != NULL;
    int rc = weft_sleep(5 * WEFT_MSEC); /* a task: it may block */
    return rc < 0 ? rc : 7;
}

static int back_sync(void *arg)
{
    struct back *b = arg;
    b->sync_thread = pthread_self();
    /* Between tasks: calls that need a task say so. */
    b->sync_sleep_rc = weft_sleep(0);
    return 9;
}

static int back_worker(void *arg)
{
    struct back *b = arg;
    b->worker = pthread_self();
    b->run_rc = weft_from_thread_run(back_task, b);
    b->sync_rc = weft_from_thread_run_sync(back_sync, b);
    b->null_rc = weft_from_thread_run(NULL, NULL);
    return 0;
}

static int back_main(void *arg)
{
    unsigned flags[] = {0, WEFT_ABANDON_ON_CANCEL};
    for (int i = 0; i < 2; i++) {
        struct back b = {.loop = pthread_self(),
                         .run_rc = 1,
                         .sync_rc = 1,
                         .null_rc = 1,
                         .sync_sleep_rc = 1};
        CHECK_EQ(weft_to_thread(back_worker, &b, NULL, flags[i]), 0);
        CHECK(!pthread_equal(b.worker, b.loop));
        CHECK_EQ(b.run_rc, 7);
        CHECK(b.task_was_task);
        CHECK(pthread_equal(b.task_thread, b.loop));
        CHECK_EQ(b.sync_rc, 9);
        CHECK(pthread_equal(b.sync_thread, b.loop));
        CHECK_EQ(b.sync_sleep_rc, -EPERM);
        CHECK_EQ(b.null_rc, -EINVAL);
    }
    return 0;
}

static void back(unsigned flags)
{
    weft_options o = opts_with(flags);
    run_in_loop_opts(back_main, NULL, &o, 0);
}

static void
test_from_thread_run_and_run_sync_call_back_into_the_loop(void **state)
{
    back(0);
}

static void test_from_thread_run_and_run_sync_msg_ring(void **state)
{
    with_msg_ring(back);
}

/* A task that a shielded call's worker starts with weft_from_thread_run
 * runs inside the waiting task's scopes: once the call is cancelled, its
 * checkpoints report it. */
struct scoped_back {
    int wait_rc, run_rc;
};

static int scoped_worker(void *arg)
{
    struct scoped_back *b = arg;
    weft_time end = th_clock() + GUARD_S * WEFT_SEC;
    while ((b->wait_rc = weft_from_thread_check_cancelled()) == 0 &&
           th_clock() < end)
        sleep_ms(1);
    b->run_rc = weft_from_thread_run(th_task_sleep_forever, NULL);
    return 0;
}

static int scoped_back_main(void *arg)
{
    struct scoped_back b = {1, 1};
    weft_scope sc;

    weft_move_on_after(&sc, 5 * WEFT_MSEC);
    CHECK_EQ(weft_to_thread(scoped_worker, &b, NULL, 0), 0);
    CHECK_EQ(b.wait_rc, -ECANCELED);
    CHECK_EQ(b.run_rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&sc, -ECANCELED), 0);
    return 0;
}

static void test_from_thread_run_task_is_inside_the_callers_scopes(void **state)
{
    run_in_loop(scoped_back_main, NULL);
}

/* ---- wrong threads and bad arguments ---- */

struct eperm {
    int run, sync, check;
};

static void eperm_probe(struct eperm *e)
{
    e->run = weft_from_thread_run(th_task_return, NULL);
    e->sync = weft_from_thread_run_sync(th_task_return, NULL);
    e->check = weft_from_thread_check_cancelled();
}

static void *eperm_thread(void *arg)
{
    eperm_probe(arg);
    return NULL;
}

static int eperm_main(void *arg)
{
    struct eperm e = {1, 1, 1};
    eperm_probe(&e); /* the loop's own task */
    CHECK_EQ(e.run, -EPERM);
    CHECK_EQ(e.sync, -EPERM);
    CHECK_EQ(e.check, -EPERM);
    return 0;
}

static void test_from_thread_off_a_worker_is_eperm(void **state)
{
    struct eperm e = {1, 1, 1};
    pthread_t th;

    /* a plain pthread weft did not start */
    assert_int_equal(pthread_create(&th, NULL, eperm_thread, &e), 0);
    pthread_join(th, NULL);
    assert_rc(e.run, -EPERM);
    assert_rc(e.sync, -EPERM);
    assert_rc(e.check, -EPERM);
    /* this thread, no loop */
    e = (struct eperm){1, 1, 1};
    eperm_probe(&e);
    assert_rc(e.run, -EPERM);
    assert_rc(e.sync, -EPERM);
    assert_rc(e.check, -EPERM);
    /* a task of a loop */
    run_in_loop(eperm_main, NULL);
}

static void test_to_thread_outside_a_loop_is_eperm(void **state)
{
    assert_rc(weft_to_thread(th_task_return, NULL, NULL, 0), -EPERM);
    assert_rc(
        weft_to_thread(th_task_return, NULL, NULL, WEFT_ABANDON_ON_CANCEL),
        -EPERM);
}

static int einval_main(void *arg)
{
    CHECK_EQ(weft_to_thread(NULL, NULL, NULL, 0), -EINVAL);
    CHECK_EQ(weft_to_thread(NULL, NULL, NULL, WEFT_ABANDON_ON_CANCEL), -EINVAL);
    CHECK_EQ(weft_to_thread(th_task_return, NULL, NULL, 0x80), -EINVAL);
    CHECK_EQ(borrowed(weft_default_thread_limiter()), 0);
    return 0;
}

static void test_to_thread_bad_arguments_are_einval(void **state)
{
    run_in_loop(einval_main, NULL);
}

static int set_flag(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return 0;
}

static int precancelled_main(void *arg)
{
    atomic_int ran = 0;
    weft_scope sc;

    weft_scope_enter(&sc, WEFT_FOREVER);
    weft_scope_cancel(&sc);
    CHECK_EQ(weft_to_thread(set_flag, &ran, NULL, 0), -ECANCELED);
    CHECK_EQ(weft_to_thread(set_flag, &ran, NULL, WEFT_ABANDON_ON_CANCEL),
             -ECANCELED);
    CHECK_EQ(weft_scope_exit(&sc, -ECANCELED), 0);
    CHECK_EQ(borrowed(weft_default_thread_limiter()), 0);
    /* Had either been submitted, a worker would have run it by now. */
    CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
    CHECK_EQ(atomic_load(&ran), 0);
    return 0;
}

static void test_to_thread_in_cancelled_scope_is_a_checkpoint(void **state)
{
    run_in_loop(precancelled_main, NULL);
}

/* ---- portals ---- */

struct pcall {
    int in;
    pthread_t seen;
    bool in_task;
};

static int portal_compute(void *arg)
{
    struct pcall *c = arg;
    c->seen = pthread_self();
    c->in_task = weft_task_current() != NULL;
    int rc = weft_checkpoint(); /* a task of the portal's loop: may yield */
    return rc < 0 ? rc : c->in * 2 + 1;
}

#define HAMMER_THREADS 4
#define HAMMER_CALLS 500

struct hammer {
    weft_portal *p;
    pthread_t portal_thread;
    int idx, good;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < HAMMER_CALLS; i++) {
        struct pcall c = {.in = h->idx * 1000 + i};
        int rc = weft_portal_call(h->p, portal_compute, &c);
        if (CHECK_EQ(rc, c.in * 2 + 1) && CHECK(c.in_task) &&
            CHECK(pthread_equal(c.seen, h->portal_thread)) &&
            CHECK(!pthread_equal(c.seen, pthread_self())))
            h->good++;
    }
    return NULL;
}

struct on_thread {
    weft_portal *p;
    struct pcall first;
    int rc;
};

static void *first_call(void *arg)
{
    struct on_thread *t = arg;
    t->rc = weft_portal_call(t->p, portal_compute, &t->first);
    return NULL;
}

static void *close_call(void *arg)
{
    struct on_thread *t = arg;
    t->rc = weft_portal_close(t->p);
    return NULL;
}

static void on_a_thread(void *(*fn)(void *), struct on_thread *t)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, t), 0);
    pthread_join(th, NULL);
}

/*
 * Every call, and the close, is made from a thread that then exits, so
 * that what a thread keeps for waking a loop (a MSG_RING ring) must be
 * gone with it: the descriptors after the close are those before the open.
 */
static void hammer(unsigned flags)
{
    weft_options o = opts_with(flags);
    struct on_thread t = {.first = {.in = 1}, .rc = 1};
    int fds = th_fd_count();

    th_reset();
    th_guard(TH_GUARD_SECONDS);
    assert_rc(weft_portal_open(&t.p, &o), 0);
    assert_non_null(t.p);

    /* where the portal's tasks run: not on the caller's thread */
    on_a_thread(first_call, &t);
    assert_rc(t.rc, 3);
    assert_true(t.first.in_task);

    struct hammer h[HAMMER_THREADS];
    pthread_t th[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        h[i] =
            (struct hammer){.p = t.p, .portal_thread = t.first.seen, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_thread, &h[i]), 0);
    }
    for (int i = 0; i < HAMMER_THREADS; i++)
        pthread_join(th[i], NULL);
    t.rc = 1;
    on_a_thread(close_call, &t);
    assert_rc(t.rc, 0);
    th_guard_off();
    th_assert_clean();
    for (int i = 0; i < HAMMER_THREADS; i++)
        assert_int_equal(h[i].good, HAMMER_CALLS);
    int now = th_fd_count();
    if (now != fds) {
        print_error("open descriptors: %d before the portal, %d after its "
                    "close (made, like every call, by threads that have "
                    "exited)\n",
                    fds, now);
        fail();
    }
}

static void test_portal_four_threads_500_calls_each_then_close(void **state)
{
    hammer(0);
}

static void test_portal_four_threads_500_calls_each_msg_ring(void **state)
{
    with_msg_ring(hammer);
}

/* A portal's task may itself send work to a thread. */
static int portal_to_thread(void *arg)
{
    struct who *w = arg;
    return weft_to_thread(record_thread, w, NULL, 0);
}

static void test_portal_task_can_use_to_thread(void **state)
{
    weft_portal *p;
    struct who w = {.value = 11};
    struct pcall where = {.in = 0};

    assert_rc(weft_portal_open(&p, NULL), 0);
    assert_rc(weft_portal_call(p, portal_compute, &where), 1);
    assert_rc(weft_portal_call(p, portal_to_thread, &w), 11);
    assert_false(pthread_equal(w.thread, where.seen));
    assert_false(pthread_equal(w.thread, pthread_self()));
    assert_rc(weft_portal_close(p), 0);
}

/* Close begins while a call is under way: new calls get -EBADF, and close
 * waits for the call under way. */
struct closing {
    weft_portal *p;
    atomic_int started, release, closed;
    int call_rc, close_rc;
};

static int long_task(void *arg)
{
    struct closing *c = arg;
    atomic_store(&c->started, 1);
    if (!task_wait_flag(&c->release))
        return -ETIMEDOUT;
    return 5;
}

static void *long_caller(void *arg)
{
    struct closing *c = arg;
    c->call_rc = weft_portal_call(c->p, long_task, c);
    return NULL;
}

static void *closer(void *arg)
{
    struct closing *c = arg;
    c->close_rc = weft_portal_close(c->p);
    atomic_store(&c->closed, 1);
    return NULL;
}

static void test_portal_call_after_close_began_is_ebadf(void **state)
{
    struct closing c = {.call_rc = 1, .close_rc = 1};
    pthread_t caller, closing;

    th_reset();
    th_guard(TH_GUARD_SECONDS);
    assert_rc(weft_portal_open(&c.p, NULL), 0);
    assert_int_equal(pthread_create(&caller, NULL, long_caller, &c), 0);
    assert_true(wait_flag(&c.started));
    assert_int_equal(pthread_create(&closing, NULL, closer, &c), 0);

    /* Calls succeed until close has begun, then fail with -EBADF. */
    int rc, n = 0;
    weft_time end = th_clock() + GUARD_S * WEFT_SEC;
    while ((rc = weft_portal_call(c.p, th_task_return, (void *)3)) == 3 &&
           th_clock() < end)
        n++;
    assert_rc(rc, -EBADF);
    assert_rc(weft_portal_call(c.p, th_task_return, (void *)3), -EBADF);

    /* close waits for the call under way */
    sleep_ms(20);
    assert_int_equal(atomic_load(&c.closed), 0);
    atomic_store(&c.release, 1);
    pthread_join(caller, NULL);
    pthread_join(closing, NULL);
    th_guard_off();
    th_assert_clean();
    assert_rc(c.call_rc, 5);
    assert_rc(c.close_rc, 0);
    print_message("%d call(s) went through before close began\n", n);
}

struct self_call {
    weft_portal *p;
    int call_rc, close_rc;
};

static int call_own_portal(void *arg)
{
    struct self_call *s = arg;
    s->call_rc = weft_portal_call(s->p, th_task_return, NULL);
    s->close_rc = weft_portal_close(s->p);
    return 0;
}

static void test_portal_call_from_its_own_loop_is_edeadlk(void **state)
{
    struct self_call s = {.call_rc = 1, .close_rc = 1};

    assert_rc(weft_portal_open(&s.p, NULL), 0);
    assert_rc(weft_portal_call(s.p, call_own_portal, &s), 0);
    assert_rc(s.call_rc, -EDEADLK);
    assert_rc(s.close_rc, -EDEADLK);
    /* still serving, and closes normally */
    assert_rc(weft_portal_call(s.p, th_task_return, (void *)4), 4);
    assert_rc(weft_portal_close(s.p), 0);
}

static int sleep_then_return(void *arg)
{
    int rc = weft_sleep(2 * WEFT_MSEC);
    return rc < 0 ? rc : (int)(intptr_t)arg;
}

static void
test_portal_failed_call_returns_its_error_and_portal_serves_on(void **state)
{
    weft_portal *p;

    assert_rc(weft_portal_open(&p, NULL), 0);
    assert_rc(weft_portal_call(p, th_task_return, (void *)(intptr_t)-EIO),
              -EIO);
    assert_rc(weft_portal_call(p, sleep_then_return, (void *)6), 6);
    assert_rc(
        weft_portal_call(p, sleep_then_return, (void *)(intptr_t)-ECONNRESET),
        -ECONNRESET);
    assert_rc(weft_portal_call(p, th_task_return, (void *)8), 8);
    assert_rc(weft_portal_close(p), 0);
}

static void test_portal_bad_arguments_are_einval(void **state)
{
    weft_portal *p;

    assert_rc(weft_portal_open(NULL, NULL), -EINVAL);
    assert_rc(weft_portal_call(NULL, th_task_return, NULL), -EINVAL);
    assert_rc(weft_portal_close(NULL), -EINVAL);
    assert_rc(weft_portal_open(&p, NULL), 0);
    assert_rc(weft_portal_call(p, NULL, NULL), -EINVAL);
    assert_rc(weft_portal_close(p), 0);
}

/* ---- children in a fresh process: threads, descriptors, leaks ---- */

/* A loop that ends while an abandoned worker still runs. */
static struct {
    struct gated w;
    int run_rc, sync_rc, check_rc;
} orphan;

static int orphan_worker(void *arg)
{
    atomic_store(&orphan.w.started, 1);
    wait_flag(&orphan.w.gate); /* opened after weft_run has returned */
    orphan.run_rc = weft_from_thread_run(th_task_return, NULL);
    orphan.sync_rc = weft_from_thread_run_sync(th_task_return, NULL);
    orphan.check_rc = weft_from_thread_check_cancelled();
    atomic_store(&orphan.w.done, 1);
    return 0;
}

static int orphan_call(void *arg)
{
    int rc = weft_to_thread(orphan_worker, NULL, NULL, WEFT_ABANDON_ON_CANCEL);
    CHECK_EQ(rc, -ECANCELED);
    return 0;
}

/* The call is abandoned once its worker has started, however long a
 * thread takes to start (under emulation, far more than a few ms). */
static int orphan_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, orphan_call, NULL), 0);
    task_wait_flag(&orphan.w.started);
    weft_group_cancel(&g);
    return weft_group_exit(&g, 0); /* 0: the loop ends, the worker runs */
}

static void orphan_body(unsigned flags)
{
    int threads = count_threads_baseline(), fds = th_fd_count();
    weft_options o = opts_with(flags);
    o.thread_idle = 50 * WEFT_MSEC;

    orphan.run_rc = orphan.sync_rc = orphan.check_rc = 1;
    CHECK_EQ(weft_run(orphan_main, NULL, &o), 0);
    CHECK_EQ(atomic_load(&orphan.w.started), 1);
    CHECK_EQ(atomic_load(&orphan.w.done), 0); /* the loop ended first */
    atomic_store(&orphan.w.gate, 1);
    CHECK(wait_flag(&orphan.w.done));
    CHECK_EQ(orphan.run_rc, -ESHUTDOWN);
    CHECK_EQ(orphan.sync_rc, -ESHUTDOWN);
    CHECK_EQ(orphan.check_rc, -ECANCELED);
    /* Wait for the worker to retire: then it has dropped the job and its
     * reference to the mailbox for sure. */
    weft_time end = th_clock() + GUARD_S * WEFT_SEC;
    while (count_threads() != threads && th_clock() < end)
        sleep_ms(5);
    CHECK_EQ(count_threads(), threads);
    CHECK_EQ(th_fd_count(), fds); /* ring, eventfd (and ring dup) closed */
    check_no_leaks();
}

static void orphan_eventfd(void)
{
    orphan_body(0);
}

static void orphan_msg_ring(void)
{
    orphan_body(WEFT_OPT_WAKE_MSG_RING);
}

/* Idle workers retire after weft_options.thread_idle. */
static atomic_int idle_peak;

static int idle_worker(void *arg)
{
    int n = count_threads();
    int m = atomic_load(&idle_peak);
    while (n > m && !atomic_compare_exchange_weak(&idle_peak, &m, n)) {
    }
    sleep_ms(20);
    return 0;
}

static int idle_task(void *arg)
{
    return weft_to_thread(idle_worker, NULL, NULL, 0);
}

static int idle_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(weft_group_spawn(&g, idle_task, NULL), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < 20; i++) /* and a run of calls one after another */
        CHECK_EQ(weft_to_thread(th_task_return, NULL, NULL, 0), 0);
    return 0;
}

static void idle_body(unsigned flags)
{
    int threads = count_threads_baseline(), fds = th_fd_count();
    weft_options o = opts_with(flags);
    o.thread_idle = 50 * WEFT_MSEC;

    CHECK_GT(threads, 0);
    CHECK_EQ(weft_run(idle_main, NULL, &o), 0);
    CHECK_GT(atomic_load(&idle_peak), threads); /* workers were made */
    sleep_ms(300);
    CHECK_EQ(count_threads(), threads);
    CHECK_EQ(th_fd_count(), fds);
    check_no_leaks(); /* MSG_RING: each retired worker freed its ring */
}

static void idle_eventfd(void)
{
    idle_body(0);
}

static void idle_msg_ring(void)
{
    idle_body(WEFT_OPT_WAKE_MSG_RING);
}

/*
 * thread_idle of WEFT_FOREVER: idle workers never retire, and wait for
 * work without using the CPU. (The pool's idle time is the process's:
 * hence a child of its own.)
 */
#define FOREVER_IDLE_MS 300
#define FOREVER_MAX_CPU_MS 50 /* a spinning worker burns most of 300 */

static long long cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static int forever_main(void *arg)
{
    long long *used = arg;

    CHECK_EQ(weft_to_thread(th_task_return, NULL, NULL, 0), 0);
    long long before = cpu_us();
    CHECK_EQ(weft_sleep(FOREVER_IDLE_MS * WEFT_MSEC), 0);
    *used = cpu_us() - before;
    return 0;
}

static void idle_forever_body(void)
{
    int threads = count_threads_baseline();
    weft_options o = opts_with(0);
    long long used = -1;

    o.thread_idle = WEFT_FOREVER;
    CHECK_EQ(weft_run(forever_main, &used, &o), 0);
    fprintf(stderr, "CPU used while the loop slept %d ms: %.1f ms\n",
            FOREVER_IDLE_MS, (double)used / 1e3);
    CHECK_GE(used, 0);
    CHECK_LT(used, FOREVER_MAX_CPU_MS * 1000LL);
    CHECK_GT(count_threads(), threads); /* the worker is still there */
}

/* weft_run returns main's result even when main's task record is reused
 * after main returned, by a task made for another thread's call
 * (repros/weft_run_wrong_result.c). */
static struct {
    atomic_int main_done, fail_done, long_done, worker2_done, long_started;
    weft_scope *first;
} recyc;

static int recyc_long(void *arg)
{
    atomic_store(&recyc.long_started, 1);
    /* keeps the loop alive after main returns, until fail_fn ran */
    return task_wait_flag(&recyc.fail_done) ? 0 : -EIO;
}

/* Main gives up on worker1 only once worker1's call back has started
 * recyc_long on the loop (a fixed delay raced it on a busy machine: the
 * loop could end before the call came, -ESHUTDOWN). */
static int recyc_canceller(void *arg)
{
    int rc = task_wait_flag(&recyc.long_started) ? 0 : -EIO;
    weft_scope_cancel(recyc.first);
    return rc;
}

static int recyc_worker1(void *arg)
{
    int rc = weft_from_thread_run(recyc_long, NULL);
    CHECK_EQ(rc, 0);
    atomic_store(&recyc.long_done, 1);
    return 0;
}

static int recyc_worker2(void *arg)
{
    wait_flag(&recyc.main_done);
    sleep_ms(20); /* main's record is back in the pool by now */
    CHECK_EQ(weft_from_thread_run(th_task_return, (void *)(intptr_t)-EIO),
             -EIO);
    atomic_store(&recyc.fail_done, 1);
    atomic_store(&recyc.worker2_done, 1);
    return 0;
}

static int recyc_main(void *arg)
{
    weft_group g;
    weft_group_enter(&g);
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    recyc.first = &s;
    CHECK_EQ(weft_group_spawn(&g, recyc_canceller, NULL), 0);
    CHECK_EQ(weft_to_thread(recyc_worker1, NULL, NULL, WEFT_ABANDON_ON_CANCEL),
             -ECANCELED);
    weft_scope_exit(&s, 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    weft_move_on_after(&s, 1 * WEFT_MSEC);
    CHECK_EQ(weft_to_thread(recyc_worker2, NULL, NULL, WEFT_ABANDON_ON_CANCEL),
             -ECANCELED);
    weft_scope_exit(&s, 0);
    atomic_store(&recyc.main_done, 1);
    return 0;
}

static void test_run_result_is_mains_when_its_record_is_reused(void **state)
{
    memset(&recyc, 0, sizeof recyc);
    run_in_loop(recyc_main, NULL);
    assert_true(wait_flag(&recyc.long_done));
    assert_true(wait_flag(&recyc.worker2_done));
    th_assert_clean();
}

/* A worker that frees its abandoned job after the loop ended does so
 * after the loop thread's last writes to the job: no data race under TSan
 * (repros/abandon_free_race.c; this suite runs under TSan: label thread). */
static atomic_int freed_jobs;

static int freed_slow(void *arg)
{
    sleep_ms(20);
    atomic_fetch_add(&freed_jobs, 1);
    return 0;
}

static int freed_main(void *arg)
{
    weft_scope s;
    weft_move_on_after(&s, 1 * WEFT_MSEC);
    int rc = weft_to_thread(freed_slow, NULL, NULL, WEFT_ABANDON_ON_CANCEL);
    CHECK_EQ(rc, -ECANCELED);
    weft_scope_exit(&s, rc);
    return 0; /* the loop ends before the worker returns */
}

static void test_abandoned_job_freed_after_loop_ended_is_ordered(void **state)
{
    atomic_store(&freed_jobs, 0);
    for (int i = 0; i < 20; i++)
        run_in_loop(freed_main, NULL);
    weft_time end = th_clock() + GUARD_S * WEFT_SEC;
    while (atomic_load(&freed_jobs) < 20 && th_clock() < end)
        sleep_ms(5);
    assert_int_equal(atomic_load(&freed_jobs), 20);
    sleep_ms(20); /* the workers free their jobs after fn returns */
}

static const struct th_exec_entry children[] = {
    {"orphan", orphan_eventfd},
    {"orphan_msg_ring", orphan_msg_ring},
    {"idle", idle_eventfd},
    {"idle_msg_ring", idle_msg_ring},
    {"idle_forever", idle_forever_body},
};

static void run_child(const char *name)
{
    struct th_child c;
    th_run_exec_child(name, &c);
    th_assert_child_ok(&c);
}

static void test_loop_exit_while_abandoned_worker_runs_is_clean(void **state)
{
    run_child("orphan");
}

static void test_loop_exit_while_abandoned_worker_runs_msg_ring(void **state)
{
    if (!msg_ring_supported())
        skip();
    run_child("orphan_msg_ring");
}

static void test_idle_workers_retire_after_thread_idle(void **state)
{
    run_child("idle");
}

static void test_idle_workers_retire_msg_ring(void **state)
{
    if (!msg_ring_supported())
        skip();
    run_child("idle_msg_ring");
}

static void test_thread_idle_forever_idle_worker_uses_no_cpu(void **state)
{
    struct th_child c;
    th_run_exec_child("idle_forever", &c);
    th_assert_child_ok(&c);
    print_message("      %s", c.err);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(
        test_to_thread_runs_fn_on_another_thread_and_returns_result),
    cmocka_unit_test(test_to_thread_runs_fn_on_another_thread_msg_ring),
    cmocka_unit_test(test_default_thread_limiter_has_40_tokens_per_loop),
    cmocka_unit_test(test_default_limiter_caps_concurrency_at_40),
    cmocka_unit_test(test_default_limiter_caps_concurrency_at_40_msg_ring),
    cmocka_unit_test(test_given_limiter_caps_concurrency_at_its_total),
    cmocka_unit_test(test_given_limiter_caps_concurrency_msg_ring),
    cmocka_unit_test(test_calls_made_while_a_worker_spins_each_get_a_worker),
    cmocka_unit_test(
        test_shielded_call_cancelled_returns_result_then_checkpoint_cancels),
    cmocka_unit_test(test_shielded_call_cancelled_msg_ring),
    cmocka_unit_test(test_check_cancelled_turns_after_the_cancel),
    cmocka_unit_test(test_check_cancelled_turns_after_the_cancel_msg_ring),
    cmocka_unit_test(
        test_abandoned_call_returns_at_once_and_holds_token_until_worker_ends),
    cmocka_unit_test(test_abandoned_call_msg_ring),
    cmocka_unit_test(test_abandonable_call_not_cancelled_returns_result),
    cmocka_unit_test(
        test_abandoned_call_cancelled_after_result_posted_reads_nothing_freed),
    cmocka_unit_test(
        test_abandoned_call_cancelled_after_result_posted_msg_ring),
    cmocka_unit_test(test_from_thread_run_and_run_sync_call_back_into_the_loop),
    cmocka_unit_test(test_from_thread_run_and_run_sync_msg_ring),
    cmocka_unit_test(test_from_thread_run_task_is_inside_the_callers_scopes),
    cmocka_unit_test(test_from_thread_off_a_worker_is_eperm),
    cmocka_unit_test(test_to_thread_outside_a_loop_is_eperm),
    cmocka_unit_test(test_to_thread_bad_arguments_are_einval),
    cmocka_unit_test(test_to_thread_in_cancelled_scope_is_a_checkpoint),
    cmocka_unit_test(test_portal_four_threads_500_calls_each_then_close),
    cmocka_unit_test(test_portal_four_threads_500_calls_each_msg_ring),
    cmocka_unit_test(test_portal_task_can_use_to_thread),
    cmocka_unit_test(test_portal_call_after_close_began_is_ebadf),
    cmocka_unit_test(test_portal_call_from_its_own_loop_is_edeadlk),
    cmocka_unit_test(
        test_portal_failed_call_returns_its_error_and_portal_serves_on),
    cmocka_unit_test(test_portal_bad_arguments_are_einval),
    cmocka_unit_test(test_loop_exit_while_abandoned_worker_runs_is_clean),
    cmocka_unit_test(test_run_result_is_mains_when_its_record_is_reused),
    cmocka_unit_test(test_abandoned_job_freed_after_loop_ended_is_ordered),
    cmocka_unit_test(test_loop_exit_while_abandoned_worker_runs_msg_ring),
    cmocka_unit_test(test_idle_workers_retire_after_thread_idle),
    cmocka_unit_test(test_idle_workers_retire_msg_ring),
    cmocka_unit_test(test_thread_idle_forever_idle_worker_uses_no_cpu),
};

TH_MAIN_WITH_CHILDREN(tests, children)
