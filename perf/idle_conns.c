/* SPDX-License-Identifier: MIT */
/*
 * perf/idle_conns.c - what an idle connection costs a server: open N
 * connections, echo 64 bytes once on each (so that each has a task that
 * ran and now waits in a recv), then hold them all open until stdin
 * closes. perf/idle-rss reads the server's VmRSS meanwhile.
 *
 *   idle_conns [-H host] -p port -n conns
 *
 * Prints "held N" on stdout once every connection has had its echo.
 * Raises its soft fd limit to the hard one (15,000 connections need more
 * than the usual 1024).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* Read exactly n bytes, or fail. */
static int read_all(int fd, char *p, size_t n)
{
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int echo_once(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    char msg[64], back[64];
    memset(msg, 'x', sizeof msg);
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 ||
        write(fd, msg, sizeof msg) != (ssize_t)sizeof msg ||
        read_all(fd, back, sizeof back) != 0 ||
        memcmp(msg, back, sizeof msg) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, n = 0, c;
    while ((c = getopt(argc, argv, "H:p:n:")) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'n':
            n = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: idle_conns [-H host] -p port -n conns\n");
            return 2;
        }
    }
    if (port <= 0 || n < 0) {
        fprintf(stderr, "usage: idle_conns [-H host] -p port -n conns\n");
        return 2;
    }
    raise_fd_limit();
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "idle_conns: bad host %s\n", host);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        if (echo_once(&sa) < 0) {
            fprintf(stderr, "idle_conns: connection %d: %s\n", i,
                    strerror(errno));
            return 1;
        }
    }
    printf("held %d\n", n);
    fflush(stdout);
    char b;
    while (read(0, &b, 1) > 0)
        ; /* hold until stdin closes */
    return 0;
}
