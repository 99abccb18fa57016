/* SPDX-License-Identifier: MIT */
/*
 * tests/test_borrow.c - borrowed receives (weft_stream_recv_borrowed,
 * weft_stream_release) and the loop's provided-buffer ring under them
 * (engine/bufs.c, uring/bufring.c): the bytes and how long they stay
 * valid, read-ahead first, the end of the stream, -EBUSY, -EBADF,
 * -ECANCELED, a cancellation that lands after the kernel filled a buffer,
 * a ring with every buffer lent (the fallback), close with a buffer lent,
 * a framed reader that waits holding no buffer, and the fallback on a
 * transport with no fd.
 *
 * White-box where the rule is about memory: the tests look at the loop's
 * ring (every buffer back in it) and the stream's read-ahead block.
 * Socket tests run for a socketpair and for TCP over loopback.
 */
#include "helpers.h"
#include "net_helpers.h"

#include "api/stream/stream_impl.h"
#include "engine/engine.h"

#include <sys/ioctl.h>
#include <weft/testing.h>

/* ---- the transports ---- */

/* PAIR_MS, TCP_MS: the same sockets with weft_stream_set_multishot on
 * (where the loop has it: the epoll backend and old kernels say
 * -ENOTSUP, and the tests then run as for PAIR and TCP). */
enum transport { PAIR, TCP, MEM, PAIR_MS, TCP_MS };

/* Whether the loop's streams can have a multishot receive. */
static bool have_multishot(void)
{
    return wf_bufs(wf_cur) != NULL;
}

static int open_streams(enum transport t, weft_stream **a, weft_stream **b)
{
    int rc;
    if (t == PAIR || t == PAIR_MS)
        rc = weft_stream_pair(a, b);
    else if (t == TCP || t == TCP_MS)
        rc = nh_tcp_pair("127.0.0.1", a, b);
    else
        rc = weft_memstream_pair(a, b, NULL);
    if (!CHECK_EQ(rc, 0) || (t != PAIR_MS && t != TCP_MS))
        return rc;
    int want = have_multishot() ? 0 : -ENOTSUP;
    CHECK_EQ(weft_stream_set_multishot(*a, true), want);
    CHECK_EQ(weft_stream_set_multishot(*b, true), want);
    return 0;
}

typedef void (*stream_body)(weft_stream *a, weft_stream *b);

struct with_streams {
    enum transport t;
    stream_body body;
};

/* The loop's ring has every buffer (none lent, none held). */
static bool ring_full(void)
{
    struct wf_bufring *b = wf_cur->bufs;
    return !b || CHECK_EQ(b->avail, b->nbufs);
}

static int with_streams_main(void *arg)
{
    struct with_streams *w = arg;
    weft_stream *a, *b;
    int rc = open_streams(w->t, &a, &b);
    if (rc < 0)
        return rc;
    w->body(a, b);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    ring_full(); /* close gave back whatever was still lent */
    return 0;
}

static void run_streams(enum transport t, stream_body body)
{
    struct with_streams w = {t, body};
    run_in_loop(with_streams_main, &w);
}

/* Declare test_borrow_{pair,tcp}[_ms]_<name>: each body runs on a
 * socketpair and TCP, with and without a multishot receive. */
