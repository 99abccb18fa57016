/* SPDX-License-Identifier: MIT */
/*
 * tests/test_scope.c - cancel scopes (API.md "Cancel scopes"): level-
 * triggered cancellation, which scope catches, fail_after/move_on_after,
 * shields, deadlines moved while a task waits, cancels from other tasks,
 * the effective deadline, misuse that must abort, and no data lost when an
 * io_uring operation is cancelled.
 */
#include "helpers.h"

/* ---- deadlines in the past, level-triggered cancellation ---- */

static int past_deadline_main(void *arg)
{
    weft_time now = weft_now();
    /* absolute deadlines, all before now */
    const weft_time past[] = {now - 1, now - WEFT_SEC, 0, -WEFT_FOREVER};
    weft_scope s;

    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        weft_scope_enter(&s, past[i]);
        CHECK_EQ(weft_checkpoint(), -ECANCELED);
        CHECK(weft_scope_cancel_called(&s));
        CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
        CHECK(weft_scope_cancelled_caught(&s));
    }
    /* relative sugar with a negative delay: already expired */
    weft_move_on_after(&s, -WEFT_MSEC);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    weft_fail_after(&s, -WEFT_MSEC);
    CHECK_EQ(weft_sleep(0), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), -ETIMEDOUT);
    return 0;
}

static void test_scope_past_deadline_cancels_at_first_checkpoint(void **state)
{
    run_in_loop(past_deadline_main, NULL);
}

static int level_main(void *arg)
{
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_EQ(weft_checkpoint(), 0);
    weft_scope_cancel(&s);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(weft_checkpoint(), -ECANCELED);
        CHECK_EQ(weft_checkpoint_if_cancelled(), -ECANCELED);
        CHECK_EQ(weft_sleep(0), -ECANCELED);
        CHECK_EQ(weft_sleep(-1), -ECANCELED);
        CHECK_EQ(weft_sleep(WEFT_MSEC), -ECANCELED);
        CHECK_EQ(weft_sleep_until(0), -ECANCELED);
        CHECK_EQ(weft_sleep_forever(), -ECANCELED);
        CHECK_EQ(th_nop(), -ECANCELED);
    }
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_checkpoint(), 0);
        CHECK_EQ(weft_sleep(0), 0);
        CHECK_EQ(th_nop(), 0);
    }
    return 0;
}

static void test_scope_cancel_is_level_triggered(void **state)
{
    run_in_loop(level_main, NULL);
}

/* ---- what exit returns ---- */

static int exit_catches_main(void *arg)
{
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK(!weft_scope_cancel_called(&s));
    weft_scope_cancel(&s);
    int rc = weft_sleep(WEFT_SEC);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    CHECK(weft_scope_cancel_called(&s));
    return 0;
}

static void test_scope_exit_catches_own_cancel(void **state)
{
    run_in_loop(exit_catches_main, NULL);
}

static int exit_unchanged_main(void *arg)
{
    weft_scope s;

    /* cancelled, but the body failed otherwise: its error goes on */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -EIO), -EIO);
    CHECK(!weft_scope_cancelled_caught(&s));

    /* cancelled, body succeeded anyway: 0, nothing caught */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    CHECK(!weft_scope_cancelled_caught(&s));

    /* a positive result passes through */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_scope_exit(&s, 42), 42);

    /* -ECANCELED from a scope that was never cancelled is not caught */
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), -ECANCELED);
    CHECK(!weft_scope_cancelled_caught(&s));

    /* not cancelled, error: unchanged */
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_EQ(weft_scope_exit(&s, -ENOENT), -ENOENT);
    return 0;
}

static void test_scope_exit_returns_other_rc_unchanged(void **state)
{
    run_in_loop(exit_unchanged_main, NULL);
}

/* ---- fail_after, move_on_after ---- */

static int fail_after_main(void *arg)
{
    weft_scope s;

    /* the deadline caused it: -ETIMEDOUT */
    weft_time t0 = weft_now();
    weft_fail_after(&s, 10 * WEFT_MSEC);
    CHECK_GE(weft_scope_deadline(&s), t0 + 10 * WEFT_MSEC);
    int rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_GE(weft_now() - t0, 10 * WEFT_MSEC);
    CHECK_EQ(weft_scope_exit(&s, rc), -ETIMEDOUT);
    CHECK(weft_scope_cancelled_caught(&s));

    /* weft_scope_cancel caused it: caught, 0 */
    weft_fail_after(&s, 10 * WEFT_SEC);
    weft_scope_cancel(&s);
    rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    CHECK(weft_scope_cancelled_caught(&s));

    /* deadline passed but the body never saw it: nothing to report */
    weft_fail_after(&s, -1);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);

    /* deadline not reached: plain exit */
    weft_fail_after(&s, 10 * WEFT_SEC);
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    CHECK(!weft_scope_cancelled_caught(&s));
    return 0;
}

static void test_fail_after_gives_etimedout_only_for_its_deadline(void **state)
{
    run_in_loop(fail_after_main, NULL);
}

