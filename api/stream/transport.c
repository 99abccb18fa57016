/* SPDX-License-Identifier: MIT */
/*
 * api/stream/transport.c - weft_stream_new: a stream over a transport a
 * program implements (weft/transport.h), and weft_stream_staple, the
 * first such transport weft builds on it.
 *
 * A user's callbacks block in ordinary weft calls, which the stream's
 * gate cannot see (it lists only the ring operations weft's own
 * transports take through wf_stream_sqe). So each callback runs inside a
 * cancel scope of the adapter's, entered around it on the caller's stack:
 * closing the stream cancels the scopes under way, every weft call in
 * them returns -ECANCELED, and the stream layer, seeing the close, gives
 * the caller -EBADF. Only the close's own cancellation is caught there;
 * the caller's cancellation passes through unchanged.
 */
#include "api/stream/stream_impl.h"

#include <stdlib.h>
#include <string.h>
#include <weft/scope.h>
#include <weft/transport.h>

struct wf_user_stream {
    weft_stream base;
    const weft_transport *ops;
    void *impl;
    weft_scope *in_recv, *in_send; /* the callbacks under way */
};

static struct wf_user_stream *user(const weft_stream *s)
{
    return (struct wf_user_stream *)s;
}

/* Run a callback in a scope the close can cancel. */
#define WF_USER_CALL(u, slot, call)                                            \
    ({                                                                         \
        weft_scope sc_;                                                        \
        weft_scope_enter(&sc_, WEFT_FOREVER);                                  \
        (u)->slot = &sc_;                                                      \
        ssize_t r_ = (call);                                                   \
        (u)->slot = NULL;                                                      \
        weft_scope_exit(&sc_, 0);                                              \
        r_;                                                                    \
    })

/* A count past what the callback was given would corrupt the caller's
 * memory or the read-ahead: a bug in the transport, named. */
static ssize_t counted(ssize_t r, size_t given, const char *what)
{
    if (r > 0 && (size_t)r > given)
        wf_panic("weft_stream_new: the transport's %s returned %zd for "
                 "%zu bytes (it may return at most what it was given)",
                 what, r, given);
    return r;
}

static ssize_t user_recv(weft_stream *s, void *buf, size_t max)
{
    struct wf_user_stream *u = user(s);
    ssize_t r = WF_USER_CALL(u, in_recv, u->ops->recv(u->impl, buf, max));
    return counted(r, max, "recv");
}

static ssize_t user_send(weft_stream *s, const void *buf, size_t len)
{
    struct wf_user_stream *u = user(s);
    ssize_t r = WF_USER_CALL(u, in_send, u->ops->send(u->impl, buf, len));
    return counted(r, len, "send");
}

static ssize_t user_sendv(weft_stream *s, const struct iovec *iov, int n)
{
    struct wf_user_stream *u = user(s);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    ssize_t r = WF_USER_CALL(u, in_send, u->ops->sendv(u->impl, iov, n));
    return counted(r, total, "sendv");
}

static int user_send_eof(weft_stream *s)
{
    struct wf_user_stream *u = user(s);
    return (int)WF_USER_CALL(u, in_send, u->ops->send_eof(u->impl));
}

static void user_kill(weft_stream *s)
{
    struct wf_user_stream *u = user(s);
    if (u->in_recv)
        weft_scope_cancel(u->in_recv);
    if (u->in_send)
        weft_scope_cancel(u->in_send);
    if (u->ops->kill)
        u->ops->kill(u->impl);
}

static int user_close(weft_stream *s)
{
    struct wf_user_stream *u = user(s);
    return u->ops->close(u->impl);
}

static int user_fd(const weft_stream *s)
{
    const struct wf_user_stream *u = user(s);
    return u->ops->fd ? u->ops->fd(u->impl) : -ENOTSUP;
}

/* Four tables, so that a transport without sendv or send_eof gets the
 * stream layer's own answer (piece by piece; -ENOTSUP). */
#define WF_USER_OPS(name, sendv_fn, eof_fn)                                    \
    static const struct wf_stream_ops name = {                                 \
        .recv = user_recv,                                                     \
        .send = user_send,                                                     \
        .sendv = sendv_fn,                                                     \
        .send_eof = eof_fn,                                                    \
        .kill = user_kill,                                                     \
        .close = user_close,                                                   \
        .fd = user_fd,                                                         \
    }
WF_USER_OPS(user_ops, NULL, NULL);
WF_USER_OPS(user_ops_v, user_sendv, NULL);
WF_USER_OPS(user_ops_e, NULL, user_send_eof);
WF_USER_OPS(user_ops_ve, user_sendv, user_send_eof);

static bool is_user(const weft_stream *s)
{
    return s->ops == &user_ops || s->ops == &user_ops_v ||
           s->ops == &user_ops_e || s->ops == &user_ops_ve;
}

