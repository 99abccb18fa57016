/* SPDX-License-Identifier: MIT */
/*
 * tests/test_group.c - task groups (API.md "Task groups"): spawn order,
 * waiting, the first error cancelling the rest, every error kept, which
 * cancellations exit catches, weft_group_start before and after started,
 * spawning into cancelled and exited groups, nesting, out of memory, and
 * many tasks.
 */
#include "helpers.h"

#include <sys/resource.h>

/* ---- spawn order, waiting ---- */

struct order {
    int seq[16];
    int n;
};

struct order_arg {
    struct order *o;
    int id;
};

static int order_child(void *arg)
{
    struct order_arg *a = arg;
    a->o->seq[a->o->n++] = a->id; /* before any checkpoint */
    return 0;
}

static int order_main(void *arg)
{
    struct order o;
    struct order_arg a[10];
    weft_group g;

    memset(&o, 0, sizeof o);
    weft_group_enter(&g);
    for (int i = 0; i < 10; i++) {
        a[i].o = &o;
        a[i].id = i;
        CHECK_EQ(weft_group_spawn(&g, order_child, &a[i]), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(o.n, 10);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(o.seq[i], i);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_spawn_runs_children_in_spawn_order(void **state)
{
    run_in_loop(order_main, NULL);
}

struct wait_arg {
    int *done;
    weft_time delay;
};

static int wait_child(void *arg)
{
    struct wait_arg *w = arg;
    CHECK_EQ(weft_sleep(w->delay), 0);
    (*w->done)++;
    return 0;
}

static int wait_main(void *arg)
{
    int done = 0;
    struct wait_arg w[5];
    weft_group g;

    weft_group_enter(&g);
    for (int i = 0; i < 5; i++) {
        w[i].done = &done;
        w[i].delay = (weft_time)(5 - i) * 4 * WEFT_MSEC;
        CHECK_EQ(weft_group_spawn(&g, wait_child, &w[i]), 0);
    }
    CHECK_EQ(done, 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(done, 5);
    return 0;
}

static void test_group_exit_waits_for_all_children(void **state)
{
    run_in_loop(wait_main, NULL);
}

/* An empty group: exit returns the host's rc. */
static int empty_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_empty(void **state)
{
    run_in_loop(empty_main, NULL);
}

/* ---- the first error cancels the rest ---- */

struct sib {
    int sleeper_rc;
    int host_rc;
};

/* Fail with arg after 5 ms, unless cancelled first. */
static int fail_later(void *arg)
{
    int rc = weft_sleep(5 * WEFT_MSEC);
    return rc < 0 ? rc : (int)(intptr_t)arg;
}

static int first_error_main(void *arg)
{
    struct sib s = {1, 1};
    weft_group g;
    const char *name = NULL;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "sleeper", th_task_sleep_forever,
                                    &s.sleeper_rc),
             0);
    CHECK_EQ(weft_group_spawn_named(&g, "failer", fail_later,
                                    (void *)(intptr_t)-EIO),
             0);
    s.host_rc = weft_sleep(10 * WEFT_SEC);
    CHECK_EQ(s.host_rc, -ECANCELED);
    CHECK_EQ(weft_checkpoint(), -ECANCELED); /* again: level-triggered */
    CHECK(weft_scope_cancel_called(weft_group_scope(&g)));
    int rc = weft_group_exit(&g, s.host_rc);
    CHECK_EQ(rc, -EIO);
    CHECK_EQ(s.sleeper_rc, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 1);
    CHECK_EQ(weft_group_error(&g, 0, &name), -EIO);
    CHECK_STR_EQ(name, "failer");
    CHECK_EQ(weft_group_error(&g, 0, NULL), -EIO);
    /* the cancellation the group caused is gone after exit */
    CHECK_EQ(weft_checkpoint(), 0);
    return 0;
}

static void test_group_first_error_cancels_siblings_and_host(void **state)
{
    run_in_loop(first_error_main, NULL);
}

/* Several children fail in the same round, and one later from a shield:
 * every error is kept in order, exit returns the first. */
static int fail_shielded_later(void *arg)
{
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_set_shield(&s, true);
    CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    return (int)(intptr_t)arg;
}

static int several_main(void *arg)
{
    static const char *const names[] = {"c1", "c2", "c3", "c4"};
    static const int rcs[] = {-EIO, -ENOENT, -EPIPE, -EBADMSG};
    weft_group g;
    int sleeper_rc = 1;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &sleeper_rc), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_group_spawn_named(&g, names[i], th_task_return,
                                        (void *)(intptr_t)rcs[i]),
                 0);
    CHECK_EQ(weft_group_spawn_named(&g, names[3], fail_shielded_later,
                                    (void *)(intptr_t)rcs[3]),
             0);
    int rc = weft_group_exit(&g, 0);
    CHECK_EQ(rc, -EIO);
    CHECK_EQ(sleeper_rc, -ECANCELED);
    if (CHECK_EQ(weft_group_error_count(&g), 4)) {
        for (size_t i = 0; i < 4; i++) {
            const char *name = NULL;
            CHECK_EQ(weft_group_error(&g, i, &name), rcs[i]);
            CHECK_STR_EQ(name, names[i]);
        }
    }
    return 0;
}

