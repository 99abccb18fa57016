/* SPDX-License-Identifier: MIT */
/*
 * perf/http_weft.c - a minimal keep-alive HTTP/1.1 "hello" server written
 * with weft: one task per connection reads each request's head with
 * weft_stream_recv_until("\r\n\r\n") and sends a fixed response with a
 * Content-Length (and a Date, as an origin server must send; it changes
 * once a second). The head is parsed by perf/http_parse.c: a malformed
 * one gets 400; bodies are not read, so a request with a body, like
 * "Connection: close" (or HTTP/1.0 without keep-alive), ends the
 * connection after the response. Compared with nginx's
 * `return 200 "hello\n"` by perf/net-bench, under wrk.
 *
 *   http_weft [-c|--cores N] [-H host] [-p port] [-s sq] [-q cq]
 *
 * Listens on host:port (default 127.0.0.1:8080), prints "listening on
 * PORT" once ready, and serves until killed. -c N serves from N cores
 * (weft_run_cores, weft_serve_cores: one SO_REUSEPORT listener per core;
 * default 1).
 */
#include "http_parse.h"
#include "serve_app.h"

#include <weft.h>

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

static const char *host = "127.0.0.1";
static unsigned ncores = 1;
static int port = 8080;

/* The response, rebuilt when the second changes; gen says which one.
 * One per core's thread (-c N): no core writes what another reads. */
static _Thread_local char resp[RESP_MAX];
static _Thread_local size_t resp_len;
static _Thread_local time_t resp_sec = -1;

static void resp_refresh(time_t now)
{
    struct tm tm;
    char date[64];
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    resp_len = (size_t)snprintf(resp, sizeof resp,
                                "HTTP/1.1 200 OK\r\n"
                                "Server: weft\r\n"
                                "Date: %s\r\n"
                                "Content-Type: text/plain\r\n"
                                "Content-Length: 6\r\n"
                                "\r\n"
                                "hello\n",
                                date);
    resp_sec = now;
}

static int http(weft_stream *s, void *arg)
{
    (void)arg;
    char head[HEAD_MAX];
    /* The task's own copy: the kernel may still read it while another
     * task refreshes the shared one. */
    char mine[RESP_MAX];
    size_t mine_len = 0;
    time_t mine_sec = -1;
    for (;;) {
        ssize_t n = weft_stream_recv_until(s, head, sizeof head, "\r\n\r\n", 4);
        if (n == 0 || n == -ENODATA || n == -ECONNRESET)
            return 0;
        if (n == -EMSGSIZE) {
            static const char too_big[] =
                "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n";
            weft_stream_send(s, too_big, sizeof too_big - 1);
            return 0;
        }
        if (n < 0)
            return (int)n;
        struct http_request req;
        if (http_parse_request(head, (size_t)n, &req) < 0) {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
                                      "Content-Length: 0\r\n"
                                      "Connection: close\r\n\r\n";
            weft_stream_send(s, bad, sizeof bad - 1);
            return 0;
        }
        time_t now = time(NULL);
        if (now != resp_sec)
            resp_refresh(now);
        if (mine_sec != resp_sec) {
            memcpy(mine, resp, resp_len);
            mine_len = resp_len;
            mine_sec = resp_sec;
        }
        ssize_t w = weft_stream_send(s, mine, mine_len);
        if (w == -EPIPE || w == -ECONNRESET)
            return 0;
        if (w < 0)
            return (int)w;
        /* Bodies are not read: a request with one ends the connection. */
        if (!req.keep_alive || req.content_length > 0)
            return 0;
    }
}

int main(int argc, char **argv)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    int c;
    static const struct option longs[] = {{"cores", required_argument, 0, 'c'},
                                          {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "c:H:p:s:q:", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            ncores = (unsigned)strtoul(optarg, NULL, 0);
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
            fprintf(stderr,
                    "usage: http_weft [-c|--cores N] [-H host] [-p port] "
                    "[-s sq] [-q cq]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct serve_app app = {.name = "http_weft",
                            .host = host,
                            .port = port,
                            .ncores = ncores,
                            .drain_grace = DRAIN_GRACE,
                            .handler = http};
    int rc = weft_run_cores(ncores, serve_app_main, &app, &o);
    if (rc < 0) {
        fprintf(stderr, "http_weft: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
