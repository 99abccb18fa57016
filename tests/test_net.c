/* SPDX-License-Identifier: MIT */
/*
 * tests/test_net.c - networking (API.md "Networking", weft/net.h) over
 * loopback and Unix sockets only: TCP connect and listen on both
 * families, Happy Eyeballs, deadlines on connect, refused and reset
 * connections, Unix sockets by path and abstract, fd passing, UDP,
 * readiness waits, getaddrinfo on the worker pool (also cancelled while
 * it waits for a worker token), and listeners under load: serve with
 * 1,000 connections, out of fds (EMFILE) and back, a failing handler,
 * cancellation, and closing a listener under an accept.
 *
 * Tests that need localhost to resolve to ::1 as well as 127.0.0.1 run in
 * a child with its own mount namespace and /etc/hosts (root only; they
 * skip elsewhere). No test may leak a file descriptor.
 */
#include "helpers.h"
#include "net_helpers.h"

#include <net/if.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mount.h>

#if TH_ASAN
#include <sanitizer/lsan_interface.h>
#endif

/* ---- small helpers ---- */

/* The handler every echo server here runs: echo until end of stream. */
static int echo_handler(weft_stream *conn, void *arg)
{
    char buf[4096];
    for (;;) {
        ssize_t r = weft_stream_recv(conn, buf, sizeof buf);
        if (r <= 0)
            return (int)r;
        ssize_t w = weft_stream_send(conn, buf, (size_t)r);
        if (w < 0)
            return (int)w;
    }
}

/* The address family of a stream's peer (getpeername), or -errno. */
static int peer_family(weft_stream *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(weft_stream_fd(s), (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return ss.ss_family;
}

static int local_family(weft_stream *s)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(weft_stream_fd(s), (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return ss.ss_family;
}

/* One message there and back over a connected pair. */
static void ping_pong(weft_stream *client, weft_stream *server)
{
    nh_send_str(client, "ping");
    nh_expect(server, "ping");
    nh_send_str(server, "pong");
    nh_expect(client, "pong");
}

/* A port on host (AF_INET or AF_INET6 loopback) that nobody listens on:
 * a socket bound to it and kept, so that no one else takes it. */
static int refusing_port(int family, int *keep)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    if (fd < 0)
        return -errno;
    if (family == AF_INET6) {
        nh_loopback6((struct sockaddr_in6 *)&ss, 0);
        len = sizeof(struct sockaddr_in6);
    } else {
        nh_loopback4((struct sockaddr_in *)&ss, 0);
        len = sizeof(struct sockaddr_in);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *keep = fd;
    return ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                    : ((struct sockaddr_in *)&ss)->sin_port);
}

/*
 * Fill the accept queue of a listener (made with backlog 1 and never
 * accepted from) with raw connections, until a connection's SYN is
 * dropped. Returns how many connected, with their fds in fds[]; -1 if
 * the queue never filled.
 */
#define MAX_FILL 16

static int fill_backlog(int family, uint16_t port, int *fds)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (family == AF_INET6) {
        nh_loopback6((struct sockaddr_in6 *)&ss, port);
        len = sizeof(struct sockaddr_in6);
    } else {
        nh_loopback4((struct sockaddr_in *)&ss, port);
        len = sizeof(struct sockaddr_in);
    }
    for (int n = 0; n < MAX_FILL; n++) {
        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&ss, len) < 0 &&
            errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 200) == 0) {
            close(fd); /* its SYN was dropped: the queue is full */
            return n;
        }
        int err = 0;
        socklen_t elen = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err) {
            close(fd);
            return -1;
        }
        fds[n] = fd;
    }
    for (int i = 0; i < MAX_FILL; i++)
        close(fds[i]);
    return -1;
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* Accept with a hang guard of 5 s: -ETIMEDOUT instead of hanging. */
static int accept_within(weft_listener *l, weft_stream **out)
{
    weft_scope s;
    weft_fail_after(&s, 5 * WEFT_SEC);
    return weft_scope_exit(&s, weft_listener_accept(l, out));
}

/* ---- TCP basics ---- */

static void tcp_pair_on(const char *host)
{
    weft_stream *c, *s;
    if (nh_tcp_pair(host, &c, &s) < 0)
        return;
    ping_pong(c, s);
    /* TCP_NODELAY is on, on both ends */
    int on = 0;
    socklen_t len = sizeof on;
    CHECK_EQ(getsockopt(weft_stream_fd(c), IPPROTO_TCP, TCP_NODELAY, &on, &len),
             0);
    CHECK_EQ(on, 1);
    on = 0;
    CHECK_EQ(getsockopt(weft_stream_fd(s), IPPROTO_TCP, TCP_NODELAY, &on, &len),
             0);
    CHECK_EQ(on, 1);
    CHECK_EQ(weft_stream_close(c), 0);
    CHECK_EQ(weft_stream_close(s), 0);
}

static int tcp_ipv4_main(void *arg)
{
    tcp_pair_on("127.0.0.1");
    return 0;
}

static int tcp_ipv6_main(void *arg)
{
    tcp_pair_on("::1");
    return 0;
}

static void test_net_tcp_connect_ipv4(void **state)
{
    run_in_loop(tcp_ipv4_main, NULL);
}

static void test_net_tcp_connect_ipv6(void **state)
{
    if (!nh_have_ipv6_loopback()) {
        print_message("no ::1 here\n");
        skip();
    }
    run_in_loop(tcp_ipv6_main, NULL);
}

/* weft_tcp_listen(NULL, 0): one socket per family, on the same port. */
static int listen_all_main(void *arg)
{
    bool v6 = *(bool *)arg;
    weft_listener *l;
    weft_stream *c4, *s4, *c6, *s6;

    if (!CHECK_EQ(weft_tcp_listen(&l, NULL, 0), 0))
        return -EIO;
    int port = weft_listener_port(l);
    CHECK_GT(port, 0);
    if (CHECK_EQ(weft_tcp_connect(&c4, "127.0.0.1", (uint16_t)port), 0)) {
        if (CHECK_EQ(accept_within(l, &s4), 0)) {
            CHECK_EQ(local_family(s4), AF_INET);
            ping_pong(c4, s4);
            CHECK_EQ(weft_stream_close(s4), 0);
        }
        CHECK_EQ(weft_stream_close(c4), 0);
    }
    if (v6 && CHECK_EQ(weft_tcp_connect(&c6, "::1", (uint16_t)port), 0)) {
        if (CHECK_EQ(accept_within(l, &s6), 0)) {
            /* its own IPv6 socket (IPV6_V6ONLY), not a mapped address */
            CHECK_EQ(local_family(s6), AF_INET6);
            CHECK_EQ(peer_family(s6), AF_INET6);
            ping_pong(c6, s6);
            CHECK_EQ(weft_stream_close(s6), 0);
        }
        CHECK_EQ(weft_stream_close(c6), 0);
    }
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_net_tcp_listen_null_host_is_both_families(void **state)
{
    bool v6 = nh_have_ipv6_loopback();
    if (!v6)
        print_message("no ::1 here: IPv4 only\n");
    run_in_loop(listen_all_main, &v6);
}

static int refused_main(void *arg)
{
    bool v6 = *(bool *)arg;
    weft_stream *c = (weft_stream *)&c;
    int keep = -1;

    int port = refusing_port(AF_INET, &keep);
    if (!CHECK_GT(port, 0))
        return -EIO;
    CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), -ECONNREFUSED);
    CHECK(c == NULL);
    close(keep);
    if (v6) {
        port = refusing_port(AF_INET6, &keep);
        if (!CHECK_GT(port, 0))
            return -EIO;
        CHECK_EQ(weft_tcp_connect(&c, "::1", (uint16_t)port), -ECONNREFUSED);
        close(keep);
    }
    /* every address of a name refused: the connect error */
    port = refusing_port(AF_INET, &keep);
    CHECK_EQ(weft_tcp_connect(&c, "localhost", (uint16_t)port), -ECONNREFUSED);
    close(keep);
    return 0;
}

static void test_net_tcp_connect_refused(void **state)
{
    bool v6 = nh_have_ipv6_loopback();
    run_in_loop(refused_main, &v6);
}

static int args_main(void *arg)
{
    weft_stream *s;
    weft_listener *l;
    struct addrinfo *ai;

    CHECK_EQ(weft_tcp_connect(NULL, "127.0.0.1", 1), -EINVAL);
    CHECK_EQ(weft_tcp_connect(&s, NULL, 1), -EINVAL);
    CHECK_EQ(weft_tcp_listen(NULL, "127.0.0.1", 0), -EINVAL);
    CHECK_EQ(weft_unix_connect(NULL, "/nonexistent"), -EINVAL);
    CHECK_EQ(weft_unix_connect(&s, NULL), -EINVAL);
    CHECK_EQ(weft_unix_connect(&s, ""), -EINVAL);
    CHECK_EQ(weft_unix_listen(&l, NULL), -EINVAL);
    CHECK_EQ(weft_listener_port(NULL), -EINVAL);
    CHECK_EQ(weft_listener_accept(NULL, &s), -EINVAL);
    CHECK_EQ(weft_listener_close(NULL), -EINVAL);
    CHECK_EQ(weft_listener_serve(NULL, echo_handler, NULL), -EINVAL);
    CHECK_EQ(weft_getaddrinfo(NULL, NULL, NULL, &ai), -EINVAL);
    CHECK_EQ(weft_getaddrinfo("localhost", "1", NULL, NULL), -EINVAL);
    CHECK_EQ(weft_udp_open(NULL, "127.0.0.1", 0), -EINVAL);
    CHECK_EQ(weft_udp_close(NULL), -EINVAL);
    CHECK_EQ(weft_udp_port(NULL), -EINVAL);
    CHECK_EQ(weft_wait_readable(-1), -EBADF);
    CHECK_EQ(weft_wait_writable(-1), -EBADF);
    /* a path too long for sun_path */
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    CHECK_EQ(weft_unix_listen(&l, longpath), -EINVAL);
    CHECK_EQ(weft_unix_connect(&s, longpath), -EINVAL);
    /* an address that is not this machine's (TEST-NET-2; nothing is
     * sent, bind fails) */
    CHECK_EQ(weft_tcp_listen(&l, "198.51.100.1", 0), -EADDRNOTAVAIL);
    return 0;
}

static void test_net_bad_arguments(void **state)
{
    run_in_loop(args_main, NULL);
}

static void test_net_outside_loop_is_eperm(void **state)
{
    weft_stream *s;
    weft_listener *l;
    weft_udp *u;
    struct addrinfo *ai;

    assert_rc(weft_tcp_connect(&s, "127.0.0.1", 1), -EPERM);
    assert_rc(weft_tcp_listen(&l, "127.0.0.1", 0), -EPERM);
    assert_rc(weft_unix_connect(&s, "@weft-none"), -EPERM);
    assert_rc(weft_unix_listen(&l, "@weft-none"), -EPERM);
    assert_rc(weft_getaddrinfo("127.0.0.1", "1", NULL, &ai), -EPERM);
    assert_rc(weft_udp_open(&u, "127.0.0.1", 0), -EPERM);
    assert_rc(weft_wait_readable(0), -EPERM);
    assert_rc(weft_wait_writable(1), -EPERM);
}

/* Options: Nagle left on, a local address, SO_REUSEPORT, one-shot
 * accepts. */
