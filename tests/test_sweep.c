/* SPDX-License-Identifier: MIT */
/*
 * tests/test_sweep.c - the cancellation sweep (weft_sweep) over one
 * scenario per area that does I/O, sync or channels: each is run once,
 * then cancelled at every checkpoint k (as far as the budget reaches),
 * then under random fault injection; after every run nothing may be left
 * (fds, stacks, ring operations, weft allocations) and the scenario's
 * own conservation checks (bytes, items, holders) must hold: a broken
 * one returns -EPROTO.
 *
 * The test run gives each scenario a short budget (WEFT_SWEEP_BUDGET
 * seconds, default 2) and a few fault seeds (WEFT_SWEEP_SEEDS, default
 * 8); scripts/stress runs the same with budgets of minutes or hours.
 */
#include "helpers.h"
#include "net_helpers.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A conservation check inside a scenario: false -> the run is broken. */
#define HOLDS(c) ((c) ? true : (report_broken(#c, __LINE__), false))

static void report_broken(const char *what, int line)
{
    fprintf(stderr, "test_sweep.c:%d: broken: %s\n", line, what);
}

/* Run body in a shielded scope: cleanup that must happen even when the
 * run has been cancelled (closing, draining, checking). */
#define SHIELDED(body)                                                         \
    do {                                                                       \
        weft_scope shield_;                                                    \
        weft_scope_enter(&shield_, WEFT_FOREVER);                              \
        weft_scope_set_shield(&shield_, true);                                 \
        body;                                                                  \
        weft_scope_exit(&shield_, 0);                                          \
    } while (0)

/* ---- byte streams: what a send acknowledged arrives, in order, once ---- */

enum { STREAM_BYTES = 48 * 1024 };

struct pipe_run {
    weft_stream *tx, *rx;
    size_t acked;    /* bytes of sends that returned success */
    size_t received; /* bytes the receiver got, each checked */
    bool broken, done;
};

static int stream_sender(void *arg)
{
    struct pipe_run *p = arg;
    static unsigned char buf[4096];
    size_t off = 0;
    unsigned piece = 1;
    while (off < STREAM_BYTES) {
        size_t n = piece < STREAM_BYTES - off ? piece : STREAM_BYTES - off;
        for (size_t i = 0; i < n; i++)
            buf[i] = nh_pattern_byte(off + i);
        ssize_t r = weft_stream_send(p->tx, buf, n);
        if (r < 0)
            return (int)r;
        off += n;
        p->acked = off;
        piece = piece * 3 % 4093 + 1;
    }
    return weft_stream_send_eof(p->tx);
}

/* Receive until the end or an error; every byte must be the next one. */
static int stream_receive(struct pipe_run *p)
{
    unsigned char buf[1500];
    for (;;) {
        ssize_t r = weft_stream_recv(p->rx, buf, sizeof buf);
        if (r <= 0)
            return (int)r;
        for (ssize_t i = 0; i < r && !p->broken; i++)
            if (!HOLDS(buf[i] == nh_pattern_byte(p->received + i)))
                p->broken = true;
        p->received += (size_t)r;
    }
}

static int stream_receiver(void *arg)
{
    struct pipe_run *p = arg;
    int rc = stream_receive(p);
    p->done = true;
    return rc;
}

/*
 * A task that only checkpoints while the others work: the sweep's
 * cancellation often lands on one of its checkpoints, in a round in
 * which the receiver has queued a receive whose data is already there.
 * The kernel then completes the receive before it sees the cancel, and
 * the bytes must still reach the receiver ("a call that completed
 * despite the cancellation returns its result").
 */
static int ticker(void *arg)
{
    const bool *done = arg;
    int rc = 0;
    while (!*done && rc == 0)
        rc = weft_checkpoint();
    return rc;
}

/* Both ends of a run: a sender and a receiver task, then, whatever
 * happened, the sender's end closed and the rest drained and checked. */
