/* SPDX-License-Identifier: MIT */
/*
 * tests/test_loop.c - weft_run (API.md "Running"): the result of main,
 * waiting for every task, options and ring modes, independent loops on two
 * threads, a loop that cannot start (io_uring blocked by seccomp), calls
 * made outside any loop, and weft_strerror; max_inflight with weft's own
 * standing operations (the thread bridge, a listener) in flight.
 */
#include "helpers.h"

#include <limits.h>
#include <sys/resource.h>

#include <dirent.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <weft/net.h>
#include <weft/stream.h>

/* ---- a small workload: tasks that sleep, checkpoint and run NOPs ---- */

struct workload {
    bool started;   /* main ran (so the loop did start) */
    int tasks;      /* children to spawn */
    int rounds;     /* sleep + NOP + checkpoint per child */
    int done;       /* children that finished every round */
    unsigned flags; /* weft_uring_setup_flags() seen by main */
};

static int work_child(void *arg)
{
    struct workload *w = arg;

    for (int i = 0; i < w->rounds; i++) {
        weft_time t0 = weft_now();
        if (!CHECK_EQ(weft_sleep(100 * WEFT_USEC), 0))
            return -EIO;
        CHECK_GE(weft_now() - t0, 100 * WEFT_USEC);
        if (!CHECK_EQ(th_nop(), 0))
            return -EIO;
        if (!CHECK_EQ(weft_checkpoint(), 0))
            return -EIO;
    }
    w->done++;
    return 0;
}

static int work_main(void *arg)
{
    struct workload *w = arg;
    weft_group g;

    w->started = true;
    w->flags = weft_uring_setup_flags();
    CHECK(weft_task_current() != NULL);
    weft_group_enter(&g);
    for (int i = 0; i < w->tasks; i++)
        CHECK_EQ(weft_group_spawn(&g, work_child, w), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(w->done, w->tasks);
    return 0;
}

static void workload_init(struct workload *w, int tasks, int rounds)
{
    memset(w, 0, sizeof *w);
    w->tasks = tasks;
    w->rounds = rounds;
}

/* ---- weft_run returns main's result ---- */

static int main_returns(void *arg)
{
    return *(int *)arg;
}

static void test_run_returns_main_result(void **state)
{
    static const int results[] = {0, -EIO, -ENOENT, -ECANCELED, -ETIMEDOUT};

    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        int v = results[i];
        run_in_loop_opts(main_returns, &v, NULL, results[i]);
    }
}

/* main returns its result after a child failed: still main's result. */
static int main_ignores_child_error(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, th_task_return, (void *)(intptr_t)-EIO), 0);
    CHECK_EQ(weft_group_exit(&g, 0), -EIO);
    return 0;
}

static void test_run_returns_main_result_not_childs(void **state)
{
    run_in_loop(main_ignores_child_error, NULL);
}

/* ---- weft_run waits for every task ---- */

struct waits {
    weft_group *g; /* main's group, passed down (nursery passing) */
    int finished;
};

static int waits_grandchild(void *arg)
{
    struct waits *w = arg;

    CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
    CHECK_EQ(weft_checkpoint(), 0);
    w->finished++;
    return 0;
}

static int waits_child(void *arg)
{
    struct waits *w = arg;

    /* Spawn into the parent's group and return at once: the grandchildren
     * outlive their spawner. */
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_group_spawn(w->g, waits_grandchild, w), 0);
    return 0;
}

static int waits_main(void *arg)
{
    struct waits *w = arg;
    weft_group g;

    weft_group_enter(&g);
    w->g = &g;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_group_spawn(&g, waits_child, w), 0);
    return weft_group_exit(&g, 0);
}

static void test_run_waits_for_every_task(void **state)
{
    struct waits w = {0};

    run_in_loop(waits_main, &w);
    assert_int_equal(w.finished, 16);
}

/* ---- options ---- */

