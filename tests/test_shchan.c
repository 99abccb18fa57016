/* SPDX-License-Identifier: MIT */
/*
 * tests/test_shchan.c - shared channels (weft_chan_open_shared) between
 * two loops on two threads, without the multi-core runtime: the test's
 * own loop ("B", on the cmocka thread) and a helper loop ("A", on a
 * pthread) that runs commands B posts to it, each as a task of its own.
 *
 * Races across the loops are staged deterministically: B posts a command
 * and then spins its *thread* (not its loop) until A has run it, so
 * nothing runs on B meanwhile: a send from A that reaches a receiver
 * blocked on B, and that receiver's cancellation, then happen in the
 * order the test chooses, within the same round of B.
 */
#include "helpers.h"

#include <weft/core.h>

#include <sched.h>
#include <stdatomic.h>

static const size_t caps[] = {0, 1, 16, WEFT_CHAN_UNBOUNDED};
#define NCAPS (sizeof caps / sizeof caps[0])

/* ---- loop A: runs B's commands ---- */

struct cmd {
    int (*fn)(struct cmd *c);
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    void *item;
    int rc;
    int n;
    _Atomic int done;
};

static struct {
    struct cmd *q[256];
    _Atomic unsigned posted;
    _Atomic bool quit;
    pthread_t th;
    int result;
} A;

static int run_cmd(void *arg)
{
    struct cmd *c = arg;
    c->rc = c->fn(c);
    atomic_store(&c->done, 1);
    return 0;
}

static int a_main(void *unused)
{
    (void)unused;
    weft_group g;
    unsigned taken = 0;
    weft_group_enter(&g);
    while (!atomic_load(&A.quit) || taken < atomic_load(&A.posted)) {
        while (taken < atomic_load(&A.posted))
            CHECK_EQ(weft_group_spawn(&g, run_cmd, A.q[taken++ % 256]), 0);
        weft_sleep(20 * WEFT_USEC);
    }
    return weft_group_exit(&g, 0);
}

static void *a_thread(void *unused)
{
    (void)unused;
    A.result = weft_run(a_main, NULL, NULL);
    return NULL;
}

static void a_start(void)
{
    atomic_store(&A.posted, 0);
    atomic_store(&A.quit, false);
    assert_int_equal(pthread_create(&A.th, NULL, a_thread, NULL), 0);
}

static void a_stop(void)
{
    atomic_store(&A.quit, true);
    pthread_join(A.th, NULL);
    assert_rc(A.result, 0);
}

/* Run c on A as a task; returns at once. */
static void post(struct cmd *c)
{
    atomic_store(&c->done, 0);
    unsigned n = atomic_load(&A.posted);
    A.q[n % 256] = c;
    atomic_store(&A.posted, n + 1);
}

/* Wait for c, letting B's loop run meanwhile. */
static int await(struct cmd *c)
{
    while (!atomic_load(&c->done))
        weft_sleep(20 * WEFT_USEC);
    return c->rc;
}

/* Run c on A and wait for it with B's thread spinning: nothing runs on B
 * meanwhile (c must not wait for B). */
static int call(struct cmd *c)
{
    post(c);
    while (!atomic_load(&c->done))
        sched_yield();
    return c->rc;
}

/* Run the test body on B (this thread) with A running. */
static void two_loops(weft_fn body, void *arg)
{
    a_start();
    th_reset();
    th_guard(TH_GUARD_SECONDS);
    int rc = weft_run(body, arg, NULL);
    a_stop();
    th_guard_off();
    th_assert_clean();
    assert_rc(rc, 0);
}

static int c_send(struct cmd *c)
{
    return weft_chan_send(c->tx, c->item);
}
static int c_try_send(struct cmd *c)
{
    return weft_chan_try_send(c->tx, c->item);
}
static int c_recv(struct cmd *c)
{
    return weft_chan_recv(c->rx, &c->item);
}
static int c_try_recv(struct cmd *c)
{
    return weft_chan_try_recv(c->rx, &c->item);
}
static int c_tx_close(struct cmd *c)
{
    weft_chan_tx_close(c->tx);
    return 0;
}
/* Send 1..n, then close the handle. */
static int c_produce(struct cmd *c)
{
    for (int i = 1; i <= c->n; i++) {
        int rc = weft_chan_send(c->tx, (void *)(intptr_t)i);
        if (rc != 0)
            return rc;
    }
    weft_chan_tx_close(c->tx);
    return 0;
}

