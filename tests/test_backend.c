/* SPDX-License-Identifier: MIT */
/*
 * tests/test_backend.c - the two backends (API.md, "Backends"):
 * weft_backend_name() in a loop and after it, weft_options.backend, the
 * environment variable WEFT_BACKEND (which overrides the option), bad
 * values of either (-EINVAL, saying which), weft/uring.h refused on
 * epoll (-ENOTSUP), the WEFT_DIAG / WEFT_OPT_DIAG line (once per
 * process), a descriptor number reused after a close(2) weft did not
 * see, and a seccomp filter refusing io_uring: WEFT_BACKEND_AUTO
 * falls back to epoll and a small program (TCP echo, a file, a sleep
 * with a deadline, a cancelled receive) runs unchanged, while a forced
 * WEFT_BACKEND_URING fails saying why.
 *
 * Whatever changes the environment or installs a filter runs in a
 * fork()ed child (th_run_child), so that the other tests, and the
 * WEFT_BACKEND scripts/test sets for a whole run, are left as they are.
 */
#include "helpers.h"

#include <pthread.h>
#include <sys/stat.h>

/* ---- helpers ---- */

/* In a child: WEFT_BACKEND set to v, or unset (v NULL). */
static void set_backend_env(const char *v)
{
    if (v)
        setenv("WEFT_BACKEND", v, 1);
    else
        unsetenv("WEFT_BACKEND");
}

static bool is_backend_name(const char *name)
{
    return name &&
           (strcmp(name, "io_uring") == 0 || strcmp(name, "epoll") == 0);
}

struct seen {
    const char *name;  /* weft_backend_name() in the loop */
    const char *again; /* the same after a trip through the loop */
    bool ran;
};

static int name_main(void *arg)
{
    struct seen *s = arg;
    s->ran = true;
    s->name = weft_backend_name();
    CHECK_EQ(weft_sleep(1 * WEFT_MSEC), 0);
    s->again = weft_backend_name();
    return 0;
}

/* Run a loop with the given backend option; what it saw in *s. */
static int run_backend(unsigned backend, unsigned flags, struct seen *s)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    o.backend = backend;
    o.flags = flags;
    memset(s, 0, sizeof *s);
    return weft_run(name_main, s, &o);
}

/* In a loop on the epoll backend: weft/uring.h's calls are refused. */
static void check_uring_refused(void)
{
    CHECK(weft_uring_sqe() == NULL);
    CHECK_EQ(weft_uring_await(NULL), -ENOTSUP);
    CHECK_EQ(weft_uring_await_until(NULL, WEFT_FOREVER), -ENOTSUP);
    CHECK_EQ(weft_uring_setup_flags(), 0);
    CHECK(!weft_uring_has_op(IORING_OP_NOP));
}

/* In a loop on io_uring: they work (a NOP goes through the ring). */
static void check_uring_works(void)
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!CHECK(sqe != NULL))
        return;
    io_uring_prep_nop(sqe);
    CHECK_EQ(weft_uring_await(sqe), 0);
    CHECK(weft_uring_has_op(IORING_OP_NOP));
}

static int uring_calls_main(void *arg)
{
    const char *name = weft_backend_name();
    *(const char **)arg = name;
    if (name && strcmp(name, "epoll") == 0)
        check_uring_refused();
    else
        check_uring_works();
    return 0;
}

/* ---- weft_backend_name ---- */

static void *thread_name(void *arg)
{
    *(const char **)arg = weft_backend_name();
    return NULL;
}

/* In the suite's own environment (whatever WEFT_BACKEND scripts/test set):
 * the name inside, the same after weft_run, NULL on a thread that never
 * ran a loop. */
