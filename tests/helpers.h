/* SPDX-License-Identifier: MIT */
/*
 * tests/helpers.h - what every suite shares: checks that are safe inside
 * tasks, running a loop and asserting its result, a hang guard, pipes and
 * raw-ring one-liners, the backend a suite runs on (th_uring_only skips
 * a test that can only hold on io_uring), running code in a fork()ed
 * child with its stderr captured, and a seccomp filter refusing io_uring.
 *
 * cmocka's assert_*() and skip() longjmp back to the test runner. That must
 * never happen from a task's stack: it would leave the loop half-run and
 * trip glibc's longjmp check. Code that runs inside a task therefore uses
 * CHECK*() below: a failed check is printed and remembered, and
 * run_in_loop() fails the test once weft_run() has returned.
 *
 * Each suite includes this header once, first (it defines _GNU_SOURCE).
 */
#ifndef WEFT_TESTS_HELPERS_H
#define WEFT_TESTS_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <weft.h>
#include <weft/uring.h>

#define TH_UNUSED __attribute__((unused))

/* Built with AddressSanitizer? (gcc defines the macro, clang the feature) */
#if defined(__SANITIZE_ADDRESS__)
#define TH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TH_ASAN 1
#endif
#endif
#ifndef TH_ASAN
#define TH_ASAN 0
#endif

/* Built with ThreadSanitizer? (the same two ways, as in engine/engine.h) */
#if defined(__SANITIZE_THREAD__)
#define TH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TH_TSAN 1
#endif
#endif
#ifndef TH_TSAN
#define TH_TSAN 0
#endif

/* Hang guard of one weft_run() (or one child process): a guard, not a
 * measurement. */
#define TH_GUARD_SECONDS 60

/* ---- checks that are safe inside tasks ---- */

static pthread_mutex_t th_lock = PTHREAD_MUTEX_INITIALIZER;
static int th_failures;
static char th_first_failure[512];

static TH_UNUSED __attribute__((format(printf, 3, 4))) bool
th_fail_at(const char *file, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&th_lock);
    if (th_failures == 0)
        snprintf(th_first_failure, sizeof th_first_failure, "%s:%d: %s", file,
                 line, msg);
    if (th_failures < 20)
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, msg);
    th_failures++;
    pthread_mutex_unlock(&th_lock);
    return false;
}

static TH_UNUSED bool th_check_cmp(long long a, long long b, int op,
                                   const char *as, const char *bs,
                                   const char *file, int line)
{
    static const char *const names[] = {"==", "!=", ">=", ">", "<=", "<"};
    bool ok;

    switch (op) {
    case 0:
        ok = a == b;
        break;
    case 1:
        ok = a != b;
        break;
    case 2:
        ok = a >= b;
        break;
    case 3:
        ok = a > b;
        break;
    case 4:
        ok = a <= b;
        break;
    default:
        ok = a < b;
        break;
    }
    if (ok)
        return true;
    return th_fail_at(file, line, "%s %s %s (%lld vs %lld)", as, names[op], bs,
                      a, b);
}

/* Each returns whether it held, so a task can give up early:
 *     if (!CHECK_EQ(rc, 0)) return rc; */
