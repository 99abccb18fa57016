/* SPDX-License-Identifier: MIT */
/*
 * tests/test_faults.c - fault injection (weft/testing.h): off unless asked
 * for, reproducible from its seed, each kind of fault seen, and the
 * WEFT_FAULTS variable and the replay line a failing run prints.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <weft/testing.h>

size_t wf_alloc_live(void); /* engine/alloc.c: weft's live allocations */

static weft_options with_faults(weft_faults *f, uint64_t seed, unsigned kinds,
                                unsigned rate)
{
    f->seed = seed;
    f->kinds = kinds;
    f->rate = rate;
    weft_options o;
    memset(&o, 0, sizeof o);
    o.faults = f;
    return o;
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int sock_op(int op, int fd, void *buf, unsigned len, int flags)
{
    struct io_uring_sqe *sqe = th_sqe(); /* on either backend */
    if (!sqe)
        return -ENOBUFS;
    if (op == IORING_OP_SEND)
        io_uring_prep_send(sqe, fd, buf, len, flags);
    else
        io_uring_prep_recv(sqe, fd, buf, len, flags);
    return weft_uring_await(sqe);
}

/* ---- off by default ---- */

static int task_reports_off(void *arg)
{
    CHECK_EQ(weft_faults_seed(), 0);
    CHECK_EQ(weft_faults_injected(), 0);
    CHECK_EQ(th_nop(), 0);
    return 0;
}

static void child_off(void *arg)
{
    unsetenv("WEFT_FAULTS");
    CHECK_EQ(weft_run(task_reports_off, NULL, NULL), 0);
    CHECK_EQ(weft_faults_seed(), 0); /* no loop: 0 */
}

static void test_faults_are_off_without_options_or_variable(void **state)
{
    struct th_child c;
    th_run_child(child_off, NULL, &c);
    th_assert_child_ok(&c);
}

/* ---- the same seed makes the same faults ---- */

enum { ROUNDS = 200 };

struct trace {
    int res[2 * ROUNDS];
    uint64_t injected, seed;
};

/* Sends and non-blocking receives over a socketpair, one task: every
 * result depends only on the faults. */
static int task_trace(void *arg)
{
    struct trace *tr = arg;
    char out[64], in[64];
    memset(out, 'x', sizeof out);
    for (int i = 0; i < ROUNDS; i++) {
        int sv[2]; /* a fresh pair: an injected reset ends a connection */
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        tr->res[2 * i] = sock_op(IORING_OP_SEND, sv[0], out, sizeof out, 0);
        tr->res[2 * i + 1] =
            sock_op(IORING_OP_RECV, sv[1], in, sizeof in, MSG_DONTWAIT);
        close(sv[0]);
        close(sv[1]);
    }
    tr->injected = weft_faults_injected();
    tr->seed = weft_faults_seed();
    return 0;
}

static void trace_run(uint64_t seed, struct trace *tr)
{
    weft_faults f;
    weft_options o = with_faults(
        &f, seed, WEFT_FAULT_ERRORS | WEFT_FAULT_SHORT | WEFT_FAULT_DELAY,
        200000);
    memset(tr, 0, sizeof *tr);
    assert_rc(run_loop(task_trace, tr, &o), 0);
}

static void test_same_seed_gives_same_results(void **state)
{
    struct trace a, b, c;
    trace_run(42, &a);
    trace_run(42, &b);
    trace_run(43, &c);
    assert_int_equal(a.seed, 42);
    assert_true(a.injected > 0);
    assert_int_equal(a.injected, b.injected);
    assert_memory_equal(a.res, b.res, sizeof a.res);
    assert_memory_not_equal(a.res, c.res, sizeof a.res);
    bool error = false, shortened = false;
    for (int i = 0; i < 2 * ROUNDS; i++) {
        error |= a.res[i] == -ECONNRESET || a.res[i] == -EPIPE ||
                 a.res[i] == -ENOMEM;
        shortened |= a.res[i] > 0 && a.res[i] < 64;
    }
    assert_true(error);
    assert_true(shortened);
}

/* ---- each kind ---- */

static int task_errors(void *arg)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char buf[8] = "abcdefg";
    int rc = sock_op(IORING_OP_SEND, sv[0], buf, sizeof buf, 0);
    CHECK(rc == -ECONNRESET || rc == -EPIPE || rc == -ENOMEM);
    /* Decided before submission: nothing was sent (and a reset is seen
     * by the peer as the end of the stream). */
    ssize_t n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
    if (rc == -ENOMEM)
        CHECK(n == -1 && errno == EAGAIN);
    else
        CHECK_EQ(n, 0);
    rc = sock_op(IORING_OP_RECV, sv[1], buf, sizeof buf, MSG_DONTWAIT);
    CHECK(rc == -ECONNRESET || rc == -ENOMEM);
    CHECK_EQ(th_nop(), 0); /* a NOP cannot fail: left alone */
    CHECK_EQ(weft_faults_injected(), 2);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_errors_replace_operations_before_submission(void **state)
{
    weft_faults f;
    weft_options o = with_faults(&f, 5, WEFT_FAULT_ERRORS, 1000000);
    run_in_loop_opts(task_errors, NULL, &o, 0);
}

/* A datagram socket cannot be reset: an injected error on it is a
 * transient one, and the socket still works afterwards (a "reset" UDP
 * socket used to be shut down, and failed every later send with -EPIPE,
 * which hung test_net's UDP test under seed 2). */
static int task_errors_datagram(void *arg)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    char buf[8] = "abcdefg";
    for (int i = 0; i < 16; i++) {
        int rc = sock_op(i % 2 ? IORING_OP_RECV : IORING_OP_SEND, sv[i % 2],
                         buf, sizeof buf, MSG_DONTWAIT);
        CHECK_EQ(rc, -ENOMEM);
    }
    CHECK_EQ(weft_faults_injected(), 16);
    /* Both ends as they were: a datagram each way goes through. */
    CHECK_EQ(send(sv[0], "ping", 4, MSG_DONTWAIT), 4);
    CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), 4);
    CHECK_EQ(send(sv[1], "pong", 4, MSG_DONTWAIT), 4);
    CHECK_EQ(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), 4);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_errors_on_a_datagram_socket_do_not_break_it(void **state)
{
    weft_faults f;
    weft_options o = with_faults(&f, 5, WEFT_FAULT_ERRORS, 1000000);
    run_in_loop_opts(task_errors_datagram, NULL, &o, 0);
}

