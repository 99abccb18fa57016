/* SPDX-License-Identifier: MIT */
/*
 * tests/test_process.c - child processes (weft/process.h): run with any
 * size of input and output, programs that cannot start, exit statuses,
 * cancelled waits and runs reaping their child, close killing a running
 * child, many processes at once with no fd left, the child's signal
 * mask, and the options (env, cwd, stderr into stdout, /dev/null,
 * inherit, extra fds).
 */
#include "helpers.h"

#include <dirent.h>
#include <sys/stat.h>

/* pid is no child of ours any more (reaped: no zombie left). */
static bool gone(int pid)
{
    siginfo_t si;
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
           errno == ECHILD;
}

/* ---- run: any size both ways ---- */

static int t_run_cat_big(void *arg)
{
    (void)arg;
    size_t n = (size_t)16 << 20;
    char *in = malloc(n);
    CHECK(in != NULL);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i * 131 + (i >> 13));
    const char *argv[] = {"cat", NULL};
    char *out = NULL, *err = NULL;
    size_t out_len = 0, err_len = 0;
    int st = -1;
    CHECK_EQ(weft_process_run(argv, in, n, &out, &out_len, &err, &err_len, &st),
             0);
    CHECK_EQ(st, 0);
    CHECK_EQ(out_len, n);
    CHECK(out && memcmp(out, in, n) == 0);
    CHECK(out && out[out_len] == '\0');
    CHECK_EQ(err_len, 0);
    CHECK(err && err[0] == '\0');
    free(out);
    free(err);
    free(in);
    return 0;
}

static void test_run_cat_16mib(void **state)
{
    (void)state;
    run_in_loop(t_run_cat_big, NULL);
}

static int t_run_both(void *arg)
{
    (void)arg;
    /* Much on stderr and on stdout at once: both drained together. */
    const char *argv[] = {"sh", "-c",
                          "head -c 1000000 /dev/zero >&2; "
                          "head -c 2000000 /dev/zero; echo bye >&2",
                          NULL};
    char *out, *err;
    size_t ol, el;
    int st;
    CHECK_EQ(weft_process_run(argv, NULL, 0, &out, &ol, &err, &el, &st), 0);
    CHECK_EQ(ol, 2000000);
    CHECK_EQ(el, 1000004);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(out);
    free(err);
    /* discarded */
    CHECK_EQ(weft_process_run(argv, NULL, 0, NULL, NULL, NULL, NULL, &st), 0);
    CHECK_EQ(st, 0);
    return 0;
}

static void test_run_stdout_and_stderr(void **state)
{
    (void)state;
    run_in_loop(t_run_both, NULL);
}

/* ---- programs that cannot start ---- */

static int t_cannot_start(void *arg)
{
    const char *dir = arg;
    const char *missing[] = {"weft-no-such-program-anywhere", NULL};
    weft_process *p = (weft_process *)1;
    CHECK_EQ(weft_process_open(&p, missing, NULL), -ENOENT);
    CHECK(p == NULL);
    CHECK_EQ(weft_process_run(missing, NULL, 0, NULL, NULL, NULL, NULL, NULL),
             -ENOENT);
    const char *abs_missing[] = {"/nonexistent/weft/prog", NULL};
    CHECK_EQ(weft_process_open(&p, abs_missing, NULL), -ENOENT);
    char path[512];
    snprintf(path, sizeof path, "%s/noexec.sh", dir);
    const char *noexec[] = {path, NULL};
    CHECK_EQ(weft_process_open(&p, noexec, NULL), -EACCES);
    CHECK_EQ(weft_process_run(noexec, "x", 1, NULL, NULL, NULL, NULL, NULL),
             -EACCES);
    /* bad arguments */
    CHECK_EQ(weft_process_open(NULL, missing, NULL), -EINVAL);
    CHECK_EQ(weft_process_open(&p, NULL, NULL), -EINVAL);
    weft_process_opts o = {.out = {.how = WEFT_STDIO_TO_STDOUT}};
    const char *tru[] = {"true", NULL};
    CHECK_EQ(weft_process_open(&p, tru, &o), -EINVAL);
    return 0;
}

static void test_cannot_start(void **state)
{
    (void)state;
    char dir[] = "/tmp/weft-proc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/noexec.sh", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    chmod(path, 0644);
    int before = th_fd_count();
    run_in_loop(t_cannot_start, dir);
    assert_int_equal(th_fd_count(), before);
    unlink(path);
    rmdir(dir);
    const char *argv[] = {"true", NULL};
    weft_process *p;
    assert_int_equal(weft_process_open(&p, argv, NULL), -EPERM);
}

