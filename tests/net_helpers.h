/* SPDX-License-Identifier: MIT */
/*
 * tests/net_helpers.h - what test_stream.c and test_net.c share: counting
 * the process's file descriptors around every test (no test may leak
 * one), a connected TCP pair over loopback, test patterns, and small raw
 * socket helpers.
 *
 * Include it after helpers.h.
 */
#ifndef WEFT_TESTS_NET_HELPERS_H
#define WEFT_TESTS_NET_HELPERS_H

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <weft/net.h>
#include <weft/stream.h>

/* ---- file descriptors: none may leak ---- */

#define NH_MAX_FD 65536

/* The open fds of the process, as a bitmap; returns how many. */
static TH_UNUSED int nh_fd_snapshot(unsigned char *map)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (!d)
        return -1;
    if (map)
        memset(map, 0, NH_MAX_FD / 8);
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self)
            continue;
        if (map && fd < NH_MAX_FD)
            map[fd / 8] |= (unsigned char)(1u << (fd % 8));
        n++;
    }
    closedir(d);
    return n;
}

static TH_UNUSED int nh_fd_count(void)
{
    return nh_fd_snapshot(NULL);
}

static unsigned char nh_fds_before[NH_MAX_FD / 8];
static int nh_nfds_before;

/* cmocka setup: remember the open fds. */
static TH_UNUSED int nh_fd_setup(void **state)
{
    (void)state;
    nh_nfds_before = nh_fd_snapshot(nh_fds_before);
    return nh_nfds_before < 0 ? -1 : 0;
}

/* cmocka teardown: fail the test if an fd it opened is still open (a
 * closed socket may take a moment to leave the table: poll a little). */
static TH_UNUSED int nh_fd_teardown(void **state)
{
    static unsigned char now[NH_MAX_FD / 8];
    (void)state;
    for (int tries = 0; tries < 50; tries++) {
        nh_fd_snapshot(now);
        bool leak = false;
        for (int i = 0; i < NH_MAX_FD / 8; i++)
            if (now[i] & ~nh_fds_before[i])
                leak = true;
        if (!leak)
            return 0;
        usleep(10000);
    }
    for (int fd = 0; fd < NH_MAX_FD; fd++) {
        if (!(now[fd / 8] & (1u << (fd % 8))) ||
            (nh_fds_before[fd / 8] & (1u << (fd % 8))))
            continue;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        print_error("leaked fd %d -> %s\n", fd, target);
    }
    return -1;
}

#define NET_TEST(f)                                                            \
    cmocka_unit_test_setup_teardown(f, nh_fd_setup, nh_fd_teardown)

/* ---- patterns ---- */

static TH_UNUSED unsigned char nh_pattern_byte(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

static TH_UNUSED unsigned char *nh_pattern(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = nh_pattern_byte(i);
    return p;
}

/* ---- streams ---- */

/* In a task: a connected TCP pair over loopback (host "127.0.0.1" or
 * "::1"): *client from weft_tcp_connect, *server from the accept. */
static TH_UNUSED int nh_tcp_pair(const char *host, weft_stream **client,
                                 weft_stream **server)
{
    weft_listener *l;
    *client = *server = NULL;
    int rc = weft_tcp_listen(&l, host, 0);
    if (!CHECK_EQ(rc, 0))
        return rc;
    int port = weft_listener_port(l);
    CHECK_GT(port, 0);
    rc = weft_tcp_connect(client, host, (uint16_t)port);
    if (CHECK_EQ(rc, 0)) {
        rc = weft_listener_accept(l, server);
        if (!CHECK_EQ(rc, 0)) {
            weft_stream_close(*client);
            *client = NULL;
        }
    }
    CHECK_EQ(weft_listener_close(l), 0);
    return rc;
}

/* Send all of buf through the stream; a CHECK says what failed. */
static TH_UNUSED bool nh_send_str(weft_stream *s, const char *str)
{
    size_t n = strlen(str);
    return CHECK_EQ(weft_stream_send(s, str, n), (ssize_t)n);
}

/* Receive exactly strlen(expect) bytes and compare. */
static TH_UNUSED bool nh_expect(weft_stream *s, const char *expect)
{
    char buf[256];
    size_t n = strlen(expect);
    if (n >= sizeof buf)
        return th_fail_at(__FILE__, __LINE__, "nh_expect: too long");
    memset(buf, 0, sizeof buf);
    if (!CHECK_EQ(weft_stream_recv_exactly(s, buf, n), (ssize_t)n))
        return false;
    return CHECK_STR_EQ(buf, expect);
}

/* ---- raw sockets ---- */

static TH_UNUSED void nh_loopback4(struct sockaddr_in *sin, uint16_t port)
{
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static TH_UNUSED void nh_loopback6(struct sockaddr_in6 *sin6, uint16_t port)
{
    memset(sin6, 0, sizeof *sin6);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = in6addr_loopback;
}

/* Does this machine have a working ::1? */
static TH_UNUSED bool nh_have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a;
    nh_loopback6(&a, 0);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Make sure RLIMIT_NOFILE's soft limit is at least n; false if it cannot
 * be. */
static TH_UNUSED bool nh_raise_nofile(rlim_t n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return false;
    if (rl.rlim_cur >= n)
        return true;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        rl.rlim_max = n; /* needs CAP_SYS_RESOURCE */
    rl.rlim_cur = n;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

#endif