static int move_on_main(void *arg)
{
    weft_scope s;

    weft_time t0 = weft_now();
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    weft_time d = weft_scope_deadline(&s);
    CHECK_GE(d, t0 + 10 * WEFT_MSEC);
    CHECK_LE(d, weft_now() + 10 * WEFT_MSEC + WEFT_SEC); /* sane */
    int rc = weft_sleep(10 * WEFT_SEC);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_GE(weft_now(), d);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    CHECK_EQ(weft_checkpoint(), 0);

    /* finishing in time: nothing caught */
    weft_move_on_after(&s, 10 * WEFT_SEC);
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    CHECK(!weft_scope_cancelled_caught(&s));
    CHECK(!weft_scope_cancel_called(&s));

    /* a delay so long that now + delay overflows: no deadline, no wrap */
    weft_move_on_after(&s, WEFT_FOREVER);
    CHECK_GT(weft_scope_deadline(&s), weft_now());
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    return 0;
}

static void test_move_on_after_catches_its_deadline(void **state)
{
    run_in_loop(move_on_main, NULL);
}

static int getters_main(void *arg)
{
    weft_scope s;
    weft_time d = weft_now() + 10 * WEFT_SEC;

    weft_scope_enter(&s, d);
    CHECK_EQ(weft_scope_deadline(&s), d);
    CHECK(!weft_scope_shield(&s));
    CHECK(!weft_scope_cancel_called(&s));
    CHECK(!weft_scope_cancelled_caught(&s));
    weft_scope_set_shield(&s, true);
    CHECK(weft_scope_shield(&s));
    weft_scope_set_shield(&s, false);
    CHECK(!weft_scope_shield(&s));
    weft_scope_set_deadline(&s, d + WEFT_SEC);
    CHECK_EQ(weft_scope_deadline(&s), d + WEFT_SEC);
    weft_scope_set_deadline(&s, WEFT_FOREVER);
    CHECK_EQ(weft_scope_deadline(&s), WEFT_FOREVER);
    CHECK_EQ(weft_checkpoint(), 0);
    weft_scope_cancel(&s);
    CHECK(weft_scope_cancel_called(&s));
    weft_scope_cancel(&s); /* twice is fine */
    CHECK(weft_scope_cancel_called(&s));
    CHECK_EQ(weft_scope_exit(&s, weft_checkpoint()), 0);
    CHECK(weft_scope_cancel_called(&s)); /* still readable after exit */
    CHECK(weft_scope_cancelled_caught(&s));

    /* a scope with no deadline */
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_EQ(weft_scope_deadline(&s), WEFT_FOREVER);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);

    /* cancelled by its deadline: cancel_called once it was seen */
    weft_move_on_after(&s, WEFT_MSEC);
    CHECK_EQ(weft_sleep_forever(), -ECANCELED);
    CHECK(weft_scope_cancel_called(&s));
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    return 0;
}

static void test_scope_getters(void **state)
{
    run_in_loop(getters_main, NULL);
}

/* ---- shields ---- */

static int shield_hides_main(void *arg)
{
    weft_scope outer, inner;

    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_set_shield(&inner, true);
    weft_time t0 = weft_now();
    CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
    CHECK_GE(weft_now() - t0, 5 * WEFT_MSEC);
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_checkpoint_if_cancelled(), 0);
    CHECK_EQ(th_nop(), 0);
    CHECK_EQ(weft_scope_exit(&inner, 0), 0);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&outer, -ECANCELED), 0);

    /* the same with the outer cancelled by its deadline while shielded */
    weft_move_on_after(&outer, WEFT_MSEC);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_set_shield(&inner, true);
    CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&inner, 0), 0);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&outer, -ECANCELED), 0);
    return 0;
}

static void test_shield_hides_outer_cancel(void **state)
{
    run_in_loop(shield_hides_main, NULL);
}

static int shield_own_main(void *arg)
{
    weft_scope outer, inner;

    /* the shield's own deadline */
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    weft_scope_enter(&inner, weft_now() + 10 * WEFT_MSEC);
    weft_scope_set_shield(&inner, true);
    int rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    /* caught by the shield: the outer cancel is not visible from it */
    CHECK_EQ(weft_scope_exit(&inner, rc), 0);
    CHECK(weft_scope_cancelled_caught(&inner));
    rc = weft_checkpoint();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&outer, rc), 0);
    CHECK(weft_scope_cancelled_caught(&outer));

    /* the shield's own weft_scope_cancel */
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_set_shield(&inner, true);
    CHECK_EQ(weft_checkpoint(), 0);
    weft_scope_cancel(&inner);
    rc = weft_checkpoint();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&inner, rc), 0);
    CHECK_EQ(weft_scope_exit(&outer, weft_checkpoint()), 0);
    return 0;
}

static void test_shield_own_cancel_still_acts(void **state)
{
    run_in_loop(shield_own_main, NULL);
}

struct unshield {
    weft_scope *outer, *inner;
    bool blocked, woke;
    int sleep_rc, inner_rc, outer_rc;
    bool inner_caught, outer_caught;
};

static int unshield_victim(void *arg)
{
    struct unshield *u = arg;
    weft_scope outer, inner;

    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_set_shield(&inner, true);
    u->outer = &outer;
    u->inner = &inner;
    u->blocked = true;
    u->sleep_rc = weft_sleep_forever();
    u->woke = true;
    u->inner_rc = weft_scope_exit(&inner, u->sleep_rc);
    u->inner_caught = weft_scope_cancelled_caught(&inner);
    u->outer_rc = weft_scope_exit(&outer, u->inner_rc);
    u->outer_caught = weft_scope_cancelled_caught(&outer);
    u->outer = u->inner = NULL;
    return u->outer_rc;
}

