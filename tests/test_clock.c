/* SPDX-License-Identifier: MIT */
/*
 * tests/test_clock.c - the virtual clock (API.md "Test clock"):
 * weft_options.clock = WEFT_CLOCK_VIRTUAL, autojump, weft_clock_advance.
 * Virtual times are checked exactly; real times only as a hang guard.
 */
#include "helpers.h"

#define MINUTE (60 * WEFT_SEC)
#define HOUR (60 * MINUTE)

/* Real time a test of virtual hours may take: a guard, not a target. */
#define REAL_GUARD (20 * WEFT_SEC)

static const weft_options virt = {.clock = WEFT_CLOCK_VIRTUAL};
static const weft_options virt_manual = {.clock = WEFT_CLOCK_VIRTUAL,
                                         .autojump = WEFT_FOREVER};

/* ---- an hour of sleeps ---- */

static int sleeper_minutes(void *arg)
{
    weft_time step = *(const weft_time *)arg;
    weft_time start = weft_now();
    for (weft_time t = 0; t < HOUR; t += step)
        if (!CHECK_EQ(weft_sleep(step), 0))
            return -EIO;
    CHECK_EQ(weft_now() - start, HOUR);
    return 0;
}

static int hour_main(void *arg)
{
    CHECK_EQ(weft_now(), 0); /* it starts at 0 */
    static const weft_time steps[] = {MINUTE, 5 * MINUTE, 90 * WEFT_SEC, HOUR};
    weft_group g;
    weft_group_enter(&g);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        CHECK_EQ(weft_group_spawn(&g, sleeper_minutes, (void *)&steps[i]), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_now(), HOUR);
    return 0;
}

static void test_hour_of_sleeps_runs_in_milliseconds(void **state)
{
    weft_time real = th_clock();
    run_in_loop_opts(hour_main, NULL, &virt, 0);
    assert_true(th_clock() - real < REAL_GUARD);
}

/* With I/O in flight each jump waits autojump of real quiet. */
static int hour_io_main(void *arg)
{
    int fds[2];
    if (!th_pipe(fds))
        return -EIO;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, NULL), 0);
    weft_time step = MINUTE;
    CHECK_EQ(weft_group_spawn(&g, sleeper_minutes, &step), 0);
    char c;
    /* A read that never completes: the loop is never without I/O. */
    weft_scope s;
    weft_move_on_after(&s, HOUR + 1);
    CHECK_EQ(th_read(fds[0], &c, 1), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK_EQ(weft_now(), HOUR + 1);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    th_close_pipe(fds);
    return 0;
}

static void test_hour_of_sleeps_with_io_in_flight(void **state)
{
    weft_time real = th_clock();
    run_in_loop_opts(hour_io_main, NULL, &virt, 0);
    assert_true(th_clock() - real < REAL_GUARD);
}

/* ---- deadlines ---- */