#define SOCKETS(name)                                                          \
    static void test_borrow_pair_##name(void **state)                          \
    {                                                                          \
        run_streams(PAIR, name##_body);                                        \
    }                                                                          \
    static void test_borrow_tcp_##name(void **state)                           \
    {                                                                          \
        run_streams(TCP, name##_body);                                         \
    }                                                                          \
    static void test_borrow_pair_ms_##name(void **state)                       \
    {                                                                          \
        run_streams(PAIR_MS, name##_body);                                     \
    }                                                                          \
    static void test_borrow_tcp_ms_##name(void **state)                        \
    {                                                                          \
        run_streams(TCP_MS, name##_body);                                      \
    }
/* The four runs of SOCKETS(name), for the table. */
#define SOCKET_TESTS(name)                                                     \
    NET_TEST(test_borrow_pair_##name), NET_TEST(test_borrow_tcp_##name),       \
        NET_TEST(test_borrow_pair_ms_##name),                                  \
        NET_TEST(test_borrow_tcp_ms_##name)

/* The loop has a provided-buffer ring (Linux 5.19+), or the test skips. */
static bool have_ring(void)
{
    return wf_cur->bufs != NULL;
}

/* Whether p points into the loop's ring's buffers. */
static bool in_ring(const void *p)
{
    struct wf_bufring *b = wf_cur->bufs;
    return b && (const char *)p >= b->mem &&
           (const char *)p < b->mem + (size_t)b->nbufs * b->size;
}

/* Bytes waiting to be read on a socket (SIOCINQ), or -1. */
static int sock_inq(weft_stream *s)
{
    int n = -1;
    if (ioctl(weft_stream_fd(s), FIONREAD, &n) < 0)
        return -1;
    return n;
}

/* Borrow the next bytes and check they are expect. */
static bool expect_borrowed(weft_stream *s, const char *expect)
{
    const void *data;
    size_t n = strlen(expect);
    if (!CHECK_EQ(weft_stream_recv_borrowed(s, &data), (ssize_t)n))
        return false;
    return CHECK(data != NULL) && CHECK(memcmp(data, expect, n) == 0);
}

/* ---- the bytes, and how long they stay valid ---- */

/* The kernel picks a ring buffer; release puts it back; releasing with
 * nothing lent is harmless. */
static void returns_bytes_in_a_ring_buffer_body(weft_stream *a, weft_stream *b)
{
    const void *data;
    nh_send_str(b, "hello");
    CHECK_EQ(weft_stream_recv_borrowed(a, &data), 5);
    CHECK(memcmp(data, "hello", 5) == 0);
    if (have_ring()) {
        CHECK(in_ring(data));
        CHECK_EQ(a->rbuf, NULL); /* nothing of the stream's own */
    }
    CHECK_EQ(weft_stream_release(a), 0);
    ring_full();
    CHECK_EQ(weft_stream_release(a), 0);
}

SOCKETS(returns_bytes_in_a_ring_buffer)

/* Without a release, the next receive ends the borrow: a thousand
 * borrows in a row never run the ring dry. */
static void next_receive_ends_the_borrow_body(weft_stream *a, weft_stream *b)
{
    for (int i = 0; i < 1000; i++) {
        char msg[16];
        int len = snprintf(msg, sizeof msg, "m%04d", i);
        CHECK_EQ(weft_stream_send(b, msg, (size_t)len), len);
        const void *data;
        if (!CHECK_EQ(weft_stream_recv_borrowed(a, &data), len))
            break;
        CHECK(memcmp(data, msg, (size_t)len) == 0);
        if (have_ring())
            CHECK(in_ring(data));
    }
    /* the last one is still lent; a plain recv ends it too */
    nh_send_str(b, "x");
    char c;
    CHECK_EQ(weft_stream_recv(a, &c, 1), 1);
    ring_full();
}

SOCKETS(next_receive_ends_the_borrow)

/* Bytes read ahead by recv_until come first, all at once, then the
 * kernel's. */
static void read_ahead_comes_first_body(weft_stream *a, weft_stream *b)
{
    char buf[32];
    nh_send_str(b, "line1\nrest-of-data");
    th_settle();
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 5);
    CHECK_STR_EQ(buf, "line1");
    nh_send_str(b, "LATER");
    th_settle();
    expect_borrowed(a, "rest-of-data");
    expect_borrowed(a, "LATER");
    CHECK_EQ(weft_stream_release(a), 0);
    CHECK_EQ(weft_stream_buffered(a), 0);
}

SOCKETS(read_ahead_comes_first)

/* The end of the stream is 0, and *data NULL. */
static void end_of_stream_is_0_body(weft_stream *a, weft_stream *b)
{
    const void *data = &data;
    nh_send_str(b, "last");
    CHECK_EQ(weft_stream_send_eof(b), 0);
    expect_borrowed(a, "last");
    CHECK_EQ(weft_stream_recv_borrowed(a, &data), 0);
    CHECK_EQ(data, NULL);
    CHECK_EQ(weft_stream_recv_borrowed(a, &data), 0);
}

SOCKETS(end_of_stream_is_0)

/* ---- the rules of every receive ---- */

struct blocked {
    weft_stream *s;
    bool in;
    ssize_t rc;
    const void *data;
};

static int borrow_task(void *arg)
{
    struct blocked *bl = arg;
    bl->in = true;
    bl->rc = weft_stream_recv_borrowed(bl->s, &bl->data);
    return 0;
}

/* A second receiver is -EBUSY, and so is a release while a receive is
 * under way; neither disturbs the first. */
static void second_receiver_is_ebusy_body(weft_stream *a, weft_stream *b)
{
    struct blocked bl = {.s = a};
    const void *data;
    char c;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, borrow_task, &bl), 0);
    th_wait_flag(&bl.in);
    th_settle();
    CHECK_EQ(weft_stream_recv_borrowed(a, &data), -EBUSY);
    CHECK_EQ(data, NULL);
    CHECK_EQ(weft_stream_recv(a, &c, 1), -EBUSY);
    CHECK_EQ(weft_stream_release(a), -EBUSY);
    nh_send_str(b, "mine");
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(bl.rc, 4);
    CHECK(memcmp(bl.data, "mine", 4) == 0);
    CHECK_EQ(weft_stream_release(a), 0);
}

SOCKETS(second_receiver_is_ebusy)

/* A cancelled scope: -ECANCELED at entry, and what was lent stays lent
 * (a call refused at entry changes nothing). */
static void cancelled_at_entry_keeps_the_borrow_body(weft_stream *a,
                                                     weft_stream *b)
{
    const void *data, *again;
    nh_send_str(b, "kept");
    CHECK_EQ(weft_stream_recv_borrowed(a, &data), 4);
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_stream_recv_borrowed(a, &again), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK(memcmp(data, "kept", 4) == 0);
    if (have_ring())
        CHECK_EQ(wf_cur->bufs->avail + (wf_cur->bufs->inc ? 0 : 1),
                 wf_cur->bufs->nbufs);
    CHECK_EQ(weft_stream_release(a), 0);
}

SOCKETS(cancelled_at_entry_keeps_the_borrow)

/* Closing a stream gives back the buffer it lent. */
static int close_with_a_buffer_lent_main(void *arg)
{
    enum transport t = *(enum transport *)arg;
    weft_stream *a, *b;
    if (open_streams(t, &a, &b) < 0)
        return -EIO;
    const void *data;
    nh_send_str(b, "held");
    CHECK_EQ(weft_stream_recv_borrowed(a, &data), 4);
    if (have_ring()) {
        CHECK(in_ring(data));
        CHECK_EQ(a->lent.held, true);
    }
    CHECK_EQ(weft_stream_close(a), 0); /* no release */
    ring_full();
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_borrow_pair_close_with_a_buffer_lent(void **state)
{
    enum transport t = PAIR;
    run_in_loop(close_with_a_buffer_lent_main, &t);
}

static void test_borrow_tcp_close_with_a_buffer_lent(void **state)
{
    enum transport t = TCP;
    run_in_loop(close_with_a_buffer_lent_main, &t);
}

static void test_borrow_pair_ms_close_with_a_buffer_lent(void **state)
{
    enum transport t = PAIR_MS;
    run_in_loop(close_with_a_buffer_lent_main, &t);
}

static void test_borrow_tcp_ms_close_with_a_buffer_lent(void **state)
{
    enum transport t = TCP_MS;
    run_in_loop(close_with_a_buffer_lent_main, &t);
}

/* A close while a task waits in recv_borrowed: -EBADF, and no buffer
 * (with multishot: the armed receive is cancelled and waited for). */
static int close_while_waiting_main(void *arg)
{
    weft_stream *a, *b;
    if (open_streams(*(enum transport *)arg, &a, &b) < 0)
        return -EIO;
    struct blocked bl = {.s = a};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, borrow_task, &bl), 0);
    th_wait_flag(&bl.in);
    th_settle();
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(bl.rc, -EBADF);
    CHECK_EQ(bl.data, NULL);
    ring_full();
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_borrow_close_while_waiting_gives_ebadf(void **state)
{
    enum transport t = PAIR;
    run_in_loop(close_while_waiting_main, &t);
    t = PAIR_MS;
    run_in_loop(close_while_waiting_main, &t);
}

/* Bad arguments and calls from outside a task. */
static int arguments_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    if (open_streams(PAIR, &a, &b) < 0)
        return -EIO;
    const void *data;
    CHECK_EQ(weft_stream_recv_borrowed(NULL, &data), -EINVAL);
    CHECK_EQ(weft_stream_recv_borrowed(a, NULL), -EFAULT);
    CHECK_EQ(weft_stream_release(NULL), -EINVAL);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_borrow_arguments(void **state)
{
    run_in_loop(arguments_main, NULL);
    const void *data;
    CHECK_EQ(weft_stream_recv_borrowed(NULL, &data), -EPERM);
    CHECK_EQ(weft_stream_release(NULL), -EPERM);
    th_assert_clean();
}

/* ---- cancellation after the kernel filled a buffer ---- */

struct race {
    weft_stream *s;
    weft_scope scope;
    bool in;
    ssize_t rc, after;
    const void *data;
    char line[64];
    bool framed; /* recv_until instead of recv_borrowed */
};

static int race_receiver(void *arg)
{
    struct race *r = arg;
    weft_scope_enter(&r->scope, WEFT_FOREVER);
    r->in = true;
    if (r->framed)
        r->rc = weft_stream_recv_until(r->s, r->line, sizeof r->line, "\n", 1);
    else
        r->rc = weft_stream_recv_borrowed(r->s, &r->data);
    r->after = weft_checkpoint(); /* the cancellation, reported now */
    weft_scope_exit(&r->scope, r->rc < 0 ? (int)r->rc : 0);
    return 0;
}

/* Run the receiver, send msg from the peer's fd, and let the loop go
 * round until the kernel has taken the bytes off the socket (into a ring
 * buffer): its completion is then reaped, the receiver readied and not yet
 * run. Only then cancel it. */
static void cancel_after_the_kernel_took(struct race *r, weft_stream *b,
                                         const char *msg)
{
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, race_receiver, r), 0);
    th_wait_flag(&r->in);
    th_settle();
    size_t len = strlen(msg);
    CHECK_EQ(send(weft_stream_fd(b), msg, len, MSG_NOSIGNAL), (ssize_t)len);
    for (int i = 0; i < 100000 && sock_inq(r->s) != 0; i++)
        CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(sock_inq(r->s), 0);
    weft_scope_cancel(&r->scope);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
}

/* The borrowed receive returns the bytes (the next checkpoint reports the
 * cancellation): the buffer the kernel picked is not lost. */
static void cancel_after_kernel_picked_returns_bytes_body(weft_stream *a,
                                                          weft_stream *b)
{
    struct race r = {.s = a};
    cancel_after_the_kernel_took(&r, b, "picked");
    CHECK_EQ(r.rc, 6);
    CHECK(r.data && memcmp(r.data, "picked", 6) == 0);
    CHECK_EQ(r.after, -ECANCELED);
    CHECK_EQ(weft_stream_release(a), 0);
    ring_full();
}

SOCKETS(cancel_after_kernel_picked_returns_bytes)

/* recv_until gets bytes with no delimiter, then the cancellation: the
 * bytes become read-ahead (moved out of the ring buffer), and the next
 * calls get them. */
static void cancel_after_kernel_picked_keeps_read_ahead_body(weft_stream *a,
                                                             weft_stream *b)
{
    struct race r = {.s = a, .framed = true};
    cancel_after_the_kernel_took(&r, b, "no-delim-yet");
    CHECK_EQ(r.rc, -ECANCELED);
    CHECK_EQ(weft_stream_buffered(a), 12);
    CHECK_EQ(a->rpiece.held, false); /* not holding a ring buffer */
    ring_full();
    nh_send_str(b, "\n");
    char buf[32] = {0};
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 12);
    CHECK_STR_EQ(buf, "no-delim-yet");
}

SOCKETS(cancel_after_kernel_picked_keeps_read_ahead)

/* Both orders of a cancellation and arriving data, many times: the bytes
 * are returned or stay in the socket, never lost. */
static void cancel_races_data_body(weft_stream *a, weft_stream *b)
{
    int completed = 0, cancelled = 0;
    for (int i = 0; i < 200; i++) {
        struct race r = {.s = a};
        char msg[16];
        int len = snprintf(msg, sizeof msg, "m%03d", i);
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, race_receiver, &r), 0);
        th_wait_flag(&r.in);
        if (i % 2)
            th_settle();
        CHECK_EQ(send(weft_stream_fd(b), msg, (size_t)len, MSG_NOSIGNAL), len);
        weft_scope_cancel(&r.scope);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        if (r.rc == len) {
            CHECK(memcmp(r.data, msg, (size_t)len) == 0);
            completed++;
        } else {
            CHECK_EQ(r.rc, -ECANCELED);
            cancelled++;
            expect_borrowed(a, msg);
        }
        CHECK_EQ(weft_stream_release(a), 0);
        ring_full();
    }
    print_message("      %d completed anyway, %d cancelled\n", completed,
                  cancelled);
}

