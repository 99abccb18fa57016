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

WF_EXPORT int weft_listener_serve_opts(weft_listener *l,
                                       int (*handler)(weft_stream *, void *),
                                       void *arg, const weft_serve_opts *opts)
{
    struct weft_task *t;
    int rc = wf_entry(&t, l && handler, l && l->gate.closing);
    if (rc < 0)
        return rc;
    struct serve_ctx ctx = {handler, arg, opts};
    weft_group g;
    weft_group_enter(&g);
    weft_time backoff = 0;
    for (;;) {
        weft_stream *conn;
        rc = weft_listener_accept(l, &conn);
        if (out_of_fds(rc)) {
            /* No fd to take the next one: wait for some to be freed. */
            backoff = backoff ? backoff * 2 : 5 * WEFT_MSEC;
            if (backoff > WEFT_SEC)
                backoff = WEFT_SEC;
            rc = weft_sleep(backoff);
            if (rc < 0)
                break;
            continue;
        }
        if (rc < 0)
            break;
        backoff = 0;
        struct serve_conn *sc = serve_conn_new(&ctx, conn);
        rc = sc ? weft_group_spawn(&g, serve_conn, sc) : -ENOMEM;
        if (rc < 0) {
            wf_free(sc);
            weft_stream_close(conn);
            if (rc != -ENOMEM)
                break;
        }
    }
    return weft_group_exit(&g, rc);
}

WF_EXPORT int weft_listener_serve(weft_listener *l,
                                  int (*handler)(weft_stream *, void *),
                                  void *arg)
{
    return weft_listener_serve_opts(l, handler, arg, NULL);
}
