/* SPDX-License-Identifier: MIT */
/*
 * tests/test_transport.c - a program's own transport (weft/transport.h:
 * weft_stream_new, weft_stream_impl, weft_stream_closing), the vectored
 * send (weft_stream_sendv) and the stapled stream (weft_stream_staple).
 *
 * Two transports are written here, as a user would write them: "rot"
 * wraps another stream (one end of a weft_stream_pair) and rot13s the
 * bytes both ways; "mem" keeps what is sent in memory for its own
 * receiver, and waits for bytes in a weft_event (or first in a sleep).
 * Both count their callbacks, so the tests can say which ran and how
 * often. The rules of the two headers are checked in turn: what the
 * stream layer adds for free, closing while a callback is blocked (in
 * another stream, a sleep, an event), cancellation passing through, a
 * close racing a completion; sendv's arguments and its paths (one
 * sendmsg on sockets, piece by piece on a pipe, a transport with and
 * without a sendv callback); and staples of pipes and sockets.
 *
 * No test may leak a file descriptor (NET_TEST checks every one).
 */
#include "helpers.h"
#include <limits.h>
#include <sys/uio.h>
#include "net_helpers.h"

/* ---- what the test transports count ---- */

struct counts {
    int recv, send, sendv, send_eof, kill, close;
    int inside;       /* callbacks under way now */
    int closing_seen; /* callbacks that saw weft_stream_closing() */
    ssize_t inner_rc; /* the last weft call a callback made */
    bool linger;      /* cut short by a close: wait a little, shielded */
    int inside_at_close;
};

static size_t inside_count(const void *c)
{
    return (size_t)((const struct counts *)c)->inside;
}

/* A callback cut short by its stream's close notes it and, if asked,
 * lingers (shielded) before it returns: close must wait for it. */
static void after_inner(struct counts *c, weft_stream *self, ssize_t rc)
{
    c->inner_rc = rc;
    if (!self || !weft_stream_closing(self))
        return;
    c->closing_seen++;
    if (c->linger) {
        weft_scope sh;
        weft_scope_enter(&sh, WEFT_FOREVER);
        weft_scope_set_shield(&sh, true);
        CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
        CHECK_EQ(weft_scope_exit(&sh, 0), 0);
    }
}

/* ---- "rot": rot13 over another stream ---- */

struct rot {
    weft_stream *inner, *self;
    struct counts *c;
    size_t chunk; /* the most one send callback takes */
    char tmp[65536];
};

static void rot13(void *p, size_t n)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = b[i];
        if (ch >= 'a' && ch <= 'z')
            b[i] = (unsigned char)('a' + (ch - 'a' + 13) % 26);
        else if (ch >= 'A' && ch <= 'Z')
            b[i] = (unsigned char)('A' + (ch - 'A' + 13) % 26);
    }
}

static ssize_t rot_recv(void *impl, void *buf, size_t max)
{
    struct rot *r = impl;
    r->c->recv++;
    r->c->inside++;
    CHECK_GT(max, 0);
    ssize_t n = weft_stream_recv(r->inner, buf, max);
    if (n > 0)
        rot13(buf, (size_t)n);
    after_inner(r->c, r->self, n);
    r->c->inside--;
    return n;
}

static ssize_t rot_send(void *impl, const void *buf, size_t len)
{
    struct rot *r = impl;
    r->c->send++;
    r->c->inside++;
    CHECK_GT(len, 0);
    size_t n = len < r->chunk ? len : r->chunk;
    memcpy(r->tmp, buf, n);
    rot13(r->tmp, n);
    ssize_t rc = weft_stream_send(r->inner, r->tmp, n);
    after_inner(r->c, r->self, rc);
    r->c->inside--;
    return rc < 0 ? rc : (ssize_t)n;
}

/* Gathers pieces into one inner send; checks the callback's contract. */
static ssize_t rot_sendv(void *impl, const struct iovec *iov, int iovcnt)
{
    struct rot *r = impl;
    r->c->sendv++;
    r->c->inside++;
    CHECK_GE(iovcnt, 1);
    CHECK_LE(iovcnt, IOV_MAX);
    size_t n = 0;
    for (int i = 0; i < iovcnt && n < r->chunk; i++) {
        CHECK_GT(iov[i].iov_len, 0); /* no empty entries */
        size_t take =
            iov[i].iov_len < r->chunk - n ? iov[i].iov_len : r->chunk - n;
        memcpy(r->tmp + n, iov[i].iov_base, take);
        n += take;
    }
    rot13(r->tmp, n);
    ssize_t rc = weft_stream_send(r->inner, r->tmp, n);
    after_inner(r->c, r->self, rc);
    r->c->inside--;
    return rc < 0 ? rc : (ssize_t)n;
}

static int rot_send_eof(void *impl)
{
    struct rot *r = impl;
    r->c->send_eof++;
    return weft_stream_send_eof(r->inner);
}

static void rot_kill(void *impl)
{
    ((struct rot *)impl)->c->kill++;
}

static int rot_close(void *impl)
{
    struct rot *r = impl;
    r->c->close++;
    r->c->inside_at_close = r->c->inside;
    int rc = weft_stream_close(r->inner);
    free(r);
    return rc;
}

static int rot_fd(const void *impl)
{
    return weft_stream_fd(((const struct rot *)impl)->inner);
}

/* Every callback. */
static const weft_transport rot_full = {
    .recv = rot_recv,
    .send = rot_send,
    .sendv = rot_sendv,
    .send_eof = rot_send_eof,
    .kill = rot_kill,
    .close = rot_close,
    .fd = rot_fd,
};
/* Only the three required ones. */
static const weft_transport rot_min = {
    .recv = rot_recv,
    .send = rot_send,
    .close = rot_close,
};

/* A rot stream over inner (which it owns from now on, also on failure). */
static int rot_new(weft_stream **out, weft_stream *inner,
                   const weft_transport *ops, struct counts *c)
{
    struct rot *r = malloc(sizeof *r);
    if (!CHECK(r != NULL)) {
        weft_stream_close(inner);
        return -ENOMEM;
    }
    r->inner = inner;
    r->self = NULL;
    r->c = c;
    r->chunk = sizeof r->tmp;
    int rc = weft_stream_new(out, ops, r);
    if (rc == 0)
        r->self = *out;
    return rc;
}

/* In a task: *s a rot stream over one end of a pair, *peer the other end
 * (raw: it sees the rot13ed bytes). */
static bool rot_pair(weft_stream **s, weft_stream **peer,
                     const weft_transport *ops, struct counts *c)
{
    weft_stream *a;
    *s = NULL;
    if (!CHECK_EQ(weft_stream_pair(&a, peer), 0))
        return false;
    if (CHECK_EQ(rot_new(s, a, ops, c), 0))
        return true;
    weft_stream_close(*peer);
    return false;
}

/* ---- "mem": what is sent comes back to the same stream's receiver ---- */

struct mem {
    weft_stream *self;
    struct counts *c;
    char *buf;
    size_t len, chunk;
    bool eof, killed;
    bool shielded;    /* wait in a shield: only the kill callback ends it */
    weft_event ready; /* set when bytes, the end or a kill came */
    weft_time delay;  /* each receive first sleeps this long */
};

/* Wait until there is something to return; 0 or -errno. */
static int mem_wait(struct mem *m)
{
    while (!m->len && !m->eof && !m->killed) {
        weft_scope sh;
        weft_scope_enter(&sh, WEFT_FOREVER);
        weft_scope_set_shield(&sh, m->shielded);
        int rc = weft_scope_exit(&sh, weft_event_wait(&m->ready));
        if (rc < 0)
            return rc;
        if (!m->len && !m->eof && !m->killed)
            weft_event_init(&m->ready); /* woken for nothing: rearm */
    }
    return m->killed ? -ECONNABORTED : 0;
}

static ssize_t mem_recv(void *impl, void *buf, size_t max)
{
    struct mem *m = impl;
    m->c->recv++;
    m->c->inside++;
    ssize_t rc = 0;
    if (m->delay)
        rc = weft_sleep(m->delay);
    if (rc == 0)
        rc = mem_wait(m);
    if (rc == 0 && m->len) {
        size_t n = m->len < max ? m->len : max;
        memcpy(buf, m->buf, n);
        memmove(m->buf, m->buf + n, m->len - n);
        m->len -= n;
        if (!m->len && !m->eof)
            weft_event_init(&m->ready); /* no waiter: we are it */
        rc = (ssize_t)n;
    }
    after_inner(m->c, m->self, rc);
    m->c->inside--;
    return rc;
}