static int opts_main(void *arg)
{
    weft_listener *l, *l2;
    weft_stream *c, *s;
    weft_listen_opts lo = {.reuse_port = true};

    if (!CHECK_EQ(weft_tcp_listen_opts(&l, "127.0.0.1", 0, &lo), 0))
        return -EIO;
    int port = weft_listener_port(l);
    /* a second listener on the port: with SO_REUSEPORT, yes */
    CHECK_EQ(weft_tcp_listen_opts(&l2, "127.0.0.1", (uint16_t)port, &lo), 0);
    CHECK_EQ(weft_listener_close(l2), 0);
    /* without, no */
    CHECK_EQ(weft_tcp_listen(&l2, "127.0.0.1", (uint16_t)port), -EADDRINUSE);

    weft_connect_opts co = {.local_host = "127.0.0.1", .nagle = true};
    if (CHECK_EQ(weft_tcp_connect_opts(&c, "127.0.0.1", (uint16_t)port, &co),
                 0)) {
        int on = 1;
        socklen_t len = sizeof on;
        getsockopt(weft_stream_fd(c), IPPROTO_TCP, TCP_NODELAY, &on, &len);
        CHECK_EQ(on, 0);
        if (CHECK_EQ(accept_within(l, &s), 0)) {
            ping_pong(c, s);
            CHECK_EQ(weft_stream_close(s), 0);
        }
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_listener_close(l), 0);

    /* one-shot accepts work the same */
    weft_listen_opts once = {.no_multishot = true, .backlog = 8};
    if (!CHECK_EQ(weft_tcp_listen_opts(&l, "127.0.0.1", 0, &once), 0))
        return -EIO;
    port = weft_listener_port(l);
    for (int i = 0; i < 3; i++) {
        if (!CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), 0))
            break;
        if (CHECK_EQ(accept_within(l, &s), 0)) {
            ping_pong(c, s);
            CHECK_EQ(weft_stream_close(s), 0);
        }
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_net_tcp_options(void **state)
{
    run_in_loop(opts_main, NULL);
}

/* ---- deadlines on connect ---- */

struct backlog_result {
    bool filled, completed;
};

/* A listener with backlog 1 that never accepts, full: a connect hangs
 * until the deadline (the kernel drops its SYN). */
static int connect_deadline_main(void *arg)
{
    struct backlog_result *res = arg;
    weft_listener *l;
    weft_listen_opts o = {.backlog = 1};
    int fds[MAX_FILL];

    if (!CHECK_EQ(weft_tcp_listen_opts(&l, "127.0.0.1", 0, &o), 0))
        return -EIO;
    int port = weft_listener_port(l);
    int n = fill_backlog(AF_INET, (uint16_t)port, fds);
    if (n < 0) {
        CHECK_EQ(weft_listener_close(l), 0);
        return 0;
    }
    res->filled = true;
    weft_stream *c = NULL;
    weft_scope s;
    weft_time t0 = weft_now();
    weft_fail_after(&s, 100 * WEFT_MSEC);
    int rc = weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port);
    rc = weft_scope_exit(&s, rc);
    if (rc == 0) {
        res->completed = true; /* the kernel let it in after all */
        weft_stream_close(c);
    } else {
        CHECK_EQ(rc, -ETIMEDOUT);
        CHECK(c == NULL);
        CHECK_GE(weft_now() - t0, 100 * WEFT_MSEC);
        CHECK_LT(weft_now() - t0, 5 * WEFT_SEC);
    }
    /* and cancelled by another task, under no deadline */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    rc = weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    close_all(fds, n);
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_net_tcp_connect_deadline_on_full_backlog(void **state)
{
    struct backlog_result res = {0};
    run_in_loop(connect_deadline_main, &res);
    if (!res.filled) {
        print_message("the accept queue never filled\n");
        skip();
    }
    if (res.completed) {
        print_message("the kernel completed the connect anyway\n");
        skip();
    }
}

/* ---- Happy Eyeballs ---- */

/*
 * In a child: a mount namespace whose /etc/hosts maps localhost to ::1
 * and 127.0.0.1 (and, with netns, a network namespace with only the
 * loopback device, plus 127.0.0.2 on lo so that glibc's AI_ADDRCONFIG
 * counts an IPv4 address but no IPv6 one, as on an IPv4-only host).
 * Returns 0, or exits 77 where namespaces are not allowed.
 */
static void ns_enter(bool netns)
{
    if (unshare(CLONE_NEWNS | (netns ? CLONE_NEWNET : 0)) < 0) {
        fprintf(stderr, "unshare: %s\n", strerror(errno));
        _exit(77);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        fprintf(stderr, "mount --make-rprivate /: %s\n", strerror(errno));
        _exit(77);
    }
    char path[] = "/tmp/weft-hosts-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        _exit(77);
    static const char hosts[] = "::1 localhost\n127.0.0.1 localhost\n";
    if (write(fd, hosts, sizeof hosts - 1) != (ssize_t)sizeof hosts - 1)
        _exit(77);
    close(fd);
    int rc = mount(path, "/etc/hosts", NULL, MS_BIND, NULL);
    unlink(path);
    if (rc < 0) {
        fprintf(stderr, "mount --bind /etc/hosts: %s\n", strerror(errno));
        _exit(77);
    }
    if (!netns)
        return;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        _exit(77);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        _exit(77);
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo:1");
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x7f000002);
    if (ioctl(s, SIOCSIFADDR, &ifr) < 0) {
        fprintf(stderr, "lo:1 127.0.0.2: %s\n", strerror(errno));
        _exit(77);
    }
    close(s);
}

/* Does localhost resolve to both families (without AI_ADDRCONFIG)? */
static bool localhost_dual(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    bool v4 = false, v6 = false;
    if (getaddrinfo("localhost", "1", &hints, &res) != 0)
        return false;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        v4 |= ai->ai_family == AF_INET;
        v6 |= ai->ai_family == AF_INET6;
    }
    freeaddrinfo(res);
    return v4 && v6;
}

enum he_case {
    HE_V4_ONLY,  /* listener on 127.0.0.1: ::1 is refused, v4 at once */
    HE_V6_ONLY,  /* listener on ::1 */
    HE_V6_HANGS, /* ::1 drops SYNs: v4 wins after the stagger */
    HE_BOTH,     /* listening on both: IPv6 is tried first, and wins */
};

struct he_arg {
    enum he_case c;
};

static int he_main(void *arg)
{
    struct he_arg *a = arg;
    weft_listener *l = NULL, *hang = NULL;
    weft_stream *c, *s;
    int fds[MAX_FILL], n = 0;
    int want = a->c == HE_V6_ONLY || a->c == HE_BOTH ? AF_INET6 : AF_INET;
    weft_connect_opts o = {.stagger = 2 * WEFT_SEC};

    if (a->c == HE_V6_HANGS) {
        weft_listen_opts lo = {.backlog = 1};
        if (!CHECK_EQ(weft_tcp_listen_opts(&hang, "::1", 0, &lo), 0))
            return -EIO;
        int port = weft_listener_port(hang);
        n = fill_backlog(AF_INET6, (uint16_t)port, fds);
        if (!CHECK_GE(n, 0)) {
            weft_listener_close(hang);
            return -EIO;
        }
        if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", (uint16_t)port), 0))
            return -EIO;
        o.stagger = 100 * WEFT_MSEC;
    } else if (a->c == HE_BOTH) {
        if (!CHECK_EQ(weft_tcp_listen(&l, NULL, 0), 0))
            return -EIO;
    } else {
        const char *host = a->c == HE_V6_ONLY ? "::1" : "127.0.0.1";
        if (!CHECK_EQ(weft_tcp_listen(&l, host, 0), 0))
            return -EIO;
    }
    int port = weft_listener_port(l);
    /* the first resolution on the worker pool opens the loop's wake-up
     * eventfd: do one before counting */
    struct addrinfo *warm;
    if (weft_getaddrinfo("localhost", NULL, NULL, &warm) == 0)
        freeaddrinfo(warm);
    int fds0 = nh_fd_count();
    weft_time t0 = weft_now();
    int rc = weft_tcp_connect_opts(&c, "localhost", (uint16_t)port, &o);
    weft_time took = weft_now() - t0;
    if (CHECK_EQ(rc, 0)) {
        CHECK_EQ(peer_family(c), want);
        if (a->c == HE_V6_HANGS) {
            /* the next family started after the stagger, not before */
            CHECK_GE(took, o.stagger);
        } else {
            /* a refused attempt starts the next at once, not after the
             * (here 2 s) stagger */
            CHECK_LT(took, WEFT_SEC);
        }
        /* the losing attempts' sockets are closed */
        CHECK_EQ(nh_fd_count(), fds0 + 1);
        if (CHECK_EQ(accept_within(l, &s), 0)) {
            ping_pong(c, s);
            CHECK_EQ(weft_stream_close(s), 0);
        }
        CHECK_EQ(weft_stream_close(c), 0);
    }
    /* the default stagger (250 ms) gets there too */
    rc = weft_tcp_connect(&c, "localhost", (uint16_t)port);
    if (CHECK_EQ(rc, 0)) {
        CHECK_EQ(peer_family(c), want);
        if (CHECK_EQ(accept_within(l, &s), 0))
            CHECK_EQ(weft_stream_close(s), 0);
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_listener_close(l), 0);
    if (hang) {
        close_all(fds, n);
        CHECK_EQ(weft_listener_close(hang), 0);
    }
    return 0;
}

struct he_child {
    enum he_case c;
    bool netns;
};

static void he_child_body(void *arg)
{
    struct he_child *hc = arg;
    if (hc->netns || !localhost_dual())
        ns_enter(hc->netns);
    if (!localhost_dual()) {
        fprintf(stderr, "localhost still does not resolve to ::1\n");
        _exit(77);
    }
    if (!nh_have_ipv6_loopback()) {
        fprintf(stderr, "no ::1\n");
        _exit(77);
    }
    struct he_arg a = {hc->c};
    int rc = weft_run(he_main, &a, NULL);
    if (rc != 0)
        th_fail_at(__FILE__, __LINE__, "weft_run: %d", rc);
}

static void he_child_v4(void)
{
    struct he_child hc = {HE_V4_ONLY, false};
    he_child_body(&hc);
}

static void he_child_v6(void)
{
    struct he_child hc = {HE_V6_ONLY, false};
    he_child_body(&hc);
}

static void he_child_v6_hangs(void)
{
    struct he_child hc = {HE_V6_HANGS, false};
    he_child_body(&hc);
}

/* weft_tcp_listen(NULL) on a host with IPv4 but no IPv6 address besides
 * ::1: it still listens on ::1. */
static void listen_null_netns_child(void)
{
    ns_enter(true);
    if (!nh_have_ipv6_loopback()) {
        fprintf(stderr, "no ::1\n");
        _exit(77);
    }
    bool v6 = true;
    int rc = weft_run(listen_all_main, &v6, NULL);
    if (rc != 0)
        th_fail_at(__FILE__, __LINE__, "weft_run: %d", rc);
}

static void he_child_both(void)
{
    struct he_child hc = {HE_BOTH, false};
    he_child_body(&hc);
}

static void he_child_v4_netns(void)
{
    struct he_child hc = {HE_V4_ONLY, true};
    he_child_body(&hc);
}

static void he_child_v6_netns(void)
{
    struct he_child hc = {HE_V6_ONLY, true};
    he_child_body(&hc);
}

/* Each in a fresh exec of the suite: a fork of this process after earlier
 * tests would have no worker threads behind weft's worker pool. */
static void run_he(const char *child)
{
    struct th_child out;
    th_run_exec_child(child, &out);
    if (WIFEXITED(out.status) && WEXITSTATUS(out.status) == 77) {
        print_message("skipped: %s", out.err);
        skip();
    }
    if (out.err[0])
        print_message("%s", out.err);
    th_assert_child_ok(&out);
}

static void test_net_happy_eyeballs_v4_listener(void **state)
{
    run_he("he_v4");
}

