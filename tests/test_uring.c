/* SPDX-License-Identifier: MIT */
/*
 * tests/test_uring.c - raw io_uring from tasks (API.md "Raw io_uring"):
 * weft_uring_sqe / weft_uring_await / weft_uring_await_until, their
 * cancellation and deadline guarantees, a CQ far smaller than the number
 * of operations in flight, a cancelled task waiting for room in the ring,
 * an operation with two CQEs (a zero-copy send), and the capability
 * probes. On the epoll backend, where weft/uring.h's calls are refused
 * (test_backend.c checks that), every test but the one outside a loop
 * skips itself.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* ---- basics ---- */

static int nop_main(void *arg)
{
    CHECK_EQ(th_nop(), 0);
    for (int i = 0; i < 100; i++)
        if (!CHECK_EQ(th_nop(), 0))
            break;
    return 0;
}

static void test_uring_nop_returns_0(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(nop_main, NULL);
}

static int res_main(void *arg)
{
    char buf[8];
    int p[2];

    /* the CQE's res, errors included */
    CHECK_EQ(th_read(-1, buf, sizeof buf), -EBADF);
    if (!th_pipe(p))
        return -EIO;
    CHECK_EQ(th_write(p[1], "hello", 5), 5);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(th_read(p[0], buf, sizeof buf), 5);
    CHECK_STR_EQ(buf, "hello");
    close(p[1]);
    p[1] = -1;
    CHECK_EQ(th_read(p[0], buf, sizeof buf), 0); /* end of file */
    th_close_pipe(p);
    return 0;
}

static void test_uring_await_returns_cqe_res(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(res_main, NULL);
}

#define NOP_TASKS 64
#define NOPS_EACH 200

static int nop_child(void *arg)
{
    int *done = arg;

    for (int i = 0; i < NOPS_EACH; i++)
        if (!CHECK_EQ(th_nop(), 0))
            return -EIO;
    (*done)++;
    return 0;
}

