/* SPDX-License-Identifier: MIT */
/*
 * net_echo.c - the echo server of net_echo_server.c and the client of
 * net_echo_client.c in one loop: the server listens on a free port (port
 * 0, every address), reports the port with weft_task_started, and the
 * client talks to it through "localhost". Then the server is cancelled.
 * It prints:
 *
 *     server: listening on port <n>
 *     client: hello
 *     client: structured
 *     client: concurrency
 *     server: stopped
 *
 * Exits 0 when every line came back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#define MAX_LINE 1024

/* ---- the server's side, as in net_echo_server.c ---- */

static int echo_lines(weft_stream *conn, void *arg)
{
    char line[MAX_LINE + 1];
    for (;;) {
        weft_scope idle;
        weft_fail_after(&idle, 30 * WEFT_SEC);
        ssize_t n = weft_stream_recv_until(conn, line, MAX_LINE, "\n", 1);
        n = weft_scope_exit(&idle, (int)n);
        if (n == -ENODATA)
            return 0; /* the end of the stream (a cut-off line is dropped) */
        if (n == 0)
            return 0; /* an empty line: bye */
        if (n < 0)
            return (int)n;
        line[n++] = '\n';
        ssize_t sent = weft_stream_send(conn, line, (size_t)n);
        if (sent < 0)
            return (int)sent;
    }
}

/* Listen, say on which port, serve until cancelled. */
static int server(void *arg)
{
    weft_listener *l;
    int rc = weft_tcp_listen(&l, NULL, 0); /* every address, any port */
    if (rc < 0)
        return rc; /* weft_group_start returns this error */
    int port = weft_listener_port(l);
    printf("server: listening on port %d\n", port);
    weft_task_started(&port); /* weft_group_start returns now */

    rc = weft_listener_serve(l, echo_lines, NULL); /* -ECANCELED */
    weft_listener_close(l);
    printf("server: stopped\n");
    return rc;
}

/* ---- the client's side, as in net_echo_client.c ---- */

static int talk(weft_stream *s, const char *const *lines, int nlines)
{
    char reply[MAX_LINE + 1];
    for (int i = 0; i < nlines; i++) {
        size_t len = strlen(lines[i]);
        ssize_t rc = weft_stream_send(s, lines[i], len);
        if (rc >= 0)
            rc = weft_stream_send(s, "\n", 1);
        if (rc < 0)
            return (int)rc;
        ssize_t n = weft_stream_recv_until(s, reply, MAX_LINE, "\n", 1);
        if (n < 0)
            return (int)n;
        if ((size_t)n != len || memcmp(reply, lines[i], len) != 0)
            return -EPROTO;
        printf("client: %.*s\n", (int)n, reply);
    }
    int rc = weft_stream_send_eof(s);
    if (rc < 0)
        return rc;
    char c;
    ssize_t n = weft_stream_recv(s, &c, 1);
    return n == 0 ? 0 : (n < 0 ? (int)n : -EPROTO);
}

static int client(uint16_t port)
{
    static const char *const lines[] = {"hello", "structured", "concurrency"};
    weft_scope deadline;
    weft_fail_after(&deadline, 5 * WEFT_SEC);
    weft_stream *s;
    int rc = weft_tcp_connect(&s, "localhost", port);
    if (rc == 0) {
        rc = talk(s, lines, 3);
        weft_stream_close(s);
    }
    return weft_scope_exit(&deadline, rc);
}

/* ---- both in one loop ---- */

static int root(void *arg)
{
    weft_group g;
    void *started;
    weft_group_enter(&g);
    int rc = weft_group_start(&g, server, NULL, &started);
    if (rc == 0) {
        int port = *(int *)started; /* on the server's stack, alive */
        rc = client((uint16_t)port);
        weft_group_cancel(&g); /* stop the server: serve returns */
    }
    return weft_group_exit(&g, rc);
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "net_echo: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
