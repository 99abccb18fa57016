/* SPDX-License-Identifier: MIT */
/*
 * tests/test_stream.c - byte streams (API.md "Byte streams", weft/stream.h)
 * over the two socket transports: weft_stream_pair (AF_UNIX socketpair)
 * and TCP over loopback. Echo round trips up to 16 MiB, the read-ahead
 * of recv_exactly / recv_until and what recv returns after them, the busy
 * rules, half-close, closing a stream a task is blocked on (also between
 * two receives or sends of one call), cancellation that loses no bytes,
 * and deadlines from scopes and from linked timeouts
 * (weft_stream_kernel_deadlines).
 *
 * Every test runs for both transports (test_stream_pair_* and
 * test_stream_tcp_*), and no test may leak a file descriptor.
 */
#include "helpers.h"
#include <sys/mman.h>
#include "net_helpers.h"

/* ---- the two transports ---- */

enum transport { PAIR, TCP };

/* In a task: two connected streams of the transport. */
static int open_streams(enum transport t, weft_stream **a, weft_stream **b)
{
    if (t == PAIR) {
        int rc = weft_stream_pair(a, b);
        CHECK_EQ(rc, 0);
        return rc;
    }
    return nh_tcp_pair("127.0.0.1", a, b);
}

static void close_streams(weft_stream *a, weft_stream *b)
{
    if (a)
        CHECK_EQ(weft_stream_close(a), 0);
    if (b)
        CHECK_EQ(weft_stream_close(b), 0);
}

/* Bytes waiting to be read on a socket (SIOCINQ), or -1. */
static int sock_inq(weft_stream *s)
{
    return th_pipe_pending(weft_stream_fd(s));
}

/* Bytes a socket has sent that its peer has not taken yet, or -1. */
static int sock_outq(weft_stream *s)
{
    int n = -1;
    if (ioctl(weft_stream_fd(s), TIOCOUTQ, &n) < 0)
        return -1;
    return n;
}

/* A test body that gets two connected streams. */
typedef void (*stream_body)(weft_stream *a, weft_stream *b);

struct with_streams {
    enum transport t;
    stream_body body;
};

static int with_streams_main(void *arg)
{
    struct with_streams *w = arg;
    weft_stream *a, *b;
    int rc = open_streams(w->t, &a, &b);
    if (rc < 0)
        return rc;
    w->body(a, b);
    close_streams(a, b);
    return 0;
}

static void run_streams(enum transport t, stream_body body)
{
    struct with_streams w = {t, body};
    run_in_loop(with_streams_main, &w);
}

/* Declare test_stream_pair_<name> and test_stream_tcp_<name>. */
#define BOTH(name)                                                             \
    static void test_stream_pair_##name(void **state)                          \
    {                                                                          \
        run_streams(PAIR, name##_body);                                        \
    }                                                                          \
    static void test_stream_tcp_##name(void **state)                           \
    {                                                                          \
        run_streams(TCP, name##_body);                                         \
    }

/* ---- echo round trips ---- */

struct echo {
    weft_stream *client, *server;
    const unsigned char *data;
    size_t n;
    size_t got;
    int send_rc, recv_rc, echo_rc;
};

/* A task of the echo that met an error (under WEFT_FAULTS) gives up on
 * both directions of its socket, so that the other tasks see the end (or
 * -EPIPE) instead of waiting forever for bytes that will not come. */
static void echo_give_up(weft_stream *s)
{
    /* TCP: an RST, or the peer could stay blocked sending into a full
     * window (a FIN does not stop its sends). */
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    connect(weft_stream_fd(s), &unspec, sizeof unspec);
    shutdown(weft_stream_fd(s), SHUT_RDWR);
}

/* The client's sender: all of the data, then end of stream. */
static int echo_sender(void *arg)
{
    struct echo *e = arg;
    ssize_t r = weft_stream_send(e->client, e->data, e->n);
    e->send_rc = CHECK_EQ(r, (ssize_t)e->n) ? 0 : -EIO;
    if (e->send_rc == 0)
        CHECK_EQ(weft_stream_send_eof(e->client), 0);
    else
        echo_give_up(e->client);
    return 0;
}

/* The client's receiver, at the same time: every byte back, in order. */
static int echo_receiver(void *arg)
{
    struct echo *e = arg;
    size_t cap = 100000; /* not a power of two: chunks fall anywhere */
    unsigned char *buf = malloc(cap);
    if (!CHECK(buf != NULL))
        return -ENOMEM;
    for (;;) {
        ssize_t r = weft_stream_recv(e->client, buf, cap);
        if (r <= 0) {
            e->recv_rc = (int)r;
            break;
        }
        if (!CHECK_LE(e->got + (size_t)r, e->n)) {
            e->recv_rc = -EOVERFLOW;
            break;
        }
        if (!CHECK(memcmp(buf, e->data + e->got, (size_t)r) == 0)) {
            e->recv_rc = -EILSEQ;
            break;
        }
        e->got += (size_t)r;
    }
    if (e->recv_rc < 0)
        echo_give_up(e->client);
    free(buf);
    return 0;
}

/* The peer: echo until end of stream, then end its side. */
static int echo_server(void *arg)
{
    struct echo *e = arg;
    size_t cap = 65536;
    char *buf = malloc(cap);
    if (!CHECK(buf != NULL))
        return -ENOMEM;
    for (;;) {
        ssize_t r = weft_stream_recv(e->server, buf, cap);
        if (r < 0) {
            e->echo_rc = (int)r;
            break;
        }
        if (r == 0) {
            e->echo_rc = weft_stream_send_eof(e->server);
            break;
        }
        ssize_t w = weft_stream_send(e->server, buf, (size_t)r);
        if (w != r) {
            e->echo_rc = (int)w;
            break;
        }
    }
    if (e->echo_rc < 0)
        echo_give_up(e->server);
    free(buf);
    return 0;
}

static void echo_run(weft_stream *a, weft_stream *b, size_t n)
{
    unsigned char *data = nh_pattern(n);
    if (!CHECK(data != NULL))
        return;
    struct echo e = {.client = a, .server = b, .data = data, .n = n};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "echo", echo_server, &e), 0);
    CHECK_EQ(weft_group_spawn_named(&g, "receiver", echo_receiver, &e), 0);
    CHECK_EQ(weft_group_spawn_named(&g, "sender", echo_sender, &e), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(e.send_rc, 0);
    CHECK_EQ(e.echo_rc, 0);
    CHECK_EQ(e.recv_rc, 0); /* ended by the echo's send_eof */
    CHECK_EQ(e.got, n);
    free(data);
}

static void echo_1_byte_body(weft_stream *a, weft_stream *b)
{
    echo_run(a, b, 1);
}

static void echo_4_kib_body(weft_stream *a, weft_stream *b)
{
    echo_run(a, b, 4096);
}

static void echo_1_mib_body(weft_stream *a, weft_stream *b)
{
    echo_run(a, b, 1 << 20);
}

static void echo_16_mib_body(weft_stream *a, weft_stream *b)
{
    echo_run(a, b, 16 << 20);
}

BOTH(echo_1_byte)
BOTH(echo_4_kib)
BOTH(echo_1_mib)
BOTH(echo_16_mib)

/* ---- a feeder: the peer sends pieces with pauses between ---- */

struct feed {
    weft_stream *s;
    const char *const *pieces; /* NULL-terminated */
    weft_time pause;
    bool eof; /* send_eof after the last piece */
};

static int feeder(void *arg)
{
    struct feed *f = arg;
    for (size_t i = 0; f->pieces[i]; i++) {
        /* The receiver is blocked by now: each piece arrives alone. */
        if (weft_sleep(f->pause) < 0)
            return -ECANCELED;
        if (!nh_send_str(f->s, f->pieces[i]))
            return -EIO;
    }
    if (f->eof)
        CHECK_EQ(weft_stream_send_eof(f->s), 0);
    return 0;
}

/* ---- recv and the read-ahead ---- */

/* recv_until reads past its delimiter; recv hands those bytes out first,
 * and only them, before it reads the transport again. */
static void recv_returns_read_ahead_first_body(weft_stream *a, weft_stream *b)
{
    char buf[64];

    nh_send_str(b, "line1\nrest-of-data");
    /* recv_until reads all 18 bytes at once if they are there: wait */
    th_settle();
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 5);
    CHECK_STR_EQ(buf, "line1");

    nh_send_str(b, "LATER");
    th_settle();
    /* a small recv: part of the read-ahead */
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv(a, buf, 4), 4);
    CHECK_STR_EQ(buf, "rest");
    /* a large one: the rest of the read-ahead, not the new bytes too */
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 8);
    CHECK_STR_EQ(buf, "-of-data");
    /* then the transport */
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 5);
    CHECK_STR_EQ(buf, "LATER");

    /* recv_exactly takes from the read-ahead, then from the transport */
    nh_send_str(b, "hdr\n0123");
    th_settle();
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 3);
    CHECK_STR_EQ(buf, "hdr");
    nh_send_str(b, "456789");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 2), 2);
    CHECK_STR_EQ(buf, "01");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 6), 6);
    CHECK_STR_EQ(buf, "234567");
    nh_expect(a, "89");

    /* a zero-length recv of an open stream with nothing read ahead */
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 0), 0);
}

