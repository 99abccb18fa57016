/* SPDX-License-Identifier: MIT */
/*
 * https_hello.c - a small HTTPS server: every request, on keep-alive
 * connections, gets "hello\n".
 *
 *   example_https_hello CERT.pem KEY.pem [PORT]
 *
 * Listens on 127.0.0.1:PORT (default 0: any free port), prints
 * "listening on PORT", and serves until killed. Each connection is a task
 * that owns it: the task hands the connection to weft_tls_wrap (which
 * owns it from then on, whatever it returns) under a handshake deadline,
 * then reads request heads from the TLS stream as from any stream.
 * tls-check.sh runs it with a certificate made by `openssl req` and
 * fetches a page from it with example_tls_fetch (and curl, where it is
 * installed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>
#include <weft/tls.h>

#define HANDSHAKE (10 * WEFT_SEC) /* from the accept to the first request */
#define IDLE (60 * WEFT_SEC)      /* between two requests */

static weft_tls_config *tls;

static const char hello[] = "HTTP/1.1 200 OK\r\n"
                            "Content-Type: text/plain\r\n"
                            "Content-Length: 6\r\n"
                            "\r\n"
                            "hello\n";

/* Requests until the client closes, idles or asks to close. */
static int serve_requests(weft_stream *s)
{
    char head[8192];
    for (;;) {
        weft_scope idle;
        weft_move_on_after(&idle, IDLE);
        ssize_t n =
            weft_stream_recv_until(s, head, sizeof head - 1, "\r\n\r\n", 4);
        n = weft_scope_exit(&idle, (int)n);
        if (n <= 0) /* 0: idle or closed; -ENODATA, -EPIPE, ...: gone */
            return 0;
        head[n] = '\0';
        ssize_t w = weft_stream_send(s, hello, sizeof hello - 1);
        if (w < 0)
            return 0;
        if (strstr(head, "\r\nConnection: close") ||
            strstr(head, "\r\nconnection: close"))
            return 0;
    }
}

static int connection(void *arg)
{
    weft_stream *conn = arg, *s;
    weft_scope hs;
    weft_move_on_after(&hs, HANDSHAKE);
    int rc = weft_scope_exit(&hs, weft_tls_wrap(&s, conn, tls, NULL));
    if (rc < 0 || weft_scope_cancelled_caught(&hs)) {
        char why[200];
        weft_tls_error(why, sizeof why);
        fprintf(stderr, "handshake: %s %s\n",
                rc < 0 ? weft_strerror(rc) : "too slow", why);
        return 0; /* conn is closed already: weft_tls_wrap owned it */
    }
    serve_requests(s);
    weft_stream_send_eof(s); /* close_notify: "that was all, truly" */
    weft_stream_close(s);
    return 0;
}

static int server(void *arg)
{
    int port = *(int *)arg;
    weft_listener *l;
    int rc = weft_tcp_listen(&l, "127.0.0.1", (uint16_t)port);
    if (rc < 0)
        return rc;
    printf("listening on %d\n", weft_listener_port(l));
    fflush(stdout);
    weft_group g;
    weft_group_enter(&g);
    for (;;) {
        weft_stream *conn;
        rc = weft_listener_accept(l, &conn);
        if (rc == -EMFILE || rc == -ENFILE)
            continue;
        if (rc < 0)
            break;
        /* The task owns conn: if it cannot be started, close it here. */
        if (weft_group_spawn(&g, connection, conn) < 0)
            weft_stream_close(conn);
    }
    weft_listener_close(l);
    return weft_group_exit(&g, rc);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CERT.pem KEY.pem [PORT]\n", argv[0]);
        return 2;
    }
    int rc = weft_tls_config_server(&tls, argv[1], argv[2]);
    if (rc < 0) {
        char why[200];
        weft_tls_error(why, sizeof why);
        fprintf(stderr, "%s: %s %s\n", argv[1], weft_strerror(rc), why);
        return 1;
    }
    /* Offer HTTP/1.1 by ALPN; a client that offers none still gets in. */
    const char *protocols[] = {"http/1.1"};
    weft_tls_config_alpn(tls, protocols, 1);
    int port = argc > 3 ? atoi(argv[3]) : 0;
    rc = weft_run(server, &port, NULL);
    weft_tls_config_free(tls);
    if (rc < 0) {
        fprintf(stderr, "https_hello: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