static int many_nops_main(void *arg)
{
    weft_group g;
    int done = 0;

    weft_group_enter(&g);
    for (int i = 0; i < NOP_TASKS; i++)
        CHECK_EQ(weft_group_spawn(&g, nop_child, &done), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(done, NOP_TASKS);
    return 0;
}

static void test_uring_many_nops_from_64_tasks(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(many_nops_main, NULL);
}

static void test_uring_sqe_outside_loop_is_null(void **state)
{
    assert_null(weft_uring_sqe());
}

/* ---- await_until ---- */

static const char msg[] = "data after a timeout";

static int until_timeout_main(void *arg)
{
    static char stale[64]; /* the timed-out read's buffer */
    char buf[64];
    int p[2];

    if (!th_pipe(p))
        return -EIO;
    memset(stale, 0xAA, sizeof stale);
    weft_time d = weft_now() + 20 * WEFT_MSEC;
    CHECK_EQ(th_read_until(p[0], stale, sizeof stale, d), -ETIMEDOUT);
    CHECK_GE(weft_now(), d);
    /* not a cancellation: the next checkpoint is fine */
    CHECK_EQ(weft_checkpoint(), 0);

    /* the kernel is done with the timed-out read: nothing is lost */
    CHECK_EQ(write(p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(th_read(p[0], buf, sizeof buf), (int)sizeof msg);
    CHECK_STR_EQ(buf, msg);
    for (size_t i = 0; i < sizeof stale; i++)
        if (!CHECK_EQ((unsigned char)stale[i], 0xAA))
            break;

    /* a deadline already in the past */
    CHECK_EQ(th_read_until(p[0], stale, sizeof stale, weft_now() - WEFT_SEC),
             -ETIMEDOUT);
    CHECK_EQ(write(p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(th_read(p[0], buf, sizeof buf), (int)sizeof msg);
    CHECK_STR_EQ(buf, msg);
    CHECK_EQ(th_pipe_pending(p[0]), 0);
    th_close_pipe(p);
    return 0;
}

static void test_uring_await_until_times_out_and_loses_no_data(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(until_timeout_main, NULL);
}

static int nop_until(weft_time deadline)
{
    struct io_uring_sqe *sqe = th_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_nop(sqe);
    return weft_uring_await_until(sqe, deadline);
}

static int until_first_main(void *arg)
{
    char buf[64];
    int p[2];

    CHECK_EQ(nop_until(weft_now() + 10 * WEFT_SEC), 0);
    CHECK_EQ(nop_until(WEFT_FOREVER), 0);
    if (!th_pipe(p))
        return -EIO;
    CHECK_EQ(write(p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(th_read_until(p[0], buf, sizeof buf, weft_now() + 10 * WEFT_SEC),
             (int)sizeof msg);
    CHECK_STR_EQ(buf, msg);
    /* the operation's own error passes through */
    CHECK_EQ(th_read_until(-1, buf, sizeof buf, weft_now() + 10 * WEFT_SEC),
             -EBADF);
    th_close_pipe(p);

    /* Deadlines that were not reached leave nothing behind that fires
     * later: short deadlines, then time for them to pass, then more
     * operations. */
    for (int i = 0; i < 50; i++)
        if (!CHECK_EQ(nop_until(weft_now() + 2 * WEFT_MSEC), 0))
            break;
    CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0);
    for (int i = 0; i < 50; i++)
        if (!CHECK_EQ(th_nop(), 0))
            break;
    return 0;
}

static void test_uring_await_until_op_first_returns_its_result(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(until_first_main, NULL);
}

/* A reader blocked with a far deadline gets data written by another task
 * first: the read's result, not -ETIMEDOUT. */
struct feeder {
    int p[2];
    bool waiting;
};

static int feeder_task(void *arg)
{
    struct feeder *f = arg;

    if (!th_wait_flag(&f->waiting))
        return -EIO;
    th_settle();
    CHECK_EQ(th_write(f->p[1], msg, sizeof msg), (int)sizeof msg);
    return 0;
}

static int until_fed_main(void *arg)
{
    struct feeder f = {{-1, -1}, false};
    weft_group g;
    char buf[64];

    if (!th_pipe(f.p))
        return -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, feeder_task, &f), 0);
    f.waiting = true;
    memset(buf, 0, sizeof buf);
    CHECK_EQ(th_read_until(f.p[0], buf, sizeof buf, weft_now() + 10 * WEFT_SEC),
             (int)sizeof msg);
    CHECK_STR_EQ(buf, msg);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    th_close_pipe(f.p);
    return 0;
}

static void test_uring_await_until_completes_before_deadline(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(until_fed_main, NULL);
}

/* await_until and scopes: whichever comes first decides, and a scope's
 * cancel is -ECANCELED, the operation's own deadline -ETIMEDOUT. */
static int until_scope_main(void *arg)
{
    char buf[8];
    int p[2];
    weft_scope s;

    if (!th_pipe(p))
        return -EIO;

    weft_move_on_after(&s, 5 * WEFT_MSEC);
    int rc = th_read_until(p[0], buf, sizeof buf, weft_now() + 10 * WEFT_SEC);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);

    weft_move_on_after(&s, 10 * WEFT_SEC);
    rc = th_read_until(p[0], buf, sizeof buf, weft_now() + 5 * WEFT_MSEC);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(weft_scope_exit(&s, rc), -ETIMEDOUT);
    CHECK(!weft_scope_cancelled_caught(&s));

    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    rc = th_read_until(p[0], buf, sizeof buf, weft_now() + 10 * WEFT_SEC);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);

    CHECK_EQ(th_pipe_pending(p[0]), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK_EQ(th_read(p[0], buf, sizeof buf), 1);
    th_close_pipe(p);
    return 0;
}

static void test_uring_await_until_under_scopes(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(until_scope_main, NULL);
}

/* ---- cancellation ---- */

/* Under a scope already cancelled, the operation is not run at all. */
static int not_run_main(void *arg)
{
    int p[2];
    weft_scope s;

    if (!th_pipe(p))
        return -EIO;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(th_write(p[1], "x", 1), -ECANCELED);
    CHECK_EQ(th_nop(), -ECANCELED);
    struct io_uring_sqe *sqe = th_sqe();
    if (sqe) {
        io_uring_prep_write(sqe, p[1], "y", 1, 0);
        CHECK_EQ(weft_uring_await_until(sqe, WEFT_FOREVER), -ECANCELED);
    }
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    th_settle();
    CHECK_EQ(th_nop(), 0);
    CHECK_EQ(th_pipe_pending(p[0]), 0); /* neither write ran */
    th_close_pipe(p);
    return 0;
}

static void test_uring_await_under_cancelled_scope_does_not_run(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(not_run_main, NULL);
}

/* A read blocked in the kernel, cancelled from another task: -ECANCELED,
 * and only once the kernel let go of the buffer. */
struct blocked {
    int p[2];
    weft_scope *scope;
    bool in;
    int rc;
    char buf[64];
};

static int blocked_reader(void *arg)
{
    struct blocked *b = arg;
    weft_scope s;

    weft_scope_enter(&s, WEFT_FOREVER);
    b->scope = &s;
    b->in = true;
    b->rc = th_read(b->p[0], b->buf, sizeof b->buf);
    b->scope = NULL;
    return weft_scope_exit(&s, b->rc);
}

static int cancel_blocked_main(void *arg)
{
    struct blocked b;
    weft_group g;
    char buf[64];

    memset(&b, 0, sizeof b);
    memset(b.buf, 0xAA, sizeof b.buf);
    if (!th_pipe(b.p))
        return -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, blocked_reader, &b), 0);
    if (th_wait_flag(&b.in)) {
        th_settle();
        if (CHECK(b.scope != NULL))
            weft_scope_cancel(b.scope);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(b.rc, -ECANCELED);
    CHECK_EQ(write(b.p[1], msg, sizeof msg), (ssize_t)sizeof msg);
    th_settle();
    CHECK_EQ(th_pipe_pending(b.p[0]), (int)sizeof msg);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(read(b.p[0], buf, sizeof buf), (ssize_t)sizeof msg);
    CHECK_STR_EQ(buf, msg);
    for (size_t i = 0; i < sizeof b.buf; i++)
        if (!CHECK_EQ((unsigned char)b.buf[i], 0xAA))
            break;
    th_close_pipe(b.p);
    return 0;
}

static void test_uring_cancel_from_another_task_releases_buffer(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(cancel_blocked_main, NULL);
}

/* Many readers blocked at once, all cancelled by one group cancel. */
static int many_blocked_main(void *arg)
{
    enum { N = 32 };
    struct blocked *b = calloc(N, sizeof *b);
    weft_group g;

    if (!CHECK(b != NULL))
        return -ENOMEM;
    weft_group_enter(&g);
    for (int i = 0; i < N; i++) {
        if (!th_pipe(b[i].p))
            break;
        CHECK_EQ(weft_group_spawn(&g, blocked_reader, &b[i]), 0);
    }
    th_settle();
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(b[i].rc, -ECANCELED);
        th_close_pipe(b[i].p);
    }
    free(b);
    return 0;
}

static void test_uring_group_cancel_ends_many_reads(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_in_loop(many_blocked_main, NULL);
}

/* ---- a CQ far smaller than the operations in flight ---- */

#define OVERFLOW_TASKS 2000

struct overflow {
    int done;
    int kind; /* 0 NOP, 1 IORING_OP_TIMEOUT of 1 ms */
};

static int overflow_child(void *arg)
{
    struct overflow *o = arg;

    for (int i = 0; i < 3; i++) {
        struct io_uring_sqe *sqe = th_sqe();
        if (!sqe)
            return -ENOBUFS;
        if (o->kind == 0) {
            io_uring_prep_nop(sqe);
            if (!CHECK_EQ(weft_uring_await(sqe), 0))
                return -EIO;
        } else {
            struct __kernel_timespec ts = {0, 1000000};
            io_uring_prep_timeout(sqe, &ts, 0, 0);
            if (!CHECK_EQ(weft_uring_await(sqe), -ETIME))
                return -EIO;
        }
    }
    o->done++;
    return 0;
}

static int overflow_main(void *arg)
{
    struct overflow *o = arg;
    weft_group g;

    weft_group_enter(&g);
    for (int i = 0; i < OVERFLOW_TASKS; i++)
        if (!CHECK_EQ(weft_group_spawn(&g, overflow_child, o), 0))
            break;
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void run_overflow(int kind)
{
    struct overflow o = {0, kind};
    weft_options opts;

    memset(&opts, 0, sizeof opts);
    opts.sq_entries = 8;
    opts.cq_entries = 16;
    opts.max_inflight = 4096;
    run_in_loop_opts(overflow_main, &o, &opts, 0);
    assert_int_equal(o.done, OVERFLOW_TASKS);
}

static void test_uring_cq_overflow_survived_nops(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_overflow(0);
}

static void test_uring_cq_overflow_survived_timeouts(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    run_overflow(1);
}

/* ---- room in the ring ---- */

/*
 * A task waiting for room in the ring (weft_uring_sqe with max_inflight
 * operations in flight) stops waiting when its scope is cancelled: it gets
 * its SQE and the await, a checkpoint, returns -ECANCELED, while the
 * operations that fill the ring are still in flight. max_inflight is 2,
 * and two reads of a pipe that stays empty fill it until the test frees
 * the room (closes the pipe) once the waiting task has come back.
 */
struct room {
    int p[2];
    bool returned, freed;
    int rc;
};

static int room_holder(void *arg)
{
    struct room *r = arg;
    char c;
    CHECK_EQ(th_read(r->p[0], &c, 1), 0); /* end of file, once freed */
    return 0;
}

static int room_user(void *arg)
{
    struct room *r = arg;
    weft_scope s;

    weft_move_on_after(&s, 50 * WEFT_MSEC);
    struct io_uring_sqe *sqe = weft_uring_sqe(); /* waits for room */
    int rc = -ENOBUFS;
    if (CHECK(sqe != NULL)) {
        /* a NOP completes at once: -ECANCELED says the task waited */
        io_uring_prep_nop(sqe);
        rc = weft_uring_await(sqe);
    }
    r->rc = rc;
    CHECK(!r->freed); /* back while the ring was still full */
    r->returned = true;
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    return 0;
}

static int room_main(void *arg)
{
    struct room r = {.p = {-1, -1}, .rc = 1};
    weft_group g;

    if (!th_pipe(r.p))
        return -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "holder", room_holder, &r), 0);
    CHECK_EQ(weft_group_spawn_named(&g, "holder", room_holder, &r), 0);
    th_settle();
    CHECK_EQ(weft_group_spawn_named(&g, "user", room_user, &r), 0);
    /* a guard, not a measurement: it comes back after about 50 ms */
    weft_time end = weft_now() + 10 * WEFT_SEC;
    while (!r.returned && weft_now() < end)
        CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK(r.returned);
    r.freed = true;
    close(r.p[1]); /* the holders' reads end */
    r.p[1] = -1;
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(r.rc, -ECANCELED);
    th_close_pipe(r.p);
    return 0;
}

