/* SPDX-License-Identifier: MIT */
/*
 * server.c - weft-kv's main: options, one loop per core, a listener per
 * core, the connections, the active expiry, the drain and INFO.
 *
 *     weft-kv [-t CORES] [--port N] [--bind ADDR] [--maxclients N]
 *             [--timeout SECS] [--drain-grace SECS]
 *             [--tls --tls-cert FILE --tls-key FILE]
 *             [--proto-max-bulk-len N] [--max-query N] [--dump FILE]
 *
 * The shape of it, top to bottom:
 *
 *  - weft_run_cores(CORES): a loop per core; core i owns shard i.
 *  - main (core 0) opens the signal receiver, starts a sweeper on every
 *    core (the active expiry and the idle timeout, every 100 ms on
 *    weft's timers) and a signal watcher, then serves with weft_serve_cores: a
 * SO_REUSEPORT listener on every core, each connection handled on the core that
 *    accepted it, its commands hopping to the core of their key.
 *  - A connection reads what the client sent, runs every whole request
 *    in it (pipelining), and sends the replies of the batch in one send.
 *  - SIGTERM or SIGINT: the watcher cancels the serving scope (every
 *    core stops accepting: weft_serve_opts.drain_grace), then on every
 *    core closes the connections that are waiting for a request; one in
 *    the middle of a batch finishes it, sends its replies and closes.
 *    Once the last connection has ended, main cancels the sweepers,
 *    writes the keys out (--dump) and exits 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/uring.h>

#include "kv.h"

struct kv_config kv_cfg = {
    .cores = 1,
    .port = 6379,
    .bind = "127.0.0.1",
    .maxclients = 10000,
    .drain_grace = 10 * WEFT_SEC,
    .sweep_every = 100 * WEFT_MSEC,
    .limits = {.max_bulk = 512LL << 20,
               .max_inline = 64 << 10,
               .max_argc = 1 << 20},
    .max_query = (size_t)1 << 30,
};

static const char MAXCLIENTS_ERR[] = "-ERR max number of clients reached\r\n";

/* ---- a connection ---- */

static void conn_link(struct kv_shard *sh, struct kv_conn *c)
{
    c->prev = NULL;
    c->next = sh->conns;
    if (sh->conns)
        sh->conns->prev = c;
    sh->conns = c;
}

