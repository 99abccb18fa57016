/* SPDX-License-Identifier: MIT */
/*
 * tests/test_testing.c - the helpers of weft/testing.h for users' tests:
 * the in-memory stream pair (echoes of every size through every chunk
 * and delay, the stream layer's framing over it, a full buffer, cancelled
 * transfers in both orders of a cancel and a hand-off, closing under a
 * blocked peer, end of stream, -EBUSY), weft_wait_all_tasks_blocked (with
 * tasks asleep, on primitives and on I/O in flight), the sequencer and
 * weft_free_port.
 *
 * Tasks are arranged with weft_wait_all_tasks_blocked itself: once it
 * returns, every helper task sits in the call under test, and the test
 * task cancels and hands off in the order under test before any of them
 * runs again.
 */
#include "helpers.h"

#include <weft/testing.h>

/* ---- shared ---- */

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 31 + 7) % 251);
}

/* A task that makes one stream call, in a scope the test can cancel. */
struct caller {
    weft_stream *s;
    char buf[256];
    size_t len;
    weft_scope scope;
    ssize_t rc;
    bool returned;
};

static int recv_task(void *arg)
{
    struct caller *c = arg;
    weft_scope_enter(&c->scope, WEFT_FOREVER);
    c->rc = weft_stream_recv(c->s, c->buf, sizeof c->buf);
    c->returned = true;
    weft_scope_exit(&c->scope, 0);
    return 0;
}

static int send_task(void *arg)
{
    struct caller *c = arg;
    weft_scope_enter(&c->scope, WEFT_FOREVER);
    c->rc = weft_stream_send(c->s, c->buf, c->len);
    c->returned = true;
    weft_scope_exit(&c->scope, 0);
    return 0;
}

static void fill(struct caller *c, char byte, size_t len)
{
    memset(c->buf, byte, len);
    c->len = len;
}

/* ---- memory streams: echoes ---- */

struct echo {
    weft_stream *a, *b;
    size_t size;
};

static int echo_sender(void *arg)
{
    struct echo *e = arg;
    unsigned char block[10007]; /* odd, so sends straddle everything */
    size_t sent = 0;
    while (sent < e->size) {
        size_t n =
            e->size - sent < sizeof block ? e->size - sent : sizeof block;
        for (size_t i = 0; i < n; i++)
            block[i] = pattern(sent + i);
        CHECK_EQ(weft_stream_send(e->a, block, n), (ssize_t)n);
        sent += n;
    }
    CHECK_EQ(weft_stream_send_eof(e->a), 0);
    return 0;
}

static int echo_server(void *arg)
{
    struct echo *e = arg;
    char buf[8192];
    ssize_t n;
    while ((n = weft_stream_recv(e->b, buf, sizeof buf)) > 0)
        CHECK_EQ(weft_stream_send(e->b, buf, (size_t)n), n);
    CHECK_EQ(n, 0);
    CHECK_EQ(weft_stream_send_eof(e->b), 0);
    return 0;
}

static void echo_once(size_t size, size_t chunk, weft_time delay)
{
    weft_memstream_opts o = {.chunk = chunk, .delay = delay};
    struct echo e = {.size = size};
    CHECK_EQ(weft_memstream_pair(&e.a, &e.b, &o), 0);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, echo_sender, &e), 0);
    CHECK_EQ(weft_group_spawn(&g, echo_server, &e), 0);
    unsigned char buf[5000];
    size_t got = 0;
    bool same = true;
    ssize_t n;
    while ((n = weft_stream_recv(e.a, buf, sizeof buf)) > 0) {
        if (chunk)
            CHECK_LE(n, (ssize_t)chunk);
        for (ssize_t i = 0; i < n && same; i++)
            same = buf[i] == pattern(got + (size_t)i);
        got += (size_t)n;
    }
    CHECK_EQ(n, 0);
    CHECK_EQ(got, size);
    if (!same)
        th_fail_at(__FILE__, __LINE__, "echo of %zu bytes (chunk %zu) differs",
                   size, chunk);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_stream_close(e.a), 0);
    CHECK_EQ(weft_stream_close(e.b), 0);
}