BOTH(recv_returns_read_ahead_first)

/* ---- recv_exactly ---- */

static void recv_exactly_body(weft_stream *a, weft_stream *b)
{
    static const char *const pieces[] = {"ab", "c", "defg", "hij", NULL};
    struct feed f = {b, pieces, 2 * WEFT_MSEC, false};
    char buf[32];
    weft_group g;

    /* n bytes that arrive in several pieces */
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "feeder", feeder, &f), 0);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 10), 10);
    CHECK_STR_EQ(buf, "abcdefghij");
    CHECK_EQ(weft_group_exit(&g, 0), 0);

    /* ended part way: -ENODATA, and the bytes stay readable */
    nh_send_str(b, "xyz");
    CHECK_EQ(weft_stream_send_eof(b), 0);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 10), -ENODATA);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 3);
    CHECK_STR_EQ(buf, "xyz");
    /* ended before any byte: 0, again and again */
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 10), 0);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 1), 0);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 0);
}

BOTH(recv_exactly)

/* -ENODATA twice in a row keeps every byte: the second call sees the
 * first call's bytes and more. */
static void recv_exactly_enodata_keeps_bytes_body(weft_stream *a,
                                                  weft_stream *b)
{
    char buf[32];

    nh_send_str(b, "12");
    th_settle();
    weft_scope s;
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 5), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    nh_send_str(b, "34");
    CHECK_EQ(weft_stream_send_eof(b), 0);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 5), -ENODATA);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 4), 4);
    CHECK_STR_EQ(buf, "1234");
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 4), 0);
}

BOTH(recv_exactly_enodata_keeps_bytes)

/* ---- recv_until ---- */

/* A single-byte delimiter in its own send, and in the middle of one. */
static void recv_until_split_sends_body(weft_stream *a, weft_stream *b)
{
    static const char *const pieces[] = {"ab",     "cd", "\n",
                                         "ef\ngh", "\n", NULL};
    struct feed f = {b, pieces, 2 * WEFT_MSEC, true};
    char buf[32];
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "feeder", feeder, &f), 0);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 4);
    CHECK_STR_EQ(buf, "abcd");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 2);
    CHECK_STR_EQ(buf, "ef");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 2);
    CHECK_STR_EQ(buf, "gh");
    /* the end: nothing left, no delimiter: -ENODATA (0 is an empty
     * record), and recv says end of stream */
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), -ENODATA);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
}

BOTH(recv_until_split_sends)

/* fuzz_framing's first finding: recv_until on a stream that has never
 * read ahead (no buffer yet) formed NULL + 0 to search it, undefined
 * behaviour that clang's -fsanitize=undefined reports. The first call,
 * at the end of the stream and with data, must work with no buffer. */
static void recv_until_no_buffer_yet_body(weft_stream *a, weft_stream *b)
{
    char buf[8];
    CHECK_EQ(weft_stream_buffered(a), 0);
    CHECK_EQ(weft_stream_send(b, "ab|", 3), 3);
    CHECK_EQ(weft_stream_send_eof(b), 0);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "|", 1), 2);
    CHECK_EQ(memcmp(buf, "ab", 2), 0);
    CHECK_EQ(weft_stream_recv_until(a, NULL, 0, "|", 1), -ENODATA);
}

BOTH(recv_until_no_buffer_yet)

/* "\r\n\r\n" split after each of its bytes in turn, with false starts
 * ("\r\n\r" then "x") before the real one. */
static void recv_until_multibyte_delim_split_body(weft_stream *a,
                                                  weft_stream *b)
{
    static const char delim[] = "\r\n\r\n";
    char first[64], second[64], buf[64];

    for (int k = 1; k < 4; k++) {
        snprintf(first, sizeof first, "head\r\n\rx%.*s", k, delim);
        snprintf(second, sizeof second, "%stail%d|", delim + k, k);
        const char *const pieces[] = {first, second, NULL};
        struct feed f = {b, pieces, 2 * WEFT_MSEC, false};
        weft_group g;

        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn_named(&g, "feeder", feeder, &f), 0);
        memset(buf, 0, sizeof buf);
        CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, delim, 4), 8);
        CHECK_STR_EQ(buf, "head\r\n\rx");
        /* the delimiter was consumed: the next bytes are the tail */
        memset(buf, 0, sizeof buf);
        CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "|", 1), 5);
        char want[8];
        snprintf(want, sizeof want, "tail%d", k);
        CHECK_STR_EQ(buf, want);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
    }
}

BOTH(recv_until_multibyte_delim_split)

/* One byte per send: every chunk boundary there is. */
struct bytewise {
    weft_stream *s;
    const char *msg;
};

static int bytewise_sender(void *arg)
{
    struct bytewise *bw = arg;
    for (const char *p = bw->msg; *p; p++) {
        if (!CHECK_EQ(weft_stream_send(bw->s, p, 1), 1))
            return -EIO;
        if (weft_sleep(WEFT_MSEC / 2) < 0)
            return -ECANCELED;
    }
    return 0;
}