static int stream_run(struct pipe_run *p)
{
    weft_group g;
    weft_group_enter(&g);
    int rc = weft_group_spawn(&g, stream_receiver, p);
    if (rc == 0)
        rc = weft_group_spawn(&g, ticker, &p->done);
    if (rc == 0)
        rc = weft_group_spawn(&g, stream_sender, p);
    rc = weft_group_exit(&g, rc);
    SHIELDED({
        weft_stream_close(p->tx);
        if (rc != -ECONNRESET && rc != -EPIPE && rc != -ENOMEM && rc != -EIO)
            stream_receive(p); /* the rest, up to the end */
        weft_stream_close(p->rx);
    });
    if (p->broken || !HOLDS(p->received <= STREAM_BYTES))
        return -EPROTO;
    /* Without faults nothing is lost: every acknowledged byte arrived. */
    if (weft_faults_seed() == 0 && !HOLDS(p->received >= p->acked))
        return -EPROTO;
    return rc;
}

static int scenario_stream_pair(void *arg)
{
    struct pipe_run p = {0};
    int rc = weft_stream_pair(&p.tx, &p.rx);
    return rc < 0 ? rc : stream_run(&p);
}

/* Every receive finds its data waiting: the kernel completes it at once,
 * often in the same submission as a cancel the ticker's checkpoint sent
 * for it, and then the bytes must not be dropped. */
static int ready_receiver(void *arg)
{
    struct pipe_run *p = arg;
    unsigned char buf[97];
    int rc = 0;
    while (rc == 0 && p->received < STREAM_BYTES) {
        ssize_t r = weft_stream_recv(p->rx, buf, sizeof buf);
        if (r <= 0) {
            rc = (int)r;
            break;
        }
        for (ssize_t i = 0; i < r && !p->broken; i++)
            if (!HOLDS(buf[i] == nh_pattern_byte(p->received + i)))
                p->broken = true;
        p->received += (size_t)r;
    }
    p->done = true;
    return rc;
}

static int scenario_stream_ready(void *arg)
{
    struct pipe_run p = {0};
    int rc = weft_stream_pair(&p.tx, &p.rx);
    if (rc < 0)
        return rc;
    static unsigned char data[STREAM_BYTES];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = nh_pattern_byte(i);
    /* All of it waits in the socket before the first receive. */
    if (write(weft_stream_fd(p.tx), data, sizeof data) != sizeof data)
        rc = -EIO;
    p.acked = STREAM_BYTES;
    weft_group g;
    weft_group_enter(&g);
    if (rc == 0)
        rc = weft_group_spawn(&g, ready_receiver, &p);
    if (rc == 0)
        rc = weft_group_spawn(&g, ticker, &p.done);
    rc = weft_group_exit(&g, rc);
    SHIELDED({
        weft_stream_close(p.tx);
        stream_receive(&p); /* the rest, up to the end */
        weft_stream_close(p.rx);
    });
    /* Without faults every byte arrives; with them (an injected reset
     * ends the stream) what arrives is still a prefix, checked above. */
    if (p.broken || !HOLDS(p.received == STREAM_BYTES ||
                           (weft_faults_seed() && p.received < STREAM_BYTES)))
        return -EPROTO;
    return rc;
}

static int scenario_memstream(void *arg)
{
    struct pipe_run p = {0};
    weft_memstream_opts o = {.chunk = 7, .capacity = 4096};
    int rc = weft_memstream_pair(&p.tx, &p.rx, &o);
    return rc < 0 ? rc : stream_run(&p);
}

/* ---- TCP: a listener, a connection, an echo ---- */

struct tcp_run {
    weft_listener *l;
    struct pipe_run p;
};

static int tcp_server(void *arg)
{
    struct tcp_run *t = arg;
    int rc = weft_listener_accept(t->l, &t->p.rx);
    if (rc < 0)
        return rc;
    return stream_receive(&t->p);
}

static int scenario_tcp(void *arg)
{
    struct tcp_run t = {0};
    int rc = weft_tcp_listen(&t.l, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, tcp_server, &t);
    if (rc == 0)
        rc = weft_tcp_connect(&t.p.tx, "127.0.0.1",
                              (uint16_t)weft_listener_port(t.l));
    if (rc == 0)
        rc = stream_sender(&t.p);
    if (t.p.tx)
        SHIELDED(weft_stream_send_eof(t.p.tx));
    rc = weft_group_exit(&g, rc);
    SHIELDED({
        if (t.p.tx)
            weft_stream_close(t.p.tx);
        if (t.p.rx)
            weft_stream_close(t.p.rx);
        weft_listener_close(t.l);
    });
    if (t.p.broken || !HOLDS(t.p.received <= t.p.acked + 4096))
        return -EPROTO;
    return rc;
}