static int echo_main(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {1, 7, 4096, 65537, 200000};
    static const size_t chunks[] = {0, 1, 7, 4096};
    static const weft_time delays[] = {0, 100 * WEFT_USEC};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
            for (size_t d = 0; d < sizeof delays / sizeof delays[0]; d++)
                echo_once(sizes[s], chunks[c], delays[d]);
    /* 4 MiB: many times the buffer, through every cap, once delayed */
    echo_once((size_t)4 << 20, 1, 0);
    echo_once((size_t)4 << 20, 7, 0);
    echo_once((size_t)4 << 20, 4096, 0);
    echo_once((size_t)4 << 20, 4096, 50 * WEFT_USEC);
    return 0;
}

static void test_memstream_echoes_every_size_chunk_and_delay(void **state)
{
    (void)state;
    run_in_loop(echo_main, NULL);
}

/* A delay holds bytes back for that long, and no longer per transfer. */
static int delay_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    weft_memstream_opts o = {.delay = 20 * WEFT_MSEC};
    CHECK_EQ(weft_memstream_pair(&a, &b, &o), 0);
    char buf[8];
    weft_time t0 = weft_now();
    CHECK_EQ(weft_stream_send(a, "abc", 3), 3);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 3);
    CHECK_GE(weft_now() - t0, 20 * WEFT_MSEC);
    CHECK_EQ(memcmp(buf, "abc", 3), 0);
    /* not yet due: a cancel at the deadline takes nothing */
    CHECK_EQ(weft_stream_send(a, "de", 2), 2);
    weft_scope s;
    weft_scope_enter(&s, weft_now() + 5 * WEFT_MSEC);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 2);
    CHECK_EQ(memcmp(buf, "de", 2), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_memstream_delay_holds_each_transfer_back(void **state)
{
    (void)state;
    run_in_loop(delay_main, NULL);
}

/* ---- the stream layer over it ---- */

static int framing_main(void *arg)
{
    (void)arg;
    static const size_t chunks[] = {1, 2, 3, 5};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        weft_stream *a, *b;
        weft_memstream_opts o = {.chunk = chunks[c]};
        CHECK_EQ(weft_memstream_pair(&a, &b, &o), 0);
        const char msg[] = "hello\r\nworld\r\n0123456789tail";
        CHECK_EQ(weft_stream_send(a, msg, sizeof msg - 1),
                 (ssize_t)sizeof msg - 1);
        CHECK_EQ(weft_stream_send_eof(a), 0);
        char buf[64];
        CHECK_EQ(weft_stream_recv_until(b, buf, sizeof buf, "\r\n", 2), 5);
        CHECK_EQ(memcmp(buf, "hello", 5), 0);
        CHECK_EQ(weft_stream_recv_until(b, buf, sizeof buf, "\r\n", 2), 5);
        CHECK_EQ(memcmp(buf, "world", 5), 0);
        CHECK_EQ(weft_stream_recv_exactly(b, buf, 10), 10);
        CHECK_EQ(memcmp(buf, "0123456789", 10), 0);
        /* ended part way: -ENODATA, and the bytes stay readable */
        CHECK_EQ(weft_stream_recv_exactly(b, buf, 10), -ENODATA);
        CHECK_EQ(weft_stream_buffered(b), 4);
        CHECK_EQ(weft_stream_recv_until(b, buf, sizeof buf, "\n", 1), -ENODATA);
        CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 4);
        CHECK_EQ(memcmp(buf, "tail", 4), 0);
        CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
        CHECK_EQ(weft_stream_close(a), 0);
        CHECK_EQ(weft_stream_close(b), 0);
    }
    return 0;
}

static void test_memstream_recv_exactly_and_until_across_chunks(void **state)
{
    (void)state;
    run_in_loop(framing_main, NULL);
}

/* ---- a full buffer ---- */