#define CHECK(c) ((c) ? true : th_fail_at(__FILE__, __LINE__, "%s", #c))
#define TH_CMP(a, b, op)                                                       \
    th_check_cmp((long long)(a), (long long)(b), op, #a, #b, __FILE__, __LINE__)
#define CHECK_EQ(a, b) TH_CMP(a, b, 0)
#define CHECK_NE(a, b) TH_CMP(a, b, 1)
#define CHECK_GE(a, b) TH_CMP(a, b, 2)
#define CHECK_GT(a, b) TH_CMP(a, b, 3)
#define CHECK_LE(a, b) TH_CMP(a, b, 4)
#define CHECK_LT(a, b) TH_CMP(a, b, 5)
#define CHECK_STR_EQ(a, b) th_check_str((a), (b), #a, #b, __FILE__, __LINE__)

static TH_UNUSED bool th_check_str(const char *a, const char *b, const char *as,
                                   const char *bs, const char *file, int line)
{
    if (a && b && strcmp(a, b) == 0)
        return true;
    return th_fail_at(file, line, "%s == %s (\"%s\" vs \"%s\")", as, bs,
                      a ? a : "(null)", b ? b : "(null)");
}

static TH_UNUSED void th_reset(void)
{
    pthread_mutex_lock(&th_lock);
    th_failures = 0;
    th_first_failure[0] = '\0';
    pthread_mutex_unlock(&th_lock);
}

/* In the test function (not in a task): fail the test if a check failed. */
static TH_UNUSED void th_assert_clean(void)
{
    pthread_mutex_lock(&th_lock);
    int n = th_failures;
    pthread_mutex_unlock(&th_lock);
    if (n) {
        print_error("%d check(s) failed inside tasks; first: %s\n", n,
                    th_first_failure);
        fail();
    }
}

/* ---- return codes ---- */

static TH_UNUSED const char *th_errname(int rc)
{
    static __thread char buf[64];

    if (rc >= 0) {
        snprintf(buf, sizeof buf, "%d", rc);
        return buf;
    }
    snprintf(buf, sizeof buf, "%d (%s)", rc, strerror(-rc));
    return buf;
}

/* cmocka prints integers in hex; errnos read better in decimal. */
#define assert_rc(rc, expect)                                                  \
    do {                                                                       \
        int th_rc_ = (rc), th_ex_ = (expect);                                  \
        if (th_rc_ != th_ex_) {                                                \
            char th_a_[64];                                                    \
            snprintf(th_a_, sizeof th_a_, "%s", th_errname(th_rc_));           \
            print_error("%s:%d: %s is %s, expected %s\n", __FILE__, __LINE__,  \
                        #rc, th_a_, th_errname(th_ex_));                       \
            fail();                                                            \
        }                                                                      \
    } while (0)

/* ---- hang guard ---- */

static void th_alarm(int sig)
{
    static const char msg[] = "\nhang guard expired: the test did not finish"
                              " in time\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) {
        /* nothing more we can do */
    }
    /* Not async-signal-safe, but the process is about to abort anyway,
     * and what each task waits for is what a hang needs to be read. */
    weft_dump_tasks(stderr);
    signal(SIGABRT, SIG_DFL);
    abort();
}

static TH_UNUSED void th_guard(unsigned seconds)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = th_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

static TH_UNUSED void th_guard_off(void)
{
    alarm(0);
}

/* ---- running a loop ---- */

/* weft_run(fn, arg, opts) under the hang guard; fails the test if a CHECK
 * failed inside it; returns weft_run's result. */
static TH_UNUSED int run_loop(weft_fn fn, void *arg, const weft_options *opts)
{
    th_reset();
    th_guard(TH_GUARD_SECONDS);
    int rc = weft_run(fn, arg, opts);
    th_guard_off();
    th_assert_clean();
    return rc;
}

static TH_UNUSED void run_in_loop_opts(weft_fn fn, void *arg,
                                       const weft_options *opts, int expect)
{
    int rc = run_loop(fn, arg, opts);
    assert_rc(rc, expect);
}

/* The common case: run fn as the root task with default options and
 * assert that it (and the loop) returned 0 with no failed check. */
static TH_UNUSED void run_in_loop(weft_fn fn, void *arg)
{
    run_in_loop_opts(fn, arg, NULL, 0);
}

/* The same on the virtual clock (API.md "Test clock"): for tests whose
 * point is the timing logic, not the kernel's timeouts. weft_now() starts
 * at 0 and jumps to the next timer once every task is blocked, so waits
 * cost no real time and virtual times can be checked exactly. */
static TH_UNUSED void run_in_virtual_loop(weft_fn fn, void *arg)
{
    const weft_options o = {.clock = WEFT_CLOCK_VIRTUAL};
    run_in_loop_opts(fn, arg, &o, 0);
}

/* ---- tasks and groups ---- */

/* Yield until *flag is true (another task sets it); false if it never
 * does within many rounds. */
static TH_UNUSED bool th_wait_flag(const bool *flag)
{
    for (long i = 0; i < 1000000; i++) {
        if (*(const volatile bool *)flag)
            return true;
        int rc = weft_checkpoint();
        if (rc != 0)
            return th_fail_at(__FILE__, __LINE__,
                              "weft_checkpoint() gave %d while waiting", rc);
    }
    return th_fail_at(__FILE__, __LINE__, "flag never set");
}

/* A few rounds of the loop, including one trip through the kernel, so that
 * anything that was going to happen has happened. */
static TH_UNUSED void th_settle(void)
{
    for (int i = 0; i < 4; i++)
        CHECK_EQ(weft_cancel_shielded_checkpoint(), 0);
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_set_shield(&s, true);
    CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
}

/* The fds this process has open now (for before/after counts); -1 on
 * error. */
static TH_UNUSED int th_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own */
}