/* ---- channels: an item sent is received exactly once, in order ---- */

enum { ITEMS = 200 };

struct chan_run {
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    size_t sent, got;
    bool broken;
};

static int chan_producer(void *arg)
{
    struct chan_run *c = arg;
    for (uintptr_t i = 1; i <= ITEMS; i++) {
        int rc = weft_chan_send(c->tx, (void *)i);
        if (rc < 0)
            return rc; /* not sent: the item is still ours */
        c->sent = i;
    }
    return 0;
}

static void chan_take(struct chan_run *c, void *item)
{
    if (!HOLDS((uintptr_t)item == c->got + 1))
        c->broken = true;
    c->got++;
}

static int chan_consumer(void *arg)
{
    struct chan_run *c = arg;
    for (;;) {
        void *item;
        int rc = weft_chan_recv(c->rx, &item);
        if (rc <= 0)
            return rc;
        chan_take(c, item);
    }
}

static int chan_run(size_t capacity)
{
    struct chan_run c = {0};
    int rc = weft_chan_open(capacity, &c.tx, &c.rx);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, chan_consumer, &c);
    if (rc == 0)
        rc = chan_producer(&c);
    weft_chan_tx_close(c.tx); /* the consumer sees the end */
    rc = weft_group_exit(&g, rc);
    /* What was sent and not yet received is still buffered. */
    void *item;
    while (weft_chan_try_recv(c.rx, &item) == 1)
        chan_take(&c, item);
    weft_chan_rx_close(c.rx);
    if (c.broken || !HOLDS(c.got == c.sent))
        return -EPROTO;
    return rc;
}

static int scenario_channels(void *arg)
{
    static const size_t caps[] = {0, 1, 16, WEFT_CHAN_UNBOUNDED};
    int rc = 0;
    for (size_t i = 0; i < sizeof caps / sizeof caps[0] && rc == 0; i++)
        rc = chan_run(caps[i]);
    return rc;
}

/* ---- sync: never more holders than allowed; everything given back ---- */

struct sync_run {
    weft_lock lock;
    weft_semaphore sem;
    weft_limiter lim;
    weft_event go;
    int in_lock, in_sem, in_lim;
    bool broken;
};

static int sync_worker(void *arg)
{
    struct sync_run *s = arg;
    int rc = weft_event_wait(&s->go);
    for (int round = 0; round < 6 && rc == 0; round++) {
        if ((rc = weft_lock_acquire(&s->lock)) < 0)
            break;
        if (!HOLDS(++s->in_lock == 1))
            s->broken = true;
        rc = weft_checkpoint();
        s->in_lock--;
        weft_lock_release(&s->lock);
        if (rc < 0 || (rc = weft_semaphore_acquire(&s->sem)) < 0)
            break;
        if (!HOLDS(++s->in_sem <= 3))
            s->broken = true;
        rc = weft_checkpoint();
        s->in_sem--;
        weft_semaphore_release(&s->sem);
        if (rc < 0 || (rc = weft_limiter_acquire(&s->lim)) < 0)
            break;
        if (!HOLDS(++s->in_lim <= 2))
            s->broken = true;
        rc = weft_sleep(0);
        s->in_lim--;
        weft_limiter_release(&s->lim);
    }
    return rc;
}

static int scenario_sync(void *arg)
{
    struct sync_run s = {0};
    weft_lock_init(&s.lock);
    weft_semaphore_init(&s.sem, 3, 0);
    weft_limiter_init(&s.lim, 2);
    weft_event_init(&s.go);
    weft_group g;
    weft_group_enter(&g);
    int rc = 0;
    for (int i = 0; i < 6 && rc == 0; i++)
        rc = weft_group_spawn(&g, sync_worker, &s);
    if (rc == 0)
        rc = weft_checkpoint();
    weft_event_set(&s.go);
    rc = weft_group_exit(&g, rc);
    if (s.broken || !HOLDS(!weft_lock_locked(&s.lock)) ||
        !HOLDS(weft_semaphore_value(&s.sem) == 3) ||
        !HOLDS(weft_limiter_borrowed_tokens(&s.lim) == 0))
        return -EPROTO;
    return rc;
}