static void test_group_several_errors_all_kept(void **state)
{
    run_in_loop(several_main, NULL);
}

/* Many failures (more than the WEFT_GROUP_ERRORS_KEPT kept inline): every
 * one is kept and readable, in order, with its name; exit returns the
 * first. 12 children all fail in their first round, before the group's
 * cancellation can reach any of them. */
static int many_errors_main(void *arg)
{
    char names[12][16];
    weft_group g;

    weft_group_enter(&g);
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "bad-%d", i);
        CHECK_EQ(weft_group_spawn_named(&g, names[i], th_task_return,
                                        (void *)(intptr_t)(-100 - i)),
                 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), -100);
    size_t n = weft_group_error_count(&g);
    CHECK_EQ(n, 12);
    for (size_t i = 0; i < n; i++) {
        const char *name = NULL;
        CHECK_EQ(weft_group_error(&g, i, &name), -100 - (int)i);
        CHECK_STR_EQ(name, names[i]);
    }
    CHECK_EQ(weft_group_error(&g, n, NULL), -EINVAL);
    return 0;
}

/* The host body's error comes first even when there are more errors than
 * are kept inline: every child's error moves one place on. */
static int many_errors_host_main(void *arg)
{
    char names[10][16];
    weft_group g;

    weft_group_enter(&g);
    for (int i = 0; i < 10; i++) {
        snprintf(names[i], sizeof names[i], "bad-%d", i);
        CHECK_EQ(weft_group_spawn_named(&g, names[i], th_task_return,
                                        (void *)(intptr_t)(-100 - i)),
                 0);
    }
    /* the children fail now, and cancel the group */
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_group_exit(&g, -7), -7);
    CHECK_EQ(weft_group_error_count(&g), 11);
    const char *name = NULL;
    CHECK_EQ(weft_group_error(&g, 0, &name), -7);
    for (size_t i = 1; i < 11; i++) {
        CHECK_EQ(weft_group_error(&g, i, &name), -100 - (int)(i - 1));
        CHECK_STR_EQ(name, names[i - 1]);
    }
    return 0;
}

static void test_group_host_error_first_past_the_inline_ones(void **state)
{
    run_in_loop(many_errors_host_main, NULL);
}

static void test_group_many_errors_kept_in_order(void **state)
{
    run_in_loop(many_errors_main, NULL);
}

/* The host body's error: cancels the children, comes first. */
static int host_error_main(void *arg)
{
    weft_group g;
    int sleeper_rc = 1;
    const char *name = NULL;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &sleeper_rc), 0);
    CHECK_EQ(weft_group_spawn_named(&g, "late", fail_shielded_later,
                                    (void *)(intptr_t)-ENOENT),
             0);
    CHECK_EQ(weft_checkpoint(), 0);
    int rc = weft_group_exit(&g, -EPERM);
    CHECK_EQ(rc, -EPERM);
    CHECK_EQ(sleeper_rc, -ECANCELED);
    if (CHECK_EQ(weft_group_error_count(&g), 2)) {
        CHECK_EQ(weft_group_error(&g, 0, &name), -EPERM);
        CHECK(name != NULL);
        CHECK_EQ(weft_group_error(&g, 1, &name), -ENOENT);
        CHECK_STR_EQ(name, "late");
    }
    return 0;
}