static int full_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    weft_memstream_opts o = {.capacity = 16};
    CHECK_EQ(weft_memstream_pair(&a, &b, &o), 0);
    struct caller snd = {.s = a};
    for (size_t i = 0; i < 100; i++)
        snd.buf[i] = (char)pattern(i);
    snd.len = 100;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, send_task, &snd), 0);
    char buf[100];
    size_t got = 0;
    while (got < 100) {
        /* the sender has filled the buffer and waits for room, or has
         * put its last bytes in and returned */
        CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
        CHECK_EQ(snd.returned, 100 - got <= 16);
        ssize_t n = weft_stream_recv(b, buf + got, sizeof buf - got);
        CHECK_EQ(n, 16 < 100 - got ? 16 : (ssize_t)(100 - got));
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got < 100) {
            /* nothing moves until the sender runs again */
            CHECK_EQ(weft_stream_buffered(b), 0);
        }
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(snd.returned);
    CHECK_EQ(snd.rc, 100);
    CHECK_EQ(memcmp(buf, snd.buf, 100), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_memstream_send_waits_for_room_and_resumes(void **state)
{
    (void)state;
    run_in_loop(full_main, NULL);
}

/* ---- cancellation loses no bytes ---- */

static void recv_race(bool handoff_first)
{
    weft_stream *a, *b;
    CHECK_EQ(weft_memstream_pair(&a, &b, NULL), 0);
    struct caller rcv = {.s = b};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recv_task, &rcv), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK(!rcv.returned);
    if (handoff_first) {
        CHECK_EQ(weft_stream_send(a, "xyz", 3), 3);
        weft_scope_cancel(&rcv.scope);
    } else {
        weft_scope_cancel(&rcv.scope);
        CHECK_EQ(weft_stream_send(a, "xyz", 3), 3);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(rcv.returned);
    char buf[8];
    if (handoff_first) {
        /* woken with the bytes: it keeps them */
        CHECK_EQ(rcv.rc, 3);
        CHECK_EQ(memcmp(rcv.buf, "xyz", 3), 0);
    } else {
        /* cancelled first: it took nothing, the bytes wait */
        CHECK_EQ(rcv.rc, -ECANCELED);
        CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 3);
        CHECK_EQ(memcmp(buf, "xyz", 3), 0);
    }
    CHECK_EQ(weft_stream_send_eof(a), 0);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
}

static void send_race(bool handoff_first)
{
    weft_stream *a, *b;
    weft_memstream_opts o = {.capacity = 8};
    CHECK_EQ(weft_memstream_pair(&a, &b, &o), 0);
    CHECK_EQ(weft_stream_send(a, "01234567", 8), 8);
    struct caller snd = {.s = a};
    fill(&snd, 'z', 5);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, send_task, &snd), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK(!snd.returned);
    char buf[16];
    if (handoff_first) {
        CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 8); /* room: wakes it */
        weft_scope_cancel(&snd.scope);
    } else {
        weft_scope_cancel(&snd.scope);
        CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 8);
    }
    CHECK_EQ(memcmp(buf, "01234567", 8), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(snd.returned);
    CHECK_EQ(weft_stream_send_eof(a), 0);
    if (handoff_first) {
        /* woken with room: it sent everything */
        CHECK_EQ(snd.rc, 5);
        CHECK_EQ(weft_stream_recv_exactly(b, buf, 5), 5);
        CHECK_EQ(memcmp(buf, "zzzzz", 5), 0);
    } else {
        /* cancelled first: it sent nothing */
        CHECK_EQ(snd.rc, -ECANCELED);
    }
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
}

static int race_main(void *arg)
{
    (void)arg;
    recv_race(false);
    recv_race(true);
    send_race(false);
    send_race(true);
    return 0;
}

static void test_memstream_cancel_and_handoff_in_both_orders(void **state)
{
    (void)state;
    run_in_loop(race_main, NULL);
}

/* A send larger than the buffer, cancelled part way: what it moved is a
 * prefix of what it was given, and nothing else arrives. */
