/* SPDX-License-Identifier: MIT */
/*
 * net_keepalive.c - a keep-alive server with an idle timeout that serves
 * pipelined requests, and a client that tries it, in one loop.
 *
 * The server answers requests ended by an empty line ("\r\n\r\n") on one
 * connection until the client has been idle for IDLE: one scope per
 * connection whose deadline moves forward after each request. It waits
 * for the next request with weft_wait_readable only when the stream holds
 * no bytes read ahead (weft_stream_buffered): a pipelined request is
 * already in the read-ahead, and the fd will not become readable for it.
 *
 * The client sends two requests in one write, then two more 200 ms apart
 * (600 ms in all: the deadline has moved), then stays silent. It prints:
 *
 *     client: 2 pipelined requests answered
 *     client: request 3 answered after a pause
 *     client: request 4 answered after a pause
 *     server: idle, closing after 4 requests (1 found read ahead)
 *     client: the server closed the idle connection
 *
 * Exits 0 when it saw just that.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#define IDLE (500 * WEFT_MSEC) /* between two requests */
#define REQUEST (2 * WEFT_SEC) /* from a request's first byte to its end */
#define MAX_REQUEST 8192

static const char response[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";

struct stats {
    int served, read_ahead, idle_closed;
};

/* ---- the server ---- */

/* Wait until the next request has begun: at once if its bytes are read
 * ahead already, else until the fd is readable. */
static int next_request(weft_stream *conn, struct stats *st)
{
    if (weft_stream_buffered(conn) > 0) {
        st->read_ahead++;
        return 0;
    }
    return weft_wait_readable(weft_stream_fd(conn));
}

/* One request: it must end within REQUEST of its first byte. */
static int serve_request(weft_stream *conn)
{
    char req[MAX_REQUEST];
    weft_scope s;
    weft_fail_after(&s, REQUEST);
    ssize_t n = weft_stream_recv_until(conn, req, sizeof req, "\r\n\r\n", 4);
    if (n >= 0)
        n = weft_stream_send(conn, response, sizeof response - 1);
    return weft_scope_exit(&s, n < 0 ? (int)n : 0); /* -ETIMEDOUT */
}

static int keepalive(weft_stream *conn, void *arg)
{
    struct stats *st = arg;
    weft_scope idle;
    weft_scope_enter(&idle, weft_now() + IDLE);
    int rc;
    for (;;) {
        rc = next_request(conn, st);
        if (rc == 0)
            rc = serve_request(conn);
        if (rc < 0)
            break;
        st->served++;
        /* Served: the client has IDLE again from now. */
        weft_scope_set_deadline(&idle, weft_now() + IDLE);
    }
    rc = weft_scope_exit(&idle, rc); /* 0 if the idle deadline ended it */
    if (weft_scope_cancelled_caught(&idle)) {
        st->idle_closed++;
        printf("server: idle, closing after %d requests (%d found read "
               "ahead)\n",
               st->served, st->read_ahead);
    }
    return rc == -ENODATA ? 0 : rc; /* -ENODATA: the client went away */
}

static int server(void *arg)
{
    weft_listener *l;
    int rc = weft_tcp_listen(&l, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    int port = weft_listener_port(l);
    weft_task_started(&port);
    rc = weft_listener_serve(l, keepalive, arg); /* -ECANCELED */
    weft_listener_close(l);
    return rc;
}

/* ---- the client ---- */

static int read_response(weft_stream *s)
{
    char head[256], body[6];
    ssize_t n = weft_stream_recv_until(s, head, sizeof head, "\r\n\r\n", 4);
    if (n >= 0)
        n = weft_stream_recv_exactly(s, body, sizeof body);
    if (n < 0)
        return (int)n;
    return n == sizeof body && memcmp(body, "hello\n", 6) == 0 ? 0 : -EPROTO;
}

static int request(weft_stream *s, const char *what, int i)
{
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int rc = (int)weft_stream_send(s, get, sizeof get - 1);
    if (rc >= 0)
        rc = read_response(s);
    if (rc == 0)
        printf("client: request %d answered %s\n", i, what);
    return rc < 0 ? rc : 0;
}

static int talk(weft_stream *s)
{
    static const char two[] = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    int rc = (int)weft_stream_send(s, two, sizeof two - 1); /* one write */
    for (int i = 0; i < 2 && rc >= 0; i++)
        rc = read_response(s);
    if (rc < 0)
        return rc;
    printf("client: 2 pipelined requests answered\n");
    for (int i = 3; i <= 4; i++) {
        if ((rc = weft_sleep(200 * WEFT_MSEC)) < 0 ||
            (rc = request(s, "after a pause", i)) < 0)
            return rc;
    }
    /* Silent now: the server closes after IDLE (0: the end). */
    char c;
    ssize_t n = weft_stream_recv(s, &c, 1);
    if (n != 0)
        return n < 0 ? (int)n : -EPROTO;
    printf("client: the server closed the idle connection\n");
    return 0;
}

static int client(int port)
{
    weft_scope deadline;
    weft_fail_after(&deadline, 10 * WEFT_SEC); /* a guard, not a timing */
    weft_stream *s;
    int rc = weft_tcp_connect(&s, "127.0.0.1", (uint16_t)port);
    if (rc == 0) {
        rc = talk(s);
        weft_stream_close(s);
    }
    return weft_scope_exit(&deadline, rc);
}

static int root(void *arg)
{
    struct stats *st = arg;
    weft_group g;
    void *started;
    weft_group_enter(&g);
    int rc = weft_group_start(&g, server, st, &started);
    if (rc == 0) {
        rc = client(*(int *)started);
        weft_group_cancel(&g);
    }
    return weft_group_exit(&g, rc);
}

int main(void)
{
    struct stats st = {0};
    int rc = weft_run(root, &st, NULL);
    if (rc < 0) {
        fprintf(stderr, "net_keepalive: %s\n", weft_strerror(rc));
        return 1;
    }
    if (st.served != 4 || st.read_ahead != 1 || st.idle_closed != 1) {
        fprintf(stderr, "net_keepalive: served %d, read ahead %d, idle %d\n",
                st.served, st.read_ahead, st.idle_closed);
        return 1;
    }
    return 0;
}
