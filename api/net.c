/*
 * api/net.c - TCP and Unix streams and listeners, name resolution, fd
 * readiness and fd passing, over io_uring (CONNECT, ACCEPT, POLL_ADD,
 * SENDMSG/RECVMSG) and the byte streams of stream.c.
 *
 * A listener owns its accept operations: they stay armed between accept
 * calls (multishot where the kernel has it), their connections queue in
 * the listener, and closing it cancels them and waits for their terminal
 * CQEs. A connection accepted for a task that was cancelled meanwhile is
 * queued for the next accept, never lost.
 */
#include "api/stream.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include <weft/net.h>
#include <weft/sync.h>
#include <weft/thread.h>
#include <weft/uring.h>

/* ---- resolving ---- */

static int gai_errno(int e, int sys_errno)
{
    switch (e) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return sys_errno ? -sys_errno : -EIO;
    default:
        return -EINVAL;
    }
}

/*
 * A lookup the task may give up on (a name server that never answers must
 * not hold a cancelled task): the worker and the task race to the end
 * through `state`, and whichever comes second frees the call and its
 * result, so an abandoned lookup leaks nothing.
 */
enum { GAI_RUNNING, GAI_DONE, GAI_ABANDONED };

struct gai_call {
    char *host, *service;
    struct addrinfo hints;
    bool has_hints;
    struct addrinfo *res;
    int rc, sys_errno;
    _Atomic int state;
};

static void gai_free(struct gai_call *c)
{
    if (c->res)
        freeaddrinfo(c->res);
    free(c->host);
    free(c->service);
    free(c);
}

static int gai_worker(void *arg)
{
    struct gai_call *c = arg;
    c->rc = getaddrinfo(c->host, c->service, c->has_hints ? &c->hints : NULL,
                        &c->res);
    c->sys_errno = errno;
    if (atomic_exchange(&c->state, GAI_DONE) == GAI_ABANDONED)
        gai_free(c);
    return 0;
}

static struct gai_call *gai_new(const char *host, const char *service,
                                const struct addrinfo *hints)
{
    struct gai_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->host = host ? strdup(host) : NULL;
    c->service = service ? strdup(service) : NULL;
    if ((host && !c->host) || (service && !c->service)) {
        gai_free(c);
        return NULL;
    }
    if (hints) {
        c->hints = *hints;
        c->hints.ai_next = NULL;
        c->hints.ai_addr = NULL;
        c->hints.ai_canonname = NULL;
        c->has_hints = true;
    }
    atomic_init(&c->state, GAI_RUNNING);
    return c;
}

WF_EXPORT int weft_getaddrinfo(const char *host, const char *service,
                               const struct addrinfo *hints,
                               struct addrinfo **res)
{
    struct weft_task *t;
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    if (!res || (!host && !service))
        return -EINVAL;
    *res = NULL;
    /* Numbers need no name service: parse them here, on the loop. */
    struct addrinfo num = {0};
    if (hints)
        num = *hints;
    num.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, service, &num, res);
    if (rc != EAI_NONAME)
        return gai_errno(rc, errno);
    struct gai_call *c = gai_new(host, service, hints);
    if (!c)
        return -ENOMEM;
    bool submitted;
    rc = wf_to_thread(gai_worker, c, NULL, WEFT_ABANDON_ON_CANCEL,
                      &submitted);
    if (rc < 0 && !submitted) { /* the job never ran */
        gai_free(c);
        return rc;
    }
    if (rc == -ECANCELED) {
        if (atomic_exchange(&c->state, GAI_ABANDONED) == GAI_DONE)
            gai_free(c); /* it finished, but too late for us */
        return rc;
    }
    rc = gai_errno(c->rc, c->sys_errno);
    if (rc == 0) {
        *res = c->res;
        c->res = NULL;
    }
    gai_free(c);
    return rc;
}

/* host:port as addresses of any family (no AI_ADDRCONFIG: it hides IPv6
 * loopback on hosts whose only real address is IPv4; a family the
 * machine lacks fails at socket() instead). */