/* A child failed before the host body did: the host's error still comes
 * first. */
static int host_error_second_main(void *arg)
{
    weft_group g;
    const char *name = NULL;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "early", th_task_return,
                                    (void *)(intptr_t)-ENOENT),
             0);
    int rc = weft_sleep(10 * WEFT_SEC);
    CHECK_EQ(rc, -ECANCELED);
    rc = weft_group_exit(&g, -EPERM);
    CHECK_EQ(rc, -EPERM);
    if (CHECK_EQ(weft_group_error_count(&g), 2)) {
        CHECK_EQ(weft_group_error(&g, 0, &name), -EPERM);
        CHECK_EQ(weft_group_error(&g, 1, &name), -ENOENT);
        CHECK_STR_EQ(name, "early");
    }
    return 0;
}

static void test_group_host_error_cancels_children_and_comes_first(void **state)
{
    run_in_loop(host_error_main, NULL);
    run_in_loop(host_error_second_main, NULL);
}

/* A child returning -ECANCELED of its own (no cancel around) does not
 * cancel its siblings: only other errors do. */
static int own_cancel_child(void *arg)
{
    return -ECANCELED;
}

static int stray_cancel_main(void *arg)
{
    weft_group g;
    int done = 0;
    struct wait_arg w = {&done, 10 * WEFT_MSEC};

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, own_cancel_child, NULL), 0);
    CHECK_EQ(weft_group_spawn(&g, wait_child, &w), 0);
    CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
    CHECK(!weft_scope_cancel_called(weft_group_scope(&g)));
    weft_group_exit(&g, 0); /* its result is not fixed by the contract */
    CHECK_EQ(done, 1);
    return 0;
}

static void test_group_child_ecanceled_does_not_cancel_siblings(void **state)
{
    run_in_loop(stray_cancel_main, NULL);
}

/* ---- which cancellations exit catches ---- */

static int group_cancel_main(void *arg)
{
    weft_group g;
    int rcs[3] = {1, 1, 1};

    weft_group_enter(&g);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &rcs[i]), 0);
    CHECK_EQ(weft_checkpoint(), 0);
    weft_group_cancel(&g);
    int rc = weft_checkpoint();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_group_exit(&g, rc), 0);
    CHECK_EQ(weft_group_error_count(&g), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rcs[i], -ECANCELED);
    CHECK_EQ(weft_checkpoint(), 0);
    return 0;
}

static void test_group_cancel_is_caught(void **state)
{
    run_in_loop(group_cancel_main, NULL);
}

static int self_cancel_child(void *arg)
{
    weft_group_cancel(arg);
    return weft_checkpoint(); /* -ECANCELED: not an error */
}

static int child_cancels_group_main(void *arg)
{
    weft_group g;
    int rc = 1;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &rc), 0);
    CHECK_EQ(weft_group_spawn(&g, self_cancel_child, &g), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_cancel_from_a_child_is_caught(void **state)
{
    run_in_loop(child_cancels_group_main, NULL);
}

static int outer_cancel_main(void *arg)
{
    weft_scope outer;
    weft_group g;
    int rcs[2] = {1, 1};

    weft_move_on_after(&outer, 5 * WEFT_MSEC);
    weft_group_enter(&g);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &rcs[i]), 0);
    int rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    rc = weft_group_exit(&g, rc);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 0);
    CHECK_EQ(rcs[0], -ECANCELED);
    CHECK_EQ(rcs[1], -ECANCELED);
    CHECK_EQ(weft_scope_exit(&outer, rc), 0);
    CHECK(weft_scope_cancelled_caught(&outer));

    /* the same with the outer scope cancelled by a child */
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &rcs[0]), 0);
    weft_scope_cancel(&outer);
    rc = weft_group_exit(&g, weft_checkpoint());
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&outer, rc), 0);
    return 0;
}

static void test_group_outer_cancel_comes_back_as_ecanceled(void **state)
{
    run_in_loop(outer_cancel_main, NULL);
}

/* ---- spawning into a cancelled or exited group ---- */

struct late {
    bool started;
    int first_rc;
};

static int late_child(void *arg)
{
    struct late *l = arg;
    l->started = true;
    l->first_rc = weft_checkpoint();
    return l->first_rc;
}