static int unshield_main(void *arg)
{
    struct unshield u;
    weft_group g;

    memset(&u, 0, sizeof u);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, unshield_victim, &u), 0);
    if (th_wait_flag(&u.blocked)) {
        weft_scope_cancel(u.outer);
        th_settle();
        CHECK(!u.woke); /* the shield hides the outer cancel */
        if (!u.woke)
            weft_scope_set_shield(u.inner, false);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(u.woke);
    CHECK_EQ(u.sleep_rc, -ECANCELED);
    /* the inner scope was not cancelled itself, and the outer cancel is
     * visible from it now: not caught there */
    CHECK_EQ(u.inner_rc, -ECANCELED);
    CHECK(!u.inner_caught);
    CHECK_EQ(u.outer_rc, 0);
    CHECK(u.outer_caught);
    return 0;
}

static void test_unshield_wakes_task_blocked_inside(void **state)
{
    run_in_loop(unshield_main, NULL);
}

/* Shielding a scope while its task waits, after the outer cancel arrived:
 * a wait that already returned -ECANCELED is not undone, but the next one
 * is shielded. */
static int shield_later_main(void *arg)
{
    weft_scope outer, inner;

    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    CHECK_EQ(weft_checkpoint(), -ECANCELED);
    weft_scope_set_shield(&inner, true);
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&inner, 0), 0);
    CHECK_EQ(weft_scope_exit(&outer, weft_checkpoint()), 0);
    return 0;
}

static void test_shield_set_after_outer_cancel_protects(void **state)
{
    run_in_loop(shield_later_main, NULL);
}

/* ---- nested scopes: which one catches ---- */

static int nested_main(void *arg)
{
    weft_scope outer, inner;
    int rc;

    /* both cancelled: the outer one catches */
    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_cancel(&outer);
    weft_scope_cancel(&inner);
    rc = weft_checkpoint();
    CHECK_EQ(rc, -ECANCELED);
    rc = weft_scope_exit(&inner, rc);
    CHECK_EQ(rc, -ECANCELED);
    CHECK(!weft_scope_cancelled_caught(&inner));
    rc = weft_scope_exit(&outer, rc);
    CHECK_EQ(rc, 0);
    CHECK(weft_scope_cancelled_caught(&outer));

    /* only the outer cancelled (by its deadline): the inner passes it on */
    weft_scope_enter(&outer, weft_now() + 5 * WEFT_MSEC);
    weft_scope_enter(&inner, WEFT_FOREVER);
    rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    rc = weft_scope_exit(&inner, rc);
    CHECK_EQ(rc, -ECANCELED);
    CHECK(!weft_scope_cancelled_caught(&inner));
    CHECK_EQ(weft_scope_exit(&outer, rc), 0);
    CHECK(weft_scope_cancelled_caught(&outer));

    /* only the inner cancelled: it catches, the outer goes on unharmed */
    weft_scope_enter(&outer, weft_now() + 10 * WEFT_SEC);
    weft_scope_enter(&inner, weft_now() + 5 * WEFT_MSEC);
    rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&inner, rc), 0);
    CHECK(weft_scope_cancelled_caught(&inner));
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&outer, 0), 0);
    CHECK(!weft_scope_cancelled_caught(&outer));
    CHECK(!weft_scope_cancel_called(&outer));

    /* three levels, the middle one cancelled */
    weft_scope a, b, c;
    weft_scope_enter(&a, WEFT_FOREVER);
    weft_scope_enter(&b, WEFT_FOREVER);
    weft_scope_enter(&c, WEFT_FOREVER);
    weft_scope_cancel(&b);
    rc = weft_checkpoint();
    CHECK_EQ(rc, -ECANCELED);
    rc = weft_scope_exit(&c, rc);
    CHECK_EQ(rc, -ECANCELED);
    rc = weft_scope_exit(&b, rc);
    CHECK_EQ(rc, 0);
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_scope_exit(&a, 0), 0);
    return 0;
}

static void test_nested_cancelled_scopes_outer_catches(void **state)
{
    run_in_loop(nested_main, NULL);
}

/* ---- moving a deadline while a task waits ---- */

struct mover {
    weft_scope *scope;
    weft_time first_deadline;
    bool blocked, woke;
    int rc;
    weft_time woke_at;
};

static int mover_victim(void *arg)
{
    struct mover *m = arg;
    weft_scope s;

    weft_scope_enter(&s, m->first_deadline);
    m->scope = &s;
    m->blocked = true;
    m->rc = weft_sleep_forever();
    m->woke_at = weft_now();
    m->woke = true;
    m->scope = NULL;
    return weft_scope_exit(&s, m->rc);
}

static int deadline_earlier_main(void *arg)
{
    struct mover m;
    weft_group g;
    weft_time d = 0;

    memset(&m, 0, sizeof m);
    m.first_deadline = WEFT_FOREVER;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, mover_victim, &m), 0);
    if (th_wait_flag(&m.blocked)) {
        d = weft_now() + 5 * WEFT_MSEC;
        weft_scope_set_deadline(m.scope, d);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(m.woke);
    CHECK_EQ(m.rc, -ECANCELED);
    CHECK_GE(m.woke_at, d);

    /* moved into the past: wakes at the next round */
    memset(&m, 0, sizeof m);
    m.first_deadline = WEFT_FOREVER;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, mover_victim, &m), 0);
    if (th_wait_flag(&m.blocked))
        weft_scope_set_deadline(m.scope, weft_now() - WEFT_SEC);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(m.rc, -ECANCELED);
    return 0;
}

