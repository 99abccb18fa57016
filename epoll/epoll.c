/* SPDX-License-Identifier: MIT */
/*
 * epoll/epoll.c - the epoll backend: the SQ read and carried out here.
 *
 * An SQE becomes an op (a copy: its slot is reused at once). An op that
 * can finish now finishes in wf_epoll_submit and its completion waits in
 * cq until the pump dispatches it, as a CQE would. Otherwise it waits on
 * its descriptor (fds[fd], woken by epoll), in the pool's queue (a worker
 * runs it), or both are bounded by a linked timeout in the heap. Every
 * op that has not finished is in the hash by user_data, for ASYNC_CANCEL.
 *
 * A descriptor is registered once, edge-triggered, for reading and
 * writing. Its rd/wr flags say whether an edge came since the last
 * -EAGAIN: an op on a registered descriptor with no edge since waits
 * without trying (io_uring's POLL_FIRST, always), so a receive that finds
 * nothing costs no system call.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "epoll/epoll.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { OP_FTRUNCATE = 55 }; /* IORING_OP_FTRUNCATE: newer than the header */

enum op_state { S_NEW, S_WAIT, S_QUEUED, S_RUNNING, S_TIMER };
enum { DIR_IN = 1, DIR_OUT = 2 };
enum fd_kind { K_UNKNOWN, K_POLL, K_FILE };

struct op {
    struct io_uring_sqe sqe; /* a copy */
    struct op *next, *prev;  /* fd wait list, pool queue or done list */
    struct op *hnext;        /* hash chain */
    struct op *tmo;          /* its linked timeout */
    struct op *linked;       /* a timeout's op */
    int64_t when;            /* a timeout's deadline (CLOCK_MONOTONIC ns) */
    unsigned hi;             /* a timeout's place in the heap */
    uint8_t state; /* of a pool job: read and written under the pool's lock */
    uint8_t dir;
    bool pooled;     /* handed to the pool (the loop's own copy) */
    bool connecting; /* CONNECT: EINPROGRESS seen, SO_ERROR next */
    int res;         /* a pool job's result */
};

struct fdstate {
    struct op *head, *tail; /* ops waiting on it, oldest first */
    uint8_t kind;
    bool regd;      /* in the epoll set */
    bool nb;        /* O_NONBLOCK set */
    bool rd, wr;    /* an edge since the last -EAGAIN that way */
    uint8_t stream; /* a byte stream (SOCK_STREAM): 0 not known, 1, 2 not */
    bool ended;     /* hang-up or error seen: reads never block again */
    bool direct;    /* O_DIRECT: a read waits for the device, NOWAIT or not */
};

struct cqe {
    struct wf_completion *c;
    int res;
    unsigned flags;
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct op *qhead, *qtail; /* jobs not yet taken */
    struct op *done;          /* finished jobs, newest first */
    _Atomic bool any_done;
    unsigned nthreads, idle, max;
    pthread_t *threads;
    bool stop;
    int efd; /* written when done goes from empty to not */
};

struct wf_epoll {
    int epfd;
    unsigned sq_head; /* the SQ's head: r->ring.sq.khead points here */
    struct io_uring_sqe *sqes;
    struct fdstate *fds;
    unsigned nfds;
    struct cqe *cq;
    unsigned ncq, capcq;
    struct op **hash;
    unsigned hmask, hcount;
    struct op **heap; /* linked timeouts, earliest first */
    unsigned nheap, capheap;
    struct op *free_ops;
    void **chunks;
    unsigned nchunks;
    unsigned skips;   /* pumps that did not look at epoll */
    unsigned waiting; /* ops waiting on descriptors */
    struct pool pool;
    bool pool_started;
    bool no_pwait2;
};

/* epoll_event.data of the pool's eventfd: no descriptor's number. */
#define POOL_TAG UINT64_MAX

static void oom(const char *what)
{
    fprintf(stderr, "weft: epoll backend: out of memory (%s)\n", what);
    abort();
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- ops ---- */

static struct op *op_new(struct wf_epoll *ep)
{
    if (!ep->free_ops) {
        enum { N = 256 };
        void **c = realloc(ep->chunks, (ep->nchunks + 1) * sizeof *c);
        if (!c)
            oom("ops");
        ep->chunks = c;
        struct op *v = calloc(N, sizeof *v);
        if (!v)
            oom("ops");
        c[ep->nchunks++] = v;
        for (unsigned i = 0; i < N; i++) {
            v[i].next = ep->free_ops;
            ep->free_ops = &v[i];
        }
    }
    struct op *o = ep->free_ops;
    ep->free_ops = o->next;
    o->next = o->prev = o->hnext = o->tmo = o->linked = NULL;
    o->state = S_NEW;
    o->dir = 0;
    o->pooled = false;
    o->connecting = false;
    return o;
}

static void op_free(struct wf_epoll *ep, struct op *o)
{
    o->next = ep->free_ops;
    ep->free_ops = o;
}

/* ---- the hash: user_data -> op, for ASYNC_CANCEL ---- */

static inline unsigned hslot(const struct wf_epoll *ep, uint64_t data)
{
    data ^= data >> 29;
    data *= 0xbf58476d1ce4e5b9ull;
    return (unsigned)(data >> 32) & ep->hmask;
}

static void hash_add(struct wf_epoll *ep, struct op *o)
{
    if (ep->hcount >= ep->hmask) {
        unsigned n = (ep->hmask + 1) * 2;
        struct op **h = calloc(n, sizeof *h);
        if (!h)
            oom("hash");
        struct op **old = ep->hash;
        unsigned oldn = ep->hmask + 1;
        ep->hash = h;
        ep->hmask = n - 1;
        for (unsigned i = 0; i < oldn; i++) {
            for (struct op *p = old[i], *nx; p; p = nx) {
                nx = p->hnext;
                unsigned s = hslot(ep, p->sqe.user_data);
                p->hnext = h[s];
                h[s] = p;
            }
        }
        free(old);
    }
    unsigned s = hslot(ep, o->sqe.user_data);
    o->hnext = ep->hash[s];
    ep->hash[s] = o;
    ep->hcount++;
}

static void hash_del(struct wf_epoll *ep, struct op *o)
{
    struct op **pp = &ep->hash[hslot(ep, o->sqe.user_data)];
    while (*pp && *pp != o)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = o->hnext;
        ep->hcount--;
    }
}

