/* SPDX-License-Identifier: MIT */
/*
 * api/net/udp.c - UDP sockets, bound and connected, over SENDMSG/RECVMSG.
 * Datagrams are whole, so many tasks may send and receive on one socket
 * at once; each call is inside the socket's gate, so that closing it
 * cancels every operation in flight and waits for the calls to end.
 */
#include "api/net/net_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/net.h>
#include <weft/uring.h>

struct weft_udp {
    int fd;
    int family;
    struct wf_gate gate; /* the calls of every task on fd */
};

static int udp_resolve(const char *host, uint16_t port, int flags,
                       struct addrinfo **res)
{
    return wf_resolve(host, port, SOCK_DGRAM, flags, res);
}

WF_EXPORT int weft_udp_open(weft_udp **out, const char *local_host,
                            uint16_t local_port)
{
    struct weft_task *t;
    int rc = wf_entry(&t, out != NULL, false);
    if (rc < 0)
        return rc;
    struct addrinfo *res;
    /* No host: prefer one dual-stack IPv6 socket, else IPv4. */
    rc = udp_resolve(local_host ? local_host : "::", local_port, AI_PASSIVE,
                     &res);
    if (rc < 0 && !local_host)
        rc = udp_resolve("0.0.0.0", local_port, AI_PASSIVE, &res);
    if (rc < 0)
        return rc;
    int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 && !local_host && res->ai_family == AF_INET6) {
        freeaddrinfo(res);
        rc = udp_resolve("0.0.0.0", local_port, AI_PASSIVE, &res);
        if (rc < 0)
            return rc;
        fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        rc = -errno;
        freeaddrinfo(res);
        return rc;
    }
    int zero = 0;
    if (res->ai_family == AF_INET6 && !local_host)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct weft_udp *u = wf_calloc(1, sizeof *u);
    if (!u || bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        rc = u ? -errno : -ENOMEM;
        wf_free(u);
        wf_close(fd);
        freeaddrinfo(res);
        return rc;
    }
    u->fd = fd;
    u->family = res->ai_family;
    wf_gate_init(&u->gate);
    freeaddrinfo(res);
    *out = u;
    return 0;
}

WF_EXPORT int weft_udp_connect(weft_udp *u, const char *host, uint16_t port)
{
    struct weft_task *t;
    int rc = wf_entry(&t, u && host, u && u->gate.closing);
    if (rc < 0)
        return rc;
    struct addrinfo *res;
    wf_gate_enter(&u->gate); /* resolving may wait */
    rc = udp_resolve(host, port, 0, &res);
    if (rc == 0 && u->gate.closing) {
        freeaddrinfo(res);
        rc = -EBADF;
    }
    if (rc < 0) {
        wf_gate_leave(&u->gate);
        return rc;
    }
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct sockaddr_in6 mapped;
        const struct sockaddr *sa = ai->ai_addr;
        socklen_t len = ai->ai_addrlen;
        if (u->family == AF_INET6 && ai->ai_family == AF_INET) {
            /* A dual-stack socket reaches IPv4 as ::ffff:a.b.c.d. */
            const struct sockaddr_in *in = (const void *)sa;
            memset(&mapped, 0, sizeof mapped);
            mapped.sin6_family = AF_INET6;
            mapped.sin6_port = in->sin_port;
            mapped.sin6_addr.s6_addr[10] = 0xff;
            mapped.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&mapped.sin6_addr.s6_addr[12], &in->sin_addr, 4);
            sa = (const struct sockaddr *)&mapped;
            len = sizeof mapped;
        } else if (ai->ai_family != u->family) {
            continue;
        }
        rc = connect(u->fd, sa, len) < 0 ? -errno : 0;
        if (rc == 0)
            break;
    }
    freeaddrinfo(res);
    wf_gate_leave(&u->gate);
    return rc;
}

/* One message operation, inside the gate. */
static ssize_t udp_io(weft_udp *u, struct msghdr *mh, bool send,
                      const char *what)
{
    wf_gate_enter(&u->gate);
    ssize_t r = -EBADF;
    struct io_uring_sqe *sqe = wf_gate_sqe(&u->gate);
    if (sqe) {
        if (send)
            io_uring_prep_sendmsg(sqe, u->fd, mh, MSG_NOSIGNAL);
        else
            io_uring_prep_recvmsg(sqe, u->fd, mh, 0);
        r = wf_gate_await(&u->gate, sqe, WEFT_FOREVER, what);
    }
    wf_gate_leave(&u->gate);
    return r;
}

WF_EXPORT ssize_t weft_udp_sendto(weft_udp *u, const void *buf, size_t len,
                                  const struct sockaddr *to, socklen_t tolen)
{
    struct weft_task *t;
    int rc = wf_entry(&t, u && (buf || !len), u && u->gate.closing);
    if (rc < 0)
        return rc;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_name = (void *)to,
                        .msg_namelen = to ? tolen : 0,
                        .msg_iov = &iov,
                        .msg_iovlen = 1};
    return udp_io(u, &mh, true, "weft_udp_sendto");
}

WF_EXPORT ssize_t weft_udp_recvfrom(weft_udp *u, void *buf, size_t max,
                                    struct sockaddr_storage *from,
                                    socklen_t *fromlen)
{
    struct weft_task *t;
    int rc = wf_entry(&t, u && (buf || !max), u && u->gate.closing);
    if (rc < 0)
        return rc;
    struct iovec iov = {.iov_base = buf, .iov_len = max};
    struct msghdr mh = {.msg_name = from,
                        .msg_namelen = from ? sizeof *from : 0,
                        .msg_iov = &iov,
                        .msg_iovlen = 1};
    ssize_t r = udp_io(u, &mh, false, "weft_udp_recvfrom");
    if (r >= 0 && fromlen)
        *fromlen = mh.msg_namelen;
    return r;
}

WF_EXPORT int weft_udp_port(const weft_udp *u)
{
    return u ? wf_sock_port(u->fd) : -EINVAL;
}

WF_EXPORT int weft_udp_close(weft_udp *u)
{
    if (!u)
        return -EINVAL;
    if (u->gate.closing)
        return -EBADF;
    wf_gate_close(&u->gate, "weft_udp_close");
    int rc = wf_close(u->fd) < 0 ? -errno : 0;
    wf_free(u);
    return rc;
}