static void test_net_happy_eyeballs_v6_listener(void **state)
{
    run_he("he_v6");
}

static void test_net_happy_eyeballs_prefers_ipv6(void **state)
{
    run_he("he_both");
}

static void test_net_happy_eyeballs_v6_hangs_v4_wins(void **state)
{
    run_he("he_v6_hangs");
}

/* On a host whose only non-loopback address is IPv4 (as in most
 * containers), "localhost" still reaches a server on ::1. */
static void test_net_happy_eyeballs_v6_listener_ipv4_only_host(void **state)
{
    run_he("he_v6_netns");
}

static void test_net_tcp_listen_null_host_ipv4_only_host(void **state)
{
    run_he("listen_null_netns");
}

static void test_net_happy_eyeballs_v4_listener_ipv4_only_host(void **state)
{
    run_he("he_v4_netns");
}

/* ---- resets and closed peers ---- */

/* The peer closes with SO_LINGER {1, 0}: a reset. */
struct reset_waiter {
    weft_stream *s;
    bool in;
    ssize_t rc;
};

static int reset_recv_task(void *arg)
{
    struct reset_waiter *w = arg;
    char buf[16];
    w->in = true;
    w->rc = weft_stream_recv(w->s, buf, sizeof buf);
    return 0;
}

static int reset_main(void *arg)
{
    for (int recv_first = 0; recv_first < 2; recv_first++) {
        weft_stream *c, *s;
        char buf[16];
        if (nh_tcp_pair("127.0.0.1", &c, &s) < 0)
            return -EIO;
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        CHECK_EQ(setsockopt(weft_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg,
                            sizeof lg),
                 0);
        CHECK_EQ(weft_stream_close(s), 0);
        th_settle(); /* the reset has arrived */
        ssize_t r;
        if (recv_first) {
            r = weft_stream_recv(c, buf, sizeof buf);
            CHECK(r == -ECONNRESET || r == -EPIPE);
            r = weft_stream_send(c, "x", 1);
            CHECK(r == -ECONNRESET || r == -EPIPE);
        } else {
            r = weft_stream_send(c, "x", 1);
            CHECK(r == -ECONNRESET || r == -EPIPE);
            r = weft_stream_send(c, "x", 1);
            CHECK(r == -ECONNRESET || r == -EPIPE);
        }
        /* the error is no reason to fail close */
        CHECK_EQ(weft_stream_close(c), 0);
    }
    /* a reset while a recv waits */
    weft_stream *c, *s;
    if (nh_tcp_pair("127.0.0.1", &c, &s) < 0)
        return -EIO;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(weft_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct reset_waiter w = {.s = c};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, reset_recv_task, &w), 0);
    th_wait_flag(&w.in);
    th_settle();
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(w.rc == -ECONNRESET || w.rc == -EPIPE);
    CHECK_EQ(weft_stream_close(c), 0);
    return 0;
}

static void test_net_tcp_reset_peer(void **state)
{
    run_in_loop(reset_main, NULL);
}

/* ---- Unix sockets ---- */

static void unix_round_trip(const char *path)
{
    weft_listener *l;
    weft_stream *c, *s;

    if (!CHECK_EQ(weft_unix_listen(&l, path), 0))
        return;
    CHECK_EQ(weft_listener_port(l), -EINVAL); /* not TCP */
    /* a second listener on the same name: in use */
    weft_listener *l2;
    CHECK_EQ(weft_unix_listen(&l2, path), -EADDRINUSE);
    for (int i = 0; i < 3; i++) {
        if (!CHECK_EQ(weft_unix_connect(&c, path), 0))
            break;
        if (CHECK_EQ(accept_within(l, &s), 0)) {
            ping_pong(c, s);
            CHECK_EQ(weft_stream_send_eof(c), 0);
            char buf[4];
            CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), 0);
            CHECK_EQ(weft_stream_close(s), 0);
        }
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_listener_close(l), 0);
}

static int unix_path_main(void *arg)
{
    char dir[] = "/tmp/weft-net-XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL))
        return -EIO;
    char path[128], missing[128];
    snprintf(path, sizeof path, "%s/sock", dir);
    snprintf(missing, sizeof missing, "%s/missing", dir);
    unix_round_trip(path);
    weft_stream *c;
    CHECK_EQ(weft_unix_connect(&c, missing), -ENOENT);
    /* the socket file stays after close (as with bind(2)); connecting to
     * it with nobody listening is refused */
    CHECK_EQ(weft_unix_connect(&c, path), -ECONNREFUSED);
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(rmdir(dir), 0);
    return 0;
}

static void test_net_unix_path(void **state)
{
    run_in_loop(unix_path_main, NULL);
}

static int unix_abstract_main(void *arg)
{
    char name[64], other[64];
    unsigned r = (unsigned)getpid() ^ (unsigned)th_clock();
    snprintf(name, sizeof name, "@weft-test-%u-%08x", (unsigned)getpid(), r);
    snprintf(other, sizeof other, "@weft-test-%u-%08x-none", (unsigned)getpid(),
             r);
    unix_round_trip(name);
    weft_stream *c;
    /* no file, and once closed, the name is free */
    CHECK_EQ(weft_unix_connect(&c, name), -ECONNREFUSED);
    CHECK_EQ(weft_unix_connect(&c, other), -ECONNREFUSED);
    unix_round_trip(name);
    return 0;
}

static void test_net_unix_abstract(void **state)
{
    run_in_loop(unix_abstract_main, NULL);
}

/* ---- fd passing ---- */

static bool cloexec(int fd)
{
    int f = fcntl(fd, F_GETFD);
    return f >= 0 && (f & FD_CLOEXEC);
}

static int fds_main(void *arg)
{
    weft_stream *a, *b;
    int p[2];
    char msg[16];
    int got[4] = {-1, -1, -1, -1};
    size_t n = 99;

    if (!CHECK_EQ(weft_stream_pair(&a, &b), 0) || !th_pipe(p))
        return -EIO;
    /* a pipe's two ends, with a message */
    CHECK_EQ(weft_unix_send_fds(a, "pipe", 4, p, 2), 0);
    memset(msg, 0, sizeof msg);
    CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 4, &n), 4);
    CHECK_STR_EQ(msg, "pipe");
    if (CHECK_EQ(n, 2)) {
        CHECK(cloexec(got[0]) && cloexec(got[1]));
        CHECK_NE(got[0], p[0]);
        /* through the received write end, out of the original read end */
        CHECK_EQ(write(got[1], "one", 3), 3);
        memset(msg, 0, sizeof msg);
        CHECK_EQ(th_read(p[0], msg, sizeof msg), 3);
        CHECK_STR_EQ(msg, "one");
        /* through the original write end, out of the received read end */
        CHECK_EQ(write(p[1], "two", 3), 3);
        memset(msg, 0, sizeof msg);
        CHECK_EQ(th_read(got[0], msg, sizeof msg), 3);
        CHECK_STR_EQ(msg, "two");
        close(got[0]);
        close(got[1]);
    }

    /* more fds than max_fds: the extra ones are closed, not leaked */
    int four[4] = {p[0], p[1], p[0], p[1]};
    CHECK_EQ(weft_unix_send_fds(a, "4", 1, four, 4), 0);
    int before = nh_fd_count();
    n = 99;
    CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 1, &n), 1);
    CHECK_EQ(n, 1);
    CHECK_EQ(nh_fd_count(), before + 1);
    close(got[0]);
    /* max_fds 0 (fds may be NULL): all closed */
    CHECK_EQ(weft_unix_send_fds(a, "2", 1, p, 2), 0);
    before = nh_fd_count();
    CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, NULL, 0, &n), 1);
    CHECK_EQ(n, 0);
    CHECK_EQ(nh_fd_count(), before);

    /* a message without fds, and a long one (the fds go with the first
     * bytes; the rest is ordinary stream data) */
    CHECK_EQ(weft_unix_send_fds(a, "nofds", 5, NULL, 0), 0);
    n = 99;
    memset(msg, 0, sizeof msg);
    CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 4, &n), 5);
    CHECK_EQ(n, 0);
    CHECK_STR_EQ(msg, "nofds");
    size_t big = 1000;
    unsigned char *data = nh_pattern(big);
    unsigned char *back = malloc(big);
    CHECK_EQ(weft_unix_send_fds(a, data, 1000, p, 1), 0);
    n = 99;
    ssize_t r = weft_unix_recv_fds(b, back, big, got, 4, &n);
    CHECK_GT(r, 0);
    CHECK_EQ(n, 1);
    if (r > 0 && r < 1000)
        CHECK_EQ(weft_stream_recv_exactly(b, back + r, 1000 - (size_t)r),
                 1000 - r);
    CHECK(memcmp(back, data, 1000) == 0);
    if (n == 1)
        close(got[0]);
    free(data);
    free(back);

    /* a multishot receive on b: while it is on, the socket is its
     * (-ENOTSUP); bytes it queued come first, fd-less; once turned off
     * (and its last completion in), fds come again */
    if (weft_stream_set_multishot(b, true) == 0) {
        CHECK_EQ(weft_unix_send_fds(a, "q", 1, NULL, 0), 0);
        CHECK_EQ(weft_stream_recv(b, msg, 1), 1); /* arms it */
        CHECK_EQ(weft_stream_send(a, "ueued", 5), 5);
        for (int i = 0; i < 1000 && weft_stream_buffered(b) < 5; i++)
            CHECK_EQ(weft_checkpoint(), 0);
        CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 4, &n), 5);
        CHECK_EQ(n, 0);
        CHECK(memcmp(msg, "ueued", 5) == 0);
        CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 4, &n), -ENOTSUP);
        CHECK_EQ(weft_stream_set_multishot(b, false), 0);
        CHECK_EQ(weft_unix_send_fds(a, "fd", 2, p, 1), 0);
        n = 99;
        CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 4, &n), 2);
        if (CHECK_EQ(n, 1))
            close(got[0]);
    }

    /* bad arguments */
    CHECK_EQ(weft_unix_send_fds(a, NULL, 1, p, 1), -EINVAL);
    CHECK_EQ(weft_unix_send_fds(a, "x", 0, p, 1), -EINVAL); /* needs a byte */
    CHECK_EQ(weft_unix_send_fds(a, "x", 1, NULL, 1), -EINVAL);
    CHECK_EQ(weft_unix_send_fds(a, "x", 1, p, 254), -EINVAL);
    CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, NULL, 1, &n), -EINVAL);
    CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 1, NULL), -EINVAL);
    CHECK_EQ(weft_unix_recv_fds(b, NULL, 1, got, 1, &n), -EINVAL);
    /* the peer closed: 0 */
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_unix_recv_fds(b, msg, sizeof msg, got, 4, &n), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(weft_stream_close(b), 0);
    th_close_pipe(p);
    return 0;
}

static void test_net_unix_fd_passing(void **state)
{
    run_in_loop(fds_main, NULL);
}

/* fd passing over a connection from a Unix listener, server to client. */
static int fds_listener_main(void *arg)
{
    char name[64];
    snprintf(name, sizeof name, "@weft-fds-%u-%llx", (unsigned)getpid(),
             (unsigned long long)th_clock());
    weft_listener *l;
    weft_stream *c, *s;
    int p[2], got[2];
    size_t n;
    char msg[8];

    if (!CHECK_EQ(weft_unix_listen(&l, name), 0) || !th_pipe(p))
        return -EIO;
    if (CHECK_EQ(weft_unix_connect(&c, name), 0)) {
        if (CHECK_EQ(accept_within(l, &s), 0)) {
            CHECK_EQ(weft_unix_send_fds(s, "w", 1, &p[1], 1), 0);
            CHECK_EQ(weft_unix_recv_fds(c, msg, sizeof msg, got, 2, &n), 1);
            if (CHECK_EQ(n, 1)) {
                CHECK_EQ(write(got[0], "via", 3), 3);
                close(got[0]);
                memset(msg, 0, sizeof msg);
                CHECK_EQ(th_read(p[0], msg, sizeof msg), 3);
                CHECK_STR_EQ(msg, "via");
            }
            CHECK_EQ(weft_stream_close(s), 0);
        }
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_listener_close(l), 0);
    th_close_pipe(p);
    return 0;
}

