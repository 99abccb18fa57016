/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/conn.c - one connection's task: connect, then send
 * requests and read their responses until the run ends or its budget is
 * spent; reconnect after the server closes or an error (counted by
 * kind).
 *
 * The hot path allocates nothing: every request is the same bytes
 * (wl_opts.batch), responses are parsed in place in the connection's
 * receive buffer, and latencies go into the core's histogram.
 *
 * Closed loop (no --rate): a batch of --pipeline requests goes out as
 * soon as the previous batch is answered; each response's latency runs
 * from the send of its batch. Open loop (--rate): request k of a
 * connection is due at next = start + k * interval; the connection sends
 * it then (or at once, if it is late) and its latency runs from when it
 * was due, not from when it went out: a stalled server delays every
 * request due during the stall, and they all show it (wrk2's answer to
 * coordinated omission).
 */
#include "http_resp.h"
#include "load.h"

#include <weft/uring.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum { RBUF = 64 * 1024 };

/* A session: one connection from connect to close. What ended it. */
enum end { END_AGAIN, END_DONE };

struct session {
    struct wl_conn *c;
    weft_stream *s;
    weft_udp *u;
    int fd;  /* s's socket, for raw ring sends and receives; -1: use s */
    bool ms; /* s has a multishot receive: receive through s */
};

/*
 * Sends and receives on a plain TCP connection are ring operations on its
 * socket (weft_uring_sqe + weft_uring_await): the same cancellation as the
 * stream's calls, without the stream layer's bookkeeping, which the
 * profile showed on every request. A receive goes out with
 * IORING_RECVSEND_POLL_FIRST (Linux 5.19): a response is never there yet
 * when its request has just been sent, so the kernel arms its poll at
 * once instead of trying the socket first and failing (one tcp_recvmsg
 * per request saved). A kernel without the flag says -EINVAL once; from
 * then on receives go without it. A TLS connection (no fd) uses its
 * stream, whose record layer needs it, and so does every connection on
 * the epoll backend, which has no ring (weft_uring_sqe is NULL there).
 */
static _Atomic bool poll_first_off;

static ssize_t raw_recv(int fd, void *buf, size_t len)
{
    for (;;) {
        bool pf = !atomic_load_explicit(&poll_first_off, memory_order_relaxed);
        struct io_uring_sqe *sqe = weft_uring_sqe();
        if (!sqe)
            return -EPERM;
        io_uring_prep_recv(sqe, fd, buf, len, 0);
        if (pf)
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        int rc = weft_uring_await(sqe);
        if (rc != -EINVAL || !pf)
            return rc;
        atomic_store_explicit(&poll_first_off, true, memory_order_relaxed);
    }
}

static ssize_t conn_recv(struct session *ss, void *buf, size_t len)
{
    if (ss->fd < 0 || ss->ms)
        return weft_stream_recv(ss->s, buf, len);
    return raw_recv(ss->fd, buf, len);
}

/* All of buf, or -errno (as weft_stream_send). */
static ssize_t conn_send(struct session *ss, const void *buf, size_t len)
{
    if (ss->fd < 0)
        return weft_stream_send(ss->s, buf, len);
    size_t done = 0;
    while (done < len) {
        struct io_uring_sqe *sqe = weft_uring_sqe();
        if (!sqe)
            return -EPERM;
        io_uring_prep_send(sqe, ss->fd, (const char *)buf + done, len - done,
                           MSG_NOSIGNAL);
        int rc = weft_uring_await(sqe);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return -EIO;
        done += (size_t)rc;
    }
    return (ssize_t)len;
}

/* Requests taken from the budget but never answered, because the server
 * said Connection: close first: still to do on the next connection. A
 * request that ends in an error counts as done (h2load's rule), so that
 * -n ends a run against a server that fails every request. */
static void give_back(struct wl_conn *c, uint64_t k)
{
    if (c->budget != UINT64_MAX)
        c->budget += k;
}

static void record(struct wl_conn *c, weft_time sent, weft_time now)
{
    struct wl_core *k = c->core;
    hist_record(&k->hist, (uint64_t)(now > sent ? now - sent : 0));
    wl_count(&k->done, 1);
}

/* When the next batch starts: now (closed loop), or when it is due. */
static int wait_turn(struct wl_conn *c, weft_time *sent)
{
    if (!c->interval) {
        *sent = weft_now();
        return 0;
    }
    *sent = c->next;
    c->next += c->interval;
    if (weft_now() < *sent)
        return weft_sleep_until(*sent);
    return weft_checkpoint_if_cancelled();
}

