/* SPDX-License-Identifier: MIT */
/*
 * tests/test_epoll.c - the epoll backend's own rules (epoll/epoll.h),
 * each on a loop forced onto epoll whatever WEFT_BACKEND says: a job the
 * pool has not started is cancelled, one it runs ends with its result,
 * a deadline bounds a queued job, the end of a stream after a short read
 * is seen, and raw ring access is refused.
 *
 * The rest of the contract runs on this backend through the whole suite
 * (scripts/test runs every suite with WEFT_BACKEND=epoll too), among it
 * test_backend's descriptor number reused after a close(2) weft did not
 * see.
 */
#include "helpers.h"
#include "net_helpers.h"

#include <sys/stat.h>
#include <weft/file.h>
#include <weft/net.h>

static weft_options epoll_opts(unsigned workers)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    o.backend = WEFT_BACKEND_EPOLL;
    o.iowq_max_workers = workers;
    return o;
}

static void run_on_epoll(weft_fn fn, void *arg, unsigned workers)
{
    /* WEFT_BACKEND overrides the option: this suite is about epoll. */
    char *env = getenv("WEFT_BACKEND");
    char *saved = env ? strdup(env) : NULL;
    unsetenv("WEFT_BACKEND");
    weft_options o = epoll_opts(workers);
    run_in_loop_opts(fn, arg, &o, 0);
    if (saved) {
        setenv("WEFT_BACKEND", saved, 1);
        free(saved);
    }
}

/* ---- the backend is epoll, and weft/uring.h says no ---- */

static int raw_main(void *arg)
{
    (void)arg;
    CHECK_STR_EQ(weft_backend_name(), "epoll");
    CHECK(weft_uring_sqe() == NULL);
    CHECK_EQ(weft_uring_await(NULL), -ENOTSUP);
    CHECK_EQ(weft_uring_await_until(NULL, WEFT_FOREVER), -ENOTSUP);
    CHECK_EQ(weft_uring_setup_flags(), 0);
    CHECK(!weft_uring_has_op(IORING_OP_NOP));
    return 0;
}

static void test_epoll_raw_ring_is_refused(void **state)
{
    (void)state;
    run_on_epoll(raw_main, NULL, 0);
    assert_string_equal(weft_backend_name(), "epoll");
}

/* ---- the pool: a FIFO's open blocks its one worker ---- */

struct fifo {
    char dir[64], path[96];
    int wfd;      /* the writer's end, opened by a thread to free the worker */
    int delay_ms; /* how long the thread waits before it opens */
};

static void fifo_make(struct fifo *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/weft-epoll-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(f->path, 0600), 0);
    f->wfd = -1;
}

static void fifo_remove(struct fifo *f)
{
    if (f->wfd >= 0)
        close(f->wfd);
    unlink(f->path);
    rmdir(f->dir);
}

static void *fifo_writer(void *arg)
{
    struct fifo *f = arg;
    if (f->delay_ms) {
        struct timespec ts = {0, (long)f->delay_ms * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    f->wfd = open(f->path, O_WRONLY | O_CLOEXEC); /* frees the open */
    return NULL;
}

struct pool_case {
    struct fifo fifo;
    weft_file *rd;
    int open_rc, stat_rc;
};

static int blocked_open(void *arg)
{
    struct pool_case *c = arg;
    c->open_rc = weft_file_open(&c->rd, c->fifo.path, O_RDONLY, 0);
    return 0;
}

/* One worker, held by the FIFO's open: a stat queued behind it and then
 * cancelled ends at once with -ECANCELED, and the open, freed later,
 * still returns its descriptor. */
static int queued_cancel_main(void *arg)
{
    struct pool_case *c = arg;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, blocked_open, c), 0);
    CHECK_EQ(weft_sleep(20 * WEFT_MSEC), 0); /* the open has the worker */
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    struct statx st;
    /* Cancelled while it waits in the queue: the scope's deadline. */
    weft_scope_set_deadline(&s, weft_now() + 20 * WEFT_MSEC);
    c->stat_rc = weft_path_stat("/", &st);
    CHECK_EQ(weft_scope_exit(&s, c->stat_rc), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    CHECK_EQ(c->stat_rc, -ECANCELED);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, fifo_writer, &c->fifo), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    pthread_join(t, NULL);
    CHECK_EQ(c->open_rc, 0);
    if (c->open_rc == 0)
        CHECK_EQ(weft_file_close(c->rd), 0);
    return 0;
}

