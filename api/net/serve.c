/* SPDX-License-Identifier: MIT */
/*
 * api/net/serve.c - weft_listener_serve: a task per connection in a group
 * the call owns; a failed handler is reported, never fatal; out of fds,
 * it backs off instead of spinning.
 */
#include "api/net/net_impl.h"

#include <stdio.h>
#include <stdlib.h>

struct serve_ctx {
    int (*handler)(weft_stream *conn, void *arg);
    void *arg;
    const weft_serve_opts *opts;
};

/* One connection's task: its stream and its peer's address, taken right
 * after the accept (a peer that resets before its handler fails leaves
 * getpeername nothing to say: -ENOTCONN). Freed by the task. */
struct serve_conn {
    struct serve_ctx *ctx;
    weft_stream *conn;
    socklen_t peer_len; /* 0: unknown */
    struct sockaddr_storage peer;
};

static struct serve_conn *serve_conn_new(struct serve_ctx *ctx,
                                         weft_stream *conn)
{
    struct serve_conn *sc = wf_malloc(sizeof *sc);
    if (!sc)
        return NULL;
    sc->ctx = ctx;
    sc->conn = conn;
    sc->peer_len = sizeof sc->peer;
    if (getpeername(weft_stream_fd(conn), (struct sockaddr *)&sc->peer,
                    &sc->peer_len) < 0)
        sc->peer_len = 0;
    return sc;
}

static int serve_conn(void *p)
{
    struct serve_conn *sc = p;
    struct serve_ctx *ctx = sc->ctx;
    int rc = ctx->handler(sc->conn, ctx->arg);
    weft_stream_close(sc->conn);
    if (rc < 0 && rc != -ECANCELED) {
        if (ctx->opts && ctx->opts->on_error)
            ctx->opts->on_error(
                rc, sc->peer_len ? (struct sockaddr *)&sc->peer : NULL,
                sc->peer_len, ctx->arg);
        else
            fprintf(stderr, "weft: connection handler failed: %s\n",
                    weft_strerror(rc));
    }
    wf_free(sc);
    return 0; /* one connection's failure is not the server's */
}

static bool out_of_fds(int rc)
{
    return rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM;
}

/* Accept and start a handler per connection in g, until an error or a
 * cancellation. */
static int accept_loop(weft_listener *l, struct serve_ctx *ctx, weft_group *g)
{
    weft_time backoff = 0;
    for (;;) {
        weft_stream *conn;
        int rc = weft_listener_accept(l, &conn);
        if (out_of_fds(rc)) {
            /* No fd to take the next one: wait for some to be freed. */
            backoff = backoff ? backoff * 2 : 5 * WEFT_MSEC;
            if (backoff > WEFT_SEC)
                backoff = WEFT_SEC;
            rc = weft_sleep(backoff);
            if (rc < 0)
                return rc;
            continue;
        }
        if (rc < 0)
            return rc;
        backoff = 0;
        struct serve_conn *sc = serve_conn_new(ctx, conn);
        rc = sc ? weft_group_spawn(g, serve_conn, sc) : -ENOMEM;
        if (rc < 0) {
            wf_free(sc);
            weft_stream_close(conn);
            if (rc != -ENOMEM)
                return rc;
        }
    }
}

/*
 * The drain. The caller's task accepts inside a shielded scope, so that
 * a cancellation of the caller reaches neither it nor the handlers; a
 * watcher task outside the shield is what the cancellation wakes, and it
 * cancels the accepting scope. Then: stop the listener, start handlers
 * for what it had accepted, give the handlers' scope its deadline (now +
 * grace), wait for them; at last the watcher's group says -ECANCELED.
 *
 *   group w (watcher) > shield > grace scope > group g (handlers)
 *                                              > accepting scope
 */
struct drain {
    weft_scope accepting;
    bool started, done;
};

static int drain_watch(void *p)
{
    struct drain *d = p;
    weft_sleep_forever();
    if (!d->done) {
        d->started = true;
        weft_scope_cancel(&d->accepting);
    }
    return 0;
}

static int serve_drain(weft_listener *l, struct serve_ctx *ctx)
{
    struct drain d = {0};
    weft_group w;
    weft_group_enter(&w);
    int rc = weft_group_spawn(&w, drain_watch, &d);
    if (rc < 0)
        return weft_group_exit(&w, rc);
    weft_scope shield, grace;
    weft_scope_enter(&shield, WEFT_FOREVER);
    weft_scope_set_shield(&shield, true);
    weft_scope_enter(&grace, WEFT_FOREVER);
    weft_group g;
    weft_group_enter(&g);
    weft_scope_enter(&d.accepting, WEFT_FOREVER);
    rc = accept_loop(l, ctx, &g);
    rc = weft_scope_exit(&d.accepting, rc);
    if (d.started) {
        rc = 0;
        weft_scope_set_deadline(&grace, weft_now() + ctx->opts->drain_grace);
        wf_listener_stop(l, ctx->opts->drain_keep_listening);
        weft_stream *conn;
        while (wf_listener_take(l, &conn) == 0) {
            struct serve_conn *sc = serve_conn_new(ctx, conn);
            if (!sc || weft_group_spawn(&g, serve_conn, sc) < 0) {
                wf_free(sc);
                weft_stream_close(conn);
            }
        }
    }
    rc = weft_group_exit(&g, rc);
    rc = weft_scope_exit(&grace, rc); /* the grace's end: caught */
    rc = weft_scope_exit(&shield, rc);
    d.done = true;
    if (!d.started)
        weft_group_cancel(&w); /* a listener error: the watcher goes */
    rc = weft_group_exit(&w, rc);
    return d.started && rc == 0 ? -ECANCELED : rc;
}

WF_EXPORT int weft_listener_serve_opts(weft_listener *l,
                                       int (*handler)(weft_stream *, void *),
                                       void *arg, const weft_serve_opts *opts)
{
    struct weft_task *t;
    int rc = wf_entry(&t, l && handler && (!opts || opts->drain_grace >= 0),
                      l && l->gate.closing);
    if (rc < 0)
        return rc;
    struct serve_ctx ctx = {handler, arg, opts};
    if (opts && opts->drain_grace > 0)
        return serve_drain(l, &ctx);
    weft_group g;
    weft_group_enter(&g);
    rc = accept_loop(l, &ctx, &g);
    return weft_group_exit(&g, rc);
}

WF_EXPORT int weft_listener_serve(weft_listener *l,
                                  int (*handler)(weft_stream *, void *),
                                  void *arg)
{
    return weft_listener_serve_opts(l, handler, arg, NULL);
}
