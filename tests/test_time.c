/* SPDX-License-Identifier: MIT */
/*
 * tests/test_time.c - the clock, sleeping and checkpoints (API.md "Time and
 * checkpoints"). Durations are checked as lower bounds only; upper bounds
 * are the hang guard's business.
 */
#include "helpers.h"

/* ---- weft_now ---- */

static int now_main(void *arg)
{
    weft_time prev = weft_now();

    /* CLOCK_MONOTONIC, in nanoseconds (loosely: it may be cached). */
    weft_time clk = th_clock();
    CHECK_LT(prev > clk ? prev - clk : clk - prev, 10 * WEFT_SEC);
    for (int i = 0; i < 2000; i++) {
        weft_time n = weft_now();
        if (!CHECK_GE(n, prev))
            break;
        prev = n;
        if (i % 100 == 0)
            CHECK_EQ(weft_checkpoint(), 0);
    }
    weft_time a = weft_now();
    CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
    CHECK_GE(weft_now() - a, 2 * WEFT_MSEC);
    return 0;
}

static void test_now_is_monotonic(void **state)
{
    run_in_loop(now_main, NULL);
}

/* ---- weft_sleep ---- */

static int sleep_nonpositive_main(void *arg)
{
    static const weft_time delays[] = {0, -1, -WEFT_MSEC, -WEFT_SEC,
                                       -WEFT_FOREVER};

    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++)
        for (int k = 0; k < 50; k++)
            if (!CHECK_EQ(weft_sleep(delays[i]), 0))
                return -EIO;
    return 0;
}

static void test_sleep_zero_and_negative_return_0(void **state)
{
    run_in_loop(sleep_nonpositive_main, NULL);
}

static int sleep_at_least_main(void *arg)
{
    static const weft_time delays[] = {WEFT_USEC, 500 * WEFT_USEC, WEFT_MSEC,
                                       5 * WEFT_MSEC, 20 * WEFT_MSEC};

    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        weft_time t0 = weft_now();
        weft_time c0 = th_clock();
        CHECK_EQ(weft_sleep(delays[i]), 0);
        CHECK_GE(weft_now() - t0, delays[i]);
        CHECK_GE(th_clock() - c0, delays[i]);
    }
    return 0;
}

static void test_sleep_lasts_at_least_the_delay(void **state)
{
    run_in_loop(sleep_at_least_main, NULL);
}

static int sleep_until_main(void *arg)
{
    CHECK_EQ(weft_sleep_until(weft_now() - WEFT_SEC), 0);
    CHECK_EQ(weft_sleep_until(weft_now()), 0);
    CHECK_EQ(weft_sleep_until(0), 0);
    CHECK_EQ(weft_sleep_until(-WEFT_FOREVER), 0);
    weft_time d = weft_now() + 10 * WEFT_MSEC;
    CHECK_EQ(weft_sleep_until(d), 0);
    CHECK_GE(weft_now(), d);
    return 0;
}

static void test_sleep_until_past_and_future(void **state)
{
    run_in_loop(sleep_until_main, NULL);
}

/* Sleepers wake in the order of their deadlines. */
struct order {
    int seq[3];
    int n;
};

struct sleeper {
    struct order *o;
    int id;
    weft_time delay;
};

static int order_sleeper(void *arg)
{
    struct sleeper *s = arg;

    CHECK_EQ(weft_sleep(s->delay), 0);
    CHECK_EQ(weft_now(), s->delay);
    s->o->seq[s->o->n++] = s->id;
    return 0;
}

static int order_main(void *arg)
{
    struct order o = {{0}, 0};
    struct sleeper s[3] = {
        {&o, 3, 90 * WEFT_MSEC},
        {&o, 1, 10 * WEFT_MSEC},
        {&o, 2, 50 * WEFT_MSEC},
    };
    weft_group g;

    weft_group_enter(&g);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_group_spawn(&g, order_sleeper, &s[i]), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(o.n, 3);
    CHECK_EQ(o.seq[0], 1);
    CHECK_EQ(o.seq[1], 2);
    CHECK_EQ(o.seq[2], 3);
    CHECK_EQ(weft_now(), 90 * WEFT_MSEC); /* virtual: exact */
    return 0;
}

/* The order is the timer heap's logic: on the virtual clock. */
static void test_sleepers_wake_in_deadline_order(void **state)
{
    run_in_virtual_loop(order_main, NULL);
}

/* A delay so long that now + delay would overflow: still a plain sleep
 * that a cancel ends (no wrap to the past, no UB). */