static void test_set_deadline_earlier_wakes_sleeper(void **state)
{
    run_in_loop(deadline_earlier_main, NULL);
}

static int deadline_later_main(void *arg)
{
    struct mover m;
    weft_group g;
    weft_time d2 = 0;

    memset(&m, 0, sizeof m);
    m.first_deadline = weft_now() + 200 * WEFT_MSEC;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, mover_victim, &m), 0);
    if (th_wait_flag(&m.blocked)) {
        /* The victim blocked one round ago: on the virtual clock no
         * time has passed. */
        if (CHECK(!m.woke)) {
            d2 = weft_now() + 400 * WEFT_MSEC;
            weft_scope_set_deadline(m.scope, d2);
        }
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(m.woke);
    CHECK_EQ(m.rc, -ECANCELED);
    CHECK_EQ(m.woke_at, d2); /* virtual: exact */

    /* moved to no deadline at all: the task sleeps until cancelled */
    memset(&m, 0, sizeof m);
    m.first_deadline = weft_now() + 200 * WEFT_MSEC;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, mover_victim, &m), 0);
    if (th_wait_flag(&m.blocked) && CHECK(!m.woke)) {
        weft_scope_set_deadline(m.scope, WEFT_FOREVER);
        /* past the old deadline: its timer must not fire */
        CHECK_EQ(weft_sleep(300 * WEFT_MSEC), 0);
        CHECK(!m.woke);
        CHECK_EQ(weft_now(), m.first_deadline + 100 * WEFT_MSEC);
        if (m.scope)
            weft_scope_cancel(m.scope);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(m.rc, -ECANCELED);
    return 0;
}

static void test_set_deadline_later_delays_cancel(void **state)
{
    run_in_virtual_loop(deadline_later_main, NULL);
}

/* ---- cancel from another task, before and after the victim blocks ---- */

struct victim {
    weft_scope *scope;
    bool entered, blocked;
    int first_rc, sleep_rc, exit_rc;
};

static int victim_before(void *arg)
{
    struct victim *v = arg;
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    v->scope = &s;
    v->entered = true;
    /* yield without being cancellable: the other task cancels now */
    v->first_rc = weft_cancel_shielded_checkpoint();
    while (!weft_scope_cancel_called(&s) &&
           weft_cancel_shielded_checkpoint() == 0) {
    }
    v->blocked = true;
    v->sleep_rc = weft_sleep(10 * WEFT_SEC);
    v->scope = NULL;
    v->exit_rc = weft_scope_exit(&s, v->sleep_rc);
    return v->exit_rc;
}

static int victim_after(void *arg)
{
    struct victim *v = arg;
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    v->scope = &s;
    v->entered = true;
    v->blocked = true;
    v->sleep_rc = weft_sleep(10 * WEFT_SEC);
    v->scope = NULL;
    v->exit_rc = weft_scope_exit(&s, v->sleep_rc);
    return v->exit_rc;
}

static int cancel_other_main(void *arg)
{
    struct victim v;
    weft_group g;

    /* before the victim blocks */
    memset(&v, 0, sizeof v);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, victim_before, &v), 0);
    if (th_wait_flag(&v.entered)) {
        CHECK(!v.blocked);
        weft_scope_cancel(v.scope);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(v.first_rc, 0);
    CHECK_EQ(v.sleep_rc, -ECANCELED);
    CHECK_EQ(v.exit_rc, 0);

    /* after the victim blocked */
    memset(&v, 0, sizeof v);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, victim_after, &v), 0);
    if (th_wait_flag(&v.blocked)) {
        th_settle();
        CHECK(v.scope != NULL); /* still asleep */
        if (v.scope)
            weft_scope_cancel(v.scope);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(v.sleep_rc, -ECANCELED);
    CHECK_EQ(v.exit_rc, 0);
    return 0;
}

static void test_scope_cancel_from_another_task(void **state)
{
    run_in_loop(cancel_other_main, NULL);
}

/* ---- cancel after exit ---- */

static int after_exit_main(void *arg)
{
    weft_scope outer, s;

    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&s, WEFT_FOREVER);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    weft_scope_cancel(&s);
    CHECK(!weft_scope_cancel_called(&s));
    CHECK(!weft_scope_cancelled_caught(&s));
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK(!weft_scope_cancel_called(&outer));
    CHECK_EQ(weft_scope_exit(&outer, 0), 0);

    /* a scope exited after being cancelled: cancelling again is a no-op */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_scope_exit(&s, weft_checkpoint()), 0);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_checkpoint(), 0);

    /* an exited scope's deadline, had it fired, does nothing either */
    weft_scope_enter(&s, weft_now() + 2 * WEFT_MSEC);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0);
    CHECK_EQ(weft_checkpoint(), 0);
    return 0;
}

static void test_scope_cancel_after_exit_does_nothing(void **state)
{
    run_in_loop(after_exit_main, NULL);
}

/* ---- the effective deadline ---- */

struct eff {
    weft_time expect;
    weft_time seen;
};

static int eff_child(void *arg)
{
    struct eff *e = arg;
    e->seen = weft_current_effective_deadline();
    return 0;
}

