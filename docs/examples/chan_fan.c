/* SPDX-License-Identifier: MIT */
/*
 * chan_fan.c - producers and consumers on one channel: fan-in and fan-out.
 *
 * Three producers each send 100 numbers through their own clone of the
 * send handle; two consumers each receive through their own clone of the
 * receive handle, until the end of the stream (every send handle closed
 * and the buffer drained). Each number arrives exactly once, at one of
 * the consumers. It prints:
 *
 *     consumers got 300 items in all, each once; sum 45150
 *
 * Build: part of the docs' examples (example_chan_fan); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <weft.h>

enum { PRODUCERS = 3, CONSUMERS = 2, PER_PRODUCER = 100 };

struct producer {
    weft_chan_tx *tx; /* its own clone: it closes it when done */
    int first;
};

struct consumer {
    weft_chan_rx *rx; /* its own clone */
    unsigned char *seen;
    long sum;
    int count;
};

static int produce(void *arg)
{
    struct producer *p = arg;
    int rc = 0;
    for (int i = 0; i < PER_PRODUCER && rc == 0; i++) {
        uintptr_t n = (uintptr_t)(p->first + i);
        rc = weft_chan_send(p->tx, (void *)n); /* waits while full */
    }
    weft_chan_tx_close(p->tx); /* the last close ends the stream */
    return rc;
}

static int consume(void *arg)
{
    struct consumer *c = arg;
    void *item;
    int rc;
    while ((rc = weft_chan_recv(c->rx, &item)) == 1) {
        uintptr_t n = (uintptr_t)item;
        c->seen[n]++;
        c->sum += (long)n;
        c->count++;
    }
    weft_chan_rx_close(c->rx);
    return rc; /* 0: end of stream; or -ECANCELED */
}

static int root(void *arg)
{
    static unsigned char seen[1 + PRODUCERS * PER_PRODUCER];
    struct producer p[PRODUCERS];
    struct consumer c[CONSUMERS];
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    weft_group g;

    int rc = weft_chan_open(4, &tx, &rx); /* room for four items */
    if (rc < 0)
        return rc;
    for (int i = 0; i < PRODUCERS; i++)
        p[i] = (struct producer){weft_chan_tx_clone(tx), 1 + i * PER_PRODUCER};
    for (int i = 0; i < CONSUMERS; i++)
        c[i] = (struct consumer){weft_chan_rx_clone(rx), seen, 0, 0};
    /* Only the clones remain open: the producers' closes end the stream. */
    weft_chan_tx_close(tx);
    weft_chan_rx_close(rx);

    weft_group_enter(&g);
    for (int i = 0; i < CONSUMERS && rc == 0; i++)
        rc = weft_group_spawn(&g, consume, &c[i]);
    for (int i = 0; i < PRODUCERS && rc == 0; i++)
        rc = weft_group_spawn(&g, produce, &p[i]);
    rc = weft_group_exit(&g, rc);
    if (rc < 0)
        return rc;

    long sum = 0;
    int count = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        sum += c[i].sum;
        count += c[i].count;
    }
    for (int n = 1; n <= PRODUCERS * PER_PRODUCER; n++)
        if (seen[n] != 1)
            return -EPROTO;
    printf("consumers got %d items in all, each once; sum %ld\n", count, sum);
    return count == PRODUCERS * PER_PRODUCER ? 0 : -EPROTO;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "chan_fan: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