static int sleep_huge_main(void *arg)
{
    weft_scope s;

    weft_move_on_after(&s, 5 * WEFT_MSEC);
    CHECK_EQ(weft_sleep(WEFT_FOREVER), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    weft_move_on_after(&s, 5 * WEFT_MSEC);
    CHECK_EQ(weft_sleep(WEFT_FOREVER - 1), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    weft_move_on_after(&s, 5 * WEFT_MSEC);
    CHECK_EQ(weft_sleep_until(WEFT_FOREVER), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    return 0;
}

static void test_sleep_huge_delay_does_not_overflow(void **state)
{
    run_in_loop(sleep_huge_main, NULL);
}

/* ---- weft_sleep_forever ---- */

struct forever {
    weft_scope *scope;
    bool blocked;
    int rc;
};

static int forever_victim(void *arg)
{
    struct forever *f = arg;
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    f->scope = &s;
    f->blocked = true;
    f->rc = weft_sleep_forever();
    f->scope = NULL;
    return weft_scope_exit(&s, f->rc);
}

static int sleep_forever_main(void *arg)
{
    weft_scope s;

    /* already cancelled */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_sleep_forever(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);

    /* cancelled by a deadline */
    weft_time t0 = weft_now();
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    CHECK_EQ(weft_sleep_forever(), -ECANCELED);
    CHECK_GE(weft_now() - t0, 10 * WEFT_MSEC);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK(weft_scope_cancelled_caught(&s));

    /* cancelled by another task */
    struct forever f = {NULL, false, 1};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, forever_victim, &f), 0);
    if (th_wait_flag(&f.blocked) && CHECK(f.scope != NULL))
        weft_scope_cancel(f.scope);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(f.rc, -ECANCELED);
    return 0;
}

static void test_sleep_forever_returns_ecanceled_when_cancelled(void **state)
{
    run_in_loop(sleep_forever_main, NULL);
}

/* ---- checkpoints ---- */

struct trace {
    char buf[64];
    int n;
};

static void trace_add(struct trace *t, char c)
{
    if (t->n < (int)sizeof t->buf - 1)
        t->buf[t->n++] = c;
}

struct tracer {
    struct trace *t;
    char name;
    int kind; /* 0 checkpoint, 1 cancel_shielded_checkpoint (cancelled) */
};

static int tracer_task(void *arg)
{
    struct tracer *tr = arg;
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    if (tr->kind == 1)
        weft_scope_cancel(&s);
    for (int i = 0; i < 3; i++) {
        trace_add(tr->t, tr->name);
        if (tr->kind == 0)
            CHECK_EQ(weft_checkpoint(), 0);
        else
            CHECK_EQ(weft_cancel_shielded_checkpoint(), 0);
    }
    int rc = tr->kind == 1 ? weft_checkpoint() : 0;
    if (tr->kind == 1)
        CHECK_EQ(rc, -ECANCELED); /* still cancelled: level-triggered */
    return weft_scope_exit(&s, rc);
}

static int interleave_main(void *arg)
{
    int kind = *(int *)arg;
    struct trace t;
    struct tracer a = {&t, 'A', kind}, b = {&t, 'B', 0};
    weft_group g;

    memset(&t, 0, sizeof t);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, tracer_task, &a), 0);
    CHECK_EQ(weft_group_spawn(&g, tracer_task, &b), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_STR_EQ(t.buf, "ABABAB");
    return 0;
}

static void test_checkpoint_returns_0_and_yields(void **state)
{
    int kind = 0;
    run_in_loop(interleave_main, &kind);
}

static void test_cancel_shielded_checkpoint_yields_and_returns_0(void **state)
{
    int kind = 1;
    run_in_loop(interleave_main, &kind);
}

struct noyield {
    struct trace *t;
};

static int noyield_a(void *arg)
{
    struct trace *t = arg;
    weft_scope s;

    trace_add(t, 'a');
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_checkpoint_if_cancelled(), 0);
    trace_add(t, 'a');
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_checkpoint_if_cancelled(), -ECANCELED);
    trace_add(t, 'a');
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK_EQ(weft_checkpoint_if_cancelled(), 0);
    return 0;
}

static int noyield_b(void *arg)
{
    trace_add(arg, 'b');
    return 0;
}

static int noyield_main(void *arg)
{
    struct trace t;
    weft_group g;

    memset(&t, 0, sizeof t);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, noyield_a, &t), 0);
    CHECK_EQ(weft_group_spawn(&g, noyield_b, &t), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_STR_EQ(t.buf, "aaab");
    return 0;
}

static void test_checkpoint_if_cancelled_does_not_yield(void **state)
{
    run_in_loop(noyield_main, NULL);
}

static int shielded_cp_main(void *arg)
{
    weft_scope s;

    weft_scope_enter(&s, weft_now() - WEFT_SEC);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(weft_cancel_shielded_checkpoint(), 0);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_cancel_shielded_checkpoint(), 0);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK_EQ(weft_checkpoint(), 0);
    return 0;
}