static int effective_main(void *arg)
{
    weft_scope a, b, sh;
    weft_time now = weft_now();
    weft_time d1 = now + 10 * WEFT_SEC, d2 = now + 20 * WEFT_SEC;

    CHECK_EQ(weft_current_effective_deadline(), WEFT_FOREVER);
    weft_scope_enter(&a, d2);
    CHECK_EQ(weft_current_effective_deadline(), d2);
    weft_scope_enter(&b, d1);
    CHECK_EQ(weft_current_effective_deadline(), d1);
    CHECK_EQ(weft_scope_exit(&b, 0), 0);
    weft_scope_enter(&b, WEFT_FOREVER);
    CHECK_EQ(weft_current_effective_deadline(), d2);
    weft_scope_set_deadline(&b, d1);
    CHECK_EQ(weft_current_effective_deadline(), d1);

    /* a shield stops the search */
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_scope_set_shield(&sh, true);
    CHECK_EQ(weft_current_effective_deadline(), WEFT_FOREVER);
    weft_scope_set_deadline(&sh, d2 + WEFT_SEC);
    CHECK_EQ(weft_current_effective_deadline(), d2 + WEFT_SEC);
    CHECK_EQ(weft_scope_exit(&sh, 0), 0);
    CHECK_EQ(weft_current_effective_deadline(), d1);

    /* a child in a group inside these scopes sees them too */
    struct eff e = {d1, 0};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, eff_child, &e), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(e.seen, d1);

    /* cancelled: in the past */
    weft_scope_cancel(&a);
    CHECK_LT(weft_current_effective_deadline(), weft_now());
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_scope_set_shield(&sh, true);
    CHECK_EQ(weft_current_effective_deadline(), WEFT_FOREVER);
    CHECK_EQ(weft_scope_exit(&sh, 0), 0);
    CHECK_EQ(weft_scope_exit(&b, weft_checkpoint()), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&a, -ECANCELED), 0);
    CHECK_EQ(weft_current_effective_deadline(), WEFT_FOREVER);

    /* a passed deadline is in the past too */
    weft_scope_enter(&a, weft_now() - WEFT_MSEC);
    CHECK_LT(weft_current_effective_deadline(), weft_now());
    CHECK_EQ(weft_scope_exit(&a, weft_checkpoint()), 0);
    return 0;
}

static void test_current_effective_deadline(void **state)
{
    run_in_loop(effective_main, NULL);
}

/* ---- misuse aborts loudly ---- */

static int out_of_order_main(void *arg)
{
    weft_scope a, b;

    weft_scope_enter(&a, WEFT_FOREVER);
    weft_scope_enter(&b, WEFT_FOREVER);
    weft_scope_exit(&a, 0); /* wrong: b is still open */
    fprintf(stderr, "TEST: survived an out-of-order exit\n");
    weft_scope_exit(&b, 0);
    return 0;
}

static void out_of_order_child(void *arg)
{
    weft_run(out_of_order_main, NULL, NULL);
    fprintf(stderr, "TEST: weft_run returned\n");
    _exit(20);
}

static void test_scope_exit_out_of_order_aborts(void **state)
{
    struct th_child c;

    th_run_child(out_of_order_child, NULL, &c);
    if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT) {
        th_child_dump(&c);
        fail_msg("expected death by SIGABRT");
    }
    if (!strcasestr(c.err, "out of order")) {
        th_child_dump(&c);
        fail_msg("stderr does not say \"out of order\"");
    }
}

/*
 * Entering a scope that is entered already (and not exited) would make it
 * its own ancestor: it aborts, saying so. The same scope twice, a scope
 * entered again from inside a scope nested in it, the deadline sugar on
 * an entered scope, and a group entered twice.
 */
enum reenter {
    REENTER_SAME,
    REENTER_OUTER,
    REENTER_MOVE_ON_AFTER,
    REENTER_GROUP
};

static int reenter_main(void *arg)
{
    enum reenter how = *(enum reenter *)arg;
    weft_scope s, inner;
    weft_group g;

    switch (how) {
    case REENTER_SAME:
        weft_scope_enter(&s, WEFT_FOREVER);
        weft_scope_enter(&s, WEFT_FOREVER);
        break;
    case REENTER_OUTER:
        weft_scope_enter(&s, WEFT_FOREVER);
        weft_scope_enter(&inner, WEFT_FOREVER);
        weft_scope_enter(&s, WEFT_FOREVER);
        break;
    case REENTER_MOVE_ON_AFTER:
        weft_scope_enter(&s, WEFT_FOREVER);
        weft_move_on_after(&s, WEFT_SEC);
        break;
    case REENTER_GROUP:
        weft_group_enter(&g);
        weft_group_enter(&g);
        break;
    }
    fprintf(stderr, "TEST: survived entering an entered scope\n");
    _exit(21); /* the scopes are in no state to go on */
}

static void reenter_child(void *arg)
{
    weft_run(reenter_main, arg, NULL);
    fprintf(stderr, "TEST: weft_run returned\n");
    _exit(20);
}

static void expect_reenter_abort(enum reenter how)
{
    struct th_child c;

    th_run_child(reenter_child, &how, &c);
    if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT) {
        th_child_dump(&c);
        fail_msg("case %d: expected death by SIGABRT", (int)how);
    }
    if (!strcasestr(c.err, "already entered")) {
        th_child_dump(&c);
        fail_msg("case %d: stderr does not say \"already entered\"", (int)how);
    }
}

static void test_scope_enter_of_entered_scope_aborts(void **state)
{
    expect_reenter_abort(REENTER_SAME);
    expect_reenter_abort(REENTER_OUTER);
    expect_reenter_abort(REENTER_MOVE_ON_AFTER);
}