static int partial_send_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    weft_memstream_opts o = {.capacity = 10, .chunk = 4};
    CHECK_EQ(weft_memstream_pair(&a, &b, &o), 0);
    struct caller snd = {.s = a};
    for (size_t i = 0; i < 200; i++)
        snd.buf[i] = (char)pattern(i);
    snd.len = 200;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, send_task, &snd), 0);
    char buf[256];
    size_t got = 0;
    for (int round = 0; round < 3; round++) {
        CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
        ssize_t n = weft_stream_recv_exactly(b, buf + got, 10);
        CHECK_EQ(n, 10);
        got += 10;
    }
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    weft_scope_cancel(&snd.scope);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(snd.rc, -ECANCELED);
    CHECK_EQ(weft_stream_send_eof(a), 0);
    ssize_t n;
    while ((n = weft_stream_recv(b, buf + got, sizeof buf - got)) > 0)
        got += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(got, 40); /* three drained buffers and the last full one */
    CHECK_EQ(memcmp(buf, snd.buf, got), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_memstream_cancelled_long_send_moved_a_prefix(void **state)
{
    (void)state;
    run_in_loop(partial_send_main, NULL);
}

/* ---- closing ---- */

static int close_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    weft_group g;
    char buf[8];

    /* the same end closed under its blocked receiver and sender */
    weft_memstream_opts small = {.capacity = 4};
    CHECK_EQ(weft_memstream_pair(&a, &b, &small), 0);
    CHECK_EQ(weft_stream_send(b, "full", 4), 4);
    struct caller rcv = {.s = b}, snd = {.s = b};
    fill(&snd, 'q', 3);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recv_task, &rcv), 0);
    CHECK_EQ(weft_group_spawn(&g, send_task, &snd), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK(!rcv.returned && !snd.returned);
    CHECK_EQ(weft_stream_close(b), 0);
    CHECK(rcv.returned && snd.returned);
    CHECK_EQ(rcv.rc, -EBADF);
    CHECK_EQ(snd.rc, -EBADF);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    /* the peer reads what was sent, then the end; its sends fail */
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 4);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_send(a, "x", 1), -EPIPE);
    CHECK_EQ(weft_stream_close(a), 0);

    /* the peer closed under a blocked receiver: it drains, then 0 */
    CHECK_EQ(weft_memstream_pair(&a, &b, NULL), 0);
    struct caller rcv2 = {.s = b};
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recv_task, &rcv2), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK_EQ(weft_stream_send(a, "ab", 2), 2);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(rcv2.rc, 2);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(b), 0);

    /* the peer closed under a blocked sender: -EPIPE */
    CHECK_EQ(weft_memstream_pair(&a, &b, &small), 0);
    CHECK_EQ(weft_stream_send(a, "full", 4), 4);
    struct caller snd2 = {.s = a};
    fill(&snd2, 'r', 2);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, send_task, &snd2), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK(!snd2.returned);
    CHECK_EQ(weft_stream_close(b), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(snd2.rc, -EPIPE);
    CHECK_EQ(weft_stream_close(a), 0);
    return 0;
}

static void test_memstream_close_under_blocked_calls(void **state)
{
    (void)state;
    run_in_loop(close_main, NULL);
}

static int eof_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    char buf[8];
    CHECK_EQ(weft_memstream_pair(&a, &b, NULL), 0);
    CHECK_EQ(weft_stream_fd(a), -ENOTSUP);
    CHECK_EQ(weft_stream_send(a, "last", 4), 4);
    CHECK_EQ(weft_stream_send_eof(a), 0);
    CHECK_EQ(weft_stream_send(a, "more", 4), -EPIPE);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 4);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0); /* and stays ended */
    /* a half-close: the other direction still works */
    CHECK_EQ(weft_stream_send(b, "back", 4), 4);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 4);
    CHECK_EQ(memcmp(buf, "back", 4), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    CHECK_EQ(weft_memstream_pair(NULL, &b, NULL), -EINVAL);
    weft_memstream_opts bad = {.delay = -1};
    CHECK_EQ(weft_memstream_pair(&a, &b, &bad), -EINVAL);
    return 0;
}

static void test_memstream_eof_half_close_and_fd(void **state)
{
    (void)state;
    run_in_loop(eof_main, NULL);
}