static void test_run_null_opts(void **state)
{
    struct workload w;

    workload_init(&w, 8, 3);
    run_in_loop_opts(work_main, &w, NULL, 0);
    assert_true(w.started);
    assert_int_equal(w.done, 8);
}

static void test_run_zeroed_opts(void **state)
{
    struct workload w;
    weft_options o;

    memset(&o, 0, sizeof o);
    workload_init(&w, 8, 3);
    run_in_loop_opts(work_main, &w, &o, 0);
    assert_int_equal(w.done, 8);
}

/* Small rings, small stacks, few stacks cached, two operations in flight:
 * everything still completes. */
static void test_run_small_ring_and_stack_options(void **state)
{
    struct workload w;
    weft_options o;

    memset(&o, 0, sizeof o);
    o.stack_size = TH_ASAN ? 256 * 1024 : 32 * 1024;
    o.sq_entries = 4;
    o.cq_entries = 8;
    o.max_inflight = 2;
    o.stack_cache = 1;
    workload_init(&w, 16, 4);
    run_in_loop_opts(work_main, &w, &o, 0);
    assert_int_equal(w.done, 16);
}

/*
 * weft's own standing operations stay in flight for good: the thread
 * bridge's mailbox poll (armed by the first weft_to_thread) and a
 * listener's accepts (armed by the first accept; two with no host, one per
 * family). They must take none of the tasks' room: with max_inflight at
 * its minimum of 2 (or 3, one less than those three), a send or recv
 * after them used to wait for room forever. A 10 s scope turns such a
 * hang into -ECANCELED.
 */
struct standing {
    weft_listener *l;
    int accepted;
};

static int standing_noop(void *arg)
{
    return 0;
}

static int standing_accepter(void *arg)
{
    struct standing *st = arg;
    weft_stream *s;

    if (!CHECK_EQ(weft_listener_accept(st->l, &s), 0))
        return -EIO;
    st->accepted++;
    CHECK_EQ(weft_stream_close(s), 0);
    return 0;
}

static int standing_main(void *arg)
{
    struct standing st = {NULL, 0};
    weft_stream *x, *y, *c;
    weft_scope s;
    weft_group g;
    char byte = 0;

    weft_move_on_after(&s, 10 * WEFT_SEC);
    if (!CHECK_EQ(weft_tcp_listen(&st.l, NULL, 0), 0))
        return weft_scope_exit(&s, -EIO);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, standing_accepter, &st), 0);
    for (int i = 0; i < 4; i++) /* the accepter arms its accepts */
        CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_to_thread(standing_noop, NULL, NULL, 0), 0);
    if (CHECK_EQ(weft_stream_pair(&x, &y), 0)) {
        CHECK_EQ(weft_stream_send(y, "!", 1), 1);
        CHECK_EQ(weft_stream_recv(x, &byte, 1), 1);
        CHECK_EQ(byte, '!');
        CHECK_EQ(weft_stream_close(x), 0);
        CHECK_EQ(weft_stream_close(y), 0);
    }
    /* The accepts still work beside the tasks' operations. */
    if (CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", weft_listener_port(st.l)),
                 0))
        CHECK_EQ(weft_stream_close(c), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(weft_listener_close(st.l), 0);
    CHECK(!weft_scope_cancel_called(&s)); /* no hang cut short */
    return weft_scope_exit(&s, 0);
}

static void run_with_standing_ops(unsigned max_inflight)
{
    weft_options o;

    memset(&o, 0, sizeof o);
    o.max_inflight = max_inflight;
    run_in_loop_opts(standing_main, NULL, &o, 0);
}

static void test_max_inflight_2_with_bridge_and_listener(void **state)
{
    if (TH_UNDER_VALGRIND()) {
        /* The worker cannot run while the loop waits in the ring. */
        print_message("skipped under Valgrind (the thread bridge)\n");
        skip();
    }
    run_with_standing_ops(2);
}