static void test_group_enter_of_entered_group_aborts(void **state)
{
    expect_reenter_abort(REENTER_GROUP);
}

struct foreign {
    weft_scope *s;
};

static int foreign_child(void *arg)
{
    struct foreign *f = arg;
    weft_scope_exit(f->s, 0); /* wrong: entered by another task */
    fprintf(stderr, "TEST: survived exiting another task's scope\n");
    return 0;
}

static int foreign_main(void *arg)
{
    weft_scope s;
    weft_group g;
    struct foreign f = {&s};

    weft_group_enter(&g);
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_group_spawn(&g, foreign_child, &f);
    weft_sleep(WEFT_SEC);
    weft_scope_exit(&s, 0);
    return weft_group_exit(&g, 0);
}

static void foreign_exit_child(void *arg)
{
    weft_run(foreign_main, NULL, NULL);
    fprintf(stderr, "TEST: weft_run returned\n");
    _exit(20);
}

static void test_scope_exit_from_another_task_aborts(void **state)
{
    struct th_child c;

    th_run_child(foreign_exit_child, NULL, &c);
    if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT) {
        th_child_dump(&c);
        fail_msg("expected death by SIGABRT");
    }
    if (!strcasestr(c.err, "scope")) {
        th_child_dump(&c);
        fail_msg("stderr does not name the scope rule");
    }
}

/* ---- io_uring operations under cancellation: no data lost ---- */

static const char msg[] = "no byte of this may be lost";

