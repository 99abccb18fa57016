/* SPDX-License-Identifier: MIT */
/*
 * perf/load_echo.c - the closed-loop load generator of the echo
 * benchmarks: N connections, each sends a message, waits for all of its
 * echo, and sends the next, for a warm-up then D seconds. One thread and
 * one io_uring (SINGLE_ISSUER | DEFER_TASKRUN), so that the generator
 * costs as little per message as it can: a multishot recv per connection
 * into a provided-buffer ring (no re-arming), sends from one shared
 * message, one io_uring_enter per pass over the completions, one clock
 * read per pass.
 *
 *   load_echo [-H host] [-p port] [-c conns] [-s size] [-d secs]
 *             [-w warmup_secs] [-P server_pid] [-M] [-S] [-i]
 *
 * -P: also report the server process's CPU time per message and its CPU
 *     share over the window (from /proc/PID/schedstat: time on a CPU,
 *     the softirq work done in its context included), and ours.
 * -M: one-shot recvs into a per-connection buffer instead of multishot.
 * -i: also print the rate of each second of the window (stderr).
 * SIGUSR1: print "MARK msgs=<echoes completed so far, warm-up included>
 *     ns=<monotonic clock>" on stderr, at once: two marks bracket a
 *     window whose messages the caller counts (perf/net-bench's counted
 *     runs: the server's system calls over the same window).
 * -S: sleep in io_uring_enter when nothing is ready. By default the
 *     generator spins (submit and reap without waiting): its CPU never
 *     idles, so the servers never pay for waking it from idle (a costly
 *     IPI and halt exit in a VM), and its own cost per message stays the
 *     lowest it can be; the figures then measure the server.
 *
 * Prints a human line and one machine line:
 *   RESULT rate=<msgs/s> p50_us= p99_us= p999_us= max_us= msgs= secs=
 *          conns= size= [srv_ns_msg= srv_util= gen_util=] cpu0= cpu1= ...
 * where rate counts complete echoes in the measured window, the
 * latencies (send to last byte of the echo) come from a log-linear
 * histogram (3% resolution), and cpuN is the busy share of each CPU over
 * the window from /proc/stat (the server's core, the generator's core).
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
#include <time.h>
#include <unistd.h>

enum {
    BUFSZ = 16384, /* receive buffer size */
    NBUF = 4096,   /* provided buffers (a power of two) */
    BGID = 3,
    SUB = 32, /* histogram: 32 buckets per power of two */
    NBUCKET = 64 * SUB,
    MAXCPU = 64,
};

enum { T_RECV = 1, T_SEND = 2, T_SHIFT = 2 };

struct conn {
    int fd;
    size_t got, sent; /* of the message under way */
    uint64_t t0;      /* when it was sent */
    char *buf;        /* -M only */
};

static struct io_uring ring;
static struct conn *conns;
static int nconn = 50;
static size_t msgsize = 64;
static char *msg;
static bool oneshot, sleepy, every_second;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned br_mask, br_pending;

static uint64_t hist[NBUCKET];
static uint64_t done_msgs, errors, all_msgs;
static bool measuring;
static volatile sig_atomic_t mark_asked;
static uint64_t now_ns;

static void on_usr1(int sig)
{
    (void)sig;
    mark_asked = 1;
}

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- histogram: log-linear buckets ---- */

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 5; /* log2(SUB) */
    unsigned b = (shift + 1) * SUB + (unsigned)((v >> shift) & (SUB - 1));
    return b < NBUCKET ? b : NBUCKET - 1;
}

static double bucket_mid(unsigned b)
{
    if (b < SUB)
        return b;
    unsigned shift = b / SUB - 1;
    double lo = (double)((uint64_t)(SUB + b % SUB) << shift);
    return lo + (double)(1ull << shift) / 2;
}

static double percentile(double q)
{
    uint64_t total = 0, seen = 0;
    for (unsigned b = 0; b < NBUCKET; b++)
        total += hist[b];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    if (want >= total)
        want = total - 1;
    for (unsigned b = 0; b < NBUCKET; b++) {
        seen += hist[b];
        if (seen > want)
            return bucket_mid(b);
    }
    return 0;
}

static double max_latency(void)
{
    for (unsigned b = NBUCKET; b-- > 0;)
        if (hist[b])
            return bucket_mid(b);
    return 0;
}

/* ---- CPU busy shares from /proc/stat ---- */

struct cpustat {
    int n;
    unsigned long long busy[MAXCPU], total[MAXCPU];
};

static void cpu_read(struct cpustat *s)
{
    s->n = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long long v[10] = {0};
        int cpu;
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu,
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) < 9 ||
            cpu < 0 || cpu >= MAXCPU)
            continue;
        unsigned long long total = 0;
        for (int i = 0; i < 8; i++)
            total += v[i];
        s->busy[cpu] = total - v[3] - v[4]; /* less idle and iowait */
        s->total[cpu] = total;
        if (cpu + 1 > s->n)
            s->n = cpu + 1;
    }
    fclose(f);
}