static void test_max_inflight_3_with_bridge_and_listener(void **state)
{
    if (TH_UNDER_VALGRIND()) {
        /* The worker cannot run while the loop waits in the ring. */
        print_message("skipped under Valgrind (the thread bridge)\n");
        skip();
    }
    run_with_standing_ops(3);
}

/* Run the workload with a forced ring mode; skip if the kernel lacks it. */
static void run_ring_mode(unsigned mode)
{
    struct workload w;
    weft_options o;

    memset(&o, 0, sizeof o);
    o.ring_mode = mode;
    workload_init(&w, 8, 3);
    int rc = run_loop(work_main, &w, &o);
    if (rc < 0 && !w.started) {
        print_message("ring mode %u unavailable: %s\n", mode,
                      weft_strerror(rc));
        skip();
    }
    assert_rc(rc, 0);
    assert_int_equal(w.done, 8);
    switch (mode) {
    case WEFT_RING_DEFER:
        assert_true(w.flags & IORING_SETUP_DEFER_TASKRUN);
        assert_true(w.flags & IORING_SETUP_SINGLE_ISSUER);
        break;
    case WEFT_RING_COOP:
        assert_true(w.flags & IORING_SETUP_COOP_TASKRUN);
        assert_false(w.flags & IORING_SETUP_DEFER_TASKRUN);
        break;
    case WEFT_RING_PLAIN:
        assert_false(w.flags & IORING_SETUP_DEFER_TASKRUN);
        assert_false(w.flags & IORING_SETUP_COOP_TASKRUN);
        break;
    default:
        /* AUTO: the best the kernel offers; DEFER implies SINGLE_ISSUER */
        if (w.flags & IORING_SETUP_DEFER_TASKRUN)
            assert_true(w.flags & IORING_SETUP_SINGLE_ISSUER);
        break;
    }
}

static void test_ring_mode_auto(void **state)
{
    run_ring_mode(WEFT_RING_AUTO);
}

static void test_ring_mode_defer(void **state)
{
    run_ring_mode(WEFT_RING_DEFER);
}

static void test_ring_mode_coop(void **state)
{
    run_ring_mode(WEFT_RING_COOP);
}

static void test_ring_mode_plain(void **state)
{
    run_ring_mode(WEFT_RING_PLAIN);
}

/* ---- two loops on two threads at once ---- */

struct thr {
    pthread_barrier_t *bar;
    struct workload w;
    weft_task *root;
    uint64_t root_id;
    int rc;
};

static int thr_main(void *arg)
{
    struct thr *t = arg;

    t->root = weft_task_current();
    t->root_id = t->root ? weft_task_id(t->root) : 0;
    /* Both loops are up before either starts its workload: they really
     * run at the same time. Blocking the thread here is fine: nothing
     * else of this loop is running yet. */
    pthread_barrier_wait(t->bar);
    return work_main(&t->w);
}

static void *thr_fn(void *arg)
{
    struct thr *t = arg;

    t->rc = weft_run(thr_main, t, NULL);
    return NULL;
}

static void test_two_loops_on_two_threads(void **state)
{
    pthread_barrier_t bar;
    struct thr t[2];
    pthread_t th[2];

    th_reset();
    assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
    for (int i = 0; i < 2; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].bar = &bar;
        workload_init(&t[i].w, 16, 20);
    }
    th_guard(TH_GUARD_SECONDS);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thr_fn, &t[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    th_guard_off();
    pthread_barrier_destroy(&bar);
    th_assert_clean();
    for (int i = 0; i < 2; i++) {
        assert_rc(t[i].rc, 0);
        assert_int_equal(t[i].w.done, 16);
        assert_non_null(t[i].root);
    }
    assert_ptr_not_equal(t[0].root, t[1].root);
    /* No loop on this thread, whatever the other threads did. */
    assert_null(weft_task_current());
}

/* ---- io_uring blocked by seccomp: URING fails, AUTO falls back ---- */