int wf_resolve(const char *host, uint16_t port, int socktype, int flags,
               struct addrinfo **res)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = socktype,
        .ai_flags = flags,
    };
    return weft_getaddrinfo(host, service, &hints, res);
}

static int resolve(const char *host, uint16_t port, int flags,
                   struct addrinfo **res)
{
    return wf_resolve(host, port, SOCK_STREAM, flags, res);
}

/* ---- small helpers ---- */

static int new_socket(int family, int type)
{
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

static void set_nodelay(int fd)
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
    int winner;              /* the connected fd, or -1 */
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
    int fd = new_socket(ai->ai_family, SOCK_STREAM);
    int rc = fd;
    if (fd >= 0 && he->local_len &&
        he->local.ss_family == ai->ai_family &&
        bind(fd, (struct sockaddr *)&he->local, he->local_len) < 0)
        rc = -errno;
    if (rc >= 0) {
        struct io_uring_sqe *sqe = weft_uring_sqe();
        io_uring_prep_connect(sqe, fd, ai->ai_addr, ai->ai_addrlen);
        rc = wf_await(sqe, "weft_tcp_connect");
    }
    if (rc >= 0 && he->winner < 0) {
        he->winner = fd; /* the first wins; the others are cancelled */
        weft_group_cancel(he->group);
    } else {
        if (fd >= 0)
            close(fd);
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
    if (!out || !host)
        return -EINVAL;
    *out = NULL;
    struct addrinfo *res;
    int rc = resolve(host, port, 0, &res);
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
        weft_time stagger = opts && opts->stagger ? opts->stagger
                                                  : 250 * WEFT_MSEC;
        rc = he_run(&he, he.n, stagger);
    }
    freeaddrinfo(res);
    if (he.winner >= 0 && rc < 0) { /* won, but cancelled from outside */
        close(he.winner);
        return rc;
    }
    if (he.winner < 0 && rc == 0)
        rc = weft_checkpoint_if_cancelled(); /* the attempts were cancelled */
    if (he.winner < 0)
        return rc < 0 ? rc : (he.first_err ? he.first_err : -ECONNREFUSED);
    if (!opts || !opts->no_delay_off)
        set_nodelay(he.winner);
    return wf_sock_stream_new(he.winner, out);
}

WF_EXPORT int weft_tcp_connect(weft_stream **out, const char *host,
                               uint16_t port)
{
    return weft_tcp_connect_opts(out, host, port, NULL);
}

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
    struct weft_task *t;
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    if (!s && !l)
        return -EINVAL;
    if ((rc = unix_addr(path, sun, len)) < 0)
        return rc;
    return new_socket(AF_UNIX, SOCK_STREAM);
}

WF_EXPORT int weft_unix_connect(weft_stream **out, const char *path)
{
    struct sockaddr_un sun;
    socklen_t len;
    int fd = unix_socket(out, NULL, path, &sun, &len);
    if (fd < 0)
        return fd;
    struct io_uring_sqe *sqe = weft_uring_sqe();
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&sun, len);
    int rc = wf_await(sqe, "weft_unix_connect");
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return wf_sock_stream_new(fd, out);
}

/* ---- listeners ---- */

enum { QHIGH = 256 }; /* queued connections before multishot pauses */

struct wf_acceptor {
    struct wf_completion c;
    struct weft_listener *l;
    int fd;
    bool armed, multishot;
};

struct weft_listener {
    struct wf_acceptor acc[8];
    int nacc;
    int port;
    bool tcp, multishot, closing;
    int err;                 /* an accept error to report once */
    int *q;                  /* accepted, not yet taken */
    size_t qcap, qhead, qlen;
    wf_link waiters;
    size_t nwait;
    struct weft_task *closer;
    struct wf_defer pause;   /* stop multishot: too many queued */
};

static bool any_armed(const struct weft_listener *l)
{
    for (int i = 0; i < l->nacc; i++)
        if (l->acc[i].armed)
            return true;
    return false;
}

