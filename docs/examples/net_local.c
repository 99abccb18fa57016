/* SPDX-License-Identifier: MIT */
/*
 * net_local.c - the other ways to talk, all on this machine: a name
 * resolved on the worker pool, UDP datagrams (bound, then connected), a
 * Unix socket with a file descriptor passed over it, and waiting for an
 * fd to become readable. It prints:
 *
 *     resolve: localhost is 127.0.0.1
 *     udp: "ping" from 127.0.0.1:<port>
 *     udp: "pong" on the connected socket
 *     unix: "take this" with 1 fd
 *     pipe: readable: "through the passed fd"
 *
 * (resolve prints one line per address: ::1 too where /etc/hosts says
 * so.) Exits 0 when every step saw what it expected.
 */
#define _GNU_SOURCE /* pipe2 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

/* ---- getaddrinfo on the worker pool ---- */

static int resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = weft_getaddrinfo("localhost", "7", &hints, &res);
    if (rc < 0)
        return rc; /* -ENOENT: no such name; -EAGAIN: try again */
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN];
        const void *addr =
            ai->ai_family == AF_INET6
                ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        inet_ntop(ai->ai_family, addr, text, sizeof text);
        printf("resolve: localhost is %s\n", text);
    }
    freeaddrinfo(res);
    return 0;
}

/* ---- UDP ---- */

static int udp(void)
{
    weft_udp *a, *b;
    int rc = weft_udp_open(&a, "127.0.0.1", 0); /* port 0: any free one */
    if (rc < 0)
        return rc;
    rc = weft_udp_open(&b, "127.0.0.1", 0);
    if (rc < 0) {
        weft_udp_close(a);
        return rc;
    }

    /* Bound sockets: sendto an address; recvfrom says who sent. */
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)weft_udp_port(b)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[64];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    ssize_t n =
        weft_udp_sendto(a, "ping", 4, (struct sockaddr *)&to, sizeof to);
    if (n >= 0)
        n = weft_udp_recvfrom(b, buf, sizeof buf, &from, &fromlen);
    if (n >= 0) {
        struct sockaddr_in *f = (struct sockaddr_in *)&from;
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &f->sin_addr, text, sizeof text);
        printf("udp: \"%.*s\" from %s:%d\n", (int)n, buf, text,
               ntohs(f->sin_port));

        /* Connected: b talks to a alone, no address on each send. */
        rc = weft_udp_connect(b, "127.0.0.1", ntohs(f->sin_port));
        n = rc < 0 ? rc : weft_udp_sendto(b, "pong", 4, NULL, 0);
    }
    if (n >= 0)
        n = weft_udp_recvfrom(a, buf, sizeof buf, NULL, NULL);
    if (n >= 0)
        printf("udp: \"%.*s\" on the connected socket\n", (int)n, buf);
    weft_udp_close(a);
    weft_udp_close(b);
    return n < 0 ? (int)n : 0;
}

/* ---- a Unix socket, and an fd passed over it ---- */

struct giver {
    weft_listener *l;
    int fd; /* the fd to give away */
};

/* Accept one connection and send fd over it with a message. */
static int give(void *arg)
{
    struct giver *g = arg;
    weft_stream *conn;
    int rc = weft_listener_accept(g->l, &conn);
    if (rc < 0)
        return rc;
    rc = weft_unix_send_fds(conn, "take this", 9, &g->fd, 1);
    weft_stream_close(conn);
    return rc;
}

static int unix_fds(int pipe_w, int pipe_r)
{
    char name[64];
    /* '@': an abstract socket, no file to clean up */
    snprintf(name, sizeof name, "@weft-example-%d", (int)getpid());
    struct giver gv = {.fd = pipe_w};
    int rc = weft_unix_listen(&gv.l, name);
    if (rc < 0)
        return rc;

    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, give, &gv);
    weft_stream *s = NULL;
    if (rc == 0)
        rc = weft_unix_connect(&s, name);
    char msg[32];
    int fds[4];
    size_t nfds = 0;
    ssize_t n = rc;
    if (rc == 0)
        n = weft_unix_recv_fds(s, msg, sizeof msg, fds, 4, &nfds);
    if (n > 0) {
        printf("unix: \"%.*s\" with %zu fd\n", (int)n, msg, nfds);
        /* our own copy of the pipe's write end: use it, close it */
        for (size_t i = 0; i < nfds; i++) {
            if (i == 0 && write(fds[0], "through the passed fd", 21) != 21)
                n = -EIO;
            close(fds[i]);
        }
        if (nfds != 1)
            n = -EPROTO;
    }
    if (s)
        weft_stream_close(s);
    rc = weft_group_exit(&g, n < 0 ? (int)n : 0);
    weft_listener_close(gv.l);
    if (rc < 0)
        return rc;

    /* ---- readiness: wait for the pipe, then read it ---- */
    rc = weft_wait_readable(pipe_r);
    if (rc < 0)
        return rc;
    n = read(pipe_r, msg, sizeof msg);
    if (n < 0)
        return -errno;
    printf("pipe: readable: \"%.*s\"\n", (int)n, msg);
    return 0;
}

static int root(void *arg)
{
    int rc = resolve();
    if (rc == 0)
        rc = udp();
    if (rc == 0) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return -errno;
        rc = unix_fds(p[1], p[0]);
        close(p[0]);
        close(p[1]);
    }
    return rc;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "net_local: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