/* Nanoseconds a process has run on a CPU (first field of schedstat). */
static uint64_t run_ns(const char *pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/schedstat", pid);
    FILE *f = fopen(path, "re");
    unsigned long long v = 0;
    if (f) {
        if (fscanf(f, "%llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

/* ---- the ring ---- */

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring)))
        io_uring_submit(&ring);
    return sqe;
}

static void buf_return(uint16_t bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, bid,
                          (int)br_mask, (int)br_pending++);
}

static void arm_recv(int i)
{
    struct conn *c = &conns[i];
    struct io_uring_sqe *sqe = sqe_get();
    if (oneshot) {
        io_uring_prep_recv(sqe, c->fd, c->buf, BUFSZ, 0);
    } else {
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
    }
    io_uring_sqe_set_data64(sqe, (uint64_t)i << T_SHIFT | T_RECV);
}

static void arm_send(int i)
{
    struct conn *c = &conns[i];
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, c->fd, msg + c->sent, msgsize - c->sent,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)i << T_SHIFT | T_SEND);
}

static void start_message(int i)
{
    struct conn *c = &conns[i];
    c->got = c->sent = 0;
    c->t0 = now_ns;
    arm_send(i);
}

static void fail(int i, int res, const char *what)
{
    if (errors++ < 5)
        fprintf(stderr, "load_echo: connection %d: %s%s%s\n", i, what,
                res ? ": " : "", res ? strerror(-res) : "");
    conns[i].fd = -1; /* it takes no further part */
}

static void on_recv(int i, int res, unsigned flags)
{
    struct conn *c = &conns[i];
    if (res > 0 && (flags & IORING_CQE_F_BUFFER))
        buf_return((uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT));
    if (c->fd < 0)
        return;
    if (res <= 0 && res != -ENOBUFS) {
        fail(i, res, res ? "recv" : "recv: closed by the server");
        return;
    }
    if (res > 0)
        c->got += (size_t)res;
    if (oneshot || !(flags & IORING_CQE_F_MORE))
        arm_recv(i);
    if (c->got > msgsize) {
        fail(i, 0, "more bytes than sent");
        return;
    }
    if (c->got == msgsize) {
        all_msgs++;
        if (measuring) {
            hist[bucket_of(now_ns - c->t0)]++;
            done_msgs++;
        }
        start_message(i);
    }
}

static void on_send(int i, int res)
{
    struct conn *c = &conns[i];
    if (c->fd < 0)
        return;
    if (res < 0) {
        fail(i, res, "send");
        return;
    }
    c->sent += (size_t)res;
    if (c->sent < msgsize)
        arm_send(i);
}