static void test_net_unix_fd_passing_over_listener(void **state)
{
    run_in_loop(fds_listener_main, NULL);
}

/* ---- UDP ---- */

static int udp_family_main(const char *host, int family)
{
    weft_udp *a, *b;
    char buf[64];
    struct sockaddr_storage from;
    socklen_t fromlen;

    if (!CHECK_EQ(weft_udp_open(&a, host, 0), 0))
        return -EIO;
    if (!CHECK_EQ(weft_udp_open(&b, host, 0), 0)) {
        weft_udp_close(a);
        return -EIO;
    }
    int pa = weft_udp_port(a), pb = weft_udp_port(b);
    CHECK_GT(pa, 0);
    CHECK_GT(pb, 0);
    CHECK_NE(pa, pb);

    /* bound: sendto an address; recvfrom says who sent it */
    struct sockaddr_storage to;
    socklen_t tolen;
    if (family == AF_INET6) {
        nh_loopback6((struct sockaddr_in6 *)&to, (uint16_t)pb);
        tolen = sizeof(struct sockaddr_in6);
    } else {
        nh_loopback4((struct sockaddr_in *)&to, (uint16_t)pb);
        tolen = sizeof(struct sockaddr_in);
    }
    CHECK_EQ(weft_udp_sendto(a, "datagram", 8, (struct sockaddr *)&to, tolen),
             8);
    memset(buf, 0, sizeof buf);
    fromlen = sizeof from;
    CHECK_EQ(weft_udp_recvfrom(b, buf, sizeof buf, &from, &fromlen), 8);
    CHECK_STR_EQ(buf, "datagram");
    CHECK_EQ(from.ss_family, family);
    if (family == AF_INET6) {
        struct sockaddr_in6 *f6 = (struct sockaddr_in6 *)&from;
        CHECK_EQ(fromlen, sizeof *f6);
        CHECK_EQ(ntohs(f6->sin6_port), pa);
        CHECK(IN6_IS_ADDR_LOOPBACK(&f6->sin6_addr));
    } else {
        struct sockaddr_in *f4 = (struct sockaddr_in *)&from;
        CHECK_EQ(fromlen, sizeof *f4);
        CHECK_EQ(ntohs(f4->sin_port), pa);
        CHECK_EQ(ntohl(f4->sin_addr.s_addr), INADDR_LOOPBACK);
    }

    /* datagrams stay whole: two sends, two receives; a short buffer
     * truncates one datagram and does not spill into the next */
    CHECK_EQ(weft_udp_sendto(a, "first", 5, (struct sockaddr *)&to, tolen), 5);
    CHECK_EQ(weft_udp_sendto(a, "second", 6, (struct sockaddr *)&to, tolen), 6);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_udp_recvfrom(b, buf, 3, NULL, NULL), 3);
    CHECK_STR_EQ(buf, "fir");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_udp_recvfrom(b, buf, sizeof buf, NULL, NULL), 6);
    CHECK_STR_EQ(buf, "second");
    /* an empty datagram */
    CHECK_EQ(weft_udp_sendto(a, "", 0, (struct sockaddr *)&to, tolen), 0);
    CHECK_EQ(weft_udp_recvfrom(b, buf, sizeof buf, NULL, NULL), 0);

    /* connected: no address needed, both ways */
    CHECK_EQ(weft_udp_connect(a, host, (uint16_t)pb), 0);
    CHECK_EQ(weft_udp_connect(b, host, (uint16_t)pa), 0);
    CHECK_EQ(weft_udp_sendto(a, "conn", 4, NULL, 0), 4);
    memset(buf, 0, sizeof buf);
    fromlen = sizeof from;
    CHECK_EQ(weft_udp_recvfrom(b, buf, sizeof buf, &from, &fromlen), 4);
    CHECK_STR_EQ(buf, "conn");
    CHECK_EQ(weft_udp_sendto(b, "back", 4, NULL, 0), 4);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_udp_recvfrom(a, buf, sizeof buf, NULL, NULL), 4);
    CHECK_STR_EQ(buf, "back");

    /* a connected socket takes datagrams only from its peer */
    weft_udp *x;
    if (CHECK_EQ(weft_udp_open(&x, host, 0), 0)) {
        CHECK_EQ(weft_udp_sendto(x, "stray", 5, (struct sockaddr *)&to, tolen),
                 5);
        CHECK_EQ(weft_udp_sendto(a, "real", 4, NULL, 0), 4);
        memset(buf, 0, sizeof buf);
        CHECK_EQ(weft_udp_recvfrom(b, buf, sizeof buf, NULL, NULL), 4);
        CHECK_STR_EQ(buf, "real");
        CHECK_EQ(weft_udp_close(x), 0);
    }
    CHECK_EQ(weft_udp_close(a), 0);
    CHECK_EQ(weft_udp_close(b), 0);
    return 0;
}

static int udp4_main(void *arg)
{
    return udp_family_main("127.0.0.1", AF_INET);
}

static int udp6_main(void *arg)
{
    return udp_family_main("::1", AF_INET6);
}

static void test_net_udp_ipv4_bound_and_connected(void **state)
{
    run_in_loop(udp4_main, NULL);
}

static void test_net_udp_ipv6_bound_and_connected(void **state)
{
    if (!nh_have_ipv6_loopback())
        skip();
    run_in_loop(udp6_main, NULL);
}

/* weft_udp_open(NULL): every address; reachable over IPv4 too. */
static int udp_any_main(void *arg)
{
    weft_udp *any, *v4;
    char buf[16];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;

    if (!CHECK_EQ(weft_udp_open(&any, NULL, 0), 0))
        return -EIO;
    if (!CHECK_EQ(weft_udp_open(&v4, "127.0.0.1", 0), 0)) {
        weft_udp_close(any);
        return -EIO;
    }
    CHECK_EQ(weft_udp_connect(v4, "127.0.0.1", (uint16_t)weft_udp_port(any)),
             0);
    CHECK_EQ(weft_udp_sendto(v4, "any", 3, NULL, 0), 3);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_udp_recvfrom(any, buf, sizeof buf, &from, &fromlen), 3);
    CHECK_STR_EQ(buf, "any");
    /* and back to the sender it named (an IPv4 address, perhaps mapped) */
    CHECK_EQ(weft_udp_sendto(any, "ok", 2, (struct sockaddr *)&from, fromlen),
             2);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_udp_recvfrom(v4, buf, sizeof buf, NULL, NULL), 2);
    CHECK_STR_EQ(buf, "ok");
    /* connect the any-socket to an IPv4 name */
    CHECK_EQ(weft_udp_connect(any, "127.0.0.1", (uint16_t)weft_udp_port(v4)),
             0);
    CHECK_EQ(weft_udp_sendto(any, "c", 1, NULL, 0), 1);
    CHECK_EQ(weft_udp_recvfrom(v4, buf, sizeof buf, NULL, NULL), 1);
    CHECK_EQ(weft_udp_close(any), 0);
    CHECK_EQ(weft_udp_close(v4), 0);
    return 0;
}

static void test_net_udp_open_any_address(void **state)
{
    run_in_loop(udp_any_main, NULL);
}

struct udp_blocked {
    weft_udp *u;
    bool in;
    ssize_t rc;
    char buf[16];
};

static int udp_blocked_recv(void *arg)
{
    struct udp_blocked *ub = arg;
    ub->in = true;
    ub->rc = weft_udp_recvfrom(ub->u, ub->buf, sizeof ub->buf, NULL, NULL);
    return 0;
}

/* Many receivers at once, each gets one whole datagram; then close with
 * receivers blocked: they get -EBADF. */