static int q_push(struct weft_listener *l, int fd)
{
    if (l->qlen == l->qcap) {
        size_t cap = l->qcap ? l->qcap * 2 : 16;
        int *q = malloc(cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < l->qlen; i++)
            q[i] = l->q[(l->qhead + i) % l->qcap];
        free(l->q);
        l->q = q;
        l->qcap = cap;
        l->qhead = 0;
    }
    l->q[(l->qhead + l->qlen++) % l->qcap] = fd;
    return 0;
}

static int q_pop(struct weft_listener *l)
{
    int fd = l->q[l->qhead];
    l->qhead = (l->qhead + 1) % l->qcap;
    l->qlen--;
    return fd;
}

/* A completion of an accept: reap context, so no SQEs here. */
static void accept_done(struct wf_completion *c, int res, unsigned flags)
{
    struct wf_acceptor *a = wf_container_of(c, struct wf_acceptor, c);
    struct weft_listener *l = a->l;
    if (!(flags & IORING_CQE_F_MORE))
        a->armed = false;
    if (res >= 0) {
        if (l->closing || q_push(l, res) < 0)
            close(res);
        else if (l->qlen >= QHIGH && a->armed)
            wf_defer(wf_cur, &l->pause); /* no SQE may be taken here */
    } else if (res == -EINVAL && a->multishot) {
        l->multishot = false; /* an old kernel: one-shot from now on */
    } else if (res != -ECANCELED) {
        l->err = res; /* -EMFILE and friends: the accepter hears of it */
    }
    struct wf_waiter *wr = wf_waiter_first(&l->waiters);
    if (wr)
        wf_waiter_grant(wr, 0);
    if (l->closer && !any_armed(l))
        wf_wake(l->closer);
}

static void arm(struct weft_listener *l)
{
    struct wf_loop *L = wf_cur;
    for (int i = 0; i < l->nacc; i++) {
        struct wf_acceptor *a = &l->acc[i];
        if (a->armed)
            continue;
        struct io_uring_sqe *sqe = wf_ring_sqe(&L->ring);
        a->multishot = l->multishot;
        if (a->multishot)
            io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL,
                                           SOCK_CLOEXEC);
        else
            io_uring_prep_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
        wf_ring_track(&L->ring, sqe, &a->c);
        a->armed = true;
    }
}

/* A flood nobody accepts fast enough: stop pulling from the backlog
 * (the kernel's backlog then bounds it); accept re-arms once drained. */
static void throttle(struct weft_listener *l)
{
    for (int i = 0; i < l->nacc; i++)
        if (l->acc[i].armed && l->acc[i].multishot)
            wf_ring_cancel(&wf_cur->ring, &l->acc[i].c);
}

WF_EXPORT int weft_listener_accept(weft_listener *l, weft_stream **out)
{
    struct weft_task *t;
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    if (!l || !out)
        return -EINVAL;
    for (;;) {
        if (l->closing)
            return -EBADF;
        if (l->qlen) {
            int fd = q_pop(l);
            if (l->tcp)
                set_nodelay(fd);
            return wf_sock_stream_new(fd, out);
        }
        if (l->err) {
            rc = l->err;
            l->err = 0;
            return rc;
        }
        arm(l);
        /* Arming may have flushed the SQ and reaped: look again. */
        if (l->qlen || l->err || l->closing)
            continue;
        struct wf_waiter wr = {0};
        rc = wf_waiter_block(&wr, &l->waiters, &l->nwait,
                             "weft_listener_accept", true);
        if (rc < 0)
            return rc;
    }
}

