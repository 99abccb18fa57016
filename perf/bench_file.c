/* SPDX-License-Identifier: MIT */
/*
 * perf/bench_file.c - file throughput programs for perf/file-bench (plain
 * C, not Google Benchmark: the baselines are other programs, fio and cp).
 *
 *   weft_file_bench create FILE MIB        write a file of MIB MiB
 *   weft_file_bench randread FILE [-t TASKS] [-s SECONDS] [-b BS]
 *                           [--direct] [--fixed] [--fixedbufs] [--sqpoll]
 *                           [--iopoll] [--ring-mode M] [--invalidate]
 *                           [--repeat]
 *       TASKS tasks (default 32: queue depth 32) each loop weft_file_pread
 *       of BS bytes (4096) at random aligned offsets for SECONDS (5):
 *       each block once before any again, as fio's random map does
 *       (--repeat: uniformly random, as fio's norandommap);
 *       prints "iops N" and the details, the backend among them (run
 *       with WEFT_BACKEND=epoll for the epoll backend's worker pool).
 *       --invalidate drops the file's pages from the page cache first
 *       and disables read-ahead (POSIX_FADV_RANDOM), as fio does by
 *       default. FILE may be a block device (its size from BLKGETSIZE64);
 *       --iopoll runs with WEFT_OPT_IOPOLL (with --direct: polled reads on
 *       a device with polled queues) and prints how many reads the polled
 *       ring answered.
 *   weft_file_bench mktree DIR DIRS FILES  DIRS directories of FILES files
 *       of 1-8 KiB each (deterministic sizes and bytes)
 *   weft_file_bench splice FILE [-r ROUNDS]
 *       copies FILE into a TCP loopback connection (a thread drains it)
 *       twice per round (ROUNDS, default 3): read+send through a buffer,
 *       and IORING_OP_SPLICE through a pipe; prints MiB/s for each and
 *       the medians. Both are raw ring operations, io_uring's only: on
 *       the epoll backend (WEFT_BACKEND=epoll) it says so on stderr and
 *       exits 0, measuring nothing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <weft.h>
#include <weft/uring.h>

/* White-box, for --iopoll: the polled ring's counters (struct wf_loop). */
#include "engine/engine.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- create ---- */

struct create_args {
    const char *path;
    size_t mib;
};

static int create_main(void *arg)
{
    struct create_args *a = arg;
    size_t chunk = 1u << 20;
    char *buf = malloc(chunk);
    if (!buf)
        return -ENOMEM;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < chunk / 8; i++)
        ((uint64_t *)buf)[i] = xorshift(&s);
    weft_file *f;
    int rc = weft_file_open(&f, a->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (size_t i = 0; rc == 0 && i < a->mib; i++) {
        ((uint64_t *)buf)[0] = i; /* no two MiB alike */
        ssize_t n = weft_file_write(f, buf, chunk);
        if (n < 0)
            rc = (int)n;
    }
    if (rc == 0) {
        rc = weft_file_sync(f);
        int c = weft_file_close(f);
        rc = rc < 0 ? rc : c;
    }
    free(buf);
    return rc;
}

/* ---- randread ---- */

struct rr_ctx {
    weft_file *f;
    uint64_t blocks;
    uint64_t next, mask; /* the shared walk over a permutation of blocks */
    unsigned bits;
    bool repeat;
    size_t bs;
    bool fixedbufs; /* weft_file_pread_fixed into registered buffers */
    volatile bool stop;
    int err;
};

struct rr_task {
    struct rr_ctx *c;
    void *buf;
    uint64_t ops, seed;
};

/* A bijection of [0, 2^bits): odd multiplications and xor-shifts. */
static uint64_t scramble(uint64_t i, unsigned bits, uint64_t mask)
{
    uint64_t h = i & mask;
    for (int r = 0; r < 3; r++) {
        h = (h * 0x9E3779B97F4A7C15ull) & mask;
        h ^= h >> ((bits + 1) / 2);
    }
    return h;
}

/*
 * The next block: by default every block once, in a scrambled order,
 * before any block again (fio's random map, its default for randread);
 * with --repeat, uniform random blocks (fio's norandommap).
 */
static uint64_t next_block(struct rr_ctx *c, struct rr_task *r)
{
    if (c->repeat)
        return xorshift(&r->seed) % c->blocks;
    uint64_t b;
    do
        b = scramble(c->next++, c->bits, c->mask);
    while (b >= c->blocks);
    return b;
}

static int rr_task(void *arg)
{
    struct rr_task *r = arg;
    struct rr_ctx *c = r->c;
    while (!c->stop) {
        off_t off = (off_t)(next_block(c, r) * c->bs);
        ssize_t n = c->fixedbufs
                        ? weft_file_pread_fixed(c->f, r->buf, c->bs, off)
                        : weft_file_pread(c->f, r->buf, c->bs, off);
        if (n != (ssize_t)c->bs) {
            if (n != -ECANCELED && !c->err)
                c->err = n < 0 ? (int)n : -EIO;
            break;
        }
        r->ops++;
    }
    return 0;
}