static int spawn_cancelled_main(void *arg)
{
    weft_group g;
    struct late l = {false, 1};

    weft_group_enter(&g);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_spawn(&g, late_child, &l), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(l.started);
    CHECK_EQ(l.first_rc, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_spawn_into_cancelled_group_still_starts(void **state)
{
    run_in_loop(spawn_cancelled_main, NULL);
}

static int spawn_exited_main(void *arg)
{
    weft_group g;
    bool ran = false;
    void *value = &ran;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_group_spawn(&g, th_task_return, NULL), -EINVAL);
    CHECK_EQ(weft_group_spawn_named(&g, "x", th_task_return, NULL), -EINVAL);
    CHECK_EQ(weft_group_start(&g, th_task_return, NULL, &value), -EINVAL);
    CHECK(value == &ran);
    th_settle();
    return 0;
}

static void test_group_spawn_into_exited_group_einval(void **state)
{
    run_in_loop(spawn_exited_main, NULL);
}

/* A child spawns a sibling into its own group while the host waits in
 * exit: allowed (the group has not exited yet). */
static int spawner_child(void *arg)
{
    weft_group *g = arg;
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    return weft_group_spawn(g, th_task_return, NULL);
}

static int spawn_during_exit_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, spawner_child, &g), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void test_group_spawn_while_host_waits_in_exit(void **state)
{
    run_in_loop(spawn_during_exit_main, NULL);
}

/* ---- weft_group_start ---- */

struct starter {
    int value;
    bool before, after;
    int rc;
    weft_time delay; /* before started */
    int fail;        /* return this before started, if nonzero */
    bool no_started; /* return 0 without calling started */
};

static int starter_task(void *arg)
{
    struct starter *s = arg;

    if (s->delay) {
        int rc = weft_sleep(s->delay);
        if (rc < 0)
            return s->rc = rc;
    }
    if (s->fail)
        return s->fail;
    if (s->no_started)
        return 0;
    s->before = true;
    weft_task_started(&s->value);
    s->rc = weft_sleep_forever();
    s->after = true;
    return s->rc;
}

static int start_main(void *arg)
{
    weft_group g;
    weft_scope caller;
    struct starter s;
    void *v = NULL;

    memset(&s, 0, sizeof s);
    s.rc = 1;
    s.delay = 2 * WEFT_MSEC;
    weft_group_enter(&g);
    /* started inside a scope of the caller's ... */
    weft_scope_enter(&caller, WEFT_FOREVER);
    CHECK_EQ(weft_group_start(&g, starter_task, &s, &v), 0);
    CHECK(v == &s.value);
    CHECK(s.before);
    CHECK(!s.after);
    /* ... which no longer reaches it: it belongs to the group now */
    weft_scope_cancel(&caller);
    CHECK_EQ(weft_scope_exit(&caller, weft_checkpoint()), 0);
    th_settle();
    CHECK(!s.after);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(s.after);
    CHECK_EQ(s.rc, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 0);

    /* started at once, before any checkpoint */
    memset(&s, 0, sizeof s);
    v = &s;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_start(&g, starter_task, &s, &v), 0);
    CHECK(v == &s.value);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void test_group_start_returns_value_and_joins_group(void **state)
{
    run_in_loop(start_main, NULL);
}

static int start_named_main(void *arg)
{
    weft_group g;
    struct starter s;
    void *v = NULL;

    memset(&s, 0, sizeof s);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_start_named(&g, "started-one", starter_task, &s, &v),
             0);
    CHECK(v == &s.value);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void test_group_start_named(void **state)
{
    run_in_loop(start_named_main, NULL);
}

/* After started, the task's error is the group's like any child's. */
static int fail_after_started(void *arg)
{
    weft_task_started(NULL);
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    return -EIO;
}

static int start_then_fail_main(void *arg)
{
    weft_group g;
    void *v = &g;
    int rc = 1;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &rc), 0);
    CHECK_EQ(weft_group_start(&g, fail_after_started, NULL, &v), 0);
    CHECK(v == NULL);
    CHECK_EQ(weft_group_exit(&g, weft_sleep_forever()), -EIO);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 1);
    return 0;
}

static void test_group_start_error_after_started_is_the_groups(void **state)
{
    run_in_loop(start_then_fail_main, NULL);
}

