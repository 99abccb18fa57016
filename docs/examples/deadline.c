/* SPDX-License-Identifier: MIT */
/*
 * deadline.c - time limits: weft_move_on_after, weft_fail_after, moving a
 * deadline, and the effective deadline of nested scopes.
 *
 * weft_sleep(10 s) stands for any call that takes too long; the program
 * itself finishes in about 40 ms. Exits 0 when every result is the one
 * shown in the comments.
 */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

/* Give up after 20 ms and carry on: the scope catches its cancellation. */
static int with_move_on_after(void)
{
    weft_scope s;
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    int rc = weft_sleep(10 * WEFT_SEC); /* -ECANCELED after 20 ms */
    rc = weft_scope_exit(&s, rc);       /* caught: 0 */
    if (weft_scope_cancelled_caught(&s))
        printf("move_on_after: gave up after 20 ms, carrying on\n");
    return rc;
}

/* Fail after 20 ms: the scope turns its cancellation into -ETIMEDOUT. */
static int with_fail_after(void)
{
    weft_scope s;
    weft_fail_after(&s, 20 * WEFT_MSEC);
    int rc = weft_sleep(10 * WEFT_SEC); /* -ECANCELED after 20 ms */
    return weft_scope_exit(&s, rc);     /* -ETIMEDOUT */
}

/* A deadline that is not reached changes nothing. */
static int in_time(void)
{
    weft_scope s;
    weft_fail_after(&s, 10 * WEFT_SEC);
    int rc = weft_sleep(1 * WEFT_MSEC); /* 0 */
    return weft_scope_exit(&s, rc);     /* 0 */
}

/* Deadlines move: weft_scope_set_deadline takes effect at once. */
static int moved_later(void)
{
    weft_scope s;
    weft_move_on_after(&s, 5 * WEFT_MSEC);
    weft_scope_set_deadline(&s, WEFT_FOREVER); /* no deadline after all */
    int rc = weft_sleep(10 * WEFT_MSEC);       /* 0: nothing cancels it */
    return weft_scope_exit(&s, rc);            /* 0, nothing caught */
}

static int moved_earlier(void)
{
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_set_deadline(&s, weft_now()); /* due now */
    int rc = weft_sleep(10 * WEFT_SEC);      /* -ECANCELED at once */
    rc = weft_scope_exit(&s, rc);            /* caught: 0 */
    return weft_scope_cancelled_caught(&s) ? rc : -EPROTO;
}

/* The effective deadline is the earliest one up to the nearest shield. */
static int effective_deadline(void)
{
    weft_time t0 = weft_now();
    weft_scope outer, inner;
    int rc = 0;

    weft_scope_enter(&outer, t0 + 1 * WEFT_SEC);
    weft_scope_enter(&inner, t0 + 2 * WEFT_SEC);
    if (weft_current_effective_deadline() != t0 + 1 * WEFT_SEC)
        rc = -EPROTO; /* the outer deadline comes first */
    weft_scope_set_shield(&inner, true);
    if (weft_current_effective_deadline() != t0 + 2 * WEFT_SEC)
        rc = -EPROTO; /* the shield hides the outer one */
    rc = weft_scope_exit(&inner, rc);
    return weft_scope_exit(&outer, rc);
}

static int failures;

static void expect(const char *what, int got, int want)
{
    if (got == want)
        return;
    fprintf(stderr, "deadline: %s returned %d (%s), expected %d\n", what, got,
            weft_strerror(got), want);
    failures++;
}

static int root(void *arg)
{
    expect("with_move_on_after", with_move_on_after(), 0);
    expect("with_fail_after", with_fail_after(), -ETIMEDOUT);
    expect("in_time", in_time(), 0);
    expect("moved_later", moved_later(), 0);
    expect("moved_earlier", moved_earlier(), 0);
    expect("effective_deadline", effective_deadline(), 0);
    return failures ? -EPROTO : 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "deadline: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
