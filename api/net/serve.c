/*
 * api/net/serve.c - weft_listener_serve: a task per connection in a group
 * the call owns; a failed handler is reported, never fatal; out of fds,
 * it backs off instead of spinning.
 */
#include "api/net/net_impl.h"

#include <stdio.h>

struct serve_ctx {
    int (*handler)(weft_stream *conn, void *arg);
    void *arg;
    const weft_serve_opts *opts;
};

static int serve_conn(void *p)
{
    weft_stream *conn = p;
    struct serve_ctx *ctx = conn->serve;
    int rc = ctx->handler(conn, ctx->arg);
    weft_stream_close(conn);
    if (rc < 0 && rc != -ECANCELED) {
        if (ctx->opts && ctx->opts->on_error)
            ctx->opts->on_error(rc, ctx->arg);
        else
            fprintf(stderr, "weft: connection handler failed: %s\n",
                    weft_strerror(rc));
    }
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
        conn->serve = &ctx;
        rc = weft_group_spawn(&g, serve_conn, conn);
        if (rc < 0) {
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