SOCKETS(cancel_races_data)

/* ---- every buffer lent at once ---- */

/*
 * More streams than the ring has buffers, each holding what it borrowed:
 * once the ring is empty the kernel says -ENOBUFS and the receive falls
 * back to a block of the stream's own; the bytes are right either way,
 * and the releases fill the ring again.
 */
enum { MANY = 80 };

static int ring_runs_dry_main(void *arg)
{
    (void)arg;
    weft_stream *a[MANY], *b[MANY];
    int opened = 0;
    const void *probe;
    weft_stream *pa, *pb;
    if (open_streams(PAIR, &pa, &pb) < 0)
        return -EIO;
    nh_send_str(pb, "p");
    CHECK_EQ(weft_stream_recv_borrowed(pa, &probe), 1); /* sets the ring up */
    CHECK_EQ(weft_stream_close(pa), 0);
    CHECK_EQ(weft_stream_close(pb), 0);
    if (!have_ring()) {
        print_message("      no provided-buffer ring here: fallback only\n");
        return 0;
    }
    struct wf_bufring *ring = wf_cur->bufs;
    size_t chunk = ring->size; /* one whole buffer per stream */
    unsigned char *msg = nh_pattern(chunk);
    int fell_back = 0;
    for (; opened < MANY; opened++) {
        if (open_streams(PAIR, &a[opened], &b[opened]) < 0)
            break;
        CHECK_EQ(weft_stream_send(b[opened], msg, chunk), (ssize_t)chunk);
        const void *data;
        ssize_t n = weft_stream_recv_borrowed(a[opened], &data);
        if (!CHECK_GT(n, 0))
            break;
        CHECK(memcmp(data, msg, (size_t)n) == 0);
        if (!in_ring(data))
            fell_back++;
    }
    print_message("      %u buffers of %u bytes (%s): %d of %d receives fell "
                  "back\n",
                  ring->nbufs, ring->size, ring->inc ? "incremental" : "whole",
                  fell_back, opened);
    CHECK_GT(fell_back, 0);
    CHECK_EQ(ring->avail, 0);
    for (int i = 0; i < opened; i++)
        CHECK_EQ(weft_stream_release(a[i]), 0);
    /* the kernel keeps the last buffer it was filling (incremental) */
    CHECK_GE(ring->avail + 1, ring->nbufs);
    for (int i = 0; i < opened; i++) {
        CHECK_EQ(weft_stream_close(a[i]), 0);
        CHECK_EQ(weft_stream_close(b[i]), 0);
    }
    free(msg);
    return 0;
}