static struct op *hash_find(struct wf_epoll *ep, uint64_t data)
{
    for (struct op *p = ep->hash[hslot(ep, data)]; p; p = p->hnext)
        if (p->sqe.user_data == data)
            return p;
    return NULL;
}

/* ---- the timeout heap ---- */

static void heap_swap(struct wf_epoll *ep, unsigned a, unsigned b)
{
    struct op *t = ep->heap[a];
    ep->heap[a] = ep->heap[b];
    ep->heap[b] = t;
    ep->heap[a]->hi = a;
    ep->heap[b]->hi = b;
}

static void heap_up(struct wf_epoll *ep, unsigned i)
{
    while (i && ep->heap[(i - 1) / 2]->when > ep->heap[i]->when) {
        heap_swap(ep, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct wf_epoll *ep, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, m = i;
        if (l < ep->nheap && ep->heap[l]->when < ep->heap[m]->when)
            m = l;
        if (l + 1 < ep->nheap && ep->heap[l + 1]->when < ep->heap[m]->when)
            m = l + 1;
        if (m == i)
            return;
        heap_swap(ep, i, m);
        i = m;
    }
}

static void heap_push(struct wf_epoll *ep, struct op *t)
{
    if (ep->nheap == ep->capheap) {
        unsigned n = ep->capheap ? 2 * ep->capheap : 64;
        struct op **h = realloc(ep->heap, n * sizeof *h);
        if (!h)
            oom("timeouts");
        ep->heap = h;
        ep->capheap = n;
    }
    t->hi = ep->nheap;
    ep->heap[ep->nheap++] = t;
    heap_up(ep, t->hi);
}

static void heap_remove(struct wf_epoll *ep, struct op *t)
{
    unsigned i = t->hi;
    if (i != --ep->nheap) {
        heap_swap(ep, i, ep->nheap);
        heap_down(ep, i);
        heap_up(ep, i);
    }
}

/* ---- completions ---- */

static void cq_push(struct wf_epoll *ep, uint64_t data, int res, unsigned flags)
{
    if (!data)
        return; /* nobody waits for it (a failed skip-success cancel) */
    if (ep->ncq == ep->capcq) {
        unsigned n = ep->capcq ? 2 * ep->capcq : 256;
        struct cqe *c = realloc(ep->cq, n * sizeof *c);
        if (!c)
            oom("completions");
        ep->cq = c;
        ep->capcq = n;
    }
    ep->cq[ep->ncq++] = (struct cqe){
        .c = (struct wf_completion *)(uintptr_t)data,
        .res = res,
        .flags = flags,
    };
}

/* A multishot op's completion that keeps it armed. */
static void post_more(struct wf_epoll *ep, struct op *o, int res)
{
    cq_push(ep, o->sqe.user_data, res, IORING_CQE_F_MORE);
}

/* The op's last completion; its linked timeout, if any, is cancelled. */
static void post(struct wf_epoll *ep, struct op *o, int res)
{
    if (!(o->sqe.flags & IOSQE_CQE_SKIP_SUCCESS) || res < 0)
        cq_push(ep, o->sqe.user_data, res, 0);
    struct op *t = o->tmo;
    if (t) {
        heap_remove(ep, t);
        cq_push(ep, t->sqe.user_data, -ECANCELED, 0);
        op_free(ep, t);
    }
    if (o->pooled || o->state != S_NEW)
        hash_del(ep, o);
    op_free(ep, o);
}

/* ---- descriptors ---- */

static struct fdstate *fd_get(struct wf_epoll *ep, int fd)
{
    if ((unsigned)fd >= ep->nfds) {
        unsigned n = ep->nfds ? ep->nfds : 256;
        while (n <= (unsigned)fd)
            n *= 2;
        struct fdstate *v = realloc(ep->fds, n * sizeof *v);
        if (!v)
            oom("descriptors");
        memset(v + ep->nfds, 0, (n - ep->nfds) * sizeof *v);
        ep->fds = v;
        ep->nfds = n;
    }
    return &ep->fds[fd];
}

static uint8_t fd_kind(struct fdstate *f, int fd)
{
    if (f->kind == K_UNKNOWN) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            return K_UNKNOWN; /* a bad descriptor: the call says so */
        f->kind =
            S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)
                ? K_FILE
                : K_POLL;
        if (f->kind == K_FILE) {
            int fl = fcntl(fd, F_GETFL);
            f->direct = fl >= 0 && (fl & O_DIRECT);
        }
    }
    return f->kind;
}