static void recv_until_bytewise_body(weft_stream *a, weft_stream *b)
{
    struct bytewise bw = {b, "k1: v1\r\nk2: v2\r\n\r\nbody"};
    char buf[64];
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, bytewise_sender, &bw), 0);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\r\n\r\n", 4), 14);
    CHECK_STR_EQ(buf, "k1: v1\r\nk2: v2");
    nh_expect(a, "body");
    CHECK_EQ(weft_group_exit(&g, 0), 0);
}

BOTH(recv_until_bytewise)

/* -EMSGSIZE when the delimiter does not end within max bytes; the bytes
 * stay readable. Exactly max bytes before the delimiter is fine. */
static void recv_until_emsgsize_body(weft_stream *a, weft_stream *b)
{
    char buf[64];

    /* the delimiter is there, past max */
    nh_send_str(b, "0123456789\n");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, 4, "\n", 1), -EMSGSIZE);
    CHECK_EQ(weft_stream_recv_until(a, buf, 9, "\n", 1), -EMSGSIZE);
    CHECK_EQ(weft_stream_recv_until(a, buf, 10, "\n", 1), 10);
    CHECK(memcmp(buf, "0123456789", 10) == 0);

    /* no delimiter yet, but more than max bytes: no need to wait */
    nh_send_str(b, "abcdefghij");
    th_settle();
    CHECK_EQ(weft_stream_recv_until(a, buf, 4, "\n", 1), -EMSGSIZE);
    CHECK_EQ(weft_stream_recv_until(a, buf, 4, "\r\n", 2), -EMSGSIZE);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 10), 10);
    CHECK_STR_EQ(buf, "abcdefghij");

    /* a multi-byte delimiter that would end one byte past max */
    nh_send_str(b, "abcd\r\n");
    CHECK_EQ(weft_stream_recv_until(a, buf, 3, "\r\n", 2), -EMSGSIZE);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, 4, "\r\n", 2), 4);
    CHECK_STR_EQ(buf, "abcd");

    /* max 0: only an empty line fits */
    nh_send_str(b, "\nx\n");
    CHECK_EQ(weft_stream_recv_until(a, buf, 0, "\n", 1), 0);
    CHECK_EQ(weft_stream_recv_until(a, buf, 0, "\n", 1), -EMSGSIZE);
    nh_expect(a, "x\n");
}

BOTH(recv_until_emsgsize)

/* An empty delimiter, or a max that leaves no room for the delimiter in
 * a ssize_t: -EINVAL, and the stream is as it was. */
static void recv_until_empty_delim_or_huge_max_is_einval_body(weft_stream *a,
                                                              weft_stream *b)
{
    char buf[16];

    nh_send_str(b, "abcdef");
    th_settle();
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "", 0), -EINVAL);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "", 0), -EINVAL);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 0), -EINVAL);
    CHECK_EQ(weft_stream_recv_until(a, buf, SIZE_MAX, "x", 1), -EINVAL);
    CHECK_EQ(weft_stream_recv_until(a, buf, SIZE_MAX, "\r\n", 2), -EINVAL);
    /* nothing was consumed, and the receiving side is free */
    CHECK_EQ(sock_inq(a), 6);
    nh_send_str(b, "\n");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 6);
    CHECK_STR_EQ(buf, "abcdef");
}

BOTH(recv_until_empty_delim_or_huge_max_is_einval)

/* The stream ends before the delimiter: -ENODATA with bytes (they stay
 * readable) and without; 0 is an empty record. */
static void recv_until_end_of_stream_body(weft_stream *a, weft_stream *b)
{
    char buf[64];

    nh_send_str(b, "\nno newline");
    CHECK_EQ(weft_stream_send_eof(b), 0);
    /* an empty record is 0, told apart from the end */
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 0);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), -ENODATA);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 10);
    CHECK_STR_EQ(buf, "no newline");
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), -ENODATA);
}

BOTH(recv_until_end_of_stream)

/* Two requests in one send: recv_until returns the first and keeps the
 * second in the read-ahead, where weft_stream_buffered sees it while the
 * fd has nothing left to read, so a server that waits for readability
 * only when nothing is buffered serves it at once. */
static void buffered_counts_pipelined_request_body(weft_stream *a,
                                                   weft_stream *b)
{
    static const char two[] = "GET /1\r\n\r\nGET /2\r\n\r\n";
    char buf[64];
    int fd = weft_stream_fd(a);

    CHECK_EQ(weft_stream_buffered(NULL), 0);
    CHECK_EQ(weft_stream_buffered(a), 0);
    nh_send_str(b, two);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\r\n\r\n", 4), 6);
    CHECK_EQ(memcmp(buf, "GET /1", 6), 0);
    CHECK_EQ(weft_stream_buffered(a), strlen("GET /2\r\n\r\n"));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 0), 0); /* waiting for readability would hang */
    /* the keep-alive loop's test: wait only when nothing is buffered */
    if (weft_stream_buffered(a) == 0)
        CHECK_EQ(weft_wait_readable(fd), 0);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\r\n\r\n", 4), 6);
    CHECK_EQ(memcmp(buf, "GET /2", 6), 0);
    CHECK_EQ(weft_stream_buffered(a), 0);
    /* a plain recv takes from the read-ahead too */
    nh_send_str(b, "x\nyz");
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 1);
    size_t left = weft_stream_buffered(a);
    CHECK(left <= 2); /* "yz" may arrive later on TCP */
    if (left > 0) {
        CHECK_EQ(weft_stream_recv(a, buf, 1), 1);
        CHECK_EQ(weft_stream_buffered(a), left - 1);
    }
}

BOTH(buffered_counts_pipelined_request)

/* ---- one receiver and one sender at a time ---- */

struct blocked {
    weft_stream *s;
    weft_scope scope;
    bool in;
    ssize_t rc;
    char buf[32];
    unsigned char *big;
    size_t bign;
};

static int blocked_recv(void *arg)
{
    struct blocked *bl = arg;
    weft_scope_enter(&bl->scope, WEFT_FOREVER);
    bl->in = true;
    bl->rc = weft_stream_recv(bl->s, bl->buf, sizeof bl->buf);
    weft_scope_exit(&bl->scope, bl->rc < 0 ? (int)bl->rc : 0);
    return 0;
}

static int blocked_send(void *arg)
{
    struct blocked *bl = arg;
    weft_scope_enter(&bl->scope, WEFT_FOREVER);
    bl->in = true;
    bl->rc = weft_stream_send(bl->s, bl->big, bl->bign);
    weft_scope_exit(&bl->scope, bl->rc < 0 ? (int)bl->rc : 0);
    return 0;
}

static void ebusy_receiver_body(weft_stream *a, weft_stream *b)
{
    struct blocked bl = {.s = a};
    char buf[8];
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "receiver", blocked_recv, &bl), 0);
    th_wait_flag(&bl.in);
    th_settle();
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), -EBUSY);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 1), -EBUSY);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), -EBUSY);
    /* the other direction is free: a send while a recv waits */
    nh_send_str(a, "sent");
    nh_expect(b, "sent");
    /* -EBUSY changed nothing: the first receiver gets the bytes */
    nh_send_str(b, "hello");
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(bl.rc, 5);
    CHECK(memcmp(bl.buf, "hello", 5) == 0);
}

