/* SPDX-License-Identifier: MIT */
/*
 * perf/echo_epoll.c - the baseline a competent person writes by hand: one
 * thread, non-blocking sockets, level-triggered epoll, one read then one
 * write per readiness. A write that does not take everything parks the
 * rest and waits for EPOLLOUT (reading stops until it is sent).
 *
 *   echo_epoll [-H host] [-p port] [-b bufsize]
 *
 * Listens on host:port (default 127.0.0.1:7001), prints "listening on
 * PORT" once ready, and serves until killed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUF_MAX = 16384, MAX_EVENTS = 512 };

struct conn {
    int fd;
    size_t off, len; /* bytes of buf still to write */
    char buf[BUF_MAX];
};

static int ep;
static size_t bufsize = BUF_MAX;

static void conn_close(struct conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c);
}

static void want(struct conn *c, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is parked; false if the connection is gone. */
static int flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->off += (size_t)w;
    }
    return 1;
}

static void on_readable(struct conn *c)
{
    ssize_t n = read(c->fd, c->buf, bufsize);
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN)
            conn_close(c);
        return;
    }
    c->off = 0;
    c->len = (size_t)n;
    int rc = flush(c);
    if (rc < 0)
        conn_close(c);
    else if (rc == 0)
        want(c, EPOLLOUT);
}

static void on_writable(struct conn *c)
{
    int rc = flush(c);
    if (rc < 0)
        conn_close(c);
    else if (rc > 0)
        want(c, EPOLLIN);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of fds: try at the next readiness */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->off = c->len = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            conn_close(c);
    }
}

static int listen_on(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_epoll: %s is not an IPv4 address\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        perror("echo_epoll: bind/listen");
        return -1;
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    printf("listening on %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7001, c;
    while ((c = getopt(argc, argv, "H:p:b:")) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'b':
            bufsize = strtoul(optarg, NULL, 0);
            break;
        default:
            fprintf(stderr, "usage: echo_epoll [-H host] [-p port] "
                            "[-b bufsize]\n");
            return 2;
        }
    }
    if (bufsize == 0 || bufsize > BUF_MAX)
        bufsize = BUF_MAX;
    signal(SIGPIPE, SIG_IGN);
    int lfd = listen_on(host, port);
    if (lfd < 0)
        return 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("echo_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *cn = evs[i].data.ptr;
            if (!cn)
                on_accept(lfd);
            else if (evs[i].events & EPOLLOUT)
                on_writable(cn);
            else
                on_readable(cn); /* EPOLLIN, or EPOLLERR/HUP: read says */
        }
    }
}