static void test_epoll_pool_job_cancelled_while_queued(void **state)
{
    (void)state;
    struct pool_case c;
    memset(&c, 0, sizeof c);
    fifo_make(&c.fifo);
    run_on_epoll(queued_cancel_main, &c, 1);
    fifo_remove(&c.fifo);
}

/* A job the worker runs is not interrupted: cancelled, the open still
 * ends with what the kernel did (a descriptor, which weft_file_open then
 * closes since its caller is cancelled: no leak), and the cancellation
 * is reported. */
static int running_cancel_main(void *arg)
{
    struct pool_case *c = arg;
    int fds = th_fd_count();
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_set_deadline(&s, weft_now() + 30 * WEFT_MSEC);
    pthread_t t;
    bool started = false;
    /* The writer comes after the deadline: the open runs through it. */
    c->fifo.delay_ms = 80;
    if (CHECK_EQ(pthread_create(&t, NULL, fifo_writer, &c->fifo), 0))
        started = true;
    c->open_rc = weft_file_open(&c->rd, c->fifo.path, O_RDONLY, 0);
    int rc = weft_scope_exit(&s, c->open_rc);
    if (started)
        pthread_join(t, NULL);
    if (c->open_rc == 0) {
        /* Completed despite the cancellation: its result stands. */
        CHECK_EQ(rc, 0);
        CHECK_EQ(weft_file_close(c->rd), 0);
    } else {
        CHECK_EQ(c->open_rc, -ECANCELED);
    }
    if (c->fifo.wfd >= 0) {
        close(c->fifo.wfd);
        c->fifo.wfd = -1;
    }
    CHECK_EQ(th_fd_count(), fds);
    return 0;
}

static void test_epoll_pool_job_running_keeps_its_result(void **state)
{
    (void)state;
    struct pool_case c;
    memset(&c, 0, sizeof c);
    fifo_make(&c.fifo);
    run_on_epoll(running_cancel_main, &c, 1);
    fifo_remove(&c.fifo);
}

/* ---- a short read, then the end of the stream ---- */

struct eof_case {
    weft_stream *b;
    ssize_t first, second;
};

static int eof_reader(void *arg)
{
    struct eof_case *c = arg;
    char buf[64];
    c->first = weft_stream_recv(c->b, buf, sizeof buf);
    weft_scope s;
    weft_fail_after(&s, 10 * WEFT_SEC); /* a hang guard */
    c->second = weft_stream_recv(c->b, buf, sizeof buf);
    CHECK_EQ(weft_scope_exit(&s, c->second < 0 ? (int)c->second : 0), 0);
    return 0;
}

static int eof_main(void *arg)
{
    (void)arg;
    weft_stream *a;
    struct eof_case c = {.first = -1, .second = -1};
    if (nh_tcp_pair("127.0.0.1", &a, &c.b) != 0)
        return -1;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, eof_reader, &c), 0);
    CHECK_EQ(weft_sleep(10 * WEFT_MSEC), 0); /* the reader waits */
    /* One byte and the FIN, with no yield between: one edge brings both.
     * The short read must not make the next receive wait for another. */
    int fd = weft_stream_fd(a);
    CHECK_EQ(send(fd, "z", 1, MSG_NOSIGNAL), 1);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(c.first, 1);
    CHECK_EQ(c.second, 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(c.b), 0);
    return 0;
}

static void test_epoll_end_of_stream_after_short_read(void **state)
{
    (void)state;
    run_on_epoll(eof_main, NULL, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_epoll_raw_ring_is_refused),
    cmocka_unit_test(test_epoll_pool_job_cancelled_while_queued),
    cmocka_unit_test(test_epoll_pool_job_running_keeps_its_result),
    NET_TEST(test_epoll_end_of_stream_after_short_read),
};

TH_MAIN(tests)