static weft_chan_stats stats_rx(weft_chan_rx *rx)
{
    weft_chan_stats st;
    CHECK_EQ(weft_chan_rx_statistics(rx, &st), 0);
    return st;
}

/* Yield until n tasks wait to receive (send) on the channel. */
static void wait_receivers(weft_chan_rx *rx, size_t n)
{
    for (int i = 0; i < 100000 && stats_rx(rx).tasks_waiting_receive != n; i++)
        weft_sleep(10 * WEFT_USEC);
    CHECK_EQ(stats_rx(rx).tasks_waiting_receive, n);
}

static void wait_senders(weft_chan_rx *rx, size_t n)
{
    for (int i = 0; i < 100000 && stats_rx(rx).tasks_waiting_send != n; i++)
        weft_sleep(10 * WEFT_USEC);
    CHECK_EQ(stats_rx(rx).tasks_waiting_send, n);
}

/* ---- a stream across the loops, in order, then end of stream ---- */

static int body_stream(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCAPS; k++) {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        CHECK_EQ(weft_chan_open_shared(caps[k], &tx, &rx), 0);
        struct cmd p = {.fn = c_produce, .tx = tx, .n = 5000};
        post(&p);
        void *it;
        int rc, n = 0;
        while ((rc = weft_chan_recv(rx, &it)) == 1)
            if (!CHECK_EQ((intptr_t)it, ++n))
                break;
        CHECK_EQ(rc, 0);
        CHECK_EQ(n, 5000);
        CHECK_EQ(await(&p), 0);
        CHECK_EQ(weft_chan_recv(rx, &it), 0); /* and again */
        CHECK_EQ(weft_chan_try_recv(rx, &it), 0);
        weft_chan_rx_close(rx); /* the last handle: freed */
    }
    return 0;
}

static void test_stream_across_loops(void **state)
{
    (void)state;
    two_loops(body_stream, NULL);
}

/* ---- -EPIPE, -EBADF, end of stream for waiters on the other loop ---- */

