/* SPDX-License-Identifier: MIT */
/*
 * tests/test_chan.c - channels (API.md "Channels", weft/chan.h): anyio's
 * memory object streams with capacity 0 (rendezvous), 1, 64 and
 * unbounded. FIFO order, end of stream, -EPIPE, -EBADF on closed handles,
 * clones, fan-in and fan-out delivering each item once, statistics, and
 * the hand-off races of send and receive arranged in both orders
 * (handed first then cancelled: the call succeeds; cancelled first then
 * handed: the call returns -ECANCELED and the item goes to the next
 * waiter, stays buffered or stays with its sender). A seeded random stress
 * test ends the suite.
 */
#include "helpers.h"

static const size_t caps[] = {0, 1, 64, WEFT_CHAN_UNBOUNDED};
enum { NCAPS = sizeof caps / sizeof caps[0] };

/* Items are small integers as pointers; 0 is kept for "none". */
static void *item(uintptr_t i)
{
    return (void *)i;
}
static uintptr_t num(void *p)
{
    return (uintptr_t)p;
}

static weft_chan_stats tx_stats(const weft_chan_tx *tx)
{
    weft_chan_stats st;
    memset(&st, 0, sizeof st);
    CHECK_EQ(weft_chan_tx_statistics(tx, &st), 0);
    return st;
}

static size_t send_waiting(const void *tx)
{
    return tx_stats(tx).tasks_waiting_send;
}

static size_t recv_waiting(const void *tx)
{
    return tx_stats(tx).tasks_waiting_receive;
}

/*
 * A task that sends or receives once in its own scope (which the test task
 * cancels through this struct) and records the result, the item, and its
 * next checkpoint.
 */
struct party {
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    void *item; /* to send, or received */
    weft_scope scope;
    bool done;
    int rc;
    int next_cp; /* after a success; 1 = not reached */
    int exit_rc;
};

static int party_end(struct party *p)
{
    p->next_cp = 1;
    if (p->rc >= 0)
        p->next_cp = weft_checkpoint();
    int rc = p->rc < 0 ? p->rc : (p->next_cp < 0 ? p->next_cp : 0);
    p->exit_rc = weft_scope_exit(&p->scope, rc);
    p->done = true;
    return 0;
}

static int sender(void *arg)
{
    struct party *p = arg;
    weft_scope_enter(&p->scope, WEFT_FOREVER);
    p->rc = weft_chan_send(p->tx, p->item);
    return party_end(p);
}

static int receiver(void *arg)
{
    struct party *p = arg;
    weft_scope_enter(&p->scope, WEFT_FOREVER);
    p->item = NULL;
    p->rc = weft_chan_recv(p->rx, &p->item);
    return party_end(p);
}

static void parties_init(struct party *p, size_t n, weft_chan_tx *tx,
                         weft_chan_rx *rx)
{
    memset(p, 0, n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i].tx = tx;
        p[i].rx = rx;
        p[i].rc = 99;
    }
}

/* ---- open, statistics ---- */

static int open_main(void *arg)
{
    weft_chan_tx *tx = NULL;
    weft_chan_rx *rx = NULL;

    CHECK_EQ(weft_chan_open(1, NULL, &rx), -EINVAL);
    CHECK_EQ(weft_chan_open(1, &tx, NULL), -EINVAL);
    for (int c = 0; c < NCAPS; c++) {
        CHECK_EQ(weft_chan_open(caps[c], &tx, &rx), 0);
        CHECK(tx != NULL && rx != NULL);
        weft_chan_stats st = tx_stats(tx), st2;
        CHECK_EQ(st.current_buffer_used, 0);
        CHECK_EQ(st.max_buffer_size, caps[c]);
        CHECK_EQ(st.open_send_streams, 1);
        CHECK_EQ(st.open_receive_streams, 1);
        CHECK_EQ(st.tasks_waiting_send, 0);
        CHECK_EQ(st.tasks_waiting_receive, 0);
        CHECK_EQ(weft_chan_rx_statistics(rx, &st2), 0);
        CHECK_EQ(memcmp(&st, &st2, sizeof st), 0);
        CHECK_EQ(weft_chan_tx_statistics(tx, NULL), -EINVAL);
        CHECK_EQ(weft_chan_rx_statistics(NULL, &st2), -EINVAL);
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
    }
    CHECK_EQ(weft_chan_send(NULL, item(1)), -EINVAL);
    CHECK_EQ(weft_chan_try_send(NULL, item(1)), -EINVAL);
    void *it;
    CHECK_EQ(weft_chan_recv(NULL, &it), -EINVAL);
    CHECK_EQ(weft_chan_try_recv(NULL, &it), -EINVAL);
    CHECK(weft_chan_tx_clone(NULL) == NULL);
    CHECK(weft_chan_rx_clone(NULL) == NULL);
    weft_chan_tx_close(NULL);
    weft_chan_rx_close(NULL);
    return 0;
}

static void test_chan_open_and_empty_statistics(void **state)
{
    run_in_loop(open_main, NULL);
}

static int stats_main(void *arg)
{
    weft_chan_tx *tx, *tx2;
    weft_chan_rx *rx, *rx2;
    struct party s[2], r[3];
    weft_group g;
    weft_chan_stats st;

    CHECK_EQ(weft_chan_open(2, &tx, &rx), 0);
    tx2 = weft_chan_tx_clone(tx);
    rx2 = weft_chan_rx_clone(rx);
    st = tx_stats(tx);
    CHECK_EQ(st.open_send_streams, 2);
    CHECK_EQ(st.open_receive_streams, 2);
    CHECK_EQ(weft_chan_try_send(tx, item(1)), 0);
    CHECK_EQ(tx_stats(tx2).current_buffer_used, 1);
    CHECK_EQ(weft_chan_try_send(tx2, item(2)), 0);
    /* two senders wait on a full buffer */
    parties_init(s, 2, tx, rx);
    s[0].item = item(3);
    s[1].item = item(4);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, sender, &s[0]), 0);
    CHECK_EQ(weft_group_spawn(&g, sender, &s[1]), 0);
    yield_until(send_waiting, tx, 2);
    st = tx_stats(tx);
    CHECK_EQ(st.current_buffer_used, 2);
    CHECK_EQ(st.max_buffer_size, 2);
    CHECK_EQ(st.tasks_waiting_receive, 0);
    for (uintptr_t i = 1; i <= 4; i++) {
        void *it = NULL;
        CHECK_EQ(weft_chan_try_recv(rx2, &it), 1);
        CHECK_EQ(num(it), i);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    /* three receivers wait on an empty buffer */
    parties_init(r, 3, tx, rx);
    weft_group_enter(&g);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_group_spawn(&g, receiver, &r[i]), 0);
    yield_until(recv_waiting, tx, 3);
    st = tx_stats(tx);
    CHECK_EQ(st.current_buffer_used, 0);
    CHECK_EQ(st.tasks_waiting_send, 0);
    weft_chan_tx_close(tx);
    st = tx_stats(tx2); /* statistics through any open handle */
    CHECK_EQ(st.open_send_streams, 1);
    CHECK_EQ(st.tasks_waiting_receive, 3);
    weft_chan_rx_close(rx2);
    CHECK_EQ(tx_stats(tx2).open_receive_streams, 1);
    weft_chan_tx_close(tx2); /* end of stream for the three */
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r[i].rc, 0);
    CHECK_EQ(weft_chan_rx_statistics(rx, &st), 0);
    CHECK_EQ(st.open_send_streams, 0);
    CHECK_EQ(st.tasks_waiting_receive, 0);
    weft_chan_rx_close(rx);
    return 0;
}