static void test_borrow_ring_runs_dry_falls_back(void **state)
{
    run_in_loop(ring_runs_dry_main, NULL);
}

/* ---- read-ahead that holds no buffer while it waits ---- */

struct framed {
    weft_stream *s;
    bool in;
    ssize_t rc;
    char line[64];
};

static int framed_reader(void *arg)
{
    struct framed *f = arg;
    f->in = true;
    f->rc = weft_stream_recv_until(f->s, f->line, sizeof f->line, "\n", 1);
    return 0;
}

/* No read-ahead block, where the loop has a provided-buffer ring. Without
 * one (the epoll backend, kernels before 5.19) a receive needs a block of
 * its own, and the stream keeps it for the next (api/stream/stream.c). */
static void no_block(weft_stream *s)
{
    if (have_ring())
        CHECK_EQ(s->rbuf, NULL);
}

/* A reader waiting in recv_until with nothing read ahead holds neither a
 * block nor a ring buffer; after a whole record nothing stays; a partial
 * record stays as a block of its own, not a ring buffer (with a ring;
 * without one, the records are the same). */
static void framed_reader_waits_with_no_buffer_body(weft_stream *a,
                                                    weft_stream *b)
{
    struct framed f = {.s = a};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, framed_reader, &f), 0);
    th_wait_flag(&f.in);
    th_settle();
    no_block(a);
    ring_full();
    nh_send_str(b, "one\n");
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(f.rc, 3);
    no_block(a);
    ring_full();

    /* a record and a half: the half stays, in a block of its own */
    nh_send_str(b, "two\nthr");
    th_settle();
    char buf[32] = {0};
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 3);
    CHECK_STR_EQ(buf, "two");
    CHECK_EQ(weft_stream_buffered(a), 3);
    CHECK_EQ(a->rpiece.held, false);
    ring_full();
    nh_send_str(b, "ee\n");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 5);
    CHECK_STR_EQ(buf, "three");
    no_block(a);

    /* recv_exactly's read-ahead goes too once taken */
    nh_send_str(b, "ab\ncd");
    th_settle();
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 2);
    nh_send_str(b, "ef");
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 4), 4);
    CHECK(memcmp(buf, "cdef", 4) == 0);
    no_block(a);
    ring_full();
}

