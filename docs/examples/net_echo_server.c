/* SPDX-License-Identifier: MIT */
/*
 * net_echo_server.c - a line echo server: every line a client sends comes
 * back to it.
 *
 *     example_net_echo_server [port]        (default 7007)
 *
 * It listens on every address, IPv4 and IPv6 (weft_tcp_listen with a NULL
 * host), and serves each connection in its own task
 * (weft_listener_serve). A connection is closed when the client ends its
 * stream, after 30 s of silence, or when a line is longer than 1 KiB.
 * Stop it with Ctrl-C. Talk to it with example_net_echo_client, or with
 * `nc localhost 7007`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#define MAX_LINE 1024

/* One connection: lines in, the same lines out. weft_listener_serve runs
 * this in a task of its own and closes conn when it returns. */
static int echo_lines(weft_stream *conn, void *arg)
{
    char line[MAX_LINE + 1];
    for (;;) {
        /* Each line must arrive within 30 s. */
        weft_scope idle;
        weft_fail_after(&idle, 30 * WEFT_SEC);
        ssize_t n = weft_stream_recv_until(conn, line, MAX_LINE, "\n", 1);
        n = weft_scope_exit(&idle, (int)n);
        if (n == -ENODATA)
            return 0; /* the end of the stream (a cut-off line is dropped) */
        if (n == 0)
            return 0; /* an empty line: bye */
        if (n < 0)
            return (int)n; /* -ETIMEDOUT, -EMSGSIZE, -ECONNRESET, ... */
        line[n++] = '\n';
        ssize_t sent = weft_stream_send(conn, line, (size_t)n);
        if (sent < 0)
            return (int)sent;
    }
}

/* A failed connection is the client's problem, not the server's: say
 * which client (numeric getnameinfo never blocks). */
static void log_error(int rc, const struct sockaddr *peer, socklen_t peer_len,
                      void *arg)
{
    char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
    if (peer)
        getnameinfo(peer, peer_len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    fprintf(stderr, "echo: the connection from %s port %s ended with %s\n",
            host, port, weft_strerror(rc));
}

static int server(void *arg)
{
    uint16_t port = *(uint16_t *)arg;
    weft_listener *l;
    int rc = weft_tcp_listen(&l, NULL, port);
    if (rc < 0)
        return rc;
    printf("echo: listening on port %d\n", weft_listener_port(l));
    fflush(stdout);

    weft_serve_opts opts = {.on_error = log_error};
    rc = weft_listener_serve_opts(l, echo_lines, NULL, &opts);
    weft_listener_close(l); /* serve returns only if cancelled or broken */
    return rc;
}

int main(int argc, char **argv)
{
    uint16_t port = argc > 1 ? (uint16_t)atoi(argv[1]) : 7007;
    int rc = weft_run(server, &port, NULL);
    fprintf(stderr, "echo: %s\n", weft_strerror(rc));
    return 1;
}
