/* SPDX-License-Identifier: MIT */
/*
 * signal_drain.c - a server that shuts down gracefully on SIGTERM or
 * SIGINT: a signal receiver cancels the serving scope, the server stops
 * accepting at once and lets the requests under way finish within a
 * grace period (weft_serve_opts.drain_grace), and the process exits 0.
 *
 * To show it alone, it is its own client: a slow request (300 ms of
 * work), then SIGTERM to itself while it is served. It checks that the
 * slow request was answered in full.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

struct app {
    weft_listener *l;
    weft_scope serving; /* cancelled by the signal */
    bool answered;
    int port;
};

static int handle(weft_stream *conn, void *arg)
{
    (void)arg;
    char req[64];
    ssize_t n = weft_stream_recv_until(conn, req, sizeof req, "\n", 1);
    if (n <= 0)
        return (int)n;
    int rc = weft_sleep(300 * WEFT_MSEC); /* slow work */
    if (rc < 0)
        return rc;
    return (int)weft_stream_send(conn, "done\n", 5) < 0 ? -EPIPE : 0;
}

static int server(void *arg)
{
    struct app *a = arg;
    weft_serve_opts o = {.drain_grace = 5 * WEFT_SEC};
    weft_scope_enter(&a->serving, WEFT_FOREVER);
    int rc = weft_listener_serve_opts(a->l, handle, a, &o);
    return weft_scope_exit(&a->serving, rc); /* 0: drained */
}

/* The signal watcher: the first SIGTERM or SIGINT starts the drain. */
static int on_signal(void *arg)
{
    struct app *a = arg;
    int sigs[] = {SIGTERM, SIGINT};
    weft_signal_receiver *r;
    int rc = weft_signal_open(&r, sigs, 2);
    if (rc < 0)
        return rc;
    rc = weft_signal_receive(r);
    if (rc > 0) {
        printf("signal %d: draining\n", rc);
        weft_scope_cancel(&a->serving);
        rc = 0;
    }
    weft_signal_close(r);
    return rc;
}

/* The client: a slow request, and SIGTERM while it is served. */
static int client(void *arg)
{
    struct app *a = arg;
    weft_stream *c;
    int rc = weft_tcp_connect(&c, "127.0.0.1", (uint16_t)a->port);
    if (rc < 0)
        return rc;
    weft_stream_send(c, "work\n", 5);
    weft_sleep(50 * WEFT_MSEC);
    kill(getpid(), SIGTERM);
    char buf[16];
    ssize_t n = weft_stream_recv_until(c, buf, sizeof buf, "\n", 1);
    a->answered = n == 4 && memcmp(buf, "done", 4) == 0;
    weft_stream_close(c);
    return 0;
}

static int app_main(void *arg)
{
    struct app *a = arg;
    int rc = weft_tcp_listen(&a->l, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    a->port = weft_listener_port(a->l);
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, server, a);
    weft_group_spawn(&g, on_signal, a);
    weft_sleep(20 * WEFT_MSEC); /* the receiver is open */
    weft_group_spawn(&g, client, a);
    rc = weft_group_exit(&g, 0);
    weft_listener_close(a->l);
    return rc;
}

int main(void)
{
    struct app a = {0};
    int rc = weft_run(app_main, &a, NULL);
    if (rc < 0) {
        fprintf(stderr, "signal_drain: %s\n", weft_strerror(rc));
        return 1;
    }
    printf("slow request answered: %s\n", a.answered ? "yes" : "no");
    return a.answered ? 0 : 1;
}