static int start_fails_main(void *arg)
{
    weft_group g;
    struct starter s;
    void *v = &g;
    int sib = 1;

    memset(&s, 0, sizeof s);
    s.delay = WEFT_MSEC;
    s.fail = -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &sib), 0);
    CHECK_EQ(weft_group_start(&g, starter_task, &s, &v), -EIO);
    CHECK(v == &g); /* untouched */
    /* the error went to the caller, not the group */
    CHECK(!weft_scope_cancel_called(weft_group_scope(&g)));
    CHECK_EQ(weft_checkpoint(), 0);
    th_settle();
    CHECK_EQ(sib, 1);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_group_error_count(&g), 0);

    /* failing at once, before any checkpoint */
    memset(&s, 0, sizeof s);
    s.fail = -ENOENT;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_start(&g, starter_task, &s, &v), -ENOENT);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_start_failing_before_started_returns_error(void **state)
{
    run_in_loop(start_fails_main, NULL);
}

static int start_echild_main(void *arg)
{
    weft_group g;
    struct starter s;
    void *v = &g;

    memset(&s, 0, sizeof s);
    s.no_started = true;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_start(&g, starter_task, &s, &v), -ECHILD);
    CHECK(v == &g);
    s.delay = WEFT_MSEC;
    CHECK_EQ(weft_group_start(&g, starter_task, &s, &v), -ECHILD);
    CHECK(!weft_scope_cancel_called(weft_group_scope(&g)));
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_start_without_started_echild(void **state)
{
    run_in_loop(start_echild_main, NULL);
}

static int start_cancelled_main(void *arg)
{
    weft_group g;
    weft_scope caller;
    struct starter s;
    void *v = &g;

    /* the caller's deadline passes while the task has not started */
    memset(&s, 0, sizeof s);
    s.delay = 10 * WEFT_SEC;
    weft_group_enter(&g);
    weft_move_on_after(&caller, 5 * WEFT_MSEC);
    int rc = weft_group_start(&g, starter_task, &s, &v);
    CHECK_EQ(rc, -ECANCELED);
    CHECK(v == &g);
    CHECK_EQ(s.rc, -ECANCELED); /* the task saw the caller's cancel */
    CHECK_EQ(weft_scope_exit(&caller, rc), 0);
    CHECK(!weft_scope_cancel_called(weft_group_scope(&g)));
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_group_error_count(&g), 0);

    /* the caller is already cancelled when it calls start */
    memset(&s, 0, sizeof s);
    s.delay = 10 * WEFT_SEC;
    weft_group_enter(&g);
    weft_scope_enter(&caller, WEFT_FOREVER);
    weft_scope_cancel(&caller);
    rc = weft_group_start(&g, starter_task, &s, &v);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&caller, rc), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_start_caller_cancelled_before_started(void **state)
{
    run_in_loop(start_cancelled_main, NULL);
}

/* ---- the group's scope ---- */

