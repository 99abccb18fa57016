/* SPDX-License-Identifier: MIT */
/*
 * engine/faults.c - seeded fault injection (weft/testing.h).
 *
 * A loop with faults has a struct wf_faults (L->faults; NULL when off, and
 * then every hook is one untaken branch). Its generator (splitmix64) draws
 * one number per eligible event, in the order the loop meets them, so the
 * same seed and the same single-threaded program make the same faults.
 *
 * The hooks:
 *   wf_io_await (engine/op.c), before submitting a task's operation:
 *     ERRORS - the SQE is dropped and the await returns an error the
 *              kernel could give for that opcode (table below). Deciding
 *              before the kernel sees the operation means no byte is
 *              sent or consumed behind the caller's back.
 *     SHORT  - a read, write, recv or send on a byte stream (or a file)
 *              asks the kernel for fewer bytes (a vectored one for fewer
 *              buffers): the kernel really transfers less.
 *   finish_one (engine/op.c), at the terminal CQE:
 *     DELAY  - the task is readied one round later than it would be.
 *   wf_malloc and friends (engine/alloc.c):
 *     ALLOC  - weft's own allocations fail.
 *   cancel_send (engine/op.c), when a task's operation is cancelled:
 *     CANCEL_MISS - the ASYNC_CANCEL looks for a user_data no operation
 *              has, so the kernel answers -ENOENT while the operation is
 *              still in flight, as Linux 6.1 does for one that is moving
 *              between its queues; a cancel sent again is never touched.
 * Standing operations (a listener's accepts, the mailbox's poll), cancels,
 * closes and NOPs are never touched.
 */
#include "engine/engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft/testing.h>

