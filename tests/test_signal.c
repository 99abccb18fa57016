/* SPDX-License-Identifier: MIT */
/*
 * tests/test_signal.c - signal receivers (API.md "Signals"): signals sent
 * before the first receive, from other threads, in order; cancelled
 * receives lose nothing; the mask is restored on close, on every core;
 * two receivers for one signal; the entry checks.
 *
 * SIGALRM is the hang guard's (helpers.h): these tests use SIGUSR1,
 * SIGUSR2, SIGHUP and SIGRTMIN.
 */
#include "helpers.h"

static bool blocked_here(int sig)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, sig) == 1;
}

/* Nothing of ours pending when a test ends (a pending SIGUSR1 would kill
 * the suite once unblocked). */
static void none_pending(void)
{
    sigset_t p;
    sigpending(&p);
    CHECK(!sigismember(&p, SIGUSR1));
    CHECK(!sigismember(&p, SIGUSR2));
    CHECK(!sigismember(&p, SIGHUP));
}

static int before_first_receive_main(void *arg)
{
    (void)arg;
    int sigs[] = {SIGUSR1};
    weft_signal_receiver *r;
    CHECK_EQ(weft_signal_open(&r, sigs, 1), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(weft_signal_receive(r), SIGUSR1);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0); /* process-directed */
    CHECK_EQ(kill(getpid(), SIGUSR1), 0); /* merges with the pending one */
    CHECK_EQ(weft_signal_receive(r), SIGUSR1);
    none_pending();
    CHECK_EQ(weft_signal_close(r), 0);
    return 0;
}

static void test_signal_sent_before_first_receive_is_received(void **state)
{
    (void)state;
    run_in_loop(before_first_receive_main, NULL);
}

static void *kill_later(void *arg)
{
    usleep(20000);
    kill(getpid(), (int)(intptr_t)arg); /* process-directed */
    return NULL;
}

static int worker_kill(void *arg)
{
    usleep(20000);
    return kill(getpid(), (int)(intptr_t)arg) < 0 ? -errno : 0;
}

static int kill_from_worker(void *arg)
{
    return weft_to_thread(worker_kill, arg, NULL, 0);
}

static int other_thread_main(void *arg)
{
    (void)arg;
    int sigs[] = {SIGUSR1, SIGUSR2};
    weft_signal_receiver *r;
    CHECK_EQ(weft_signal_open(&r, sigs, 2), 0);
    /* A plain thread made while the receiver is open inherits the mask. */
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, kill_later, (void *)(intptr_t)SIGUSR2),
             0);
    CHECK_EQ(weft_signal_receive(r), SIGUSR2);
    pthread_join(th, NULL);
    /* A weft worker (it blocks every signal) sends one while we wait. */
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, kill_from_worker, (void *)(intptr_t)SIGUSR1),
             0);
    CHECK_EQ(weft_signal_receive(r), SIGUSR1);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    none_pending();
    CHECK_EQ(weft_signal_close(r), 0);
    return 0;
}

static void test_signal_from_other_threads_is_received(void **state)
{
    (void)state;
    run_in_loop(other_thread_main, NULL);
}