WF_EXPORT int weft_stream_new(weft_stream **out, const weft_transport *ops,
                              void *impl)
{
    if (out)
        *out = NULL;
    if (!ops)
        return -EINVAL;
    if (!out || !ops->recv || !ops->send || !ops->close) {
        if (ops->close)
            ops->close(impl);
        return -EINVAL;
    }
    struct wf_user_stream *u = wf_malloc(sizeof *u);
    if (!u) {
        ops->close(impl);
        return -ENOMEM;
    }
    const struct wf_stream_ops *table =
        ops->sendv ? (ops->send_eof ? &user_ops_ve : &user_ops_v)
                   : (ops->send_eof ? &user_ops_e : &user_ops);
    wf_stream_init(&u->base, table);
    u->ops = ops;
    u->impl = impl;
    u->in_recv = u->in_send = NULL;
    *out = &u->base;
    return 0;
}

/* weft_stream_staple is weft's own transport: its impl is not the
 * program's to see (below). */
static const weft_transport staple_ops, borrow_ops;

struct staple {
    weft_stream *rx, *tx; /* tx NULL once closed by send_eof */
};

const weft_transport *wf_stream_transport(const weft_stream *s)
{
    return s && is_user(s) ? user(s)->ops : NULL;
}

const weft_stream *wf_stream_bottom(const weft_stream *s)
{
    while (s && is_user(s)) {
        if (user(s)->ops == &borrow_ops)
            s = user(s)->impl;
        else if (user(s)->ops == &staple_ops)
            s = ((const struct staple *)user(s)->impl)->rx;
        else
            break;
    }
    return s;
}

WF_EXPORT void *weft_stream_impl(const weft_stream *s)
{
    return s && is_user(s) && user(s)->ops != &staple_ops &&
                   user(s)->ops != &borrow_ops
               ? user(s)->impl
               : NULL;
}

WF_EXPORT bool weft_stream_closing(const weft_stream *s)
{
    return s && wf_stream_closing(s);
}

/* ---- weft_stream_staple: a receive side and a send side as one ---- */

static ssize_t staple_recv(void *impl, void *buf, size_t max)
{
    return weft_stream_recv(((struct staple *)impl)->rx, buf, max);
}

static ssize_t staple_send(void *impl, const void *buf, size_t len)
{
    struct staple *st = impl;
    return st->tx ? weft_stream_send(st->tx, buf, len) : -EPIPE;
}

static ssize_t staple_sendv(void *impl, const struct iovec *iov, int n)
{
    struct staple *st = impl;
    return st->tx ? weft_stream_sendv(st->tx, iov, n) : -EPIPE;
}

static int staple_send_eof(void *impl)
{
    struct staple *st = impl;
    if (!st->tx)
        return 0;
    int rc = weft_stream_send_eof(st->tx);
    if (rc != -ENOTSUP)
        return rc;
    /* anyio: a send side with no half-close is closed instead. */
    rc = weft_stream_close(st->tx);
    st->tx = NULL;
    return rc;
}

static int staple_close(void *impl)
{
    struct staple *st = impl;
    int rc = weft_stream_close(st->rx);
    if (st->tx) {
        int rc2 = weft_stream_close(st->tx);
        if (rc == 0)
            rc = rc2;
    }
    wf_free(st);
    return rc;
}

static const weft_transport staple_ops = {
    .recv = staple_recv,
    .send = staple_send,
    .sendv = staple_sendv,
    .send_eof = staple_send_eof,
    .close = staple_close,
};

WF_EXPORT int weft_stream_staple(weft_stream **out, weft_stream *receive_side,
                                 weft_stream *send_side)
{
    if (out)
        *out = NULL;
    int rc = !out || !receive_side || !send_side || receive_side == send_side
                 ? -EINVAL
                 : 0;
    struct staple *st = rc ? NULL : wf_malloc(sizeof *st);
    if (!rc && !st)
        rc = -ENOMEM;
    if (rc < 0) {
        if (receive_side)
            weft_stream_close(receive_side);
        if (send_side && send_side != receive_side)
            weft_stream_close(send_side);
        return rc;
    }
    st->rx = receive_side;
    st->tx = send_side;
    return weft_stream_new(out, &staple_ops, st);
}

/* ---- weft_stream_borrow: a stream's calls, without owning it ---- */

static ssize_t borrow_recv(void *impl, void *buf, size_t max)
{
    return weft_stream_recv(impl, buf, max);
}

static ssize_t borrow_send(void *impl, const void *buf, size_t len)
{
    return weft_stream_send(impl, buf, len);
}

static ssize_t borrow_sendv(void *impl, const struct iovec *iov, int n)
{
    return weft_stream_sendv(impl, iov, n);
}

static int borrow_send_eof(void *impl)
{
    return weft_stream_send_eof(impl);
}

static int borrow_close(void *impl)
{
    (void)impl; /* not ours */
    return 0;
}

static int borrow_fd(const void *impl)
{
    return weft_stream_fd(impl);
}

static const weft_transport borrow_ops = {
    .recv = borrow_recv,
    .send = borrow_send,
    .sendv = borrow_sendv,
    .send_eof = borrow_send_eof,
    .close = borrow_close,
    .fd = borrow_fd,
};

WF_EXPORT int weft_stream_borrow(weft_stream **out, weft_stream *s)
{
    if (out)
        *out = NULL;
    if (!out || !s)
        return -EINVAL;
    return weft_stream_new(out, &borrow_ops, s);
}