static int udp_close_main(void *arg)
{
    weft_udp *u, *tx;
    struct udp_blocked ub[4];
    weft_group g;

    if (!CHECK_EQ(weft_udp_open(&u, "127.0.0.1", 0), 0))
        return -EIO;
    if (!CHECK_EQ(weft_udp_open(&tx, "127.0.0.1", 0), 0))
        return -EIO;
    CHECK_EQ(weft_udp_connect(tx, "127.0.0.1", (uint16_t)weft_udp_port(u)), 0);

    weft_group_enter(&g);
    for (int i = 0; i < 4; i++) {
        ub[i] = (struct udp_blocked){.u = u};
        CHECK_EQ(weft_group_spawn(&g, udp_blocked_recv, &ub[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        th_wait_flag(&ub[i].in);
    th_settle();
    CHECK_EQ(weft_udp_sendto(tx, "d0", 2, NULL, 0), 2);
    CHECK_EQ(weft_udp_sendto(tx, "d1", 2, NULL, 0), 2);
    th_settle();
    th_settle();
    /* two got a datagram, two still wait: close ends them */
    CHECK_EQ(weft_udp_close(u), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    int got = 0, badf = 0;
    for (int i = 0; i < 4; i++) {
        if (ub[i].rc == 2)
            got++;
        else if (CHECK_EQ(ub[i].rc, -EBADF))
            badf++;
    }
    CHECK_EQ(got, 2);
    CHECK_EQ(badf, 2);
    CHECK_EQ(weft_udp_close(tx), 0);
    return 0;
}

static void test_net_udp_close_while_recvfrom_blocked(void **state)
{
    run_in_loop(udp_close_main, NULL);
}

static int udp_cancel_main(void *arg)
{
    weft_udp *u, *tx;
    char buf[16];
    weft_scope s;

    if (!CHECK_EQ(weft_udp_open(&u, "127.0.0.1", 0), 0))
        return -EIO;
    if (!CHECK_EQ(weft_udp_open(&tx, "127.0.0.1", 0), 0))
        return -EIO;
    weft_fail_after(&s, 20 * WEFT_MSEC);
    ssize_t r = weft_udp_recvfrom(u, buf, sizeof buf, NULL, NULL);
    CHECK_EQ(r, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, (int)r), -ETIMEDOUT);
    /* nothing lost: a datagram after the cancelled receive arrives */
    CHECK_EQ(weft_udp_connect(tx, "127.0.0.1", (uint16_t)weft_udp_port(u)), 0);
    CHECK_EQ(weft_udp_sendto(tx, "later", 5, NULL, 0), 5);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(weft_udp_recvfrom(u, buf, sizeof buf, NULL, NULL), 5);
    CHECK_STR_EQ(buf, "later");
    CHECK_EQ(weft_udp_close(u), 0);
    CHECK_EQ(weft_udp_close(tx), 0);
    return 0;
}

static void test_net_udp_recvfrom_deadline(void **state)
{
    run_in_loop(udp_cancel_main, NULL);
}

/* ---- readiness ---- */

struct waiter {
    int fd;
    bool in;
    int rc;
};

static int wait_readable_task(void *arg)
{
    struct waiter *w = arg;
    w->in = true;
    w->rc = weft_wait_readable(w->fd);
    return 0;
}

static int readiness_main(void *arg)
{
    int p[2];
    weft_scope s;
    char buf[8];

    if (!th_pipe(p))
        return -EIO;
    /* an empty pipe is writable at once */
    CHECK_EQ(weft_wait_writable(p[1]), 0);
    /* and not readable: the deadline ends the wait */
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    CHECK_EQ(weft_wait_readable(p[0]), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    /* readable once another task writes */
    struct waiter w = {.fd = p[0]};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, wait_readable_task, &w), 0);
    th_wait_flag(&w.in);
    th_settle();
    CHECK_EQ(w.rc, 0); /* still waiting (rc untouched) */
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(w.rc, 0);
    CHECK_EQ(read(p[0], buf, sizeof buf), 1);
    /* a full pipe is not writable until someone reads */
    int fl = fcntl(p[1], F_GETFL);
    fcntl(p[1], F_SETFL, fl | O_NONBLOCK);
    size_t filled = 0;
    static char chunk[4096];
    while (write(p[1], chunk, sizeof chunk) > 0)
        filled += sizeof chunk;
    fcntl(p[1], F_SETFL, fl);
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    CHECK_EQ(weft_wait_writable(p[1]), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    while (filled > 0) {
        ssize_t r = read(p[0], chunk, sizeof chunk);
        if (r <= 0)
            break;
        filled -= (size_t)r;
    }
    CHECK_EQ(weft_wait_writable(p[1]), 0);
    /* hang-up counts as readable: the read then says end of file */
    close(p[1]);
    p[1] = -1;
    CHECK_EQ(weft_wait_readable(p[0]), 0);
    CHECK_EQ(read(p[0], buf, sizeof buf), 0);
    /* under a cancelled scope: -ECANCELED at once */
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_wait_readable(p[0]), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    th_close_pipe(p);
    return 0;
}

static void test_net_wait_readable_writable_pipe(void **state)
{
    run_in_loop(readiness_main, NULL);
}

/* ---- getaddrinfo ---- */

static int gai_main(void *arg)
{
    struct addrinfo *res = NULL, hints = {.ai_socktype = SOCK_STREAM};
    bool v4 = false;

    /* a name: resolved on the worker pool */
    if (CHECK_EQ(weft_getaddrinfo("localhost", "80", &hints, &res), 0)) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            CHECK_EQ(ai->ai_socktype, SOCK_STREAM);
            if (ai->ai_family == AF_INET) {
                struct sockaddr_in *sin = (void *)ai->ai_addr;
                v4 |= ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK;
                CHECK_EQ(ntohs(sin->sin_port), 80);
            }
        }
        CHECK(v4);
        freeaddrinfo(res);
    }
    /* numbers: parsed at once */
    res = NULL;
    if (CHECK_EQ(weft_getaddrinfo("127.0.0.1", "8080", &hints, &res), 0)) {
        CHECK_EQ(res->ai_family, AF_INET);
        CHECK_EQ(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 8080);
        freeaddrinfo(res);
    }
    res = NULL;
    if (CHECK_EQ(weft_getaddrinfo("::1", NULL, NULL, &res), 0)) {
        CHECK_EQ(res->ai_family, AF_INET6);
        CHECK(IN6_IS_ADDR_LOOPBACK(
            &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr));
        freeaddrinfo(res);
    }
    /* a service name only */
    struct addrinfo passive = {.ai_flags = AI_PASSIVE,
                               .ai_socktype = SOCK_STREAM};
    res = NULL;
    if (CHECK_EQ(weft_getaddrinfo(NULL, "9", &passive, &res), 0))
        freeaddrinfo(res);
    /* no such name (.invalid never resolves; no network here) */
    res = NULL;
    int rc = weft_getaddrinfo("no-such-host.invalid", "80", &hints, &res);
    CHECK(rc == -ENOENT || rc == -EAGAIN);
    CHECK(res == NULL);
    /* no such service */
    rc = weft_getaddrinfo("127.0.0.1", "no-such-service-weft", &hints, &res);
    CHECK_EQ(rc, -ENOENT);
    /* a name that needs numbers only */
    struct addrinfo numeric = {.ai_flags = AI_NUMERICHOST};
    rc = weft_getaddrinfo("localhost", NULL, &numeric, &res);
    CHECK_EQ(rc, -ENOENT);
    /* a connect to a name that does not resolve */
    weft_stream *c;
    rc = weft_tcp_connect(&c, "no-such-host.invalid", 80);
    CHECK(rc == -ENOENT || rc == -EAGAIN);
    /* under a cancelled scope */
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_getaddrinfo("localhost", "80", &hints, &res), -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
    return 0;
}

static void test_net_getaddrinfo(void **state)
{
    run_in_loop(gai_main, NULL);
}

/* Many resolutions at once, from many tasks. */
static int gai_task(void *arg)
{
    struct addrinfo *res, hints = {.ai_socktype = SOCK_DGRAM};
    if (CHECK_EQ(weft_getaddrinfo("localhost", "53", &hints, &res), 0))
        freeaddrinfo(res);
    return 0;
}

static int gai_many_main(void *arg)
{
    weft_group g;
    weft_group_enter(&g);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(weft_group_spawn(&g, gai_task, NULL), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    return 0;
}

static void test_net_getaddrinfo_from_64_tasks(void **state)
{
    run_in_loop(gai_many_main, NULL);
}

/*
 * A lookup cancelled while it waits for a token of the thread limiter
 * never ran: it returns -ECANCELED and leaves nothing behind (no memory:
 * LeakSanitizer in the ASan build; no descriptor). The default limiter's
 * 40 tokens are held by calls that block on a pipe until the end; the
 * 41st call, a name that needs the worker pool (no DNS: it never runs),
 * waits under a 50 ms deadline. In a fresh exec of the suite, so that the
 * leak check sees this test's memory only.
 */
#define GAI_TOKENS 40 /* the default thread limiter's */

struct gai_wait {
    int gate[2]; /* the blocking calls read gate[0] until gate[1] closes */
    atomic_int started;
};

static int gai_gate_worker(void *arg)
{
    struct gai_wait *w = arg;
    char c;
    ssize_t n;

    atomic_fetch_add(&w->started, 1);
    while ((n = read(w->gate[0], &c, 1)) < 0 && errno == EINTR) {
    }
    return n < 0 ? -errno : (int)n; /* 0: end of file */
}

static int gai_token_holder(void *arg)
{
    CHECK_EQ(weft_to_thread(gai_gate_worker, arg, NULL, 0), 0);
    return 0;
}

static int gai_token_main(void *arg)
{
    struct gai_wait *w = arg;
    weft_limiter *lim = weft_default_thread_limiter();
    weft_group g;

    CHECK_EQ(weft_limiter_total_tokens(lim), GAI_TOKENS);
    weft_group_enter(&g);
    for (int i = 0; i < GAI_TOKENS; i++)
        CHECK_EQ(weft_group_spawn(&g, gai_token_holder, w), 0);
    weft_time end = weft_now() + 10 * WEFT_SEC;
    while ((atomic_load(&w->started) < GAI_TOKENS ||
            weft_limiter_available_tokens(lim) != 0) &&
           weft_now() < end)
        CHECK_EQ(weft_sleep(WEFT_MSEC), 0);
    CHECK_EQ(atomic_load(&w->started), GAI_TOKENS);
    CHECK_EQ(weft_limiter_available_tokens(lim), 0);

    struct addrinfo *res = NULL, hints = {.ai_socktype = SOCK_STREAM};
    weft_scope s;
    weft_move_on_after(&s, 50 * WEFT_MSEC);
    int rc = weft_getaddrinfo("weft-token-wait.invalid", "80", &hints, &res);
    CHECK_EQ(rc, -ECANCELED);
    CHECK(res == NULL);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    CHECK(weft_scope_cancelled_caught(&s));
    CHECK_EQ(weft_limiter_borrowed_tokens(lim), GAI_TOKENS);

    close(w->gate[1]); /* the blocking calls end */
    w->gate[1] = -1;
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_limiter_borrowed_tokens(lim), 0);
    return 0;
}

static void gai_token_wait_body(void)
{
    struct gai_wait w = {.gate = {-1, -1}};
    int fds = nh_fd_count();

    if (!th_pipe(w.gate))
        return;
    CHECK_EQ(weft_run(gai_token_main, &w, NULL), 0);
    th_close_pipe(w.gate);
    /* the loop's descriptors may take a moment (workers drop theirs) */
    for (int i = 0; i < 500 && nh_fd_count() != fds; i++)
        usleep(10000);
    CHECK_EQ(nh_fd_count(), fds);
#if TH_ASAN
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static void
test_net_getaddrinfo_cancelled_waiting_for_a_token_leaks_nothing(void **state)
{
    struct th_child c;
    th_run_exec_child("gai_token_wait", &c);
    th_assert_child_ok(&c);
}

/* ---- listeners: accept, close, cancellation ---- */

struct acceptor {
    weft_listener *l;
    bool in;
    int rc;
    weft_stream *s;
};

static int accept_task(void *arg)
{
    struct acceptor *a = arg;
    a->in = true;
    a->rc = weft_listener_accept(a->l, &a->s);
    return 0;
}

static int listener_close_main(void *arg)
{
    weft_listener *l;
    struct acceptor a[2];
    weft_group g;

    if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0), 0))
        return -EIO;
    weft_group_enter(&g);
    for (int i = 0; i < 2; i++) {
        a[i] = (struct acceptor){.l = l};
        CHECK_EQ(weft_group_spawn(&g, accept_task, &a[i]), 0);
    }
    th_wait_flag(&a[0].in);
    th_wait_flag(&a[1].in);
    th_settle();
    CHECK_EQ(weft_listener_close(l), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(a[0].rc, -EBADF);
    CHECK_EQ(a[1].rc, -EBADF);

    /* connections queued and not yet taken are closed with the listener */
    if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0), 0))
        return -EIO;
    int port = weft_listener_port(l);
    weft_stream *c[3], *s;
    CHECK_EQ(weft_tcp_connect(&c[0], "127.0.0.1", (uint16_t)port), 0);
    CHECK_EQ(accept_within(l, &s), 0); /* arms the (multishot) accept */
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_tcp_connect(&c[1], "127.0.0.1", (uint16_t)port), 0);
    CHECK_EQ(weft_tcp_connect(&c[2], "127.0.0.1", (uint16_t)port), 0);
    th_settle();
    CHECK_EQ(weft_listener_close(l), 0);
    for (int i = 0; i < 3; i++) {
        char buf[4];
        ssize_t r = weft_stream_recv(c[i], buf, sizeof buf);
        CHECK(r == 0 || r == -ECONNRESET);
        CHECK_EQ(weft_stream_close(c[i]), 0);
    }
    return 0;
}

static void test_net_listener_close_with_blocked_accept(void **state)
{
    run_in_loop(listener_close_main, NULL);
}

/*
 * Regression (repros/listener_close_uaf.c): an accepter that was handed a
 * connection and has not run again is still inside the listener's gate,
 * so a close in between waits for it instead of freeing the listener
 * under it. The accepter gets the connection (it was handed over before
 * the close) or -EBADF, never freed memory; no fd is left. Both the
 * one-shot and the multishot accept.
 */
struct handed {
    weft_listener *l;
    int rc;
};

static int handed_acceptor(void *arg)
{
    struct handed *h = arg;
    weft_stream *c;
    h->rc = weft_listener_accept(h->l, &c);
    if (h->rc == 0)
        CHECK_EQ(weft_stream_close(c), 0);
    return 0;
}