static int in_order_main(void *arg)
{
    (void)arg;
    int sigs[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGRTMIN};
    weft_signal_receiver *r;
    CHECK_EQ(weft_signal_open(&r, sigs, 4), 0);
    /* One at a time: each is received as it comes. */
    int order[] = {SIGHUP, SIGUSR2, SIGUSR1, SIGHUP};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        CHECK_EQ(kill(getpid(), order[i]), 0);
        CHECK_EQ(weft_signal_receive(r), order[i]);
    }
    /* Real-time signals queue: three sent, three received. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = i}),
                 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_signal_receive(r), SIGRTMIN);
    none_pending();
    CHECK_EQ(weft_signal_close(r), 0);
    return 0;
}

static void test_signals_are_received_in_order(void **state)
{
    (void)state;
    run_in_loop(in_order_main, NULL);
}

static int cancelled_main(void *arg)
{
    (void)arg;
    int sigs[] = {SIGUSR1};
    weft_signal_receiver *r;
    CHECK_EQ(weft_signal_open(&r, sigs, 1), 0);
    for (int i = 0; i < 3; i++) {
        weft_scope s;
        weft_move_on_after(&s, 5 * WEFT_MSEC);
        CHECK_EQ(weft_scope_exit(&s, weft_signal_receive(r)), 0);
        CHECK(weft_scope_cancelled_caught(&s));
    }
    /* Sent after the cancels: still received. */
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(weft_signal_receive(r), SIGUSR1);
    /* Pending when a receive is cancelled at its checkpoint: kept. */
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_signal_receive(r), -ECANCELED);
    weft_scope_exit(&s, -ECANCELED);
    CHECK_EQ(weft_signal_receive(r), SIGUSR1);
    none_pending();
    CHECK_EQ(weft_signal_close(r), 0);
    return 0;
}

static void test_cancelled_receive_loses_no_signal(void **state)
{
    (void)state;
    run_in_loop(cancelled_main, NULL);
}

static int worker_blocked(void *arg)
{
    return blocked_here((int)(intptr_t)arg) ? 1 : 0;
}

static int mask_main(void *arg)
{
    (void)arg;
    CHECK(!blocked_here(SIGUSR1));
    /* SIGUSR2 blocked before: it stays blocked after the close. */
    sigset_t two;
    sigemptyset(&two);
    sigaddset(&two, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &two, NULL);
    int sigs[] = {SIGUSR1, SIGUSR2};
    weft_signal_receiver *r;
    CHECK_EQ(weft_signal_open(&r, sigs, 2), 0);
    CHECK(blocked_here(SIGUSR1));
    CHECK(blocked_here(SIGUSR2));
    CHECK_EQ(weft_to_thread(worker_blocked, (void *)(intptr_t)SIGUSR1, NULL, 0),
             1);
    CHECK_EQ(weft_signal_close(r), 0);
    CHECK(!blocked_here(SIGUSR1));
    CHECK(blocked_here(SIGUSR2));
    /* sigprocmask says the same of this (the only loop's) thread. */
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGUSR1));
    pthread_sigmask(SIG_UNBLOCK, &two, NULL);
    return 0;
}

static void test_mask_is_restored_after_close(void **state)
{
    (void)state;
    run_in_loop(mask_main, NULL);
}

static int two_main(void *arg)
{
    (void)arg;
    int sigs[] = {SIGUSR1};
    weft_signal_receiver *a, *b;
    CHECK_EQ(weft_signal_open(&a, sigs, 1), 0);
    CHECK_EQ(weft_signal_open(&b, sigs, 1), 0);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    /* Both see it pending; the first read takes it. */
    CHECK_EQ(weft_signal_receive(b), SIGUSR1);
    weft_scope s;
    weft_move_on_after(&s, 5 * WEFT_MSEC);
    CHECK_EQ(weft_scope_exit(&s, weft_signal_receive(a)), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    /* Closing one keeps the signal blocked for the other. */
    CHECK_EQ(weft_signal_close(b), 0);
    CHECK(blocked_here(SIGUSR1));
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(weft_signal_receive(a), SIGUSR1);
    CHECK_EQ(weft_signal_close(a), 0);
    CHECK(!blocked_here(SIGUSR1));
    return 0;
}

static void test_two_receivers_for_one_signal(void **state)
{
    (void)state;
    run_in_loop(two_main, NULL);
}

static int worker_receive(void *arg)
{
    return weft_signal_receive(arg);
}

static int receive_closed(void *arg)
{
    return weft_signal_receive(arg);
}

static int entry_main(void *arg)
{
    (void)arg;
    weft_signal_receiver *r;
    int bad[] = {SIGKILL};
    CHECK_EQ(weft_signal_open(&r, bad, 1), -EINVAL);
    int zero[] = {0};
    CHECK_EQ(weft_signal_open(&r, zero, 1), -EINVAL);
    int sigs[] = {SIGUSR1};
    CHECK_EQ(weft_signal_open(&r, sigs, 0), -EINVAL);
    CHECK_EQ(weft_signal_open(NULL, sigs, 1), -EINVAL);
    CHECK_EQ(weft_signal_receive(NULL), -EINVAL);
    CHECK(!blocked_here(SIGUSR1));
    CHECK_EQ(weft_signal_open(&r, sigs, 1), 0);
    /* Outside a loop (a worker thread): -EPERM. */
    CHECK_EQ(weft_to_thread(worker_receive, r, NULL, 0), -EPERM);
    /* Closed while a receive waits: -EBADF. */
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, receive_closed, r), 0);
    th_settle();
    CHECK_EQ(weft_signal_close(r), 0);
    CHECK_EQ(weft_group_exit(&g, 0), -EBADF);
    CHECK_EQ(weft_signal_close(NULL), -EINVAL);
    return 0;
}