static int body_errors(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCAPS; k++) {
        size_t cap = caps[k];
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        void *it;
        CHECK_EQ(weft_chan_open_shared(cap, &tx, &rx), 0);

        /* try_ forms: -EAGAIN when they would wait. */
        CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN);
        size_t fill = cap == WEFT_CHAN_UNBOUNDED ? 100 : cap;
        for (size_t i = 0; i < fill; i++)
            CHECK_EQ(weft_chan_try_send(tx, (void *)(i + 1)), 0);
        if (cap != WEFT_CHAN_UNBOUNDED)
            CHECK_EQ(weft_chan_try_send(tx, (void *)7), -EAGAIN);
        struct cmd tr = {.fn = c_try_recv, .rx = rx};
        if (fill) {
            CHECK_EQ(call(&tr), 1); /* from the other loop */
            CHECK_EQ((uintptr_t)tr.item, 1);
            fill--;
        }
        while (fill--)
            CHECK_EQ(weft_chan_try_recv(rx, &it), 1);
        CHECK_EQ(call(&tr), -EAGAIN);

        /* A receiver on A, its handle closed on B: -EBADF. */
        weft_chan_rx *rx2 = weft_chan_rx_clone(rx);
        CHECK(rx2 != NULL);
        struct cmd r = {.fn = c_recv, .rx = rx2};
        post(&r);
        wait_receivers(rx, 1);
        weft_chan_rx_close(rx2);
        CHECK_EQ(await(&r), -EBADF);
        CHECK_EQ(call(&r), -EBADF);
        CHECK_EQ(call(&tr), -EAGAIN); /* rx still open */
        CHECK(weft_chan_rx_clone(rx2) == NULL);

        /* End of stream: a receiver on A, every send handle closed, one on
         * each loop. */
        weft_chan_tx *tx2 = weft_chan_tx_clone(tx);
        struct cmd r2 = {.fn = c_recv, .rx = rx};
        post(&r2);
        wait_receivers(rx, 1);
        struct cmd cl = {.fn = c_tx_close, .tx = tx2};
        CHECK_EQ(call(&cl), 0);
        CHECK_EQ(stats_rx(rx).tasks_waiting_receive, 1);
        weft_chan_tx_close(tx);
        CHECK_EQ(await(&r2), 0);
        CHECK_EQ(weft_chan_send(tx, (void *)1), -EBADF);
        CHECK_EQ(weft_chan_try_send(tx, (void *)1), -EBADF);
        CHECK(weft_chan_tx_clone(tx) == NULL);
        weft_chan_rx_close(rx);

        /* -EPIPE: a sender blocked on A when the last receive handle
         * closes on B, then at once. */
        CHECK_EQ(weft_chan_open_shared(cap, &tx, &rx), 0);
        if (cap != WEFT_CHAN_UNBOUNDED) {
            for (size_t i = 0; i < cap; i++)
                CHECK_EQ(weft_chan_try_send(tx, (void *)1), 0);
            struct cmd s = {.fn = c_send, .tx = tx, .item = (void *)9};
            post(&s);
            wait_senders(rx, 1);
            weft_chan_rx_close(rx);
            CHECK_EQ(await(&s), -EPIPE);
        } else {
            weft_chan_rx_close(rx);
        }
        struct cmd s2 = {.fn = c_try_send, .tx = tx, .item = (void *)9};
        CHECK_EQ(call(&s2), -EPIPE);
        s2.fn = c_send;
        CHECK_EQ(call(&s2), -EPIPE);
        cl.tx = tx;
        CHECK_EQ(call(&cl), 0); /* the last handle, closed on A */
    }
    return 0;
}

static void test_errors_across_loops(void **state)
{
    (void)state;
    two_loops(body_errors, NULL);
}

/* ---- the cancel / hand-off race, both orders ---- */

struct waiter_task {
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    weft_scope scope;
    bool in_scope;
    void *item;
    int rc;
};

static int recv_in_scope(void *arg)
{
    struct waiter_task *w = arg;
    weft_scope_enter(&w->scope, WEFT_FOREVER);
    w->in_scope = true;
    w->rc = weft_chan_recv(w->rx, &w->item);
    weft_scope_exit(&w->scope, w->rc < 0 ? w->rc : 0);
    return 0;
}

static int send_in_scope(void *arg)
{
    struct waiter_task *w = arg;
    weft_scope_enter(&w->scope, WEFT_FOREVER);
    w->in_scope = true;
    w->rc = weft_chan_send(w->tx, w->item);
    weft_scope_exit(&w->scope, w->rc < 0 ? w->rc : 0);
    return 0;
}

static int body_recv_race(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCAPS; k++) {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        void *it;
        CHECK_EQ(weft_chan_open_shared(caps[k], &tx, &rx), 0);
        struct waiter_task r1 = {.rx = rx}, r2 = {.rx = rx};
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, recv_in_scope, &r1), 0);
        wait_receivers(rx, 1);
        CHECK_EQ(weft_group_spawn(&g, recv_in_scope, &r2), 0);
        wait_receivers(rx, 2);

        /* Granted first: A's send reaches r1, then r1 is cancelled in the
         * same round: r1 keeps the item. */
        struct cmd s = {.fn = c_try_send, .tx = tx, .item = (void *)11};
        CHECK_EQ(call(&s), 0);
        weft_scope_cancel(&r1.scope);
        /* Cancelled first: r2 is cancelled, then A's send arrives: it is
         * not r2's; it stays buffered (or, rendezvous, is not taken). */
        weft_scope_cancel(&r2.scope);
        s.item = (void *)12;
        CHECK_EQ(call(&s), caps[k] ? 0 : -EAGAIN);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(r1.rc, 1);
        CHECK_EQ((uintptr_t)r1.item, 11);
        CHECK_EQ(r2.rc, -ECANCELED);
        CHECK_EQ(weft_chan_try_recv(rx, &it), caps[k] ? 1 : -EAGAIN);
        if (caps[k])
            CHECK_EQ((uintptr_t)it, 12);

        /* Cancelled first, with a next waiter: the item goes to it. */
        struct waiter_task r3 = {.rx = rx}, r4 = {.rx = rx};
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, recv_in_scope, &r3), 0);
        wait_receivers(rx, 1);
        CHECK_EQ(weft_group_spawn(&g, recv_in_scope, &r4), 0);
        wait_receivers(rx, 2);
        weft_scope_cancel(&r3.scope);
        s.item = (void *)13;
        CHECK_EQ(call(&s), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(r3.rc, -ECANCELED);
        CHECK_EQ(r4.rc, 1);
        CHECK_EQ((uintptr_t)r4.item, 13);
        CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN);
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
    }
    return 0;
}