static void test_backend_name_in_a_loop_and_after(void **state)
{
    struct seen s;
    memset(&s, 0, sizeof s);
    run_in_loop(name_main, &s);
    assert_true(s.ran);
    assert_true(is_backend_name(s.name));
    assert_string_equal(s.again, s.name);
    assert_non_null(weft_backend_name());
    assert_string_equal(weft_backend_name(), s.name);

    const char *env = getenv("WEFT_BACKEND");
    if (env && strcmp(env, "epoll") == 0)
        assert_string_equal(s.name, "epoll");
    else if (env && strcmp(env, "uring") == 0)
        assert_string_equal(s.name, "io_uring");

    const char *other = "unset";
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, thread_name, &other), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_null(other);
}

/* weft/uring.h's calls: refused (-ENOTSUP, NULL) on epoll, working on
 * io_uring -- in the suite's own environment. */
static void test_backend_uring_calls_follow_the_backend(void **state)
{
    const char *name = NULL;
    run_in_loop(uring_calls_main, &name);
    assert_true(is_backend_name(name));
}

/* options.backend: EPOLL gives epoll, URING io_uring; after weft_run the
 * name is the last loop's. */
static void option_child(void *arg)
{
    (void)arg;
    struct seen s;
    const char *in = NULL;
    weft_options o;

    set_backend_env(NULL);
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK(s.ran);
    CHECK_STR_EQ(s.name, "epoll");
    CHECK_STR_EQ(s.again, "epoll");
    CHECK_STR_EQ(weft_backend_name(), "epoll");
    memset(&o, 0, sizeof o);
    o.backend = WEFT_BACKEND_EPOLL;
    CHECK_EQ(weft_run(uring_calls_main, &in, &o), 0);
    CHECK_STR_EQ(in, "epoll");

    CHECK_EQ(run_backend(WEFT_BACKEND_URING, 0, &s), 0);
    CHECK_STR_EQ(s.name, "io_uring");
    CHECK_STR_EQ(weft_backend_name(), "io_uring"); /* the last loop's */
    o.backend = WEFT_BACKEND_URING;
    CHECK_EQ(weft_run(uring_calls_main, &in, &o), 0);
    CHECK_STR_EQ(in, "io_uring");

    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK_STR_EQ(weft_backend_name(), "epoll");
}

static void test_backend_option_chooses(void **state)
{
    struct th_child c;
    th_run_child(option_child, NULL, &c);
    th_assert_child_ok(&c);
}

/* A bad options.backend: -EINVAL before main runs, and weft_strerror says
 * what was wrong; the next good weft_run is unaffected. */
static void bad_option_child(void *arg)
{
    (void)arg;
    struct seen s;

    set_backend_env(NULL);
    int rc = run_backend(7, 0, &s);
    CHECK_EQ(rc, -EINVAL);
    CHECK(!s.ran);
    const char *why = weft_strerror(rc);
    fprintf(stderr, "weft_strerror: %s\n", why);
    CHECK(strstr(why, "backend") != NULL);
    CHECK(weft_task_current() == NULL);
    CHECK_EQ(run_backend(WEFT_BACKEND_AUTO, 0, &s), 0);
    CHECK(s.ran);
}

static void test_backend_option_invalid_is_einval(void **state)
{
    struct th_child c;
    th_run_child(bad_option_child, NULL, &c);
    print_message("%s", c.err);
    th_assert_child_ok(&c);
}

/* A bad WEFT_BACKEND: -EINVAL for every loop, whatever the option, and
 * weft_strerror names the variable. */
static void bad_env_child(void *arg)
{
    (void)arg;
    struct seen s;
    static const char *const bad[] = {"kqueue", "URING", "epoll ", "1"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_backend_env(bad[i]);
        for (unsigned b = WEFT_BACKEND_AUTO; b <= WEFT_BACKEND_EPOLL; b++) {
            int rc = run_backend(b, 0, &s);
            CHECK_EQ(rc, -EINVAL);
            CHECK(!s.ran);
            const char *why = weft_strerror(rc);
            if (!CHECK(strstr(why, "WEFT_BACKEND") != NULL))
                fprintf(stderr, "WEFT_BACKEND=\"%s\": %s\n", bad[i], why);
        }
    }
    /* Empty is unset: the option decides. */
    set_backend_env("");
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK_STR_EQ(s.name, "epoll");
}