static int setup_buffers(void)
{
    br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bufs = mmap(NULL, (size_t)NBUF * BUFSZ, PROT_READ | PROT_WRITE,
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

/* Connect every connection; the server may still be starting (5 s). */
static int connect_all(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "load_echo: %s is not an IPv4 address\n", host);
        return -1;
    }
    uint64_t give_up = clock_ns() + 5000000000ull;
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            perror("load_echo: socket (raise ulimit -n?)");
            return -1;
        }
        while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            if (errno != ECONNREFUSED || clock_ns() > give_up) {
                fprintf(stderr,
                        "load_echo: connect %s:%d (connection %d): "
                        "%s\n",
                        host, port, i, strerror(errno));
                return -1;
            }
            close(fd);
            usleep(20000);
            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i].fd = fd;
        if (oneshot && !(conns[i].buf = malloc(BUFSZ)))
            return -1;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: load_echo [-H host] [-p port] [-c conns] "
                    "[-s size] [-d secs] [-w warmup_secs] [-P pid] [-M] "
                    "[-S] [-i]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *srv_pid = NULL;
    int port = 7000, c;
    double secs = 8, warm = 1;
    while ((c = getopt(argc, argv, "H:p:c:s:d:w:P:MSi")) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            nconn = atoi(optarg);
            break;
        case 's':
            msgsize = strtoul(optarg, NULL, 0);
            break;
        case 'd':
            secs = atof(optarg);
            break;
        case 'w':
            warm = atof(optarg);
            break;
        case 'P':
            srv_pid = optarg;
            break;
        case 'M':
            oneshot = true;
            break;
        case 'S':
            sleepy = true;
            break;
        case 'i':
            every_second = true;
            break;
        default:
            usage();
        }
    }
    if (nconn < 1 || msgsize < 1 || secs <= 0 || warm < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, on_usr1);
    conns = calloc((size_t)nconn, sizeof *conns);
    msg = malloc(msgsize);
    if (!conns || !msg)
        return 1;
    for (size_t i = 0; i < msgsize; i++)
        msg[i] = (char)('a' + i % 26);

    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = 4 * (unsigned)nconn + 1024;
    int rc = io_uring_queue_init_params(1024, &ring, &p);
    if (rc < 0) {
        fprintf(stderr, "load_echo: io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    io_uring_register_ring_fd(&ring);
    if (!oneshot && (rc = setup_buffers()) < 0) {
        fprintf(stderr, "load_echo: buffer ring: %s\n", strerror(-rc));
        return 1;
    }
    if (connect_all(host, port) < 0)
        return 1;

    now_ns = clock_ns();
    uint64_t t_meas = now_ns + (uint64_t)(warm * 1e9), t_end = 0;
    measuring = warm == 0;
    struct cpustat cpu0, cpu1;
    uint64_t srv0 = 0, gen0 = 0, t_tick = now_ns + 1000000000u, msgs_tick = 0;
    if (measuring) {
        cpu_read(&cpu0);
        srv0 = srv_pid ? run_ns(srv_pid) : 0;
        gen0 = run_ns("self");
        t_end = t_meas + (uint64_t)(secs * 1e9);
    }
    for (int i = 0; i < nconn; i++) {
        arm_recv(i);
        start_message(i);
    }
    for (;;) {
        rc = sleepy ? io_uring_submit_and_wait(&ring, 1)
                    : io_uring_submit_and_get_events(&ring);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
            fprintf(stderr, "load_echo: submit: %s\n", strerror(-rc));
            return 1;
        }
        now_ns = clock_ns();
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            n++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            int i = (int)(ud >> T_SHIFT);
            if ((ud & 3) == T_RECV)
                on_recv(i, cqe->res, cqe->flags);
            else
                on_send(i, cqe->res);
        }
        io_uring_cq_advance(&ring, n);
        if (br_pending) {
            io_uring_buf_ring_advance(br, (int)br_pending);
            br_pending = 0;
        }
        if (mark_asked) {
            mark_asked = 0;
            fprintf(stderr, "MARK msgs=%llu ns=%llu\n",
                    (unsigned long long)all_msgs, (unsigned long long)now_ns);
        }
        if (!measuring && now_ns >= t_meas) {
            measuring = true;
            t_meas = now_ns;
            t_end = t_meas + (uint64_t)(secs * 1e9);
            cpu_read(&cpu0);
            srv0 = srv_pid ? run_ns(srv_pid) : 0;
            gen0 = run_ns("self");
            t_tick = now_ns + 1000000000u;
            msgs_tick = 0;
        } else if (measuring && now_ns >= t_end) {
            break;
        }
        if (every_second && measuring && now_ns >= t_tick) {
            fprintf(stderr, "load_echo: %.0f msgs/s\n",
                    (double)(done_msgs - msgs_tick) * 1e9 /
                        (double)(now_ns - t_tick + 1000000000u));
            msgs_tick = done_msgs;
            t_tick = now_ns + 1000000000u;
        }
        if (errors >= (uint64_t)nconn) {
            fprintf(stderr, "load_echo: every connection failed\n");
            return 1;
        }
    }
    cpu_read(&cpu1);
    uint64_t srv_ns = srv_pid ? run_ns(srv_pid) - srv0 : 0;
    uint64_t gen_ns = run_ns("self") - gen0;
    double el = (double)(now_ns - t_meas) / 1e9;
    double rate = (double)done_msgs / el;
    double p50 = percentile(0.50) / 1e3, p99 = percentile(0.99) / 1e3;
    double p999 = percentile(0.999) / 1e3, mx = max_latency() / 1e3;
    printf("load_echo: %d conns x %zu B: %.0f msgs/s (%.1f MB/s each way), "
           "latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.0f us, "
           "%llu errors\n",
           nconn, msgsize, rate, rate * (double)msgsize / 1e6, p50, p99, p999,
           mx, (unsigned long long)errors);
    printf("RESULT rate=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
           "max_us=%.0f msgs=%llu secs=%.3f conns=%d size=%zu errors=%llu",
           rate, p50, p99, p999, mx, (unsigned long long)done_msgs, el, nconn,
           msgsize, (unsigned long long)errors);
    if (srv_pid && done_msgs)
        printf(" srv_ns_msg=%.0f srv_util=%.0f",
               (double)srv_ns / (double)done_msgs,
               100.0 * (double)srv_ns / 1e9 / el);
    printf(" gen_util=%.0f", 100.0 * (double)gen_ns / 1e9 / el);
    for (int i = 0; i < cpu1.n && i < cpu0.n; i++) {
        unsigned long long t = cpu1.total[i] - cpu0.total[i];
        unsigned long long b = cpu1.busy[i] - cpu0.busy[i];
        printf(" cpu%d=%.0f", i, t ? 100.0 * (double)b / (double)t : 0.0);
    }
    printf("\n");
    return errors ? 3 : 0;
}