static void test_recv_cancel_race(void **state)
{
    (void)state;
    two_loops(body_recv_race, NULL);
}

static int body_send_race(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCAPS - 1; k++) { /* unbounded never waits */
        size_t cap = caps[k];
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        void *it;
        CHECK_EQ(weft_chan_open_shared(cap, &tx, &rx), 0);
        for (size_t i = 0; i < cap; i++)
            CHECK_EQ(weft_chan_try_send(tx, (void *)(100 + i)), 0);
        struct waiter_task s1 = {.tx = tx, .item = (void *)21};
        struct waiter_task s2 = {.tx = tx, .item = (void *)22};
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, send_in_scope, &s1), 0);
        wait_senders(rx, 1);
        CHECK_EQ(weft_group_spawn(&g, send_in_scope, &s2), 0);
        wait_senders(rx, 2);

        /* Granted first: A's receive takes s1's item (or the buffer's
         * head, and s1's item takes its place), then s1 is cancelled: its
         * send still succeeded. */
        struct cmd r = {.fn = c_try_recv, .rx = rx};
        CHECK_EQ(call(&r), 1);
        CHECK_EQ((uintptr_t)r.item, cap ? 100 : 21);
        weft_scope_cancel(&s1.scope);
        /* Cancelled first: s2's item is never taken. */
        weft_scope_cancel(&s2.scope);
        int got = call(&r);
        CHECK_EQ(got, cap ? 1 : -EAGAIN);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(s1.rc, 0);
        CHECK_EQ(s2.rc, -ECANCELED);
        /* What is left: the rest of the buffer, with s1's item last, and
         * never s2's. */
        size_t seen21 = cap ? 0 : 1;
        if (got == 1)
            CHECK_NE((uintptr_t)r.item, 22);
        if (got == 1 && (uintptr_t)r.item == 21)
            seen21++;
        while (weft_chan_try_recv(rx, &it) == 1) {
            CHECK_NE((uintptr_t)it, 22);
            seen21 += (uintptr_t)it == 21;
        }
        CHECK_EQ(seen21, 1);
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
    }
    return 0;
}

static void test_send_cancel_race(void **state)
{
    (void)state;
    two_loops(body_send_race, NULL);
}

/* ---- seeded stress: producers and consumers on both loops, random
 * cancellations; every item sent successfully is received exactly once,
 * and no other ---- */

enum { NPROD = 3, NCONS = 3, PER = 1500 };
#define NITEMS (2 * NPROD * PER)

static struct {
    _Atomic unsigned char sent[NITEMS];
    _Atomic unsigned char got[NITEMS];
    unsigned seed;
} S;