static ssize_t mem_send(void *impl, const void *buf, size_t len)
{
    struct mem *m = impl;
    m->c->send++;
    if (m->eof)
        return -EPIPE;
    size_t n = m->chunk && len > m->chunk ? m->chunk : len;
    char *b = realloc(m->buf, m->len + n);
    if (!b)
        return -ENOMEM;
    m->buf = b;
    memcpy(m->buf + m->len, buf, n);
    m->len += n;
    weft_event_set(&m->ready);
    return (ssize_t)n;
}

static int mem_send_eof(void *impl)
{
    struct mem *m = impl;
    m->c->send_eof++;
    m->eof = true;
    weft_event_set(&m->ready);
    return 0;
}

static void mem_kill(void *impl)
{
    struct mem *m = impl;
    m->c->kill++;
    m->killed = true;
    weft_event_set(&m->ready);
}

static int mem_close(void *impl)
{
    struct mem *m = impl;
    m->c->close++;
    m->c->inside_at_close = m->c->inside;
    free(m->buf);
    free(m);
    return 0;
}

static const weft_transport mem_ops = {
    .recv = mem_recv,
    .send = mem_send,
    .send_eof = mem_send_eof,
    .kill = mem_kill,
    .close = mem_close,
};

static int mem_new(weft_stream **out, struct counts *c, weft_time delay,
                   bool shielded)
{
    struct mem *m = calloc(1, sizeof *m);
    if (!CHECK(m != NULL))
        return -ENOMEM;
    m->c = c;
    m->delay = delay;
    m->shielded = shielded;
    weft_event_init(&m->ready);
    int rc = weft_stream_new(out, &mem_ops, m);
    if (rc == 0)
        m->self = *out;
    return rc;
}

/* ---- tasks the tests spawn ---- */

/* One call on a stream, its result kept; in its own scope, which the
 * test may cancel. */
enum call { RECV, RECV_EXACTLY, RECV_UNTIL, SEND, SENDV, SEND_EOF };

struct caller {
    weft_stream *s;
    enum call call;
    const void *data;
    size_t len;
    const struct iovec *iov;
    int iovcnt;
    char buf[64];
    bool in, done;
    bool shield; /* the caller's scope hides outer cancellations */
    weft_scope scope;
    ssize_t rc;
    int exit_rc;
};

static int caller_task(void *arg)
{
    struct caller *k = arg;
    weft_scope_enter(&k->scope, WEFT_FOREVER);
    weft_scope_set_shield(&k->scope, k->shield);
    k->in = true;
    switch (k->call) {
    case RECV:
        k->rc = weft_stream_recv(k->s, k->buf, sizeof k->buf);
        break;
    case RECV_EXACTLY:
        k->rc = weft_stream_recv_exactly(k->s, k->buf, 10);
        break;
    case RECV_UNTIL:
        k->rc = weft_stream_recv_until(k->s, k->buf, sizeof k->buf, "\n", 1);
        break;
    case SEND:
        k->rc = weft_stream_send(k->s, k->data, k->len);
        break;
    case SENDV:
        k->rc = weft_stream_sendv(k->s, k->iov, k->iovcnt);
        break;
    case SEND_EOF:
        k->rc = weft_stream_send_eof(k->s);
        break;
    }
    k->exit_rc = weft_scope_exit(&k->scope, (int)(k->rc < 0 ? k->rc : 0));
    k->done = true;
    return 0;
}

static bool spawn_caller(weft_group *g, struct caller *k)
{
    k->rc = 1;
    return CHECK_EQ(weft_group_spawn(g, caller_task, k), 0) &&
           th_wait_flag(&k->in);
}

/* ---- weft_stream_new: arguments ---- */

struct plain {
    int closes;
};

static ssize_t plain_recv(void *impl, void *buf, size_t max)
{
    (void)impl;
    (void)buf;
    (void)max;
    return 0;
}

static ssize_t plain_send(void *impl, const void *buf, size_t len)
{
    (void)impl;
    (void)buf;
    return (ssize_t)len;
}

static int plain_close(void *impl)
{
    ((struct plain *)impl)->closes++;
    return 0;
}

/* Bad arguments are -EINVAL, *out is NULL, and the impl was closed. Not
 * a checkpoint: works outside a loop and in a cancelled scope. */
static void check_new_args(void)
{
    struct plain p = {0};
    weft_stream *s = (weft_stream *)&p; /* stale: must become NULL */
    const weft_transport ok = {
        .recv = plain_recv, .send = plain_send, .close = plain_close};
    weft_transport no_recv = ok, no_send = ok, no_close = ok;
    no_recv.recv = NULL;
    no_send.send = NULL;
    no_close.close = NULL;

    CHECK_EQ(weft_stream_new(NULL, &ok, &p), -EINVAL);
    CHECK_EQ(p.closes, 1);
    CHECK_EQ(weft_stream_new(&s, NULL, &p), -EINVAL);
    CHECK(s == NULL);
    CHECK_EQ(p.closes, 1); /* no ops: nothing to close it with */
    s = (weft_stream *)&p;
    CHECK_EQ(weft_stream_new(&s, &no_recv, &p), -EINVAL);
    CHECK(s == NULL);
    CHECK_EQ(p.closes, 2);
    CHECK_EQ(weft_stream_new(&s, &no_send, &p), -EINVAL);
    CHECK_EQ(p.closes, 3);
    CHECK_EQ(weft_stream_new(&s, &no_close, &p), -EINVAL);
    CHECK_EQ(p.closes, 3); /* no close callback to call */
    CHECK(s == NULL);
    /* a good one, made and closed with nothing in flight */
    CHECK_EQ(weft_stream_new(&s, &ok, &p), 0);
    CHECK(s != NULL);
    CHECK(weft_stream_impl(s) == &p);
    CHECK(!weft_stream_closing(s));
    CHECK_EQ(weft_stream_fd(s), -ENOTSUP);
    CHECK_EQ(p.closes, 3);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(p.closes, 4);
}

static void test_transport_new_argument_errors_close_the_impl(void **state)
{
    (void)state;
    th_reset();
    check_new_args(); /* outside a loop */
    th_assert_clean();
}

static int new_in_cancelled_scope_main(void *arg)
{
    (void)arg;
    weft_scope sc;
    weft_scope_enter(&sc, WEFT_FOREVER);
    weft_scope_cancel(&sc);
    check_new_args();
    CHECK_EQ(weft_scope_exit(&sc, 0), 0);
    return 0;
}

static void test_transport_new_is_not_a_checkpoint(void **state)
{
    (void)state;
    run_in_loop(new_in_cancelled_scope_main, NULL);
}

/* ---- what the stream layer gives every transport ---- */

static int framing_main(void *arg)
{
    (void)arg;
    struct counts c = {0};
    weft_stream *s, *peer;
    if (!rot_pair(&s, &peer, &rot_min, &c))
        return -EIO;
    /* send: the peer sees rot13 */
    nh_send_str(s, "Hello");
    nh_expect(peer, "Uryyb");
    /* recv_until with read-ahead: two records and a tail in one write */
    char enc[] = "Ba rnpu\nyvar\ngnvy";
    nh_send_str(peer, enc);
    char buf[64];
    ssize_t n = weft_stream_recv_until(s, buf, sizeof buf, "\n", 1);
    if (CHECK_EQ(n, 7))
        CHECK(memcmp(buf, "On each", 7) == 0);
    CHECK_EQ(weft_stream_buffered(s), 9);
    n = weft_stream_recv_until(s, buf, sizeof buf, "\n", 1);
    if (CHECK_EQ(n, 4))
        CHECK(memcmp(buf, "line", 4) == 0);
    int recvs = c.recv;
    n = weft_stream_recv(s, buf, sizeof buf); /* the read-ahead only */
    if (CHECK_EQ(n, 4))
        CHECK(memcmp(buf, "tail", 4) == 0);
    CHECK_EQ(c.recv, recvs); /* no callback for read-ahead bytes */
    /* recv_exactly over several callbacks: the peer sends in pieces */
    const char *parts[] = {"nop", "qr", "stuvw"};
    for (int i = 0; i < 3; i++)
        nh_send_str(peer, parts[i]);
    memset(buf, 0, sizeof buf);
    recvs = c.recv;
    n = weft_stream_recv_exactly(s, buf, 10);
    if (CHECK_EQ(n, 10))
        CHECK_STR_EQ(buf, "abcdefghij");
    CHECK_GE(c.recv, recvs + 1);
    /* -EMSGSIZE and -ENODATA come from the layer too */
    nh_send_str(peer, "gbb ybat ubjrire");
    CHECK_EQ(weft_stream_recv_until(s, buf, 4, "\n", 1), -EMSGSIZE);
    CHECK_EQ(weft_stream_close(peer), 0);
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\n", 1), -ENODATA);
    n = weft_stream_recv(s, buf, sizeof buf);
    if (CHECK_EQ(n, 16))
        CHECK(memcmp(buf, "too long however", 16) == 0);
    CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(c.close, 1);
    return 0;
}