/* ---- exit statuses ---- */

static int t_statuses(void *arg)
{
    (void)arg;
    int st = -1;
    const char *exit3[] = {"sh", "-c", "exit 3", NULL};
    CHECK_EQ(weft_process_run(exit3, NULL, 0, NULL, NULL, NULL, NULL, &st), 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    const char *kill9[] = {"sh", "-c", "kill -9 $$", NULL};
    CHECK_EQ(weft_process_run(kill9, NULL, 0, NULL, NULL, NULL, NULL, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    weft_process *p;
    const char *cat[] = {"cat", NULL};
    CHECK_EQ(weft_process_open(&p, cat, NULL), 0);
    CHECK_GT(weft_process_pid(p), 0);
    CHECK_EQ(weft_process_signal(p, 0), 0);
    CHECK_EQ(weft_process_signal(p, SIGTERM), 0);
    st = weft_process_wait(p);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    CHECK_EQ(weft_process_wait(p), st); /* again: the same */
    CHECK_EQ(weft_process_signal(p, SIGTERM), -ESRCH);
    CHECK_EQ(weft_process_close(p), 0);
    return 0;
}

static void test_exit_statuses(void **state)
{
    (void)state;
    run_in_loop(t_statuses, NULL);
}

/* ---- streams by hand ---- */

static int t_streams(void *arg)
{
    (void)arg;
    weft_process *p;
    const char *argv[] = {"tr", "a-z", "A-Z", NULL};
    CHECK_EQ(weft_process_open(&p, argv, NULL), 0);
    CHECK(weft_process_stdin(p) && weft_process_stdout(p) &&
          weft_process_stderr(p));
    CHECK_EQ(weft_stream_send(weft_process_stdin(p), "hello\n", 6), 6);
    CHECK_EQ(weft_stream_send_eof(weft_process_stdin(p)), 0);
    char buf[64];
    CHECK_EQ(weft_stream_recv_exactly(weft_process_stdout(p), buf, 6), 6);
    CHECK(memcmp(buf, "HELLO\n", 6) == 0);
    CHECK_EQ(weft_stream_recv(weft_process_stdout(p), buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_recv(weft_process_stderr(p), buf, sizeof buf), 0);
    CHECK_EQ(weft_process_wait(p), 0);
    CHECK_EQ(weft_process_close(p), 0);

    /* A write into a child that is gone: -EPIPE, and no SIGPIPE. */
    const char *tru[] = {"true", NULL};
    CHECK_EQ(weft_process_open(&p, tru, NULL), 0);
    CHECK_EQ(weft_process_wait(p), 0);
    CHECK_EQ(weft_stream_send(weft_process_stdin(p), "x", 1), -EPIPE);
    CHECK_EQ(weft_process_close(p), 0);
    return 0;
}

static void test_streams(void **state)
{
    (void)state;
    run_in_loop(t_streams, NULL);
}

/* ---- cancellation ---- */

static int cancelled_pid;

static int t_wait_cancelled(void *arg)
{
    (void)arg;
    weft_process *p;
    const char *argv[] = {"sleep", "100", NULL};
    CHECK_EQ(weft_process_open(&p, argv, NULL), 0);
    cancelled_pid = weft_process_pid(p);
    weft_scope s;
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    int rc = weft_process_wait(p);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    CHECK(gone(cancelled_pid));
    /* reaped: killed by SIGKILL */
    int st = weft_process_wait(p);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK_EQ(weft_process_close(p), 0);
    return 0;
}

static void test_wait_cancelled_reaps(void **state)
{
    (void)state;
    run_in_loop(t_wait_cancelled, NULL);
    assert_true(gone(cancelled_pid));
}

static int t_run_cancelled(void *arg)
{
    (void)arg;
    /* The child writes its pid, then sleeps. */
    const char *argv[] = {"sh", "-c", "echo $$; exec sleep 100", NULL};
    weft_scope s;
    weft_move_on_after(&s, 100 * WEFT_MSEC);
    char *out = NULL;
    int rc = weft_process_run(argv, NULL, 0, &out, NULL, NULL, NULL, NULL);
    CHECK_EQ(rc, -ECANCELED);
    CHECK(out == NULL);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    return 0;
}

static void test_run_cancelled_reaps(void **state)
{
    (void)state;
    int before = th_fd_count();
    run_in_loop(t_run_cancelled, NULL);
    assert_int_equal(th_fd_count(), before);
    /* No child of ours is left, zombie or not. */
    assert_int_equal(th_child_count(), 0);
}

static int t_close_kills(void *arg)
{
    (void)arg;
    weft_process *p;
    const char *argv[] = {"sleep", "100", NULL};
    CHECK_EQ(weft_process_open(&p, argv, NULL), 0);
    int pid = weft_process_pid(p);
    weft_time t0 = weft_now();
    CHECK_EQ(weft_process_close(p), 0);
    CHECK_LT(weft_now() - t0, 5 * WEFT_SEC);
    CHECK(gone(pid));
    /* its own group: the grandchild dies too */
    weft_process_opts o = {.new_group = true};
    const char *sh[] = {"sh", "-c", "sleep 100 & echo $!; wait", NULL};
    CHECK_EQ(weft_process_open(&p, sh, &o), 0);
    char buf[32] = {0};
    CHECK_GT(weft_stream_recv_until(weft_process_stdout(p), buf, sizeof buf - 1,
                                    "\n", 1),
             0);
    int grandchild = atoi(buf);
    CHECK_GT(grandchild, 0);
    CHECK_EQ(weft_process_close(p), 0);
    /* reaped by init (it was not ours): gone within a while */
    for (int i = 0; i < 500 && kill(grandchild, 0) == 0; i++)
        weft_sleep(10 * WEFT_MSEC);
    CHECK(kill(grandchild, 0) < 0);
    return 0;
}

static void test_close_kills_running_child(void **state)
{
    (void)state;
    run_in_loop(t_close_kills, NULL);
}

/* ---- many at once ---- */

static int one_run(void *arg)
{
    int i = (int)(intptr_t)arg;
    char script[64];
    snprintf(script, sizeof script, "echo %d", i);
    const char *argv[] = {"sh", "-c", script, NULL};
    char *out;
    int st;
    int rc = weft_process_run(argv, NULL, 0, &out, NULL, NULL, NULL, &st);
    if (rc < 0)
        return rc;
    CHECK_EQ(st, 0);
    CHECK_EQ(atoi(out), i);
    free(out);
    return 0;
}

static int t_many(void *arg)
{
    (void)arg;
    weft_group g;
    weft_group_enter(&g);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(weft_group_spawn(&g, one_run, (void *)(intptr_t)i), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void test_64_concurrent(void **state)
{
    (void)state;
    int before = th_fd_count();
    run_in_loop(t_many, NULL);
    assert_int_equal(th_fd_count(), before);
}

/* ---- the child's signal mask ---- */

static int t_sigmask(void *arg)
{
    (void)arg;
    const char *argv[] = {"sh", "-c", "grep SigBlk /proc/self/status", NULL};
    char *out;
    int st;
    CHECK_EQ(weft_process_run(argv, NULL, 0, &out, NULL, NULL, NULL, &st), 0);
    CHECK(strstr(out, "0000000000000000") != NULL);
    free(out);
    const char *term[] = {"sh", "-c", "kill -TERM $$; exit 0", NULL};
    CHECK_EQ(weft_process_run(term, NULL, 0, NULL, NULL, NULL, NULL, &st), 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    return 0;
}

static void test_child_signal_mask_clean(void **state)
{
    (void)state;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    struct sigaction ign = {.sa_handler = SIG_IGN}, oldsa;
    sigaction(SIGINT, &ign, &oldsa);
    run_in_loop(t_sigmask, NULL);
    sigaction(SIGINT, &oldsa, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- options ---- */

static int t_options(void *arg)
{
    (void)arg;
    weft_process *p;
    char buf[256];
    ssize_t n;

    /* env */
    const char *envp[] = {"WEFT_X=42", "PATH=/usr/bin:/bin", NULL};
    weft_process_opts o = {.envp = envp};
    const char *env[] = {"sh", "-c", "echo $WEFT_X-$HOME", NULL};
    CHECK_EQ(weft_process_open(&p, env, &o), 0);
    n = weft_stream_recv_until(weft_process_stdout(p), buf, sizeof buf, "\n",
                               1);
    CHECK_EQ(n, 3);
    CHECK(memcmp(buf, "42-", 3) == 0);
    CHECK_EQ(weft_process_wait(p), 0);
    weft_process_close(p);

    /* cwd */
    memset(&o, 0, sizeof o);
    o.cwd = "/proc";
    const char *pwd[] = {"pwd", NULL};
    CHECK_EQ(weft_process_open(&p, pwd, &o), 0);
    n = weft_stream_recv_until(weft_process_stdout(p), buf, sizeof buf, "\n",
                               1);
    CHECK_EQ(n, 5);
    CHECK(memcmp(buf, "/proc", 5) == 0);
    weft_process_close(p);

    /* stderr into stdout; stdin /dev/null */
    memset(&o, 0, sizeof o);
    o.err.how = WEFT_STDIO_TO_STDOUT;
    o.in.how = WEFT_STDIO_DEVNULL;
    const char *both[] = {"sh", "-c", "echo a; echo b >&2; cat; echo c", NULL};
    CHECK_EQ(weft_process_open(&p, both, &o), 0);
    CHECK(weft_process_stdin(p) == NULL && weft_process_stderr(p) == NULL);
    n = weft_stream_recv_exactly(weft_process_stdout(p), buf, 6);
    CHECK_EQ(n, 6);
    CHECK(memcmp(buf, "a\nb\nc\n", 6) == 0);
    CHECK_EQ(weft_process_wait(p), 0);
    weft_process_close(p);

    /* a caller's fd for stdout, inherit for stderr, an extra fd */
    int fds[2], extra[2];
    CHECK(th_pipe(fds));
    CHECK(th_pipe(extra));
    memset(&o, 0, sizeof o);
    o.out.how = WEFT_STDIO_FD;
    o.out.fd = fds[1];
    o.err.how = WEFT_STDIO_INHERIT;
    weft_process_fd x = {.fd = extra[1], .child_fd = 7};
    o.fds = &x;
    o.nfds = 1;
    o.new_session = true;
    const char *fd7[] = {"sh", "-c",
                         "echo out; echo seven >&7; "
                         "ls /proc/self/fd | wc -l",
                         NULL};
    CHECK_EQ(weft_process_open(&p, fd7, &o), 0);
    CHECK(weft_process_stdout(p) == NULL);
    CHECK_EQ(weft_process_wait(p), 0);
    weft_process_close(p);
    close(fds[1]);
    close(extra[1]);
    n = read(fds[0], buf, sizeof buf - 1);
    CHECK_GT(n, 0);
    buf[n > 0 ? n : 0] = 0;
    /* 0, 1, 2, 7 and ls's own directory fd, in `ls` */
    if (!CHECK(strncmp(buf, "out\n5\n", 6) == 0))
        fprintf(stderr, "got: %s\n", buf);
    n = read(extra[0], buf, sizeof buf);
    CHECK_EQ(n, 6);
    CHECK(memcmp(buf, "seven\n", 6) == 0);
    close(fds[0]);
    close(extra[0]);
    return 0;
}

static void test_options(void **state)
{
    (void)state;
    int before = th_fd_count();
    run_in_loop(t_options, NULL);
    assert_int_equal(th_fd_count(), before);
}

/* ---- under the sweep: every cancellation point, and faults ---- */

static int scenario_run(void *arg)
{
    (void)arg;
    const char *argv[] = {"cat", NULL};
    static char in[200000];
    char *out = NULL;
    size_t ol = 0;
    int st = -1;
    int rc = weft_process_run(argv, in, sizeof in, &out, &ol, NULL, NULL, &st);
    if (rc < 0)
        return rc;
    bool ok = ol == sizeof in && st == 0;
    free(out);
    return ok ? 0 : -EPROTO;
}

static void test_sweep_run(void **state)
{
    (void)state;
    static const int allowed[] = {-EIO, -ENOMEM, -EPIPE, -EAGAIN, -EINTR};
    weft_sweep_opts o = {.budget = 20 * WEFT_SEC,
                         .fault_seeds = 8,
                         .allowed = allowed,
                         .nallowed = 5,
                         .verbose = true};
    weft_sweep_result r;
    th_guard(TH_GUARD_SECONDS * 2);
    int rc = weft_sweep(scenario_run, NULL, &o, &r);
    th_guard_off();
    assert_int_equal(rc, 0);
    assert_int_equal(r.leaks, 0);
    assert_int_equal(th_child_count(), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_cat_16mib),
        cmocka_unit_test(test_run_stdout_and_stderr),
        cmocka_unit_test(test_cannot_start),
        cmocka_unit_test(test_exit_statuses),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_wait_cancelled_reaps),
        cmocka_unit_test(test_run_cancelled_reaps),
        cmocka_unit_test(test_close_kills_running_child),
        cmocka_unit_test(test_64_concurrent),
        cmocka_unit_test(test_child_signal_mask_clean),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_sweep_run),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