static int deadlines_main(void *arg)
{
    weft_scope s;

    weft_move_on_after(&s, 10 * MINUTE);
    CHECK_EQ(weft_current_effective_deadline(), 10 * MINUTE);
    CHECK_EQ(weft_sleep_forever(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    CHECK_EQ(weft_now(), 10 * MINUTE);

    weft_fail_after(&s, 30 * WEFT_SEC);
    CHECK_EQ(weft_sleep(HOUR), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), -ETIMEDOUT);
    CHECK_EQ(weft_now(), 10 * MINUTE + 30 * WEFT_SEC);

    /* Nested: the inner, earlier deadline fires first, the outer later. */
    weft_scope outer, inner;
    weft_time t0 = weft_now();
    weft_move_on_after(&outer, 2 * HOUR);
    weft_move_on_after(&inner, HOUR);
    CHECK_EQ(weft_sleep_forever(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&inner, -ECANCELED), 0);
    CHECK_EQ(weft_now() - t0, HOUR);
    CHECK_EQ(weft_sleep(HOUR / 2), 0); /* the outer has not passed */
    CHECK_EQ(weft_sleep_forever(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&outer, -ECANCELED), 0);
    CHECK_EQ(weft_now() - t0, 2 * HOUR);

    /* A sleep that ends before its deadline is not cut. */
    weft_move_on_after(&s, MINUTE);
    CHECK_EQ(weft_sleep(MINUTE - 1), 0);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    CHECK(!weft_scope_cancelled_caught(&s));
    CHECK_EQ(weft_now() - t0, 2 * HOUR + MINUTE - 1);
    return 0;
}

static void test_move_on_after_and_fail_after(void **state)
{
    weft_time real = th_clock();
    run_in_loop_opts(deadlines_main, NULL, &virt, 0);
    assert_true(th_clock() - real < REAL_GUARD);
}

/* ---- weft_clock_advance ---- */

struct order {
    int seen[8];
    int n;
};

struct timed {
    struct order *o;
    int id;
    weft_time delay;
};

static int timed_sleeper(void *arg)
{
    struct timed *t = arg;
    CHECK_EQ(weft_sleep(t->delay), 0);
    CHECK_GE(weft_now(), t->delay);
    t->o->seen[t->o->n++] = t->id;
    return 0;
}

static void settle(void)
{
    for (int i = 0; i < 8; i++)
        CHECK_EQ(weft_checkpoint(), 0);
}

static int advance_main(void *arg)
{
    struct order o = {{0}, 0};
    struct timed t[] = {{&o, 3, 3 * WEFT_SEC},
                        {&o, 1, 1 * WEFT_SEC},
                        {&o, 2, 2 * WEFT_SEC},
                        {&o, 4, HOUR}};
    CHECK_EQ(weft_clock_advance(-1), -EINVAL);
    weft_group g;
    weft_group_enter(&g);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_group_spawn(&g, timed_sleeper, &t[i]), 0);
    settle();
    CHECK_EQ(o.n, 0);
    CHECK_EQ(weft_clock_advance(0), 0);
    settle();
    CHECK_EQ(o.n, 0);
    CHECK_EQ(weft_clock_advance(1500 * WEFT_MSEC), 0);
    CHECK_EQ(weft_now(), 1500 * WEFT_MSEC);
    settle();
    CHECK_EQ(o.n, 1);
    CHECK_EQ(weft_clock_advance(2 * WEFT_SEC), 0);
    settle();
    CHECK_EQ(o.n, 3);
    CHECK_EQ(o.seen[0], 1);
    CHECK_EQ(o.seen[1], 2);
    CHECK_EQ(o.seen[2], 3);
    CHECK_EQ(weft_now(), 3500 * WEFT_MSEC);
    /* A huge step saturates short of WEFT_FOREVER and fires the rest. */
    CHECK_EQ(weft_clock_advance(WEFT_FOREVER), 0);
    CHECK_LT(weft_now(), WEFT_FOREVER);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(o.n, 4);
    CHECK_EQ(o.seen[3], 4);
    return 0;
}

static void test_advance_fires_due_timers_in_order(void **state)
{
    run_in_loop_opts(advance_main, NULL, &virt_manual, 0);
}

static int advance_real_main(void *arg)
{
    CHECK_EQ(weft_clock_advance(WEFT_SEC), -EPERM);
    CHECK_EQ(weft_clock_advance(-1), -EPERM);
    return 0;
}

static void test_advance_needs_a_virtual_loop(void **state)
{
    assert_int_equal(weft_clock_advance(WEFT_SEC), -EPERM);
    run_in_loop(advance_real_main, NULL);
}

static void test_bad_options_are_refused(void **state)
{
    weft_options o = {.clock = 7};
    assert_int_equal(weft_run(th_task_return, NULL, &o), -EINVAL);
    o = (weft_options){.clock = WEFT_CLOCK_VIRTUAL, .autojump = -1};
    assert_int_equal(weft_run(th_task_return, NULL, &o), -EINVAL);
}

/* ---- autojump with real I/O ---- */

struct pipe_job {
    int fds[2];
    weft_time delay; /* virtual, before the write */
    weft_time read_at;
    int got;
};

static int late_writer(void *arg)
{
    struct pipe_job *j = arg;
    CHECK_EQ(weft_sleep(j->delay), 0);
    CHECK_EQ(th_write(j->fds[1], "x", 1), 1);
    return 0;
}