/* ---- HTTP ---- */

/* Read until resp holds a whole response. HTTP_RESP_DONE, 0 if the
 * server closed before any byte of it, or -errno (-ENODATA: cut short). */
static int read_response(struct session *ss, struct http_resp *r, weft_time *at)
{
    struct wl_conn *c = ss->c;
    for (;;) {
        if (c->off < c->have) {
            size_t used;
            int rc =
                http_resp_feed(r, c->rbuf + c->off, c->have - c->off, &used);
            c->off += used;
            if (rc != HTTP_RESP_MORE)
                return rc;
        }
        /* A line not whole yet stays, at the front of the buffer. */
        if (c->off) {
            memmove(c->rbuf, c->rbuf + c->off, c->have - c->off);
            c->have -= c->off;
            c->off = 0;
        }
        if (c->have == RBUF)
            return -EMSGSIZE; /* a head line longer than the buffer */
        ssize_t n = conn_recv(ss, c->rbuf + c->have, RBUF - c->have);
        *at = weft_now();
        if (n == 0) {
            int rc = http_resp_eof(r, c->have);
            return rc == 0 ? 0 : rc;
        }
        if (n < 0)
            return (int)n;
        c->core->bytes_in += (uint64_t)n;
        c->have += (size_t)n;
    }
}

static int http_batch(struct session *ss, unsigned k, weft_time sent)
{
    struct wl_conn *c = ss->c;
    struct wl_core *core = c->core;
    const struct wl_opts *o = c->o;
    c->busy_since = c->interval ? weft_now() : sent;
    ssize_t w = conn_send(ss, o->batch, k * o->req_len);
    if (w < 0) {
        if (w != -ECANCELED)
            wl_error(core, WL_E_WRITE);
        return (int)w;
    }
    core->bytes_out += (uint64_t)w;
    weft_time at = c->busy_since;
    for (unsigned j = 0; j < k; j++) {
        struct http_resp r;
        http_resp_start(&r, o->head);
        int rc = read_response(ss, &r, &at);
        if (rc != HTTP_RESP_DONE) {
            if (rc == -ECANCELED)
                return rc;
            wl_error(core, rc == -EBADMSG || rc == -EMSGSIZE ? WL_E_PARSE
                                                             : WL_E_READ);
            return rc < 0 ? rc : -ENODATA;
        }
        record(c, sent, at);
        core->status[r.status / 100 < 10 ? r.status / 100 : 9]++;
        if (r.status >= 500)
            wl_error(core, WL_E_5XX);
        else if (r.status >= 400)
            wl_error(core, WL_E_4XX);
        if (!r.keep_alive) {
            give_back(c, k - j - 1);
            return END_AGAIN; /* Connection: close: connect again */
        }
    }
    c->busy_since = 0;
    return END_DONE;
}

/* ---- TCP echo: a batch of messages, then every byte of their echo ---- */

static int tcp_batch(struct session *ss, unsigned k, weft_time sent)
{
    struct wl_conn *c = ss->c;
    struct wl_core *core = c->core;
    size_t size = c->o->msg_size, want = k * size, got = 0;
    c->busy_since = c->interval ? weft_now() : sent;
    ssize_t w = conn_send(ss, c->o->batch, want);
    if (w < 0) {
        if (w != -ECANCELED)
            wl_error(core, WL_E_WRITE);
        return (int)w;
    }
    core->bytes_out += (uint64_t)w;
    while (got < want) {
        ssize_t n = conn_recv(ss, c->rbuf, RBUF);
        weft_time now = weft_now();
        if (n <= 0) {
            if (n != -ECANCELED)
                wl_error(core, WL_E_READ);
            return n ? (int)n : -ENODATA;
        }
        core->bytes_in += (uint64_t)n;
        size_t before = got / size;
        got += (size_t)n;
        if (got > want) {
            wl_error(core, WL_E_PARSE); /* more than was sent */
            return -EBADMSG;
        }
        for (size_t m = before; m < got / size; m++)
            record(c, sent, now);
    }
    c->busy_since = 0;
    return END_DONE;
}

/* ---- UDP echo: k datagrams out, k back ---- */

