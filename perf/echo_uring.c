/* SPDX-License-Identifier: MIT */
/*
 * perf/echo_uring.c - the raw liburing baseline: no fibers, a state
 * machine per connection, one io_uring set up as a liburing expert would
 * (SINGLE_ISSUER | DEFER_TASKRUN, a large CQ, the ring fd registered, no
 * SQPOLL), a multishot accept, and one io_uring_submit_and_wait() per
 * batch of completions.
 *
 *   echo_uring [-H host] [-p port] [-b bufsize] [-m] [-P]
 *
 * Default: each connection owns a buffer and alternates a one-shot recv
 * and a send of what it got (the same work per message as a weft task).
 * -m: a multishot recv per connection into a provided-buffer ring; each
 *     piece received is sent from its buffer (one send in flight per
 *     connection, the others queue), and the buffer goes back to the ring.
 * -P: one-shot recvs after a send carry IORING_RECVSEND_POLL_FIRST (the
 *     echo's reply is rarely there yet).
 *
 * Listens on host:port (default 127.0.0.1:7002), prints "listening on
 * PORT" once ready, and serves until killed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    BUF_MAX = 16384,
    SQ_ENTRIES = 512,
    CQ_ENTRIES = 16384,
    NBUF = 4096, /* provided buffers for -m (a power of two) */
    QN = 64,     /* pieces a connection may have waiting to be sent (-m) */
    BGID = 7,
};

enum { T_ACCEPT = 1, T_RECV = 2, T_SEND = 3, T_MASK = 7 };

struct conn {
    int fd;
    unsigned inflight; /* operations the kernel still owes a CQE for */
    bool closing;
    size_t off, len; /* the send under way: bytes done, bytes in all */
    /* -m: received pieces waiting to be sent, by buffer id */
    uint16_t qbid[QN];
    uint32_t qlen[QN];
    unsigned qhead, qn;
    char buf[]; /* one-shot mode only */
};

static struct io_uring ring;
static size_t bufsize = BUF_MAX;
static bool multishot, poll_first;
static int lfd;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned br_mask, br_pending;

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring)))
        io_uring_submit(&ring);
    return sqe;
}

static void track(struct io_uring_sqe *sqe, struct conn *c, unsigned tag)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | tag);
    if (c)
        c->inflight++;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    track(sqe, NULL, T_ACCEPT);
}

static void arm_recv(struct conn *c, bool after_send)
{
    struct io_uring_sqe *sqe = sqe_get();
    if (multishot) {
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
    } else {
        io_uring_prep_recv(sqe, c->fd, c->buf, bufsize, 0);
        if (after_send && poll_first)
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    }
    track(sqe, c, T_RECV);
}

static void arm_send(struct conn *c, const char *p)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, c->fd, p + c->off, c->len - c->off, MSG_NOSIGNAL);
    track(sqe, c, T_SEND);
}

static void buf_return(uint16_t bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * bufsize, (unsigned)bufsize,
                          bid, (int)br_mask, (int)br_pending++);
}

/* -m: give back the queued pieces from index `from` on. */
static void queue_drop(struct conn *c, unsigned from)
{
    while (c->qn > from) {
        buf_return(c->qbid[(c->qhead + c->qn - 1) % QN]);
        c->qn--;
    }
}

/* Stop a connection; it is freed once the kernel owes it nothing. The
 * head piece of the queue is being sent while qn > 0: the kernel may
 * still read its buffer, so it goes back only when that send ends. */
static void conn_stop(struct conn *c)
{
    if (!c->closing) {
        c->closing = true;
        shutdown(c->fd, SHUT_RDWR); /* ends a multishot recv */
        queue_drop(c, 1);
    }
    if (c->inflight == 0) {
        close(c->fd);
        free(c);
    }
}

static void on_accept(int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        arm_accept();
    if (res < 0)
        return;
    int one = 1;
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c + (multishot ? 0 : bufsize));
    if (!c) {
        close(res);
        return;
    }
    memset(c, 0, sizeof *c);
    c->fd = res;
    arm_recv(c, false);
}

/* -m: send the first queued piece. */
static void send_head(struct conn *c)
{
    c->off = 0;
    c->len = c->qlen[c->qhead];
    arm_send(c, bufs + (size_t)c->qbid[c->qhead] * bufsize);
}