static void test_backend_env_invalid_is_einval(void **state)
{
    struct th_child c;
    th_run_child(bad_env_child, NULL, &c);
    th_assert_child_ok(&c);
}

/* WEFT_BACKEND overrides options.backend for every loop. */
static void env_child(void *arg)
{
    (void)arg;
    struct seen s;

    set_backend_env("epoll");
    CHECK_EQ(run_backend(WEFT_BACKEND_URING, 0, &s), 0);
    CHECK_STR_EQ(s.name, "epoll");
    CHECK_EQ(run_backend(WEFT_BACKEND_AUTO, 0, &s), 0);
    CHECK_STR_EQ(s.name, "epoll");

    set_backend_env("uring");
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK_STR_EQ(s.name, "io_uring");
    set_backend_env("io_uring");
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK_STR_EQ(s.name, "io_uring");

    /* auto: what AUTO gives without the variable, whatever the option */
    set_backend_env(NULL);
    CHECK_EQ(run_backend(WEFT_BACKEND_AUTO, 0, &s), 0);
    const char *automatic = s.name;
    set_backend_env("auto");
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK_STR_EQ(s.name, automatic);
}

static void test_backend_env_overrides_option(void **state)
{
    struct th_child c;
    th_run_child(env_child, NULL, &c);
    th_assert_child_ok(&c);
}

/* ---- descriptors weft did not close ---- */

static int wait_readable_task(void *arg)
{
    return weft_wait_readable(*(int *)arg);
}

static int write_one_task(void *arg)
{
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0); /* the reader waits first */
    return write(*(int *)arg, "x", 1) == 1 ? 0 : -errno;
}

/*
 * A program waits on its own descriptor, closes it with close(2) (weft
 * never sees that), and gets the same number back for a new pipe: a wait
 * on the new one ends when data comes, as for any descriptor. (The epoll
 * backend must not take the new file for the old one it had registered.)
 */
static int fd_reuse_main(void *arg)
{
    (void)arg;
    int p[2], q[2];
    if (!th_pipe(p))
        return -EIO;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, wait_readable_task, &p[0]), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    th_close_pipe(p);

    if (!th_pipe(q))
        return -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, write_one_task, &q[1]), 0);
    weft_scope guard; /* a hang guard, not a timing */
    weft_fail_after(&guard, 10 * WEFT_SEC);
    int rc = weft_wait_readable(q[0]);
    CHECK_EQ(weft_scope_exit(&guard, rc), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    char c;
    CHECK_EQ(read(q[0], &c, 1), 1);
    th_close_pipe(q);
    return 0;
}

static void test_backend_fd_number_reused_after_close(void **state)
{
    run_in_loop(fd_reuse_main, NULL);
}

/* ---- the diagnostic line ---- */

/* Lines of text that start with "weft: backend", the first in *first. */
static int backend_lines(const char *text, char *first, size_t len)
{
    int n = 0;
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (strncmp(p, "weft: backend", 13) == 0) {
            if (n == 0 && first)
                snprintf(first, len, "%.*s", (int)l, p);
            n++;
        }
        p = end ? end + 1 : NULL;
    }
    return n;
}

static void *thread_loop(void *arg)
{
    struct seen s;
    *(int *)arg = run_backend(WEFT_BACKEND_AUTO, 0, &s);
    return NULL;
}

/* WEFT_DIAG=1: one line for three loops (two in a row on this thread, one
 * on another), naming the first loop's backend. */