static int udp_batch(struct session *ss, unsigned k, weft_time sent)
{
    struct wl_conn *c = ss->c;
    struct wl_core *core = c->core;
    size_t size = c->o->msg_size;
    c->busy_since = weft_now();
    for (unsigned j = 0; j < k; j++) {
        ssize_t w = weft_udp_sendto(ss->u, c->o->batch, size, NULL, 0);
        if (w < 0) {
            if (w != -ECANCELED)
                wl_error(core, WL_E_WRITE);
            return (int)w;
        }
        core->bytes_out += (uint64_t)w;
    }
    for (unsigned j = 0; j < k; j++) {
        ssize_t n = weft_udp_recvfrom(ss->u, c->rbuf, RBUF, NULL, NULL);
        if (n < 0) {
            if (n != -ECANCELED)
                wl_error(core, WL_E_READ);
            return (int)n;
        }
        core->bytes_in += (uint64_t)n;
        record(c, sent, weft_now());
    }
    c->busy_since = 0;
    return END_DONE;
}

static int open_session(struct session *ss)
{
    const struct wl_opts *o = ss->c->o;
    if (o->mode != WL_UDP) {
        int rc = weft_tcp_connect(&ss->s, o->addr, o->port);
        if (rc < 0)
            return rc;
        if (!o->tls_config) {
            /* Raw ring operations where there is a ring; on the epoll
             * backend (no ring) the stream's calls. */
            if (weft_uring_has_op(IORING_OP_RECV))
                ss->fd = weft_stream_fd(ss->s);
            /* Responses come into a receive that stays armed: no
             * submission and no poll armed per response, which was
             * most of what a receive cost (see the comment above). */
            ss->ms =
                !o->no_multishot && weft_stream_set_multishot(ss->s, true) == 0;
            return 0;
        }
        /* the handshake owns the TCP stream, closed if it fails */
        weft_stream *tcp = ss->s;
        ss->s = NULL;
        return weft_tls_wrap(&ss->s, tcp, o->tls_config, o->host);
    }
    int rc = weft_udp_open(&ss->u, strchr(o->addr, ':') ? "::" : "0.0.0.0", 0);
    if (rc < 0)
        return rc;
    return weft_udp_connect(ss->u, o->addr, o->port);
}

/* Batches until the budget is spent, the server closes, or an error. */
static int session(struct session *ss)
{
    struct wl_conn *c = ss->c;
    const struct wl_opts *o = c->o;
    c->busy_since = weft_now();
    int rc = open_session(ss);
    c->busy_since = 0;
    if (rc < 0) {
        if (rc != -ECANCELED && !c->timed_out)
            wl_error(c->core, WL_E_CONNECT);
        if (c->budget != UINT64_MAX && c->budget)
            c->budget--; /* a failed attempt counts as a request done */
        return rc;
    }
    c->off = c->have = 0;
    while (c->budget) {
        unsigned k = o->pipeline;
        if (c->budget < k)
            k = (unsigned)c->budget;
        if (c->budget != UINT64_MAX)
            c->budget -= k;
        weft_time sent;
        if ((rc = wait_turn(c, &sent)) < 0) {
            return rc;
        }
        rc = o->mode == WL_HTTP  ? http_batch(ss, k, sent)
             : o->mode == WL_TCP ? tcp_batch(ss, k, sent)
                                 : udp_batch(ss, k, sent);
        if (rc != END_DONE)
            return rc;
    }
    return END_DONE;
}

int wl_conn_task(void *arg)
{
    struct wl_conn *c = arg;
    c->rbuf = malloc(RBUF);
    if (!c->rbuf)
        return -ENOMEM;
    int rc = 0;
    while (c->budget) {
        struct session ss = {.c = c, .fd = -1};
        c->timed_out = false;
        weft_scope_enter(&c->scope, WEFT_FOREVER);
        c->in_scope = true;
        rc = session(&ss);
        c->in_scope = false;
        rc = weft_scope_exit(&c->scope, rc);
        if (ss.s)
            weft_stream_close(ss.s);
        if (ss.u)
            weft_udp_close(ss.u);
        if (rc == -ECANCELED)
            break; /* the run is over */
        if (c->timed_out)
            wl_error(c->core, WL_E_TIMEOUT);
        if (rc == END_DONE)
            break;
        /* Connect again; after an error not at once, so that a server
         * that is down is not hammered by a busy loop. */
        if (rc < 0 && (rc = weft_sleep(10 * WEFT_MSEC)) < 0)
            break;
    }
    free(c->rbuf);
    return 0;
}
