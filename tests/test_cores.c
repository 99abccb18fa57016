/* SPDX-License-Identifier: MIT */
/*
 * tests/test_cores.c - the multi-core runtime (API.md "Multi-core
 * runtime"): weft_run_cores, weft_core_call, weft_group_spawn_on.
 *
 * Tests that need two cores skip themselves, saying so, when the
 * process's affinity mask has one CPU: weft_run_cores refuses more cores
 * than CPUs (no oversubscription), so they cannot run there.
 */
#include "helpers.h"

#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <weft/core.h>

/* engine/cores.c's test hook: core k's thread "cannot be made". */
extern unsigned wf_cores_fail_thread;

static unsigned cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    return (unsigned)CPU_COUNT(&set);
}

#define NEED_CORES(n)                                                          \
    do {                                                                       \
        if (cpus() < (n)) {                                                    \
            print_message("skipped: needs %u CPUs in the affinity mask, "      \
                          "has %u (weft_run_cores does not oversubscribe)\n",  \
                          (unsigned)(n), cpus());                              \
            skip();                                                            \
        }                                                                      \
    } while (0)

static int run_cores(unsigned n, weft_fn fn, void *arg, const weft_options *o)
{
    th_reset();
    th_guard(TH_GUARD_SECONDS);
    int rc = weft_run_cores(n, fn, arg, o);
    th_guard_off();
    th_assert_clean();
    return rc;
}

static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[128];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* ---- counts and ids ---- */

static int report_core(void *arg)
{
    *(unsigned *)arg = weft_core_id();
    CHECK_EQ(weft_checkpoint(), 0);
    return 40 + (int)weft_core_id();
}

static int one_core_main(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_core_count(), 1);
    CHECK_EQ(weft_core_id(), 0);
    unsigned where = 99;
    CHECK_EQ(weft_core_call(0, report_core, &where), 40);
    CHECK_EQ(where, 0);
    CHECK_EQ(weft_core_call(1, report_core, &where), -EINVAL);
    return -EIO;
}

static void test_one_core_is_weft_run(void **state)
{
    (void)state;
    assert_rc(weft_core_count(), 0); /* outside any loop */
    assert_rc(weft_core_id(), 0);
    assert_rc(run_cores(1, one_core_main, NULL, NULL), -EIO);
    assert_rc(run_loop(one_core_main, NULL, NULL), -EIO);
}

static int two_core_main(void *arg)
{
    unsigned n = *(unsigned *)arg;
    CHECK_EQ(weft_core_count(), n);
    CHECK_EQ(weft_core_id(), 0);
    for (unsigned c = 0; c < n; c++) {
        unsigned where = 99;
        CHECK_EQ(weft_core_call(c, report_core, &where), 40 + (int)c);
        CHECK_EQ(where, c);
    }
    return 3;
}

static void test_two_cores(void **state)
{
    (void)state;
    NEED_CORES(2);
    unsigned n = 2;
    assert_rc(run_cores(2, two_core_main, &n, NULL), 3);
    n = cpus(); /* 0: every CPU of the mask */
    assert_rc(run_cores(0, two_core_main, &n, NULL), 3);
    weft_options o = {.iowq_max_workers = 2};
    n = 2;
    assert_rc(run_cores(2, two_core_main, &n, &o), 3);
}

static int out_of_range_main(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_core_call(2, report_core, NULL), -EINVAL);
    CHECK_EQ(weft_core_call(1, NULL, NULL), -EINVAL);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_on(&g, 2, report_core, NULL), -EINVAL);
    CHECK_EQ(weft_group_spawn_on(&g, 1, NULL, NULL), -EINVAL);
    CHECK_EQ(weft_group_spawn_on(NULL, 1, report_core, NULL), -EINVAL);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void test_out_of_range(void **state)
{
    (void)state;
    assert_rc(weft_core_call(0, report_core, NULL), -EPERM);
    assert_rc(weft_group_spawn_on(NULL, 0, report_core, NULL), -EPERM);
    assert_rc(weft_run_cores(cpus() + 1, one_core_main, NULL, NULL), -EINVAL);
    assert_rc(weft_run_cores(2, NULL, NULL, NULL), -EINVAL);
    NEED_CORES(2);
    assert_rc(run_cores(2, out_of_range_main, NULL, NULL), 0);
}