static int pipe_reader(void *arg)
{
    struct pipe_job *j = arg;
    char c = 0;
    j->got = th_read(j->fds[0], &c, 1);
    j->read_at = weft_now();
    CHECK_EQ(c, 'x');
    return 0;
}

static int autojump_io_main(void *arg)
{
    struct pipe_job j = {.delay = 10 * MINUTE};
    if (!th_pipe(j.fds))
        return -EIO;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, pipe_reader, &j), 0);
    CHECK_EQ(weft_group_spawn(&g, late_writer, &j), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(j.got, 1);
    CHECK_EQ(j.read_at, 10 * MINUTE);
    th_close_pipe(j.fds);
    return 0;
}

static void test_autojump_with_io_in_flight(void **state)
{
    run_in_loop_opts(autojump_io_main, NULL, &virt, 0);
}

/* A thread writes after a little real time: quicker than autojump, so
 * the clock must not have moved when the read completes. */
static void *thread_writer(void *arg)
{
    int fd = *(int *)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (write(fd, "x", 1) != 1)
        abort();
    return NULL;
}

struct quick_io {
    int fds[2];
};

static int quick_io_main(void *arg)
{
    struct quick_io *q = arg;
    int sleeper_rc = 1;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &sleeper_rc), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_writer, &q->fds[1]), 0);
    char c = 0;
    CHECK_EQ(th_read(q->fds[0], &c, 1), 1);
    CHECK_EQ(weft_now(), 0); /* the sleeper's hour did not go by */
    pthread_join(th, NULL);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(sleeper_rc, -ECANCELED);
    return 0;
}

static void test_no_jump_while_io_is_quicker_than_autojump(void **state)
{
    /* A one-hour sleep pending, and a read that completes after ~20 ms of
     * real time: with autojump at 5 s the hour must not go by. */
    struct quick_io q;
    if (pipe2(q.fds, O_CLOEXEC) < 0)
        fail();
    weft_options o = {.clock = WEFT_CLOCK_VIRTUAL, .autojump = 5 * WEFT_SEC};
    run_in_loop_opts(quick_io_main, &q, &o, 0);
    close(q.fds[0]);
    close(q.fds[1]);
}

/* ---- autojump = WEFT_FOREVER: only weft_clock_advance moves time ---- */

struct manual {
    int fds[2];
    int rc;
    weft_time woke;
};

static int manual_sleeper(void *arg)
{
    struct manual *m = arg;
    m->rc = weft_sleep(HOUR);
    m->woke = weft_now();
    return 0;
}

static int manual_main(void *arg)
{
    struct manual *m = arg;
    m->rc = 1;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, manual_sleeper, m), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_writer, &m->fds[1]), 0);
    char c = 0;
    /* Every task is blocked for ~20 ms of real time: no jump. */
    CHECK_EQ(th_read(m->fds[0], &c, 1), 1);
    pthread_join(th, NULL);
    CHECK_EQ(weft_now(), 0);
    CHECK_EQ(m->rc, 1);
    CHECK_EQ(weft_clock_advance(HOUR - 1), 0);
    settle();
    CHECK_EQ(m->rc, 1);
    CHECK_EQ(weft_clock_advance(1), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(m->rc, 0);
    CHECK_EQ(m->woke, HOUR);
    return 0;
}

static void test_autojump_forever_waits_for_advance(void **state)
{
    struct manual m;
    if (pipe2(m.fds, O_CLOEXEC) < 0)
        fail();
    run_in_loop_opts(manual_main, &m, &virt_manual, 0);
    close(m.fds[0]);
    close(m.fds[1]);
}

/* ---- kernel-enforced deadlines follow the virtual clock ---- */