static void on_recv(struct conn *c, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        c->inflight--;
    if (c->closing) {
        if (res > 0 && (flags & IORING_CQE_F_BUFFER))
            buf_return((uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT));
        conn_stop(c);
        return;
    }
    if (res <= 0 && res != -ENOBUFS) {
        conn_stop(c);
        return;
    }
    if (!multishot) {
        c->off = 0;
        c->len = (size_t)res;
        arm_send(c, c->buf);
        return;
    }
    if (res > 0) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->qn == QN) {
            fprintf(stderr, "echo_uring: send queue full\n");
            buf_return(bid);
            conn_stop(c);
            return;
        }
        unsigned i = (c->qhead + c->qn++) % QN;
        c->qbid[i] = bid;
        c->qlen[i] = (uint32_t)res;
        if (c->qn == 1)
            send_head(c);
    }
    if (!(flags & IORING_CQE_F_MORE))
        arm_recv(c, false); /* out of buffers, or the kernel stopped it */
}

static void on_send(struct conn *c, int res)
{
    c->inflight--;
    if (c->closing || res < 0) {
        queue_drop(c, 0); /* no send in flight now */
        conn_stop(c);
        return;
    }
    c->off += (size_t)res;
    if (!multishot) {
        if (c->off < c->len)
            arm_send(c, c->buf);
        else
            arm_recv(c, true);
        return;
    }
    if (c->off < c->len) {
        arm_send(c, bufs + (size_t)c->qbid[c->qhead] * bufsize);
        return;
    }
    buf_return(c->qbid[c->qhead]);
    c->qhead = (c->qhead + 1) % QN;
    if (--c->qn)
        send_head(c);
}

static int listen_on(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_uring: %s is not an IPv4 address\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        perror("echo_uring: bind/listen");
        return -1;
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    printf("listening on %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

static int setup_buffers(void)
{
    size_t len = NBUF * sizeof(struct io_uring_buf);
    br = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
              -1, 0);
    bufs = mmap(NULL, (size_t)NBUF * bufsize, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED || bufs == MAP_FAILED)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)br,
        .ring_entries = NBUF,
        .bgid = BGID,
    };
    int rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(br);
    br_mask = (unsigned)io_uring_buf_ring_mask(NBUF);
    for (unsigned i = 0; i < NBUF; i++)
        buf_return((uint16_t)i);
    io_uring_buf_ring_advance(br, (int)br_pending);
    br_pending = 0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7002, c;
    while ((c = getopt(argc, argv, "H:p:b:mP")) != -1) {
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
        case 'm':
            multishot = true;
            break;
        case 'P':
            poll_first = true;
            break;
        default:
            fprintf(stderr, "usage: echo_uring [-H host] [-p port] "
                            "[-b bufsize] [-m] [-P]\n");
            return 2;
        }
    }
    if (bufsize == 0 || bufsize > BUF_MAX)
        bufsize = BUF_MAX;
    signal(SIGPIPE, SIG_IGN);
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    if (rc < 0) {
        fprintf(stderr, "echo_uring: io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    io_uring_register_ring_fd(&ring);
    if (multishot && (rc = setup_buffers()) < 0) {
        fprintf(stderr, "echo_uring: buffer ring: %s\n", strerror(-rc));
        return 1;
    }
    lfd = listen_on(host, port);
    if (lfd < 0)
        return 1;
    arm_accept();
    for (;;) {
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
            fprintf(stderr, "echo_uring: submit: %s\n", strerror(-rc));
            return 1;
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            n++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            struct conn *cn = (struct conn *)(uintptr_t)(ud & ~(uint64_t)7);
            switch (ud & T_MASK) {
            case T_ACCEPT:
                on_accept(cqe->res, cqe->flags);
                break;
            case T_RECV:
                on_recv(cn, cqe->res, cqe->flags);
                break;
            case T_SEND:
                on_send(cn, cqe->res);
                break;
            }
        }
        io_uring_cq_advance(&ring, n);
        if (br_pending) {
            io_uring_buf_ring_advance(br, (int)br_pending);
            br_pending = 0;
        }
    }
}