static void test_cancel_shielded_checkpoint_ignores_cancel(void **state)
{
    run_in_loop(shielded_cp_main, NULL);
}

/* ---- many sleepers on small rings ---- */

/* 20,000 task stacks are more mappings than Valgrind can track
 * (VG_N_SEGMENTS); under it the heap's logic is tested with 2,000. */
#define MANY_SLEEPERS (TH_UNDER_VALGRIND() ? 2000 : 20000)

struct many {
    int woke;
    int late_bad; /* woke at another time than its deadline */
    uint32_t seed;
};

struct many_arg {
    struct many *m;
    weft_time delay;
    bool until;
};

static int many_sleeper(void *arg)
{
    struct many_arg *a = arg;
    weft_time d = weft_now() + a->delay;
    int rc = a->until ? weft_sleep_until(d) : weft_sleep(a->delay);

    if (!CHECK_EQ(rc, 0))
        return rc;
    if (weft_now() != d) /* the virtual clock: exactly at d */
        a->m->late_bad++;
    a->m->woke++;
    return 0;
}

static int many_main(void *arg)
{
    struct many *m = arg;
    struct many_arg *args = calloc(MANY_SLEEPERS, sizeof *args);
    weft_group g;

    if (!CHECK(args != NULL))
        return -ENOMEM;
    weft_group_enter(&g);
    for (int i = 0; i < MANY_SLEEPERS; i++) {
        m->seed = m->seed * 1103515245u + 12345u;
        args[i].m = m;
        /* 0 .. 49.9 ms in 0.1 ms steps */
        args[i].delay = (weft_time)((m->seed >> 8) % 500) * 100 * WEFT_USEC;
        args[i].until = i & 1;
        int rc = weft_group_spawn(&g, many_sleeper, &args[i]);
        if (!CHECK_EQ(rc, 0)) {
            weft_group_cancel(&g);
            break;
        }
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    free(args);
    return 0;
}

static void test_twenty_thousand_sleepers_all_wake(void **state)
{
    struct many m = {0, 0, 42};
    weft_options o;

    if (TH_TSAN) {
        /* 20,000 stacks (two mappings each) and TSan's state per fiber
         * pass vm.max_map_count (65530): TSan's mmap fails. */
        print_message("skipped under ThreadSanitizer: too many mappings\n");
        skip();
    }
    memset(&o, 0, sizeof o);
    o.sq_entries = 64;
    o.clock = WEFT_CLOCK_VIRTUAL; /* the heap's logic, not the kernel's */
    run_in_loop_opts(many_main, &m, &o, 0);
    assert_int_equal(m.woke, MANY_SLEEPERS);
    assert_int_equal(m.late_bad, 0);
}

/* ---- a task that only checkpoints does not starve the others ---- */

struct spinner {
    bool flag;
    long spins;
};

static int spin_until_flag(void *arg)
{
    struct spinner *sp = arg;

    while (!sp->flag) {
        if (!CHECK_EQ(weft_checkpoint(), 0))
            return -EIO;
        sp->spins++;
    }
    return 0;
}

static int sleep_then_flag(void *arg)
{
    struct spinner *sp = arg;

    CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0); /* needs the timer */
    CHECK_EQ(th_nop(), 0);                  /* needs the ring */
    sp->flag = true;
    return 0;
}

static int starve_main(void *arg)
{
    struct spinner sp = {false, 0};
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, spin_until_flag, &sp), 0);
    CHECK_EQ(weft_group_spawn(&g, spin_until_flag, &sp), 0);
    CHECK_EQ(weft_group_spawn(&g, sleep_then_flag, &sp), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(sp.flag);
    CHECK_GT(sp.spins, 0);
    return 0;
}

static void test_checkpoint_loop_does_not_starve_timers_or_ring(void **state)
{
    run_in_loop(starve_main, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_now_is_monotonic),
    cmocka_unit_test(test_sleep_zero_and_negative_return_0),
    cmocka_unit_test(test_sleep_lasts_at_least_the_delay),
    cmocka_unit_test(test_sleep_until_past_and_future),
    cmocka_unit_test(test_sleepers_wake_in_deadline_order),
    cmocka_unit_test(test_sleep_huge_delay_does_not_overflow),
    cmocka_unit_test(test_sleep_forever_returns_ecanceled_when_cancelled),
    cmocka_unit_test(test_checkpoint_returns_0_and_yields),
    cmocka_unit_test(test_cancel_shielded_checkpoint_yields_and_returns_0),
    cmocka_unit_test(test_checkpoint_if_cancelled_does_not_yield),
    cmocka_unit_test(test_cancel_shielded_checkpoint_ignores_cancel),
    cmocka_unit_test(test_twenty_thousand_sleepers_all_wake),
    cmocka_unit_test(test_checkpoint_loop_does_not_starve_timers_or_ring),
};

TH_MAIN(tests)