SOCKETS(framed_reader_waits_with_no_buffer)

/* ---- an idle connection's task: one page of stack ---- */

/*
 * A task waiting in a stream receive must keep its record (at most 1,984
 * bytes below the top of its stack, engine/stack.c's colours, plus 384
 * with its alignment) and its frames in the top page: that page is all
 * an idle connection's task costs. Measured at the deepest wait so far
 * (t->deep, what stack.c trims by). Sanitizers' and -O0's frames are
 * larger: there the budget does not hold, and the test says so.
 */
enum { PAGE_FOR_FRAMES = 4096 - 384 - 31 * 64 };

struct deep {
    weft_stream *s;
    bool in, framed;
    struct weft_task *t;
};

static int deep_receiver(void *arg)
{
    struct deep *d = arg;
    d->t = wf_self();
    d->in = true;
    const void *data;
    char line[64];
    if (d->framed)
        return (int)weft_stream_recv_until(d->s, line, sizeof line, "\n", 1);
    return (int)weft_stream_recv_borrowed(d->s, &data);
}

static void waiting_task_fits_in_a_page_body(weft_stream *a, weft_stream *b)
{
    for (int framed = 0; framed < 2; framed++) {
        struct deep d = {.s = a, .framed = framed};
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, deep_receiver, &d), 0);
        th_wait_flag(&d.in);
        th_settle();
        uint32_t deep = d.t->deep;
        CHECK_LE(deep, PAGE_FOR_FRAMES);
        print_message("      %s: %u bytes below the record (budget %d)\n",
                      framed ? "recv_until" : "recv_borrowed", deep,
                      PAGE_FOR_FRAMES);
        nh_send_str(b, "x\n");
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        weft_stream_release(a);
    }
}

