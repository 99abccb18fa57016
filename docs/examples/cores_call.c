/* SPDX-License-Identifier: MIT */
/*
 * docs/examples/cores_call.c - the every-core guide's example: a loop per
 * core, a call that runs on another core, a group whose children run on
 * every core, and a cancellation that crosses cores.
 *
 * With one CPU in the affinity mask it runs on one core (ncores 1 is
 * weft_run), and the calls simply stay on core 0.
 */
#include <weft.h>

#include <errno.h>
#include <stdio.h>

/* Sum 1..n: work for one core. */
static int sum_to(void *arg)
{
    long *n = arg;
    long s = 0;
    for (long i = 1; i <= *n; i++)
        s += i;
    *n = s;
    printf("  summed on core %u\n", weft_core_id());
    return 0;
}

static int sleeper(void *arg)
{
    int *seen = arg;
    *seen = weft_sleep_forever(); /* -ECANCELED, from another core */
    return *seen;
}

static int app(void *arg)
{
    (void)arg;
    unsigned n = weft_core_count();
    printf("%u core(s); main runs on core %u\n", n, weft_core_id());

    /* 1. A call on the last core: its result comes back here. */
    long x = 1000;
    int rc = weft_core_call(n - 1, sum_to, &x);
    if (rc < 0 || x != 500500)
        return -EIO;

    /* 2. One child per core, all members of one group. */
    long parts[64];
    weft_group g;
    weft_group_enter(&g);
    for (unsigned c = 0; c < n && c < 64; c++) {
        parts[c] = 100 * (c + 1);
        weft_group_spawn_on(&g, c, sum_to, &parts[c]);
    }
    rc = weft_group_exit(&g, 0);
    if (rc < 0)
        return rc;

    /* 3. A deadline here cancels the task over there, and the call
     *    returns only once that task has ended. */
    int seen = 0;
    weft_scope s;
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    rc = weft_core_call(n - 1, sleeper, &seen);
    rc = weft_scope_exit(&s, rc);
    printf("the sleeper on core %u saw %s\n", n - 1,
           seen == -ECANCELED ? "-ECANCELED" : "something else");
    return rc == 0 && seen == -ECANCELED ? 0 : -EIO;
}

int main(void)
{
    int rc = weft_run_cores(0, app, NULL, NULL); /* 0: every CPU */
    if (rc < 0) {
        fprintf(stderr, "cores_call: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