static TH_UNUSED int th_task_sleep_forever(void *arg)
{
    int rc = weft_sleep_forever();
    if (arg)
        *(int *)arg = rc;
    return rc;
}

static TH_UNUSED int th_task_return(void *arg)
{
    return (int)(intptr_t)arg;
}

/* ---- time ---- */

static TH_UNUSED weft_time th_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (weft_time)ts.tv_sec * WEFT_SEC + ts.tv_nsec;
}

/* ---- pipes ---- */

/* A blocking pipe (io_uring polls it; O_NONBLOCK would make reads -EAGAIN). */
static TH_UNUSED bool th_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) == 0)
        return true;
    fds[0] = fds[1] = -1;
    return th_fail_at(__FILE__, __LINE__, "pipe2: %s", strerror(errno));
}

static TH_UNUSED void th_close_pipe(int fds[2])
{
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    fds[0] = fds[1] = -1;
}

/* Bytes waiting in a pipe (FIONREAD), or -1. */
static TH_UNUSED int th_pipe_pending(int rfd)
{
    int n = -1;

    if (ioctl(rfd, FIONREAD, &n) < 0)
        return -1;
    return n;
}

/* ---- backends (API.md, "Backends") ---- */

static int th_backend_probe(void *arg)
{
    *(const char **)arg = weft_backend_name();
    return 0;
}

/*
 * Whether loops run on the epoll backend. In a task, weft is asked of the
 * current loop; elsewhere (a test function) of a loop run for the purpose
 * with default options, which get the backend the suite's loops get
 * (WEFT_BACKEND in the environment decides, as scripts/test sets it).
 */
static TH_UNUSED bool th_on_epoll(void)
{
    const char *name = NULL;
    if (weft_task_current())
        name = weft_backend_name();
    else if (weft_run(th_backend_probe, &name, NULL) != 0)
        return false; /* no loop at all: the test will say why */
    return name && strcmp(name, "epoll") == 0;
}

/*
 * In a test function (never in a task): skip the test on the epoll
 * backend, saying why -- for a test that can only hold on io_uring (raw
 * SQEs through weft/uring.h, the ring's setup flags, SQPOLL). The same
 * test runs unchanged on io_uring.
 */
static TH_UNUSED void th_uring_only(const char *why)
{
    if (th_on_epoll()) {
        print_message("      skipped on the epoll backend: %s\n", why);
        skip();
    }
}

/* ---- ring one-liners (in a task) ---- */

/*
 * On the epoll backend weft/uring.h gives no SQE (API.md, "Backends"):
 * there th_nop, th_read and th_write do the same with public calls (a
 * wait for readiness that is answered at once, or before the system
 * call), so that the tests using them as "an operation" run on both
 * backends. A test about raw SQEs themselves calls th_uring_only().
 */
static int th_ready_fd = -1; /* an eventfd that is always readable */

__attribute__((constructor)) static void th_ready_fd_open(void)
{
    th_ready_fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
}

static TH_UNUSED bool th_raw_ring(void)
{
    const char *b = weft_backend_name();
    return b && strcmp(b, "io_uring") == 0;
}

/* weft_uring_sqe's work on either backend (engine/op.c): the SQE weft's
 * own calls take, which the epoll backend carries out too. Not part of
 * the API: the suites link weft's static library. */
struct io_uring_sqe *wf_sqe(void);

/*
 * An SQE to prepare by hand. On io_uring it is weft_uring_sqe()'s; on
 * epoll, where weft/uring.h's calls are refused, it is the SQE weft's own
 * calls take, which the backend carries out like theirs: for the few
 * tests that prepare an operation themselves only to have one in flight
 * (test_faults' sends and receives, test_net's connect). Tests of
 * weft/uring.h itself call weft_uring_sqe() and th_uring_only().
 */
static TH_UNUSED struct io_uring_sqe *th_sqe(void)
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!sqe && weft_task_current() && th_on_epoll())
        sqe = wf_sqe();
    if (!sqe)
        th_fail_at(__FILE__, __LINE__, "weft_uring_sqe() gave NULL in a task");
    return sqe;
}

static TH_UNUSED int th_nop(void)
{
    if (!th_raw_ring())
        return weft_wait_readable(th_ready_fd);
    struct io_uring_sqe *sqe = th_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_nop(sqe);
    return weft_uring_await(sqe);
}