static void test_transport_gets_recv_until_and_read_ahead(void **state)
{
    (void)state;
    run_in_loop(framing_main, NULL);
}

/* The same over mem, whose receive waits in a weft_event. */
static int mem_framing_main(void *arg)
{
    (void)arg;
    struct counts c = {0};
    weft_stream *s;
    if (!CHECK_EQ(mem_new(&s, &c, 0, false), 0))
        return -EIO;
    nh_send_str(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\nbody");
    char buf[64];
    ssize_t n = weft_stream_recv_until(s, buf, sizeof buf, "\r\n", 2);
    if (CHECK_EQ(n, 14))
        CHECK(memcmp(buf, "GET / HTTP/1.1", 14) == 0);
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\r\n", 2), 7);
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\r\n", 2), 0);
    CHECK_EQ(weft_stream_recv_exactly(s, buf, 4), 4);
    CHECK(memcmp(buf, "body", 4) == 0);
    CHECK_EQ(weft_stream_send_eof(s), 0);
    CHECK_EQ(c.send_eof, 1);
    CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(c.close, 1);
    CHECK_EQ(c.kill, 1);
    return 0;
}

static void test_transport_mem_gets_framing_and_send_eof(void **state)
{
    (void)state;
    run_in_loop(mem_framing_main, NULL);
}

/* weft_stream_impl, weft_stream_closing, weft_stream_fd, send_eof. */
static int impl_fd_eof_main(void *arg)
{
    (void)arg;
    struct counts c1 = {0}, c2 = {0};
    weft_stream *full, *min, *p1, *p2;
    if (!rot_pair(&full, &p1, &rot_full, &c1))
        return -EIO;
    if (!rot_pair(&min, &p2, &rot_min, &c2))
        return -EIO;
    /* impl: the user's pointer for a user stream, NULL for weft's own */
    struct rot *r = weft_stream_impl(full);
    CHECK(r != NULL && r->self == full && r->c == &c1);
    CHECK(weft_stream_impl(p1) == NULL);
    CHECK(weft_stream_impl(NULL) == NULL);
    CHECK(!weft_stream_closing(full));
    CHECK(!weft_stream_closing(NULL));
    /* fd: the callback's answer, or -ENOTSUP without one */
    CHECK_GE(weft_stream_fd(full), 0);
    CHECK_EQ(weft_stream_fd(full), weft_stream_fd(r->inner));
    CHECK_EQ(weft_stream_fd(min), -ENOTSUP);
    /* send_eof: the callback (the peer sees the end), or -ENOTSUP */
    CHECK_EQ(weft_stream_send_eof(min), -ENOTSUP);
    CHECK_EQ(weft_stream_send_eof(full), 0);
    CHECK_EQ(c1.send_eof, 1);
    char buf[8];
    CHECK_EQ(weft_stream_recv(p1, buf, sizeof buf), 0);
    /* half-closed: still receives */
    nh_send_str(p1, "nafjre");
    nh_expect(full, "answer");
    CHECK_EQ(weft_stream_close(full), 0);
    CHECK_EQ(weft_stream_close(min), 0);
    CHECK_EQ(weft_stream_close(p1), 0);
    CHECK_EQ(weft_stream_close(p2), 0);
    CHECK_EQ(c1.close, 1);
    CHECK_EQ(c1.kill, 1);
    CHECK_EQ(c2.close, 1);
    return 0;
}

static void test_transport_impl_fd_and_send_eof(void **state)
{
    (void)state;
    run_in_loop(impl_fd_eof_main, NULL);
}

/* A second receiver or sender is -EBUSY; the first goes on. */
static int busy_main(void *arg)
{
    (void)arg;
    struct counts c = {0};
    weft_stream *s, *peer;
    if (!rot_pair(&s, &peer, &rot_full, &c))
        return -EIO;
    size_t big = 16u << 20;
    char *data = calloc(1, big);
    if (!CHECK(data != NULL))
        return -ENOMEM;
    struct caller rx = {.s = s, .call = RECV};
    struct caller tx = {.s = s, .call = SEND, .data = data, .len = big};
    weft_group g;
    weft_group_enter(&g);
    spawn_caller(&g, &rx);
    spawn_caller(&g, &tx);
    th_settle(); /* rx waits for bytes, tx for room: nobody reads */
    CHECK_EQ(c.inside, 2);
    int recvs = c.recv, sends = c.send;
    char buf[8];
    struct iovec iov = {buf, 1};
    CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), -EBUSY);
    CHECK_EQ(weft_stream_recv_exactly(s, buf, 2), -EBUSY);
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\n", 1), -EBUSY);
    CHECK_EQ(weft_stream_send(s, "x", 1), -EBUSY);
    CHECK_EQ(weft_stream_sendv(s, &iov, 1), -EBUSY);
    CHECK_EQ(weft_stream_send_eof(s), -EBUSY);
    CHECK_EQ(c.recv, recvs);
    CHECK_EQ(c.send, sends);
    CHECK_EQ(c.send_eof, 0);
    /* the first receiver still gets its bytes */
    nh_send_str(peer, "bx");
    th_wait_flag(&rx.done);
    CHECK_EQ(rx.rc, 2);
    CHECK(memcmp(rx.buf, "ok", 2) == 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(tx.rc, -EBADF);
    CHECK_EQ(c.close, 1);
    CHECK_EQ(weft_stream_close(peer), 0);
    free(data);
    return 0;
}

static void test_transport_second_receiver_or_sender_is_ebusy(void **state)
{
    (void)state;
    run_in_loop(busy_main, NULL);
}

/* In a cancelled scope every call is -ECANCELED and no callback runs. */
static int cancelled_main(void *arg)
{
    (void)arg;
    struct counts c = {0};
    weft_stream *s, *peer;
    if (!rot_pair(&s, &peer, &rot_full, &c))
        return -EIO;
    nh_send_str(peer, "xrcg"); /* "kept" */
    th_settle();
    char buf[8];
    struct iovec iov = {"x", 1};
    weft_scope sc;
    weft_scope_enter(&sc, WEFT_FOREVER);
    weft_scope_cancel(&sc);
    CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), -ECANCELED);
    CHECK_EQ(weft_stream_recv_exactly(s, buf, 4), -ECANCELED);
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "p", 1), -ECANCELED);
    CHECK_EQ(weft_stream_send(s, "lost", 4), -ECANCELED);
    CHECK_EQ(weft_stream_sendv(s, &iov, 1), -ECANCELED);
    CHECK_EQ(weft_stream_send_eof(s), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&sc, -ECANCELED), 0);
    CHECK_EQ(c.recv + c.send + c.sendv + c.send_eof, 0);
    nh_expect(s, "kept");
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_stream_close(peer), 0);
    return 0;
}

static void test_transport_cancelled_scope_calls_no_callback(void **state)
{
    (void)state;
    run_in_loop(cancelled_main, NULL);
}

/* ---- closing while a callback is blocked ---- */

enum blocker { IN_INNER_RECV, IN_SLEEP, IN_EVENT };

static const char *const blocker_names[] = {"inner recv", "sleep", "event"};