static void diag_env_child(void *arg)
{
    (void)arg;
    struct seen s;
    int trc = -1;
    pthread_t t;

    set_backend_env(NULL);
    setenv("WEFT_DIAG", "1", 1);
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK_EQ(run_backend(WEFT_BACKEND_URING, 0, &s), 0);
    CHECK_EQ(pthread_create(&t, NULL, thread_loop, &trc), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(trc, 0);
}

static void test_backend_diag_env_says_once(void **state)
{
    struct th_child c;
    char line[256] = "";
    th_run_child(diag_env_child, NULL, &c);
    print_message("%s", c.err);
    th_assert_child_ok(&c);
    assert_int_equal(backend_lines(c.err, line, sizeof line), 1);
    assert_non_null(strstr(line, "weft: backend epoll"));
}

/* WEFT_OPT_DIAG: the same, asked for by a loop's option; the line names
 * the backend it got. */
static void diag_opt_child(void *arg)
{
    (void)arg;
    struct seen s;

    set_backend_env(NULL);
    unsetenv("WEFT_DIAG");
    CHECK_EQ(run_backend(WEFT_BACKEND_AUTO, 0, &s), 0); /* no diag asked */
    CHECK_EQ(run_backend(WEFT_BACKEND_URING, WEFT_OPT_DIAG, &s), 0);
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, WEFT_OPT_DIAG, &s), 0);
}

static void test_backend_diag_option_says_once(void **state)
{
    struct th_child c;
    char line[256] = "";
    th_run_child(diag_opt_child, NULL, &c);
    th_assert_child_ok(&c);
    assert_int_equal(backend_lines(c.err, line, sizeof line), 1);
    assert_string_equal(line, "weft: backend io_uring");
}

/* Without WEFT_DIAG or the option (or with WEFT_DIAG=0): no line. */
static void diag_off_child(void *arg)
{
    (void)arg;
    struct seen s;

    set_backend_env(NULL);
    unsetenv("WEFT_DIAG");
    CHECK_EQ(run_backend(WEFT_BACKEND_AUTO, 0, &s), 0);
    setenv("WEFT_DIAG", "0", 1);
    CHECK_EQ(run_backend(WEFT_BACKEND_EPOLL, 0, &s), 0);
    CHECK_EQ(run_backend(WEFT_BACKEND_URING, 0, &s), 0);
}

static void test_backend_diag_off_says_nothing(void **state)
{
    struct th_child c;
    th_run_child(diag_off_child, NULL, &c);
    th_assert_child_ok(&c);
    assert_int_equal(backend_lines(c.err, NULL, 0), 0);
}

/* ---- io_uring refused by seccomp ---- */

/* A small program that knows nothing of backends. */

struct echo {
    weft_listener *l;
    int rc;
};

/* Accept one connection and echo it until its end. */
static int echo_server(void *arg)
{
    struct echo *e = arg;
    weft_stream *s;
    e->rc = weft_listener_accept(e->l, &s);
    if (!CHECK_EQ(e->rc, 0))
        return e->rc;
    char buf[4096];
    ssize_t n;
    while ((n = weft_stream_recv(s, buf, sizeof buf)) > 0)
        if (!CHECK_EQ(weft_stream_send(s, buf, (size_t)n), n))
            break;
    CHECK_EQ(n, 0);
    CHECK_EQ(weft_stream_close(s), 0);
    return 0;
}

static void tcp_echo(void)
{
    struct echo e = {0};
    weft_group g;

    if (!CHECK_EQ(weft_tcp_listen(&e.l, "127.0.0.1", 0), 0))
        return;
    int port = weft_listener_port(e.l);
    CHECK_GT(port, 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, echo_server, &e), 0);
    weft_stream *c;
    if (CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), 0)) {
        static char out[100000], in[sizeof out];
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (char)(i * 7 + i / 251);
        /* in chunks, each echoed before the next goes */
        for (size_t at = 0; at < sizeof out; at += 4096) {
            size_t n = sizeof out - at < 4096 ? sizeof out - at : 4096;
            if (!CHECK_EQ(weft_stream_send(c, out + at, n), (ssize_t)n) ||
                !CHECK_EQ(weft_stream_recv_exactly(c, in + at, n), (ssize_t)n))
                break;
        }
        CHECK(memcmp(in, out, sizeof in) == 0);
        CHECK_EQ(weft_stream_send_eof(c), 0);
        char x;
        CHECK_EQ(weft_stream_recv(c, &x, 1), 0); /* the server closed */
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_listener_close(e.l), 0);
}