static int read_deadline_main(void *arg)
{
    static char stale[64]; /* the cancelled read's buffer: must stay as is */
    char buf[64];
    int p[2];
    weft_scope s;

    if (!th_pipe(p))
        return -EIO;
    memset(stale, 0xAA, sizeof stale);
    weft_time t0 = weft_now();
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    int rc = th_read(p[0], stale, sizeof stale);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_GE(weft_now() - t0, 20 * WEFT_MSEC);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    CHECK(weft_scope_cancelled_caught(&s));

    /* The kernel is done with the cancelled read: the data written now
     * all goes to the next read, none to the old buffer. */
    CHECK_EQ(write(p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    memset(buf, 0, sizeof buf);
    rc = th_read(p[0], buf, sizeof buf);
    CHECK_EQ(rc, (int)sizeof msg);
    CHECK_STR_EQ(buf, msg);
    for (size_t i = 0; i < sizeof stale; i++)
        if (!CHECK_EQ((unsigned char)stale[i], 0xAA))
            break;
    CHECK_EQ(th_pipe_pending(p[0]), 0);
    th_close_pipe(p);
    return 0;
}

static void test_cancelled_read_loses_no_data(void **state)
{
    run_in_loop(read_deadline_main, NULL);
}

/*
 * A read that completes in the same round as its scope's cancel.
 * The canceller's NOP is queued before the reader's read, and the pipe
 * already holds the data, so both complete at submission, in that order:
 * when the canceller resumes and cancels the reader's scope, the read has
 * already finished. Its result must be returned (and the next checkpoint
 * report the cancel): replacing it with -ECANCELED would lose the bytes.
 */
struct race {
    int p[2];
    weft_scope *scope;
    bool reader_in;
    int canceller_first; /* the canceller ran before the reader resumed */
    int read_rc, next_rc, exit_rc;
    char buf[64];
    bool write_then_yield;
};

static int race_canceller(void *arg)
{
    struct race *r = arg;

    CHECK_EQ(th_nop(), 0);
    if (!r->reader_in) {
        CHECK(r->reader_in);
        return 0;
    }
    if (r->scope) {
        r->canceller_first = 1;
        weft_scope_cancel(r->scope);
    }
    return 0;
}

static int race_reader(void *arg)
{
    struct race *r = arg;
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    r->scope = &s;
    r->reader_in = true;
    r->read_rc = th_read(r->p[0], r->buf, sizeof r->buf);
    r->scope = NULL;
    r->next_rc = r->read_rc >= 0 ? weft_checkpoint() : r->read_rc;
    r->exit_rc = weft_scope_exit(&s, r->next_rc);
    return 0;
}

/* The other order: the reader blocks on an empty pipe; one task then
 * writes and cancels in the same turn. Either the read got the bytes or
 * it was cancelled and they are still in the pipe. */
static int race_writer(void *arg)
{
    struct race *r = arg;

    if (!CHECK(r->reader_in && r->scope))
        return 0;
    CHECK_EQ(write(r->p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    /* Optionally give the kernel a round to finish the read first: the
     * cancel then finds it completed (or the reader already resumed). */
    if (r->write_then_yield)
        CHECK_EQ(th_nop(), 0);
    if (r->scope)
        weft_scope_cancel(r->scope);
    return 0;
}

static int race_main(void *arg)
{
    struct race r;
    weft_group g;

    memset(&r, 0, sizeof r);
    if (!th_pipe(r.p))
        return -EIO;

    /* data first: the completed read's result is returned */
    CHECK_EQ(write(r.p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, race_canceller, &r), 0);
    CHECK_EQ(weft_group_spawn(&g, race_reader, &r), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    print_message("completed-read race: canceller ran first: %d\n",
                  r.canceller_first);
    /* Where the kernel reads a pipe at submission (pipes read without
     * blocking: 6.18 here), the read had completed before the cancel, so
     * its bytes are the answer. Where it does not (6.1: a pipe read goes
     * through a poll and io-wq), the cancel may win; then the bytes must
     * still be in the pipe. Either way nothing is lost. */
    if (r.read_rc == -ECANCELED) {
        print_message("the cancel won: the kernel did not read the pipe "
                      "at submission\n");
        char buf[64] = {0};
        CHECK_EQ(th_pipe_pending(r.p[0]), (int)sizeof msg);
        CHECK_EQ(read(r.p[0], buf, sizeof buf), (ssize_t)sizeof msg);
        CHECK_STR_EQ(buf, msg);
    } else {
        CHECK_EQ(r.read_rc, (int)sizeof msg);
        CHECK_STR_EQ(r.buf, msg);
        if (r.canceller_first)
            CHECK_EQ(r.next_rc, -ECANCELED); /* the cancel is reported next */
    }
    CHECK_EQ(r.exit_rc, 0);
    CHECK_EQ(th_pipe_pending(r.p[0]), 0);

    /* write and cancel in the same turn, the read already waiting */
    memset(r.buf, 0, sizeof r.buf);
    r.reader_in = false;
    r.scope = NULL;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, race_reader, &r), 0);
    if (th_wait_flag(&r.reader_in)) {
        th_settle(); /* the read is in the kernel */
        CHECK_EQ(weft_group_spawn(&g, race_writer, &r), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    print_message("write-and-cancel race: read gave %d\n", r.read_rc);
    if (r.read_rc >= 0) {
        CHECK_EQ(r.read_rc, (int)sizeof msg);
        CHECK_STR_EQ(r.buf, msg);
        CHECK_EQ(r.next_rc, -ECANCELED);
        CHECK_EQ(th_pipe_pending(r.p[0]), 0);
    } else {
        CHECK_EQ(r.read_rc, -ECANCELED);
        char buf[64] = {0};
        CHECK_EQ(th_pipe_pending(r.p[0]), (int)sizeof msg);
        CHECK_EQ(read(r.p[0], buf, sizeof buf), (ssize_t)sizeof msg);
        CHECK_STR_EQ(buf, msg);
    }
    CHECK_EQ(r.exit_rc, 0);
    th_close_pipe(r.p);
    return 0;
}

static void test_completed_result_is_never_replaced_by_cancel(void **state)
{
    run_in_loop(race_main, NULL);
}

/* Many rounds of the second race (and of a variant where the writer
 * yields once between its write and its cancel), to hit both outcomes. */
static int race_many_main(void *arg)
{
    int outcomes[2] = {0, 0};

    for (int i = 0; i < 200; i++) {
        struct race r;
        weft_group g;

        memset(&r, 0, sizeof r);
        r.write_then_yield = i & 1;
        if (!th_pipe(r.p))
            return -EIO;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, race_reader, &r), 0);
        if (th_wait_flag(&r.reader_in)) {
            for (int k = 0; k < i % 4; k++)
                CHECK_EQ(weft_checkpoint(), 0);
            CHECK_EQ(weft_group_spawn(&g, race_writer, &r), 0);
        }
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        if (r.read_rc >= 0) {
            outcomes[0]++;
            if (!CHECK_EQ(r.read_rc, (int)sizeof msg) ||
                !CHECK_STR_EQ(r.buf, msg))
                break;
            CHECK_EQ(th_pipe_pending(r.p[0]), 0);
        } else {
            outcomes[1]++;
            if (!CHECK_EQ(r.read_rc, -ECANCELED) ||
                !CHECK_EQ(th_pipe_pending(r.p[0]), (int)sizeof msg))
                break;
        }
        CHECK_EQ(r.exit_rc, 0);
        th_close_pipe(r.p);
    }
    print_message("read won %d times, cancel won %d times\n", outcomes[0],
                  outcomes[1]);
    return 0;
}

static void test_read_cancel_race_loses_no_data(void **state)
{
    run_in_loop(race_many_main, NULL);
}

/* ---- in-flight kernel operations and scope changes ---- */

struct inflight {
    int p[2];
    weft_scope *outer, *inner;
    bool in;
    int rc, exit_rc;
    char buf[32];
    int mode; /* 0: inner shielded (unshield test), 1: plain (deadline) */
};

static int inflight_reader(void *arg)
{
    struct inflight *f = arg;
    weft_scope outer, inner;

    weft_scope_enter(&outer, WEFT_FOREVER);
    weft_scope_enter(&inner, WEFT_FOREVER);
    if (f->mode == 0)
        weft_scope_set_shield(&inner, true);
    f->outer = &outer;
    f->inner = &inner;
    f->in = true;
    f->rc = th_read(f->p[0], f->buf, sizeof f->buf);
    f->outer = f->inner = NULL;
    int rc = weft_scope_exit(&inner, f->rc);
    f->exit_rc = weft_scope_exit(&outer, rc);
    return f->exit_rc;
}

static int inflight_main(void *arg)
{
    struct inflight f;
    weft_group g;

    /* unshielding while the outer scope is cancelled: the read in the
     * kernel is cancelled */
    memset(&f, 0, sizeof f);
    if (!th_pipe(f.p))
        return -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, inflight_reader, &f), 0);
    if (th_wait_flag(&f.in)) {
        th_settle();
        weft_scope_cancel(f.outer);
        th_settle();
        CHECK(f.inner != NULL); /* shielded: still reading */
        if (f.inner)
            weft_scope_set_shield(f.inner, false);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(f.rc, -ECANCELED);
    CHECK_EQ(f.exit_rc, 0);
    CHECK_EQ(write(f.p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    th_settle();
    CHECK_EQ(th_pipe_pending(f.p[0]), (int)sizeof msg); /* nothing taken */
    th_close_pipe(f.p);

    /* moving a deadline into the past cancels the read in the kernel */
    memset(&f, 0, sizeof f);
    f.mode = 1;
    if (!th_pipe(f.p))
        return -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, inflight_reader, &f), 0);
    if (th_wait_flag(&f.in)) {
        th_settle();
        if (CHECK(f.inner != NULL))
            weft_scope_set_deadline(f.inner, weft_now() + WEFT_MSEC);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(f.rc, -ECANCELED);
    CHECK_EQ(f.exit_rc, 0);
    CHECK_EQ(write(f.p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    th_settle();
    CHECK_EQ(th_pipe_pending(f.p[0]), (int)sizeof msg);
    th_close_pipe(f.p);
    return 0;
}

static void test_scope_changes_cancel_inflight_reads(void **state)
{
    run_in_loop(inflight_main, NULL);
}

/* ---- many scopes with deadlines: the timer heap under churn ---- */

#define MANY_SCOPES 2000

struct many_scopes {
    int expired_ok, kept_ok;
};

static int scoped_task(void *arg)
{
    struct many_scopes *m = ((void **)arg)[0];
    uintptr_t i = (uintptr_t)((void **)arg)[1];
    weft_scope a, b;

    /* deadlines of 1..50 ms, in a scrambled order */
    weft_time d = (weft_time)(1 + (i * 7919) % 50) * WEFT_MSEC;
    if (i % 2) {
        /* expires */
        weft_move_on_after(&a, d);
        int rc = weft_sleep_forever();
        int ex = weft_scope_exit(&a, rc);
        if (CHECK_EQ(rc, -ECANCELED) && CHECK_EQ(ex, 0))
            m->expired_ok++;
        return 0;
    }
    /* exits first: the timers are removed from the heap, never fire */
    weft_move_on_after(&a, 10 * WEFT_SEC + d);
    weft_move_on_after(&b, 20 * WEFT_SEC - d);
    int rc = weft_sleep(d / 10);
    rc = weft_scope_exit(&b, rc);
    int ex = weft_scope_exit(&a, rc);
    if (CHECK_EQ(rc, 0) && CHECK_EQ(ex, 0) &&
        CHECK(!weft_scope_cancel_called(&b)))
        m->kept_ok++;
    return 0;
}

static int many_scopes_main(void *arg)
{
    struct many_scopes *m = arg;
    void *(*args)[2] = calloc(MANY_SCOPES, sizeof *args);
    weft_group g;

    if (!CHECK(args != NULL))
        return -ENOMEM;
    weft_group_enter(&g);
    for (uintptr_t i = 0; i < MANY_SCOPES; i++) {
        args[i][0] = m;
        args[i][1] = (void *)i;
        if (!CHECK_EQ(weft_group_spawn(&g, scoped_task, args[i]), 0))
            break;
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    free(args);
    return 0;
}

static void test_many_scopes_with_deadlines(void **state)
{
    struct many_scopes m = {0, 0};

    run_in_virtual_loop(many_scopes_main, &m);
    assert_int_equal(m.expired_ok, MANY_SCOPES / 2);
    assert_int_equal(m.kept_ok, MANY_SCOPES / 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scope_past_deadline_cancels_at_first_checkpoint),
    cmocka_unit_test(test_scope_cancel_is_level_triggered),
    cmocka_unit_test(test_scope_exit_catches_own_cancel),
    cmocka_unit_test(test_scope_exit_returns_other_rc_unchanged),
    cmocka_unit_test(test_fail_after_gives_etimedout_only_for_its_deadline),
    cmocka_unit_test(test_move_on_after_catches_its_deadline),
    cmocka_unit_test(test_scope_getters),
    cmocka_unit_test(test_shield_hides_outer_cancel),
    cmocka_unit_test(test_shield_own_cancel_still_acts),
    cmocka_unit_test(test_unshield_wakes_task_blocked_inside),
    cmocka_unit_test(test_shield_set_after_outer_cancel_protects),
    cmocka_unit_test(test_nested_cancelled_scopes_outer_catches),
    cmocka_unit_test(test_set_deadline_earlier_wakes_sleeper),
    cmocka_unit_test(test_set_deadline_later_delays_cancel),
    cmocka_unit_test(test_scope_cancel_from_another_task),
    cmocka_unit_test(test_scope_cancel_after_exit_does_nothing),
    cmocka_unit_test(test_current_effective_deadline),
    cmocka_unit_test(test_scope_exit_out_of_order_aborts),
    cmocka_unit_test(test_scope_exit_from_another_task_aborts),
    cmocka_unit_test(test_scope_enter_of_entered_scope_aborts),
    cmocka_unit_test(test_group_enter_of_entered_group_aborts),
    cmocka_unit_test(test_cancelled_read_loses_no_data),
    cmocka_unit_test(test_completed_result_is_never_replaced_by_cancel),
    cmocka_unit_test(test_read_cancel_race_loses_no_data),
    cmocka_unit_test(test_scope_changes_cancel_inflight_reads),
    cmocka_unit_test(test_many_scopes_with_deadlines),
};

TH_MAIN(tests)