BOTH(ebusy_receiver)

static void ebusy_sender_body(weft_stream *a, weft_stream *b)
{
    struct blocked bl = {.s = a, .bign = 64 << 20};
    weft_group g;

    bl.big = calloc(1, bl.bign);
    if (!CHECK(bl.big != NULL))
        return;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "sender", blocked_send, &bl), 0);
    th_wait_flag(&bl.in);
    th_settle(); /* the peer never reads: the send is stuck by now */
    CHECK_EQ(weft_stream_send(a, "x", 1), -EBUSY);
    CHECK_EQ(weft_stream_send_eof(a), -EBUSY);
    /* the other direction is free */
    nh_send_str(b, "back");
    nh_expect(a, "back");
    weft_scope_cancel(&bl.scope);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(bl.rc, -ECANCELED);
    free(bl.big);
}

BOTH(ebusy_sender)

/* ---- half-close ---- */

static void send_eof_half_close_body(weft_stream *a, weft_stream *b)
{
    char buf[16];

    nh_send_str(a, "last words");
    CHECK_EQ(weft_stream_send_eof(a), 0);
    /* a's sending side is shut */
    CHECK_EQ(weft_stream_send(a, "more", 4), -EPIPE);
    nh_expect(b, "last words");
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    /* b can still talk back */
    nh_send_str(b, "reply");
    nh_expect(a, "reply");
    CHECK_EQ(weft_stream_send_eof(b), 0);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 0);
}

BOTH(send_eof_half_close)

/* The peer closed (normally): recv gives 0, send fails with -EPIPE or
 * -ECONNRESET (a TCP peer answers the first bytes with a reset). */
static int close_peer_main(void *arg)
{
    enum transport t = *(enum transport *)arg;
    weft_stream *a, *b;
    char buf[16];

    if (open_streams(t, &a, &b) < 0)
        return -EIO;
    CHECK_EQ(weft_stream_close(b), 0);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 0);
    ssize_t r = 0;
    for (int i = 0; i < 100 && r >= 0; i++) {
        r = weft_stream_send(a, "ping", 4);
        if (r >= 0)
            weft_sleep(WEFT_MSEC);
    }
    CHECK(r == -EPIPE || r == -ECONNRESET);
    /* and again: the stream stays broken */
    r = weft_stream_send(a, "ping", 4);
    CHECK(r == -EPIPE || r == -ECONNRESET);
    CHECK_EQ(weft_stream_close(a), 0);
    return 0;
}

static void test_stream_pair_send_to_closed_peer_fails(void **state)
{
    enum transport t = PAIR;
    run_in_loop(close_peer_main, &t);
}

static void test_stream_tcp_send_to_closed_peer_fails(void **state)
{
    enum transport t = TCP;
    run_in_loop(close_peer_main, &t);
}

/* ---- closing a stream that a task is blocked on ---- */

static int close_blocked_main(void *arg)
{
    enum transport t = *(enum transport *)arg;
    weft_stream *a, *b;

    if (open_streams(t, &a, &b) < 0)
        return -EIO;
    struct blocked rx = {.s = a};
    struct blocked tx = {.s = a, .bign = 64 << 20};
    tx.big = calloc(1, tx.bign);
    if (!CHECK(tx.big != NULL))
        return -ENOMEM;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "receiver", blocked_recv, &rx), 0);
    CHECK_EQ(weft_group_spawn_named(&g, "sender", blocked_send, &tx), 0);
    th_wait_flag(&rx.in);
    th_wait_flag(&tx.in);
    th_settle();
    /* both blocked: close cancels them, waits for them, frees a */
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(rx.rc, -EBADF);
    CHECK_EQ(tx.rc, -EBADF);
    /* the peer sees the end */
    char buf[4096];
    ssize_t r;
    while ((r = weft_stream_recv(b, buf, sizeof buf)) > 0) {
    }
    CHECK(r == 0 || r == -ECONNRESET);
    CHECK_EQ(weft_stream_close(b), 0);
    free(tx.big);
    return 0;
}

static void test_stream_pair_close_while_blocked_gives_ebadf(void **state)
{
    enum transport t = PAIR;
    run_in_loop(close_blocked_main, &t);
}

static void test_stream_tcp_close_while_blocked_gives_ebadf(void **state)
{
    enum transport t = TCP;
    run_in_loop(close_blocked_main, &t);
}

/* A task blocked in recv_exactly / recv_until part way through: close
 * gives it -EBADF too. */
struct blocked_until {
    weft_stream *s;
    bool in, exactly;
    ssize_t rc;
    char buf[64];
};

static int blocked_until(void *arg)
{
    struct blocked_until *bu = arg;
    bu->in = true;
    if (bu->exactly)
        bu->rc = weft_stream_recv_exactly(bu->s, bu->buf, 32);
    else
        bu->rc =
            weft_stream_recv_until(bu->s, bu->buf, sizeof bu->buf, "\n", 1);
    return 0;
}

static int close_while_framing_main(void *arg)
{
    enum transport t = *(enum transport *)arg;

    for (int exactly = 0; exactly < 2; exactly++) {
        weft_stream *a, *b;
        if (open_streams(t, &a, &b) < 0)
            return -EIO;
        struct blocked_until bu = {.s = a, .exactly = exactly};
        nh_send_str(b, "part");
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, blocked_until, &bu), 0);
        th_wait_flag(&bu.in);
        th_settle();
        CHECK_EQ(weft_stream_close(a), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(bu.rc, -EBADF);
        CHECK_EQ(weft_stream_close(b), 0);
    }
    return 0;
}

static void test_stream_pair_close_while_framing_gives_ebadf(void **state)
{
    enum transport t = PAIR;
    run_in_loop(close_while_framing_main, &t);
}

static void test_stream_tcp_close_while_framing_gives_ebadf(void **state)
{
    enum transport t = TCP;
    run_in_loop(close_while_framing_main, &t);
}

/*
 * A close between two receives of one recv_exactly / recv_until: the
 * first receive got part of the bytes, and before the reader runs again
 * another task closes the stream. The reader's next receive must not
 * start (close would wait for it forever): the call ends with -EBADF, and
 * close returns.
 *
 * The order is arranged: the closer's NOP and the reader's first receive
 * (of bytes already there) complete in the same round, the NOP first, so
 * the closer runs while the reader is ready but has not run yet.
 */
struct between {
    weft_stream *a, *b;
    bool exactly;
    ssize_t rc;
    int close_rc;
    char buf[64];
    unsigned char *big;
    size_t bign;
};

static int between_reader(void *arg)
{
    struct between *w = arg;
    if (w->exactly)
        w->rc = weft_stream_recv_exactly(w->a, w->buf, 10);
    else
        w->rc = weft_stream_recv_until(w->a, w->buf, sizeof w->buf, "\n", 1);
    return 0;
}

static int between_recv_closer(void *arg)
{
    struct between *w = arg;
    CHECK_EQ(th_nop(), 0);
    /* the reader's first receive took the bytes; it has not run since */
    CHECK_EQ(sock_inq(w->a), 0);
    CHECK_EQ(w->rc, 1);
    w->close_rc = weft_stream_close(w->a);
    return 0;
}