/* ---- starting ---- */

static int never_main(void *arg)
{
    *(bool *)arg = true;
    return 0;
}

/* The fds the loop of a one-core runtime holds, seen from its main. */
static int count_fds_main(void *arg)
{
    *(int *)arg = th_fd_count();
    return 0;
}

static void test_start_failure_leaves_no_thread(void **state)
{
    (void)state;
    NEED_CORES(2);
    int before = threads_now();
    bool ran = false;
    wf_cores_fail_thread = 1;
    int rc = weft_run_cores(2, never_main, &ran, NULL);
    wf_cores_fail_thread = 0;
    assert_rc(rc, -EAGAIN);
    assert_false(ran);
    assert_true(threads_now() <= before);
    assert_non_null(strstr(weft_strerror(rc), "core 1"));
    /* A real failure on core 1: its loop finds no fd below the limit
     * (core 0 takes the lowest free ones: its mailbox's eventfd, which a
     * one-core runtime does without, and what its loop holds -- on
     * io_uring the ring, on epoll more). */
    int outside = th_fd_count(), inside = 0;
    assert_rc(weft_run_cores(1, count_fds_main, &inside, NULL), 0);
    int held = inside - outside + 1, lowest[16], lim = 0;
    assert_true(held >= 2 && held <= 16);
    for (int i = 0; i < held; i++) {
        lowest[i] = dup(0);
        assert_true(lowest[i] >= 0);
        if (lowest[i] + 1 > lim)
            lim = lowest[i] + 1;
    }
    for (int i = 0; i < held; i++)
        close(lowest[i]);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {.rlim_cur = (rlim_t)lim, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    rc = weft_run_cores(2, never_main, &ran, NULL);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_rc(rc, -EMFILE);
    assert_false(ran);
    assert_true(threads_now() <= before);
    assert_non_null(strstr(weft_strerror(rc), "core 1"));
    /* And the runtime starts again afterwards. */
    unsigned n = 2;
    assert_rc(run_cores(2, two_core_main, &n, NULL), 3);
}

/* ---- core_call and cancellation ---- */

struct sleeper {
    int rc;        /* what the sleep returned */
    bool done;     /* set last, after a little more work */
    unsigned core; /* where it ran */
};

static int sleep_then_record(void *arg)
{
    struct sleeper *s = arg;
    s->core = weft_core_id();
    s->rc = weft_sleep_forever();
    /* Still a while before it ends: the caller must wait for it. */
    weft_scope sh;
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_scope_set_shield(&sh, true);
    CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&sh, 0), 0);
    s->done = true;
    return s->rc;
}

static int call_cancel_main(void *arg)
{
    unsigned core = *(unsigned *)arg;
    struct sleeper s = {.rc = 1};
    weft_scope sc;
    weft_move_on_after(&sc, 20 * WEFT_MSEC);
    int rc = weft_core_call(core, sleep_then_record, &s);
    CHECK_EQ(rc, -ECANCELED);
    CHECK(s.done); /* it ended before core_call returned */
    CHECK_EQ(s.rc, -ECANCELED);
    CHECK_EQ(s.core, core);
    CHECK_EQ(weft_scope_exit(&sc, rc), 0);
    /* Cancelled before the call: a checkpoint, nothing runs. */
    weft_scope_enter(&sc, WEFT_FOREVER);
    weft_scope_cancel(&sc);
    s.done = false;
    CHECK_EQ(weft_core_call(core, sleep_then_record, &s), -ECANCELED);
    CHECK(!s.done);
    CHECK_EQ(weft_scope_exit(&sc, -ECANCELED), 0);
    return 0;
}