static int close_while_handed_main(void *arg)
{
    bool oneshot = *(bool *)arg;
    int before = nh_fd_count();
    weft_listen_opts o = {.no_multishot = oneshot};
    struct handed h = {.rc = 1};
    if (!CHECK_EQ(weft_tcp_listen_opts(&h.l, "127.0.0.1", 0, &o), 0))
        return -EIO;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, handed_acceptor, &h), 0);
    CHECK_EQ(weft_checkpoint(), 0); /* it arms its accept and blocks */
    struct sockaddr_in sin;
    nh_loopback4(&sin, (uint16_t)weft_listener_port(h.l));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    /* one checkpoint: its round reaps the accept's CQE, so the acceptor
     * is handed the connection and is ready, behind this task */
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK_EQ(weft_listener_close(h.l), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(h.rc == 0 || h.rc == -EBADF);
    close(fd);
    CHECK_EQ(nh_fd_count(), before);
    return 0;
}

static void test_net_listener_close_while_accepter_handed_oneshot(void **state)
{
    bool oneshot = true;
    run_in_loop(close_while_handed_main, &oneshot);
}

static void
test_net_listener_close_while_accepter_handed_multishot(void **state)
{
    bool oneshot = false;
    run_in_loop(close_while_handed_main, &oneshot);
}

/*
 * A listener whose tasks stopped accepting does not keep taking every
 * connection from the kernel (one fd each). A multishot accept takes what
 * the kernel has ready in one go (here the whole first flood, which
 * arrives while the loop is busy), but once a few hundred are queued the
 * listener pauses: a second flood stays in the kernel's backlog. When
 * accepting resumes every connection is there, in order.
 */
#define NFLOOD 1000
#define NFLOOD2 200

static int flood(int *cl, int n, const struct sockaddr_in *sin)
{
    for (int i = 0; i < n; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (!CHECK_EQ(connect(cl[i], (const struct sockaddr *)sin, sizeof *sin),
                      0)) {
            close(cl[i]);
            return i;
        }
    }
    return n;
}

static int flood_main(void *arg)
{
    weft_listener *l;
    weft_stream *s;
    static int cl[NFLOOD + NFLOOD2];

    if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0), 0))
        return -EIO;
    struct sockaddr_in sin;
    nh_loopback4(&sin, (uint16_t)weft_listener_port(l));
    /* one accept arms the listener's (multishot) accept */
    int c0 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(c0, (struct sockaddr *)&sin, sizeof sin), 0);
    if (CHECK_EQ(accept_within(l, &s), 0))
        CHECK_EQ(weft_stream_close(s), 0);
    close(c0);
    /* then nobody accepts while a flood of clients connects */
    int before = nh_fd_count();
    int n = flood(cl, NFLOOD, &sin);
    th_settle();
    CHECK_EQ(weft_sleep(50 * WEFT_MSEC), 0);
    int queued = nh_fd_count() - before - n;
    print_message("      %d of %d connections taken from the kernel while "
                  "nobody accepted\n",
                  queued, n);
    int n2 = flood(cl + n, NFLOOD2, &sin);
    th_settle();
    CHECK_EQ(weft_sleep(50 * WEFT_MSEC), 0);
    int queued2 = nh_fd_count() - before - n - n2;
    print_message("      then %d of %d more\n", queued2 - queued, n2);
    CHECK_EQ(queued2, queued); /* paused: the second flood stays queued
                                  in the kernel */
    n += n2;
    /* every connection is still there, in the order they came */
    for (int i = 0; i < n; i++) {
        if (!CHECK_EQ(accept_within(l, &s), 0))
            break;
        char tag[16], buf[16] = {0};
        int len = snprintf(tag, sizeof tag, "%d", i);
        CHECK_EQ(write(cl[i], tag, (size_t)len), len);
        CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), len);
        CHECK_STR_EQ(buf, tag);
        CHECK_EQ(weft_stream_close(s), 0);
    }
    close_all(cl, n);
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_net_listener_queue_is_bounded(void **state)
{
    if (!nh_raise_nofile(4 * (NFLOOD + NFLOOD2))) {
        print_message("cannot raise RLIMIT_NOFILE\n");
        skip();
    }
    run_in_loop(flood_main, NULL);
}

/* A cancelled accept loses no connection: the next accept gets it. */
static int accept_cancel_main(void *arg)
{
    weft_listener *l;
    weft_stream *c, *s;
    weft_scope sc;

    if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0), 0))
        return -EIO;
    int port = weft_listener_port(l);
    for (int i = 0; i < 20; i++) {
        weft_move_on_after(&sc, 5 * WEFT_MSEC);
        int rc = weft_listener_accept(l, &s);
        CHECK_EQ(rc, -ECANCELED);
        CHECK_EQ(weft_scope_exit(&sc, rc), 0);
        /* the connection arrives while nobody accepts (the accept may
         * still be armed in the kernel) */
        if (!CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), 0))
            break;
        th_settle();
        if (CHECK_EQ(accept_within(l, &s), 0)) {
            ping_pong(c, s);
            CHECK_EQ(weft_stream_close(s), 0);
        }
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_net_accept_cancelled_loses_no_connection(void **state)
{
    run_in_loop(accept_cancel_main, NULL);
}

/* Both orders of a cancellation and an arriving connection: a client
 * connects (the kernel completes it at once) and the accepting task's
 * scope is cancelled in the same step. The accept returns the connection
 * or -ECANCELED; then the next accept has it. */
struct accept_race {
    weft_listener *l;
    weft_scope scope;
    bool in;
    int rc;
    weft_stream *s;
};

static int accept_race_task(void *arg)
{
    struct accept_race *r = arg;
    weft_scope_enter(&r->scope, WEFT_FOREVER);
    r->in = true;
    r->rc = weft_listener_accept(r->l, &r->s);
    weft_scope_exit(&r->scope, r->rc < 0 ? r->rc : 0);
    return 0;
}

static int accept_race_main(void *arg)
{
    weft_listener *l;
    int got = 0, cancelled = 0;

    if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0), 0))
        return -EIO;
    struct sockaddr_in sin;
    nh_loopback4(&sin, (uint16_t)weft_listener_port(l));
    for (int i = 0; i < 100; i++) {
        struct accept_race r = {.l = l};
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, accept_race_task, &r), 0);
        th_wait_flag(&r.in);
        if (i % 3 == 1)
            th_settle();
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK_EQ(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
        if (i % 3 == 2)
            th_settle(); /* the accept's completion is reaped first */
        weft_scope_cancel(&r.scope);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        if (r.rc == 0) {
            got++;
        } else {
            CHECK_EQ(r.rc, -ECANCELED);
            cancelled++;
            CHECK_EQ(accept_within(l, &r.s), 0);
        }
        if (r.s) {
            /* it is this client's connection */
            CHECK_EQ(write(fd, "me", 2), 2);
            char buf[4] = {0};
            CHECK_EQ(weft_stream_recv(r.s, buf, sizeof buf), 2);
            CHECK_STR_EQ(buf, "me");
            CHECK_EQ(weft_stream_close(r.s), 0);
        }
        close(fd);
    }
    print_message("      %d accepted anyway, %d cancelled\n", got, cancelled);
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_net_accept_cancel_races_connection(void **state)
{
    run_in_loop(accept_race_main, NULL);
}

/* ---- serve ---- */

struct serve_arg {
    weft_listener *l;
    int rc;
    bool returned;
    int errors, last_error;
    struct sockaddr_storage last_peer; /* on_error's, copied */
    socklen_t last_peer_len;
    bool last_peer_null;
    int handlers, active, max_active;
    weft_event all_done; /* clients that hold their connections */
};

static void count_error(int rc, const struct sockaddr *peer, socklen_t peer_len,
                        void *arg)
{
    struct serve_arg *sa = arg;
    sa->errors++;
    sa->last_error = rc;
    sa->last_peer_null = !peer;
    sa->last_peer_len = peer_len;
    if (peer && peer_len <= sizeof sa->last_peer)
        memcpy(&sa->last_peer, peer, peer_len);
}

static int serve_task(void *arg)
{
    struct serve_arg *sa = arg;
    weft_serve_opts o = {.on_error = count_error};
    sa->rc = weft_listener_serve_opts(sa->l, echo_handler, sa, &o);
    sa->returned = true;
    return 0;
}

/* serve returns -ECANCELED when cancelled, also with handlers running;
 * their connections are closed. */
static int serve_cancel_main(void *arg)
{
    struct serve_arg sa = {0};
    weft_stream *c;
    weft_scope s;

    if (!CHECK_EQ(weft_tcp_listen(&sa.l, "127.0.0.1", 0), 0))
        return -EIO;
    int port = weft_listener_port(sa.l);
    /* cancelled by a deadline, with no connection */
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    int rc = weft_listener_serve(sa.l, echo_handler, NULL);
    CHECK_EQ(rc, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, rc), 0);
    /* cancelled with a handler blocked in recv */
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, serve_task, &sa), 0);
    if (CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), 0)) {
        nh_send_str(c, "echo");
        nh_expect(c, "echo");
        weft_group_cancel(&g);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK(sa.returned);
        CHECK_EQ(sa.rc, -ECANCELED);
        CHECK_EQ(sa.errors, 0); /* a cancelled handler is no failure */
        char buf[4];
        ssize_t r = weft_stream_recv(c, buf, sizeof buf);
        CHECK(r == 0 || r == -ECONNRESET);
        CHECK_EQ(weft_stream_close(c), 0);
    } else {
        weft_group_cancel(&g);
        weft_group_exit(&g, 0);
    }
    /* the listener outlives serve: accept still works */
    if (CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), 0)) {
        weft_stream *s2;
        if (CHECK_EQ(accept_within(sa.l, &s2), 0))
            CHECK_EQ(weft_stream_close(s2), 0);
        CHECK_EQ(weft_stream_close(c), 0);
    }
    CHECK_EQ(weft_listener_close(sa.l), 0);
    return 0;
}

static void test_net_serve_returns_ecanceled_when_cancelled(void **state)
{
    run_in_loop(serve_cancel_main, NULL);
}

/* Closing the listener under serve is a listener error: serve returns
 * -EBADF, after ending its handlers (their connections are closed). */
static int serve_closed_main(void *arg)
{
    struct serve_arg sa = {0};
    weft_stream *c = NULL;

    if (!CHECK_EQ(weft_tcp_listen(&sa.l, "127.0.0.1", 0), 0))
        return -EIO;
    int port = weft_listener_port(sa.l);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, serve_task, &sa), 0);
    if (CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port), 0)) {
        nh_send_str(c, "echo");
        nh_expect(c, "echo");
    }
    CHECK_EQ(weft_listener_close(sa.l), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(sa.returned);
    CHECK_EQ(sa.rc, -EBADF);
    if (c) {
        char buf[4];
        ssize_t r = weft_stream_recv(c, buf, sizeof buf);
        CHECK(r == 0 || r == -ECONNRESET);
        CHECK_EQ(weft_stream_close(c), 0);
    }
    return 0;
}

static void test_net_serve_returns_ebadf_when_listener_closed(void **state)
{
    run_in_loop(serve_closed_main, NULL);
}

/* A handler that fails with -EIO when the client says "fail". */
static int picky_handler(weft_stream *conn, void *arg)
{
    char line[32];
    for (;;) {
        ssize_t r = weft_stream_recv_until(conn, line, sizeof line, "\n", 1);
        if (r <= 0)
            return (int)r;
        if (r == 4 && memcmp(line, "fail", 4) == 0)
            return -EIO;
        line[r++] = '\n';
        if ((r = weft_stream_send(conn, line, (size_t)r)) < 0)
            return (int)r;
    }
}

static int picky_serve_task(void *arg)
{
    struct serve_arg *sa = arg;
    weft_serve_opts o = {.on_error = count_error};
    sa->rc = weft_listener_serve_opts(sa->l, picky_handler, sa, &o);
    sa->returned = true;
    return 0;
}