/* read(2) at offset 0 (where the file has offsets), as the SQE does. */
static TH_UNUSED int th_sys_read(int fd, void *buf, unsigned n)
{
    ssize_t r = pread(fd, buf, n, 0);
    if (r < 0 && errno == ESPIPE)
        r = read(fd, buf, n);
    return r < 0 ? -errno : (int)r;
}

static TH_UNUSED int th_read(int fd, void *buf, unsigned n)
{
    if (!th_raw_ring()) {
        int rc = weft_wait_readable(fd);
        return rc < 0 ? rc : th_sys_read(fd, buf, n);
    }
    struct io_uring_sqe *sqe = th_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_read(sqe, fd, buf, n, 0);
    return weft_uring_await(sqe);
}

static TH_UNUSED int th_read_until(int fd, void *buf, unsigned n,
                                   weft_time deadline)
{
    if (!th_raw_ring()) {
        weft_scope s;
        weft_fail_after(&s, deadline - weft_now());
        int rc = weft_scope_exit(&s, weft_wait_readable(fd));
        return rc < 0 ? rc : th_sys_read(fd, buf, n);
    }
    struct io_uring_sqe *sqe = th_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_read(sqe, fd, buf, n, 0);
    return weft_uring_await_until(sqe, deadline);
}

static TH_UNUSED int th_write(int fd, const void *buf, unsigned n)
{
    if (!th_raw_ring()) {
        int rc = weft_wait_writable(fd);
        if (rc < 0)
            return rc;
        ssize_t w = pwrite(fd, buf, n, 0);
        if (w < 0 && errno == ESPIPE)
            w = write(fd, buf, n);
        return w < 0 ? -errno : (int)w;
    }
    struct io_uring_sqe *sqe = th_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_write(sqe, fd, buf, n, 0);
    return weft_uring_await(sqe);
}

/* ---- under Valgrind (scripts/test's valgrind stage) ---- */

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TH_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define TH_UNDER_VALGRIND() false
#endif

/* ---- a fork()ed child with its stderr captured ---- */

struct th_child {
    int status;      /* from waitpid */
    char err[16384]; /* the child's stderr (truncated), NUL-terminated */
};

/* The parent's half: read the child's stderr (p[0]) into out->err until
 * it closes, then reap the child, under the hang guard. */
static TH_UNUSED void th_collect_child(int p[2], pid_t pid,
                                       struct th_child *out)
{
    size_t len = 0;
    close(p[1]);
    th_guard(TH_GUARD_SECONDS);
    for (;;) {
        char tmp[4096];
        ssize_t n = read(p[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t room = sizeof out->err - 1 - len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(out->err + len, tmp, take);
        len += take;
    }
    out->err[len] = '\0';
    close(p[0]);
    while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR) {
    }
    th_guard_off();
}

/*
 * Run body(arg) in a fork()ed child whose stderr goes to out->err. The
 * child resets the signal handlers cmocka and the hang guard installed
 * (so a crash is a crash), has its own hang guard (SIGALRM kills it), and
 * exits 0 when body returns with no failed CHECK, 3 otherwise; body may
 * also _exit() or die. Fork from the test function, never from a task.
 */
static TH_UNUSED void th_run_child(void (*body)(void *), void *arg,
                                   struct th_child *out)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE,
                               SIGABRT, SIGSYS, SIGALRM};
    int p[2];

    memset(out, 0, sizeof *out);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        alarm(TH_GUARD_SECONDS / 2);
        th_reset();
        body(arg);
        _exit(th_failures ? 3 : 0);
    }
    th_collect_child(p, pid, out);
}

/* Print what the child said (for a failing test's log). */
static TH_UNUSED void th_child_dump(const struct th_child *c)
{
    if (WIFEXITED(c->status))
        print_message("child exited with %d\n", WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status))
        print_message("child killed by signal %d (%s)\n", WTERMSIG(c->status),
                      strsignal(WTERMSIG(c->status)));
    print_message("child stderr:\n%s\n", c->err);
}

static TH_UNUSED void th_assert_child_ok(const struct th_child *c)
{
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
        th_child_dump(c);
        fail_msg("the child did not exit with 0");
    }
}

/* ---- io_uring refused by seccomp (in a child) ---- */