static void test_core_call_cancelled_waits(void **state)
{
    (void)state;
    unsigned core = 0; /* own core: still a task, still waited for */
    assert_rc(run_cores(1, call_cancel_main, &core, NULL), 0);
    NEED_CORES(2);
    core = 1;
    assert_rc(run_cores(2, call_cancel_main, &core, NULL), 0);
}

static int quick(void *arg)
{
    (void)arg;
    return 5;
}

static int call_finished_first_main(void *arg)
{
    (void)arg;
    /* Many calls, each cancelled at a different moment: the result is
     * the task's (5 if it finished first, -ECANCELED otherwise). */
    for (int i = 0; i < 200; i++) {
        weft_scope sc;
        weft_scope_enter(&sc, WEFT_FOREVER);
        if (i % 2)
            weft_scope_set_deadline(&sc, weft_now() + (i % 7) * WEFT_USEC);
        int rc = weft_core_call(1, quick, NULL);
        CHECK(rc == 5 || rc == -ECANCELED);
        weft_scope_exit(&sc, rc);
    }
    return 0;
}

static void test_core_call_races(void **state)
{
    (void)state;
    NEED_CORES(2);
    assert_rc(run_cores(2, call_finished_first_main, NULL, NULL), 0);
}

/* ---- groups across cores ---- */

struct failer {
    char name[32];
    int local_rc;
};

static int fail_remote(void *arg)
{
    struct failer *f = arg;
    snprintf(f->name, sizeof f->name, "%s",
             weft_task_name(weft_task_current()));
    CHECK_EQ(weft_core_id(), 1);
    CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
    return -EIO;
}

static int local_sleeper(void *arg)
{
    struct failer *f = arg;
    f->local_rc = weft_sleep_forever();
    return f->local_rc;
}

static int remote_error_main(void *arg)
{
    (void)arg;
    struct failer f = {.local_rc = 1};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, local_sleeper, &f), 0);
    CHECK_EQ(weft_group_spawn_on(&g, 1, fail_remote, &f), 0);
    int rc = weft_sleep_forever();
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_group_exit(&g, rc), -EIO);
    CHECK_EQ(f.local_rc, -ECANCELED);
    const char *name = NULL;
    CHECK_EQ(weft_group_error_count(&g), 1);
    CHECK_EQ(weft_group_error(&g, 0, &name), -EIO);
    CHECK_STR_EQ(name, f.name);
    return 0;
}

static void test_remote_child_error_cancels_group(void **state)
{
    (void)state;
    NEED_CORES(2);
    assert_rc(run_cores(2, remote_error_main, NULL, NULL), 0);
}

static int scope_cancels_remote_main(void *arg)
{
    (void)arg;
    struct sleeper a = {.rc = 1}, b = {.rc = 1};
    weft_scope sc;
    weft_move_on_after(&sc, 20 * WEFT_MSEC);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_on(&g, 1, sleep_then_record, &a), 0);
    CHECK_EQ(weft_group_spawn_on(&g, 0, sleep_then_record, &b), 0);
    int rc = weft_group_exit(&g, weft_sleep_forever());
    CHECK_EQ(rc, -ECANCELED);
    CHECK(a.done);
    CHECK(b.done);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(a.core, 1);
    CHECK_EQ(b.core, 0);
    CHECK_EQ(weft_scope_exit(&sc, rc), 0);
    CHECK(weft_scope_cancelled_caught(&sc));

    /* A group cancelled already: its remote child starts cancelled. */
    weft_group_enter(&g);
    weft_group_cancel(&g);
    a = (struct sleeper){.rc = 1};
    CHECK_EQ(weft_group_spawn_on(&g, 1, sleep_then_record, &a), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(a.done);
    CHECK_EQ(a.rc, -ECANCELED);

    /* weft_group_cancel reaches it too, and a shield around it hides an
     * outer cancel. */
    weft_group_enter(&g);
    a = (struct sleeper){.rc = 1};
    CHECK_EQ(weft_group_spawn_on(&g, 1, sleep_then_record, &a), 0);
    CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
    CHECK(!a.done);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(a.done);
    return 0;
}