static int close_blocked_main(void *arg)
{
    (void)arg;
    for (int b = IN_INNER_RECV; b <= IN_EVENT; b++) {
        /* 0: plain; 1: the callback lingers once cut short; 2: the
         * caller is in a shielded scope, which the close reaches anyway
         * (the adapter's scope is inside the shield) */
        for (int mode = 0; mode < 3; mode++) {
            struct counts c = {.linger = mode == 1};
            weft_stream *s = NULL, *peer = NULL;
            if (b == IN_INNER_RECV) {
                if (!rot_pair(&s, &peer, &rot_full, &c))
                    return -EIO;
            } else if (!CHECK_EQ(mem_new(&s, &c,
                                         b == IN_SLEEP ? 3600 * WEFT_SEC : 0,
                                         false),
                                 0)) {
                return -EIO;
            }
            struct caller rx = {
                .s = s, .call = RECV_UNTIL, .shield = mode == 2};
            weft_group g;
            weft_group_enter(&g);
            spawn_caller(&g, &rx);
            yield_until(inside_count, &c, 1);
            th_settle();
            CHECK(!rx.done);
            CHECK_EQ(weft_stream_close(s), 0);
            /* close returned: the callback had returned before close ran */
            if (!CHECK(rx.done))
                fprintf(stderr, "blocked in %s, mode %d\n", blocker_names[b],
                        mode);
            CHECK_EQ(weft_group_exit(&g, 0), 0);
            CHECK_EQ(rx.rc, -EBADF);
            CHECK_EQ(rx.exit_rc, -EBADF); /* not a cancellation */
            CHECK_EQ(c.inner_rc, -ECANCELED);
            CHECK_EQ(c.closing_seen, 1);
            CHECK_EQ(c.close, 1);
            CHECK_EQ(c.kill, 1);
            CHECK_EQ(c.inside_at_close, 0);
            if (peer) {
                char buf[4];
                CHECK_EQ(weft_stream_recv(peer, buf, sizeof buf), 0);
                CHECK_EQ(weft_stream_close(peer), 0);
            }
        }
    }
    return 0;
}

static void
test_transport_close_while_callback_blocked_gives_ebadf(void **state)
{
    (void)state;
    run_in_loop(close_blocked_main, NULL);
}

/* A receive and a send blocked at once (rot: the inner stream's recv and
 * its send into a full socket): close ends both, then closes once. */
static int close_both_sides_main(void *arg)
{
    (void)arg;
    struct counts c = {.linger = true};
    weft_stream *s, *peer;
    if (!rot_pair(&s, &peer, &rot_full, &c))
        return -EIO;
    size_t big = 16u << 20;
    char *data = calloc(1, big);
    if (!CHECK(data != NULL))
        return -ENOMEM;
    struct caller rx = {.s = s, .call = RECV_EXACTLY};
    struct caller tx = {.s = s, .call = SEND, .data = data, .len = big};
    weft_group g;
    weft_group_enter(&g);
    spawn_caller(&g, &rx);
    spawn_caller(&g, &tx);
    yield_until(inside_count, &c, 2);
    th_settle();
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK(rx.done && tx.done);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(rx.rc, -EBADF);
    CHECK_EQ(tx.rc, -EBADF);
    CHECK_EQ(c.closing_seen, 2);
    CHECK_EQ(c.close, 1);
    CHECK_EQ(c.kill, 1);
    CHECK_EQ(c.inside_at_close, 0);
    CHECK_EQ(weft_stream_close(peer), 0);
    free(data);
    return 0;
}

static void test_transport_close_ends_a_blocked_recv_and_send(void **state)
{
    (void)state;
    run_in_loop(close_both_sides_main, NULL);
}

/* A wait the close's cancellation cannot reach (shielded): the kill
 * callback ends it. */
static int kill_ends_shielded_main(void *arg)
{
    (void)arg;
    struct counts c = {0};
    weft_stream *s;
    if (!CHECK_EQ(mem_new(&s, &c, 0, true), 0))
        return -EIO;
    struct caller rx = {.s = s, .call = RECV};
    weft_group g;
    weft_group_enter(&g);
    spawn_caller(&g, &rx);
    yield_until(inside_count, &c, 1);
    th_settle();
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(c.kill, 1);
    CHECK_EQ(c.inner_rc, -ECONNABORTED); /* the transport's own error */
    CHECK_EQ(rx.rc, -EBADF);             /* becomes -EBADF for the caller */
    CHECK_EQ(c.close, 1);
    return 0;
}

static void
test_transport_kill_ends_a_wait_the_close_cannot_cancel(void **state)
{
    (void)state;
    run_in_loop(kill_ends_shielded_main, NULL);
}

/* Calls made after close began (while it waits for a lingering callback)
 * are -EBADF, before -EBUSY, and weft_stream_closing says so. */
struct late {
    weft_stream *s;
    struct counts *c;
    bool saw_closing;
    ssize_t recv_rc, send_rc, sendv_rc, eof_rc, until_rc;
};

static int late_task(void *arg)
{
    struct late *l = arg;
    for (int i = 0; i < 100000 && !weft_stream_closing(l->s); i++)
        CHECK_EQ(weft_cancel_shielded_checkpoint(), 0);
    l->saw_closing = weft_stream_closing(l->s);
    CHECK_EQ(l->c->close, 0); /* still waiting for the callback */
    char buf[8];
    struct iovec iov = {"x", 1};
    l->recv_rc = weft_stream_recv(l->s, buf, sizeof buf);
    l->until_rc = weft_stream_recv_until(l->s, buf, sizeof buf, "\n", 1);
    l->send_rc = weft_stream_send(l->s, "x", 1);
    l->sendv_rc = weft_stream_sendv(l->s, &iov, 1);
    l->eof_rc = weft_stream_send_eof(l->s);
    return 0;
}

