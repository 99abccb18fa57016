/* SPDX-License-Identifier: MIT */
/*
 * start.c - weft_group_start: wait until a server is ready.
 *
 * The "server" task makes a pipe (its "listening socket"), reports the
 * pipe with weft_task_started, then reads requests until every writer has
 * closed. weft_group_start returns only once the server is ready, so the
 * caller can use the pipe at once. It prints:
 *
 *     server: ready
 *     client: sent 14 bytes
 *     server: read 14 bytes, no more requests
 *
 * Exits 0 when the server read everything the client sent.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

struct server {
    int fd;       /* write end of the pipe: where clients send requests */
    size_t bytes; /* bytes the server has read */
};

static int serve(void *arg)
{
    struct server *srv = arg;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno; /* weft_group_start returns this error */
    weft_stream *in;
    int rc = weft_stream_from_fd(&in, fds[0]); /* the stream owns fds[0] */
    if (rc < 0) {
        close(fds[1]);
        return rc;
    }
    srv->fd = fds[1];
    printf("server: ready\n");
    weft_task_started(srv); /* weft_group_start returns now */

    char buf[256];
    ssize_t n; /* bytes, 0 at end, or -errno */
    while ((n = weft_stream_recv(in, buf, sizeof buf)) > 0)
        srv->bytes += (size_t)n;
    weft_stream_close(in);
    if (n == 0)
        printf("server: read %zu bytes, no more requests\n", srv->bytes);
    return (int)n;
}

static int root(void *arg)
{
    static const char request[] = "hello, server\n";
    struct server srv = {.fd = -1, .bytes = 0};
    void *ready;
    weft_group g;

    weft_group_enter(&g);
    int rc = weft_group_start_named(&g, "server", serve, &srv, &ready);
    if (rc == 0) {
        struct server *s = ready; /* the value given to weft_task_started */
        /* A short write to an empty pipe never blocks the thread. */
        ssize_t n = write(s->fd, request, sizeof request - 1);
        rc = n < 0 ? -errno : 0;
        if (n > 0)
            printf("client: sent %zd bytes\n", n);
        close(s->fd); /* no more requests: the server's read returns 0 */
    }
    rc = weft_group_exit(&g, rc);
    if (rc == 0 && srv.bytes != sizeof request - 1)
        rc = -EPROTO;
    return rc;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "start: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