static int close_between_receives_main(void *arg)
{
    enum transport t = *(enum transport *)arg;

    for (int exactly = 0; exactly < 2; exactly++) {
        struct between w = {.exactly = exactly, .rc = 1, .close_rc = 1};
        if (open_streams(t, &w.a, &w.b) < 0)
            return -EIO;
        nh_send_str(w.b, "hello"); /* half of what recv_exactly wants */
        th_settle();
        CHECK_EQ(sock_inq(w.a), 5);
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn_named(&g, "closer", between_recv_closer, &w),
                 0);
        CHECK_EQ(weft_group_spawn_named(&g, "reader", between_reader, &w), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(w.rc, -EBADF);
        CHECK_EQ(w.close_rc, 0);
        CHECK_EQ(weft_stream_close(w.b), 0);
    }
    return 0;
}

static void
test_stream_pair_close_between_two_receives_of_one_call(void **state)
{
    enum transport t = PAIR;
    run_in_loop(close_between_receives_main, &t);
}

static void test_stream_tcp_close_between_two_receives_of_one_call(void **state)
{
    enum transport t = TCP;
    run_in_loop(close_between_receives_main, &t);
}

/*
 * The same for the sends of one weft_stream_send of a large buffer: a
 * close after one send took part of the bytes ends the call with -EBADF
 * and returns.
 *
 * (1) Right after the first send, the order arranged as above: the
 * closer's NOP and the sender's first send (which fills the empty socket
 * and takes part of the bytes) complete in the same round, the NOP first.
 * Nobody reads, so a second send would never end.
 *
 * (2) Part way through, with a peer that reads slowly and closes the
 * stream right after one of its reads. Over a socketpair, the read lets
 * the sender's pending send complete in the same round, after the read:
 * the close comes between two sends. Over TCP the send completes a round
 * or more later, and close cancels it in flight instead.
 */
#define BIG_SEND (64u << 20)

static int between_sender(void *arg)
{
    struct between *w = arg;
    w->rc = weft_stream_send(w->a, w->big, w->bign);
    return 0;
}

static int between_send_closer(void *arg)
{
    struct between *w = arg;
    CHECK_EQ(th_nop(), 0);
    /* the sender's first send took bytes; it has not run since */
    CHECK_GT(sock_outq(w->a) + sock_inq(w->b), 0);
    CHECK_EQ(w->rc, 1);
    w->close_rc = weft_stream_close(w->a);
    return 0;
}

/* Reads b slowly, then closes a right after a read. */
static int slow_reader_closer(void *arg)
{
    struct between *w = arg;
    char *buf = malloc(BIG_SEND / 16);

    if (!CHECK(buf != NULL))
        return -ENOMEM;
    for (int i = 0; i < 8; i++) {
        ssize_t r = weft_stream_recv(w->b, buf, 16384);
        if (!CHECK_GT(r, 0))
            break;
        CHECK_EQ(weft_sleep(2 * WEFT_MSEC), 0);
    }
    /* one large read frees the sender's socket, then the close */
    ssize_t r = weft_stream_recv(w->b, buf, BIG_SEND / 16);
    CHECK_GT(r, 0);
    CHECK_EQ(w->rc, 1); /* mid-way */
    w->close_rc = weft_stream_close(w->a);
    free(buf);
    return 0;
}

/* Whatever a sent before its close, then the end. */
static void drain_to_end(weft_stream *b)
{
    size_t cap = 65536;
    char *buf = malloc(cap);
    ssize_t r;

    if (!CHECK(buf != NULL))
        return;
    while ((r = weft_stream_recv(b, buf, cap)) > 0) {
    }
    CHECK(r == 0 || r == -ECONNRESET);
    free(buf);
}

static int close_between_sends_main(void *arg)
{
    enum transport t = *(enum transport *)arg;
    unsigned char *big = calloc(1, BIG_SEND);

    if (!CHECK(big != NULL))
        return -ENOMEM;
    for (int slow = 0; slow < 2; slow++) {
        struct between w = {
            .rc = 1, .close_rc = 1, .big = big, .bign = BIG_SEND};
        if (open_streams(t, &w.a, &w.b) < 0)
            break;
        weft_group g;
        weft_group_enter(&g);
        if (slow) {
            CHECK_EQ(weft_group_spawn_named(&g, "sender", between_sender, &w),
                     0);
            CHECK_EQ(
                weft_group_spawn_named(&g, "reader", slow_reader_closer, &w),
                0);
        } else {
            CHECK_EQ(
                weft_group_spawn_named(&g, "closer", between_send_closer, &w),
                0);
            CHECK_EQ(weft_group_spawn_named(&g, "sender", between_sender, &w),
                     0);
        }
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(w.rc, -EBADF);
        CHECK_EQ(w.close_rc, 0);
        drain_to_end(w.b);
        CHECK_EQ(weft_stream_close(w.b), 0);
    }
    free(big);
    return 0;
}

static void test_stream_pair_close_between_two_sends_of_one_call(void **state)
{
    enum transport t = PAIR;
    run_in_loop(close_between_sends_main, &t);
}

static void test_stream_tcp_close_between_two_sends_of_one_call(void **state)
{
    enum transport t = TCP;
    run_in_loop(close_between_sends_main, &t);
}

/* Calls on a stream being closed, and bad arguments. */
static int args_main(void *arg)
{
    weft_stream *a, *b;
    char buf[4];

    CHECK_EQ(weft_stream_pair(NULL, &b), -EINVAL);
    CHECK_EQ(weft_stream_pair(&a, NULL), -EINVAL);
    CHECK_EQ(weft_stream_recv(NULL, buf, 1), -EINVAL);
    CHECK_EQ(weft_stream_send(NULL, buf, 1), -EINVAL);
    CHECK_EQ(weft_stream_recv_exactly(NULL, buf, 1), -EINVAL);
    CHECK_EQ(weft_stream_recv_until(NULL, buf, 1, "\n", 1), -EINVAL);
    CHECK_EQ(weft_stream_send_eof(NULL), -EINVAL);
    CHECK_EQ(weft_stream_close(NULL), -EINVAL);
    CHECK_EQ(weft_stream_fd(NULL), -EINVAL);
    weft_stream_kernel_deadlines(NULL, true); /* does nothing */
    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
        return -EIO;
    CHECK_GE(weft_stream_fd(a), 0);
    CHECK_GE(weft_stream_fd(b), 0);
    CHECK_NE(weft_stream_fd(a), weft_stream_fd(b));
    /* under a cancelled scope: -ECANCELED, nothing consumed or sent */
    nh_send_str(b, "kept");
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), -ECANCELED);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 4), -ECANCELED);
    CHECK_EQ(weft_stream_recv_until(a, buf, 4, "p", 1), -ECANCELED);
    CHECK_EQ(weft_stream_send(a, "lost", 4), -ECANCELED);
    CHECK_EQ(weft_stream_send_eof(a), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    nh_expect(a, "kept");
    nh_send_str(a, "next");
    nh_expect(b, "next");
    close_streams(a, b);
    return 0;
}

static void test_stream_arguments_and_cancelled_calls(void **state)
{
    run_in_loop(args_main, NULL);
}