static void conn_unlink(struct kv_shard *sh, struct kv_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        sh->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

struct inbuf {
    char *p;
    size_t len, cap;
};

/*
 * A plain TCP connection receives and sends with ring operations on its
 * socket (weft/uring.h: the stream calls' cancellation, without the
 * stream layer's bookkeeping); a TLS one through its stream. The receive
 * that follows a reply goes out with IORING_RECVSEND_POLL_FIRST (Linux
 * 5.19): the client has not read the reply yet, let alone sent its next
 * request, so the kernel arms its poll at once instead of trying the
 * socket first and failing (measured at -P 1: 0.9 failed tcp_recvmsg per
 * request without it). A kernel without the flag says -EINVAL once; from
 * then on receives go without it.
 *
 * Cheaper still, and the default where the loop has it: a multishot
 * receive (weft_stream_set_multishot), armed once per connection, so
 * that a request costs one completion and no submission; receives then
 * go through the stream, which takes them from its queue.
 */
static _Atomic bool poll_first_off;

static ssize_t conn_recv(struct kv_conn *c, void *buf, size_t len,
                         bool poll_first)
{
    if (c->fd < 0 || c->ms)
        return weft_stream_recv(c->s, buf, len);
    for (;;) {
        bool pf = poll_first &&
                  !atomic_load_explicit(&poll_first_off, memory_order_relaxed);
        struct io_uring_sqe *sqe = weft_uring_sqe();
        if (!sqe)
            return -EPERM;
        io_uring_prep_recv(sqe, c->fd, buf, len, 0);
        if (pf)
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        int rc = weft_uring_await(sqe);
        if (rc != -EINVAL || !pf)
            return rc;
        atomic_store_explicit(&poll_first_off, true, memory_order_relaxed);
    }
}

/* All of buf, or -errno (as weft_stream_send). */
static ssize_t conn_send(struct kv_conn *c, const void *buf, size_t len)
{
    if (c->fd < 0)
        return weft_stream_send(c->s, buf, len);
    size_t done = 0;
    while (done < len) {
        struct io_uring_sqe *sqe = weft_uring_sqe();
        if (!sqe)
            return -EPERM;
        io_uring_prep_send(sqe, c->fd, (const char *)buf + done, len - done,
                           MSG_NOSIGNAL);
        int rc = weft_uring_await(sqe);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return -EIO;
        done += (size_t)rc;
    }
    return (ssize_t)len;
}

/* Wait for more bytes: > 0, or 0 when the connection should end (the
 * peer closed, an error, the idle timeout, the drain). poll_first: a
 * reply has just gone out, so no request is there yet. */
static ssize_t read_more(struct kv_conn *c, struct inbuf *in, bool poll_first)
{
    struct kv_shard *sh = &kv_shards[weft_core_id()];
    if (sh->draining)
        return 0;
    if (in->len == in->cap) {
        if (in->cap >= kv_cfg.max_query)
            return -EMSGSIZE;
        size_t cap = in->cap * 2;
        if (cap > kv_cfg.max_query) /* the limit exact, not rounded up */
            cap = kv_cfg.max_query;
        char *p = realloc(in->p, cap);
        if (!p)
            return -ENOMEM;
        in->p = p;
        in->cap = cap;
    }
    /* No deadline of its own: the sweeper closes it once it has waited
     * longer than the idle timeout (a timer armed and removed per request
     * would cost more than the request). */
    weft_scope idle;
    weft_scope_enter(&idle, WEFT_FOREVER);
    c->idle = &idle;
    c->idle_since = sh->now;
    ssize_t n = conn_recv(c, in->p + in->len, in->cap - in->len, poll_first);
    c->idle = NULL;
    n = weft_scope_exit(&idle, (int)n);
    return n > 0 ? n : 0;
}

static int flush(struct kv_conn *c, struct kv_out *out)
{
    if (out->len == 0)
        return 0;
    ssize_t n = conn_send(c, out->buf, out->len);
    out->len = 0;
    return n < 0 ? (int)n : 0;
}

/* Run every whole request buffered; replies into out. */
static int run_batch(struct kv_conn *c, struct inbuf *in, size_t *pos,
                     struct kv_req *req, struct kv_out *out)
{
    while (!c->close_after) {
        size_t used = 0;
        const char *err = NULL;
        int r = resp_parse(in->p + *pos, in->len - *pos, &kv_cfg.limits, req,
                           &used, &err);
        if (r == RESP_MORE)
            return 0;
        if (r == RESP_ERROR) {
            out_error(out, "%s", err);
            c->close_after = true; /* a malformed frame: as Redis, close */
            return 0;
        }
        int rc = kv_execute(c, req, out);
        *pos += used;
        if (rc < 0)
            return rc;
        if (out->len >= 64 * 1024 && (rc = flush(c, out)) < 0)
            return rc;
    }
    return 0;
}

static int serve_conn(struct kv_conn *c)
{
    struct inbuf in = {malloc(16384), 0, 16384};
    struct kv_req req = {0};
    struct kv_out out = {0};
    int rc = in.p ? 0 : -ENOMEM;
    while (rc == 0) {
        size_t pos = 0;
        rc = run_batch(c, &in, &pos, &req, &out);
        bool replied = out.len > 0;
        if (rc == 0)
            rc = flush(c, &out);
        if (rc < 0 || c->close_after)
            break;
        memmove(in.p, in.p + pos, in.len - pos);
        in.len -= pos;
        ssize_t n = read_more(c, &in, replied);
        if (n == -EMSGSIZE) /* as Redis 7.0: a line in the log, no reply */
            fprintf(stderr,
                    "weft-kv: closing client %llu that reached max query "
                    "buffer length (%zu bytes)\n",
                    (unsigned long long)c->id, kv_cfg.max_query);
        if (n <= 0)
            break;
        in.len += (size_t)n;
    }
    free(in.p);
    resp_req_free(&req);
    out_free(&out);
    return rc;
}

static int tls_handshake(weft_stream *conn, weft_stream **tls)
{
    weft_stream *b;
    int rc = weft_stream_borrow(&b, conn);
    if (rc < 0)
        return rc;
    weft_scope s; /* a client that never finishes its hello */
    weft_fail_after(&s, 10 * WEFT_SEC);
    rc = weft_tls_wrap(tls, b, kv_cfg.tls, NULL);
    return weft_scope_exit(&s, rc);
}

/* weft_serve_cores' handler: on the core that accepted conn. */
static int handle(weft_stream *conn, void *arg)
{
    (void)arg;
    long n = atomic_fetch_add(&kv_clients, 1) + 1;
    if (n > kv_cfg.maxclients) {
        weft_stream_send(conn, MAXCLIENTS_ERR, sizeof MAXCLIENTS_ERR - 1);
        atomic_fetch_sub(&kv_clients, 1);
        return 0;
    }
    struct kv_conn c = {.s = conn, .fd = -1};
    c.id = atomic_fetch_add(&kv_connections_total, 1) + 1;
    weft_stream *tls = NULL;
    int rc = kv_cfg.tls ? tls_handshake(conn, &tls) : 0;
    if (rc == 0) {
        if (tls)
            c.s = tls;
        else if (weft_uring_has_op(IORING_OP_RECV)) /* not on epoll */
            c.fd = weft_stream_fd(conn);
        c.ms = !tls && !kv_cfg.no_multishot &&
               weft_stream_set_multishot(conn, true) == 0;
        struct kv_shard *sh = &kv_shards[weft_core_id()];
        conn_link(sh, &c);
        serve_conn(&c);
        conn_unlink(sh, &c);
    }
    if (tls)
        weft_stream_close(tls);
    atomic_fetch_sub(&kv_clients, 1);
    return 0; /* a client's end is no error of the server's */
}

/* ---- the active expiry, one task per core ---- */

/* Close the connections that have waited for a request longer than the
 * idle timeout, as Redis's clientsCron: to within a sweep's period. */
static void close_timed_out(struct kv_shard *sh)
{
    for (struct kv_conn *c = sh->conns; c; c = c->next)
        if (c->idle && sh->now - c->idle_since >= kv_cfg.idle_timeout)
            weft_scope_cancel(c->idle);
}

static int sweeper(void *arg)
{
    (void)arg;
    struct kv_shard *sh = &kv_shards[weft_core_id()];
    for (;;) {
        int rc = weft_sleep(kv_cfg.sweep_every);
        if (rc < 0)
            return rc;
        sh->now = weft_now();
        for (int db = 0; db < KV_DBS; db++)
            if (kv_db_used(sh, db) && sh->db[db].nexpires)
                ks_sweep(&sh->db[db], kv_now_ms(), 200);
        if (kv_cfg.idle_timeout)
            close_timed_out(sh);
    }
}

/* ---- the drain ---- */

struct app {
    weft_scope serving;
    weft_signal_receiver *signals;
    int rc;
};

/* On each core: no more requests; the connections waiting for one end. */
static int close_idle(void *arg)
{
    (void)arg;
    struct kv_shard *sh = &kv_shards[weft_core_id()];
    sh->draining = true;
    for (struct kv_conn *c = sh->conns; c; c = c->next)
        if (c->idle)
            weft_scope_cancel(c->idle);
    return 0;
}

static int watch_signals(void *arg)
{
    struct app *a = arg;
    int rc = weft_signal_receive(a->signals);
    if (rc < 0)
        return rc;
    fprintf(stderr, "weft-kv: signal %d, draining\n", rc);
    weft_scope_cancel(&a->serving); /* every core stops accepting */
    for (unsigned i = 0; i < kv_nshards; i++)
        weft_core_call(i, close_idle, NULL);
    return 0;
}

static void on_ready(int port, bool steered, void *arg)
{
    (void)arg;
    printf("weft-kv: ready on port %d, %u core%s%s\n", port, kv_nshards,
           kv_nshards == 1 ? "" : "s",
           kv_nshards > 1 ? (steered ? ", steered" : ", hashed") : "");
    fflush(stdout);
}

static int app_main(void *arg)
{
    struct app *a = arg;
    int sigs[] = {SIGTERM, SIGINT};
    int rc = weft_signal_open(&a->signals, sigs, 2);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    for (unsigned i = 0; i < kv_nshards && rc == 0; i++)
        rc = weft_group_spawn_on(&g, i, sweeper, NULL);
    if (rc == 0)
        rc = weft_group_spawn(&g, watch_signals, a);
    if (rc == 0) {
        weft_serve_cores_opts o = {
            .serve = {.drain_grace = kv_cfg.drain_grace},
            .on_ready = on_ready,
        };
        weft_scope_enter(&a->serving, WEFT_FOREVER);
        rc = weft_serve_cores(kv_cfg.bind, (uint16_t)kv_cfg.port, handle, NULL,
                              &o);
        rc = weft_scope_exit(&a->serving, rc);
    }
    weft_group_cancel(&g); /* the sweepers and the watcher */
    rc = weft_group_exit(&g, rc);
    weft_signal_close(a->signals);
    return rc;
}

/* ---- INFO ---- */

static void info_line(struct kv_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void info_line(struct kv_out *o, const char *fmt, ...)
{
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    out_raw(o, b, n < (int)sizeof b ? (size_t)n : sizeof b - 1);
    out_raw(o, "\r\n", 2);
}

static bool want(const char *section, const char *name)
{
    return !strcasecmp(section, "default") || !strcasecmp(section, "all") ||
           !strcasecmp(section, "everything") || !strcasecmp(section, name);
}

static void human(char *b, size_t n, double bytes)
{
    const char *u = "B";
    if (bytes >= 1 << 30)
        bytes /= 1 << 30, u = "G";
    else if (bytes >= 1 << 20)
        bytes /= 1 << 20, u = "M";
    else if (bytes >= 1 << 10)
        bytes /= 1 << 10, u = "K";
    snprintf(b, n, "%.2f%s", bytes, u);
}

/*
 * used_memory: the bytes malloc has handed out and not had back, glibc's
 * mallinfo2 (uordblks, the chunks in use, plus hblkhd, the ones mmapped
 * alone). With more than one core each core's thread allocates from an
 * arena of its own; mallinfo2 sums every arena (glibc loops over them
 * all: the man page's "only the main arena" is older than that; on
 * glibc 2.36 a thread's 10 MB in arena 1 shows in it), so the keys of
 * every shard are counted. tests/kv/kv_test.py client checks it on two
 * cores through used_memory_malloc, the same figure before the floor
 * below. A malloc of its own (ASan's) keeps no count in glibc's: then
 * used_memory is the keyspaces' own count (malloc_usable_size of what
 * they hold).
 */
static void info_memory(struct kv_out *o)
{
    struct mallinfo2 mi = mallinfo2();
    size_t malloced = mi.uordblks + mi.hblkhd, used = malloced, dataset = 0;
    for (unsigned i = 0; i < kv_nshards; i++)
        for (int db = 0; db < KV_DBS; db++)
            dataset += atomic_load_explicit(&kv_shards[i].db[db].mem,
                                            memory_order_relaxed);
    if (used < dataset) /* a malloc of its own (ASan's) keeps no count */
        used = dataset;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    char h[32];
    info_line(o, "# Memory");
    info_line(o, "used_memory:%zu", used);
    human(h, sizeof h, (double)used);
    info_line(o, "used_memory_human:%s", h);
    info_line(o, "used_memory_rss:%ld", rss * sysconf(_SC_PAGESIZE));
    info_line(o, "used_memory_dataset:%zu", dataset);
    info_line(o, "used_memory_malloc:%zu", malloced); /* weft-kv's own */
    info_line(o, "maxmemory:0");
    info_line(o, "mem_allocator:libc");
}

/* One shard's keys and keys with a time to live in each database, into
 * its own row of the table kv_every_shard's caller gave. */
struct db_counts {
    long long keys[KV_DBS], expires[KV_DBS];
};

static long long count_dbs(struct kv_shard *sh, void *arg)
{
    struct db_counts *row = (struct db_counts *)arg + (sh - kv_shards);
    for (int db = 0; db < KV_DBS; db++)
        if (kv_db_used(sh, db)) {
            row->keys[db] = (long long)sh->db[db].count;
            row->expires[db] = (long long)sh->db[db].nexpires;
        }
    return 0;
}

/* Redis's "dbN:keys=...": one line per database that has keys. */
static void info_keyspace(struct kv_out *o)
{
    struct db_counts *rows = calloc(kv_nshards, sizeof *rows);
    if (!rows)
        abort();
    long long rc = kv_every_shard(count_dbs, rows);
    info_line(o, "# Keyspace");
    for (int db = 0; db < KV_DBS && rc == 0; db++) {
        long long keys = 0, exp = 0;
        for (unsigned i = 0; i < kv_nshards; i++) {
            keys += rows[i].keys[db];
            exp += rows[i].expires[db];
        }
        if (keys > 0)
            info_line(o, "db%d:keys=%lld,expires=%lld,avg_ttl=0", db, keys,
                      exp);
    }
    free(rows);
}

void kv_info(struct kv_out *o, const char *section)
{
    if (want(section, "server")) {
        info_line(o, "# Server");
        info_line(o, "redis_version:7.0.15");
        info_line(o, "weft_kv:1");
        info_line(o, "redis_mode:standalone");
        info_line(o, "process_id:%ld", (long)getpid());
        info_line(o, "tcp_port:%d", kv_cfg.port);
        info_line(o, "io_threads_active:0");
        info_line(o, "weft_cores:%u", kv_nshards);
        out_raw(o, "\r\n", 2);
    }
    if (want(section, "clients")) {
        info_line(o, "# Clients");
        info_line(o, "connected_clients:%ld", atomic_load(&kv_clients));
        info_line(o, "maxclients:%ld", kv_cfg.maxclients);
        out_raw(o, "\r\n", 2);
    }
    if (want(section, "memory")) {
        info_memory(o);
        out_raw(o, "\r\n", 2);
    }
    if (want(section, "stats")) {
        unsigned long long cmds = 0, expired = 0;
        for (unsigned i = 0; i < kv_nshards; i++) {
            cmds += atomic_load(&kv_shards[i].commands);
            for (int db = 0; db < KV_DBS; db++)
                expired += atomic_load(&kv_shards[i].db[db].expired);
        }
        info_line(o, "# Stats");
        info_line(o, "total_connections_received:%llu",
                  (unsigned long long)atomic_load(&kv_connections_total));
        info_line(o, "total_commands_processed:%llu", cmds);
        info_line(o, "expired_keys:%llu", expired);
        info_line(o, "weft_gathers_cancelled:%llu",
                  (unsigned long long)atomic_load(&kv_gathers_cancelled));
        out_raw(o, "\r\n", 2);
    }
    if (want(section, "keyspace"))
        info_keyspace(o);
}

/* ---- start and end ---- */

static void dump_keyspace(FILE *f, const struct kv_keyspace *ks)
{
    for (size_t i = 0; i <= ks->mask; i++)
        for (struct kv_entry *e = ks->buckets[i]; e; e = e->next) {
            fwrite(e->data, 1, e->klen, f);
            fputc(' ', f);
            fwrite(kv_val(e), 1, e->vlen, f);
            fputc('\n', f);
        }
}

/* Every key of every database, "key value" a line (the drain test reads
 * the keys). */
static int dump_keys(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    for (unsigned s = 0; s < kv_nshards; s++)
        for (int db = 0; db < KV_DBS; db++) {
            struct kv_keyspace *ks = &kv_shards[s].db[db];
            if (kv_db_used(&kv_shards[s], db))
                dump_keyspace(f, ks);
        }
    return fclose(f) == 0 ? 0 : -errno;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-kv [-t CORES] [--port N] [--bind ADDR] "
               "[--maxclients N]\n"
               "               [--timeout SECS] [--drain-grace SECS]\n"
               "               [--tls --tls-cert FILE --tls-key FILE]\n"
               "               [--proto-max-bulk-len N] [--max-query N] "
               "[--dump FILE]\n"
               "               [--no-multishot]\n"
               "  -t CORES  loops, one per core (default 1; 0 = every CPU)\n"
               "  --port    TCP port (default 6379; 0 = any free one)\n"
               "  --max-query N  close, without a reply, a client whose "
               "unparsed requests\n"
               "            pass N bytes (Redis's client-query-buffer-limit; "
               "default 1 GB,\n"
               "            at least 16384)\n");
}

static long num_arg(const char *opt, const char *s, long min)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min) {
        fprintf(stderr, "weft-kv: bad value '%s' for %s\n", s, opt);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, bool *tls, const char **cert,
                       const char **key)
{
    enum {
        PORT = 256,
        BIND,
        MAXCL,
        TIMEOUT,
        GRACE,
        TLS,
        CERT,
        KEY,
        BULK,
        QUERY,
        DUMP,
        NOMS,
        HELP
    };
    static const struct option opts[] = {
        {"port", 1, NULL, PORT},
        {"bind", 1, NULL, BIND},
        {"maxclients", 1, NULL, MAXCL},
        {"timeout", 1, NULL, TIMEOUT},
        {"drain-grace", 1, NULL, GRACE},
        {"tls", 0, NULL, TLS},
        {"tls-cert", 1, NULL, CERT},
        {"tls-key", 1, NULL, KEY},
        {"proto-max-bulk-len", 1, NULL, BULK},
        {"max-query", 1, NULL, QUERY},
        {"dump", 1, NULL, DUMP},
        {"no-multishot", 0, NULL, NOMS},
        {"help", 0, NULL, HELP},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            kv_cfg.cores = (unsigned)num_arg("-t", optarg, 0);
            break;
        case PORT:
            kv_cfg.port = (int)num_arg("--port", optarg, 0);
            break;
        case BIND:
            kv_cfg.bind = optarg;
            break;
        case MAXCL:
            kv_cfg.maxclients = num_arg("--maxclients", optarg, 1);
            break;
        case TIMEOUT:
            kv_cfg.idle_timeout = num_arg("--timeout", optarg, 0) * WEFT_SEC;
            break;
        case GRACE:
            kv_cfg.drain_grace = num_arg("--drain-grace", optarg, 0) * WEFT_SEC;
            break;
        case TLS:
            *tls = true;
            break;
        case CERT:
            *cert = optarg;
            break;
        case KEY:
            *key = optarg;
            break;
        case BULK:
            kv_cfg.limits.max_bulk = num_arg("--proto-max-bulk-len", optarg, 1);
            break;
        case QUERY:
            kv_cfg.max_query = (size_t)num_arg("--max-query", optarg, 16384);
            break;
        case DUMP:
            kv_cfg.dump = optarg;
            break;
        case NOMS:
            kv_cfg.no_multishot = true;
            break;
        case 'h':
        case HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
}

static unsigned pick_cores(unsigned asked)
{
    cpu_set_t set;
    unsigned cpus = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = (unsigned)CPU_COUNT(&set);
    if (asked == 0 || asked > cpus)
        asked = cpus;
    return asked > KV_MAX_CORES ? KV_MAX_CORES : asked;
}

int main(int argc, char **argv)
{
    bool tls = false;
    const char *cert = NULL, *key = NULL;
    parse_args(argc, argv, &tls, &cert, &key);
    signal(SIGPIPE, SIG_IGN);
    if (tls) {
        int rc = cert && key ? weft_tls_config_server(&kv_cfg.tls, cert, key)
                             : -EINVAL;
        if (rc < 0) {
            fprintf(stderr,
                    "weft-kv: --tls needs --tls-cert and --tls-key "
                    "that load: %s\n",
                    weft_strerror(rc));
            return 1;
        }
    }
    kv_nshards = pick_cores(kv_cfg.cores);
    for (unsigned i = 0; i < kv_nshards; i++) {
        ks_init(&kv_shards[i].db[0]); /* the others on first use */
        kv_shards[i].now = weft_now();
    }
    kv_clock_init();
    struct app a = {0};
    int rc = weft_run_cores(kv_nshards, app_main, &a, NULL);
    if (rc < 0)
        fprintf(stderr, "weft-kv: %s\n", weft_strerror(rc));
    long long keys = 0;
    for (unsigned i = 0; i < kv_nshards; i++)
        for (int db = 0; db < KV_DBS; db++)
            keys += (long long)kv_shards[i].db[db].count;
    if (rc == 0 && kv_cfg.dump && (rc = dump_keys(kv_cfg.dump)) < 0)
        fprintf(stderr, "weft-kv: --dump %s: %s\n", kv_cfg.dump, strerror(-rc));
    fprintf(stderr, "weft-kv: %llu cross-shard gathers cancelled mid-hop\n",
            (unsigned long long)atomic_load(&kv_gathers_cancelled));
    fprintf(stderr, "weft-kv: exiting with %lld keys\n", keys);
    for (unsigned i = 0; i < kv_nshards; i++)
        for (int db = 0; db < KV_DBS; db++)
            if (kv_db_used(&kv_shards[i], db))
                ks_free(&kv_shards[i].db[db]);
    weft_tls_config_free(kv_cfg.tls);
    return rc == 0 ? 0 : 1;
}