struct rr_args {
    const char *path;
    unsigned tasks;
    double secs;
    size_t bs;
    unsigned flags;
    bool invalidate, repeat, fixedbufs, sqpoll, iopoll;
    unsigned ring_mode; /* weft_options.ring_mode */
};

static int randread_main(void *arg)
{
    struct rr_args *a = arg;
    struct rr_ctx c = {
        .bs = a->bs, .repeat = a->repeat, .fixedbufs = a->fixedbufs};
    weft_file_options o = {.flags = a->flags};
    int rc = weft_file_open_opts(&c.f, a->path, O_RDONLY, 0, &o);
    if (rc < 0) {
        fprintf(stderr, "open %s: %s\n", a->path, weft_strerror(rc));
        return rc;
    }
    struct statx st;
    rc = weft_file_stat(c.f, &st);
    uint64_t size = st.stx_size;
    if (rc == 0 && S_ISBLK(st.stx_mode) &&
        ioctl(weft_file_fd(c.f), BLKGETSIZE64, &size) < 0)
        rc = -errno;
    if (rc < 0 || size < a->bs)
        return rc < 0 ? rc : -EINVAL;
    c.blocks = size / a->bs;
    while (c.bits < 63 && ((uint64_t)1 << c.bits) < c.blocks)
        c.bits++;
    c.mask = ((uint64_t)1 << c.bits) - 1;
    /* As fio does by default (invalidate=1, fadvise_hint=1): start with
     * the file's pages out of the page cache, and tell the kernel the
     * reads are random (no read-ahead around each miss). */
    if (a->invalidate) {
        posix_fadvise(weft_file_fd(c.f), 0, 0, POSIX_FADV_DONTNEED);
        posix_fadvise(weft_file_fd(c.f), 0, 0, POSIX_FADV_RANDOM);
    }
    struct rr_task *t = calloc(a->tasks, sizeof *t);
    if (!t)
        return -ENOMEM;
    /* One area, a slice per task: registered as one buffer with
     * --fixedbufs (fio's fixedbufs registers one per I/O unit). */
    void *area = NULL;
    if (posix_memalign(&area, 4096, a->tasks * a->bs))
        return -ENOMEM;
    for (unsigned i = 0; i < a->tasks; i++) {
        t[i].c = &c;
        t[i].seed = 0x9E3779B97F4A7C15ull * (i + 1);
        t[i].buf = (char *)area + i * a->bs;
    }
    if (a->fixedbufs) {
        struct iovec iov = {area, a->tasks * a->bs};
        rc = weft_file_register_buffers(&iov, 1);
        if (rc < 0) {
            fprintf(stderr, "register buffers: %s\n", weft_strerror(rc));
            return rc;
        }
    }
    weft_group g;
    weft_group_enter(&g);
    double t0 = now_s();
    for (unsigned i = 0; i < a->tasks && rc == 0; i++)
        rc = weft_group_spawn(&g, rr_task, &t[i]);
    if (rc == 0)
        rc = weft_sleep((weft_time)(a->secs * WEFT_SEC));
    c.stop = true;
    rc = weft_group_exit(&g, rc);
    double dt = now_s() - t0;
    uint64_t ops = 0;
    for (unsigned i = 0; i < a->tasks; i++)
        ops += t[i].ops;
    free(t);
    if (a->fixedbufs)
        weft_file_unregister_buffers();
    free(area);
    weft_file_close(c.f);
    if (c.err) {
        fprintf(stderr, "pread: %s\n", weft_strerror(c.err));
        return c.err;
    }
    printf("iops %.0f\n", ops / dt);
    printf("ops %llu in %.2f s, %u tasks, bs %zu, %s%s%s%s%s\n",
           (unsigned long long)ops, dt, a->tasks, a->bs, weft_backend_name(),
           a->flags & WEFT_FILE_DIRECT ? ", O_DIRECT" : "",
           a->flags & WEFT_FILE_FIXED ? ", fixed file" : "",
           a->fixedbufs ? ", fixed buffers" : "", a->sqpoll ? ", SQPOLL" : "");
    if (a->iopoll)
        printf("IOPOLL: %llu reads answered on the polled ring, %llu "
               "refused there (then on the main ring)\n",
               (unsigned long long)wf_cur->npolled,
               (unsigned long long)wf_cur->npoll_refused);
    return rc;
}

/* ---- mktree ---- */

struct tree_args {
    const char *dir;
    unsigned dirs, files;
};