static int busy_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    weft_memstream_opts small = {.capacity = 1};
    CHECK_EQ(weft_memstream_pair(&a, &b, &small), 0);
    CHECK_EQ(weft_stream_send(a, "x", 1), 1);
    struct caller rcv = {.s = a}, snd = {.s = a};
    fill(&snd, 'y', 1);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recv_task, &rcv), 0);
    CHECK_EQ(weft_group_spawn(&g, send_task, &snd), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    char buf[4];
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), -EBUSY);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 1), -EBUSY);
    CHECK_EQ(weft_stream_send(a, "z", 1), -EBUSY);
    CHECK_EQ(weft_stream_send_eof(a), -EBUSY);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(rcv.rc, -ECANCELED);
    CHECK_EQ(snd.rc, -ECANCELED);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_memstream_second_caller_is_ebusy(void **state)
{
    (void)state;
    run_in_loop(busy_main, NULL);
}

/* ---- weft_wait_all_tasks_blocked ---- */

struct busy {
    weft_event *go, *never;
    int steps;
    int done; /* steps taken before blocking for good */
    bool blocked;
};

static int yield_then_wait(void *arg)
{
    struct busy *b = arg;
    if (b->go)
        CHECK_EQ(weft_event_wait(b->go), 0);
    for (int i = 0; i < b->steps; i++) {
        CHECK_EQ(weft_checkpoint(), 0);
        b->done++;
    }
    b->blocked = true;
    return weft_event_wait(b->never);
}

static int nops_then_wait(void *arg)
{
    struct busy *b = arg;
    for (int i = 0; i < b->steps; i++) {
        CHECK_EQ(th_nop(), 0);
        b->done++;
    }
    b->blocked = true;
    return weft_event_wait(b->never);
}

static int sleeper(void *arg)
{
    (void)arg;
    return weft_sleep(10 * WEFT_SEC);
}

static int setter(void *arg)
{
    struct busy *b = arg;
    for (int i = 0; i < b->steps; i++)
        CHECK_EQ(weft_checkpoint(), 0);
    weft_event_set(b->go);
    b->blocked = true;
    return 0;
}

static int wait_all_main(void *arg)
{
    (void)arg;
    weft_event go, never;
    weft_event_init(&go);
    weft_event_init(&never);
    struct busy chain = {.go = &go, .never = &never, .steps = 5};
    struct busy set = {.go = &go, .steps = 7};
    struct busy io = {.never = &never, .steps = 20};
    weft_group g;
    weft_group_enter(&g);
    weft_time t0 = weft_now();
    CHECK_EQ(weft_group_spawn(&g, sleeper, NULL), 0);
    CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, NULL), 0);
    CHECK_EQ(weft_group_spawn(&g, yield_then_wait, &chain), 0);
    CHECK_EQ(weft_group_spawn(&g, setter, &set), 0);
    CHECK_EQ(weft_group_spawn(&g, nops_then_wait, &io), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    /* every one has gone as far as it can */
    CHECK(set.blocked);
    CHECK(chain.blocked);
    CHECK_EQ(chain.done, 5);
    CHECK(io.blocked);
    CHECK_EQ(io.done, 20);
    CHECK_LT(weft_now() - t0, 5 * WEFT_SEC); /* not after the sleeper */
    /* nothing changed: it returns again at once */
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    /* alone in the loop: at once */
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    return 0;
}

static void test_wait_all_tasks_blocked_sleeping_events_and_ring(void **state)
{
    (void)state;
    run_in_loop(wait_all_main, NULL);
}

/* A receive on an empty socketpair is blocked once the kernel holds it;
 * one with data waiting completes first. */
static int wait_io_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    struct caller rcv = {.s = b};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, recv_task, &rcv), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK(!rcv.returned);
    CHECK_EQ(weft_stream_send(a, "ping", 4), 4);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    /* the completion was reaped and the receiver ran before it returned */
    CHECK(rcv.returned);
    CHECK_EQ(rcv.rc, 4);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_wait_all_tasks_blocked_waits_for_io_to_block(void **state)
{
    (void)state;
    run_in_loop(wait_io_main, NULL);
}

struct idle_waiter {
    weft_scope scope;
    int rc;
    bool returned;
};

static int idle_task(void *arg)
{
    struct idle_waiter *w = arg;
    weft_scope_enter(&w->scope, WEFT_FOREVER);
    w->rc = weft_wait_all_tasks_blocked();
    w->returned = true;
    weft_scope_exit(&w->scope, 0);
    return 0;
}

