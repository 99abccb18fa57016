/* SPDX-License-Identifier: MIT */
/*
 * perf/echo_weft.c - the echo server written with weft, as a user would:
 * one task per connection (weft_listener_serve), straight-line code that
 * borrows what arrives (weft_stream_recv_borrowed), sends it back and
 * releases it. -b SIZE echoes through a SIZE-byte buffer on the task's
 * stack instead (weft_stream_recv: the way before the borrowed receive).
 * -m turns a multishot receive on for each connection
 * (weft_stream_set_multishot).
 *
 *   echo_weft [-c|--cores N] [-H host] [-p port] [-b bufsize] [-s sq]
 *             [-q cq] [-k stack] [-m]
 *
 * Listens on host:port (default 127.0.0.1:7000), prints "listening on
 * PORT" once ready, and serves until killed. -s/-c/-k set weft_options'
 * sq_entries, cq_entries and stack_size (0 = weft's defaults). -c N
 * serves from N cores (weft_run_cores, weft_serve_cores: one SO_REUSEPORT
 * listener per core; default 1, one loop and one listener).
 * Compared with echo_epoll and echo_uring by perf/net-bench.
 */
#include <weft.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { BUF_MAX = 16384 };

static const char *host = "127.0.0.1";
static unsigned ncores = 1;
static int port = 7000;
static size_t bufsize = 0; /* -b: echo_copy with a buffer this size */
static bool multishot;     /* -m: weft_stream_set_multishot on each */

/* Echo what comes, as it comes: the kernel picks the buffer when data
 * arrives, so a connection waiting for data holds none. */
static int echo(weft_stream *s, void *arg)
{
    (void)arg;
    if (multishot) /* -ENOTSUP (epoll, old kernels): one-shot receives */
        (void)weft_stream_set_multishot(s, true);
    for (;;) {
        const void *data;
        ssize_t n = weft_stream_recv_borrowed(s, &data);
        if (n == 0 || n == -ECONNRESET)
            return 0; /* the peer is done */
        if (n < 0)
            return (int)n;
        ssize_t w = weft_stream_send(s, data, (size_t)n);
        weft_stream_release(s);
        if (w == -EPIPE || w == -ECONNRESET)
            return 0;
        if (w < 0)
            return (int)w;
    }
}

/* -b: the same into a buffer on the task's stack (weft_stream_recv), as
 * before the borrowed receive; for comparison. */
static int echo_copy(weft_stream *s, void *arg)
{
    (void)arg;
    char buf[BUF_MAX];
    for (;;) {
        ssize_t n = weft_stream_recv(s, buf, bufsize);
        if (n == 0 || n == -ECONNRESET)
            return 0; /* the peer is done */
        if (n < 0)
            return (int)n;
        ssize_t w = weft_stream_send(s, buf, (size_t)n);
        if (w == -EPIPE || w == -ECONNRESET)
            return 0;
        if (w < 0)
            return (int)w;
    }
}

static int (*handler)(weft_stream *, void *) = echo;

static void ready(int bound, bool steered, void *arg)
{
    (void)arg;
    printf("listening on %d (%u cores, %s)\n", bound, weft_core_count(),
           steered ? "steered by CPU" : "spread by hash");
    fflush(stdout);
}

static int serve(void *arg)
{
    (void)arg;
    if (ncores > 1) {
        /* One SO_REUSEPORT listener per core, each serving on its loop. */
        weft_serve_cores_opts so = {.on_ready = ready};
        int rc = weft_serve_cores(host, (uint16_t)port, handler, NULL, &so);
        if (rc < 0)
            fprintf(stderr, "echo_weft: serve on %s:%d: %s\n", host, port,
                    weft_strerror(rc));
        return rc;
    }
    weft_listener *l;
    int rc = weft_tcp_listen(&l, host, (uint16_t)port);
    if (rc < 0) {
        fprintf(stderr, "echo_weft: listen on %s:%d: %s\n", host, port,
                weft_strerror(rc));
        return rc;
    }
    printf("listening on %d\n", weft_listener_port(l));
    fflush(stdout);
    rc = weft_listener_serve(l, handler, NULL);
    weft_listener_close(l);
    return rc;
}

/* Many idle connections (perf/idle-rss) need more fds than the usual
 * soft limit. */
static void raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

int main(int argc, char **argv)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    int c;
    static const struct option longs[] = {{"cores", required_argument, 0, 'c'},
                                          {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "c:H:p:b:s:q:k:m", longs, NULL)) !=
           -1) {
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
        case 'b':
            bufsize = strtoul(optarg, NULL, 0);
            break;
        case 's':
            o.sq_entries = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'q':
            o.cq_entries = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'k':
            o.stack_size = strtoul(optarg, NULL, 0);
            break;
        case 'm':
            multishot = true;
            break;
        default:
            fprintf(stderr, "usage: echo_weft [-c|--cores N] [-H host] "
                            "[-p port] [-b bufsize] [-s sq] [-q cq] "
                            "[-k stack] [-m]\n");
            return 2;
        }
    }
    if (bufsize > BUF_MAX)
        bufsize = BUF_MAX;
    if (bufsize)
        handler = echo_copy;
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    int rc = weft_run_cores(ncores, serve, NULL, &o);
    if (rc < 0) {
        fprintf(stderr, "echo_weft: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