/* A connected TCP pair over loopback, with plain syscalls. */
static bool tcp_pair(int sv[2])
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = l >= 0 && sv[0] >= 0 &&
              bind(l, (struct sockaddr *)&sin, sizeof sin) == 0 &&
              listen(l, 1) == 0 &&
              getsockname(l, (struct sockaddr *)&sin, &len) == 0 &&
              connect(sv[0], (struct sockaddr *)&sin, sizeof sin) == 0 &&
              (sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0;
    if (l >= 0)
        close(l);
    return ok;
}

/* An injected reset on TCP is a reset for the peer too: its receive and
 * its sends fail (a FIN alone left a sender blocked on a full window,
 * which hung test_stream's TCP echo under seed 1). */
static int task_errors_tcp_reset(void *arg)
{
    int sv[2] = {-1, -1};
    if (!CHECK(tcp_pair(sv)))
        return -EIO;
    char buf[8] = "abcdefg";
    int rc;
    do /* a reset, not the -ENOMEM of the same table */
        rc = sock_op(IORING_OP_RECV, sv[0], buf, sizeof buf, MSG_DONTWAIT);
    while (rc == -ENOMEM);
    CHECK_EQ(rc, -ECONNRESET);
    CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), -1);
    CHECK_EQ(errno, ECONNRESET);
    CHECK_EQ(send(sv[1], buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL), -1);
    CHECK_EQ(errno, EPIPE);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_errors_reset_a_tcp_connection_for_the_peer(void **state)
{
    weft_faults f;
    weft_options o = with_faults(&f, 5, WEFT_FAULT_ERRORS, 1000000);
    run_in_loop_opts(task_errors_tcp_reset, NULL, &o, 0);
}

enum { STREAM_BYTES = 256 * 1024, STREAM_CHUNK = 4096 };

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 9));
}

static int task_short_sender(void *arg)
{
    weft_stream *s = arg;
    static unsigned char buf[STREAM_CHUNK];
    for (size_t off = 0; off < STREAM_BYTES; off += STREAM_CHUNK) {
        for (size_t i = 0; i < STREAM_CHUNK; i++)
            buf[i] = pattern(off + i);
        CHECK_EQ(weft_stream_send(s, buf, STREAM_CHUNK), STREAM_CHUNK);
    }
    return 0;
}

static int task_short(void *arg)
{
    weft_stream *a, *b;
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, task_short_sender, a), 0);
    static unsigned char buf[1000];
    size_t got = 0;
    bool in_order = true;
    while (got < STREAM_BYTES) {
        size_t n =
            STREAM_BYTES - got < sizeof buf ? STREAM_BYTES - got : sizeof buf;
        if (!CHECK_EQ(weft_stream_recv_exactly(b, buf, n), (ssize_t)n))
            break;
        for (size_t i = 0; i < n; i++)
            in_order &= buf[i] == pattern(got + i);
        got += n;
    }
    CHECK(in_order);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_GT(weft_faults_injected(), 10);
    weft_stream_close(a);
    weft_stream_close(b);
    return 0;
}

