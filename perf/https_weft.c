/* SPDX-License-Identifier: MIT */
/*
 * perf/https_weft.c - perf/http_weft.c over TLS: the same keep-alive
 * HTTP/1.1 "hello" server (the same response, the same head parser,
 * perf/http_parse.c), with weft_tls_wrap run in each connection's task
 * under a handshake deadline. Compared with nginx (perf/nginx-tls.conf)
 * by perf/tls-bench, under wrk.
 *
 *   https_weft --cert CERT.pem --key KEY.pem [-c|--cores N] [-H host]
 *              [-p port] [-s sq] [-q cq]
 *
 * Listens on host:port (default 127.0.0.1:8443), prints "listening on
 * PORT" once ready, and serves until killed (SIGTERM/SIGINT: a drain, as
 * http_weft). -c N serves from N cores (weft_serve_cores). One
 * weft_tls_config serves every connection on every core.
 *
 * weft_listener_serve closes each connection when its handler returns,
 * and weft_tls_wrap takes ownership of the stream it wraps; the handler
 * therefore wraps a borrowed view of the connection (weft_stream_borrow:
 * its close leaves the connection open), and serve closes the connection
 * itself, after the TLS stream.
 */
#include "http_parse.h"
#include "serve_app.h"

#include <weft.h>
#include <weft/tls.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { HEAD_MAX = 8192, RESP_MAX = 256 };

/* How long a SIGTERM/SIGINT drain lets requests under way run on. */
#define DRAIN_GRACE (5 * WEFT_SEC)
/* From the accept to the end of the handshake (nginx's
 * client_header_timeout plays this part there: 60 s). */
#define HANDSHAKE_TIMEOUT (10 * WEFT_SEC)

static const char *host = "127.0.0.1";
static unsigned ncores = 1;
static int port = 8443;
static weft_tls_config *tls;

/* The responses, rebuilt when the second changes (as in http_weft):
 * [0] keeps the connection, [1] says "Connection: close" (the client
 * then knows the end of the connection is no error, as nginx says it). */
static _Thread_local char resp[2][RESP_MAX];
static _Thread_local size_t resp_len[2];
static _Thread_local time_t resp_sec = -1;

static void resp_refresh(time_t now)
{
    struct tm tm;
    char date[64];
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    for (int close = 0; close < 2; close++)
        resp_len[close] =
            (size_t)snprintf(resp[close], sizeof resp[close],
                             "HTTP/1.1 200 OK\r\n"
                             "Server: weft\r\n"
                             "Date: %s\r\n"
                             "Content-Type: text/plain\r\n"
                             "Content-Length: 6\r\n"
                             "%s"
                             "\r\n"
                             "hello\n",
                             date, close ? "Connection: close\r\n" : "");
    resp_sec = now;
}

/* The TLS stream over conn, or 0 with *out NULL when the client went
 * away or was too slow (nothing to report). */
static int handshake(weft_stream *conn, weft_stream **out)
{
    weft_stream *view;
    *out = NULL;
    int rc = weft_stream_borrow(&view, conn);
    if (rc < 0)
        return rc;
    weft_scope sc;
    weft_move_on_after(&sc, HANDSHAKE_TIMEOUT);
    rc = weft_scope_exit(&sc, weft_tls_wrap(out, view, tls, NULL));
    if (rc == -EPROTO || rc == -ECONNRESET || rc == -EPIPE ||
        rc == -EKEYREJECTED)
        rc = 0; /* a client that left or spoke no TLS: not our failure */
    return rc;
}

/* ---- HTTP over the TLS stream ---- */

static int send_static(weft_stream *s, const char *msg)
{
    ssize_t w = weft_stream_send(s, msg, strlen(msg));
    return w < 0 ? (int)w : 0;
}

static int serve_requests(weft_stream *s)
{
    char head[HEAD_MAX];
    /* The task's own copy of the response: another task may refresh the
     * shared one while this send is under way. */
    char mine[2][RESP_MAX];
    size_t mine_len[2] = {0, 0};
    time_t mine_sec = -1;
    for (;;) {
        ssize_t n = weft_stream_recv_until(s, head, sizeof head, "\r\n\r\n", 4);
        if (n == 0 || n == -ENODATA || n == -ECONNRESET || n == -EPIPE)
            return 0;
        if (n == -EMSGSIZE)
            return send_static(s, "HTTP/1.1 431 Request Header Fields Too "
                                  "Large\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n");
        if (n < 0)
            return (int)n;
        struct http_request req;
        if (http_parse_request(head, (size_t)n, &req) < 0)
            return send_static(s, "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\n"
                                  "Connection: close\r\n\r\n");
        time_t now = time(NULL);
        if (now != resp_sec)
            resp_refresh(now);
        if (mine_sec != resp_sec) {
            memcpy(mine, resp, sizeof mine);
            memcpy(mine_len, resp_len, sizeof mine_len);
            mine_sec = resp_sec;
        }
        /* Bodies are not read: a request with one ends the connection. */
        bool last = !req.keep_alive || req.content_length > 0;
        ssize_t w = weft_stream_send(s, mine[last], mine_len[last]);
        if (w == -EPIPE || w == -ECONNRESET)
            return 0;
        if (w < 0)
            return (int)w;
        if (last)
            return 0;
    }
}

static int https(weft_stream *conn, void *arg)
{
    (void)arg;
    weft_stream *s;
    int rc = handshake(conn, &s);
    if (!s)
        return rc;
    rc = serve_requests(s);
    if (rc == -EPROTO)
        rc = 0; /* a client's bad record or alert */
    /* close_notify, as nginx sends it before it closes (weft_stream_close
     * sends it too, but only if the socket takes it at once). */
    if (rc == 0)
        weft_stream_send_eof(s);
    weft_stream_close(s);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: https_weft --cert CERT.pem --key KEY.pem "
                    "[-c|--cores N] [-H host] [-p port] [-s sq] [-q cq]\n");
    return 2;
}

int main(int argc, char **argv)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    const char *cert = NULL, *key = NULL;
    int c;
    static const struct option longs[] = {{"cores", required_argument, 0, 'c'},
                                          {"cert", required_argument, 0, 'C'},
                                          {"key", required_argument, 0, 'K'},
                                          {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "c:H:p:s:q:", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            ncores = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 's':
            o.sq_entries = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'q':
            o.cq_entries = (unsigned)strtoul(optarg, NULL, 0);
            break;
        default:
            return usage();
        }
    }
    if (!cert || !key)
        return usage();
    int rc = weft_tls_config_server(&tls, cert, key);
    if (rc < 0) {
        char why[256];
        weft_tls_error(why, sizeof why);
        fprintf(stderr, "https_weft: %s, %s: %s (%s)\n", cert, key,
                weft_strerror(rc), why);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct serve_app app = {.name = "https_weft",
                            .host = host,
                            .port = port,
                            .ncores = ncores,
                            .drain_grace = DRAIN_GRACE,
                            .handler = https};
    rc = weft_run_cores(ncores, serve_app_main, &app, &o);
    weft_tls_config_free(tls);
    if (rc < 0) {
        fprintf(stderr, "https_weft: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
