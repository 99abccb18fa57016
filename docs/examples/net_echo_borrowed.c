/* SPDX-License-Identifier: MIT */
/*
 * net_echo_borrowed.c - a byte echo server whose connections hold no
 * receive buffer while they wait: weft_stream_recv_borrowed lets the
 * kernel pick a buffer of the loop's ring when data arrives, the handler
 * sends those bytes back and releases them. A client in the same loop
 * sends three messages and checks each comes back. It prints:
 *
 *     server: listening on port <n>
 *     client: 5 bytes back
 *     client: 16384 bytes back
 *     client: 1 bytes back
 *     server: stopped
 *
 * Exits 0 when every byte came back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

/* One connection: what comes in goes back out, as it comes. */
static int echo(weft_stream *conn, void *arg)
{
    (void)arg;
    /* One receive armed for the connection's life, not one per message
     * (-ENOTSUP on the epoll backend or an old kernel: as before). */
    (void)weft_stream_set_multishot(conn, true);
    for (;;) {
        const void *data;
        ssize_t n = weft_stream_recv_borrowed(conn, &data);
        if (n <= 0)
            return (int)n; /* 0: the peer is done */
        ssize_t sent = weft_stream_send(conn, data, (size_t)n);
        weft_stream_release(conn); /* the buffer goes back to the ring */
        if (sent < 0)
            return (int)sent;
    }
}

static int server(void *arg)
{
    (void)arg;
    weft_listener *l;
    int rc = weft_tcp_listen(&l, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    int port = weft_listener_port(l);
    printf("server: listening on port %d\n", port);
    weft_task_started(&port);
    rc = weft_listener_serve(l, echo, NULL); /* -ECANCELED */
    weft_listener_close(l);
    printf("server: stopped\n");
    return rc;
}

/* Send n bytes and read them back with recv_exactly. */
static int round_trip(weft_stream *s, size_t n)
{
    char *out = malloc(n), *back = malloc(n);
    int rc = out && back ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        out[i] = (char)('a' + i % 26);
    if (rc == 0)
        rc = (int)weft_stream_send(s, out, n);
    if (rc >= 0)
        rc = (int)weft_stream_recv_exactly(s, back, n);
    if (rc >= 0)
        rc = memcmp(out, back, n) == 0 ? 0 : -EPROTO;
    if (rc == 0)
        printf("client: %zu bytes back\n", n);
    free(out);
    free(back);
    return rc;
}

static int client(uint16_t port)
{
    static const size_t sizes[] = {5, 16384, 1};
    weft_scope deadline;
    weft_fail_after(&deadline, 5 * WEFT_SEC);
    weft_stream *s;
    int rc = weft_tcp_connect(&s, "127.0.0.1", port);
    if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < 3; i++)
            rc = round_trip(s, sizes[i]);
        weft_stream_close(s);
    }
    return weft_scope_exit(&deadline, rc);
}

static int root(void *arg)
{
    (void)arg;
    weft_group g;
    void *started;
    weft_group_enter(&g);
    int rc = weft_group_start(&g, server, NULL, &started);
    if (rc == 0) {
        rc = client((uint16_t) * (int *)started);
        weft_group_cancel(&g);
    }
    return weft_group_exit(&g, rc);
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "net_echo_borrowed: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