static int mktree_main(void *arg)
{
    struct tree_args *a = arg;
    char path[4096], buf[8192];
    uint64_t s = 12345;
    int rc = weft_path_mkdir(a->dir, 0755);
    for (unsigned d = 0; rc == 0 && d < a->dirs; d++) {
        snprintf(path, sizeof path, "%s/d%03u", a->dir, d);
        rc = weft_path_mkdir(path, 0755);
        for (unsigned i = 0; rc == 0 && i < a->files; i++) {
            size_t n = 1024 + xorshift(&s) % (7 * 1024 + 1);
            for (size_t k = 0; k < n; k += 8) {
                uint64_t v = xorshift(&s);
                memcpy(buf + k, &v, n - k < 8 ? n - k : 8);
            }
            snprintf(path, sizeof path, "%s/d%03u/f%05u", a->dir, d, i);
            rc = weft_path_write_all(path, buf, n);
        }
    }
    return rc;
}

/* ---- splice vs read+send ---- */

struct drain {
    int fd;
    size_t total;
};

static void *drain_thread(void *arg)
{
    struct drain *d = arg;
    size_t cap = 1u << 20;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t n = recv(d->fd, buf, cap, 0);
        if (n <= 0)
            break;
        d->total += (size_t)n;
    }
    free(buf);
    return NULL;
}

/* A connected TCP loopback pair: *w for the loop, *r for the drain. */
static int tcp_pair(int *w, int *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(l, 1) < 0 || getsockname(l, (struct sockaddr *)&sa, &len) < 0)
        return -errno;
    *w = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*w < 0 || connect(*w, (struct sockaddr *)&sa, sizeof sa) < 0)
        return -errno;
    *r = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    close(l);
    return *r < 0 ? -errno : 0;
}

static int sqe_await_send(int fd, const void *buf, size_t n)
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!sqe)
        return -ENOTSUP; /* the epoll backend: no ring */
    io_uring_prep_send(sqe, fd, buf, n, MSG_NOSIGNAL);
    return weft_uring_await(sqe);
}

static int sqe_await_splice(int in, int64_t off_in, int out, size_t n)
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!sqe)
        return -ENOTSUP;
    io_uring_prep_splice(sqe, in, off_in, out, -1, (unsigned)n, SPLICE_F_MOVE);
    return weft_uring_await(sqe);
}

/* Copy len bytes of f into sock through a user buffer. */
static int copy_read_send(weft_file *f, int sock, size_t len)
{
    size_t chunk = 256u << 10;
    char *buf = malloc(chunk);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        ssize_t n = weft_file_pread(f, buf, chunk, (off_t)off);
        if (n <= 0) {
            rc = n < 0 ? (int)n : -EIO;
            break;
        }
        for (ssize_t sent = 0; sent < n && rc == 0;) {
            int s = sqe_await_send(sock, buf + sent, (size_t)(n - sent));
            if (s <= 0)
                rc = s < 0 ? s : -EIO;
            sent += s;
        }
        off += (size_t)n;
    }
    free(buf);
    return rc;
}

/* Copy len bytes of f into sock through a pipe, never into user space. */
static int copy_splice(weft_file *f, int sock, size_t len)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    int psz = fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    if (psz < 0)
        psz = 64 << 10;
    int fd = weft_file_fd(f), rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        size_t want = len - off < (size_t)psz ? len - off : (size_t)psz;
        int n = sqe_await_splice(fd, (int64_t)off, p[1], want);
        if (n <= 0) {
            rc = n < 0 ? n : -EIO;
            break;
        }
        for (int moved = 0; moved < n && rc == 0;) {
            int m = sqe_await_splice(p[0], -1, sock, (size_t)(n - moved));
            if (m <= 0)
                rc = m < 0 ? m : -EIO;
            moved += m;
        }
        off += (size_t)n;
    }
    close(p[0]);
    close(p[1]);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct splice_args {
    const char *path;
    int rounds;
};