#if defined(__x86_64__)
#define TH_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TH_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef TH_AUDIT_ARCH
/* Make io_uring_setup/enter/register fail with err, as Docker's default
 * profile does (ENOSYS there, EPERM elsewhere). */
static int block_io_uring(int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TH_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K,
                 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof f / sizeof f[0]),
        .filter = f,
    };

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return -errno;
    return 0;
}
#endif

static int flag_main(void *arg)
{
    *(bool *)arg = true;
    return 0;
}

static void seccomp_child(void *arg)
{
#ifdef TH_AUDIT_ARCH
    int err = *(int *)arg;
    bool ran = false;

    int rc = block_io_uring(err);
    if (rc != 0) {
        fprintf(stderr, "cannot install the seccomp filter: %s\n",
                strerror(-rc));
        _exit(10);
    }
    /* io_uring asked for by name: weft_run fails and says why. */
    unsetenv("WEFT_BACKEND");
    weft_options o = {.backend = WEFT_BACKEND_URING};
    rc = weft_run(flag_main, &ran, &o);
    const char *msg = weft_strerror(rc);
    fprintf(stderr, "weft_run: %d, weft_strerror: \"%s\"\n", rc,
            msg ? msg : "(null)");
    if (ran) {
        fprintf(stderr, "main ran although io_uring is blocked\n");
        _exit(11);
    }
    if (rc != -err) {
        fprintf(stderr, "weft_run returned %d, expected %d\n", rc, -err);
        _exit(12);
    }
    if (!msg || !*msg)
        _exit(13);
    if (err == ENOSYS) {
        if (!strcasestr(msg, "io_uring")) {
            fprintf(stderr, "the message does not mention io_uring\n");
            _exit(14);
        }
        if (!strcasestr(msg, "seccomp")) {
            fprintf(stderr, "the message does not mention seccomp\n");
            _exit(15);
        }
    }
    /* No loop was left behind on this thread. */
    if (weft_task_current() != NULL)
        _exit(16);
    /* WEFT_BACKEND_AUTO (the default) falls back to epoll: the same
     * program runs. */
    rc = weft_run(flag_main, &ran, NULL);
    if (rc != 0 || !ran) {
        fprintf(stderr, "AUTO did not fall back: %d (%s)\n", rc,
                weft_strerror(rc));
        _exit(17);
    }
    if (!weft_backend_name() || strcmp(weft_backend_name(), "epoll") != 0) {
        fprintf(stderr, "the backend is %s, not epoll\n",
                weft_backend_name() ? weft_backend_name() : "(null)");
        _exit(18);
    }
    _exit(0);
#else
    (void)arg;
    _exit(77);
#endif
}

static void test_run_falls_back_when_io_uring_blocked_enosys(void **state)
{
    struct th_child c;
    int err = ENOSYS;

    th_run_child(seccomp_child, &err, &c);
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 77)
        skip();
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 10) {
        th_child_dump(&c);
        skip();
    }
    print_message("%s", c.err);
    th_assert_child_ok(&c);
}

static void test_run_falls_back_when_io_uring_blocked_eperm(void **state)
{
    struct th_child c;
    int err = EPERM;

    th_run_child(seccomp_child, &err, &c);
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 77)
        skip();
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == 10) {
        th_child_dump(&c);
        skip();
    }
    print_message("%s", c.err);
    th_assert_child_ok(&c);
}

/* ---- calls outside any loop ---- */

static int never_runs(void *arg)
{
    *(bool *)arg = true;
    return 0;
}

/* Every blocking call made with no loop on the thread: -EPERM, nothing
 * run, nothing crashed. Returns whether all held (CHECK-style). */