static void test_borrow_waiting_task_fits_in_a_page(void **state)
{
#ifndef __OPTIMIZE__
    print_message("      skipped: -O0 frames are larger (the budget is for "
                  "optimised builds)\n");
    skip();
#endif
    if (TH_ASAN || TH_TSAN) {
        print_message("      skipped: sanitizers' frames are larger (the "
                      "budget is for plain builds)\n");
        skip();
    }
    run_streams(TCP, waiting_task_fits_in_a_page_body);
}

/* ---- multishot receive (weft_stream_set_multishot) ---- */

struct ms_sender {
    weft_stream *s;
    const unsigned char *msg;
    size_t len, chunk;
    bool eof; /* send_eof after the last byte */
};

static int ms_send_task(void *arg)
{
    struct ms_sender *w = arg;
    for (size_t off = 0; off < w->len; off += w->chunk) {
        size_t n = w->len - off < w->chunk ? w->len - off : w->chunk;
        if (!CHECK_EQ(weft_stream_send(w->s, w->msg + off, n), (ssize_t)n))
            return -EIO;
    }
    if (w->eof)
        CHECK_EQ(weft_stream_send_eof(w->s), 0);
    return 0;
}

/* Receive len bytes by every kind of receive call in turn, and check them
 * against the pattern. */
static void ms_receive_all(weft_stream *a, const unsigned char *msg, size_t len)
{
    unsigned char *got = malloc(len);
    size_t have = 0;
    for (int k = 0; have < len; k++) {
        ssize_t n;
        const void *data;
        switch (k % 3) {
        case 0:
            n = weft_stream_recv(a, got + have, len - have);
            break;
        case 1:
            n = weft_stream_recv_borrowed(a, &data);
            if (n > 0 && CHECK_LE((size_t)n, len - have))
                memcpy(got + have, data, (size_t)n);
            CHECK_EQ(weft_stream_release(a), 0);
            break;
        default: {
            size_t want = len - have < 3000 ? len - have : 3000;
            n = weft_stream_recv_exactly(a, got + have, want);
            break;
        }
        }
        if (!CHECK_GT(n, 0))
            break;
        have += (size_t)n;
    }
    CHECK_EQ(have, len);
    CHECK(memcmp(got, msg, len) == 0);
    free(got);
}

/* 2 MiB from a task that sends in odd pieces: every byte, in order,
 * through recv, recv_borrowed and recv_exactly in turn; then the end. */
static void ms_bytes_in_order_body(weft_stream *a, weft_stream *b)
{
    size_t len = 2u << 20;
    unsigned char *msg = nh_pattern(len);
    struct ms_sender w = {
        .s = b, .msg = msg, .len = len, .chunk = 1237, .eof = true};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, ms_send_task, &w), 0);
    ms_receive_all(a, msg, len);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    char c;
    CHECK_EQ(weft_stream_recv(a, &c, 1), 0);
    CHECK_EQ(weft_stream_recv(a, &c, 1), 0); /* and again */
    free(msg);
}

static void test_borrow_ms_bytes_in_order(void **state)
{
    run_streams(PAIR_MS, ms_bytes_in_order_body);
    run_streams(TCP_MS, ms_bytes_in_order_body);
}

/* A reader that does not read: the queue stops growing (the armed
 * receive is cancelled at 8 pieces or 64 KiB), the rest waits in the
 * socket, and the ring keeps buffers for the loop's other streams; all of
 * it still arrives, in order, once the reader reads. */
static void ms_queue_is_bounded_body(weft_stream *a, weft_stream *b)
{
    size_t len = 1u << 20;
    unsigned char *msg = nh_pattern(len);
    struct ms_sender w = {.s = b, .msg = msg, .len = len, .chunk = 512};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, ms_send_task, &w), 0);
    char first;
    CHECK_EQ(weft_stream_recv(a, &first, 1), 1); /* arms it */
    for (int i = 0; i < 200; i++)
        th_settle();
    struct wf_sock_stream *ss = (struct wf_sock_stream *)a;
    if (have_multishot()) {
        CHECK(ss->ms != NULL);
        print_message("      queued while nobody read: %zu bytes\n",
                      weft_stream_buffered(a));
        CHECK_GT(weft_stream_buffered(a), 0);
        CHECK_LE(weft_stream_buffered(a), 256 * 1024);
        CHECK_GT(wf_cur->bufs->avail, 0);
    }
    ms_receive_all(a, msg + 1, len - 1);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    free(msg);
}

static void test_borrow_ms_queue_is_bounded(void **state)
{
    run_streams(PAIR_MS, ms_queue_is_bounded_body);
    run_streams(TCP_MS, ms_queue_is_bounded_body);
}