struct wf_faults {
    uint64_t seed, state, injected;
    unsigned kinds, rate;
    wf_link held; /* tasks held back in this round's reaps */
    wf_link due;  /* held in the last round: readied in this one */
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One eligible event of kind k: does it fault? */
static bool draw(struct wf_faults *f, unsigned k)
{
    if (!(f->kinds & k))
        return false;
    if (splitmix64(&f->state) % 1000000 >= f->rate)
        return false;
    f->injected++;
    return true;
}

/* ---- ERRORS: what the kernel may answer each opcode with ---- */

static const int sock_recv[] = {-ECONNRESET, -ENOMEM};
static const int sock_send[] = {-ECONNRESET, -EPIPE, -ENOMEM};
static const int sock_connect[] = {-ECONNREFUSED, -ENOMEM};
static const int file_read[] = {-EIO, -ENOMEM};
static const int file_write[] = {-EIO, -ENOSPC};
static const int file_sync[] = {-EIO};
static const int new_fd[] = {-EMFILE, -ENOMEM};
static const int path_op[] = {-EIO, -ENOMEM};
static const int accept_op[] = {-ECONNABORTED, -EMFILE};

#define ERRS(a)                                                                \
    {                                                                          \
        a, sizeof a / sizeof a[0]                                              \
    }
static const struct {
    const int *v;
    unsigned n;
} errors_for[IORING_OP_LAST] = {
    [IORING_OP_RECV] = ERRS(sock_recv),
    [IORING_OP_RECVMSG] = ERRS(sock_recv),
    [IORING_OP_SEND] = ERRS(sock_send),
    [IORING_OP_SENDMSG] = ERRS(sock_send),
    [IORING_OP_SEND_ZC] = ERRS(sock_send),
    [IORING_OP_SENDMSG_ZC] = ERRS(sock_send),
    [IORING_OP_CONNECT] = ERRS(sock_connect),
    [IORING_OP_ACCEPT] = ERRS(accept_op),
    [IORING_OP_READ] = ERRS(file_read),
    [IORING_OP_READV] = ERRS(file_read),
    [IORING_OP_READ_FIXED] = ERRS(file_read),
    [IORING_OP_WRITE] = ERRS(file_write),
    [IORING_OP_WRITEV] = ERRS(file_write),
    [IORING_OP_WRITE_FIXED] = ERRS(file_write),
    [IORING_OP_FSYNC] = ERRS(file_sync),
    [IORING_OP_FALLOCATE] = ERRS(file_write),
    [IORING_OP_OPENAT] = ERRS(new_fd),
    [IORING_OP_OPENAT2] = ERRS(new_fd),
    [IORING_OP_SOCKET] = ERRS(new_fd),
    [IORING_OP_STATX] = ERRS(path_op),
    [IORING_OP_MKDIRAT] = ERRS(path_op),
    [IORING_OP_RENAMEAT] = ERRS(path_op),
    [IORING_OP_UNLINKAT] = ERRS(path_op),
};

/* ---- SHORT ---- */

/* Only a byte stream may move fewer bytes than asked: a datagram cut
 * short would be truncated, not continued. A registered file cannot be
 * asked, so it is left alone. */
static bool byte_stream(const struct io_uring_sqe *sqe)
{
    if (sqe->flags & IOSQE_FIXED_FILE)
        return false;
    int type;
    socklen_t len = sizeof type;
    if (getsockopt(sqe->fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
        return type == SOCK_STREAM;
    return errno == ENOTSOCK; /* a file or a pipe */
}

static bool shortable(uint8_t op)
{
    switch (op) {
    case IORING_OP_READ:
    case IORING_OP_WRITE:
    case IORING_OP_READV: /* len: the number of buffers */
    case IORING_OP_WRITEV:
    case IORING_OP_READ_FIXED:
    case IORING_OP_WRITE_FIXED:
    case IORING_OP_RECV:
    case IORING_OP_SEND:
        return true;
    default:
        return false;
    }
}

/* The socket type of the SQE's fd: SOCK_STREAM, SOCK_DGRAM, ...; 0 for a
 * registered file or an fd that is not a socket. */
static int sock_type(const struct io_uring_sqe *sqe)
{
    int type;
    socklen_t len = sizeof type;
    if (sqe->flags & IOSQE_FIXED_FILE ||
        getsockopt(sqe->fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return 0;
    return type;
}

/*
 * Reset a connected byte stream. On TCP a shutdown alone sends a FIN: the
 * peer would read the end but could go on sending into a window nobody
 * empties, blocked for good (test_stream's TCP echo hung so). Connecting
 * to AF_UNSPEC disconnects it with an RST (tcp_disconnect), so the peer's
 * calls fail with -ECONNRESET as after a real reset; the shutdown that
 * follows makes this end's later calls see the end (-EPIPE on a send). A
 * Unix stream socket needs only the shutdown: the peer's sends already
 * fail with -EPIPE.
 */
static void reset(int fd)
{
    int domain;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
        (domain == AF_INET || domain == AF_INET6)) {
        struct sockaddr unspec = {.sa_family = AF_UNSPEC};
        connect(fd, &unspec, sizeof unspec);
    }
    shutdown(fd, SHUT_RDWR);
}

/*
 * A reset (or a broken pipe) is the state of a connection, not of one
 * call: it is injected only on a connected byte stream, which is then
 * shut down for both ends, as a real reset would leave it (the peer sees
 * the end instead of waiting forever). A datagram socket cannot be reset,
 * and a shut-down one would stay broken for good (found under seed 2: a
 * UDP socket "reset" on a receive failed every later send with -EPIPE);
 * a registered file cannot be shut down from here. Those get -ENOMEM, a
 * transient error, instead.
 */
static int reset_or_transient(const struct io_uring_sqe *sqe, int res)
{
    if (res != -ECONNRESET && res != -EPIPE)
        return res;
    if (sock_type(sqe) != SOCK_STREAM)
        return -ENOMEM;
    reset(sqe->fd);
    return res;
}

bool wf_faults_submit(struct wf_loop *L, struct io_uring_sqe *sqe, int *res)
{
    struct wf_faults *f = L->faults;
    uint8_t op = sqe->opcode;
    if (op < IORING_OP_LAST && errors_for[op].n && draw(f, WEFT_FAULT_ERRORS)) {
        uint64_t r = splitmix64(&f->state);
        *res = reset_or_transient(sqe, errors_for[op].v[r % errors_for[op].n]);
        return true;
    }
    if (shortable(op) && sqe->len > 1 && draw(f, WEFT_FAULT_SHORT)) {
        uint64_t r = splitmix64(&f->state);
        if (byte_stream(sqe))
            sqe->len = 1 + (unsigned)(r % (sqe->len - 1));
        else
            f->injected--; /* not a fault after all */
    }
    return false;
}

/* ---- DELAY ---- */

bool wf_faults_hold(struct wf_loop *L, struct weft_task *t)
{
    struct wf_faults *f = L->faults;
    if (!draw(f, WEFT_FAULT_DELAY))
        return false;
    /* Its link is free: a task waits for ring room before it submits,
     * never while its operation is in flight. */
    wf_list_push(&f->held, &t->link);
    return true;
}

bool wf_faults_holding(const struct wf_loop *L)
{
    const struct wf_faults *f = L->faults;
    return !wf_list_empty(&f->held) || !wf_list_empty(&f->due);
}

void wf_faults_round(struct wf_loop *L)
{
    struct wf_faults *f = L->faults;
    wf_link *n;
    while ((n = wf_list_pop(&f->due)))
        wf_wake(wf_container_of(n, struct weft_task, link));
    wf_list_splice(&f->due, &f->held);
}

/* ---- ALLOC ---- */

bool wf_faults_alloc_fails(struct wf_loop *L)
{
    return draw(L->faults, WEFT_FAULT_ALLOC);
}

/* ---- CANCEL_MISS ---- */

bool wf_faults_cancel_miss(struct wf_loop *L)
{
    return draw(L->faults, WEFT_FAULT_CANCEL_MISS);
}

/* ---- set-up: weft_options.faults, else WEFT_FAULTS ---- */

/* The names of the kinds, bit by bit. */
static const char *const kind_names[] = {"errors", "short", "delay", "alloc",
                                         "cancel_miss"};
enum { NKINDS = sizeof kind_names / sizeof kind_names[0] };

static bool parse_kinds(const char *s, size_t len, unsigned *kinds)
{
    *kinds = 0;
    while (len) {
        size_t w = 0;
        while (w < len && s[w] != '+')
            w++;
        unsigned k = 0;
        for (unsigned i = 0; i < NKINDS; i++)
            if (strlen(kind_names[i]) == w && !memcmp(s, kind_names[i], w))
                k = 1u << i;
        if (w == 3 && !memcmp(s, "all", 3))
            k = WEFT_FAULT_ALL;
        if (!k)
            return false;
        *kinds |= k;
        s += w;
        len -= w;
        if (len) { /* the '+' */
            s++;
            len--;
        }
    }
    return *kinds != 0;
}

static bool parse_number(const char *s, size_t len, uint64_t *v)
{
    if (!len || len > 20)
        return false;
    char buf[24];
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (*end || errno || buf[0] == '-')
        return false;
    *v = x;
    return true;
}

/* "1" (the defaults) or
 * "seed=N,rate=R,kinds=errors+short+delay+alloc+cancel_miss",
 * each part optional: 0 and *out filled, or -EINVAL. */
int wf_faults_parse(const char *s, weft_faults *out)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(s, "1"))
        return 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        const char *eq = memchr(s, '=', n);
        if (!eq)
            return -EINVAL;
        size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
        const char *v = eq + 1;
        uint64_t x;
        if (klen == 4 && !memcmp(s, "seed", 4) && parse_number(v, vlen, &x))
            out->seed = x;
        else if (klen == 4 && !memcmp(s, "rate", 4) &&
                 parse_number(v, vlen, &x) && x <= 1000000)
            out->rate = (unsigned)x;
        else if (!(klen == 5 && !memcmp(s, "kinds", 5) &&
                   parse_kinds(v, vlen, &out->kinds)))
            return -EINVAL;
        s += n;
        if (*s == ',')
            s++;
    }
    return 0;
}

int wf_faults_open(struct wf_loop *L)
{
    weft_faults env;
    const weft_faults *in = L->opts.faults;
    if (!in) {
        const char *s = getenv("WEFT_FAULTS");
        if (!s || !*s || !strcmp(s, "0"))
            return 0;
        if (wf_faults_parse(s, &env) < 0)
            return wf_run_error_set(-EINVAL,
                                    "WEFT_FAULTS not understood (want \"1\" "
                                    "or \"seed=N,rate=R,kinds=errors+short+"
                                    "delay+alloc+cancel_miss\")");
        in = &env;
    }
    struct wf_faults *f = wf_calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->kinds = in->kinds ? in->kinds & WEFT_FAULT_ALL : WEFT_FAULT_ALL;
    f->rate = !in->rate ? 10000 : in->rate > 1000000 ? 1000000 : in->rate;
    f->seed = in->seed;
    if (!f->seed) {
        uint64_t s = (uint64_t)weft_now() ^ (uint64_t)(uintptr_t)f;
        f->seed = splitmix64(&s) | 1;
    }
    f->state = f->seed;
    wf_list_init(&f->held);
    wf_list_init(&f->due);
    L->faults = f;
    return 0;
}

/* The replay line: every setting, so that pasting it gives the same run. */
void wf_faults_close(struct wf_loop *L, int rc)
{
    struct wf_faults *f = L->faults;
    if (!f)
        return;
    /* A sweep expects errors, and names the seed of a run that fails. */
    if (rc < 0 && !wf_sweep_active()) {
        char kinds[64] = "";
        for (unsigned i = 0; i < NKINDS; i++) {
            if (!(f->kinds & (1u << i)))
                continue;
            if (kinds[0])
                strcat(kinds, "+");
            strcat(kinds, kind_names[i]);
        }
        fprintf(stderr,
                "weft: faults seed=%" PRIu64 " (WEFT_FAULTS=seed=%" PRIu64
                ",rate=%u,kinds=%s to replay; "
                "%" PRIu64 " injected)\n",
                f->seed, f->seed, f->rate, kinds, f->injected);
    }
    L->faults = NULL;
    wf_free(f);
}

WF_EXPORT uint64_t weft_faults_seed(void)
{
    struct wf_loop *L = wf_cur;
    return L && L->faults ? L->faults->seed : 0;
}

WF_EXPORT uint64_t weft_faults_injected(void)
{
    struct wf_loop *L = wf_cur;
    return L && L->faults ? L->faults->injected : 0;
}