/* ---- files: what was written reads back ---- */

static int scenario_file(void *arg)
{
    char path[] = "/tmp/weft-sweep-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    close(fd);
    static unsigned char data[20000], back[20000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = nh_pattern_byte(i);
    weft_file *f = NULL;
    int rc = weft_file_open(&f, path, O_WRONLY | O_TRUNC, 0);
    if (rc == 0)
        rc = (int)weft_file_write(f, data, sizeof data);
    if (f)
        SHIELDED(weft_file_close(f));
    f = NULL;
    if (rc >= 0)
        rc = weft_file_open(&f, path, O_RDONLY, 0);
    ssize_t n = 0;
    if (rc >= 0)
        n = weft_file_pread(f, back, sizeof back, 0);
    if (f)
        SHIELDED(weft_file_close(f));
    unlink(path);
    if (n > 0 && !HOLDS(memcmp(back, data, (size_t)n) == 0))
        return -EPROTO;
    return rc < 0 ? rc : n < 0 ? (int)n : 0;
}

/* ---- the thread bridge: every call returns, tokens come back ---- */

static atomic_int bridge_calls;

static int bridge_work(void *arg)
{
    atomic_fetch_add(&bridge_calls, 1);
    return 0;
}

static int bridge_caller(void *arg)
{
    unsigned flags = (unsigned)(uintptr_t)arg;
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = weft_to_thread(bridge_work, NULL, NULL, flags);
    return rc;
}

static int scenario_bridge(void *arg)
{
    weft_group g;
    weft_group_enter(&g);
    int rc = weft_group_spawn(&g, bridge_caller, (void *)(uintptr_t)0);
    if (rc == 0)
        rc = weft_group_spawn(&g, bridge_caller,
                              (void *)(uintptr_t)WEFT_ABANDON_ON_CANCEL);
    return weft_group_exit(&g, rc);
}

/* ---- the sweep over each ---- */

/* ---- TLS: the same conservation over a TLS stream pair ---- */

static char tls_dir[256];
static weft_tls_config *tls_server, *tls_client;

/* A self-signed certificate made once by the openssl command. */
static bool tls_setup(void)
{
    if (tls_server)
        return true;
    snprintf(tls_dir, sizeof tls_dir, "%s/weft-sweep.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tls_dir))
        return false;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:P-256 -nodes -keyout k.pem -out c.pem "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost "
             "-days 2 >/dev/null 2>&1",
             tls_dir);
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/c.pem", tls_dir);
    snprintf(key, sizeof key, "%s/k.pem", tls_dir);
    return system(cmd) == 0 &&
           weft_tls_config_server(&tls_server, cert, key) == 0 &&
           weft_tls_config_client(&tls_client, cert) == 0;
}

static void tls_teardown(void)
{
    weft_tls_config_free(tls_server);
    weft_tls_config_free(tls_client);
    tls_server = tls_client = NULL;
    if (tls_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tls_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tls_dir);
        tls_dir[0] = '\0';
    }
}

struct tls_accept {
    weft_stream *raw, *tls;
    int rc;
};

/* The server's handshake; its failure is judged with the client's. */
static int tls_accepter(void *arg)
{
    struct tls_accept *a = arg;
    a->rc = weft_tls_wrap(&a->tls, a->raw, tls_server, NULL);
    return 0;
}

/* A handshake (cancelled anywhere in it, or not), then the byte stream's
 * conservation over TLS: a cancelled receive loses nothing, a cancelled
 * send breaks only the send side. */
static int scenario_tls(void *arg)
{
    (void)arg;
    struct pipe_run p = {0};
    struct tls_accept a = {0};
    weft_stream *raw;
    int rc = weft_stream_pair(&raw, &a.raw);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, tls_accepter, &a);
    if (rc == 0) {
        rc = weft_tls_wrap(&p.tx, raw, tls_client, "localhost");
    } else {
        /* Neither wrap ran: nothing owns the two ends but us. */
        weft_stream_close(raw);
        weft_stream_close(a.raw);
    }
    rc = weft_group_exit(&g, rc);
    /* One side cancelled: the other sees the transport end (-EPIPE) or
     * fail (-ECONNRESET); the run is a cancelled one. */
    if (rc == 0)
        rc = a.rc;
    else if (a.rc == -ECANCELED)
        rc = -ECANCELED;
    if (rc < 0) {
        /* Each wrap owns its end, wrapped or (on failure) closed. */
        SHIELDED({
            if (p.tx)
                weft_stream_close(p.tx);
            if (a.tls)
                weft_stream_close(a.tls);
        });
        return rc;
    }
    p.rx = a.tls;
    return stream_run(&p);
}