static int wait_many_main(void *arg)
{
    (void)arg;
    struct idle_waiter w[3] = {{.rc = 1}, {.rc = 1}, {.rc = 1}};
    weft_group g;
    /* several waiters: all woken together */
    weft_group_enter(&g);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_group_spawn(&g, idle_task, &w[i]), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(w[i].rc, 0);
    /* a busy task keeps a waiter waiting; a cancel ends its wait */
    struct idle_waiter c = {.rc = 1};
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, idle_task, &c), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(weft_checkpoint(), 0);
    CHECK(!c.returned);
    weft_scope_cancel(&c.scope);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(c.rc, -ECANCELED);
    /* a cancelled caller: -ECANCELED at once */
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_wait_all_tasks_blocked(), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    return 0;
}

static void test_wait_all_tasks_blocked_many_waiters_and_cancel(void **state)
{
    (void)state;
    run_in_loop(wait_many_main, NULL);
}

/* ---- the sequencer ---- */

struct seq_task {
    weft_sequencer *seq;
    unsigned position;
    int *log, *nlog;
    weft_scope scope;
    weft_event *hold; /* wait for this inside the section, if set */
    int rc;
};

static int seq_body(void *arg)
{
    struct seq_task *t = arg;
    weft_scope_enter(&t->scope, WEFT_FOREVER);
    t->rc = weft_sequencer_begin(t->seq, t->position);
    if (t->rc == 0) {
        t->log[(*t->nlog)++] = (int)t->position;
        CHECK_EQ(weft_checkpoint(), 0); /* others run meanwhile */
        if (t->hold)
            CHECK_EQ(weft_event_wait(t->hold), 0);
        t->log[(*t->nlog)++] = (int)t->position + 100;
        weft_sequencer_end(t->seq, t->position);
    }
    weft_scope_exit(&t->scope, 0);
    return 0;
}