static bool outside_loop_checks(void)
{
    bool ran = false;
    void *value = &ran;
    weft_group g;
    bool ok = true;

    memset(&g, 0, sizeof g);
    ok &= CHECK(weft_task_current() == NULL);
    ok &= CHECK_EQ(weft_sleep(0), -EPERM);
    ok &= CHECK_EQ(weft_sleep(-1), -EPERM);
    ok &= CHECK_EQ(weft_sleep(WEFT_MSEC), -EPERM);
    ok &= CHECK_EQ(weft_sleep_until(0), -EPERM);
    ok &= CHECK_EQ(weft_sleep_forever(), -EPERM);
    ok &= CHECK_EQ(weft_checkpoint(), -EPERM);
    ok &= CHECK_EQ(weft_checkpoint_if_cancelled(), -EPERM);
    ok &= CHECK_EQ(weft_cancel_shielded_checkpoint(), -EPERM);
    ok &= CHECK_EQ(weft_group_spawn(&g, never_runs, &ran), -EPERM);
    ok &= CHECK_EQ(weft_group_spawn_named(&g, "x", never_runs, &ran), -EPERM);
    ok &= CHECK_EQ(weft_group_start(&g, never_runs, &ran, &value), -EPERM);
    ok &= CHECK(value == &ran); /* untouched */
    ok &= CHECK(weft_uring_sqe() == NULL);
    ok &= CHECK(!ran);
    return ok;
}

static void test_calls_outside_loop_return_eperm(void **state)
{
    th_reset();
    outside_loop_checks();
    th_assert_clean();
}

static void test_calls_after_loop_ended_return_eperm(void **state)
{
    struct workload w;

    workload_init(&w, 2, 1);
    run_in_loop(work_main, &w);
    th_reset();
    outside_loop_checks();
    th_assert_clean();
}

static void *outside_thread(void *arg)
{
    *(bool *)arg = outside_loop_checks();
    return NULL;
}

/* A thread with no loop, created while this thread runs one, sees no
 * loop: loops are per thread. */
static int other_thread_main(void *arg)
{
    pthread_t t;
    bool ok = false;

    CHECK_EQ(pthread_create(&t, NULL, outside_thread, &ok), 0);
    pthread_join(t, NULL);
    CHECK(ok);
    CHECK(weft_task_current() != NULL);
    CHECK_EQ(weft_checkpoint(), 0);
    return 0;
}

static void test_calls_from_thread_without_loop_return_eperm(void **state)
{
    run_in_loop(other_thread_main, NULL);
}

/* ---- resources ---- */

static void test_run_leaves_no_fd_open(void **state)
{
    struct workload w;

    /* A first run may set up process-wide things (signal stacks ...). */
    workload_init(&w, 4, 1);
    run_in_loop(work_main, &w);
    int before = th_fd_count();
    assert_true(before > 0);
    for (int i = 0; i < 20; i++) {
        workload_init(&w, 4, 1);
        run_in_loop(work_main, &w);
    }
    assert_int_equal(th_fd_count(), before);
}

/* ---- weft_strerror ---- */

static void test_strerror_names_codes(void **state)
{
    static const int codes[] = {
        0,           -ECANCELED, -ETIMEDOUT, -EAGAIN,  -EBADF,    -EPIPE,
        -EBUSY,      -EPERM,     -EINVAL,    -ENOMEM,  -ECHILD,   -ENOSYS,
        -ECONNRESET, -EOVERFLOW, -EDEADLK,   -ENODATA, -EMSGSIZE, -ENOTSUP,
        -99999,      -1,         1,
    };

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = weft_strerror(codes[i]);
        assert_non_null(m);
        assert_true(m[0] != '\0');
    }
    assert_string_not_equal(weft_strerror(-ECANCELED),
                            weft_strerror(-ETIMEDOUT));
    assert_string_not_equal(weft_strerror(-EAGAIN), weft_strerror(-EBADF));
}

static int strerror_in_loop(void *arg)
{
    const char *m = weft_strerror(-ECANCELED);
    CHECK(m != NULL && m[0] != '\0');
    return 0;
}

static void test_strerror_inside_loop(void **state)
{
    run_in_loop(strerror_in_loop, NULL);
}

/* INT_MIN is no errno; negating it would overflow
 * (repros/strerror_int_min.c, UBSan in the sanitizer build). */