static void test_short_transfers_still_deliver_every_byte_in_order(void **st)
{
    weft_faults f;
    weft_options o = with_faults(&f, 11, WEFT_FAULT_SHORT, 500000);
    run_in_loop_opts(task_short, NULL, &o, 0);
}

struct ticker {
    long ticks;
    bool stop;
};

static int task_ticker(void *arg)
{
    struct ticker *tk = arg;
    while (!tk->stop) {
        tk->ticks++;
        weft_checkpoint();
    }
    return 0;
}

/* How many rounds a NOP's await lasts, counted by a task that ticks once
 * a round. */
static int task_rounds_of_nop(void *arg)
{
    long *rounds = arg;
    struct ticker tk = {0};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, task_ticker, &tk), 0);
    weft_checkpoint();
    long before = tk.ticks;
    CHECK_EQ(th_nop(), 0);
    *rounds = tk.ticks - before;
    tk.stop = true;
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void test_delay_readies_a_completion_a_round_later(void **state)
{
    long plain = 0, delayed = 0;
    run_in_loop_opts(task_rounds_of_nop, &plain, NULL, 0);
    weft_faults f;
    weft_options o = with_faults(&f, 3, WEFT_FAULT_DELAY, 1000000);
    run_in_loop_opts(task_rounds_of_nop, &delayed, &o, 0);
    assert_int_equal(delayed, plain + 1);
}

/* ---- CANCEL_MISS: a cancel that missed is sent again ---- */

/* A read of a pipe nobody writes: only a cancel that finds it ends it. */
static int task_read_idle_pipe(void *arg)
{
    int fd = *(int *)arg;
    char c;
    struct io_uring_sqe *sqe = th_sqe(); /* on either backend */
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_read(sqe, fd, &c, 1, (__u64)-1);
    CHECK_EQ(weft_uring_await(sqe), -ECANCELED);
    return 0;
}

static int task_recv_closed(void *arg)
{
    char c;
    CHECK_EQ(weft_stream_recv(arg, &c, 1), -EBADF);
    return 0;
}

static int task_cancel_missed(void *arg)
{
    (void)arg;
    int fds[2];
    CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, task_read_idle_pipe, &fds[0]), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_GT(weft_faults_injected(), 0);

    /* A close's cancel (through the stream's gate) the same. */
    weft_stream *s;
    CHECK_EQ(weft_stream_from_fd(&s, fds[0]), 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, task_recv_closed, s), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_GT(weft_faults_injected(), 1);
    close(fds[1]);
    return 0;
}

static void test_a_cancel_that_misses_is_sent_again(void **state)
{
    int fds = open_fds();
    weft_faults f;
    weft_options o = with_faults(&f, 5, WEFT_FAULT_CANCEL_MISS, 1000000);
    run_in_loop_opts(task_cancel_missed, NULL, &o, 0);
    assert_int_equal(open_fds(), fds);
}

static int task_alloc(void *arg)
{
    int nomem = 0, ok = 0;
    for (int i = 0; i < 200; i++) {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        int rc = weft_chan_open(4, &tx, &rx);
        CHECK(rc == 0 || rc == -ENOMEM);
        if (rc == 0) {
            ok++;
            weft_chan_tx_close(tx);
            weft_chan_rx_close(rx);
        } else {
            nomem++;
        }
        weft_stream *a, *b;
        rc = weft_stream_pair(&a, &b);
        CHECK(rc == 0 || rc == -ENOMEM);
        if (rc == 0) {
            ok++;
            weft_stream_close(a);
            weft_stream_close(b);
        } else {
            nomem++;
        }
    }
    CHECK_GT(nomem, 0);
    CHECK_GT(ok, 0);
    return 0;
}

static void test_alloc_failures_are_enomem_and_leak_nothing(void **state)
{
    size_t live = wf_alloc_live();
    int fds = open_fds();
    weft_faults f;
    /* The seed lets the loop's own first allocations through. */
    weft_options o = with_faults(&f, 1, WEFT_FAULT_ALLOC, 300000);
    run_in_loop_opts(task_alloc, NULL, &o, 0);
    assert_int_equal(wf_alloc_live(), live);
    assert_int_equal(open_fds(), fds);
}

static void test_a_loop_that_cannot_allocate_does_not_start(void **state)
{
    size_t live = wf_alloc_live();
    weft_faults f;
    weft_options o = with_faults(&f, 1, WEFT_FAULT_ALLOC, 1000000);
    assert_rc(weft_run(th_task_return, NULL, &o), -ENOMEM);
    assert_int_equal(wf_alloc_live(), live);
}

/* ---- rate and seed defaults ---- */