/* Bytes and the end both queued before anyone asks: the bytes, then 0. */
static void ms_end_after_the_queue_body(weft_stream *a, weft_stream *b)
{
    char buf[16] = {0};
    nh_send_str(b, "x");
    CHECK_EQ(weft_stream_recv(a, buf, 1), 1); /* arms it */
    nh_send_str(b, "tail");
    CHECK_EQ(weft_stream_send_eof(b), 0);
    for (int i = 0; i < 1000 && weft_stream_buffered(a) < 4; i++)
        th_settle();
    if (have_multishot())
        CHECK_EQ(weft_stream_buffered(a), 4);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "tail", 4) == 0);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 0);
    const void *data;
    CHECK_EQ(weft_stream_recv_borrowed(a, &data), 0);
}

static void test_borrow_ms_end_after_the_queue(void **state)
{
    run_streams(PAIR_MS, ms_end_after_the_queue_body);
    run_streams(TCP_MS, ms_end_after_the_queue_body);
}

/* Turned off while armed: what it queued comes first, then one-shot
 * receives; turned on again, multishot again. Nothing lost or reordered. */
static void ms_off_and_on_body(weft_stream *a, weft_stream *b)
{
    char buf[16] = {0};
    nh_send_str(b, "a");
    CHECK_EQ(weft_stream_recv(a, buf, 1), 1);
    nh_send_str(b, "bc");
    for (int i = 0; i < 1000 && weft_stream_buffered(a) < 2; i++)
        th_settle();
    CHECK_EQ(weft_stream_set_multishot(a, false), 0);
    nh_send_str(b, "de");
    CHECK(nh_expect(a, "bcde"));
    struct wf_sock_stream *ss = (struct wf_sock_stream *)a;
    th_settle();
    CHECK(!ss->ms || !ss->ms->armed);
    nh_send_str(b, "f");
    CHECK(nh_expect(a, "f"));
    CHECK_EQ(weft_stream_set_multishot(a, true),
             have_multishot() ? 0 : -ENOTSUP);
    nh_send_str(b, "gh");
    CHECK(nh_expect(a, "gh"));
}

static void test_borrow_ms_off_and_on(void **state)
{
    run_streams(PAIR_MS, ms_off_and_on_body);
    run_streams(TCP_MS, ms_off_and_on_body);
}

/* Closed with pieces queued and the receive armed: every buffer goes
 * back to the ring (with_streams_main checks ring_full after the close). */
static void ms_close_with_pieces_queued_body(weft_stream *a, weft_stream *b)
{
    char c;
    nh_send_str(b, "1");
    CHECK_EQ(weft_stream_recv(a, &c, 1), 1);
    for (int i = 0; i < 5; i++) {
        nh_send_str(b, "queued");
        th_settle();
    }
    if (have_multishot())
        CHECK_GT(weft_stream_buffered(a), 0);
}

/* A borrowed stream (weft_stream_borrow) counts what the stream under
 * it has queued: weft_stream_buffered sees through it. */
static void ms_buffered_through_a_borrow_body(weft_stream *a, weft_stream *b)
{
    weft_stream *view;
    CHECK_EQ(weft_stream_borrow(&view, a), 0);
    char c;
    nh_send_str(b, "1");
    CHECK_EQ(weft_stream_recv(view, &c, 1), 1); /* arms a's */
    nh_send_str(b, "abc");
    for (int i = 0; i < 1000 && weft_stream_buffered(a) < 3; i++)
        th_settle();
    CHECK_EQ(weft_stream_buffered(view), weft_stream_buffered(a));
    if (have_multishot())
        CHECK_EQ(weft_stream_buffered(view), 3);
    CHECK(nh_expect(view, "abc"));
    CHECK_EQ(weft_stream_close(view), 0);
}

static void test_borrow_ms_buffered_through_a_borrow(void **state)
{
    run_streams(PAIR_MS, ms_buffered_through_a_borrow_body);
}

static void test_borrow_ms_close_with_pieces_queued(void **state)
{
    run_streams(PAIR_MS, ms_close_with_pieces_queued_body);
    run_streams(TCP_MS, ms_close_with_pieces_queued_body);
}

/* Under failing allocations (WEFT_FAULT_ALLOC): a piece the queue had no
 * room for is a hole in the bytes, so from there on every receive says
 * -ENOMEM and nothing after the hole is delivered. What came before is
 * exactly the stream's start. */
static int ms_hole_sender(void *arg)
{
    struct ms_sender *w = arg;
    for (size_t off = 0; off < w->len; off += w->chunk) {
        size_t n = w->len - off < w->chunk ? w->len - off : w->chunk;
        if (weft_stream_send(w->s, w->msg + off, n) != (ssize_t)n)
            break; /* the reader gave up: the pair is closing */
    }
    return 0;
}

