/* SPDX-License-Identifier: MIT */
/*
 * api/net/tcp.c - TCP: connect with Happy Eyeballs (RFC 8305) and
 * listening sockets on every address of a host, over io_uring CONNECT.
 */
#include "api/net/net_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>
#include <weft/sync.h>
#include <weft/uring.h>

static int resolve(const char *host, uint16_t port, int flags,
                   struct addrinfo **res)
{
    return wf_resolve(host, port, SOCK_STREAM, flags, res);
}

/* ---- small helpers ---- */

int wf_new_socket(int family, int type)
{
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

void wf_set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- TCP connect, Happy Eyeballs ---- */

struct he {
    struct addrinfo **addrs;
    size_t n;
    weft_semaphore progress; /* one release per attempt that ends */
    weft_group *group;
    struct sockaddr_storage local;
    socklen_t local_len;
    int winner; /* the connected fd, or -1 */
    int first_err;
};

struct he_attempt {
    struct he *he;
    size_t i;
};

static int he_try(void *arg)
{
    struct he_attempt *a = arg;
    struct he *he = a->he;
    const struct addrinfo *ai = he->addrs[a->i];
    int fd = wf_new_socket(ai->ai_family, SOCK_STREAM);
    int rc = fd;
    if (fd >= 0 && he->local_len && he->local.ss_family == ai->ai_family &&
        bind(fd, (struct sockaddr *)&he->local, he->local_len) < 0)
        rc = -errno;
    if (rc >= 0) {
        struct io_uring_sqe *sqe = wf_sqe();
        io_uring_prep_connect(sqe, fd, ai->ai_addr, ai->ai_addrlen);
        rc = wf_await(sqe, "weft_tcp_connect");
    }
    if (rc >= 0 && he->winner < 0) {
        he->winner = fd; /* the first wins; the others are cancelled */
        weft_group_cancel(he->group);
    } else {
        if (fd >= 0)
            wf_close(fd);
        if (rc < 0 && rc != -ECANCELED && !he->first_err)
            he->first_err = rc;
    }
    weft_semaphore_release(&he->progress);
    return 0;
}

/* RFC 8305 order: alternate families, starting with the first IPv6. */
static size_t he_order(struct addrinfo *res, struct addrinfo **out, size_t max)
{
    struct addrinfo *v6[64], *v4[64];
    size_t n6 = 0, n4 = 0, n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET6 && n6 < 64)
            v6[n6++] = ai;
        else if (ai->ai_family == AF_INET && n4 < 64)
            v4[n4++] = ai;
    }
    for (size_t i = 0; n < max && (i < n6 || i < n4); i++) {
        if (i < n6 && n < max)
            out[n++] = v6[i];
        if (i < n4 && n < max)
            out[n++] = v4[i];
    }
    return n;
}

static int he_local(struct he *he, const char *local_host)
{
    if (!local_host)
        return 0;
    struct addrinfo *res;
    int rc = resolve(local_host, 0, AI_PASSIVE, &res);
    if (rc < 0)
        return rc;
    memcpy(&he->local, res->ai_addr, res->ai_addrlen);
    he->local_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int he_run(struct he *he, size_t n, weft_time stagger)
{
    struct he_attempt at[128];
    weft_group g;
    weft_group_enter(&g);
    he->group = &g;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0 && he->winner < 0; i++) {
        at[i] = (struct he_attempt){he, i};
        rc = weft_group_spawn(&g, he_try, &at[i]);
        if (rc < 0 || i + 1 == n)
            break;
        /* The next attempt starts after the stagger, or at once when an
         * attempt fails. */
        weft_scope s;
        weft_move_on_after(&s, stagger);
        rc = weft_scope_exit(&s, weft_semaphore_acquire(&he->progress));
    }
    return weft_group_exit(&g, rc);
}