static int stream_deadline_main(void *arg)
{
    weft_stream *a, *b;
    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
        return -EIO;
    weft_stream_kernel_deadlines(a, true);
    char buf[8];

    /* Nothing comes: the 10-minute deadline ends the receive. */
    weft_scope s;
    weft_fail_after(&s, 10 * MINUTE);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), -ETIMEDOUT);
    CHECK_EQ(weft_now(), 10 * MINUTE);

    /* Data before the deadline: the receive gets it, the scope is not
     * cancelled. */
    weft_group g;
    weft_group_enter(&g);
    weft_move_on_after(&s, 10 * MINUTE);
    struct pipe_job j = {.delay = MINUTE};
    j.fds[1] = weft_stream_fd(b);
    CHECK_EQ(weft_group_spawn(&g, late_writer, &j), 0);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 1);
    CHECK_EQ(weft_now(), 11 * MINUTE);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    CHECK(!weft_scope_cancelled_caught(&s));
    CHECK_EQ(weft_group_exit(&g, 0), 0);

    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_stream_kernel_deadline_is_virtual(void **state)
{
    weft_time real = th_clock();
    run_in_loop_opts(stream_deadline_main, NULL, &virt, 0);
    assert_true(th_clock() - real < REAL_GUARD);
}

static int await_until_main(void *arg)
{
    int fds[2];
    if (!th_pipe(fds))
        return -EIO;
    char c;
    CHECK_EQ(th_read_until(fds[0], &c, 1, HOUR), -ETIMEDOUT);
    CHECK_EQ(weft_now(), HOUR);
    /* A deadline that has passed already. */
    CHECK_EQ(th_read_until(fds[0], &c, 1, HOUR), -ETIMEDOUT);
    CHECK_EQ(weft_now(), HOUR);
    /* Data in time. */
    CHECK_EQ(th_write(fds[1], "x", 1), 1);
    CHECK_EQ(th_read_until(fds[0], &c, 1, 2 * HOUR), 1);
    CHECK_EQ(weft_now(), HOUR);
    /* Cancelled before its deadline: -ECANCELED, not -ETIMEDOUT. */
    weft_scope s;
    weft_move_on_after(&s, MINUTE);
    CHECK_EQ(th_read_until(fds[0], &c, 1, 2 * HOUR), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK_EQ(weft_now(), HOUR + MINUTE);
    th_close_pipe(fds);
    return 0;
}

static void test_uring_await_until_is_virtual(void **state)
{
    weft_time real = th_clock();
    run_in_loop_opts(await_until_main, NULL, &virt, 0);
    assert_true(th_clock() - real < REAL_GUARD);
}

/* ---- weft_now outside a virtual loop ---- */

static int worker_now(void *arg)
{
    *(weft_time *)arg = weft_now();
    return 0;
}

static int now_threads_main(void *arg)
{
    CHECK_EQ(weft_sleep(HOUR), 0);
    weft_time w = 0;
    CHECK_EQ(weft_to_thread(worker_now, &w, NULL, 0), 0);
    /* A worker thread has no loop: it reads the real clock. */
    weft_time clk = th_clock();
    CHECK_LT(w > clk ? w - clk : clk - w, 10 * WEFT_SEC);
    CHECK_EQ(weft_now(), HOUR);
    return 0;
}

static void test_now_outside_a_loop_is_real(void **state)
{
    weft_time clk = th_clock();
    weft_time n = weft_now();
    assert_true(n >= clk && n - clk < 10 * WEFT_SEC);
    run_in_loop_opts(now_threads_main, NULL, &virt, 0);
    /* After the loop: real again. */
    n = weft_now();
    assert_true(n >= clk && n - clk < 10 * WEFT_SEC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hour_of_sleeps_runs_in_milliseconds),
        cmocka_unit_test(test_hour_of_sleeps_with_io_in_flight),
        cmocka_unit_test(test_move_on_after_and_fail_after),
        cmocka_unit_test(test_advance_fires_due_timers_in_order),
        cmocka_unit_test(test_advance_needs_a_virtual_loop),
        cmocka_unit_test(test_bad_options_are_refused),
        cmocka_unit_test(test_autojump_with_io_in_flight),
        cmocka_unit_test(test_no_jump_while_io_is_quicker_than_autojump),
        cmocka_unit_test(test_autojump_forever_waits_for_advance),
        cmocka_unit_test(test_stream_kernel_deadline_is_virtual),
        cmocka_unit_test(test_uring_await_until_is_virtual),
        cmocka_unit_test(test_now_outside_a_loop_is_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