static int stress_produce(struct cmd *c)
{
    unsigned seed = S.seed ^ (unsigned)c->n * 2654435761u;
    for (int i = 0; i < PER; i++) {
        int id = c->n * PER + i;
        weft_scope s;
        weft_scope_enter(&s, WEFT_FOREVER);
        unsigned r = rand_r(&seed);
        if (r % 3 == 0)
            weft_scope_set_deadline(&s,
                                    weft_now() + (r >> 4) % (8 * WEFT_USEC));
        int rc = weft_chan_send(c->tx, (void *)(intptr_t)(id + 1));
        if (rc == 0)
            atomic_store(&S.sent[id], 1);
        else
            CHECK_EQ(rc, -ECANCELED);
        weft_scope_exit(&s, rc);
    }
    weft_chan_tx_close(c->tx);
    return 0;
}

static int stress_consume(struct cmd *c)
{
    unsigned seed = S.seed ^ (unsigned)(c->n + 100) * 2246822519u;
    for (;;) {
        weft_scope s;
        weft_scope_enter(&s, WEFT_FOREVER);
        unsigned r = rand_r(&seed);
        if (r % 3 == 0)
            weft_scope_set_deadline(&s,
                                    weft_now() + (r >> 4) % (8 * WEFT_USEC));
        void *it;
        int rc = weft_chan_recv(c->rx, &it);
        weft_scope_exit(&s, rc < 0 ? rc : 0);
        if (rc == 0)
            break;
        if (rc == 1) {
            intptr_t id = (intptr_t)it - 1;
            if (!CHECK(id >= 0 && id < NITEMS))
                break;
            atomic_fetch_add(&S.got[id], 1);
        } else {
            CHECK_EQ(rc, -ECANCELED);
        }
    }
    weft_chan_rx_close(c->rx);
    return 0;
}

static int stress_task(void *arg)
{
    struct cmd *c = arg;
    c->rc = c->fn(c);
    return 0;
}

static int body_stress(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCAPS; k++) {
        memset(&S.sent, 0, sizeof S.sent);
        memset(&S.got, 0, sizeof S.got);
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        CHECK_EQ(weft_chan_open_shared(caps[k], &tx, &rx), 0);
        struct cmd cs[2][NPROD + NCONS];
        weft_group g;
        weft_group_enter(&g);
        for (int side = 0; side < 2; side++) {
            for (int i = 0; i < NPROD + NCONS; i++) {
                struct cmd *c = &cs[side][i];
                memset(c, 0, sizeof *c);
                if (i < NPROD) {
                    c->fn = stress_produce;
                    c->tx = weft_chan_tx_clone(tx);
                    c->n = side * NPROD + i;
                } else {
                    c->fn = stress_consume;
                    c->rx = weft_chan_rx_clone(rx);
                    c->n = side * NCONS + i;
                }
                if (side)
                    post(c);
                else
                    CHECK_EQ(weft_group_spawn(&g, stress_task, c), 0);
            }
        }
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
        for (int i = 0; i < NPROD + NCONS; i++)
            CHECK_EQ(await(&cs[1][i]), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        size_t nsent = 0, bad = 0;
        for (int id = 0; id < NITEMS; id++) {
            nsent += S.sent[id];
            if (S.got[id] != S.sent[id] && bad++ < 5)
                CHECK_EQ(S.got[id], S.sent[id]);
        }
        CHECK_EQ(bad, 0);
        CHECK_GT(nsent, 0);
        fprintf(stderr, "stress: capacity %zd: %zu of %d items sent\n",
                (ssize_t)caps[k], nsent, NITEMS);
    }
    return 0;
}

static void test_stress(void **state)
{
    (void)state;
    const char *env = getenv("WEFT_SEED");
    S.seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
    fprintf(stderr, "test_stress: seed %u (WEFT_SEED=%u to repeat)\n", S.seed,
            S.seed);
    two_loops(body_stress, NULL);
}

/* ---- try_send from a thread that runs no loop ---- */

static void *plain_sender(void *arg)
{
    weft_chan_tx *tx = arg;
    for (intptr_t i = 1; i <= 1000;) {
        int rc = weft_chan_try_send(tx, (void *)i);
        if (rc == 0)
            i++;
        else if (rc == -EAGAIN)
            sched_yield();
        else
            break;
    }
    weft_chan_tx_close(tx);
    return NULL;
}