static void file_round_trip(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-backend-%ld", (long)getpid());
    weft_file *f;
    static const char text[] = "written through weft, read back through weft";
    if (!CHECK_EQ(weft_file_open(&f, path, O_RDWR | O_CREAT | O_TRUNC, 0600),
                  0))
        return;
    CHECK_EQ(weft_file_write(f, text, sizeof text), (ssize_t)sizeof text);
    CHECK_EQ(weft_file_sync(f), 0);
    char back[sizeof text + 8];
    memset(back, 0, sizeof back);
    CHECK_EQ(weft_file_pread(f, back, sizeof back, 0), (ssize_t)sizeof text);
    CHECK(memcmp(back, text, sizeof text) == 0);
    struct statx st;
    if (CHECK_EQ(weft_file_stat(f, &st), 0))
        CHECK_EQ(st.stx_size, sizeof text);
    CHECK_EQ(weft_file_close(f), 0);
    CHECK_EQ(weft_path_unlink(path), 0);
    CHECK_EQ(weft_path_exists(path), 0);
}

static void sleep_with_deadline(void)
{
    weft_time t0 = weft_now();
    CHECK_EQ(weft_sleep(1 * WEFT_MSEC), 0);
    CHECK_GE(weft_now() - t0, 1 * WEFT_MSEC);

    weft_scope s;
    weft_move_on_after(&s, 5 * WEFT_MSEC);
    int rc = weft_sleep(3600 * WEFT_SEC);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    CHECK(weft_scope_cancelled_caught(&s));

    weft_fail_after(&s, 2 * WEFT_MSEC);
    rc = weft_sleep_forever();
    CHECK_EQ(weft_scope_exit(&s, rc), -ETIMEDOUT);
}

struct receiver {
    weft_stream *s;
    weft_scope scope;
    bool entered;
    ssize_t rc;
    int exit_rc;
};

static int receive_task(void *arg)
{
    struct receiver *r = arg;
    char buf[16];
    weft_scope_enter(&r->scope, WEFT_FOREVER);
    r->entered = true;
    r->rc = weft_stream_recv(r->s, buf, sizeof buf);
    r->exit_rc = weft_scope_exit(&r->scope, (int)r->rc);
    return 0;
}

/* A receive blocked on a socket, cancelled from another task: it returns
 * -ECANCELED, and no byte is lost (the next receive gets them all). */
static void cancelled_receive(void)
{
    weft_stream *a, *b;
    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
        return;
    struct receiver r = {.s = a};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, receive_task, &r), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK(r.entered);
    weft_scope_cancel(&r.scope);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(r.rc, -ECANCELED);
    CHECK_EQ(r.exit_rc, 0);
    CHECK_EQ(weft_stream_send(b, "after", 5), 5);
    char buf[16];
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 5), 5);
    CHECK(memcmp(buf, "after", 5) == 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
}

struct program {
    bool ran;
    const char *backend;
};

static int program_main(void *arg)
{
    struct program *p = arg;
    p->ran = true;
    p->backend = weft_backend_name();
    tcp_echo();
    file_round_trip();
    sleep_with_deadline();
    cancelled_receive();
    return 0;
}

/* io_uring is unavailable on this system, for a reason weft_strerror
 * should name: the sysctl, else seccomp. */
static bool uring_disabled_by_sysctl(void)
{
    int disabled = 0;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = 0;
        fclose(f);
    }
    return disabled > 0;
}

enum { NO_FILTER = 77 };