/* A pair needs no loop; its calls that can block need a task. With
 * nothing in flight, close works outside a loop too. */
static void test_stream_outside_loop_is_eperm(void **state)
{
    weft_stream *a, *b;
    char buf[4];

    assert_rc(weft_stream_pair(&a, &b), 0);
    assert_rc(weft_stream_recv(a, buf, 1), -EPERM);
    assert_rc(weft_stream_recv_exactly(a, buf, 1), -EPERM);
    assert_rc(weft_stream_recv_until(a, buf, 1, "\n", 1), -EPERM);
    assert_rc(weft_stream_send(a, "x", 1), -EPERM);
    assert_rc(weft_stream_send_eof(a), -EPERM);
    assert_true(weft_stream_fd(a) >= 0);
    assert_rc(weft_stream_close(a), 0);
    assert_rc(weft_stream_close(b), 0);
}

/* ---- cancellation loses no bytes ---- */

/* Cancelled while blocked (by a deadline, then by weft_scope_cancel from
 * another task): the bytes that arrive later are all there. */
static void cancel_recv_loses_nothing_body(weft_stream *a, weft_stream *b)
{
    char buf[32];
    weft_scope s;

    weft_move_on_after(&s, 10 * WEFT_MSEC);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    nh_send_str(b, "after");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv(a, buf, sizeof buf), 5);
    CHECK_STR_EQ(buf, "after");

    /* recv_until cancelled part way: what it read stays readable */
    nh_send_str(b, "par");
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    nh_send_str(b, "tial\n");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_until(a, buf, sizeof buf, "\n", 1), 7);
    CHECK_STR_EQ(buf, "partial");

    /* recv_exactly cancelled part way: the same */
    nh_send_str(b, "abc");
    weft_move_on_after(&s, 10 * WEFT_MSEC);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 6), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    nh_send_str(b, "def");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 6), 6);
    CHECK_STR_EQ(buf, "abcdef");
}

BOTH(cancel_recv_loses_nothing)

/* Both orders of a cancellation and arriving data, on purpose: the peer's
 * bytes are written and the receiver's scope cancelled in the same step,
 * so the recv either completes anyway (it returns the bytes) or is
 * cancelled (the bytes stay in the socket). Either way nothing is lost. */
struct race {
    weft_stream *s;
    weft_scope scope;
    bool in;
    ssize_t rc;
    char buf[64];
};

static int race_receiver(void *arg)
{
    struct race *r = arg;
    weft_scope_enter(&r->scope, WEFT_FOREVER);
    r->in = true;
    r->rc = weft_stream_recv(r->s, r->buf, sizeof r->buf);
    weft_scope_exit(&r->scope, r->rc < 0 ? (int)r->rc : 0);
    return 0;
}

static void cancel_races_data_body(weft_stream *a, weft_stream *b)
{
    int completed = 0, cancelled = 0;
    int bfd = weft_stream_fd(b);

    for (int i = 0; i < 200; i++) {
        struct race r = {.s = a};
        char msg[16];
        int len = snprintf(msg, sizeof msg, "m%03d", i);
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, race_receiver, &r), 0);
        th_wait_flag(&r.in);
        /* half the time the recv is in the kernel already, half not yet */
        if (i % 2)
            th_settle();
        /* MSG_NOSIGNAL: under WEFT_FAULTS the pair may have been reset */
        CHECK_EQ(send(bfd, msg, (size_t)len, MSG_NOSIGNAL), len);
        weft_scope_cancel(&r.scope);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        if (r.rc == len) {
            CHECK(memcmp(r.buf, msg, (size_t)len) == 0);
            completed++;
        } else {
            CHECK_EQ(r.rc, -ECANCELED);
            cancelled++;
            nh_expect(a, msg);
        }
    }
    print_message("      %d completed anyway, %d cancelled\n", completed,
                  cancelled);
}

BOTH(cancel_races_data)

/* ---- deadlines ---- */

/* recv under fail_after: -ETIMEDOUT from the scope; nothing lost. */
static void recv_deadline_run(weft_stream *a, weft_stream *b, bool kernel)
{
    char buf[32];
    weft_scope s;

    weft_stream_kernel_deadlines(a, kernel);
    weft_time t0 = weft_now();
    weft_fail_after(&s, 30 * WEFT_MSEC);
    ssize_t r = weft_stream_recv(a, buf, sizeof buf);
    CHECK_EQ(r, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, (int)r), -ETIMEDOUT);
    CHECK_GE(weft_now() - t0, 30 * WEFT_MSEC);

    weft_fail_after(&s, 30 * WEFT_MSEC);
    r = weft_stream_recv_exactly(a, buf, 4);
    CHECK_EQ(weft_scope_exit(&s, (int)r), -ETIMEDOUT);
    weft_fail_after(&s, 30 * WEFT_MSEC);
    r = weft_stream_recv_until(a, buf, sizeof buf, "\n", 1);
    CHECK_EQ(weft_scope_exit(&s, (int)r), -ETIMEDOUT);

    /* a deadline that does not pass: the data comes back as usual */
    nh_send_str(b, "in time\n");
    weft_fail_after(&s, 5 * WEFT_SEC);
    memset(buf, 0, sizeof buf);
    r = weft_stream_recv_until(a, buf, sizeof buf, "\n", 1);
    CHECK_EQ(weft_scope_exit(&s, (int)r), 7);
    CHECK_STR_EQ(buf, "in time");

    /* the timed-out receives lost nothing */
    nh_send_str(b, "later");
    nh_expect(a, "later");
    /* and no deadline at all */
    nh_send_str(b, "plain");
    nh_expect(a, "plain");
}

static void recv_deadline_body(weft_stream *a, weft_stream *b)
{
    recv_deadline_run(a, b, false);
}

static void recv_kernel_deadline_body(weft_stream *a, weft_stream *b)
{
    recv_deadline_run(a, b, true);
}

BOTH(recv_deadline)
BOTH(recv_kernel_deadline)

/* send into a peer that never reads: once the socket buffers are full,
 * the deadline ends it. */
static void send_deadline_run(weft_stream *a, weft_stream *b, bool kernel)
{
    size_t n = 64 << 20;
    unsigned char *big = calloc(1, n);
    weft_scope s;

    if (!CHECK(big != NULL))
        return;
    weft_stream_kernel_deadlines(a, kernel);
    weft_fail_after(&s, 100 * WEFT_MSEC);
    ssize_t r = weft_stream_send(a, big, n);
    CHECK_EQ(r, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, (int)r), -ETIMEDOUT);
    /* the other direction still works */
    nh_send_str(b, "still here");
    nh_expect(a, "still here");
    free(big);
}

static void send_deadline_body(weft_stream *a, weft_stream *b)
{
    send_deadline_run(a, b, false);
}

static void send_kernel_deadline_body(weft_stream *a, weft_stream *b)
{
    send_deadline_run(a, b, true);
}

BOTH(send_deadline)
BOTH(send_kernel_deadline)

/* Kernel deadlines follow the effective deadline: an outer scope's, and
 * none inside a shield. */