/* O_NONBLOCK, for the calls that have no per-call flag for it. */
static void fd_nonblock(struct fdstate *f, int fd)
{
    if (f->nb)
        return;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    f->nb = fl >= 0;
}

/*
 * In the epoll set, edge-triggered both ways: 0, or -errno (-EPERM: the
 * file has no readiness, it is always ready). With verify, a descriptor
 * believed registered is re-armed (EPOLL_CTL_MOD), which also finds one
 * closed behind weft's back and its number reused (-ENOENT: added
 * afresh): a poll is how programs wait on descriptors weft does not own.
 */
static int fd_register(struct wf_epoll *ep, struct fdstate *f, int fd,
                       bool verify)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
        .data.u64 = (uint64_t)fd,
    };
    if (f->regd) {
        if (!verify || epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
            return 0;
        if (errno != ENOENT)
            return -errno;
        f->regd = false;
    }
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        if (errno != EEXIST)
            return -errno;
        if (epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
            return -errno;
    }
    f->regd = true;
    f->rd = f->wr = true; /* not known yet: try */
    return 0;
}

static void fd_unlink(struct wf_epoll *ep, struct op *o)
{
    struct fdstate *f = &ep->fds[o->sqe.fd];
    if (o->prev)
        o->prev->next = o->next;
    else
        f->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        f->tail = o->prev;
    o->next = o->prev = NULL;
    ep->waiting--;
}

/* What was known of fd no longer holds: it is closed, or its number
 * now names a new file. Ops still waiting on it stay (weft cancels its
 * own before it closes). */
static void forget(struct wf_epoll *ep, int fd)
{
    if (fd < 0 || (unsigned)fd >= ep->nfds)
        return;
    struct fdstate *f = &ep->fds[fd];
    f->kind = K_UNKNOWN;
    f->regd = f->nb = false;
    f->rd = f->wr = true;
    f->stream = 0;
    f->ended = f->direct = false;
}

/* Whether fd is a byte-stream socket: a receive that returns less than it
 * asked for then has emptied the queue. Asked once per descriptor. */
static bool fd_stream(struct wf_epoll *ep, int fd)
{
    struct fdstate *f = &ep->fds[fd];
    if (!f->stream) {
        int type = 0;
        socklen_t len = sizeof type;
        f->stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                            type == SOCK_STREAM
                        ? 1
                        : 2;
    }
    return f->stream == 1;
}

void wf_epoll_forget(struct wf_ring *r, int fd)
{
    forget(r->ep, fd);
}

/* ---- the pool: what may block ---- */

static int job_rw(const struct io_uring_sqe *s, bool write)
{
    struct iovec one, *iov = &one;
    int n = 1;
    switch (s->opcode) {
    case IORING_OP_READV:
    case IORING_OP_WRITEV:
        iov = (struct iovec *)(uintptr_t)s->addr;
        n = (int)s->len;
        break;
    default:
        one.iov_base = (void *)(uintptr_t)s->addr;
        one.iov_len = s->len;
        break;
    }
    off_t off = s->off == (uint64_t)-1 ? -1 : (off_t)s->off;
    ssize_t rc = write ? pwritev2(s->fd, iov, n, off, (int)s->rw_flags)
                       : preadv2(s->fd, iov, n, off, (int)s->rw_flags);
    return rc < 0 ? -errno : (int)rc;
}

static int job_run(const struct io_uring_sqe *s)
{
    long rc;
    switch (s->opcode) {
    case IORING_OP_READ:
    case IORING_OP_READV:
    case IORING_OP_READ_FIXED:
        return job_rw(s, false);
    case IORING_OP_WRITE:
    case IORING_OP_WRITEV:
    case IORING_OP_WRITE_FIXED:
        return job_rw(s, true);
    case IORING_OP_OPENAT:
        rc = openat(s->fd, (const char *)(uintptr_t)s->addr,
                    (int)s->open_flags | O_LARGEFILE, (mode_t)s->len);
        break;
    case IORING_OP_STATX:
        rc = statx(s->fd, (const char *)(uintptr_t)s->addr, (int)s->statx_flags,
                   s->len, (struct statx *)(uintptr_t)s->addr2);
        break;
    case IORING_OP_RENAMEAT:
        rc = renameat2(s->fd, (const char *)(uintptr_t)s->addr, (int)s->len,
                       (const char *)(uintptr_t)s->addr2, s->rename_flags);
        break;
    case IORING_OP_UNLINKAT:
        rc = unlinkat(s->fd, (const char *)(uintptr_t)s->addr,
                      (int)s->unlink_flags);
        break;
    case IORING_OP_MKDIRAT:
        rc = mkdirat(s->fd, (const char *)(uintptr_t)s->addr, (mode_t)s->len);
        break;
    case IORING_OP_FSYNC:
        rc = s->fsync_flags & IORING_FSYNC_DATASYNC ? fdatasync(s->fd)
                                                    : fsync(s->fd);
        break;
    case IORING_OP_FALLOCATE:
        rc = fallocate(s->fd, (int)s->len, (off_t)s->off, (off_t)s->addr);
        break;
    case OP_FTRUNCATE:
        rc = ftruncate(s->fd, (off_t)s->off);
        break;
    default:
        return -EINVAL;
    }
    return rc < 0 ? -errno : (int)rc;
}