static int ms_hole_main(void *arg)
{
    int *holes = arg;
    weft_stream *a, *b;
    if (weft_stream_pair(&a, &b) < 0)
        return 0; /* the pair's own allocation failed */
    size_t len = 256u << 10;
    unsigned char *msg = nh_pattern(len);
    unsigned char *got = malloc(len);
    weft_group g;
    weft_group_enter(&g);
    struct ms_sender w = {.s = b, .msg = msg, .len = len, .chunk = 700};
    bool on = weft_stream_set_multishot(a, true) == 0;
    if (weft_group_spawn(&g, ms_hole_sender, &w) == 0) {
        size_t have = 0;
        ssize_t n = 1;
        while (have < len &&
               (n = weft_stream_recv(a, got + have, len - have)) > 0)
            have += (size_t)n;
        CHECK(memcmp(got, msg, have) == 0); /* the start, in order */
        if (n < 0 && on && have < len) {
            CHECK_EQ(n, -ENOMEM);
            char c;
            CHECK_EQ(weft_stream_recv(a, &c, 1), -ENOMEM); /* for good */
            (*holes)++;
        }
        weft_stream_close(a);
        a = NULL;
    }
    weft_group_exit(&g, 0);
    if (a)
        weft_stream_close(a);
    weft_stream_close(b);
    free(msg);
    free(got);
    return 0;
}

static void test_borrow_ms_hole_is_final(void **state)
{
    int holes = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        weft_faults f = {
            .seed = seed, .kinds = WEFT_FAULT_ALLOC, .rate = 200000};
        weft_options o = {.faults = &f};
        run_loop(ms_hole_main, &holes, &o);
    }
    print_message("      %d of 40 runs had a hole\n", holes);
}

/* Bad arguments, other transports, and calls from outside a task. */
static int ms_arguments_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    CHECK_EQ(weft_stream_set_multishot(NULL, true), -EINVAL);
    if (open_streams(MEM, &a, &b) < 0)
        return -EIO;
    CHECK_EQ(weft_stream_set_multishot(a, true), -ENOTSUP);
    CHECK_EQ(weft_stream_set_multishot(a, false), -ENOTSUP);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_borrow_ms_arguments(void **state)
{
    run_in_loop(ms_arguments_main, NULL);
    CHECK_EQ(weft_stream_set_multishot(NULL, true), -EPERM);
    th_assert_clean();
}

/* ---- a transport with no fd: the stream's own block ---- */

static void memstream_falls_back_body(weft_stream *a, weft_stream *b)
{
    nh_send_str(b, "in-memory");
    expect_borrowed(a, "in-memory");
    CHECK(a->lent_ahead);
    CHECK_EQ(weft_stream_release(a), 0);
    CHECK(!a->lent_ahead);
    nh_send_str(b, "x\nyz");
    char buf[8] = {0};
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 1);
    expect_borrowed(a, "yz");
    nh_send_str(b, "held at close");
    expect_borrowed(a, "held at close"); /* close frees it (ASan) */
    CHECK_EQ(weft_stream_send_eof(b), 0);
}

static void test_borrow_memstream_falls_back(void **state)
{
    run_streams(MEM, memstream_falls_back_body);
}

static const struct CMUnitTest tests[] = {
    SOCKET_TESTS(returns_bytes_in_a_ring_buffer),
    SOCKET_TESTS(next_receive_ends_the_borrow),
    SOCKET_TESTS(read_ahead_comes_first),
    SOCKET_TESTS(end_of_stream_is_0),
    SOCKET_TESTS(second_receiver_is_ebusy),
    SOCKET_TESTS(cancelled_at_entry_keeps_the_borrow),
    SOCKET_TESTS(close_with_a_buffer_lent),
    NET_TEST(test_borrow_close_while_waiting_gives_ebadf),
    NET_TEST(test_borrow_arguments),
    SOCKET_TESTS(cancel_after_kernel_picked_returns_bytes),
    SOCKET_TESTS(cancel_after_kernel_picked_keeps_read_ahead),
    SOCKET_TESTS(cancel_races_data),
    NET_TEST(test_borrow_ring_runs_dry_falls_back),
    SOCKET_TESTS(framed_reader_waits_with_no_buffer),
    NET_TEST(test_borrow_waiting_task_fits_in_a_page),
    NET_TEST(test_borrow_memstream_falls_back),
    NET_TEST(test_borrow_ms_bytes_in_order),
    NET_TEST(test_borrow_ms_queue_is_bounded),
    NET_TEST(test_borrow_ms_end_after_the_queue),
    NET_TEST(test_borrow_ms_off_and_on),
    NET_TEST(test_borrow_ms_close_with_pieces_queued),
    NET_TEST(test_borrow_ms_buffered_through_a_borrow),
    NET_TEST(test_borrow_ms_hole_is_final),
    NET_TEST(test_borrow_ms_arguments),
};

TH_MAIN(tests)