WF_EXPORT int weft_tcp_connect_opts(weft_stream **out, const char *host,
                                    uint16_t port,
                                    const weft_connect_opts *opts)
{
    struct weft_task *t;
    int rc = wf_entry(&t, out && host, false);
    if (rc < 0)
        return rc;
    *out = NULL;
    struct addrinfo *res;
    rc = resolve(host, port, 0, &res);
    if (rc < 0)
        return rc;
    struct addrinfo *order[128];
    struct he he = {.addrs = order, .winner = -1};
    he.n = he_order(res, order, 128);
    weft_semaphore_init(&he.progress, 0, 0);
    rc = he_local(&he, opts ? opts->local_host : NULL);
    if (rc == 0 && he.n == 0)
        rc = -EADDRNOTAVAIL;
    if (rc == 0) {
        weft_time stagger =
            opts && opts->stagger ? opts->stagger : 250 * WEFT_MSEC;
        rc = he_run(&he, he.n, stagger);
    }
    freeaddrinfo(res);
    if (he.winner >= 0 && rc < 0) { /* won, but cancelled from outside */
        wf_close(he.winner);
        return rc;
    }
    if (he.winner < 0 && rc == 0)
        rc = weft_checkpoint_if_cancelled(); /* the attempts were cancelled */
    if (he.winner < 0)
        return rc < 0 ? rc : (he.first_err ? he.first_err : -ECONNREFUSED);
    if (!opts || !opts->nagle)
        wf_set_nodelay(he.winner);
    return wf_sock_stream_new(he.winner, out);
}

WF_EXPORT int weft_tcp_connect(weft_stream **out, const char *host,
                               uint16_t port)
{
    return weft_tcp_connect_opts(out, host, port, NULL);
}

/* ---- listening ---- */

/* One listening TCP socket on addr; returns its fd. */
static int tcp_socket(const struct sockaddr *addr, socklen_t len,
                      const weft_listen_opts *o)
{
    int fd = wf_new_socket(addr->sa_family, SOCK_STREAM);
    if (fd < 0)
        return fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (o && o->reuse_port &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, addr, len) < 0)
        goto fail;
    if (listen(fd, o && o->backlog ? o->backlog : SOMAXCONN) < 0)
        goto fail;
    return fd;
fail:;
    int rc = -errno;
    wf_close(fd);
    return rc;
}

int wf_sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void set_port(struct sockaddr *sa, uint16_t port)
{
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
}

WF_EXPORT int weft_tcp_listen_opts(weft_listener **out, const char *host,
                                   uint16_t port, const weft_listen_opts *o)
{
    struct weft_task *t;
    int rc = wf_entry(&t, out != NULL, false);
    if (rc < 0)
        return rc;
    struct addrinfo *res;
    rc = resolve(host, port, AI_PASSIVE, &res);
    if (rc < 0)
        return rc;
    struct weft_listener *l = wf_listener_new(true);
    if (!l) {
        freeaddrinfo(res);
        return -ENOMEM;
    }
    l->multishot = !(o && o->no_multishot);
    /* Every address: with no host, the wildcard of each family. Port 0
     * becomes the first socket's port for all of them. */
    int last = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (l->nacc && l->port)
            set_port(ai->ai_addr, (uint16_t)l->port);
        int fd = tcp_socket(ai->ai_addr, ai->ai_addrlen, o);
        if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL) {
            last = fd; /* a family this machine lacks */
            continue;
        }
        if (fd < 0 || (rc = wf_listener_add(l, fd)) < 0) {
            wf_listener_abort(l);
            freeaddrinfo(res);
            return fd < 0 ? fd : rc;
        }
        int bound = l->port ? l->port : wf_sock_port(fd);
        l->port = bound > 0 ? bound : 0;
    }
    freeaddrinfo(res);
    if (!l->nacc) {
        wf_listener_abort(l);
        return last ? last : -EADDRNOTAVAIL;
    }
    *out = l;
    return 0;
}

WF_EXPORT int weft_tcp_listen(weft_listener **out, const char *host,
                              uint16_t port)
{
    return weft_tcp_listen_opts(out, host, port, NULL);
}