static void kernel_deadline_nested_body(weft_stream *a, weft_stream *b)
{
    char buf[8];
    weft_scope outer, inner;

    weft_stream_kernel_deadlines(a, true);
    weft_fail_after(&outer, 20 * WEFT_MSEC);
    weft_scope_enter(&inner, WEFT_FOREVER);
    ssize_t r = weft_stream_recv(a, buf, sizeof buf);
    CHECK_EQ(weft_scope_exit(&inner, (int)r), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&outer, -ECANCELED), -ETIMEDOUT);

    /* a shield hides the outer deadline: the recv waits for the data */
    static const char *const pieces[] = {"late", NULL};
    struct feed f = {b, pieces, 40 * WEFT_MSEC, false};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, feeder, &f), 0);
    weft_move_on_after(&outer, 10 * WEFT_MSEC);
    weft_scope_enter(&inner, WEFT_FOREVER);
    weft_scope_set_shield(&inner, true);
    memset(buf, 0, sizeof buf);
    r = weft_stream_recv(a, buf, sizeof buf);
    CHECK_EQ(weft_scope_exit(&inner, (int)r), 4);
    CHECK_EQ(weft_scope_exit(&outer, 0), 0);
    CHECK(weft_scope_cancel_called(&outer));
    CHECK(memcmp(buf, "late", 4) == 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
}

BOTH(kernel_deadline_nested)

/* ---- many streams at once ---- */

/* 100 pairs, each echoing 64 KiB at once: the streams do not mix. */
#define NPAIRS 100

struct multi {
    struct echo e[NPAIRS];
    weft_stream *a[NPAIRS], *b[NPAIRS];
    unsigned char *data;
};

static int multi_main(void *arg)
{
    struct multi *m = arg;
    size_t n = 64 << 10;
    m->data = nh_pattern(n);
    if (!CHECK(m->data != NULL))
        return -ENOMEM;
    weft_group g;
    weft_group_enter(&g);
    for (int i = 0; i < NPAIRS; i++) {
        if (!CHECK_EQ(weft_stream_pair(&m->a[i], &m->b[i]), 0)) {
            m->a[i] = m->b[i] = NULL;
            continue;
        }
        m->e[i] = (struct echo){
            .client = m->a[i], .server = m->b[i], .data = m->data, .n = n};
        weft_group_spawn(&g, echo_server, &m->e[i]);
        weft_group_spawn(&g, echo_receiver, &m->e[i]);
        weft_group_spawn(&g, echo_sender, &m->e[i]);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < NPAIRS; i++) {
        if (!m->a[i])
            continue;
        CHECK_EQ(m->e[i].got, n);
        close_streams(m->a[i], m->b[i]);
    }
    free(m->data);
    return 0;
}

static void test_stream_pair_100_echoes_at_once(void **state)
{
    static struct multi m;
    memset(&m, 0, sizeof m);
    run_in_loop(multi_main, &m);
}

/*
 * Regression (repros/kernel_deadline_extend.c): with kernel deadlines, a
 * receive whose scope deadline is moved later while it waits is not cut
 * short at the old deadline: it keeps waiting and gets the data.
 */
struct extend {
    weft_stream *a, *b;
    weft_scope *scope;
    ssize_t got;
    bool cancel_called;
};

static int extend_reader(void *arg)
{
    struct extend *e = arg;
    weft_scope s;
    weft_move_on_after(&s, 200 * WEFT_MSEC);
    e->scope = &s;
    char buf[8];
    e->got = weft_stream_recv(e->a, buf, sizeof buf);
    e->cancel_called = weft_scope_cancel_called(&s);
    e->scope = NULL;
    return weft_scope_exit(&s, e->got < 0 ? (int)e->got : 0);
}

static int extend_writer(void *arg)
{
    struct extend *e = arg;
    /* Once the reader waits in the kernel (with its 200 ms deadline):
     * no fixed sleep, which a loaded machine (Valgrind, CI) can outlast. */
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    if (CHECK(e->scope != NULL))
        weft_scope_set_deadline(e->scope, weft_now() + 10 * WEFT_SEC);
    CHECK_EQ(weft_sleep(400 * WEFT_MSEC), 0); /* past the old deadline */
    CHECK_EQ(weft_stream_send(e->b, "data", 4), 4);
    return 0;
}

static int extend_main(void *arg)
{
    struct extend e = {0};
    if (!CHECK_EQ(weft_stream_pair(&e.a, &e.b), 0))
        return -EIO;
    weft_stream_kernel_deadlines(e.a, true);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, extend_reader, &e), 0);
    CHECK_EQ(weft_group_spawn(&g, extend_writer, &e), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(e.got, 4);
    CHECK(!e.cancel_called);
    CHECK_EQ(weft_stream_close(e.a), 0);
    CHECK_EQ(weft_stream_close(e.b), 0);
    return 0;
}

static void test_stream_kernel_deadline_moved_later_keeps_waiting(void **state)
{
    run_in_loop(extend_main, NULL);
}

/*
 * Regression (repros/stream_len_4g.c): lengths of 4 GiB and more are not
 * cut to 32 bits (a 0-byte operation): a receive with max = 4 GiB gets
 * the bytes waiting, and a send of 4 GiB to a peer that does not read
 * blocks until its scope ends it.
 */
static int len4g_main(void *arg)
{
    weft_stream *x, *y;
    if (!CHECK_EQ(weft_stream_pair(&x, &y), 0))
        return -EIO;
    size_t big = (size_t)1 << 32;
    char *buf = mmap(NULL, big, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!CHECK(buf != MAP_FAILED))
        return -ENOMEM;
    CHECK_EQ(weft_stream_send(y, "hello", 5), 5);
    CHECK_EQ(weft_stream_recv(x, buf, big), 5);
    CHECK_EQ(weft_stream_send(y, "hello", 5), 5);
    CHECK_EQ(weft_stream_recv_exactly(x, buf, 5), 5);
    weft_scope s;
    weft_move_on_after(&s, 100 * WEFT_MSEC);
    ssize_t m = weft_stream_send(y, buf, big);
    CHECK_EQ(m, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, (int)m), 0);
    munmap(buf, big);
    CHECK_EQ(weft_stream_close(x), 0);
    CHECK_EQ(weft_stream_close(y), 0);
    return 0;
}

static void test_stream_lengths_of_4_gib_are_not_cut(void **state)
{
    run_in_loop(len4g_main, NULL);
}

/* ---- weft_stream_from_fd ---- */

