/* SPDX-License-Identifier: MIT */
/*
 * perf/net_sendzc.c - does IORING_OP_SEND_ZC pay for large sends? One
 * weft task sends SIZE-byte buffers over loopback TCP to a sink task, with
 * IORING_OP_SEND or IORING_OP_SEND_ZC through weft_uring_await, and
 * prints the throughput of each, side by side.
 *
 *   net_sendzc [SIZE ...]        (default: 16384 65536 1048576; 4 GiB each)
 *
 * Raw ring operations are io_uring's only: on the epoll backend
 * (WEFT_BACKEND=epoll) it says so on stderr and exits 0, measuring
 * nothing.
 */
#include <weft.h>
#include <weft/uring.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t size;
static long count;
static int zero_copy;
static weft_listener *listener;

static int sink(void *arg)
{
    (void)arg;
    weft_stream *c;
    if (weft_listener_accept(listener, &c) < 0)
        return -1;
    static char buf[1 << 20];
    while (weft_stream_recv(c, buf, sizeof buf) > 0)
        ;
    return weft_stream_close(c);
}

static int send_all(int fd, const char *buf)
{
    for (size_t off = 0; off < size;) {
        struct io_uring_sqe *sqe = weft_uring_sqe();
        if (!sqe)
            return -ENOTSUP; /* the epoll backend: no ring */
        if (zero_copy)
            io_uring_prep_send_zc(sqe, fd, buf + off, size - off, MSG_NOSIGNAL,
                                  0);
        else
            io_uring_prep_send(sqe, fd, buf + off, size - off, MSG_NOSIGNAL);
        int r = weft_uring_await(sqe);
        if (r <= 0)
            return r < 0 ? r : -1;
        off += (size_t)r;
    }
    return 0;
}

static int run(void *arg)
{
    (void)arg;
    if (strcmp(weft_backend_name(), "io_uring") != 0)
        return -ENOTSUP; /* weft_uring_sqe() would return NULL */
    int rc = weft_tcp_listen(&listener, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, sink, NULL);
    weft_stream *s;
    rc = weft_tcp_connect(&s, "127.0.0.1",
                          (uint16_t)weft_listener_port(listener));
    char *buf = malloc(size);
    if (rc == 0 && buf) {
        memset(buf, 'x', size);
        weft_time t0 = weft_now();
        for (long i = 0; i < count && rc == 0; i++)
            rc = send_all(weft_stream_fd(s), buf);
        double secs = (double)(weft_now() - t0) / WEFT_SEC;
        printf("%-8s %8zu B: %6.2f GB/s\n", zero_copy ? "SEND_ZC" : "SEND",
               size, (double)size * (double)count / secs / 1e9);
        weft_stream_send_eof(s);
    }
    rc = weft_group_exit(&g, rc);
    if (s)
        weft_stream_close(s);
    weft_listener_close(listener);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {16384, 65536, 1048576};
    int n = argc > 1 ? argc - 1 : 3;
    for (int i = 0; i < n; i++) {
        size = argc > 1 ? strtoul(argv[i + 1], NULL, 0) : sizes[i];
        if (!size)
            return 2;
        count = (4L << 30) / (long)size;
        for (zero_copy = 0; zero_copy < 2; zero_copy++) {
            int rc = weft_run(run, NULL, NULL);
            if (rc == -ENOTSUP && weft_backend_name()) {
                fprintf(stderr,
                        "net_sendzc: IORING_OP_SEND and SEND_ZC need the "
                        "io_uring backend, and the loop ran on %s: "
                        "nothing measured\n",
                        weft_backend_name());
                return 0;
            }
            if (rc < 0)
                return 1;
        }
    }
    return 0;
}