static void test_uring_cancelled_task_stops_waiting_for_ring_room(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    weft_options opts;

    memset(&opts, 0, sizeof opts);
    opts.max_inflight = 2;
    run_in_loop_opts(room_main, NULL, &opts, 0);
}

/* ---- operations with more than one CQE ---- */

/*
 * A zero-copy send posts its result (with IORING_CQE_F_MORE), then a
 * notification once the kernel is done with the buffer: weft_uring_await
 * returns the first one's byte count, after both. Over a TCP connection
 * on loopback; skipped where the kernel has no IORING_OP_SEND_ZC.
 */
static int tcp_loopback_pair(int fds[2])
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof sin;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    fds[0] = fds[1] = -1;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!CHECK(l >= 0))
        return -EIO;
    if (CHECK_EQ(bind(l, (struct sockaddr *)&sin, sizeof sin), 0) &&
        CHECK_EQ(listen(l, 1), 0) &&
        CHECK_EQ(getsockname(l, (struct sockaddr *)&sin, &len), 0)) {
        /* on loopback, connect completes from the backlog */
        fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (CHECK(fds[0] >= 0) &&
            CHECK_EQ(connect(fds[0], (struct sockaddr *)&sin, sizeof sin), 0))
            fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    }
    close(l);
    if (CHECK(fds[1] >= 0))
        return 0;
    if (fds[0] >= 0)
        close(fds[0]);
    fds[0] = -1;
    return -EIO;
}