static void test_chan_statistics(void **state)
{
    run_in_loop(stats_main, NULL);
}

/* ---- capacity ---- */

static int rendezvous_main(void *arg)
{
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    struct party s[1], r[1];
    weft_group g;
    void *it = NULL;

    CHECK_EQ(weft_chan_open(0, &tx, &rx), 0);
    /* nobody receiving: no room at all */
    CHECK_EQ(weft_chan_try_send(tx, item(1)), -EAGAIN);
    CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN);

    /* a send blocks until a receiver takes the item */
    parties_init(s, 1, tx, rx);
    s[0].item = item(7);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, sender, &s[0]), 0);
    yield_until(send_waiting, tx, 1);
    th_settle();
    CHECK(!s[0].done);
    CHECK_EQ(tx_stats(tx).current_buffer_used, 0);
    CHECK_EQ(weft_chan_recv(rx, &it), 1);
    CHECK_EQ(num(it), 7);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(s[0].rc, 0);

    /* a waiting receiver makes room for exactly one try_send */
    parties_init(r, 1, tx, rx);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, receiver, &r[0]), 0);
    yield_until(recv_waiting, tx, 1);
    CHECK_EQ(weft_chan_try_send(tx, item(8)), 0);
    CHECK_EQ(weft_chan_try_send(tx, item(9)), -EAGAIN);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(r[0].rc, 1);
    CHECK_EQ(num(r[0].item), 8);
    weft_chan_tx_close(tx);
    weft_chan_rx_close(rx);
    return 0;
}

static void test_chan_rendezvous_send_waits_for_a_receiver(void **state)
{
    run_in_loop(rendezvous_main, NULL);
}

static int bounded_main(void *arg)
{
    static const size_t bcaps[] = {1, 64};
    for (int c = 0; c < 2; c++) {
        size_t cap = bcaps[c];
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        struct party s[1];
        weft_group g;
        void *it;

        CHECK_EQ(weft_chan_open(cap, &tx, &rx), 0);
        for (size_t i = 1; i <= cap; i++)
            CHECK_EQ(weft_chan_send(tx, item(i)), 0); /* no wait */
        CHECK_EQ(tx_stats(tx).current_buffer_used, cap);
        CHECK_EQ(weft_chan_try_send(tx, item(999)), -EAGAIN);
        parties_init(s, 1, tx, rx);
        s[0].item = item(cap + 1);
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, sender, &s[0]), 0);
        yield_until(send_waiting, tx, 1);
        th_settle();
        CHECK(!s[0].done);
        CHECK_EQ(weft_chan_recv(rx, &it), 1);
        CHECK_EQ(num(it), 1);
        /* the freed place went to the waiting sender's item */
        CHECK_EQ(tx_stats(tx).current_buffer_used, cap);
        CHECK_EQ(send_waiting(tx), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(s[0].rc, 0);
        for (size_t i = 2; i <= cap + 1; i++) {
            CHECK_EQ(weft_chan_try_recv(rx, &it), 1);
            CHECK_EQ(num(it), i);
        }
        CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN);
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
    }
    return 0;
}

static void test_chan_bounded_buffers_capacity_then_blocks(void **state)
{
    run_in_loop(bounded_main, NULL);
}

static int unbounded_main(void *arg)
{
    enum { N = 100000 };
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    void *it;

    CHECK_EQ(weft_chan_open(WEFT_CHAN_UNBOUNDED, &tx, &rx), 0);
    CHECK_EQ(tx_stats(tx).max_buffer_size, WEFT_CHAN_UNBOUNDED);
    for (uintptr_t i = 1; i <= N; i++)
        if (!CHECK_EQ(weft_chan_try_send(tx, item(i)), 0))
            break;
    CHECK_EQ(tx_stats(tx).current_buffer_used, N);
    CHECK_EQ(weft_chan_send(tx, item(N + 1)), 0); /* never waits */
    for (uintptr_t i = 1; i <= N + 1; i++)
        if (!CHECK_EQ(weft_chan_try_recv(rx, &it), 1) || !CHECK_EQ(num(it), i))
            break;
    CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN);
    weft_chan_tx_close(tx);
    weft_chan_rx_close(rx);
    return 0;
}

static void test_chan_unbounded_never_blocks_a_sender(void **state)
{
    run_in_loop(unbounded_main, NULL);
}

/* NULL is an item like any other: 1 says an item came, 0 says none. */
static int null_item_main(void *arg)
{
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    void *it = item(5);

    CHECK_EQ(weft_chan_open(4, &tx, &rx), 0);
    CHECK_EQ(weft_chan_send(tx, NULL), 0);
    weft_chan_tx_close(tx);
    CHECK_EQ(weft_chan_recv(rx, &it), 1);
    CHECK(it == NULL);
    CHECK_EQ(weft_chan_recv(rx, &it), 0);
    weft_chan_rx_close(rx);
    return 0;
}

static void test_chan_null_is_a_valid_item(void **state)
{
    run_in_loop(null_item_main, NULL);
}

/* ---- FIFO through producer and consumer tasks ---- */

struct pc {
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    uintptr_t n;
    uintptr_t got, bad;
};