static int calls_after_close_main(void *arg)
{
    (void)arg;
    struct counts c = {.linger = true};
    weft_stream *s;
    if (!CHECK_EQ(mem_new(&s, &c, 0, false), 0))
        return -EIO;
    struct caller rx = {.s = s, .call = RECV};
    struct late l = {.s = s, .c = &c};
    weft_group g;
    weft_group_enter(&g);
    spawn_caller(&g, &rx);
    yield_until(inside_count, &c, 1);
    CHECK_EQ(weft_group_spawn(&g, late_task, &l), 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(l.saw_closing);
    CHECK_EQ(l.recv_rc, -EBADF); /* not -EBUSY: rx was still inside */
    CHECK_EQ(l.until_rc, -EBADF);
    CHECK_EQ(l.send_rc, -EBADF);
    CHECK_EQ(l.sendv_rc, -EBADF);
    CHECK_EQ(l.eof_rc, -EBADF);
    CHECK_EQ(rx.rc, -EBADF);
    CHECK_EQ(c.recv, 1);
    CHECK_EQ(c.send + c.send_eof, 0);
    CHECK_EQ(c.close, 1);
    return 0;
}

static void test_transport_calls_after_close_begins_are_ebadf(void **state)
{
    (void)state;
    run_in_loop(calls_after_close_main, NULL);
}

/* The caller's own cancellation is not the close's: it passes through
 * the adapter's scope as -ECANCELED, for the caller's scope to catch,
 * and the stream stays usable. */
static int callers_cancel_main(void *arg)
{
    (void)arg;
    for (int b = IN_INNER_RECV; b <= IN_EVENT; b++) {
        struct counts c = {0};
        weft_stream *s = NULL, *peer = NULL;
        if (b == IN_INNER_RECV) {
            if (!rot_pair(&s, &peer, &rot_full, &c))
                return -EIO;
        } else if (!CHECK_EQ(mem_new(&s, &c,
                                     b == IN_SLEEP ? 3600 * WEFT_SEC : 0,
                                     false),
                             0)) {
            return -EIO;
        }
        struct caller rx = {.s = s, .call = RECV_UNTIL};
        weft_group g;
        weft_group_enter(&g);
        spawn_caller(&g, &rx);
        yield_until(inside_count, &c, 1);
        th_settle();
        weft_scope_cancel(&rx.scope);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(rx.rc, -ECANCELED);
        CHECK_EQ(rx.exit_rc, 0); /* the caller's scope caught its own */
        CHECK(weft_scope_cancelled_caught(&rx.scope));
        CHECK_EQ(c.inner_rc, -ECANCELED);
        CHECK_EQ(c.closing_seen, 0);
        CHECK_EQ(c.close, 0);
        CHECK_EQ(c.kill, 0);
        /* still usable */
        if (b == IN_SLEEP) {
            struct mem *m = weft_stream_impl(s);
            m->delay = 0;
        }
        nh_send_str(peer ? peer : s, peer ? "ntnva\n" : "again\n");
        char buf[16];
        CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\n", 1), 5);
        CHECK(memcmp(buf, "again", 5) == 0);
        CHECK_EQ(weft_stream_close(s), 0);
        CHECK_EQ(c.close, 1);
        if (peer)
            CHECK_EQ(weft_stream_close(peer), 0);
    }
    return 0;
}

static void test_transport_callers_cancel_passes_through(void **state)
{
    (void)state;
    run_in_loop(callers_cancel_main, NULL);
}

/* A deadline around a receive on a user stream: -ETIMEDOUT at the exit
 * of the weft_fail_after scope, and no byte lost. */
static int fail_after_main(void *arg)
{
    (void)arg;
    for (int b = IN_INNER_RECV; b <= IN_EVENT; b++) {
        struct counts c = {0};
        weft_stream *s = NULL, *peer = NULL;
        if (b == IN_INNER_RECV) {
            if (!rot_pair(&s, &peer, &rot_full, &c))
                return -EIO;
        } else if (!CHECK_EQ(mem_new(&s, &c,
                                     b == IN_SLEEP ? 3600 * WEFT_SEC : 0,
                                     false),
                             0)) {
            return -EIO;
        }
        if (peer)
            nh_send_str(peer, "cnegvny"); /* "partial", no newline */
        else
            nh_send_str(s, "partial");
        char buf[64];
        weft_scope sc;
        weft_fail_after(&sc, 20 * WEFT_MSEC);
        ssize_t r = weft_stream_recv_until(s, buf, sizeof buf, "\n", 1);
        CHECK_EQ(r, -ECANCELED);
        CHECK_EQ(weft_scope_exit(&sc, (int)r), -ETIMEDOUT);
        CHECK_EQ(c.close, 0);
        if (b == IN_SLEEP) {
            struct mem *m = weft_stream_impl(s);
            m->delay = 0;
        } else {
            CHECK_EQ(weft_stream_buffered(s), 7);
        }
        nh_send_str(peer ? peer : s, "\n");
        CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\n", 1), 7);
        CHECK(memcmp(buf, "partial", 7) == 0);
        CHECK_EQ(weft_stream_close(s), 0);
        if (peer)
            CHECK_EQ(weft_stream_close(peer), 0);
    }
    return 0;
}

static void test_transport_fail_after_around_recv_is_etimedout(void **state)
{
    (void)state;
    run_in_loop(fail_after_main, NULL);
}

/*
 * A close landing as the callback's inner receive completes. The peer's
 * bytes are written with write(2), so they are in the socket at once and
 * the inner RECV completes at the loop's next trip to the kernel. The
 * closer then closes (0) at once, before that trip; (1) after one NOP,
 * whose completion is reaped in the same round as the RECV's; (2) after
 * two. Whatever the order, the reader gets the bytes or -EBADF, the
 * transport is closed once, and nothing leaks.
 */
struct race {
    weft_stream *s, *peer;
    struct counts *c;
    int nops;
    ssize_t close_rc;
};

static int race_closer(void *arg)
{
    struct race *w = arg;
    CHECK_EQ(write(weft_stream_fd(w->peer), "uryyb", 5), 5);
    for (int i = 0; i < w->nops; i++)
        CHECK_EQ(th_nop(), 0);
    w->close_rc = weft_stream_close(w->s);
    return 0;
}

static int race_main(void *arg)
{
    (void)arg;
    int got[2] = {0, 0};
    for (int i = 0; i < 150; i++) {
        struct counts c = {0};
        struct race w = {.c = &c, .nops = i % 3, .close_rc = 1};
        if (!rot_pair(&w.s, &w.peer, &rot_full, &c))
            return -EIO;
        struct caller rx = {.s = w.s, .call = RECV};
        weft_group g;
        weft_group_enter(&g);
        spawn_caller(&g, &rx);
        yield_until(inside_count, &c, 1);
        th_settle();
        CHECK_EQ(weft_group_spawn(&g, race_closer, &w), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(w.close_rc, 0);
        CHECK_EQ(c.close, 1);
        if (rx.rc == 5) {
            CHECK(memcmp(rx.buf, "hello", 5) == 0);
            got[0]++;
        } else {
            CHECK_EQ(rx.rc, -EBADF);
            got[1]++;
        }
        CHECK_EQ(weft_stream_close(w.peer), 0);
    }
    print_message("close racing a completion: %d got the bytes, %d -EBADF\n",
                  got[0], got[1]);
    return 0;
}

static void test_transport_close_racing_inner_completion(void **state)
{
    (void)state;
    run_in_loop(race_main, NULL);
}

/* ---- weft_stream_sendv ---- */

enum kind { PAIR, TCP, PIPE, USER, USER_V };

static const char *const kind_names[] = {"pair", "tcp", "pipe", "user",
                                         "user with sendv"};

/* In a task: *tx sends into *rx (one direction is all sendv needs). For
 * USER and USER_V, both ends are rot streams (so rx decodes), tx with or
 * without a sendv callback. */
static bool open_kind(enum kind k, weft_stream **tx, weft_stream **rx,
                      struct counts *c)
{
    *tx = *rx = NULL;
    if (k == TCP)
        return nh_tcp_pair("127.0.0.1", tx, rx) == 0;
    if (k == PIPE) {
        int p[2];
        if (!th_pipe(p))
            return false;
        if (!CHECK_EQ(weft_stream_from_fd(rx, p[0]), 0)) {
            close(p[1]);
            return false;
        }
        return CHECK_EQ(weft_stream_from_fd(tx, p[1]), 0);
    }
    weft_stream *a, *b;
    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
        return false;
    if (k == PAIR) {
        *tx = a;
        *rx = b;
        return true;
    }
    static struct counts rx_counts;
    if (!CHECK_EQ(rot_new(rx, b, &rot_min, &rx_counts), 0)) {
        weft_stream_close(a);
        return false;
    }
    return CHECK_EQ(rot_new(tx, a, k == USER_V ? &rot_full : &rot_min, c), 0);
}

static void close_kind(weft_stream *tx, weft_stream *rx)
{
    if (tx)
        CHECK_EQ(weft_stream_close(tx), 0);
    if (rx)
        CHECK_EQ(weft_stream_close(rx), 0);
}

/* A reader of exactly n bytes, checked against the pattern. */
struct reader {
    weft_stream *s;
    size_t n, got;
    size_t chunk;
    bool ok;
};

static int reader_task(void *arg)
{
    struct reader *r = arg;
    size_t cap = r->chunk ? r->chunk : 65536;
    unsigned char *buf = malloc(cap);
    if (!CHECK(buf != NULL))
        return -ENOMEM;
    r->ok = true;
    while (r->got < r->n) {
        size_t want = r->n - r->got < cap ? r->n - r->got : cap;
        ssize_t k = weft_stream_recv(r->s, buf, want);
        if (!CHECK_GT(k, 0)) {
            r->ok = false;
            break;
        }
        for (ssize_t i = 0; i < k; i++) {
            if (buf[i] != nh_pattern_byte(r->got + (size_t)i)) {
                r->ok = th_fail_at(__FILE__, __LINE__, "byte %zu differs",
                                   r->got + (size_t)i);
                break;
            }
        }
        if (!r->ok)
            break;
        r->got += (size_t)k;
    }
    free(buf);
    return 0;
}

/* Send the pattern's first sum(lens) bytes as pieces of lens[] with one
 * sendv while a reader takes them; check every byte. */
static void sendv_pieces(enum kind k, const size_t *lens, int n)
{
    struct counts c = {0};
    weft_stream *tx, *rx;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lens[i];
    if (!open_kind(k, &tx, &rx, &c)) {
        close_kind(tx, rx);
        return;
    }
    unsigned char *data = nh_pattern(total);
    struct iovec *iov = calloc((size_t)n, sizeof *iov);
    if (!CHECK(data && iov))
        return;
    size_t off = 0;
    int nonempty = 0;
    for (int i = 0; i < n; i++) {
        /* an empty piece may have a NULL base */
        iov[i].iov_base = lens[i] || i % 2 ? data + off : NULL;
        iov[i].iov_len = lens[i];
        off += lens[i];
        nonempty += lens[i] > 0;
    }
    struct reader r = {.s = rx, .n = total};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, reader_task, &r), 0);
    ssize_t sent = weft_stream_sendv(tx, iov, n);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    if (!CHECK_EQ(sent, (ssize_t)total) || !CHECK(r.ok) ||
        !CHECK_EQ(r.got, total))
        fprintf(stderr, "over %s, %d pieces\n", kind_names[k], n);
    if (k == USER) {
        CHECK_EQ(c.sendv, 0);
        CHECK_GE(c.send, nonempty); /* piece by piece */
    } else if (k == USER_V && total) {
        CHECK_EQ(c.send, 0);
        CHECK_GE(c.sendv, 1);
    }
    close_kind(tx, rx);
    free(iov);
    free(data);
}