static int body_plain_thread(void *unused)
{
    (void)unused;
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    CHECK_EQ(weft_chan_open_shared(4, &tx, &rx), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, plain_sender, tx), 0);
    void *it;
    intptr_t n = 0;
    while (weft_chan_recv(rx, &it) == 1)
        CHECK_EQ((intptr_t)it, ++n);
    CHECK_EQ(n, 1000);
    pthread_join(th, NULL);
    weft_chan_rx_close(rx);
    return 0;
}

static void test_try_send_from_plain_thread(void **state)
{
    (void)state;
    run_in_loop(body_plain_thread, NULL);
}

/* ---- on the multi-core runtime: weft_run_cores(2), a producer on core 1
 * (weft_group_spawn_on), a consumer on core 0 ---- */

static unsigned cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    return (unsigned)CPU_COUNT(&set);
}

static void on_two_cores(weft_fn body, void *arg)
{
    if (cpus() < 2) {
        print_message("skipped: needs 2 CPUs in the affinity mask, has %u "
                      "(weft_run_cores does not oversubscribe)\n",
                      cpus());
        skip();
    }
    th_reset();
    th_guard(TH_GUARD_SECONDS);
    int rc = weft_run_cores(2, body, arg, NULL);
    th_guard_off();
    th_assert_clean();
    assert_rc(rc, 0);
}

static const size_t core_caps[] = {0, 1, 64, WEFT_CHAN_UNBOUNDED};
#define NCORE_CAPS (sizeof core_caps / sizeof core_caps[0])

struct core_prod {
    weft_chan_tx *tx;
    intptr_t n;    /* items to send, 0: until an error */
    intptr_t sent; /* items sent successfully: 1 .. sent */
    int rc;        /* the send that ended it */
    unsigned core;
};

static int core_produce(void *arg)
{
    struct core_prod *p = arg;
    p->core = weft_core_id();
    for (intptr_t i = 1; !p->n || i <= p->n; i++) {
        if ((p->rc = weft_chan_send(p->tx, (void *)i)) != 0)
            break;
        p->sent = i;
        /* An unbounded send never waits, so its loop would never run the
         * cancellation that core 0 posts to it: yield now and then. */
        if ((i & 63) == 0 && (p->rc = weft_checkpoint()) != 0)
            break;
    }
    weft_chan_tx_close(p->tx);
    return 0;
}

enum { CORE_N = 20000 };

static int body_cores_stream(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCORE_CAPS; k++) {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        CHECK_EQ(weft_chan_open_shared(core_caps[k], &tx, &rx), 0);
        struct core_prod p = {.tx = tx, .n = CORE_N};
        weft_group g;
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn_on(&g, 1, core_produce, &p), 0);
        void *it;
        int rc;
        intptr_t n = 0;
        while ((rc = weft_chan_recv(rx, &it)) == 1)
            if (!CHECK_EQ((intptr_t)it, ++n))
                break;
        CHECK_EQ(rc, 0);
        CHECK_EQ(n, CORE_N);
        CHECK_EQ(weft_core_id(), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(p.core, 1);
        CHECK_EQ(p.rc, 0);
        CHECK_EQ(weft_chan_recv(rx, &it), 0);
        weft_chan_rx_close(rx);
    }
    return 0;
}

static void test_cores_stream(void **state)
{
    (void)state;
    on_two_cores(body_cores_stream, NULL);
}

/* Cancel the group mid-stream: every item sent successfully was received
 * (in order) or is still buffered. */
struct core_cons {
    weft_chan_rx *rx;
    intptr_t got; /* items received: 1 .. got, in order */
    bool bad;
};

static int core_consume(void *arg)
{
    struct core_cons *c = arg;
    void *it;
    while (weft_chan_recv(c->rx, &it) == 1)
        if ((intptr_t)it != ++c->got)
            c->bad = true;
    return 0;
}