static int seq_order_main(void *arg)
{
    (void)arg;
    weft_sequencer seq;
    weft_sequencer_init(&seq);
    int log[16], nlog = 0;
    struct seq_task t[5];
    weft_group g;
    weft_group_enter(&g);
    for (int i = 4; i >= 0; i--) {
        t[i] = (struct seq_task){
            .seq = &seq, .position = (unsigned)i, .log = log, .nlog = &nlog};
        CHECK_EQ(weft_group_spawn(&g, seq_body, &t[i]), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(nlog, 10);
    for (int i = 0; i < 5 && nlog == 10; i++) {
        CHECK_EQ(log[2 * i], i);
        CHECK_EQ(log[2 * i + 1], i + 100);
        CHECK_EQ(t[i].rc, 0);
    }
    /* each position is taken once */
    CHECK_EQ(weft_sequencer_begin(&seq, 3), -EINVAL);
    CHECK_EQ(weft_sequencer_begin(&seq, 5), 0);
    CHECK_EQ(weft_sequencer_begin(&seq, 5), -EINVAL);
    weft_sequencer_end(&seq, 5);
    return 0;
}

static void test_sequencer_runs_sections_in_position_order(void **state)
{
    (void)state;
    run_in_loop(seq_order_main, NULL);
}

static int seq_break_main(void *arg)
{
    (void)arg;
    weft_sequencer seq;
    weft_sequencer_init(&seq);
    weft_event hold;
    weft_event_init(&hold);
    int log[16], nlog = 0;
    struct seq_task t[3];
    for (int i = 0; i < 3; i++)
        t[i] = (struct seq_task){
            .seq = &seq, .position = (unsigned)i, .log = log, .nlog = &nlog};
    t[0].hold = &hold;
    weft_group g;
    weft_group_enter(&g);
    for (int i = 2; i >= 0; i--)
        CHECK_EQ(weft_group_spawn(&g, seq_body, &t[i]), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    /* 0 is inside its section, 1 and 2 wait: cancel 1 */
    weft_scope_cancel(&t[1].scope);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK_EQ(t[1].rc, -ECANCELED);
    CHECK_EQ(t[2].rc, -EPIPE);
    weft_event_set(&hold); /* 0 finishes its section and ends */
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(t[0].rc, 0);
    CHECK_EQ(nlog, 2);
    CHECK_EQ(weft_sequencer_begin(&seq, 3), -EPIPE);
    return 0;
}

static void test_sequencer_cancelled_wait_breaks_it(void **state)
{
    (void)state;
    run_in_loop(seq_break_main, NULL);
}

static int seq_bad_end_main(void *arg)
{
    (void)arg;
    weft_sequencer seq;
    weft_sequencer_init(&seq);
    weft_sequencer_end(&seq, 2);
    return 0;
}

static void seq_bad_end_child(void *arg)
{
    (void)arg;
    weft_run(seq_bad_end_main, NULL, NULL);
}

static void test_sequencer_end_of_unbegun_position_panics(void **state)
{
    (void)state;
    struct th_child c;
    th_run_child(seq_bad_end_child, NULL, &c);
    if (!WIFSIGNALED(c.status) || !strstr(c.err, "weft_sequencer_end(2)"))
        th_child_dump(&c);
    assert_true(WIFSIGNALED(c.status));
    assert_non_null(strstr(c.err, "weft_sequencer_end(2)"));
}

/* ---- free port; outside a loop ---- */

static int free_port_main(void *arg)
{
    (void)arg;
    int port = weft_free_port();
    CHECK_GT(port, 0);
    weft_listener *l;
    CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", (uint16_t)port), 0);
    CHECK_EQ(weft_listener_port(l), port);
    weft_stream *c, *s;
    CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), 0);
    CHECK_EQ(weft_listener_accept(l, &s), 0);
    char buf[4];
    CHECK_EQ(weft_stream_send(c, "hi", 2), 2);
    CHECK_EQ(weft_stream_recv_exactly(s, buf, 2), 2);
    CHECK_EQ(weft_stream_close(c), 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_free_port_can_be_listened_on(void **state)
{
    (void)state;
    run_in_loop(free_port_main, NULL);
}

static void test_helpers_outside_a_loop(void **state)
{
    (void)state;
    weft_sequencer seq;
    weft_sequencer_init(&seq);
    assert_rc(weft_wait_all_tasks_blocked(), -EPERM);
    assert_rc(weft_sequencer_begin(&seq, 0), -EPERM);
    assert_true(weft_free_port() > 0);
    weft_stream *a, *b;
    /* made outside a loop; no call but close works there */
    assert_rc(weft_memstream_pair(&a, &b, NULL), 0);
    assert_rc(weft_stream_send(a, "x", 1), -EPERM);
    assert_rc(weft_stream_close(a), 0);
    assert_rc(weft_stream_close(b), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_memstream_echoes_every_size_chunk_and_delay),
    cmocka_unit_test(test_memstream_delay_holds_each_transfer_back),
    cmocka_unit_test(test_memstream_recv_exactly_and_until_across_chunks),
    cmocka_unit_test(test_memstream_send_waits_for_room_and_resumes),
    cmocka_unit_test(test_memstream_cancel_and_handoff_in_both_orders),
    cmocka_unit_test(test_memstream_cancelled_long_send_moved_a_prefix),
    cmocka_unit_test(test_memstream_close_under_blocked_calls),
    cmocka_unit_test(test_memstream_eof_half_close_and_fd),
    cmocka_unit_test(test_memstream_second_caller_is_ebusy),
    cmocka_unit_test(test_wait_all_tasks_blocked_sleeping_events_and_ring),
    cmocka_unit_test(test_wait_all_tasks_blocked_waits_for_io_to_block),
    cmocka_unit_test(test_wait_all_tasks_blocked_many_waiters_and_cancel),
    cmocka_unit_test(test_sequencer_runs_sections_in_position_order),
    cmocka_unit_test(test_sequencer_cancelled_wait_breaks_it),
    cmocka_unit_test(test_sequencer_end_of_unbegun_position_panics),
    cmocka_unit_test(test_free_port_can_be_listened_on),
    cmocka_unit_test(test_helpers_outside_a_loop),
};

TH_MAIN(tests)