static void test_strerror_int_min_is_unknown(void **state)
{
    assert_string_equal(weft_strerror(INT_MIN), "unknown error");
    assert_string_equal(weft_strerror(-99999), "unknown error");
}

/* The reason a weft_run could not start is given once: a later error with
 * the same code is not described as that failure
 * (repros/strerror_stale.c). */
static void test_strerror_run_reason_is_given_once(void **state)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    o.ring_mode = 99;
    int rc = weft_run(main_returns, &(int){0}, &o);
    assert_rc(rc, -EINVAL);
    const char *why = weft_strerror(rc);
    assert_non_null(strstr(why, "ring_mode"));
    assert_rc(weft_chan_open(0, NULL, NULL), -EINVAL);
    assert_string_equal(weft_strerror(-EINVAL), strerror(EINVAL));
    assert_non_null(strstr(why, "ring_mode")); /* the text stays */
    /* A later weft_run forgets it, whatever its outcome. */
    rc = weft_run(main_returns, &(int){0}, &o);
    assert_rc(rc, -EINVAL);
    rc = weft_run(NULL, NULL, NULL);
    assert_rc(rc, -EINVAL);
    assert_string_equal(weft_strerror(rc), strerror(EINVAL));
}

/* With no file descriptor free, weft_run fails with -EMFILE and says the
 * process is out of file descriptors, not that io_uring is missing
 * (repros/run_emfile_message.c). In a child: it lowers RLIMIT_NOFILE. */
static void emfile_child(void *arg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(10);
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(11);
    while (open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0) {
    }
    if (errno != EMFILE)
        _exit(12);
    int rc = weft_run(main_returns, &(int){0}, NULL);
    const char *msg = weft_strerror(rc);
    fprintf(stderr, "weft_run: %d: %s\n", rc, msg);
    if (rc != -EMFILE)
        _exit(13);
    if (!strstr(msg, "file descriptors") || !strstr(msg, "RLIMIT_NOFILE"))
        _exit(14);
    if (strstr(msg, "CONFIG_IO_URING") || strstr(msg, "seccomp"))
        _exit(15);
}

static void test_run_out_of_fds_says_so(void **state)
{
    struct th_child c;
    th_run_child(emfile_child, NULL, &c);
    th_assert_child_ok(&c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_run_returns_main_result),
    cmocka_unit_test(test_run_returns_main_result_not_childs),
    cmocka_unit_test(test_run_waits_for_every_task),
    cmocka_unit_test(test_run_null_opts),
    cmocka_unit_test(test_run_zeroed_opts),
    cmocka_unit_test(test_run_small_ring_and_stack_options),
    cmocka_unit_test(test_max_inflight_2_with_bridge_and_listener),
    cmocka_unit_test(test_max_inflight_3_with_bridge_and_listener),
    cmocka_unit_test(test_ring_mode_auto),
    cmocka_unit_test(test_ring_mode_defer),
    cmocka_unit_test(test_ring_mode_coop),
    cmocka_unit_test(test_ring_mode_plain),
    cmocka_unit_test(test_two_loops_on_two_threads),
    cmocka_unit_test(test_run_falls_back_when_io_uring_blocked_enosys),
    cmocka_unit_test(test_run_falls_back_when_io_uring_blocked_eperm),
    cmocka_unit_test(test_calls_outside_loop_return_eperm),
    cmocka_unit_test(test_calls_after_loop_ended_return_eperm),
    cmocka_unit_test(test_calls_from_thread_without_loop_return_eperm),
    cmocka_unit_test(test_run_leaves_no_fd_open),
    cmocka_unit_test(test_strerror_names_codes),
    cmocka_unit_test(test_strerror_inside_loop),
    cmocka_unit_test(test_strerror_int_min_is_unknown),
    cmocka_unit_test(test_strerror_run_reason_is_given_once),
    cmocka_unit_test(test_run_out_of_fds_says_so),
};

TH_MAIN(tests)