WF_EXPORT int weft_listener_close(weft_listener *l)
{
    if (!l)
        return -EINVAL;
    if (l->closing)
        return -EBADF;
    l->closing = true;
    wf_defer_cancel(&l->pause);
    struct wf_waiter *wr;
    while ((wr = wf_waiter_first(&l->waiters)))
        wf_waiter_grant(wr, -EBADF);
    if (any_armed(l)) {
        struct weft_task *t = wf_self();
        if (!t)
            wf_panic("weft_listener_close: accepts in flight and no task to "
                     "wait for them (close listeners inside the loop)");
        for (int i = 0; i < l->nacc; i++)
            if (l->acc[i].armed)
                wf_ring_cancel(&t->loop->ring, &l->acc[i].c);
        while (any_armed(l)) {
            struct wf_wait w = {.what = "weft_listener_close"};
            l->closer = t;
            wf_block(&w);
            l->closer = NULL;
        }
    }
    while (l->qlen)
        close(q_pop(l));
    int rc = 0;
    for (int i = 0; i < l->nacc; i++)
        if (close(l->acc[i].fd) < 0 && !rc)
            rc = -errno;
    free(l->q);
    free(l);
    return rc;
}

WF_EXPORT int weft_listener_port(const weft_listener *l)
{
    return l && l->tcp ? l->port : -EINVAL;
}

static void pause_run(struct wf_defer *d)
{
    throttle(wf_container_of(d, struct weft_listener, pause));
}

static struct weft_listener *listener_new(bool tcp)
{
    struct weft_listener *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->pause.fn = pause_run;
    l->tcp = tcp;
    l->multishot = true;
    wf_list_init(&l->waiters);
    return l;
}

static int listener_add(struct weft_listener *l, int fd)
{
    if (l->nacc == (int)(sizeof l->acc / sizeof l->acc[0])) {
        close(fd);
        return -ENOSPC;
    }
    struct wf_acceptor *a = &l->acc[l->nacc++];
    a->c.fn = accept_done;
    a->l = l;
    a->fd = fd;
    return 0;
}

static void listener_abort(struct weft_listener *l)
{
    for (int i = 0; i < l->nacc; i++)
        close(l->acc[i].fd);
    free(l);
}

/* One listening TCP socket on addr; returns its fd. */
static int tcp_socket(const struct sockaddr *addr, socklen_t len,
                      const weft_listen_opts *o)
{
    int fd = new_socket(addr->sa_family, SOCK_STREAM);
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
    close(fd);
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
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    if (!out)
        return -EINVAL;
    struct addrinfo *res;
    rc = resolve(host, port, AI_PASSIVE, &res);
    if (rc < 0)
        return rc;
    struct weft_listener *l = listener_new(true);
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
        if (fd < 0 || (rc = listener_add(l, fd)) < 0) {
            listener_abort(l);
            freeaddrinfo(res);
            return fd < 0 ? fd : rc;
        }
        int bound = l->port ? l->port : wf_sock_port(fd);
        l->port = bound > 0 ? bound : 0;
    }
    freeaddrinfo(res);
    if (!l->nacc) {
        listener_abort(l);
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
        close(fd);
        return rc;
    }
    struct weft_listener *l = listener_new(false);
    if (!l) {
        close(fd);
        return -ENOMEM;
    }
    listener_add(l, fd);
    *out = l;
    return 0;
}

/* ---- serve ---- */

struct serve_ctx {
    int (*handler)(weft_stream *conn, void *arg);
    void *arg;
    const weft_serve_opts *opts;
};

static int serve_conn(void *p)
{
    weft_stream *conn = p;
    struct serve_ctx *ctx = conn->serve;
    int rc = ctx->handler(conn, ctx->arg);
    weft_stream_close(conn);
    if (rc < 0 && rc != -ECANCELED) {
        if (ctx->opts && ctx->opts->on_error)
            ctx->opts->on_error(rc, ctx->arg);
        else
            fprintf(stderr, "weft: connection handler failed: %s\n",
                    weft_strerror(rc));
    }
    return 0; /* one connection's failure is not the server's */
}

static bool out_of_fds(int rc)
{
    return rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM;
}

