/* SPDX-License-Identifier: MIT */
/*
 * api/net/unix.c - Unix stream sockets (paths and abstract "@names") and
 * descriptor passing over them (SCM_RIGHTS through SENDMSG/RECVMSG).
 */
#include "api/net/net_impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include <weft/uring.h>

/* ---- Unix connect ---- */

static int unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof sun->sun_path)
        return -EINVAL;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@')
        sun->sun_path[0] = '\0'; /* abstract: no file, no trailing NUL */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                       (path[0] == '@' ? 0 : 1));
    return 0;
}

/* The start both Unix calls share: a task, the address, a socket. */
static int unix_socket(weft_stream **s, weft_listener **l, const char *path,
                       struct sockaddr_un *sun, socklen_t *len)
{
    bool args_ok = (s || l) && unix_addr(path, sun, len) == 0;
    struct weft_task *t;
    int rc = wf_entry(&t, args_ok, false);
    if (rc < 0)
        return rc;
    return wf_new_socket(AF_UNIX, SOCK_STREAM);
}

WF_EXPORT int weft_unix_connect(weft_stream **out, const char *path)
{
    struct sockaddr_un sun;
    socklen_t len;
    int fd = unix_socket(out, NULL, path, &sun, &len);
    if (fd < 0)
        return fd;
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sun, len);
    int rc = wf_await(sqe, "weft_unix_connect");
    if (rc < 0) {
        wf_close(fd);
        return rc;
    }
    return wf_sock_stream_new(fd, out);
}

WF_EXPORT int weft_unix_listen(weft_listener **out, const char *path)
{
    struct sockaddr_un sun;
    socklen_t len;
    int fd = unix_socket(NULL, out, path, &sun, &len);
    if (fd < 0)
        return fd;
    if (bind(fd, (struct sockaddr *)&sun, len) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        int rc = -errno;
        wf_close(fd);
        return rc;
    }
    struct weft_listener *l = wf_listener_new(false);
    if (!l) {
        wf_close(fd);
        return -ENOMEM;
    }
    wf_listener_add(l, fd);
    *out = l;
    return 0;
}

/* ---- fd passing ---- */

enum { MAX_FDS = 253 }; /* SCM_MAX_FD */

/* Control-message room for MAX_FDS descriptors, aligned for cmsghdr. */
struct fd_cbuf {
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    };
};

WF_EXPORT int weft_unix_send_fds(weft_stream *s, const void *msg, size_t len,
                                 const int *fds, size_t nfds)
{
    struct weft_task *t;
    bool args_ok = s && msg && len && (fds || !nfds) && nfds <= MAX_FDS;
    int rc = wf_entry_nowait(&t, args_ok, s && wf_stream_closing(s));
    if (rc < 0)
        return rc;
    if (s->ops != &wf_sock_ops)
        return -ENOTSUP;
    /* The claim adds -EBUSY, then the checkpoint's -ECANCELED. */
    rc = wf_stream_claim(s, 0, false);
    if (rc < 0)
        return rc;
    struct wf_sock_stream *ss = (struct wf_sock_stream *)s;
    struct fd_cbuf u;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe) {
        wf_stream_unclaim(s, false);
        return -EBADF;
    }
    io_uring_prep_sendmsg(sqe, ss->fd, &mh, MSG_NOSIGNAL);
    ssize_t r =
        wf_gate_await(&s->gate, sqe, WEFT_FOREVER, "weft_unix_send_fds");
    size_t sent = r > 0 ? (size_t)r : 0;
    /* The fds went with the first byte; the rest is ordinary data. */
    if (r > 0 && sent < len) {
        wf_stream_unclaim(s, false);
        r = weft_stream_send(s, (const char *)msg + sent, len - sent);
        return r < 0 ? (int)r : 0;
    }
    wf_stream_unclaim(s, false);
    if (r < 0)
        return (int)r;
    return 0;
}

WF_EXPORT ssize_t weft_unix_recv_fds(weft_stream *s, void *msg, size_t max,
                                     int *fds, size_t max_fds, size_t *nfds)
{
    struct weft_task *t;
    bool args_ok = s && msg && max && (fds || !max_fds) && nfds;
    int rc = wf_entry_nowait(&t, args_ok, s && wf_stream_closing(s));
    if (rc < 0)
        return rc;
    if (s->ops != &wf_sock_ops)
        return -ENOTSUP;
    *nfds = 0;
    /* Bytes read ahead, or queued by a multishot receive, carry no fds:
     * hand them out first. While multishot is on, the socket is its. */
    rc = wf_sock_multishot_idle(s, "weft_unix_recv_fds");
    if (rc < 0)
        return rc;
    if (s->rlen || rc)
        return weft_stream_recv(s, msg, max);
    rc = wf_stream_claim(s, 0, true);
    if (rc < 0)
        return rc;
    struct wf_sock_stream *ss = (struct wf_sock_stream *)s;
    struct fd_cbuf u;
    struct iovec iov = {.iov_base = msg, .iov_len = max};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    struct io_uring_sqe *sqe = wf_stream_sqe(s);
    if (!sqe) {
        wf_stream_unclaim(s, true);
        return -EBADF;
    }
    io_uring_prep_recvmsg(sqe, ss->fd, &mh, MSG_CMSG_CLOEXEC);
    ssize_t r =
        wf_gate_await(&s->gate, sqe, WEFT_FOREVER, "weft_unix_recv_fds");
    /* The fds that arrived are ours to hand out or close. */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); r >= 0 && cm;
         cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *in = (int *)CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            if (*nfds < max_fds)
                fds[(*nfds)++] = in[i];
            else
                wf_close(in[i]);
        }
    }
    wf_stream_unclaim(s, true);
    return r;
}