static weft_time budget(void)
{
    const char *s = getenv("WEFT_SWEEP_BUDGET");
    double secs = s ? atof(s) : 2.0;
    return (weft_time)(secs * WEFT_SEC);
}

static unsigned seeds(void)
{
    const char *s = getenv("WEFT_SWEEP_SEEDS");
    return s ? (unsigned)atoi(s) : 8;
}

static void sweep(const char *name, weft_fn scenario)
{
    weft_sweep_opts o = {
        .budget = budget(), .fault_seeds = seeds(), .verbose = true};
    weft_sweep_result r;
    int rc = weft_sweep(scenario, NULL, &o, &r);
    print_message("      %s: %llu checkpoints, %llu points, %llu fault "
                  "seeds, %llu runs, %llu leaks, %llu failures\n",
                  name, (unsigned long long)r.checkpoints,
                  (unsigned long long)r.points, (unsigned long long)r.seeds,
                  (unsigned long long)r.runs, (unsigned long long)r.leaks,
                  (unsigned long long)r.failures);
    if (rc != 0)
        print_error("first failure: point %llu, seed %llu (%s)\n",
                    (unsigned long long)r.first_failing_point,
                    (unsigned long long)r.first_failing_seed,
                    weft_strerror(rc));
    assert_int_equal(rc, 0);
    assert_true(r.checkpoints > 0);
    assert_true(r.points > 0);
}

static void test_sweep_stream_pair(void **state)
{
    sweep("stream pair", scenario_stream_pair);
}

static void test_sweep_stream_data_waiting(void **state)
{
    sweep("stream, data waiting", scenario_stream_ready);
}

static void test_sweep_memstream(void **state)
{
    sweep("memory stream", scenario_memstream);
}

static void test_sweep_tcp(void **state)
{
    sweep("tcp", scenario_tcp);
}

static void test_sweep_channels(void **state)
{
    sweep("channels", scenario_channels);
}

static void test_sweep_sync(void **state)
{
    sweep("sync", scenario_sync);
}

static void test_sweep_file(void **state)
{
    sweep("file", scenario_file);
}

static void test_sweep_tls(void **state)
{
    if (!tls_setup()) {
        tls_teardown();
        skip(); /* no openssl command to make a certificate */
    }
    sweep("tls", scenario_tls);
    tls_teardown();
}

static void test_sweep_thread_bridge(void **state)
{
    sweep("thread bridge", scenario_bridge);
}

/* The sweep's own rules: bad arguments, and no sweep inside a loop. */
static int sweep_inside(void *arg)
{
    weft_sweep_result r;
    return weft_sweep(scenario_sync, NULL, NULL, &r) == -EBUSY ? 0 : -EIO;
}

static void test_sweep_arguments(void **state)
{
    weft_sweep_result r;
    assert_int_equal(weft_sweep(NULL, NULL, NULL, &r), -EINVAL);
    assert_int_equal(weft_sweep(scenario_sync, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(weft_run(sweep_inside, NULL, NULL), 0);
    assert_int_equal(weft_checkpoint_count(), 0); /* outside a loop */
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sweep_arguments),
    cmocka_unit_test(test_sweep_stream_pair),
    cmocka_unit_test(test_sweep_stream_data_waiting),
    cmocka_unit_test(test_sweep_memstream),
    cmocka_unit_test(test_sweep_tcp),
    cmocka_unit_test(test_sweep_channels),
    cmocka_unit_test(test_sweep_sync),
    cmocka_unit_test(test_sweep_file),
    cmocka_unit_test(test_sweep_tls),
    cmocka_unit_test(test_sweep_thread_bridge),
};

TH_MAIN(tests)