static int sendv_many_main(void *arg)
{
    enum kind k = *(enum kind *)arg;
    size_t lens[IOV_MAX];
    /* 17 pieces (just past one run), 1000, and IOV_MAX */
    const int counts[] = {1, 2, 16, 17, 1000, IOV_MAX};
    for (size_t j = 0; j < sizeof counts / sizeof counts[0]; j++) {
        for (int i = 0; i < counts[j]; i++)
            lens[i] = (size_t)(i * 37 % 101); /* some empty */
        if (counts[j] <= 2)
            lens[0] = 5;
        sendv_pieces(k, lens, counts[j]);
    }
    return 0;
}

static int sendv_large_main(void *arg)
{
    enum kind k = *(enum kind *)arg;
    /* 8 MiB in pieces of odd sizes: the kernel takes part of a sendmsg */
    const size_t lens[] = {1, 3u << 20, 0, 4093, (5u << 20) - 4094, 0};
    sendv_pieces(k, lens, 6);
    return 0;
}

/* Declare test_sendv_<name>_<kind> for every kind. */
#define EVERY_KIND(name)                                                       \
    static void test_sendv_##name##_pair(void **state)                         \
    {                                                                          \
        enum kind k = PAIR;                                                    \
        (void)state;                                                           \
        run_in_loop(sendv_##name##_main, &k);                                  \
    }                                                                          \
    static void test_sendv_##name##_tcp(void **state)                          \
    {                                                                          \
        enum kind k = TCP;                                                     \
        (void)state;                                                           \
        run_in_loop(sendv_##name##_main, &k);                                  \
    }                                                                          \
    static void test_sendv_##name##_pipe(void **state)                         \
    {                                                                          \
        enum kind k = PIPE;                                                    \
        (void)state;                                                           \
        run_in_loop(sendv_##name##_main, &k);                                  \
    }                                                                          \
    static void test_sendv_##name##_user(void **state)                         \
    {                                                                          \
        enum kind k = USER;                                                    \
        (void)state;                                                           \
        run_in_loop(sendv_##name##_main, &k);                                  \
    }                                                                          \
    static void test_sendv_##name##_user_with_sendv(void **state)              \
    {                                                                          \
        enum kind k = USER_V;                                                  \
        (void)state;                                                           \
        run_in_loop(sendv_##name##_main, &k);                                  \
    }

EVERY_KIND(many)
EVERY_KIND(large)

/* Argument errors change nothing; zero pieces and empty pieces are 0. */
static int sendv_args_main(void *arg)
{
    (void)arg;
    weft_stream *a, *b;
    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
        return -EIO;
    char x[4] = "abc";
    struct iovec one = {x, 1};
    struct iovec null_base[2] = {{x, 1}, {NULL, 3}};
    struct iovec too_big[2] = {{x, (size_t)SSIZE_MAX}, {x, 1}};
    struct iovec huge = {x, SIZE_MAX};
    static struct iovec many[IOV_MAX + 1];
    for (int i = 0; i <= IOV_MAX; i++)
        many[i] = (struct iovec){x, 0};
    CHECK_EQ(weft_stream_sendv(NULL, &one, 1), -EINVAL);
    CHECK_EQ(weft_stream_sendv(NULL, NULL, -1), -EINVAL);
    CHECK_EQ(weft_stream_sendv(a, &one, -1), -EINVAL);
    CHECK_EQ(weft_stream_sendv(a, many, IOV_MAX + 1), -EINVAL);
    CHECK_EQ(weft_stream_sendv(a, NULL, 1), -EFAULT);
    CHECK_EQ(weft_stream_sendv(a, null_base, 2), -EFAULT);
    CHECK_EQ(weft_stream_sendv(a, too_big, 2), -EINVAL);
    CHECK_EQ(weft_stream_sendv(a, &huge, 1), -EINVAL);
    th_settle();
    CHECK_EQ(th_pipe_pending(weft_stream_fd(b)), 0); /* nothing sent */
    /* zero pieces, and pieces that are all empty: 0, nothing sent */
    CHECK_EQ(weft_stream_sendv(a, NULL, 0), 0);
    CHECK_EQ(weft_stream_sendv(a, &one, 0), 0);
    CHECK_EQ(weft_stream_sendv(a, many, IOV_MAX), 0);
    struct iovec empties[3] = {{NULL, 0}, {x, 0}, {NULL, 0}};
    CHECK_EQ(weft_stream_sendv(a, empties, 3), 0);
    th_settle();
    CHECK_EQ(th_pipe_pending(weft_stream_fd(b)), 0);
    /* empty entries among full ones are skipped */
    struct iovec mixed[5] = {
        {NULL, 0}, {"he", 2}, {x, 0}, {"llo", 3}, {NULL, 0}};
    CHECK_EQ(weft_stream_sendv(a, mixed, 5), 5);
    nh_expect(b, "hello");
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_sendv_argument_errors_and_empty_pieces(void **state)
{
    (void)state;
    run_in_loop(sendv_args_main, NULL);
}

/* Cancelled before (nothing sent) and while blocked (-ECANCELED); busy
 * with a send under way (both ways); closed while blocked (-EBADF). */
static int sendv_cancel_busy_main(void *arg)
{
    (void)arg;
    size_t big = 16u << 20;
    char *data = calloc(1, big);
    if (!CHECK(data != NULL))
        return -ENOMEM;
    struct iovec iov[3] = {
        {data, 100}, {data + 100, big / 2}, {data + 100 + big / 2, 1000}};
    for (int round = 0; round < 3; round++) {
        weft_stream *a, *b;
        if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
            break;
        /* in a cancelled scope: nothing sent */
        weft_scope sc;
        weft_scope_enter(&sc, WEFT_FOREVER);
        weft_scope_cancel(&sc);
        CHECK_EQ(weft_stream_sendv(a, iov, 3), -ECANCELED);
        CHECK_EQ(weft_scope_exit(&sc, -ECANCELED), 0);
        th_settle();
        CHECK_EQ(th_pipe_pending(weft_stream_fd(b)), 0);
        /* a blocked sendv (nobody reads), and a second sender */
        struct caller tx = {.s = a, .iov = iov, .iovcnt = 3};
        tx.call = round == 1 ? SEND : SENDV;
        tx.data = data;
        tx.len = big;
        weft_group g;
        weft_group_enter(&g);
        spawn_caller(&g, &tx);
        th_settle();
        CHECK(!tx.done);
        CHECK_EQ(weft_stream_sendv(a, iov, 1), -EBUSY);
        CHECK_EQ(weft_stream_send(a, "x", 1), -EBUSY);
        CHECK_EQ(weft_stream_send_eof(a), -EBUSY);
        if (round == 2) {
            CHECK_EQ(weft_stream_close(a), 0);
            a = NULL;
        } else {
            weft_scope_cancel(&tx.scope);
        }
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(tx.rc, round == 2 ? -EBADF : -ECANCELED);
        if (a)
            CHECK_EQ(weft_stream_close(a), 0);
        CHECK_EQ(weft_stream_close(b), 0);
    }
    free(data);
    return 0;
}

static void test_sendv_cancelled_busy_and_closed(void **state)
{
    (void)state;
    run_in_loop(sendv_cancel_busy_main, NULL);
}

/* A cancelled sendv over a user transport: the caller's -ECANCELED. */
static int sendv_user_cancel_main(void *arg)
{
    (void)arg;
    struct counts c = {0};
    weft_stream *s, *peer;
    if (!rot_pair(&s, &peer, &rot_full, &c))
        return -EIO;
    size_t big = 16u << 20;
    char *data = calloc(1, big);
    if (!CHECK(data != NULL))
        return -ENOMEM;
    struct iovec iov[2] = {{data, big / 2}, {data + big / 2, big / 2}};
    struct caller tx = {.s = s, .call = SENDV, .iov = iov, .iovcnt = 2};
    weft_group g;
    weft_group_enter(&g);
    spawn_caller(&g, &tx);
    yield_until(inside_count, &c, 1);
    th_settle();
    weft_scope_cancel(&tx.scope);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(tx.rc, -ECANCELED);
    CHECK_EQ(tx.exit_rc, 0);
    CHECK_GE(c.sendv, 1);
    CHECK_EQ(c.close, 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_stream_close(peer), 0);
    free(data);
    return 0;
}

static void test_sendv_user_transport_cancelled(void **state)
{
    (void)state;
    run_in_loop(sendv_user_cancel_main, NULL);
}

/* ---- weft_stream_staple ---- */

/* Two pipes as the two sides of a staple; the peer's ends as streams. */
struct pipes {
    weft_stream *staple;
    weft_stream *peer_tx; /* writes what the staple receives */
    weft_stream *peer_rx; /* reads what the staple sends */
};

static bool open_pipes_staple(struct pipes *p)
{
    int in[2], out[2];
    weft_stream *rx, *tx;
    memset(p, 0, sizeof *p);
    if (!th_pipe(in))
        return false;
    if (!th_pipe(out)) {
        th_close_pipe(in);
        return false;
    }
    CHECK_EQ(weft_stream_from_fd(&rx, in[0]), 0);
    CHECK_EQ(weft_stream_from_fd(&p->peer_tx, in[1]), 0);
    CHECK_EQ(weft_stream_from_fd(&tx, out[1]), 0);
    CHECK_EQ(weft_stream_from_fd(&p->peer_rx, out[0]), 0);
    return CHECK_EQ(weft_stream_staple(&p->staple, rx, tx), 0);
}

static int staple_pipes_main(void *arg)
{
    (void)arg;
    int fds = th_fd_count();
    struct pipes p;
    if (!open_pipes_staple(&p))
        return -EIO;
    CHECK_EQ(th_fd_count(), fds + 4);
    weft_stream *s = p.staple;
    CHECK(weft_stream_impl(s) == NULL); /* weft's own transport */
    CHECK_EQ(weft_stream_fd(s), -ENOTSUP);
    /* recv_until over the staple: lines, one split over two writes */
    nh_send_str(p.peer_tx, "ping\npo");
    char buf[64];
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\n", 1), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    nh_send_str(p.peer_tx, "ng\r");
    nh_send_str(p.peer_tx, "\nrest");
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\r\n", 2), 4);
    CHECK(memcmp(buf, "pong", 4) == 0);
    CHECK_EQ(weft_stream_buffered(s), 4);
    nh_expect(s, "rest");
    /* send and sendv into the other pipe */
    nh_send_str(s, "reply ");
    struct iovec iov[3] = {{"head ", 5}, {NULL, 0}, {"body", 4}};
    CHECK_EQ(weft_stream_sendv(s, iov, 3), 9);
    nh_expect(p.peer_rx, "reply head body");
    /* send_eof: a pipe has no half-close, so the send side is closed */
    CHECK_EQ(th_fd_count(), fds + 4);
    CHECK_EQ(weft_stream_send_eof(s), 0);
    CHECK_EQ(th_fd_count(), fds + 3);
    CHECK_EQ(weft_stream_recv(p.peer_rx, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_send(s, "x", 1), -EPIPE);
    CHECK_EQ(weft_stream_sendv(s, iov, 3), -EPIPE);
    CHECK_EQ(weft_stream_send_eof(s), 0); /* again: nothing to do */
    /* and the receive side goes on */
    nh_send_str(p.peer_tx, "still\n");
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\n", 1), 5);
    CHECK_EQ(weft_stream_close(p.peer_tx), 0);
    CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_stream_close(p.peer_rx), 0);
    CHECK_EQ(th_fd_count(), fds);
    return 0;
}

static void test_staple_pipes_round_trip_and_send_eof_closes(void **state)
{
    (void)state;
    run_in_loop(staple_pipes_main, NULL);
}

/* Socket sides: send_eof is the send side's half-close. */
static int staple_sockets_main(void *arg)
{
    (void)arg;
    int fds = th_fd_count();
    weft_stream *a1, *b1, *a2, *b2, *s;
    if (!CHECK_EQ(weft_stream_pair(&a1, &b1), 0) ||
        !CHECK_EQ(weft_stream_pair(&a2, &b2), 0))
        return -EIO;
    if (!CHECK_EQ(weft_stream_staple(&s, a1, a2), 0))
        return -EIO;
    nh_send_str(b1, "in");
    nh_expect(s, "in");
    nh_send_str(s, "out");
    nh_expect(b2, "out");
    CHECK_EQ(weft_stream_send_eof(s), 0);
    CHECK_EQ(th_fd_count(), fds + 4); /* half-closed, not closed */
    char buf[8];
    CHECK_EQ(weft_stream_recv(b2, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_send(s, "x", 1), -EPIPE);
    nh_send_str(b1, "more");
    nh_expect(s, "more");
    /* b2 can still answer into a2, which nobody reads: it is the send
     * side; close closes both */
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(th_fd_count(), fds + 2);
    CHECK_EQ(weft_stream_recv(b1, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(b1), 0);
    CHECK_EQ(weft_stream_close(b2), 0);
    CHECK_EQ(th_fd_count(), fds);
    return 0;
}

static void test_staple_socket_sides_half_close(void **state)
{
    (void)state;
    run_in_loop(staple_sockets_main, NULL);
}

/* Closing a staple while a task is blocked in it. */
static int staple_close_blocked_main(void *arg)
{
    (void)arg;
    int fds = th_fd_count();
    struct pipes p;
    if (!open_pipes_staple(&p))
        return -EIO;
    struct caller rx = {.s = p.staple, .call = RECV_UNTIL};
    weft_group g;
    weft_group_enter(&g);
    nh_send_str(p.peer_tx, "half");
    spawn_caller(&g, &rx);
    th_settle();
    CHECK(!rx.done);
    CHECK_EQ(weft_stream_close(p.staple), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(rx.rc, -EBADF);
    CHECK_EQ(th_fd_count(), fds + 2);
    char buf[8];
    CHECK_EQ(weft_stream_recv(p.peer_rx, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(p.peer_tx), 0);
    CHECK_EQ(weft_stream_close(p.peer_rx), 0);
    CHECK_EQ(th_fd_count(), fds);
    return 0;
}

static void test_staple_close_while_blocked_closes_both(void **state)
{
    (void)state;
    run_in_loop(staple_close_blocked_main, NULL);
}

/* Errors close the sides given (once), and leave *out NULL. */
static int staple_args_main(void *arg)
{
    (void)arg;
    int fds = th_fd_count();
    weft_stream *a, *b, *out;

    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    CHECK_EQ(weft_stream_staple(NULL, a, b), -EINVAL);
    CHECK_EQ(th_fd_count(), fds);

    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    out = a;
    CHECK_EQ(weft_stream_staple(&out, NULL, b), -EINVAL);
    CHECK(out == NULL);
    CHECK_EQ(th_fd_count(), fds + 1);
    CHECK_EQ(weft_stream_staple(&out, a, NULL), -EINVAL);
    CHECK_EQ(th_fd_count(), fds);

    CHECK_EQ(weft_stream_staple(&out, NULL, NULL), -EINVAL);

    /* the same stream twice: closed once (ASan sees a double free) */
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    out = a;
    CHECK_EQ(weft_stream_staple(&out, a, a), -EINVAL);
    CHECK(out == NULL);
    CHECK_EQ(th_fd_count(), fds + 1);
    CHECK_EQ(weft_stream_close(b), 0);
    CHECK_EQ(th_fd_count(), fds);
    return 0;
}

static void test_staple_argument_errors_close_the_sides(void **state)
{
    (void)state;
    run_in_loop(staple_args_main, NULL);
}

/* A staple of a user transport and a socket, and a staple of staples. */
static int staple_mixed_main(void *arg)
{
    (void)arg;
    struct counts c = {0};
    weft_stream *rot, *peer, *a, *b, *s, *s2, *x, *y;
    if (!rot_pair(&rot, &peer, &rot_full, &c))
        return -EIO;
    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
        return -EIO;
    if (!CHECK_EQ(weft_stream_staple(&s, rot, a), 0))
        return -EIO;
    nh_send_str(peer, "ebg13\n");
    char buf[16];
    CHECK_EQ(weft_stream_recv_until(s, buf, sizeof buf, "\n", 1), 5);
    CHECK(memcmp(buf, "rot13", 5) == 0);
    nh_send_str(s, "plain");
    nh_expect(b, "plain");
    /* a staple of staples: close reaches every stream underneath */
    if (!CHECK_EQ(weft_stream_pair(&x, &y), 0))
        return -EIO;
    if (!CHECK_EQ(weft_stream_staple(&s2, s, x), 0))
        return -EIO;
    nh_send_str(peer, "nabgure\n");
    CHECK_EQ(weft_stream_recv_until(s2, buf, sizeof buf, "\n", 1), 7);
    CHECK(memcmp(buf, "another", 7) == 0);
    nh_send_str(s2, "last");
    nh_expect(y, "last");
    CHECK_EQ(weft_stream_close(s2), 0);
    CHECK_EQ(c.close, 1);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_recv(y, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(peer), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    CHECK_EQ(weft_stream_close(y), 0);
    return 0;
}

static void test_staple_of_user_transport_and_staples(void **state)
{
    (void)state;
    run_in_loop(staple_mixed_main, NULL);
}

/* ---- weft_stream_borrow ---- */

static int borrow_blocked(void *arg)
{
    char c;
    CHECK_EQ(weft_stream_recv(arg, &c, 1), -EBADF);
    return 0;
}

static int borrow_main(void *arg)
{
    (void)arg;
    weft_stream *a = NULL, *b, *view;
    CHECK_EQ(weft_stream_borrow(NULL, a), -EINVAL);
    CHECK_EQ(weft_stream_borrow(&view, NULL), -EINVAL);
    CHECK(view == NULL);
    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0))
        return -EIO;
    CHECK_EQ(weft_stream_borrow(&view, a), 0);
    CHECK(weft_stream_impl(view) == NULL); /* weft's own transport */
    CHECK_EQ(weft_stream_fd(view), weft_stream_fd(a));
    /* its calls are a's */
    nh_send_str(view, "via view\n");
    nh_expect(b, "via view\n");
    nh_send_str(b, "line\nrest");
    char buf[16];
    CHECK_EQ(weft_stream_recv_until(view, buf, sizeof buf, "\n", 1), 4);
    CHECK_EQ(weft_stream_close(view), 0); /* the read-ahead "rest" goes */
    /* a is open and usable */
    nh_send_str(a, "still a");
    nh_expect(b, "still a");
    /* a close of the view while a task is blocked in it: -EBADF there,
     * and a is still usable afterwards */
    CHECK_EQ(weft_stream_borrow(&view, a), 0);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, borrow_blocked, view), 0);
    weft_wait_all_tasks_blocked();
    CHECK_EQ(weft_stream_close(view), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    nh_send_str(b, "after");
    nh_expect(a, "after");
    /* send_eof through a view half-closes a */
    CHECK_EQ(weft_stream_borrow(&view, a), 0);
    CHECK_EQ(weft_stream_send_eof(view), 0);
    CHECK_EQ(weft_stream_close(view), 0);
    CHECK_EQ(weft_stream_recv(b, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static void test_borrow_uses_without_owning(void **state)
{
    (void)state;
    run_in_loop(borrow_main, NULL);
}

/* ---- misuse that cannot be reported: aborts naming the rule ---- */

struct liar {
    weft_stream *self;
    int how; /* 0: recv claims too much; 1: send closes its own stream */
};

static ssize_t liar_recv(void *impl, void *buf, size_t max)
{
    (void)buf;
    (void)impl;
    return (ssize_t)max + 1;
}

static ssize_t liar_send(void *impl, const void *buf, size_t len)
{
    (void)buf;
    weft_stream_close(((struct liar *)impl)->self);
    return (ssize_t)len;
}

static int liar_close(void *impl)
{
    (void)impl;
    return 0;
}

static const weft_transport liar_ops = {
    .recv = liar_recv, .send = liar_send, .close = liar_close};

static int liar_main(void *arg)
{
    struct liar *l = arg;
    char buf[8];
    if (!CHECK_EQ(weft_stream_new(&l->self, &liar_ops, l), 0))
        return -EIO;
    if (l->how == 0)
        weft_stream_recv(l->self, buf, sizeof buf);
    else
        weft_stream_send(l->self, "x", 1);
    fprintf(stderr, "TEST: the misuse returned\n");
    _exit(20);
}

static void liar_child(void *arg)
{
    weft_run(liar_main, arg, NULL);
    _exit(21);
}

static void expect_abort(int how, const char *says)
{
    struct liar l = {NULL, how};
    struct th_child c;
    th_run_child(liar_child, &l, &c);
    if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT ||
        !strstr(c.err, says)) {
        th_child_dump(&c);
        fail_msg("expected an abort saying \"%s\"", says);
    }
}

static void test_transport_count_past_buffer_aborts(void **state)
{
    (void)state;
    expect_abort(0, "returned 9 for 8 bytes");
}

static void test_transport_closing_own_stream_in_callback_aborts(void **state)
{
    (void)state;
    expect_abort(1, "from inside a call on the same stream");
}

static const struct CMUnitTest tests[] = {
    /* weft_stream_new and what the stream layer gives */
    NET_TEST(test_transport_new_argument_errors_close_the_impl),
    NET_TEST(test_transport_new_is_not_a_checkpoint),
    NET_TEST(test_transport_gets_recv_until_and_read_ahead),
    NET_TEST(test_transport_mem_gets_framing_and_send_eof),
    NET_TEST(test_transport_impl_fd_and_send_eof),
    NET_TEST(test_transport_second_receiver_or_sender_is_ebusy),
    NET_TEST(test_transport_cancelled_scope_calls_no_callback),
    /* closing and cancelling */
    NET_TEST(test_transport_close_while_callback_blocked_gives_ebadf),
    NET_TEST(test_transport_close_ends_a_blocked_recv_and_send),
    NET_TEST(test_transport_kill_ends_a_wait_the_close_cannot_cancel),
    NET_TEST(test_transport_calls_after_close_begins_are_ebadf),
    NET_TEST(test_transport_callers_cancel_passes_through),
    NET_TEST(test_transport_fail_after_around_recv_is_etimedout),
    NET_TEST(test_transport_close_racing_inner_completion),
    /* weft_stream_sendv */
    NET_TEST(test_sendv_argument_errors_and_empty_pieces),
    NET_TEST(test_sendv_many_pair),
    NET_TEST(test_sendv_many_tcp),
    NET_TEST(test_sendv_many_pipe),
    NET_TEST(test_sendv_many_user),
    NET_TEST(test_sendv_many_user_with_sendv),
    NET_TEST(test_sendv_large_pair),
    NET_TEST(test_sendv_large_tcp),
    NET_TEST(test_sendv_large_pipe),
    NET_TEST(test_sendv_large_user),
    NET_TEST(test_sendv_large_user_with_sendv),
    NET_TEST(test_sendv_cancelled_busy_and_closed),
    NET_TEST(test_sendv_user_transport_cancelled),
    /* weft_stream_staple */
    NET_TEST(test_staple_pipes_round_trip_and_send_eof_closes),
    NET_TEST(test_staple_socket_sides_half_close),
    NET_TEST(test_staple_close_while_blocked_closes_both),
    NET_TEST(test_staple_argument_errors_close_the_sides),
    NET_TEST(test_staple_of_user_transport_and_staples),
    NET_TEST(test_borrow_uses_without_owning),
    /* misuse */
    cmocka_unit_test(test_transport_count_past_buffer_aborts),
    cmocka_unit_test(test_transport_closing_own_stream_in_callback_aborts),
};

TH_MAIN(tests)