static int from_fd_main(void *arg)
{
    (void)arg;
    /* A socketpair end: the socket transport, half-close included. */
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    weft_stream *a;
    CHECK_EQ(weft_stream_from_fd(&a, sv[0]), 0);
    CHECK_EQ(weft_stream_fd(a), sv[0]);
    CHECK_EQ(write(sv[1], "ping", 4), 4);
    char buf[16];
    CHECK_EQ(weft_stream_recv_exactly(a, buf, 4), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_EQ(weft_stream_send(a, "pong", 4), 4);
    CHECK_EQ(read(sv[1], buf, 4), 4);
    CHECK_EQ(weft_stream_send_eof(a), 0);
    CHECK_EQ(read(sv[1], buf, 4), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    close(sv[1]);

    /* A pipe pair: READ/WRITE, end of stream when the writer closes. */
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    weft_stream *r, *w;
    CHECK_EQ(weft_stream_from_fd(&r, p[0]), 0);
    CHECK_EQ(weft_stream_from_fd(&w, p[1]), 0);
    CHECK_EQ(weft_stream_send(w, "hello\n", 6), 6);
    CHECK_EQ(weft_stream_recv_until(r, buf, sizeof buf, "\n", 1), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(weft_stream_send_eof(w), -ENOTSUP);
    /* A receive waiting on an empty pipe is cancellable. */
    weft_scope s;
    weft_move_on_after(&s, 5 * WEFT_MSEC);
    CHECK_EQ(weft_scope_exit(&s, (int)weft_stream_recv(r, buf, 1)), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    CHECK_EQ(weft_stream_close(w), 0);
    CHECK_EQ(weft_stream_recv(r, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(r), 0);

    /* A regular file: a file stream from the fd's position. */
    char path[] = "/tmp/weft-from-fd-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    CHECK_GE(fd, 0);
    unlink(path);
    CHECK_EQ(write(fd, "0123456789", 10), 10);
    CHECK_EQ(lseek(fd, 4, SEEK_SET), 4);
    weft_stream *f;
    CHECK_EQ(weft_stream_from_fd(&f, fd), 0);
    CHECK_EQ(weft_stream_recv_exactly(f, buf, 6), 6);
    CHECK(memcmp(buf, "456789", 6) == 0);
    CHECK_EQ(weft_stream_recv(f, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(f), 0);

    /* Refused, and the fd closed all the same. */
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(weft_stream_from_fd(&a, l), -ENOTCONN);
    CHECK_EQ(fcntl(l, F_GETFD), -1);
    int d = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(weft_stream_from_fd(&a, d), -EINVAL);
    CHECK_EQ(fcntl(d, F_GETFD), -1);
    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK_EQ(weft_stream_from_fd(&a, dir), -EINVAL);
    CHECK_EQ(fcntl(dir, F_GETFD), -1);
    CHECK_EQ(weft_stream_from_fd(&a, -1), -EBADF);
    CHECK_EQ(weft_stream_from_fd(&a, 100000), -EBADF);
    return 0;
}

static void test_stream_from_fd(void **state)
{
    (void)state;
    run_in_loop(from_fd_main, NULL);
}

static const struct CMUnitTest tests[] = {
    NET_TEST(test_stream_pair_echo_1_byte),
    NET_TEST(test_stream_pair_echo_4_kib),
    NET_TEST(test_stream_pair_echo_1_mib),
    NET_TEST(test_stream_pair_echo_16_mib),
    NET_TEST(test_stream_tcp_echo_1_byte),
    NET_TEST(test_stream_tcp_echo_4_kib),
    NET_TEST(test_stream_tcp_echo_1_mib),
    NET_TEST(test_stream_tcp_echo_16_mib),
    NET_TEST(test_stream_pair_recv_returns_read_ahead_first),
    NET_TEST(test_stream_tcp_recv_returns_read_ahead_first),
    NET_TEST(test_stream_pair_recv_exactly),
    NET_TEST(test_stream_tcp_recv_exactly),
    NET_TEST(test_stream_pair_recv_exactly_enodata_keeps_bytes),
    NET_TEST(test_stream_tcp_recv_exactly_enodata_keeps_bytes),
    NET_TEST(test_stream_pair_recv_until_split_sends),
    NET_TEST(test_stream_tcp_recv_until_split_sends),
    NET_TEST(test_stream_pair_recv_until_no_buffer_yet),
    NET_TEST(test_stream_tcp_recv_until_no_buffer_yet),
    NET_TEST(test_stream_pair_recv_until_multibyte_delim_split),
    NET_TEST(test_stream_tcp_recv_until_multibyte_delim_split),
    NET_TEST(test_stream_pair_recv_until_bytewise),
    NET_TEST(test_stream_tcp_recv_until_bytewise),
    NET_TEST(test_stream_pair_recv_until_emsgsize),
    NET_TEST(test_stream_tcp_recv_until_emsgsize),
    NET_TEST(test_stream_pair_recv_until_empty_delim_or_huge_max_is_einval),
    NET_TEST(test_stream_tcp_recv_until_empty_delim_or_huge_max_is_einval),
    NET_TEST(test_stream_pair_recv_until_end_of_stream),
    NET_TEST(test_stream_tcp_recv_until_end_of_stream),
    NET_TEST(test_stream_pair_buffered_counts_pipelined_request),
    NET_TEST(test_stream_tcp_buffered_counts_pipelined_request),
    NET_TEST(test_stream_pair_ebusy_receiver),
    NET_TEST(test_stream_tcp_ebusy_receiver),
    NET_TEST(test_stream_pair_ebusy_sender),
    NET_TEST(test_stream_tcp_ebusy_sender),
    NET_TEST(test_stream_pair_send_eof_half_close),
    NET_TEST(test_stream_tcp_send_eof_half_close),
    NET_TEST(test_stream_pair_send_to_closed_peer_fails),
    NET_TEST(test_stream_tcp_send_to_closed_peer_fails),
    NET_TEST(test_stream_pair_close_while_blocked_gives_ebadf),
    NET_TEST(test_stream_tcp_close_while_blocked_gives_ebadf),
    NET_TEST(test_stream_pair_close_while_framing_gives_ebadf),
    NET_TEST(test_stream_tcp_close_while_framing_gives_ebadf),
    NET_TEST(test_stream_pair_close_between_two_receives_of_one_call),
    NET_TEST(test_stream_tcp_close_between_two_receives_of_one_call),
    NET_TEST(test_stream_pair_close_between_two_sends_of_one_call),
    NET_TEST(test_stream_tcp_close_between_two_sends_of_one_call),
    NET_TEST(test_stream_arguments_and_cancelled_calls),
    NET_TEST(test_stream_outside_loop_is_eperm),
    NET_TEST(test_stream_pair_cancel_recv_loses_nothing),
    NET_TEST(test_stream_tcp_cancel_recv_loses_nothing),
    NET_TEST(test_stream_pair_cancel_races_data),
    NET_TEST(test_stream_tcp_cancel_races_data),
    NET_TEST(test_stream_pair_recv_deadline),
    NET_TEST(test_stream_tcp_recv_deadline),
    NET_TEST(test_stream_pair_recv_kernel_deadline),
    NET_TEST(test_stream_tcp_recv_kernel_deadline),
    NET_TEST(test_stream_pair_send_deadline),
    NET_TEST(test_stream_tcp_send_deadline),
    NET_TEST(test_stream_pair_send_kernel_deadline),
    NET_TEST(test_stream_tcp_send_kernel_deadline),
    NET_TEST(test_stream_pair_kernel_deadline_nested),
    NET_TEST(test_stream_tcp_kernel_deadline_nested),
    NET_TEST(test_stream_pair_100_echoes_at_once),
    NET_TEST(test_stream_kernel_deadline_moved_later_keeps_waiting),
    NET_TEST(test_stream_lengths_of_4_gib_are_not_cut),
    NET_TEST(test_stream_from_fd),
};

TH_MAIN(tests)