static void seccomp_child(void *arg)
{
    int err = *(int *)arg;
    int rc = th_block_io_uring(err);
    if (rc != 0) {
        fprintf(stderr, "cannot install the seccomp filter: %s\n",
                strerror(-rc));
        _exit(NO_FILTER);
    }
    set_backend_env(NULL);
    setenv("WEFT_DIAG", "1", 1);
    int fds = th_fd_count();

    /* AUTO (the default): the program runs, on epoll */
    struct program p = {0};
    rc = weft_run(program_main, &p, NULL);
    if (!CHECK_EQ(rc, 0))
        fprintf(stderr, "weft_run (AUTO): %s\n", weft_strerror(rc));
    CHECK(p.ran);
    CHECK_STR_EQ(p.backend, "epoll");
    CHECK_STR_EQ(weft_backend_name(), "epoll");
    CHECK_EQ(th_fd_count(), fds);

    /* the same, asked for by the option */
    weft_options o;
    memset(&o, 0, sizeof o);
    o.backend = WEFT_BACKEND_AUTO;
    memset(&p, 0, sizeof p);
    CHECK_EQ(weft_run(program_main, &p, &o), 0);
    CHECK_STR_EQ(p.backend, "epoll");

    /* io_uring forced: refused, saying why; main never runs */
    o.backend = WEFT_BACKEND_URING;
    memset(&p, 0, sizeof p);
    rc = weft_run(program_main, &p, &o);
    const char *why = weft_strerror(rc);
    fprintf(stderr, "weft_run (URING): %d: %s\n", rc, why ? why : "(null)");
    CHECK_EQ(rc, -err);
    CHECK(!p.ran);
    CHECK(why && strcasestr(why, "io_uring"));
    if (uring_disabled_by_sysctl())
        CHECK(why && strstr(why, "io_uring_disabled"));
    else
        CHECK(why && strcasestr(why, "seccomp"));
    CHECK(weft_task_current() == NULL);
    CHECK_EQ(th_fd_count(), fds);

    /* WEFT_BACKEND=uring: the same refusal, whatever the option */
    set_backend_env("uring");
    o.backend = WEFT_BACKEND_EPOLL;
    CHECK_EQ(weft_run(program_main, &p, &o), -err);
    CHECK(!p.ran);
}

static void run_seccomp(int err)
{
    struct th_child c;
    th_run_child(seccomp_child, &err, &c);
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == NO_FILTER) {
        th_child_dump(&c);
        skip();
    }
    print_message("%s", c.err);
    th_assert_child_ok(&c);
    /* The fallback was said once, with io_uring's refusal. */
    char line[512] = "";
    assert_int_equal(backend_lines(c.err, line, sizeof line), 1);
    assert_non_null(strstr(line, "weft: backend epoll ("));
    if (!uring_disabled_by_sysctl())
        assert_non_null(strcasestr(line, "seccomp"));
}

/* Docker's default profile: ENOSYS. */
static void test_backend_seccomp_enosys_auto_falls_back(void **state)
{
    run_seccomp(ENOSYS);
}

/* Other profiles: EPERM. */
static void test_backend_seccomp_eperm_auto_falls_back(void **state)
{
    run_seccomp(EPERM);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_backend_name_in_a_loop_and_after),
    cmocka_unit_test(test_backend_uring_calls_follow_the_backend),
    cmocka_unit_test(test_backend_option_chooses),
    cmocka_unit_test(test_backend_option_invalid_is_einval),
    cmocka_unit_test(test_backend_env_invalid_is_einval),
    cmocka_unit_test(test_backend_env_overrides_option),
    cmocka_unit_test(test_backend_fd_number_reused_after_close),
    cmocka_unit_test(test_backend_diag_env_says_once),
    cmocka_unit_test(test_backend_diag_option_says_once),
    cmocka_unit_test(test_backend_diag_off_says_nothing),
    cmocka_unit_test(test_backend_seccomp_enosys_auto_falls_back),
    cmocka_unit_test(test_backend_seccomp_eperm_auto_falls_back),
};

TH_MAIN(tests)