static void test_signal_entry_checks(void **state)
{
    (void)state;
    run_in_loop(entry_main, NULL);
    assert_int_equal(weft_signal_receive(NULL), -EPERM);
}

/* ---- the multi-core runtime ---- */

static int core_blocked(void *arg)
{
    return blocked_here((int)(intptr_t)arg) ? 1 : 0;
}

static int cores_main(void *arg)
{
    (void)arg;
    int sigs[] = {SIGUSR1};
    weft_signal_receiver *r;
    CHECK_EQ(weft_core_call(1, core_blocked, (void *)(intptr_t)SIGUSR1), 0);
    CHECK_EQ(weft_signal_open(&r, sigs, 1), 0);
    CHECK_EQ(weft_core_call(1, core_blocked, (void *)(intptr_t)SIGUSR1), 1);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    CHECK_EQ(weft_signal_receive(r), SIGUSR1);
    CHECK_EQ(weft_signal_close(r), 0);
    CHECK_EQ(weft_core_call(1, core_blocked, (void *)(intptr_t)SIGUSR1), 0);
    CHECK(!blocked_here(SIGUSR1));
    return 0;
}

static int cores_open_on_one(void *arg)
{
    (void)arg;
    /* Opened on core 1: core 0 blocks too, core 1 receives. */
    int sigs[] = {SIGUSR2};
    weft_signal_receiver *r;
    CHECK_EQ(weft_signal_open(&r, sigs, 1), 0);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    CHECK_EQ(weft_signal_receive(r), SIGUSR2);
    CHECK_EQ(weft_signal_close(r), 0);
    return 0;
}

static int cores_main2(void *arg)
{
    CHECK_EQ(cores_main(arg), 0);
    CHECK_EQ(weft_core_call(1, cores_open_on_one, NULL), 0);
    CHECK(!blocked_here(SIGUSR2));
    return 0;
}

static void test_signal_mask_on_every_core(void **state)
{
    (void)state;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < 2)
        skip();
    th_reset();
    th_guard(TH_GUARD_SECONDS);
    int rc = weft_run_cores(2, cores_main2, NULL, NULL);
    th_guard_off();
    th_assert_clean();
    assert_rc(rc, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_signal_sent_before_first_receive_is_received),
    cmocka_unit_test(test_signal_from_other_threads_is_received),
    cmocka_unit_test(test_signals_are_received_in_order),
    cmocka_unit_test(test_cancelled_receive_loses_no_signal),
    cmocka_unit_test(test_mask_is_restored_after_close),
    cmocka_unit_test(test_two_receivers_for_one_signal),
    cmocka_unit_test(test_signal_entry_checks),
    cmocka_unit_test(test_signal_mask_on_every_core),
};

TH_MAIN(tests)