WF_EXPORT int weft_listener_serve_opts(weft_listener *l,
                                       int (*handler)(weft_stream *, void *),
                                       void *arg, const weft_serve_opts *opts)
{
    struct weft_task *t;
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    if (!l || !handler)
        return -EINVAL;
    struct serve_ctx ctx = {handler, arg, opts};
    weft_group g;
    weft_group_enter(&g);
    weft_time backoff = 0;
    for (;;) {
        weft_stream *conn;
        rc = weft_listener_accept(l, &conn);
        if (out_of_fds(rc)) {
            /* No fd to take the next one: wait for some to be freed. */
            backoff = backoff ? backoff * 2 : 5 * WEFT_MSEC;
            if (backoff > WEFT_SEC)
                backoff = WEFT_SEC;
            rc = weft_sleep(backoff);
            if (rc < 0)
                break;
            continue;
        }
        if (rc < 0)
            break;
        backoff = 0;
        conn->serve = &ctx;
        rc = weft_group_spawn(&g, serve_conn, conn);
        if (rc < 0) {
            weft_stream_close(conn);
            if (rc != -ENOMEM)
                break;
        }
    }
    return weft_group_exit(&g, rc);
}

WF_EXPORT int weft_listener_serve(weft_listener *l,
                                  int (*handler)(weft_stream *, void *),
                                  void *arg)
{
    return weft_listener_serve_opts(l, handler, arg, NULL);
}

/* ---- readiness ---- */

static int wait_poll(int fd, unsigned mask, const char *what)
{
    struct weft_task *t;
    int rc = wf_check(&t);
    if (rc < 0)
        return rc;
    if (fd < 0)
        return -EBADF;
    struct io_uring_sqe *sqe = weft_uring_sqe();
    io_uring_prep_poll_add(sqe, fd, mask);
    rc = wf_await(sqe, what);
    return rc < 0 ? rc : 0;
}

WF_EXPORT int weft_wait_readable(int fd)
{
    return wait_poll(fd, POLLIN, "weft_wait_readable");
}

WF_EXPORT int weft_wait_writable(int fd)
{
    return wait_poll(fd, POLLOUT, "weft_wait_writable");
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
    if (!s || (!msg && len) || (!fds && nfds) || nfds > MAX_FDS || !len)
        return -EINVAL;
    if (s->ops != &wf_sock_ops)
        return -ENOTSUP;
    int rc = wf_stream_claim(s, &s->sender);
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
        wf_stream_unclaim(s, &s->sender);
        return -EBADF;
    }
    io_uring_prep_sendmsg(sqe, ss->fd, &mh, MSG_NOSIGNAL);
    ssize_t r = wf_io_await(&ss->sio, sqe, WEFT_FOREVER, "weft_unix_send_fds");
    size_t sent = r > 0 ? (size_t)r : 0;
    /* The fds went with the first byte; the rest is ordinary data. */
    if (r > 0 && sent < len) {
        wf_stream_unclaim(s, &s->sender);
        r = weft_stream_send(s, (const char *)msg + sent, len - sent);
        return r < 0 ? (int)r : 0;
    }
    wf_stream_unclaim(s, &s->sender);
    if (r < 0)
        return s->closing ? -EBADF : (int)r;
    return 0;
}

WF_EXPORT ssize_t weft_unix_recv_fds(weft_stream *s, void *msg, size_t max,
                                     int *fds, size_t max_fds, size_t *nfds)
{
    if (!s || !msg || !max || (!fds && max_fds) || !nfds)
        return -EINVAL;
    if (s->ops != &wf_sock_ops)
        return -ENOTSUP;
    *nfds = 0;
    if (s->rlen) /* bytes read ahead carry no fds: hand them out first */
        return weft_stream_recv(s, msg, max);
    int rc = wf_stream_claim(s, &s->receiver);
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
        wf_stream_unclaim(s, &s->receiver);
        return -EBADF;
    }
    io_uring_prep_recvmsg(sqe, ss->fd, &mh, MSG_CMSG_CLOEXEC);
    ssize_t r = wf_io_await(&ss->rio, sqe, WEFT_FOREVER, "weft_unix_recv_fds");
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
                close(in[i]);
        }
    }
    wf_stream_unclaim(s, &s->receiver);
    if (r < 0 && s->closing)
        return -EBADF;
    return r;
}