static int group_scope_main(void *arg)
{
    weft_group g;
    int rcs[2] = {1, 1};

    weft_group_enter(&g);
    weft_scope *s = weft_group_scope(&g);
    CHECK(s != NULL);
    CHECK_EQ(weft_scope_deadline(s), WEFT_FOREVER);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &rcs[i]), 0);
    weft_time d = weft_now() + 10 * WEFT_MSEC;
    weft_scope_set_deadline(s, d);
    CHECK_EQ(weft_scope_deadline(s), d);
    CHECK_EQ(weft_current_effective_deadline(), d);
    int rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_GE(weft_now(), d);
    CHECK_EQ(weft_group_exit(&g, rc), 0);
    CHECK_EQ(rcs[0], -ECANCELED);
    CHECK_EQ(rcs[1], -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_scope_takes_a_deadline(void **state)
{
    run_in_loop(group_scope_main, NULL);
}

/* A shielded group scope: children survive an outer cancel. */
static int shielded_group_main(void *arg)
{
    weft_scope outer;
    weft_group g;
    int done = 0;
    struct wait_arg w = {&done, 10 * WEFT_MSEC};

    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_group_enter(&g);
    weft_scope_set_shield(weft_group_scope(&g), true);
    CHECK_EQ(weft_group_spawn(&g, wait_child, &w), 0);
    weft_scope_cancel(&outer);
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(done, 1);
    CHECK_EQ(weft_scope_exit(&outer, weft_checkpoint()), 0);
    return 0;
}

static void test_group_shielded_scope_protects_children(void **state)
{
    run_in_loop(shielded_group_main, NULL);
}

/* ---- nested groups ---- */

struct nest {
    int sleeper_rcs[4];
    int inner_rc;
    size_t inner_errors;
};

static int nest_middle(void *arg)
{
    struct nest *n = arg;
    weft_group inner;

    weft_group_enter(&inner);
    CHECK_EQ(
        weft_group_spawn(&inner, th_task_sleep_forever, &n->sleeper_rcs[0]), 0);
    CHECK_EQ(
        weft_group_spawn(&inner, th_task_sleep_forever, &n->sleeper_rcs[1]), 0);
    CHECK_EQ(weft_group_spawn_named(&inner, "grandchild", fail_later,
                                    (void *)(intptr_t)-EIO),
             0);
    n->inner_rc = weft_group_exit(&inner, weft_sleep_forever());
    n->inner_errors = weft_group_error_count(&inner);
    return n->inner_rc;
}

static int nest_main(void *arg)
{
    struct nest n;
    weft_group outer;
    const char *name = NULL;

    memset(&n, 0, sizeof n);
    weft_group_enter(&outer);
    CHECK_EQ(weft_group_spawn(&outer, th_task_sleep_forever, &n.sleeper_rcs[2]),
             0);
    CHECK_EQ(weft_group_spawn_named(&outer, "middle", nest_middle, &n), 0);
    int rc = weft_group_exit(&outer, weft_sleep_forever());
    CHECK_EQ(rc, -EIO);
    CHECK_EQ(n.inner_rc, -EIO);
    CHECK_EQ(n.inner_errors, 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(n.sleeper_rcs[i], -ECANCELED);
    CHECK_EQ(weft_group_error_count(&outer), 1);
    CHECK_EQ(weft_group_error(&outer, 0, &name), -EIO);
    CHECK_STR_EQ(name, "middle");

    /* cancelling the outer group reaches the inner group's children, and
     * comes out of the inner exit as -ECANCELED, caught by the outer */
    memset(&n, 0, sizeof n);
    weft_group_enter(&outer);
    CHECK_EQ(weft_group_spawn(&outer, nest_middle, &n), 0);
    th_settle();
    weft_group_cancel(&outer);
    rc = weft_group_exit(&outer, 0);
    /* the grandchild's -EIO may or may not have happened first */
    if (n.inner_rc == -EIO)
        CHECK_EQ(rc, -EIO);
    else
        CHECK_EQ(rc, 0);
    CHECK(n.inner_rc == -ECANCELED || n.inner_rc == -EIO);
    return 0;
}

static void test_group_nested_groups(void **state)
{
    run_in_loop(nest_main, NULL);
}

/* ---- out of memory ---- */

struct oom {
    int started;
    int spawned;
    int enomem;
};

static int oom_child(void *arg)
{
    struct oom *o = arg;
    o->started++;
    weft_sleep_forever();
    return 0;
}

static int oom_main(void *arg)
{
    struct oom *o = arg;
    weft_group g;
    struct rlimit old, lim;
    long pages = 0, rss;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!CHECK(f != NULL))
        return -EIO;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        pages = 0;
    fclose(f);
    if (!CHECK_GT(pages, 0))
        return -EIO;
    CHECK_EQ(getrlimit(RLIMIT_AS, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (32u << 20);
    if (!CHECK_EQ(setrlimit(RLIMIT_AS, &lim), 0))
        return -EIO;

    weft_group_enter(&g);
    for (int i = 0; i < 200000; i++) {
        int rc = weft_group_spawn(&g, oom_child, o);
        if (rc == -ENOMEM) {
            o->enomem = 1;
            break;
        }
        if (!CHECK_EQ(rc, 0))
            break;
        o->spawned++;
    }
    CHECK_EQ(setrlimit(RLIMIT_AS, &old), 0);
    th_settle();
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(o->started, o->spawned); /* the failed spawn ran nothing */

    /* memory is back: spawning works again */
    int again = 0;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_return, NULL), 0);
    again = 1;
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(again);
    return 0;
}

static void oom_body(void *arg)
{
    struct oom o = {0, 0, 0};
    int rc = weft_run(oom_main, &o, NULL);

    fprintf(stderr, "weft_run %d, spawned %d, started %d, enomem %d\n", rc,
            o.spawned, o.started, o.enomem);
    if (rc != 0 || !o.enomem)
        _exit(4);
}

static void test_group_spawn_out_of_memory_enomem(void **state)
{
    struct th_child c;

    if (TH_ASAN) {
        /* ASan reserves terabytes of address space: RLIMIT_AS cannot be
         * used to starve the process of memory. */
        print_message("skipped under AddressSanitizer\n");
        skip();
    }
    if (TH_TSAN) {
        /* TSan maps state of its own for each fiber, and a failed map
         * is fatal there: it dies before weft's mmap gives -ENOMEM. */
        print_message("skipped under ThreadSanitizer\n");
        skip();
    }
    th_run_child(oom_body, NULL, &c);
    print_message("%s", c.err);
    th_assert_child_ok(&c);
}

/* ---- many tasks ---- */

static int thousand_child(void *arg)
{
    int *done = arg;

    if (!CHECK_EQ(weft_checkpoint(), 0))
        return -EIO;
    if (!CHECK_EQ(weft_sleep(WEFT_MSEC), 0))
        return -EIO;
    if (!CHECK_EQ(weft_checkpoint(), 0))
        return -EIO;
    (*done)++;
    return 0;
}

static int thousand_main(void *arg)
{
    weft_group g;
    int done = 0;

    weft_group_enter(&g);
    for (int i = 0; i < 1000; i++)
        if (!CHECK_EQ(weft_group_spawn(&g, thousand_child, &done), 0))
            break;
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(done, 1000);
    return 0;
}

static void test_group_thousand_tasks(void **state)
{
    run_in_loop(thousand_main, NULL);
}

/* ---- whose cancellation a child sees ---- */

/* A child belongs to its group: a cancelled scope around the task that
 * spawned it does not reach it. */
struct spawner {
    weft_group *g;
    int child_rc;
    int spawner_rc;
};

static int spawned_by_cancelled(void *arg)
{
    struct spawner *sp = arg;
    sp->child_rc = weft_sleep(WEFT_MSEC);
    return 0;
}

static int cancelled_spawner(void *arg)
{
    struct spawner *sp = arg;
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_group_spawn(sp->g, spawned_by_cancelled, sp), 0);
    sp->spawner_rc = weft_checkpoint();
    return weft_scope_exit(&s, sp->spawner_rc);
}