static int pc_producer(void *arg)
{
    struct pc *pc = arg;
    for (uintptr_t i = 1; i <= pc->n; i++)
        if (!CHECK_EQ(weft_chan_send(pc->tx, item(i)), 0))
            break;
    weft_chan_tx_close(pc->tx);
    return 0;
}

static int pc_consumer(void *arg)
{
    struct pc *pc = arg;
    void *it;
    int rc;
    while ((rc = weft_chan_recv(pc->rx, &it)) == 1) {
        if (num(it) != ++pc->got)
            pc->bad++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(weft_chan_recv(pc->rx, &it), 0); /* and again */
    CHECK_EQ(weft_chan_try_recv(pc->rx, &it), 0);
    weft_chan_rx_close(pc->rx);
    return 0;
}

static int fifo_main(void *arg)
{
    for (int c = 0; c < NCAPS; c++) {
        struct pc pc = {.n = 5000};
        weft_group g;

        CHECK_EQ(weft_chan_open(caps[c], &pc.tx, &pc.rx), 0);
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, pc_consumer, &pc), 0);
        CHECK_EQ(weft_group_spawn(&g, pc_producer, &pc), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(pc.got, pc.n);
        CHECK_EQ(pc.bad, 0);
    }
    return 0;
}

static void test_chan_items_arrive_in_fifo_order(void **state)
{
    run_in_loop(fifo_main, NULL);
}

/* ---- end of stream ---- */

static int eos_main(void *arg)
{
    for (int c = 1; c < NCAPS; c++) {
        weft_chan_tx *tx, *tx2;
        weft_chan_rx *rx;
        void *it;

        CHECK_EQ(weft_chan_open(caps[c], &tx, &rx), 0);
        tx2 = weft_chan_tx_clone(tx);
        CHECK_EQ(weft_chan_send(tx, item(1)), 0);
        weft_chan_tx_close(tx);
        /* one sender left: not the end */
        CHECK_EQ(weft_chan_try_recv(rx, &it), 1);
        CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN);
        CHECK_EQ(weft_chan_send(tx2, item(2)), 0);
        weft_chan_tx_close(tx2);
        /* every sender closed: the buffer drains first, then 0 */
        CHECK_EQ(weft_chan_recv(rx, &it), 1);
        CHECK_EQ(num(it), 2);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(weft_chan_recv(rx, &it), 0);
            CHECK_EQ(weft_chan_try_recv(rx, &it), 0);
        }
        weft_chan_rx_close(rx);
    }
    return 0;
}

static void
test_chan_end_of_stream_after_every_sender_closed_and_drained(void **state)
{
    run_in_loop(eos_main, NULL);
}

static int eos_wakes_main(void *arg)
{
    for (int c = 0; c < NCAPS; c++) {
        weft_chan_tx *tx, *tx2;
        weft_chan_rx *rx, *rx2;
        struct party r[4];
        weft_group g;

        CHECK_EQ(weft_chan_open(caps[c], &tx, &rx), 0);
        tx2 = weft_chan_tx_clone(tx);
        rx2 = weft_chan_rx_clone(rx);
        parties_init(r, 4, tx, rx);
        r[2].rx = r[3].rx = rx2;
        weft_group_enter(&g);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(weft_group_spawn(&g, receiver, &r[i]), 0);
        yield_until(recv_waiting, tx, 4);
        weft_chan_tx_close(tx2);
        th_settle();
        for (int i = 0; i < 4; i++)
            CHECK(!r[i].done);
        weft_chan_tx_close(tx); /* the last sender */
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        for (int i = 0; i < 4; i++) {
            CHECK_EQ(r[i].rc, 0);
            CHECK(r[i].item == NULL);
        }
        weft_chan_rx_close(rx2);
        weft_chan_rx_close(rx);
    }
    return 0;
}

static void test_chan_end_of_stream_wakes_blocked_receivers(void **state)
{
    run_in_loop(eos_wakes_main, NULL);
}

/* ---- no receivers: -EPIPE ---- */

static int epipe_main(void *arg)
{
    for (int c = 0; c < NCAPS; c++) {
        weft_chan_tx *tx;
        weft_chan_rx *rx, *rx2;

        CHECK_EQ(weft_chan_open(caps[c], &tx, &rx), 0);
        rx2 = weft_chan_rx_clone(rx);
        weft_chan_rx_close(rx);
        /* one receiver left: sends still go */
        if (caps[c] > 0)
            CHECK_EQ(weft_chan_try_send(tx, item(1)), 0);
        weft_chan_rx_close(rx2);
        CHECK_EQ(weft_chan_send(tx, item(2)), -EPIPE);
        CHECK_EQ(weft_chan_try_send(tx, item(3)), -EPIPE);
        CHECK_EQ(tx_stats(tx).open_receive_streams, 0);
        CHECK_EQ(tx_stats(tx).current_buffer_used, 0); /* dropped */
        weft_chan_tx_close(tx);
    }
    return 0;
}

static void test_chan_send_without_receivers_is_epipe(void **state)
{
    run_in_loop(epipe_main, NULL);
}

static int epipe_blocked_main(void *arg)
{
    static const size_t bcaps[] = {0, 1, 64};
    for (int c = 0; c < 3; c++) {
        weft_chan_tx *tx;
        weft_chan_rx *rx, *rx2;
        struct party s[2];
        weft_group g;

        CHECK_EQ(weft_chan_open(bcaps[c], &tx, &rx), 0);
        for (size_t i = 0; i < bcaps[c]; i++)
            CHECK_EQ(weft_chan_try_send(tx, item(100 + i)), 0);
        rx2 = weft_chan_rx_clone(rx);
        parties_init(s, 2, tx, rx);
        s[0].item = item(1);
        s[1].item = item(2);
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, sender, &s[0]), 0);
        CHECK_EQ(weft_group_spawn(&g, sender, &s[1]), 0);
        yield_until(send_waiting, tx, 2);
        weft_chan_rx_close(rx);
        th_settle();
        CHECK(!s[0].done && !s[1].done); /* rx2 is still open */
        weft_chan_rx_close(rx2);
        CHECK_EQ(send_waiting(tx), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        /* not taken: an error, and the items are still the senders' */
        CHECK_EQ(s[0].rc, -EPIPE);
        CHECK_EQ(s[1].rc, -EPIPE);
        weft_chan_tx_close(tx);
    }
    return 0;
}