static int task_count_default_rate(void *arg)
{
    uint64_t *injected = arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char buf[4];
    for (int i = 0; i < 5000; i++) {
        int rc = sock_op(IORING_OP_RECV, sv[1], buf, sizeof buf, MSG_DONTWAIT);
        /* 0: the end, once an injected reset shut the pair down */
        CHECK(rc == -EAGAIN || rc == 0 || rc == -ECONNRESET || rc == -ENOMEM);
    }
    *injected = weft_faults_injected();
    CHECK_NE(weft_faults_seed(), 0); /* seed 0: one was picked */
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_rate_zero_means_ten_thousand_per_million(void **state)
{
    uint64_t injected = 0;
    weft_faults f;
    weft_options o = with_faults(&f, 0, WEFT_FAULT_ERRORS, 0);
    run_in_loop_opts(task_count_default_rate, &injected, &o, 0);
    /* 5000 draws at 1%: 50 expected; far outside [10, 150] is a bug. */
    assert_true(injected >= 10 && injected <= 150);
}

/* ---- WEFT_FAULTS ---- */

static int task_env(void *arg)
{
    CHECK_EQ(weft_faults_seed(), 7);
    return 0;
}

static int task_env_default(void *arg)
{
    CHECK_NE(weft_faults_seed(), 0);
    return 0;
}

static void child_env(void *arg)
{
    setenv("WEFT_FAULTS", "seed=7,rate=1000,kinds=errors+delay", 1);
    CHECK_EQ(weft_run(task_env, NULL, NULL), 0);
    /* The defaults: every kind, a seed from the clock; weft's own
     * allocations may fail too, at the start of the run (-ENOMEM). */
    setenv("WEFT_FAULTS", "1", 1);
    int rc = weft_run(task_env_default, NULL, NULL);
    CHECK(rc == 0 || rc == -ENOMEM);
    setenv("WEFT_FAULTS", "seed=7,kinds=errors+bogus", 1);
    CHECK_EQ(weft_run(task_env, NULL, NULL), -EINVAL);
    CHECK(strstr(weft_strerror(-EINVAL), "WEFT_FAULTS") != NULL);
    setenv("WEFT_FAULTS", "rate=2000000", 1);
    CHECK_EQ(weft_run(task_env, NULL, NULL), -EINVAL);
    /* Options win over the variable. */
    setenv("WEFT_FAULTS", "seed=8", 1);
    weft_faults f;
    weft_options o = with_faults(&f, 7, 0, 0);
    CHECK_EQ(weft_run(task_env, NULL, &o), 0);
}

static void test_weft_faults_variable_sets_every_loop(void **state)
{
    struct th_child c;
    th_run_child(child_env, NULL, &c);
    th_assert_child_ok(&c);
}

static int task_fail(void *arg)
{
    return -EIO;
}

static void child_seed_line(void *arg)
{
    setenv("WEFT_FAULTS", "seed=99,rate=5,kinds=short+alloc", 1);
    CHECK_EQ(weft_run(th_task_return, NULL, NULL), 0);
    fprintf(stderr, "--\n");
    CHECK_EQ(weft_run(task_fail, NULL, NULL), -EIO);
}

static void test_a_failing_run_prints_its_seed(void **state)
{
    struct th_child c;
    th_run_child(child_seed_line, NULL, &c);
    th_assert_child_ok(&c);
    /* Nothing for the run that passed; the line for the one that failed. */
    assert_true(strncmp(c.err, "--\n", 3) == 0);
    if (!strstr(c.err, "weft: faults seed=99 (WEFT_FAULTS=seed=99,rate=5,"
                       "kinds=short+alloc to replay")) {
        th_child_dump(&c);
        fail();
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_are_off_without_options_or_variable),
        cmocka_unit_test(test_same_seed_gives_same_results),
        cmocka_unit_test(test_errors_replace_operations_before_submission),
        cmocka_unit_test(test_errors_on_a_datagram_socket_do_not_break_it),
        cmocka_unit_test(test_errors_reset_a_tcp_connection_for_the_peer),
        cmocka_unit_test(
            test_short_transfers_still_deliver_every_byte_in_order),
        cmocka_unit_test(test_delay_readies_a_completion_a_round_later),
        cmocka_unit_test(test_a_cancel_that_misses_is_sent_again),
        cmocka_unit_test(test_alloc_failures_are_enomem_and_leak_nothing),
        cmocka_unit_test(test_a_loop_that_cannot_allocate_does_not_start),
        cmocka_unit_test(test_rate_zero_means_ten_thousand_per_million),
        cmocka_unit_test(test_weft_faults_variable_sets_every_loop),
        cmocka_unit_test(test_a_failing_run_prints_its_seed),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