static int spawner_scope_main(void *arg)
{
    weft_group g;
    struct spawner sp = {&g, 1, 1};

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, cancelled_spawner, &sp), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(sp.spawner_rc, -ECANCELED);
    CHECK_EQ(sp.child_rc, 0);
    return 0;
}

static void test_group_child_ignores_spawners_cancelled_scope(void **state)
{
    run_in_loop(spawner_scope_main, NULL);
}

/* Before started, a weft_group_start task sees the caller's deadline;
 * after, the group's. */
struct seer {
    weft_time before, after;
};

static int deadline_seer(void *arg)
{
    struct seer *s = arg;
    s->before = weft_current_effective_deadline();
    weft_task_started(NULL);
    CHECK_EQ(weft_checkpoint(), 0);
    s->after = weft_current_effective_deadline();
    return 0;
}

static int start_deadline_main(void *arg)
{
    weft_group g;
    weft_scope caller;
    struct seer s = {0, 0};
    weft_time now = weft_now();
    weft_time dg = now + 20 * WEFT_SEC, dc = now + 10 * WEFT_SEC;

    weft_group_enter(&g);
    weft_scope_set_deadline(weft_group_scope(&g), dg);
    weft_scope_enter(&caller, dc);
    CHECK_EQ(weft_group_start(&g, deadline_seer, &s, NULL), 0);
    CHECK_EQ(weft_scope_exit(&caller, 0), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(s.before, dc);
    CHECK_EQ(s.after, dg);
    return 0;
}

static void
test_group_start_task_under_callers_deadline_until_started(void **state)
{
    run_in_loop(start_deadline_main, NULL);
}

/* The host already waits in exit when an outer deadline passes: the
 * children are cancelled and exit gives -ECANCELED for the outer scope to
 * catch. */
static int exit_waiting_main(void *arg)
{
    weft_scope outer;
    weft_group g;
    int rc1 = 1;

    weft_move_on_after(&outer, 5 * WEFT_MSEC);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, &rc1), 0);
    int rc = weft_group_exit(&g, 0);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(rc1, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 0);
    CHECK_EQ(weft_scope_exit(&outer, rc), 0);
    CHECK(weft_scope_cancelled_caught(&outer));
    return 0;
}