static void
test_chan_blocked_sender_gets_epipe_when_receivers_close(void **state)
{
    run_in_loop(epipe_blocked_main, NULL);
}

/* ---- clone and close ---- */

static int closed_main(void *arg)
{
    for (int c = 0; c < NCAPS; c++) {
        weft_chan_tx *tx, *tx2;
        weft_chan_rx *rx, *rx2;
        void *it;

        CHECK_EQ(weft_chan_open(caps[c], &tx, &rx), 0);
        tx2 = weft_chan_tx_clone(tx);
        rx2 = weft_chan_rx_clone(rx);
        CHECK(tx2 != NULL && tx2 != tx);
        CHECK(rx2 != NULL && rx2 != rx);
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
        /* closed handles stay valid while others are open */
        CHECK_EQ(weft_chan_send(tx, item(1)), -EBADF);
        CHECK_EQ(weft_chan_try_send(tx, item(1)), -EBADF);
        CHECK_EQ(weft_chan_recv(rx, &it), -EBADF);
        CHECK_EQ(weft_chan_try_recv(rx, &it), -EBADF);
        CHECK(weft_chan_tx_clone(tx) == NULL);
        CHECK(weft_chan_rx_clone(rx) == NULL);
        weft_chan_tx_close(tx); /* twice: nothing */
        weft_chan_rx_close(rx);
        /* statistics still read through a closed handle */
        weft_chan_stats st = tx_stats(tx), st2;
        CHECK_EQ(weft_chan_rx_statistics(rx, &st2), 0);
        CHECK_EQ(st.open_send_streams, 1);
        CHECK_EQ(st2.open_receive_streams, 1);
        /* the open clones work on */
        st = tx_stats(tx2);
        CHECK_EQ(st.open_send_streams, 1);
        CHECK_EQ(st.open_receive_streams, 1);
        if (caps[c] > 0) {
            CHECK_EQ(weft_chan_send(tx2, item(5)), 0);
            CHECK_EQ(weft_chan_recv(rx2, &it), 1);
            CHECK_EQ(num(it), 5);
        }
        /* a clone of a clone */
        weft_chan_tx *tx3 = weft_chan_tx_clone(tx2);
        CHECK(tx3 != NULL);
        weft_chan_tx_close(tx2);
        CHECK_EQ(weft_chan_send(tx2, item(1)), -EBADF);
        CHECK_EQ(tx_stats(tx3).open_send_streams, 1);
        weft_chan_tx_close(tx3);
        CHECK_EQ(weft_chan_recv(rx2, &it), 0);
        weft_chan_rx_close(rx2); /* the last: everything is freed */
    }
    return 0;
}

/* Found under WEFT_FAULTS: a weft_chan_open that failed on its first
 * allocation left the caller's handles as they were (stale). */
static int open_failing_main(void *arg)
{
    int failed = 0;
    for (int i = 0; i < 200; i++) {
        weft_chan_tx *tx = (weft_chan_tx *)&failed; /* not NULL */
        weft_chan_rx *rx = (weft_chan_rx *)&failed;
        int rc = weft_chan_open(1, &tx, &rx);
        if (rc == 0) {
            weft_chan_tx_close(tx);
            weft_chan_rx_close(rx);
            continue;
        }
        CHECK_EQ(rc, -ENOMEM);
        CHECK(tx == NULL && rx == NULL);
        failed++;
    }
    CHECK_GT(failed, 0);
    return 0;
}

static void test_chan_open_failing_leaves_null_handles(void **state)
{
    weft_faults f = {.seed = 1, .kinds = WEFT_FAULT_ALLOC, .rate = 300000};
    weft_options o = {.faults = &f};
    run_in_loop_opts(open_failing_main, NULL, &o, 0);
}

static void test_chan_closed_handle_is_ebadf_and_clone_of_it_null(void **state)
{
    run_in_loop(closed_main, NULL);
}

/* Closing the handle a task is blocked on ends its call with -EBADF; the
 * item of a send that was not taken stays with the sender. */
static int close_blocked_main(void *arg)
{
    weft_chan_tx *tx, *tx2;
    weft_chan_rx *rx, *rx2;
    struct party s[2], r[2];
    weft_group g;
    void *it;

    CHECK_EQ(weft_chan_open(0, &tx, &rx), 0);
    tx2 = weft_chan_tx_clone(tx);
    rx2 = weft_chan_rx_clone(rx);
    parties_init(s, 2, tx, rx);
    s[1].tx = tx2;
    s[0].item = item(1);
    s[1].item = item(2);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, sender, &s[0]), 0);
    CHECK_EQ(weft_group_spawn(&g, sender, &s[1]), 0);
    yield_until(send_waiting, tx, 2);
    weft_chan_tx_close(tx2);
    CHECK_EQ(send_waiting(tx), 1);
    CHECK_EQ(weft_chan_try_recv(rx, &it), 1);
    CHECK_EQ(num(it), 1); /* item 2 was never delivered */
    CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(s[0].rc, 0);
    CHECK_EQ(s[1].rc, -EBADF);

    parties_init(r, 2, tx, rx);
    r[1].rx = rx2;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, receiver, &r[0]), 0);
    CHECK_EQ(weft_group_spawn(&g, receiver, &r[1]), 0);
    yield_until(recv_waiting, tx, 2);
    weft_chan_rx_close(rx2);
    CHECK_EQ(recv_waiting(tx), 1);
    CHECK_EQ(weft_chan_try_send(tx, item(3)), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(r[0].rc, 1);
    CHECK_EQ(num(r[0].item), 3);
    CHECK_EQ(r[1].rc, -EBADF);
    weft_chan_tx_close(tx);
    weft_chan_rx_close(rx);
    return 0;
}

static void test_chan_closing_a_handle_ends_calls_blocked_on_it(void **state)
{
    run_in_loop(close_blocked_main, NULL);
}

/* Handles of channels with items still buffered are freed by the last
 * close, in any order (ASan's leak check is the judge). */