static void *worker(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->qhead && !p->stop) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (!p->qhead)
            break;
        struct op *o = p->qhead;
        p->qhead = o->next;
        if (!p->qhead)
            p->qtail = NULL;
        o->state = S_RUNNING;
        pthread_mutex_unlock(&p->mu);
        int res = job_run(&o->sqe);
        pthread_mutex_lock(&p->mu);
        o->res = res;
        bool was_empty = p->done == NULL;
        o->next = p->done;
        p->done = o;
        atomic_store_explicit(&p->any_done, true, memory_order_release);
        if (was_empty) {
            uint64_t one = 1;
            ssize_t n = write(p->efd, &one, sizeof one);
            (void)n;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int pool_start(struct wf_epoll *ep)
{
    struct pool *p = &ep->pool;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = POOL_TAG};
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, p->efd, &ev) < 0) {
        int rc = -errno;
        close(p->efd);
        return rc;
    }
    p->threads = calloc(p->max, sizeof *p->threads);
    if (!p->threads) {
        close(p->efd);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    ep->pool_started = true;
    return 0;
}

static void pool_queue(struct wf_epoll *ep, struct op *o)
{
    struct pool *p = &ep->pool;
    hash_add(ep, o);
    o->pooled = true;
    pthread_mutex_lock(&p->mu);
    o->state = S_QUEUED;
    o->next = NULL;
    if (p->qtail)
        p->qtail->next = o;
    else
        p->qhead = o;
    p->qtail = o;
    if (!p->idle && p->nthreads < p->max) {
        /* Workers take no signal: signalfd and the loop's handlers see
         * every process-directed one. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) == 0)
            p->nthreads++;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    } else {
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

/* A queued job taken back: true if no worker has it yet. */
static bool pool_unqueue(struct wf_epoll *ep, struct op *o)
{
    struct pool *p = &ep->pool;
    bool got = false;
    pthread_mutex_lock(&p->mu);
    if (o->state == S_QUEUED) {
        struct op **pp = &p->qhead, *prev = NULL;
        while (*pp && *pp != o) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = o->next;
            if (p->qtail == o)
                p->qtail = prev;
            got = true;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return got;
}

static void pool_reap(struct wf_epoll *ep)
{
    struct pool *p = &ep->pool;
    if (!ep->pool_started ||
        !atomic_load_explicit(&p->any_done, memory_order_acquire))
        return;
    pthread_mutex_lock(&p->mu);
    struct op *d = p->done;
    p->done = NULL;
    atomic_store_explicit(&p->any_done, false, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    /* Oldest first. */
    struct op *fifo = NULL;
    while (d) {
        struct op *n = d->next;
        d->next = fifo;
        fifo = d;
        d = n;
    }
    while (fifo) {
        struct op *n = fifo->next;
        post(ep, fifo, fifo->res);
        fifo = n;
    }
}

static void pool_stop(struct wf_epoll *ep)
{
    struct pool *p = &ep->pool;
    if (!ep->pool_started)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    close(p->efd);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

/* ---- trying an operation without blocking ---- */

static uint8_t op_dir(const struct io_uring_sqe *s)
{
    switch (s->opcode) {
    case IORING_OP_SEND:
    case IORING_OP_SENDMSG:
    case IORING_OP_WRITE:
    case IORING_OP_WRITEV:
    case IORING_OP_WRITE_FIXED:
    case IORING_OP_CONNECT:
        return DIR_OUT;
    case IORING_OP_POLL_ADD: {
        unsigned ev = s->poll32_events;
        return (uint8_t)((ev & (POLLIN | POLLPRI | POLLRDHUP) ? DIR_IN : 0) |
                         (ev & POLLOUT ? DIR_OUT : 0));
    }
    default:
        return DIR_IN;
    }
}

static bool multishot(const struct io_uring_sqe *s)
{
    if (s->opcode == IORING_OP_POLL_ADD)
        return s->len & IORING_POLL_ADD_MULTI;
    if (s->opcode == IORING_OP_ACCEPT)
        return s->ioprio & IORING_ACCEPT_MULTISHOT;
    return false;
}

/* The operation's system call, not blocking: its result, -EAGAIN if it
 * would block. */
static int try_io(struct wf_epoll *ep, struct op *o)
{
    struct io_uring_sqe *s = &o->sqe;
    int fd = s->fd;
    ssize_t rc;
    switch (s->opcode) {
    case IORING_OP_RECV:
        rc = recv(fd, (void *)(uintptr_t)s->addr, s->len,
                  (int)s->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        /* Short from a stream: nothing is left, and what comes next
         * brings an edge (harvested after this), so the next receive
         * waits for it instead of trying for -EAGAIN. */
        if (rc > 0 && (size_t)rc < s->len && !(s->msg_flags & MSG_PEEK) &&
            !ep->fds[fd].ended && fd_stream(ep, fd))
            ep->fds[fd].rd = false;
        break;
    case IORING_OP_SEND:
        rc = send(fd, (void *)(uintptr_t)s->addr, s->len,
                  (int)s->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        if (rc >= 0 && (size_t)rc < s->len)
            ep->fds[fd].wr = false; /* the send buffer is full */
        break;
    case IORING_OP_RECVMSG:
        rc = recvmsg(fd, (struct msghdr *)(uintptr_t)s->addr,
                     (int)s->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
    case IORING_OP_SENDMSG:
        rc = sendmsg(fd, (struct msghdr *)(uintptr_t)s->addr,
                     (int)s->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
    case IORING_OP_ACCEPT:
        fd_nonblock(fd_get(ep, fd), fd);
        rc = accept4(fd, (struct sockaddr *)(uintptr_t)s->addr,
                     (socklen_t *)(uintptr_t)s->addr2, (int)s->accept_flags);
        if (rc >= 0) {
            bool stream = fd_stream(ep, fd);
            forget(ep, (int)rc);
            fd_get(ep, (int)rc)->stream = stream ? 1 : 2;
        }
        break;
    case IORING_OP_CONNECT:
        if (o->connecting) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                return -errno;
            if (err == 0) {
                /* Writable with no error: connected, or still going
                 * (a spurious edge); ask the socket which. */
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
                    return errno == ENOTCONN ? -EAGAIN : -errno;
            }
            return -err;
        }
        forget(ep, fd); /* a new socket: its number may be an old one's */
        fd_nonblock(fd_get(ep, fd), fd);
        rc = connect(fd, (const struct sockaddr *)(uintptr_t)s->addr,
                     (socklen_t)s->off);
        if (rc < 0 && (errno == EINPROGRESS || errno == EALREADY)) {
            o->connecting = true;
            return -EAGAIN;
        }
        break;
    case IORING_OP_READ:
    case IORING_OP_READV:
    case IORING_OP_READ_FIXED:
    case IORING_OP_WRITE:
    case IORING_OP_WRITEV:
    case IORING_OP_WRITE_FIXED: {
        fd_nonblock(fd_get(ep, fd), fd);
        bool w = op_dir(s) == DIR_OUT;
        struct io_uring_sqe plain = *s;
        plain.off = (uint64_t)-1; /* not seekable: no offset */
        return job_rw(&plain, w);
    }
    case IORING_OP_POLL_ADD: {
        struct pollfd p = {.fd = fd, .events = (short)s->poll32_events};
        int n = poll(&p, 1, 0);
        if (n < 0)
            return -errno;
        return n ? p.revents : -EAGAIN;
    }
    default:
        return -EINVAL;
    }
    if (rc < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return (int)rc;
}

/* ---- waiting on a descriptor ---- */

static void wait_on(struct wf_epoll *ep, struct op *o)
{
    int fd = o->sqe.fd;
    struct fdstate *f = fd_get(ep, fd);
    o->dir = op_dir(&o->sqe);
    o->prev = f->tail;
    o->next = NULL;
    if (f->tail)
        f->tail->next = o;
    else
        f->head = o;
    f->tail = o;
    if (o->state == S_NEW)
        hash_add(ep, o);
    o->state = S_WAIT;
    ep->waiting++;
}

/* Try o: finish it, or leave it waiting (true). A multishot accept
 * posts each connection and goes on until none is left. */
static bool attempt(struct wf_epoll *ep, struct op *o)
{
    for (;;) {
        int res = try_io(ep, o);
        if (res == -EAGAIN) {
            struct fdstate *f = &ep->fds[o->sqe.fd];
            if (o->dir & DIR_IN)
                f->rd = false;
            if (o->dir & DIR_OUT)
                f->wr = false;
            return true;
        }
        if (res >= 0 && multishot(&o->sqe)) {
            post_more(ep, o, res);
            if (o->sqe.opcode == IORING_OP_POLL_ADD)
                return true; /* once per edge */
            continue;
        }
        if (o->state == S_WAIT)
            fd_unlink(ep, o);
        post(ep, o, res);
        return false;
    }
}

static bool dontwait(const struct io_uring_sqe *s)
{
    switch (s->opcode) {
    case IORING_OP_RECV:
    case IORING_OP_SEND:
    case IORING_OP_RECVMSG:
    case IORING_OP_SENDMSG:
        return s->msg_flags & MSG_DONTWAIT;
    default:
        return false;
    }
}

/* A readiness-driven op, first seen. */
static void start_poll_op(struct wf_epoll *ep, struct op *o)
{
    int fd = o->sqe.fd;
    if (fd < 0) {
        post(ep, o, -EBADF);
        return;
    }
    struct fdstate *f = fd_get(ep, fd);
    o->dir = op_dir(&o->sqe);
    /* A receive or send asked not to wait (MSG_DONTWAIT) is tried and
     * ends with -EAGAIN, as io_uring does it. */
    if (dontwait(&o->sqe)) {
        if (attempt(ep, o))
            post(ep, o, -EAGAIN);
        return;
    }
    /* Registered, and no edge since the last -EAGAIN: nothing to find. */
    bool skip = f->regd && o->sqe.opcode != IORING_OP_POLL_ADD &&
                !(o->dir & DIR_IN ? f->rd : f->wr) && !o->connecting;
    if (!skip && !attempt(ep, o))
        return;
    f = &ep->fds[fd]; /* an accept may have grown the table */
    int rc = fd_register(ep, f, fd, o->sqe.opcode == IORING_OP_POLL_ADD);
    if (rc < 0) {
        /* No readiness to wait for: a poll sees it ready, others get
         * the error the kernel would give a non-pollable file. */
        if (o->sqe.opcode == IORING_OP_POLL_ADD && rc == -EPERM)
            post(ep, o, (int)(o->sqe.poll32_events & (POLLIN | POLLOUT)));
        else
            post(ep, o, rc);
        return;
    }
    if (o->dir & DIR_IN)
        f->rd = false;
    if (o->dir & DIR_OUT)
        f->wr = false;
    wait_on(ep, o);
    /* The registration may have been older than the try: an edge in
     * between is in the epoll set, and the next wait picks it up. */
}

static void on_event(struct wf_epoll *ep, int fd, uint32_t events)
{
    if ((unsigned)fd >= ep->nfds)
        return;
    struct fdstate *f = &ep->fds[fd];
    if (!f->regd)
        return;
    uint8_t dir = 0;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLPRI | EPOLLHUP | EPOLLERR))
        dir |= DIR_IN;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        dir |= DIR_OUT;
    if (dir & DIR_IN)
        f->rd = true;
    if (dir & DIR_OUT)
        f->wr = true;
    /* The end of the stream (or an error) comes as one edge, maybe with
     * the last bytes: a short read after it has not seen all there is. */
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        f->ended = true;
    struct op *o = f->head;
    while (o) {
        struct op *next = o->next;
        if (o->dir & dir) {
            if (o->sqe.opcode == IORING_OP_POLL_ADD) {
                unsigned want = o->sqe.poll32_events | POLLERR | POLLHUP;
                unsigned got = events & want;
                if (got) {
                    if (multishot(&o->sqe)) {
                        post_more(ep, o, (int)got);
                    } else {
                        fd_unlink(ep, o);
                        post(ep, o, (int)got);
                    }
                }
            } else {
                (void)attempt(ep, o);
            }
        }
        o = next;
    }
}

/* ---- linked timeouts ---- */

static void arm_timeout(struct wf_epoll *ep, struct op *o,
                        const struct io_uring_sqe *ts)
{
    struct op *t = op_new(ep);
    t->sqe = *ts;
    const struct __kernel_timespec *k =
        (const struct __kernel_timespec *)(uintptr_t)ts->addr;
    int64_t when = (int64_t)k->tv_sec * 1000000000 + k->tv_nsec;
    if (!(ts->timeout_flags & IORING_TIMEOUT_ABS))
        when += now_ns();
    t->when = when;
    t->state = S_TIMER;
    t->linked = o;
    o->tmo = t;
    heap_push(ep, t);
}

/* ---- cancelling: ASYNC_CANCEL, and a linked timeout's expiry ---- */

/* End o with -ECANCELED if it has not started: 0, or -EALREADY (a job a
 * worker runs, which ends with its own result, as io-wq's do). */
static int cancel_op(struct wf_epoll *ep, struct op *o)
{
    if (o->pooled) {
        if (!pool_unqueue(ep, o))
            return -EALREADY;
    } else if (o->state == S_WAIT) {
        fd_unlink(ep, o);
    } else {
        return -EALREADY;
    }
    post(ep, o, -ECANCELED);
    return 0;
}

static int cancel(struct wf_epoll *ep, uint64_t target)
{
    struct op *o = hash_find(ep, target);
    return o ? cancel_op(ep, o) : -ENOENT;
}

/* A linked timeout's time came: its op is cancelled if it can be. */
static void expire(struct wf_epoll *ep, int64_t now)
{
    while (ep->nheap && ep->heap[0]->when <= now) {
        struct op *t = ep->heap[0];
        struct op *o = t->linked;
        heap_remove(ep, t);
        o->tmo = NULL;
        cq_push(ep, t->sqe.user_data, -ETIME, 0);
        op_free(ep, t);
        (void)cancel_op(ep, o);
    }
}

/* ---- the SQ ---- */

/* The bytes a read or write asks for. */
static size_t rw_len(const struct io_uring_sqe *s)
{
    if (s->opcode != IORING_OP_READV && s->opcode != IORING_OP_WRITEV)
        return s->len;
    const struct iovec *iov = (const struct iovec *)(uintptr_t)s->addr;
    size_t n = 0;
    for (unsigned i = 0; i < s->len; i++)
        n += iov[i].iov_len;
    return n;
}

static bool is_file_rw(uint8_t opcode)
{
    switch (opcode) {
    case IORING_OP_READ:
    case IORING_OP_READV:
    case IORING_OP_READ_FIXED:
    case IORING_OP_WRITE:
    case IORING_OP_WRITEV:
    case IORING_OP_WRITE_FIXED:
        return true;
    default:
        return false;
    }
}

static void start(struct wf_epoll *ep, const struct io_uring_sqe *sqe,
                  const struct io_uring_sqe *tsqe)
{
    struct op *o = op_new(ep);
    o->sqe = *sqe;
    struct io_uring_sqe *s = &o->sqe;
    if (s->flags & IOSQE_FIXED_FILE) {
        post(ep, o, -EBADF); /* no registered files on epoll */
        if (tsqe)
            cq_push(ep, tsqe->user_data, -ECANCELED, 0);
        return;
    }
    /* The timeout first: an op that finishes now cancels it in post. */
    if (tsqe)
        arm_timeout(ep, o, tsqe);
    switch (s->opcode) {
    case IORING_OP_NOP:
        post(ep, o, 0);
        return;
    case IORING_OP_ASYNC_CANCEL:
        post(ep, o, cancel(ep, s->addr));
        return;
    case IORING_OP_CLOSE:
        forget(ep, s->fd);
        post(ep, o, close(s->fd) < 0 ? -errno : 0);
        return;
    case IORING_OP_RECV:
    case IORING_OP_SEND:
    case IORING_OP_RECVMSG:
    case IORING_OP_SENDMSG:
    case IORING_OP_ACCEPT:
    case IORING_OP_CONNECT:
    case IORING_OP_POLL_ADD:
        start_poll_op(ep, o);
        return;
    case IORING_OP_OPENAT:
    case IORING_OP_STATX:
    case IORING_OP_RENAMEAT:
    case IORING_OP_UNLINKAT:
    case IORING_OP_MKDIRAT:
    case IORING_OP_FSYNC:
    case IORING_OP_FALLOCATE:
    case OP_FTRUNCATE:
        pool_queue(ep, o);
        return;
    default:
        break;
    }
    if (!is_file_rw(s->opcode)) {
        post(ep, o, -EINVAL);
        return;
    }
    struct fdstate *f = s->fd >= 0 ? fd_get(ep, s->fd) : NULL;
    uint8_t kind = f ? fd_kind(f, s->fd) : K_UNKNOWN;
    if (kind == K_POLL) {
        start_poll_op(ep, o);
        return;
    }
    if (kind == K_UNKNOWN) {
        post(ep, o, -EBADF);
        return;
    }
    /* A regular file: a read at an offset that the page cache holds
     * whole is done at once (a short one may be the cache's edge, not
     * the file's end: the pool reads it again, whole). Not O_DIRECT:
     * RWF_NOWAIT does not stop such a read from waiting for the disk. */
    if (op_dir(s) == DIR_IN && s->off != (uint64_t)-1 && !f->direct) {
        struct io_uring_sqe nw = *s;
        nw.rw_flags |= RWF_NOWAIT;
        int res = job_rw(&nw, false);
        if (res >= 0 && (unsigned)res == rw_len(s)) {
            post(ep, o, res);
            return;
        }
        if (res < 0 && res != -EAGAIN && res != -EOPNOTSUPP) {
            post(ep, o, res);
            return;
        }
    }
    pool_queue(ep, o);
}

void wf_epoll_submit(struct wf_ring *r)
{
    struct wf_epoll *ep = r->ep;
    struct io_uring_sq *sq = &r->ring.sq;
    unsigned head = ep->sq_head, tail = sq->sqe_tail;
    while (head != tail) {
        const struct io_uring_sqe *s = &ep->sqes[head++ & sq->ring_mask];
        const struct io_uring_sqe *t = NULL;
        if ((s->flags & IOSQE_IO_LINK) && head != tail &&
            ep->sqes[head & sq->ring_mask].opcode == IORING_OP_LINK_TIMEOUT)
            t = &ep->sqes[head++ & sq->ring_mask];
        start(ep, s, t);
    }
    ep->sq_head = head;
    sq->sqe_head = tail;
}

/* ---- the pump ---- */

static int dispatch(struct wf_ring *r)
{
    struct wf_epoll *ep = r->ep;
    unsigned n = ep->ncq;
    if (!n)
        return 0;
    r->in_handler++;
    /* Handlers take no SQEs and post nothing here: cq stays put. */
    for (unsigned i = 0; i < n; i++) {
        struct cqe e = ep->cq[i];
        if (!(e.flags & IORING_CQE_F_MORE) && !e.c->untracked) {
            r->inflight--;
            r->standing -= e.c->standing;
        }
        e.c->fn(e.c, e.res, e.flags);
    }
    r->in_handler--;
    ep->ncq = 0;
    return (int)n;
}

static void collect(struct wf_epoll *ep, int timeout_ms, int64_t timeout_ns)
{
    enum { MAXEV = 256 };
    struct epoll_event ev[MAXEV];
    int n;
    if (timeout_ns >= 0 && !ep->no_pwait2) {
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
                              .tv_nsec = timeout_ns % 1000000000};
        n = epoll_pwait2(ep->epfd, ev, MAXEV, &ts, NULL);
        if (n < 0 && errno == ENOSYS) {
            ep->no_pwait2 = true;
            n = epoll_wait(ep->epfd, ev, MAXEV, timeout_ms);
        }
    } else {
        n = epoll_wait(ep->epfd, ev, MAXEV, timeout_ms);
    }
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u64 == POOL_TAG)
            continue; /* pool_reap looks at the done list itself */
        on_event(ep, (int)ev[i].data.u64, ev[i].events);
    }
}

int wf_epoll_pump(struct wf_ring *r, bool wait, int64_t timeout_ns)
{
    struct wf_epoll *ep = r->ep;
    wf_epoll_submit(r);
    pool_reap(ep);
    if (ep->nheap)
        expire(ep, now_ns());
    if (!ep->ncq && wait) {
        if (ep->nheap) {
            int64_t left = ep->heap[0]->when - now_ns();
            if (left < 0)
                left = 0;
            if (timeout_ns < 0 || left < timeout_ns)
                timeout_ns = left;
        }
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
        collect(ep, ms, timeout_ns);
        ep->skips = 0;
        pool_reap(ep);
        if (ep->nheap)
            expire(ep, now_ns());
    } else if (ep->waiting) {
        /* Busy: look at epoll now and then, and whenever nothing else
         * completed, so that waiting ops are never starved. */
        if (!ep->ncq || ++ep->skips >= 8) {
            ep->skips = 0;
            collect(ep, 0, 0);
        }
    }
    return dispatch(r);
}

/* ---- set-up ---- */

static void explain(int rc, char *why, unsigned whylen)
{
    if (rc == -EMFILE)
        snprintf(why, whylen,
                 "cannot start the epoll backend (%s): the process is out "
                 "of file descriptors (RLIMIT_NOFILE, see ulimit -n; close "
                 "some or raise the limit)",
                 strerror(-rc));
    else if (rc == -ENFILE)
        snprintf(why, whylen,
                 "cannot start the epoll backend (%s): the system is out "
                 "of file descriptors (the sysctl fs.file-max)",
                 strerror(-rc));
    else
        snprintf(why, whylen, "cannot start the epoll backend: %s",
                 strerror(-rc));
}

int wf_epoll_init(struct wf_ring *r, const struct wf_ring_params *rp, char *why,
                  unsigned whylen)
{
    struct wf_epoll *ep = calloc(1, sizeof *ep);
    if (!ep)
        return -ENOMEM;
    unsigned sq = 1;
    while (sq < (rp->sq ? rp->sq : 256))
        sq *= 2;
    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    ep->sqes = calloc(sq, sizeof *ep->sqes);
    ep->hash = calloc(1024, sizeof *ep->hash);
    if (ep->epfd < 0 || !ep->sqes || !ep->hash) {
        int rc = ep->epfd < 0 ? -errno : -ENOMEM;
        explain(rc, why, whylen);
        if (ep->epfd >= 0)
            close(ep->epfd);
        free(ep->sqes);
        free(ep->hash);
        free(ep);
        return rc;
    }
    ep->hmask = 1023;
    ep->pool.max = rp->iowq_max_workers ? rp->iowq_max_workers : 16;
    /* The pool's eventfd now, its threads when a job comes: a loop's
     * descriptors do not change while it runs. */
    int rc = pool_start(ep);
    if (rc < 0) {
        explain(rc, why, whylen);
        close(ep->epfd);
        free(ep->sqes);
        free(ep->hash);
        free(ep);
        return rc;
    }
    struct io_uring_sq *q = &r->ring.sq;
    q->khead = &ep->sq_head;
    q->sqes = ep->sqes;
    q->ring_mask = sq - 1;
    q->ring_entries = sq;
    r->ring.ring_fd = -1;
    r->ring.enter_ring_fd = -1;
    r->sq_entries = sq;
    r->cq_entries = rp->cq ? rp->cq : 64 * sq;
    static const int ops[] = {
        IORING_OP_NOP,      IORING_OP_READV,        IORING_OP_WRITEV,
        IORING_OP_FSYNC,    IORING_OP_READ_FIXED,   IORING_OP_WRITE_FIXED,
        IORING_OP_POLL_ADD, IORING_OP_SENDMSG,      IORING_OP_RECVMSG,
        IORING_OP_ACCEPT,   IORING_OP_ASYNC_CANCEL, IORING_OP_LINK_TIMEOUT,
        IORING_OP_CONNECT,  IORING_OP_FALLOCATE,    IORING_OP_OPENAT,
        IORING_OP_CLOSE,    IORING_OP_STATX,        IORING_OP_READ,
        IORING_OP_WRITE,    IORING_OP_SEND,         IORING_OP_RECV,
        IORING_OP_RENAMEAT, IORING_OP_UNLINKAT,     IORING_OP_MKDIRAT,
        OP_FTRUNCATE,
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        r->ops[ops[i] / 64] |= 1ull << (ops[i] % 64);
    r->ep = ep;
    return 0;
}

void wf_epoll_exit(struct wf_ring *r)
{
    struct wf_epoll *ep = r->ep;
    if (!ep)
        return;
    pool_stop(ep);
    close(ep->epfd);
    for (unsigned i = 0; i < ep->nchunks; i++)
        free(ep->chunks[i]);
    free(ep->chunks);
    free(ep->fds);
    free(ep->cq);
    free(ep->hash);
    free(ep->heap);
    free(ep->sqes);
    free(ep);
    r->ep = NULL;
}