static void test_group_outer_cancel_while_host_waits_in_exit(void **state)
{
    run_in_loop(exit_waiting_main, NULL);
}

/* weft_group_start into a group already cancelled: until started the task
 * runs under the caller's (uncancelled) scopes; once started it belongs to
 * the cancelled group. */
struct late_start {
    int before_rc, after_rc;
};

static int late_starter(void *arg)
{
    struct late_start *ls = arg;
    ls->before_rc = weft_sleep(WEFT_MSEC);
    weft_task_started(ls);
    ls->after_rc = weft_checkpoint();
    return ls->after_rc;
}

static int start_cancelled_group_main(void *arg)
{
    weft_group g;
    struct late_start ls = {1, 1};
    void *v = NULL;

    weft_group_enter(&g);
    weft_group_cancel(&g);
    /* the host is inside the cancelled group scope: start from a shielded
     * scope so that the caller itself is not cancelled */
    weft_scope caller;
    weft_scope_enter(&caller, WEFT_FOREVER);
    weft_scope_set_shield(&caller, true);
    CHECK_EQ(weft_group_start(&g, late_starter, &ls, &v), 0);
    CHECK(v == &ls);
    CHECK_EQ(weft_scope_exit(&caller, 0), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(ls.before_rc, 0);
    CHECK_EQ(ls.after_rc, -ECANCELED);
    CHECK_EQ(weft_group_error_count(&g), 0);
    return 0;
}

static void test_group_start_into_cancelled_group(void **state)
{
    run_in_loop(start_cancelled_group_main, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_group_spawn_runs_children_in_spawn_order),
    cmocka_unit_test(test_group_exit_waits_for_all_children),
    cmocka_unit_test(test_group_empty),
    cmocka_unit_test(test_group_first_error_cancels_siblings_and_host),
    cmocka_unit_test(test_group_several_errors_all_kept),
    cmocka_unit_test(test_group_many_errors_kept_in_order),
    cmocka_unit_test(test_group_host_error_first_past_the_inline_ones),
    cmocka_unit_test(test_group_host_error_cancels_children_and_comes_first),
    cmocka_unit_test(test_group_child_ecanceled_does_not_cancel_siblings),
    cmocka_unit_test(test_group_cancel_is_caught),
    cmocka_unit_test(test_group_cancel_from_a_child_is_caught),
    cmocka_unit_test(test_group_outer_cancel_comes_back_as_ecanceled),
    cmocka_unit_test(test_group_spawn_into_cancelled_group_still_starts),
    cmocka_unit_test(test_group_spawn_into_exited_group_einval),
    cmocka_unit_test(test_group_spawn_while_host_waits_in_exit),
    cmocka_unit_test(test_group_start_returns_value_and_joins_group),
    cmocka_unit_test(test_group_start_named),
    cmocka_unit_test(test_group_start_error_after_started_is_the_groups),
    cmocka_unit_test(test_group_start_failing_before_started_returns_error),
    cmocka_unit_test(test_group_start_without_started_echild),
    cmocka_unit_test(test_group_start_caller_cancelled_before_started),
    cmocka_unit_test(test_group_scope_takes_a_deadline),
    cmocka_unit_test(test_group_shielded_scope_protects_children),
    cmocka_unit_test(test_group_nested_groups),
    cmocka_unit_test(test_group_spawn_out_of_memory_enomem),
    cmocka_unit_test(test_group_thousand_tasks),
    cmocka_unit_test(test_group_child_ignores_spawners_cancelled_scope),
    cmocka_unit_test(
        test_group_start_task_under_callers_deadline_until_started),
    cmocka_unit_test(test_group_outer_cancel_while_host_waits_in_exit),
    cmocka_unit_test(test_group_start_into_cancelled_group),
};

TH_MAIN(tests)