static int free_main(void *arg)
{
    for (int c = 1; c < NCAPS; c++) {
        weft_chan_tx *tx[3];
        weft_chan_rx *rx[3];
        CHECK_EQ(weft_chan_open(caps[c], &tx[0], &rx[0]), 0);
        for (int i = 1; i < 3; i++) {
            tx[i] = weft_chan_tx_clone(tx[i - 1]);
            rx[i] = weft_chan_rx_clone(rx[0]);
        }
        for (uintptr_t i = 1; i <= 40 && i <= caps[c]; i++)
            CHECK_EQ(weft_chan_try_send(tx[i % 3], item(i)), 0);
        if (c % 2) {
            for (int i = 0; i < 3; i++)
                weft_chan_rx_close(rx[i]);
            for (int i = 0; i < 3; i++)
                weft_chan_tx_close(tx[2 - i]);
        } else {
            for (int i = 0; i < 3; i++) {
                weft_chan_tx_close(tx[i]);
                weft_chan_rx_close(rx[2 - i]);
            }
        }
    }
    return 0;
}

static void test_chan_last_close_frees_the_channel(void **state)
{
    run_in_loop(free_main, NULL);
}

/* ---- cancellation ---- */

static int cancel_basic_main(void *arg)
{
    for (int c = 0; c < NCAPS; c++) {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        struct party r[1];
        weft_group g;
        weft_scope s;
        void *it = NULL;

        CHECK_EQ(weft_chan_open(caps[c], &tx, &rx), 0);
        /* a cancelled send never delivers, even to a waiting receiver */
        parties_init(r, 1, tx, rx);
        weft_group_enter(&g);
        CHECK_EQ(weft_group_spawn(&g, receiver, &r[0]), 0);
        yield_until(recv_waiting, tx, 1);
        weft_scope_enter(&s, WEFT_FOREVER);
        weft_scope_cancel(&s);
        CHECK_EQ(weft_chan_send(tx, item(1)), -ECANCELED);
        CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
        CHECK_EQ(recv_waiting(tx), 1);
        CHECK_EQ(weft_chan_try_send(tx, item(2)), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
        CHECK_EQ(r[0].rc, 1);
        CHECK_EQ(num(r[0].item), 2);

        /* a cancelled receive never consumes */
        if (caps[c] > 0) {
            CHECK_EQ(weft_chan_try_send(tx, item(3)), 0);
            weft_scope_enter(&s, WEFT_FOREVER);
            weft_scope_cancel(&s);
            CHECK_EQ(weft_chan_recv(rx, &it), -ECANCELED);
            CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
            CHECK_EQ(tx_stats(tx).current_buffer_used, 1);
            CHECK_EQ(weft_chan_recv(rx, &it), 1);
            CHECK_EQ(num(it), 3);
        }

        /* a deadline ends a blocked receive, and a blocked send */
        weft_move_on_after(&s, WEFT_MSEC);
        CHECK_EQ(weft_chan_recv(rx, &it), -ECANCELED);
        CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
        for (size_t i = 0; i < caps[c] && caps[c] < 1000; i++)
            CHECK_EQ(weft_chan_try_send(tx, item(10 + i)), 0);
        if (caps[c] != WEFT_CHAN_UNBOUNDED) {
            weft_move_on_after(&s, WEFT_MSEC);
            CHECK_EQ(weft_chan_send(tx, item(5)), -ECANCELED);
            CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
            CHECK_EQ(send_waiting(tx), 0);
            for (size_t i = 0; i < caps[c]; i++) {
                CHECK_EQ(weft_chan_try_recv(rx, &it), 1);
                CHECK_EQ(num(it), 10 + i);
            }
            CHECK_EQ(weft_chan_try_recv(rx, &it), -EAGAIN); /* not item 5 */
        }
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
    }
    return 0;
}

static void test_chan_cancelled_calls_never_deliver_or_consume(void **state)
{
    run_in_loop(cancel_basic_main, NULL);
}

/*
 * Receive races: one or two receivers wait on an empty channel; the test
 * task hands an item over (try_send) and cancels the first receiver's
 * scope, in the order under test, before either runs.
 */
static void recv_race(size_t cap, bool send_first, bool with_next)
{
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    struct party r[2];
    weft_group g;
    size_t n = with_next ? 2 : 1;
    void *it = NULL;
    int sent;

    CHECK_EQ(weft_chan_open(cap, &tx, &rx), 0);
    parties_init(r, n, tx, rx);
    weft_group_enter(&g);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(weft_group_spawn(&g, receiver, &r[i]), 0);
    yield_until(recv_waiting, tx, n);
    if (send_first) {
        CHECK_EQ(weft_chan_try_send(tx, item(42)), 0);
        weft_scope_cancel(&r[0].scope);
        sent = 1;
        CHECK_EQ(tx_stats(tx).current_buffer_used, 0); /* r[0] has it */
        CHECK_EQ(recv_waiting(tx), n - 1);
    } else {
        weft_scope_cancel(&r[0].scope);
        CHECK_EQ(recv_waiting(tx), n - 1);
        int rc = weft_chan_try_send(tx, item(42));
        if (!with_next && cap == 0) {
            CHECK_EQ(rc, -EAGAIN); /* nobody to take it: still ours */
            sent = 0;
        } else {
            CHECK_EQ(rc, 0);
            sent = 1;
            CHECK_EQ(tx_stats(tx).current_buffer_used, with_next ? 0 : 1);
        }
    }
    weft_chan_tx_close(tx); /* whoever still waits sees the end */
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    int got = 0;
    if (send_first) {
        CHECK_EQ(r[0].rc, 1);
        CHECK_EQ(num(r[0].item), 42);
        CHECK_EQ(r[0].next_cp, -ECANCELED);
        CHECK_EQ(r[0].exit_rc, 0);
        got++;
        if (with_next)
            CHECK_EQ(r[1].rc, 0); /* end of stream */
    } else {
        CHECK_EQ(r[0].rc, -ECANCELED);
        CHECK(r[0].item == NULL);
        CHECK_EQ(r[0].exit_rc, 0);
        CHECK(weft_scope_cancelled_caught(&r[0].scope));
        if (with_next) {
            CHECK_EQ(r[1].rc, 1);
            CHECK_EQ(num(r[1].item), 42);
            CHECK_EQ(r[1].next_cp, 0);
            got++;
        }
    }
    /* what nobody received is still in the buffer: exactly once overall */
    while (weft_chan_try_recv(rx, &it) == 1) {
        CHECK_EQ(num(it), 42);
        got++;
    }
    CHECK_EQ(weft_chan_try_recv(rx, &it), 0);
    CHECK_EQ(got, sent);
    weft_chan_rx_close(rx);
}

static int recv_race_main(void *arg)
{
    bool send_first = arg != NULL;
    for (int c = 0; c < NCAPS; c++) {
        recv_race(caps[c], send_first, false);
        recv_race(caps[c], send_first, true);
    }
    return 0;
}

static void test_chan_recv_handed_then_cancelled_keeps_the_item(void **state)
{
    run_in_loop(recv_race_main, (void *)1);
}

static void test_chan_recv_cancelled_then_sent_goes_to_next(void **state)
{
    run_in_loop(recv_race_main, NULL);
}

/*
 * Send races: the buffer is full (capacity 0: always), one or two senders
 * wait; the test task takes an item (try_recv, which moves the first
 * waiting sender's item into the freed place or takes it directly) and
 * cancels the first sender's scope, in the order under test.
 */
static void send_race(size_t cap, bool recv_first, bool with_next)
{
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    struct party s[2];
    weft_group g;
    size_t n = with_next ? 2 : 1;
    uintptr_t expect[80], nexpect = 0;
    void *it = NULL;

    CHECK_EQ(weft_chan_open(cap, &tx, &rx), 0);
    for (uintptr_t i = 1; i <= cap; i++) {
        CHECK_EQ(weft_chan_try_send(tx, item(i)), 0);
        expect[nexpect++] = i;
    }
    parties_init(s, n, tx, rx);
    s[0].item = item(1000);
    if (with_next)
        s[1].item = item(2000);
    weft_group_enter(&g);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(weft_group_spawn(&g, sender, &s[i]), 0);
    yield_until(send_waiting, tx, n);
    uintptr_t first = 0;
    if (recv_first) {
        CHECK_EQ(weft_chan_try_recv(rx, &it), 1);
        weft_scope_cancel(&s[0].scope);
        first = num(it);
        expect[nexpect++] = 1000; /* delivered: in the buffer or taken */
        if (with_next)
            expect[nexpect++] = 2000;
        CHECK_EQ(send_waiting(tx), n - 1);
    } else {
        weft_scope_cancel(&s[0].scope);
        CHECK_EQ(send_waiting(tx), n - 1);
        int rc = weft_chan_try_recv(rx, &it);
        if (cap == 0 && !with_next) {
            CHECK_EQ(rc, -EAGAIN); /* nothing to take */
        } else {
            CHECK_EQ(rc, 1);
            first = num(it);
        }
        if (with_next)
            expect[nexpect++] = 2000;
        CHECK_EQ(send_waiting(tx), 0);
    }
    /* take the rest (buffered items and waiting senders' items) so that
     * every sender finishes */
    uintptr_t got[80];
    size_t ngot = 0;
    if (first)
        got[ngot++] = first;
    while (ngot < 80 && weft_chan_try_recv(rx, &it) == 1)
        got[ngot++] = num(it);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    if (recv_first) {
        CHECK_EQ(s[0].rc, 0);
        CHECK_EQ(s[0].next_cp, -ECANCELED);
    } else {
        CHECK_EQ(s[0].rc, -ECANCELED);
        CHECK(weft_scope_cancelled_caught(&s[0].scope));
    }
    CHECK_EQ(s[0].exit_rc, 0);
    if (with_next) {
        CHECK_EQ(s[1].rc, 0);
        CHECK_EQ(s[1].next_cp, 0);
    }
    /* every delivered item exactly once, in order; item 1000 only if its
     * send succeeded */
    weft_chan_tx_close(tx);
    CHECK_EQ(weft_chan_try_recv(rx, &it), 0);
    CHECK_EQ(ngot, nexpect);
    for (size_t i = 0; i < ngot && i < nexpect; i++)
        CHECK_EQ(got[i], expect[i]);
    weft_chan_rx_close(rx);
}

static int send_race_main(void *arg)
{
    static const size_t bcaps[] = {0, 1, 64};
    bool recv_first = arg != NULL;
    for (int c = 0; c < 3; c++) {
        send_race(bcaps[c], recv_first, false);
        send_race(bcaps[c], recv_first, true);
    }
    return 0;
}

static void test_chan_send_taken_then_cancelled_is_delivered(void **state)
{
    run_in_loop(send_race_main, (void *)1);
}

static void test_chan_send_cancelled_then_received_takes_next(void **state)
{
    run_in_loop(send_race_main, NULL);
}

/* ---- fan-in, fan-out ---- */

enum { FAN_ITEMS = 2000 };

struct fan {
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    unsigned char seen[8 * FAN_ITEMS + 1];
    uintptr_t last[8]; /* per producer: the last item a consumer saw */
    int order_bad, received;
};

struct fan_end {
    struct fan *f;
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    int id, nprod, count;
};

/* Producer id sends id + k * nprod for k < count: disjoint, increasing. */
static int fan_producer(void *arg)
{
    struct fan_end *e = arg;
    for (int k = 0; k < e->count; k++) {
        uintptr_t v = (uintptr_t)(1 + e->id + k * e->nprod);
        if (!CHECK_EQ(weft_chan_send(e->tx, item(v)), 0))
            break;
        if (k % 7 == 0)
            CHECK_EQ(weft_checkpoint(), 0);
    }
    weft_chan_tx_close(e->tx);
    return 0;
}

static int fan_consumer(void *arg)
{
    struct fan_end *e = arg;
    struct fan *f = e->f;
    void *it;
    int rc;
    while ((rc = weft_chan_recv(e->rx, &it)) == 1) {
        uintptr_t v = num(it);
        if (!CHECK(v >= 1 && v < sizeof f->seen))
            continue;
        f->seen[v]++;
        f->received++;
        e->count++;
        /* one consumer: each producer's items arrive in its order */
        if (e->nprod == 1) {
            uintptr_t p = (v - 1) % 8;
            if (v <= f->last[p])
                f->order_bad++;
            f->last[p] = v;
        }
        if (v % 5 == 0)
            CHECK_EQ(weft_checkpoint(), 0);
    }
    CHECK_EQ(rc, 0);
    weft_chan_rx_close(e->rx);
    return 0;
}

/* nprod producers with cloned senders, ncons consumers with cloned
 * receivers, every capacity; each item arrives exactly once. */
static void fan(struct fan *f, size_t cap, int nprod, int ncons)
{
    struct fan_end p[8], c[8];
    weft_group g;
    int per = FAN_ITEMS / nprod;

    memset(f, 0, sizeof *f);
    CHECK_EQ(weft_chan_open(cap, &f->tx, &f->rx), 0);
    for (int i = 0; i < nprod; i++)
        p[i] =
            (struct fan_end){f, weft_chan_tx_clone(f->tx), NULL, i, nprod, per};
    for (int i = 0; i < ncons; i++)
        c[i] = (struct fan_end){
            f, NULL, weft_chan_rx_clone(f->rx), i, ncons == 1 ? 1 : 0, 0};
    weft_chan_tx_close(f->tx);
    weft_chan_rx_close(f->rx);
    /* producers ordered within themselves: check with one consumer, with
     * the producer number recoverable as (v - 1) % nprod == (v - 1) % 8
     * only when nprod == 8 or 1 */
    if (nprod != 8 && nprod != 1)
        for (int i = 0; i < ncons; i++)
            c[i].nprod = 0;
    weft_group_enter(&g);
    for (int i = 0; i < ncons; i++)
        CHECK_EQ(weft_group_spawn(&g, fan_consumer, &c[i]), 0);
    for (int i = 0; i < nprod; i++)
        CHECK_EQ(weft_group_spawn(&g, fan_producer, &p[i]), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    int total = per * nprod, busy = 0;
    CHECK_EQ(f->received, total);
    for (int v = 1; v <= total; v++)
        if (f->seen[v] != 1 && CHECK_EQ(f->seen[v], 1))
            break;
    CHECK_EQ(f->order_bad, 0);
    for (int i = 0; i < ncons; i++)
        busy += c[i].count > 0;
    if (ncons > 1 && cap != WEFT_CHAN_UNBOUNDED)
        CHECK_GT(busy, 1); /* the work was shared */
}

static int fan_main(void *arg)
{
    static struct fan f;
    for (int c = 0; c < NCAPS; c++) {
        fan(&f, caps[c], 8, 1); /* fan-in */
        fan(&f, caps[c], 1, 8); /* fan-out */
        fan(&f, caps[c], 8, 8); /* both */
        fan(&f, caps[c], 5, 3);
    }
    return 0;
}

static void test_chan_fan_in_and_fan_out_deliver_each_item_once(void **state)
{
    run_in_loop(fan_main, NULL);
}

/* ---- stress ---- */

/*
 * Four channels (capacities 0, 1, 64, unbounded), each with 25 producers
 * and 25 consumers on cloned handles: 200 tasks. Producers send unique
 * items (send or try_send), consumers receive (recv or try_recv) a bounded
 * number of times, all under random deadlines, while every task also
 * cancels others' current operation at random. The test task keeps one
 * receive handle per channel, waits for the consumers, then drains what
 * is left until every producer has closed. At the end each item whose
 * send succeeded was received or drained exactly once, no item whose send
 * failed appeared anywhere, and sent == received + left.
 */
enum {
    CS_CHANS = 4,
    CS_PROD = 25,
    CS_CONS = 25,
    CS_TASKS = CS_CHANS * (CS_PROD + CS_CONS),
    CS_SENDS = 30,
    CS_RECVS = 24,
    CS_ITEMS = CS_CHANS * CS_PROD * CS_SENDS,
};

struct cstress {
    uint64_t rng;
    weft_chan_tx *tx[CS_CHANS];
    weft_chan_rx *rx[CS_CHANS];
    weft_scope *slots[CS_TASKS];
    bool sent[CS_ITEMS + 1], failed[CS_ITEMS + 1];
    unsigned char got[CS_ITEMS + 1];
    int prod_left[CS_CHANS], cons_left[CS_CHANS];
    unsigned long nsent, nfailed, nrecv, nleft, handed_then_cancelled;
    unsigned long cancels, deadlines;
};

struct cs_task {
    struct cstress *cs;
    int id, chan, index;
    weft_chan_tx *tx;
    weft_chan_rx *rx;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static unsigned rnd_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd(s) % n);
}

static void cs_scope(struct cstress *cs, int id, weft_scope *s)
{
    if (rnd_below(&cs->rng, 3) == 0) {
        weft_move_on_after(s, (weft_time)rnd_below(&cs->rng, 300) * WEFT_USEC);
        cs->deadlines++;
    } else {
        weft_scope_enter(s, WEFT_FOREVER);
    }
    cs->slots[id] = s;
}

static void cs_unscope(struct cstress *cs, int id, weft_scope *s)
{
    cs->slots[id] = NULL;
    /* caught whatever the call returned (a hand-off returns success in
     * a cancelled scope) */
    CHECK_EQ(weft_scope_exit(s, weft_checkpoint_if_cancelled()), 0);
}

static void cs_maybe_cancel(struct cstress *cs, int id)
{
    if (rnd_below(&cs->rng, 6) != 0)
        return;
    unsigned j = rnd_below(&cs->rng, CS_TASKS);
    if ((int)j != id && cs->slots[j]) {
        weft_scope_cancel(cs->slots[j]);
        cs->cancels++;
    }
}

static int cs_producer(void *arg)
{
    struct cs_task *t = arg;
    struct cstress *cs = t->cs;
    for (int k = 0; k < CS_SENDS; k++) {
        uintptr_t v =
            1 + (uintptr_t)((t->chan * CS_PROD + t->index) * CS_SENDS + k);
        weft_scope s;
        cs_scope(cs, t->id, &s);
        bool try = rnd_below(&cs->rng, 8) == 0;
        int rc = try ? weft_chan_try_send(t->tx, item(v))
                     : weft_chan_send(t->tx, item(v));
        if (rc == 0) {
            cs->sent[v] = true;
            cs->nsent++;
        } else {
            CHECK(rc == -ECANCELED || (try && rc == -EAGAIN));
            cs->failed[v] = true;
            cs->nfailed++;
        }
        cs_unscope(cs, t->id, &s);
        cs_maybe_cancel(cs, t->id);
    }
    weft_chan_tx_close(t->tx);
    cs->prod_left[t->chan]--;
    return 0;
}

static void cs_got(struct cstress *cs, int chan, void *it)
{
    uintptr_t v = num(it);
    if (!CHECK(v >= 1 && v <= CS_ITEMS))
        return;
    CHECK_EQ((int)((v - 1) / (CS_PROD * CS_SENDS)), chan);
    CHECK(!cs->failed[v]);
    cs->got[v]++;
}

static int cs_consumer(void *arg)
{
    struct cs_task *t = arg;
    struct cstress *cs = t->cs;
    for (int k = 0; k < CS_RECVS; k++) {
        weft_scope s;
        void *it = NULL;
        cs_scope(cs, t->id, &s);
        bool try = rnd_below(&cs->rng, 8) == 0;
        int rc =
            try ? weft_chan_try_recv(t->rx, &it) : weft_chan_recv(t->rx, &it);
        if (rc == 1) {
            cs_got(cs, t->chan, it);
            cs->nrecv++;
            if (weft_checkpoint_if_cancelled() == -ECANCELED)
                cs->handed_then_cancelled++;
        } else {
            CHECK(rc == -ECANCELED || rc == 0 || (try && rc == -EAGAIN));
        }
        cs_unscope(cs, t->id, &s);
        if (rc == 0)
            break; /* end of stream */
        cs_maybe_cancel(cs, t->id);
    }
    weft_chan_rx_close(t->rx);
    cs->cons_left[t->chan]--;
    return 0;
}

static int cs_main(void *arg)
{
    struct cstress *cs = arg;
    static struct cs_task tasks[CS_TASKS];
    weft_chan_rx *keep[CS_CHANS];
    weft_group g;
    int id = 0;

    weft_group_enter(&g);
    for (int c = 0; c < CS_CHANS; c++) {
        CHECK_EQ(weft_chan_open(caps[c], &cs->tx[c], &cs->rx[c]), 0);
        keep[c] = cs->rx[c];
        cs->prod_left[c] = CS_PROD;
        cs->cons_left[c] = CS_CONS;
        for (int i = 0; i < CS_PROD + CS_CONS; i++, id++) {
            struct cs_task *t = &tasks[id];
            *t = (struct cs_task){cs, id, c, i % CS_PROD, NULL, NULL};
            if (i < CS_PROD)
                t->tx = weft_chan_tx_clone(cs->tx[c]);
            else
                t->rx = weft_chan_rx_clone(cs->rx[c]);
            CHECK_EQ(weft_group_spawn(
                         &g, i < CS_PROD ? cs_producer : cs_consumer, t),
                     0);
        }
        weft_chan_tx_close(cs->tx[c]); /* the producers' clones remain */
    }
    /* wait for the consumers, then drain until the producers are done */
    for (int c = 0; c < CS_CHANS; c++) {
        while (cs->cons_left[c] > 0)
            CHECK_EQ(weft_sleep(100 * WEFT_USEC), 0);
    }
    for (int c = 0; c < CS_CHANS; c++) {
        void *it;
        int rc;
        for (;;) {
            while ((rc = weft_chan_try_recv(keep[c], &it)) == 1) {
                cs_got(cs, c, it);
                cs->nleft++;
            }
            if (rc == 0)
                break; /* every producer closed, the buffer empty */
            CHECK_EQ(rc, -EAGAIN);
            CHECK_EQ(weft_checkpoint(), 0);
        }
        CHECK_EQ(cs->prod_left[c], 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    for (int c = 0; c < CS_CHANS; c++) {
        weft_chan_stats st;
        CHECK_EQ(weft_chan_rx_statistics(keep[c], &st), 0);
        CHECK_EQ(st.current_buffer_used, 0);
        CHECK_EQ(st.open_send_streams, 0);
        CHECK_EQ(st.open_receive_streams, 1);
        CHECK_EQ(st.tasks_waiting_send, 0);
        CHECK_EQ(st.tasks_waiting_receive, 0);
        weft_chan_rx_close(keep[c]);
    }
    for (int v = 1; v <= CS_ITEMS; v++) {
        CHECK(cs->sent[v] != cs->failed[v]);
        if (!CHECK_EQ(cs->got[v], cs->sent[v] ? 1 : 0))
            break;
    }
    CHECK_EQ(cs->nsent + cs->nfailed, CS_ITEMS);
    CHECK_EQ(cs->nsent, cs->nrecv + cs->nleft);
    return 0;
}

static void test_chan_random_stress(void **state)
{
    static struct cstress cs;
    const char *env = getenv("WEFT_TEST_SEED");
    memset(&cs, 0, sizeof cs);
    cs.rng = env ? strtoull(env, NULL, 0) : 0xc4a77e15eedull;
    if (!cs.rng)
        cs.rng = 1;
    print_message("seed 0x%llx (set WEFT_TEST_SEED to repeat)\n",
                  (unsigned long long)cs.rng);
    run_in_loop(cs_main, &cs);
    print_message("%lu sent (%lu received, %lu left, %lu of them handed "
                  "then cancelled), %lu not sent; %lu cancels, %lu "
                  "deadlines\n",
                  cs.nsent, cs.nrecv, cs.nleft, cs.handed_then_cancelled,
                  cs.nfailed, cs.cancels, cs.deadlines);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_chan_open_and_empty_statistics),
    cmocka_unit_test(test_chan_statistics),
    cmocka_unit_test(test_chan_rendezvous_send_waits_for_a_receiver),
    cmocka_unit_test(test_chan_bounded_buffers_capacity_then_blocks),
    cmocka_unit_test(test_chan_unbounded_never_blocks_a_sender),
    cmocka_unit_test(test_chan_null_is_a_valid_item),
    cmocka_unit_test(test_chan_items_arrive_in_fifo_order),
    cmocka_unit_test(
        test_chan_end_of_stream_after_every_sender_closed_and_drained),
    cmocka_unit_test(test_chan_end_of_stream_wakes_blocked_receivers),
    cmocka_unit_test(test_chan_send_without_receivers_is_epipe),
    cmocka_unit_test(test_chan_blocked_sender_gets_epipe_when_receivers_close),
    cmocka_unit_test(test_chan_closed_handle_is_ebadf_and_clone_of_it_null),
    cmocka_unit_test(test_chan_open_failing_leaves_null_handles),
    cmocka_unit_test(test_chan_closing_a_handle_ends_calls_blocked_on_it),
    cmocka_unit_test(test_chan_last_close_frees_the_channel),
    cmocka_unit_test(test_chan_cancelled_calls_never_deliver_or_consume),
    cmocka_unit_test(test_chan_recv_handed_then_cancelled_keeps_the_item),
    cmocka_unit_test(test_chan_recv_cancelled_then_sent_goes_to_next),
    cmocka_unit_test(test_chan_send_taken_then_cancelled_is_delivered),
    cmocka_unit_test(test_chan_send_cancelled_then_received_takes_next),
    cmocka_unit_test(test_chan_fan_in_and_fan_out_deliver_each_item_once),
    cmocka_unit_test(test_chan_random_stress),
};

TH_MAIN(tests)