static void test_scope_cancels_remote_child(void **state)
{
    (void)state;
    NEED_CORES(2);
    assert_rc(run_cores(2, scope_cancels_remote_main, NULL, NULL), 0);
}

static int remote_deadline_main(void *arg)
{
    (void)arg;
    struct sleeper a = {.rc = 1};
    weft_scope sc;
    weft_move_on_after(&sc, 10 * WEFT_MSEC);
    weft_scope sh; /* between: lets the cancellation pass */
    weft_scope_enter(&sh, WEFT_FOREVER);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_on(&g, 1, sleep_then_record, &a), 0);
    int rc = weft_group_exit(&g, 0);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&sh, rc), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&sc, -ECANCELED), 0);
    return 0;
}

static void test_remote_child_deadline(void **state)
{
    (void)state;
    NEED_CORES(2);
    assert_rc(run_cores(2, remote_deadline_main, NULL, NULL), 0);
}

/* ---- I/O on every core; idle cores stay ---- */

static int echo_once(void *arg)
{
    int fd = *(int *)arg;
    char buf[16];
    int n = th_read(fd, buf, sizeof buf);
    if (!CHECK_GT(n, 0))
        return n;
    CHECK_EQ(weft_core_id(), 1);
    return th_write(fd, buf, (unsigned)n) == n ? 0 : -EIO;
}

static int io_main(void *arg)
{
    (void)arg;
    int sv[2];
    if (!CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0))
        return -errno;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_on(&g, 1, echo_once, &sv[1]), 0);
    CHECK_EQ(th_write(sv[0], "ping", 4), 4);
    char buf[8] = "";
    CHECK_EQ(th_read(sv[0], buf, sizeof buf), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_io_on_every_core(void **state)
{
    (void)state;
    NEED_CORES(2);
    assert_rc(run_cores(2, io_main, NULL, NULL), 0);
}

static int call_back_to_zero(void *arg)
{
    unsigned where = 99;
    CHECK_EQ(weft_core_call(0, report_core, &where), 40);
    CHECK_EQ(where, 0);
    *(bool *)arg = true;
    return 0;
}

static int idle_core_main(void *arg)
{
    (void)arg;
    /* Core 1 has had nothing to do: it must still be there. */
    CHECK_EQ(weft_sleep(30 * WEFT_MSEC), 0);
    bool back = false;
    CHECK_EQ(weft_core_call(1, call_back_to_zero, &back), 0);
    CHECK(back);
    /* Core 1 idle again while core 0 works on. */
    CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
    unsigned where = 99;
    CHECK_EQ(weft_core_call(1, report_core, &where), 41);
    return 0;
}

static void test_idle_core_stays(void **state)
{
    (void)state;
    NEED_CORES(2);
    assert_rc(run_cores(2, idle_core_main, NULL, NULL), 0);
}

static int dump_remote(void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!CHECK(f != NULL))
        return -ENOMEM;
    weft_dump_tasks(f);
    fclose(f);
    *(bool *)arg = strstr(buf, "on core 1") != NULL;
    free(buf);
    return 0;
}

static int dump_main(void *arg)
{
    (void)arg;
    bool seen = false;
    CHECK_EQ(weft_core_call(1, dump_remote, &seen), 0);
    CHECK(seen);
    return 0;
}

static void test_dump_names_cores(void **state)
{
    (void)state;
    NEED_CORES(2);
    assert_rc(run_cores(2, dump_main, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_core_is_weft_run),
        cmocka_unit_test(test_two_cores),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_start_failure_leaves_no_thread),
        cmocka_unit_test(test_core_call_cancelled_waits),
        cmocka_unit_test(test_core_call_races),
        cmocka_unit_test(test_remote_child_error_cancels_group),
        cmocka_unit_test(test_scope_cancels_remote_child),
        cmocka_unit_test(test_remote_child_deadline),
        cmocka_unit_test(test_io_on_every_core),
        cmocka_unit_test(test_idle_core_stays),
        cmocka_unit_test(test_dump_names_cores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
