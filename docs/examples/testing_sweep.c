/* SPDX-License-Identifier: MIT */
/*
 * testing_sweep.c - the cancellation sweep over a small producer and
 * consumer: the scenario is run once, then cancelled at each of its
 * checkpoints in turn, then under fault injection, and after every run
 * nothing may be left behind and no item may be lost or delivered twice.
 * Exits 0 when the sweep passed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <weft.h>

enum { N = 50 };

struct run {
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    uintptr_t sent, got;
};

static int producer(void *arg)
{
    struct run *r = arg;
    for (uintptr_t i = 1; i <= N; i++) {
        int rc = weft_chan_send(r->tx, (void *)i);
        if (rc < 0)
            return rc; /* not sent: the item is still ours */
        r->sent = i;
    }
    return 0;
}

static int consumer(void *arg)
{
    struct run *r = arg;
    void *item;
    int rc;
    while ((rc = weft_chan_recv(r->rx, &item)) == 1)
        if ((uintptr_t)item != ++r->got)
            return -EPROTO; /* out of order, lost or twice */
    return rc;
}

/* The scenario: a channel, a producer, a consumer; then the check. */
static int scenario(void *arg)
{
    struct run r = {0};
    int rc = weft_chan_open(4, &r.tx, &r.rx);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, consumer, &r);
    if (rc == 0)
        rc = producer(&r);
    weft_chan_tx_close(r.tx);
    rc = weft_group_exit(&g, rc);
    void *item; /* what was sent and not received is still buffered */
    while (weft_chan_try_recv(r.rx, &item) == 1)
        if ((uintptr_t)item != ++r.got)
            rc = -EPROTO;
    weft_chan_rx_close(r.rx);
    return r.got == r.sent ? rc : -EPROTO;
}

int main(void)
{
    weft_sweep_opts o = {.budget = 5 * WEFT_SEC, .fault_seeds = 10};
    weft_sweep_result r;
    int rc = weft_sweep(scenario, NULL, &o, &r);
    printf("%llu checkpoints, %llu cancellation points, %llu fault seeds: "
           "%llu leaks, %llu failures\n",
           (unsigned long long)r.checkpoints, (unsigned long long)r.points,
           (unsigned long long)r.seeds, (unsigned long long)r.leaks,
           (unsigned long long)r.failures);
    return rc == 0 && r.points == r.checkpoints ? 0 : 1;
}