static int splice_main(void *arg)
{
    struct splice_args *a = arg;
    if (strcmp(weft_backend_name(), "io_uring") != 0) {
        fprintf(stderr,
                "weft_file_bench splice: IORING_OP_SEND and SPLICE need the "
                "io_uring backend, and this loop runs on %s: nothing "
                "measured\n",
                weft_backend_name());
        return 0;
    }
    weft_file *f;
    int rc = weft_file_open(&f, a->path, O_RDONLY, 0);
    if (rc < 0)
        return rc;
    struct statx st;
    if ((rc = weft_file_stat(f, &st)) < 0)
        return rc;
    size_t len = st.stx_size;
    static const char *const names[] = {"read+send", "splice"};
    double *rate[2] = {calloc(a->rounds, sizeof(double)),
                       calloc(a->rounds, sizeof(double))};
    if (!rate[0] || !rate[1])
        return -ENOMEM;
    for (int round = 0; round < a->rounds && rc == 0; round++) {
        for (int m = 0; m < 2 && rc == 0; m++) {
            int w = -1, r = -1;
            if ((rc = tcp_pair(&w, &r)) < 0)
                break;
            struct drain d = {.fd = r};
            pthread_t th;
            pthread_create(&th, NULL, drain_thread, &d);
            double t0 = now_s();
            rc = m == 0 ? copy_read_send(f, w, len) : copy_splice(f, w, len);
            shutdown(w, SHUT_WR);
            pthread_join(th, NULL);
            double dt = now_s() - t0;
            close(w);
            close(r);
            if (rc == 0 && d.total != len)
                rc = -EIO;
            rate[m][round] = len / dt / (1 << 20);
            printf("%-10s %8.0f MiB/s  (%zu MiB in %.3f s)\n", names[m],
                   rate[m][round], len >> 20, dt);
        }
    }
    if (rc == 0) {
        double med[2];
        for (int m = 0; m < 2; m++) {
            qsort(rate[m], a->rounds, sizeof(double), cmp_double);
            med[m] = rate[m][a->rounds / 2];
        }
        printf("median of %d: read+send %.0f MiB/s, splice %.0f MiB/s, "
               "splice/read+send %.2fx\n",
               a->rounds, med[0], med[1], med[1] / med[0]);
    }
    free(rate[0]);
    free(rate[1]);
    weft_file_close(f);
    return rc;
}

/* ---- main ---- */

static int usage(void)
{
    fprintf(stderr,
            "usage: weft_file_bench create FILE MIB\n"
            "       weft_file_bench randread FILE [-t TASKS] [-s SECONDS] "
            "[-b BS] [--direct] [--fixed] [--fixedbufs] [--sqpoll] [--iopoll] "
            "[--ring-mode M] [--invalidate] [--repeat]\n"
            "       weft_file_bench mktree DIR DIRS FILES\n"
            "       weft_file_bench splice FILE [-r ROUNDS]\n");
    return 2;
}

static int run_opts(weft_fn fn, void *arg, const weft_options *o)
{
    int rc = weft_run(fn, arg, o);
    if (rc < 0) {
        fprintf(stderr, "weft_file_bench: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}

static int run(weft_fn fn, void *arg)
{
    return run_opts(fn, arg, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "create") == 0 && argc == 4) {
        struct create_args a = {argv[2], strtoull(argv[3], NULL, 0)};
        return run(create_main, &a);
    }
    if (strcmp(cmd, "mktree") == 0 && argc == 5) {
        struct tree_args a = {argv[2], (unsigned)atoi(argv[3]),
                              (unsigned)atoi(argv[4])};
        return run(mktree_main, &a);
    }
    if (strcmp(cmd, "randread") == 0) {
        struct rr_args a = {
            .path = argv[2], .tasks = 32, .secs = 5.0, .bs = 4096};
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
                a.tasks = (unsigned)atoi(argv[++i]);
            else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
                a.secs = atof(argv[++i]);
            else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc)
                a.bs = strtoull(argv[++i], NULL, 0);
            else if (strcmp(argv[i], "--direct") == 0)
                a.flags |= WEFT_FILE_DIRECT;
            else if (strcmp(argv[i], "--fixed") == 0)
                a.flags |= WEFT_FILE_FIXED;
            else if (strcmp(argv[i], "--fixedbufs") == 0)
                a.fixedbufs = true;
            else if (strcmp(argv[i], "--sqpoll") == 0)
                a.sqpoll = true;
            else if (strcmp(argv[i], "--iopoll") == 0)
                a.iopoll = true;
            else if (strcmp(argv[i], "--ring-mode") == 0 && i + 1 < argc)
                a.ring_mode = (unsigned)atoi(argv[++i]);
            else if (strcmp(argv[i], "--invalidate") == 0)
                a.invalidate = true;
            else if (strcmp(argv[i], "--repeat") == 0)
                a.repeat = true;
            else
                return usage();
        }
        if (!a.tasks || !a.bs)
            return usage();
        weft_options o = {.flags = (a.sqpoll ? WEFT_OPT_SQPOLL : 0) |
                                   (a.iopoll ? WEFT_OPT_IOPOLL : 0),
                          .ring_mode = a.ring_mode};
        return run_opts(randread_main, &a, &o);
    }
    if (strcmp(cmd, "splice") == 0) {
        struct splice_args a = {argv[2], 3};
        if (argc == 5 && strcmp(argv[3], "-r") == 0)
            a.rounds = atoi(argv[4]);
        else if (argc != 3)
            return usage();
        if (a.rounds < 1)
            return usage();
        return run(splice_main, &a);
    }
    return usage();
}