static int serve_fail_main(void *arg)
{
    struct serve_arg sa = {0};
    weft_stream *c[10];
    char buf[32];

    if (!CHECK_EQ(weft_tcp_listen(&sa.l, "127.0.0.1", 0), 0))
        return -EIO;
    int port = weft_listener_port(sa.l);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, picky_serve_task, &sa), 0);
    for (int i = 0; i < 10; i++)
        if (!CHECK_EQ(weft_tcp_connect(&c[i], "127.0.0.1", (uint16_t)port), 0))
            c[i] = NULL;
    /* connection 3 makes its handler fail */
    if (c[3]) {
        nh_send_str(c[3], "fail\n");
        ssize_t r = weft_stream_recv(c[3], buf, sizeof buf);
        CHECK(r == 0 || r == -ECONNRESET); /* closed by serve */
    }
    /* the others still work, before and after */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 10; i++) {
            if (i == 3 || !c[i])
                continue;
            char msg[16];
            snprintf(msg, sizeof msg, "c%d r%d\n", i, round);
            nh_send_str(c[i], msg);
            nh_expect(c[i], msg);
        }
    /* a new connection after the failure is served too */
    weft_stream *late;
    if (CHECK_EQ(weft_tcp_connect(&late, "127.0.0.1", (uint16_t)port), 0)) {
        nh_send_str(late, "late\n");
        nh_expect(late, "late\n");
        CHECK_EQ(weft_stream_close(late), 0);
    }
    CHECK(!sa.returned);
    CHECK_EQ(sa.errors, 1);
    CHECK_EQ(sa.last_error, -EIO);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(sa.rc, -ECANCELED);
    for (int i = 0; i < 10; i++)
        if (c[i])
            CHECK_EQ(weft_stream_close(c[i]), 0);
    CHECK_EQ(weft_listener_close(sa.l), 0);
    return 0;
}

static void test_net_serve_survives_failing_handler(void **state)
{
    run_in_loop(serve_fail_main, NULL);
}

/* on_error names the failed connection's peer: the client's own address
 * (its getsockname), taken before the handler ran, still known after
 * the client has gone. */
static int serve_error_peer_main(void *arg)
{
    const char *host = arg;
    struct serve_arg sa = {0};
    weft_stream *c;
    char buf[8];

    if (!CHECK_EQ(weft_tcp_listen(&sa.l, host, 0), 0))
        return -EIO;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, picky_serve_task, &sa), 0);
    if (CHECK_EQ(weft_tcp_connect(&c, host, (uint16_t)weft_listener_port(sa.l)),
                 0)) {
        struct sockaddr_storage me;
        socklen_t me_len = sizeof me;
        CHECK_EQ(
            getsockname(weft_stream_fd(c), (struct sockaddr *)&me, &me_len), 0);
        nh_send_str(c, "fail\n");
        ssize_t r = weft_stream_recv(c, buf, sizeof buf);
        CHECK(r == 0 || r == -ECONNRESET); /* closed by serve */
        CHECK_EQ(weft_stream_close(c), 0);
        th_settle(); /* on_error runs after serve closed the connection */
        CHECK_EQ(sa.errors, 1);
        CHECK_EQ(sa.last_error, -EIO);
        CHECK(!sa.last_peer_null);
        if (CHECK_EQ(sa.last_peer_len, me_len))
            CHECK_EQ(memcmp(&sa.last_peer, &me, me_len), 0);
    }
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(sa.rc, -ECANCELED);
    CHECK_EQ(weft_listener_close(sa.l), 0);
    return 0;
}

static void test_net_serve_on_error_gets_the_peer_address(void **state)
{
    run_in_loop(serve_error_peer_main, "127.0.0.1");
    if (!nh_have_ipv6_loopback()) {
        print_message("      no ::1 here: IPv6 not checked\n");
        return;
    }
    run_in_loop(serve_error_peer_main, "::1");
}

/* Without on_error, a failure is a line on stderr (checked in a child). */
static int plain_serve_task(void *arg)
{
    struct serve_arg *sa = arg;
    sa->rc = weft_listener_serve(sa->l, picky_handler, NULL);
    sa->returned = true;
    return 0;
}

static int serve_stderr_main(void *arg)
{
    struct serve_arg sa = {0};
    weft_stream *c;
    char buf[8];

    if (!CHECK_EQ(weft_tcp_listen(&sa.l, "127.0.0.1", 0), 0))
        return -EIO;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, plain_serve_task, &sa), 0);
    if (CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1",
                                  (uint16_t)weft_listener_port(sa.l)),
                 0)) {
        nh_send_str(c, "fail\n");
        ssize_t r = weft_stream_recv(c, buf, sizeof buf);
        CHECK(r == 0 || r == -ECONNRESET);
        CHECK_EQ(weft_stream_close(c), 0);
    }
    th_settle();
    CHECK(!sa.returned);
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(sa.rc, -ECANCELED);
    CHECK_EQ(weft_listener_close(sa.l), 0);
    return 0;
}

static void serve_stderr_body(void)
{
    int rc = weft_run(serve_stderr_main, NULL, NULL);
    if (rc != 0)
        th_fail_at(__FILE__, __LINE__, "weft_run: %d", rc);
}

/* ---- 1,000 connections ---- */

#define NCONN 1000

struct many {
    struct serve_arg sa;
    int port;
    int echoed, failed;
    weft_event all_echoed;
};

static int counting_echo(weft_stream *conn, void *arg)
{
    struct many *m = arg;
    m->sa.active++;
    if (m->sa.active > m->sa.max_active)
        m->sa.max_active = m->sa.active;
    int rc = echo_handler(conn, NULL);
    m->sa.active--;
    return rc;
}

static int many_serve_task(void *arg)
{
    struct many *m = arg;
    weft_serve_opts o = {.on_error = count_error};
    m->sa.rc = weft_listener_serve_opts(m->sa.l, counting_echo, m, &o);
    return 0;
}

struct client {
    struct many *m;
    int i;
};

static int client_task(void *arg)
{
    struct client *cl = arg;
    struct many *m = cl->m;
    weft_stream *c;
    char msg[32], back[32];

    int rc = weft_tcp_connect(&c, "127.0.0.1", (uint16_t)m->port);
    if (!CHECK_EQ(rc, 0)) {
        m->failed++;
        return rc;
    }
    int n = snprintf(msg, sizeof msg, "hello from %d", cl->i);
    rc = (int)weft_stream_send(c, msg, (size_t)n);
    if (rc == n)
        rc = (int)weft_stream_recv_exactly(c, back, (size_t)n);
    if (CHECK_EQ(rc, n) && CHECK(memcmp(msg, back, (size_t)n) == 0)) {
        if (++m->echoed == NCONN)
            weft_event_set(&m->all_echoed);
        /* hold the connection until every client has its echo */
        CHECK_EQ(weft_event_wait(&m->all_echoed), 0);
    } else {
        m->failed++;
    }
    CHECK_EQ(weft_stream_close(c), 0);
    return 0;
}

static int many_main(void *arg)
{
    struct many *m = arg;
    struct client *cl = calloc(NCONN, sizeof *cl);
    weft_group sg, cg;

    if (!CHECK(cl != NULL))
        return -ENOMEM;
    weft_event_init(&m->all_echoed);
    if (!CHECK_EQ(weft_tcp_listen(&m->sa.l, "127.0.0.1", 0), 0))
        return -EIO;
    m->port = weft_listener_port(m->sa.l);
    weft_group_enter(&sg);
    CHECK_EQ(weft_group_spawn_named(&sg, "serve", many_serve_task, m), 0);
    weft_scope guard;
    weft_fail_after(&guard, 30 * WEFT_SEC);
    weft_group_enter(&cg);
    for (int i = 0; i < NCONN; i++) {
        cl[i] = (struct client){m, i};
        if (!CHECK_EQ(weft_group_spawn(&cg, client_task, &cl[i]), 0))
            break;
    }
    int rc = weft_group_exit(&cg, 0);
    CHECK_EQ(weft_scope_exit(&guard, rc), 0);
    CHECK_EQ(m->echoed, NCONN);
    CHECK_EQ(m->failed, 0);
    CHECK_EQ(m->sa.max_active, NCONN); /* all at once */
    /* the handlers end as their clients close */
    for (int i = 0; i < 1000 && m->sa.active; i++)
        weft_sleep(WEFT_MSEC);
    CHECK_EQ(m->sa.active, 0);
    CHECK_EQ(m->sa.errors, 0);
    weft_group_cancel(&sg);
    CHECK_EQ(weft_group_exit(&sg, 0), 0);
    CHECK_EQ(m->sa.rc, -ECANCELED);
    CHECK_EQ(weft_listener_close(m->sa.l), 0);
    free(cl);
    return 0;
}

static void test_net_serve_1000_connections(void **state)
{
    static struct many m;
    if (!nh_raise_nofile(4096)) {
        print_message("cannot raise RLIMIT_NOFILE to 4096\n");
        skip();
    }
    memset(&m, 0, sizeof m);
    run_in_loop(many_main, &m);
}

/* ---- out of file descriptors ---- */

/* Use up every fd below a lowered RLIMIT_NOFILE. */
#define HOG_MAX 4096

struct fdhog {
    struct rlimit old;
    int fds[HOG_MAX];
    int n;
};

static bool hog_fill(struct fdhog *h)
{
    for (;;) {
        int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            return errno == EMFILE;
        if (h->n == HOG_MAX) {
            close(fd);
            return false; /* the limit is not where we put it */
        }
        h->fds[h->n++] = fd;
    }
}

static void hog_release(struct fdhog *h, int n)
{
    while (n-- > 0 && h->n > 0)
        close(h->fds[--h->n]);
}

static bool hog_start(struct fdhog *h)
{
    memset(h, 0, sizeof *h);
    if (getrlimit(RLIMIT_NOFILE, &h->old) < 0)
        return false;
    int top = 0;
    for (int fd = 0; fd < NH_MAX_FD; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            top = fd;
    struct rlimit rl = h->old;
    rl.rlim_cur = (rlim_t)top + 1 + 8;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return false;
    if (!hog_fill(h)) {
        hog_release(h, h->n);
        setrlimit(RLIMIT_NOFILE, &h->old);
        return false;
    }
    return true;
}

static void hog_stop(struct fdhog *h)
{
    hog_release(h, h->n);
    setrlimit(RLIMIT_NOFILE, &h->old);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* A connect on an existing socket, as an io_uring operation (no fd is
 * needed for it, and no name resolution). */
static int raw_connect(int fd, uint16_t port)
{
    struct sockaddr_in sin;
    nh_loopback4(&sin, port);
    struct io_uring_sqe *sqe = th_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sin, sizeof sin);
    return weft_uring_await(sqe);
}

struct emfile_result {
    bool skipped;
    double cpu;
};

static int emfile_main(void *arg)
{
    struct emfile_result *res = arg;
    static struct fdhog h;
    weft_listener *l;
    weft_stream *s;
    char buf[8];

    if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0), 0))
        return -EIO;
    uint16_t port = (uint16_t)weft_listener_port(l);
    int c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(raw_connect(c1, port), 0);

    /* 1. accept with no fd to spare: -EMFILE, and the listener lives */
    if (!hog_start(&h)) {
        res->skipped = true;
        close(c1);
        close(c2);
        CHECK_EQ(weft_listener_close(l), 0);
        return 0;
    }
    CHECK_EQ(accept_within(l, &s), -EMFILE);
    CHECK_EQ(accept_within(l, &s), -EMFILE); /* again: it retried */
    hog_release(&h, 2);
    if (CHECK_EQ(accept_within(l, &s), 0)) {
        CHECK_EQ(write(c1, "c1", 2), 2);
        memset(buf, 0, sizeof buf);
        CHECK_EQ(weft_stream_recv(s, buf, sizeof buf), 2);
        CHECK_STR_EQ(buf, "c1");
        CHECK_EQ(weft_stream_close(s), 0);
    }
    CHECK(hog_fill(&h));

    /* 2. serve out of fds: it backs off instead of spinning */
    struct serve_arg sa = {.l = l};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "serve", serve_task, &sa), 0);
    CHECK_EQ(raw_connect(c2, port), 0);
    th_settle();
    double cpu0 = cpu_seconds();
    CHECK_EQ(weft_sleep(300 * WEFT_MSEC), 0);
    res->cpu = cpu_seconds() - cpu0;
    CHECK(!sa.returned);
    CHECK_EQ(sa.errors, 0);

    /* 3. fds come back: the waiting connection is served */
    hog_release(&h, h.n);
    weft_scope sc;
    weft_fail_after(&sc, 10 * WEFT_SEC);
    int rc = th_write(c2, "ping", 4);
    if (rc == 4) {
        memset(buf, 0, sizeof buf);
        rc = th_read(c2, buf, 4);
    }
    rc = weft_scope_exit(&sc, rc);
    CHECK_EQ(rc, 4);
    CHECK_STR_EQ(buf, "ping");
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(sa.rc, -ECANCELED);
    hog_stop(&h);
    close(c1);
    close(c2);
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_net_listener_emfile_recovers(void **state)
{
    struct emfile_result res = {0};
    run_in_loop(emfile_main, &res);
    print_message("      serve used %.1f ms of CPU in 300 ms out of fds\n",
                  res.cpu * 1e3);
    if (res.skipped) {
        print_message("cannot lower RLIMIT_NOFILE\n");
        skip();
    }
    /* a serve that retried at once would burn the 300 ms */
    assert_true(res.cpu < 0.1);
}