static int body_cores_cancel(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCORE_CAPS; k++) {
        for (int round = 0; round < 5; round++) {
            weft_chan_tx *tx;
            weft_chan_rx *rx;
            CHECK_EQ(weft_chan_open_shared(core_caps[k], &tx, &rx), 0);
            struct core_prod p = {.tx = tx};
            struct core_cons c = {.rx = rx};
            weft_scope s;
            weft_scope_enter(&s, weft_now() + (1 + round) * WEFT_MSEC);
            weft_group g;
            weft_group_enter(&g);
            CHECK_EQ(weft_group_spawn_on(&g, 1, core_produce, &p), 0);
            CHECK_EQ(weft_group_spawn_on(&g, 0, core_consume, &c), 0);
            int rc = weft_group_exit(&g, 0);
            CHECK(rc == 0 || rc == -ECANCELED);
            weft_scope_exit(&s, rc);
            CHECK_EQ(p.rc, -ECANCELED);
            CHECK(!c.bad);
            /* The producer closed tx: drain to the end of stream. */
            void *it;
            intptr_t drained = 0;
            while ((rc = weft_chan_try_recv(rx, &it)) == 1)
                CHECK_EQ((intptr_t)it, c.got + ++drained);
            CHECK_EQ(rc, 0);
            CHECK_EQ(p.sent, c.got + drained);
            if (core_caps[k] != WEFT_CHAN_UNBOUNDED)
                CHECK(drained <= (intptr_t)core_caps[k]);
            weft_chan_rx_close(rx); /* (sent may be 0 on a loaded machine) */
        }
    }
    return 0;
}

static void test_cores_cancel_mid_stream(void **state)
{
    (void)state;
    on_two_cores(body_cores_cancel, NULL);
}

/* The seeded stress of test_stress, on the runtime: producers and
 * consumers on both cores. */
static int body_cores_stress(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < NCORE_CAPS; k++) {
        memset(&S.sent, 0, sizeof S.sent);
        memset(&S.got, 0, sizeof S.got);
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        CHECK_EQ(weft_chan_open_shared(core_caps[k], &tx, &rx), 0);
        struct cmd cs[2][NPROD + NCONS];
        weft_group g;
        weft_group_enter(&g);
        for (unsigned core = 0; core < 2; core++) {
            for (int i = 0; i < NPROD + NCONS; i++) {
                struct cmd *c = &cs[core][i];
                memset(c, 0, sizeof *c);
                if (i < NPROD) {
                    c->fn = stress_produce;
                    c->tx = weft_chan_tx_clone(tx);
                    c->n = (int)core * NPROD + i;
                } else {
                    c->fn = stress_consume;
                    c->rx = weft_chan_rx_clone(rx);
                    c->n = (int)core * NCONS + i;
                }
                CHECK_EQ(weft_group_spawn_on(&g, core, stress_task, c), 0);
            }
        }
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        for (unsigned core = 0; core < 2; core++)
            for (int i = 0; i < NPROD + NCONS; i++)
                CHECK_EQ(cs[core][i].rc, 0);
        size_t nsent = 0, bad = 0;
        for (int id = 0; id < NITEMS; id++) {
            nsent += S.sent[id];
            if (S.got[id] != S.sent[id] && bad++ < 5)
                CHECK_EQ(S.got[id], S.sent[id]);
        }
        CHECK_EQ(bad, 0);
        CHECK_GT(nsent, 0);
        fprintf(stderr, "cores stress: capacity %zd: %zu of %d items sent\n",
                (ssize_t)core_caps[k], nsent, NITEMS);
    }
    return 0;
}

static void test_cores_stress(void **state)
{
    (void)state;
    const char *env = getenv("WEFT_SEED");
    S.seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
    fprintf(stderr, "test_cores_stress: seed %u (WEFT_SEED=%u to repeat)\n",
            S.seed, S.seed);
    on_two_cores(body_cores_stress, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_across_loops),
        cmocka_unit_test(test_errors_across_loops),
        cmocka_unit_test(test_recv_cancel_race),
        cmocka_unit_test(test_send_cancel_race),
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_try_send_from_plain_thread),
        cmocka_unit_test(test_cores_stream),
        cmocka_unit_test(test_cores_cancel_mid_stream),
        cmocka_unit_test(test_cores_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