static const char zc_msg[] = "hello world";

static int send_zc(int fd, weft_time deadline)
{
    struct io_uring_sqe *sqe = th_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_send_zc(sqe, fd, zc_msg, sizeof zc_msg - 1, 0, 0);
    return deadline == WEFT_FOREVER ? weft_uring_await(sqe)
                                    : weft_uring_await_until(sqe, deadline);
}

static int send_zc_main(void *arg)
{
    bool *supported = arg;
    char buf[64];
    int fds[2];

    *supported = weft_uring_has_op(IORING_OP_SEND_ZC);
    if (!*supported)
        return 0;
    if (tcp_loopback_pair(fds) < 0)
        return -EIO;
    CHECK_EQ(send_zc(fds[0], WEFT_FOREVER), (int)sizeof zc_msg - 1);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(th_read(fds[1], buf, sizeof buf), (int)sizeof zc_msg - 1);
    CHECK_STR_EQ(buf, zc_msg);
    /* the same with a deadline (a linked timeout) that does not pass */
    CHECK_EQ(send_zc(fds[0], weft_now() + 10 * WEFT_SEC),
             (int)sizeof zc_msg - 1);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(th_read(fds[1], buf, sizeof buf), (int)sizeof zc_msg - 1);
    CHECK_STR_EQ(buf, zc_msg);
    /* nothing of either is left to come */
    th_settle();
    CHECK_EQ(th_nop(), 0);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

static void test_uring_await_send_zc_returns_byte_count(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    bool supported = false;

    run_in_loop(send_zc_main, &supported);
    if (!supported) {
        print_message("IORING_OP_SEND_ZC is not supported by this kernel\n");
        skip();
    }
}

/* ---- capability probes ---- */

struct probe {
    unsigned flags;
    bool nop, read, bogus;
};

static int probe_main(void *arg)
{
    struct probe *p = arg;

    p->flags = weft_uring_setup_flags();
    p->nop = weft_uring_has_op(IORING_OP_NOP);
    p->read = weft_uring_has_op(IORING_OP_READ);
    /* no kernel has opcodes this high (IORING_OP_LAST of the headers may be
     * older than the kernel's, so not that) */
    p->bogus = weft_uring_has_op(250) || weft_uring_has_op(1000) ||
               weft_uring_has_op(-1);
    return 0;
}

static void test_uring_setup_flags_and_has_op(void **state)
{
    th_uring_only("weft/uring.h's raw SQEs are io_uring's alone");
    struct probe p;

    memset(&p, 0, sizeof p);
    run_in_loop(probe_main, &p);
    assert_true(p.nop);
    assert_true(p.read); /* the design requires Linux >= 5.6 anyway */
    assert_false(p.bogus);
    print_message("setup flags: %#x\n", p.flags);
    if (p.flags & IORING_SETUP_DEFER_TASKRUN)
        assert_true(p.flags & IORING_SETUP_SINGLE_ISSUER);
    assert_false(p.flags & IORING_SETUP_SQPOLL); /* not by default */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_uring_nop_returns_0),
    cmocka_unit_test(test_uring_await_returns_cqe_res),
    cmocka_unit_test(test_uring_many_nops_from_64_tasks),
    cmocka_unit_test(test_uring_sqe_outside_loop_is_null),
    cmocka_unit_test(test_uring_await_until_times_out_and_loses_no_data),
    cmocka_unit_test(test_uring_await_until_op_first_returns_its_result),
    cmocka_unit_test(test_uring_await_until_completes_before_deadline),
    cmocka_unit_test(test_uring_await_until_under_scopes),
    cmocka_unit_test(test_uring_await_under_cancelled_scope_does_not_run),
    cmocka_unit_test(test_uring_cancel_from_another_task_releases_buffer),
    cmocka_unit_test(test_uring_group_cancel_ends_many_reads),
    cmocka_unit_test(test_uring_cq_overflow_survived_nops),
    cmocka_unit_test(test_uring_cq_overflow_survived_timeouts),
    cmocka_unit_test(test_uring_cancelled_task_stops_waiting_for_ring_room),
    cmocka_unit_test(test_uring_await_send_zc_returns_byte_count),
    cmocka_unit_test(test_uring_setup_flags_and_has_op),
};

TH_MAIN(tests)