#if defined(__x86_64__)
#define TH_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TH_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/*
 * Make io_uring_setup, io_uring_enter and io_uring_register fail with err
 * in this process (and its children) from now on, as a container's
 * default seccomp profile does (Docker's: ENOSYS; others: EPERM). A
 * system call of another architecture's numbering passes. Irreversible:
 * call it only in a fork()ed child. 0, or a negative errno (-ENOTSUP on
 * an architecture this filter does not know).
 */
static TH_UNUSED int th_block_io_uring(int err)
{
#ifdef TH_AUDIT_ARCH
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
#else
    (void)err;
    return -ENOTSUP;
#endif
}

/* ---- a child in a pristine process (fork + exec of the suite) ---- */

/*
 * Some behaviour depends on process-wide state that earlier tests change
 * (signal dispositions: cmocka installs and restores its own handlers
 * around every test). th_run_exec_child() runs a named entry of the
 * suite's child table in a fresh exec of the suite itself, so the result
 * does not depend on which tests ran before. The entry runs with stderr
 * captured as in th_run_child().
 */
struct th_exec_entry {
    const char *name;
    void (*body)(void);
};

static TH_UNUSED void th_run_exec_child(const char *name, struct th_child *out)
{
    int p[2];

    memset(out, 0, sizeof *out);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        signal(SIGALRM, SIG_DFL);
        /* The binary's own path, not /proc/self/exe: under Valgrind
         * that names Valgrind, which will not run it directly. */
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        self[len > 0 ? len : 0] = '\0';
        execl(self, self, "--th-child", name, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    th_collect_child(p, pid, out);
}

static TH_UNUSED int th_exec_dispatch(const struct th_exec_entry *e, size_t n,
                                      const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].name, name) == 0) {
            alarm(TH_GUARD_SECONDS / 2);
            e[i].body();
            _exit(th_failures ? 3 : 0);
        }
    }
    fprintf(stderr, "no child entry named %s\n", name);
    return 126;
}

/* ---- main() of every suite ---- */

/* argv[1], if given, runs only the tests whose names match it (cmocka's
 * pattern: '*' and '?' wildcards), so each test can run alone by name. */
/*
 * Under ThreadSanitizer: a report (also one a suppression then drops)
 * starts the external symbolizer, whose two pipes would look like fds a
 * test leaked. Start it once before any test counts fds, by symbolizing
 * a stack nobody sees.
 */
#if TH_TSAN
#include <sanitizer/common_interface_defs.h>
__attribute__((constructor)) static void th_tsan_symbolizer_first(void)
{
    int saved = dup(2), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved < 0 || null < 0)
        return;
    dup2(null, 2);
    __sanitizer_print_stack_trace();
    dup2(saved, 2);
    close(saved);
    close(null);
}
#endif

/* Children of this process, running or not yet reaped, from /proc --
 * but not the sanitizer's own symbolizer (see above). */
static TH_UNUSED int th_child_count(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        int ppid = 0;
        if (!open || !close || sscanf(close + 1, " %*c %d", &ppid) != 1 ||
            ppid != getpid())
            continue;
        if (strncmp(open + 1, "llvm-symbolizer", 15) != 0)
            n++;
    }
    closedir(d);
    return n;
}

#define TH_MAIN(tests)                                                         \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        if (argc > 1)                                                          \
            cmocka_set_test_filter(argv[1]);                                   \
        return cmocka_run_group_tests(tests, NULL, NULL);                      \
    }

/* The same, for a suite with a table of exec'd children. */
#define TH_MAIN_WITH_CHILDREN(tests, children)                                 \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        if (argc > 2 && strcmp(argv[1], "--th-child") == 0)                    \
            return th_exec_dispatch(                                           \
                children, sizeof children / sizeof children[0], argv[2]);      \
        if (argc > 1)                                                          \
            cmocka_set_test_filter(argv[1]);                                   \
        return cmocka_run_group_tests(tests, NULL, NULL);                      \
    }

/* ---- waiting, inside a task, for other tasks to reach a state ---- */

typedef size_t (*count_fn)(const void *obj);

/* Yield (shielded) until f(obj) == want, e.g. a primitive's waiters. */
static TH_UNUSED bool yield_until_at(count_fn f, const void *obj, size_t want,
                                     const char *file, int line)
{
    size_t now = 0;
    for (int i = 0; i < 100000; i++) {
        now = f(obj);
        if (now == want)
            return true;
        if (weft_cancel_shielded_checkpoint() != 0)
            break;
    }
    return th_fail_at(file, line, "waiters: %zu, expected %zu", now, want);
}
#define yield_until(f, obj, want)                                              \
    yield_until_at(f, obj, want, __FILE__, __LINE__)

#endif