static void test_net_serve_failure_without_on_error_goes_to_stderr(void **state)
{
    struct th_child c;
    th_run_exec_child("serve_stderr", &c);
    th_assert_child_ok(&c);
    print_message("      stderr: %s", c.err);
    /* one line, naming the error */
    assert_non_null(strchr(c.err, '\n'));
    assert_non_null(strstr(c.err, strerror(EIO)));
}

/* ---- weft_listener_from_fd ---- */

static int raw_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* as if inherited */
    struct sockaddr_in sin;
    nh_loopback4(&sin, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        listen(fd, 16) < 0)
        return -1;
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    *port = ntohs(sin.sin_port);
    return fd;
}

static int listener_from_fd_main(void *arg)
{
    (void)arg;
    uint16_t port = 0;
    int fd = raw_listener(&port);
    CHECK_GE(fd, 0);
    weft_listener *l;
    CHECK_EQ(weft_listener_from_fd(&l, fd), 0);
    CHECK_EQ(weft_listener_port(l), port);
    CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    weft_stream *c, *s;
    CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", port), 0);
    CHECK_EQ(weft_listener_accept(l, &s), 0);
    CHECK(nh_send_str(c, "hi"));
    CHECK(nh_expect(s, "hi"));
    weft_stream_close(c);
    weft_stream_close(s);
    CHECK_EQ(weft_listener_close(l), 0);

    /* A Unix listener. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-lfd-%d.sock", getpid());
    unlink(path);
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    CHECK_EQ(bind(u, (struct sockaddr *)&sun, sizeof sun), 0);
    CHECK_EQ(listen(u, 4), 0);
    CHECK_EQ(weft_listener_from_fd(&l, u), 0);
    CHECK_EQ(weft_listener_port(l), -EINVAL);
    CHECK_EQ(weft_unix_connect(&c, path), 0);
    CHECK_EQ(weft_listener_accept(l, &s), 0);
    weft_stream_close(c);
    weft_stream_close(s);
    CHECK_EQ(weft_listener_close(l), 0);
    unlink(path);

    /* Not listening: -EINVAL, the fd closed all the same. */
    int n = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(weft_listener_from_fd(&l, n), -EINVAL);
    CHECK_EQ(fcntl(n, F_GETFD), -1);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(weft_listener_from_fd(&l, p[0]), -ENOTSOCK);
    close(p[1]);
    CHECK_EQ(weft_listener_from_fd(&l, -1), -EBADF);
    CHECK_EQ(weft_listener_from_fd(&l, 100000), -EBADF);
    return 0;
}

static void test_net_listener_from_fd(void **state)
{
    (void)state;
    run_in_loop(listener_from_fd_main, NULL);
}

/* ---- weft_serve_opts.drain_grace ---- */

struct drain_case {
    weft_time work;  /* how long the handler works */
    weft_time grace; /* the drain's */
    bool started, finished;
    int handler_rc, serve_rc;
    uint16_t port;
    weft_listener *l;
    weft_scope scope; /* the server's: cancelled to drain */
    bool ready;
};

static int drain_handler(weft_stream *conn, void *arg)
{
    struct drain_case *dc = arg;
    char buf[8];
    int rc = (int)weft_stream_recv_exactly(conn, buf, 2);
    if (rc < 0)
        return rc;
    dc->started = true;
    rc = weft_sleep(dc->work);
    dc->handler_rc = rc;
    if (rc < 0)
        return rc;
    dc->finished = true;
    return (int)weft_stream_send(conn, "done", 4) < 0 ? -EPIPE : 0;
}

static int drain_server(void *arg)
{
    struct drain_case *dc = arg;
    weft_serve_opts o = {.drain_grace = dc->grace};
    weft_scope_enter(&dc->scope, WEFT_FOREVER);
    dc->ready = true;
    int rc = weft_listener_serve_opts(dc->l, drain_handler, dc, &o);
    dc->serve_rc = rc;
    weft_scope_exit(&dc->scope, rc);
    return 0;
}

static int drain_main(void *arg)
{
    struct drain_case *dc = arg;
    CHECK_EQ(weft_tcp_listen(&dc->l, "127.0.0.1", 0), 0);
    dc->port = (uint16_t)weft_listener_port(dc->l);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, drain_server, dc), 0);
    CHECK(th_wait_flag(&dc->ready));
    weft_stream *c;
    CHECK_EQ(weft_tcp_connect(&c, "127.0.0.1", dc->port), 0);
    CHECK(nh_send_str(c, "go"));
    CHECK(th_wait_flag(&dc->started));
    weft_time t0 = weft_now();
    weft_scope_cancel(&dc->scope); /* the drain starts */
    th_settle();
    /* New connections are refused from now on. */
    weft_stream *late;
    int rc = weft_tcp_connect(&late, "127.0.0.1", dc->port);
    CHECK_EQ(rc, -ECONNREFUSED);
    if (rc == 0)
        weft_stream_close(late);
    char buf[8];
    ssize_t n = weft_stream_recv_exactly(c, buf, 4);
    if (dc->work < dc->grace) {
        CHECK_EQ(n, 4);
    } else {
        CHECK_LE(n, 0);
    }
    weft_stream_close(c);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    weft_time took = weft_now() - t0;
    CHECK_EQ(dc->serve_rc, -ECANCELED);
    if (dc->work >= dc->grace) {
        CHECK_GE(took, dc->grace);
        CHECK_LT(took, dc->work);
    }
    CHECK_EQ(weft_listener_close(dc->l), 0);
    return 0;
}

static void test_net_drain_lets_a_slow_handler_finish(void **state)
{
    (void)state;
    struct drain_case dc = {.work = 100 * WEFT_MSEC, .grace = 5 * WEFT_SEC};
    run_in_loop(drain_main, &dc);
    assert_true(dc.finished);
    assert_int_equal(dc.handler_rc, 0);
}

static void test_net_drain_cancels_at_the_grace_limit(void **state)
{
    (void)state;
    struct drain_case dc = {.work = 10 * WEFT_SEC, .grace = 100 * WEFT_MSEC};
    run_in_loop(drain_main, &dc);
    assert_false(dc.finished);
    assert_int_equal(dc.handler_rc, -ECANCELED);
}

static const struct CMUnitTest tests[] = {
    NET_TEST(test_net_tcp_connect_ipv4),
    NET_TEST(test_net_listener_from_fd),
    NET_TEST(test_net_drain_lets_a_slow_handler_finish),
    NET_TEST(test_net_drain_cancels_at_the_grace_limit),
    NET_TEST(test_net_tcp_connect_ipv6),
    NET_TEST(test_net_tcp_listen_null_host_is_both_families),
    NET_TEST(test_net_tcp_connect_refused),
    NET_TEST(test_net_bad_arguments),
    NET_TEST(test_net_outside_loop_is_eperm),
    NET_TEST(test_net_tcp_options),
    NET_TEST(test_net_tcp_connect_deadline_on_full_backlog),
    NET_TEST(test_net_happy_eyeballs_v4_listener),
    NET_TEST(test_net_happy_eyeballs_v6_listener),
    NET_TEST(test_net_happy_eyeballs_prefers_ipv6),
    NET_TEST(test_net_happy_eyeballs_v6_hangs_v4_wins),
    NET_TEST(test_net_happy_eyeballs_v4_listener_ipv4_only_host),
    NET_TEST(test_net_tcp_listen_null_host_ipv4_only_host),
    NET_TEST(test_net_happy_eyeballs_v6_listener_ipv4_only_host),
    NET_TEST(test_net_tcp_reset_peer),
    NET_TEST(test_net_unix_path),
    NET_TEST(test_net_unix_abstract),
    NET_TEST(test_net_unix_fd_passing),
    NET_TEST(test_net_unix_fd_passing_over_listener),
    NET_TEST(test_net_udp_ipv4_bound_and_connected),
    NET_TEST(test_net_udp_ipv6_bound_and_connected),
    NET_TEST(test_net_udp_open_any_address),
    NET_TEST(test_net_udp_close_while_recvfrom_blocked),
    NET_TEST(test_net_udp_recvfrom_deadline),
    NET_TEST(test_net_wait_readable_writable_pipe),
    NET_TEST(test_net_getaddrinfo),
    NET_TEST(test_net_getaddrinfo_from_64_tasks),
    NET_TEST(test_net_getaddrinfo_cancelled_waiting_for_a_token_leaks_nothing),
    NET_TEST(test_net_listener_close_with_blocked_accept),
    NET_TEST(test_net_listener_close_while_accepter_handed_oneshot),
    NET_TEST(test_net_listener_close_while_accepter_handed_multishot),
    NET_TEST(test_net_accept_cancelled_loses_no_connection),
    NET_TEST(test_net_listener_queue_is_bounded),
    NET_TEST(test_net_accept_cancel_races_connection),
    NET_TEST(test_net_serve_returns_ecanceled_when_cancelled),
    NET_TEST(test_net_serve_returns_ebadf_when_listener_closed),
    NET_TEST(test_net_serve_survives_failing_handler),
    NET_TEST(test_net_serve_on_error_gets_the_peer_address),
    NET_TEST(test_net_serve_failure_without_on_error_goes_to_stderr),
    NET_TEST(test_net_serve_1000_connections),
    NET_TEST(test_net_listener_emfile_recovers),
};

static const struct th_exec_entry children[] = {
    {"he_v4", he_child_v4},
    {"he_v6", he_child_v6},
    {"he_v6_hangs", he_child_v6_hangs},
    {"he_both", he_child_both},
    {"listen_null_netns", listen_null_netns_child},
    {"he_v4_netns", he_child_v4_netns},
    {"he_v6_netns", he_child_v6_netns},
    {"serve_stderr", serve_stderr_body},
    {"gai_token_wait", gai_token_wait_body},
};

TH_MAIN_WITH_CHILDREN(tests, children)
