/* SPDX-License-Identifier: MIT */
/*
 * chan_close.c - who owns an item when a send fails.
 *
 * Items here are malloc'd strings. A receiver takes two of them and then
 * closes its end; the sender's next send fails with -EPIPE, and since the
 * item was not taken, the sender still owns it and frees it. Items still
 * buffered when the last receiver closes are dropped, so a receiver that
 * owns memory drains the buffer with try_recv first. It prints:
 *
 *     received "item 1"
 *     received "item 2"
 *     send of "item 3": -EPIPE, freed by the sender
 *     drained "left 1" before closing
 *
 * Build: part of the docs' examples (example_chan_close); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

static char *make(const char *what, int n)
{
    char *s = malloc(32);
    if (s)
        snprintf(s, 32, "%s %d", what, n);
    return s;
}

static int sender(void *arg)
{
    weft_chan_tx *tx = arg;
    int rc = 0;
    for (int n = 1; rc == 0; n++) {
        char *item = make("item", n);
        if (!item)
            return -ENOMEM;
        rc = weft_chan_send(tx, item); /* capacity 0: waits for a taker */
        if (rc < 0) {
            /* Not taken: still ours. */
            printf("send of \"%s\": %s, freed by the sender\n", item,
                   rc == -EPIPE ? "-EPIPE" : weft_strerror(rc));
            free(item);
        }
    }
    weft_chan_tx_close(tx);
    return rc == -EPIPE ? 0 : rc; /* the receiver leaving is expected */
}

static int root(void *arg)
{
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    weft_group g;
    void *item;

    int rc = weft_chan_open(0, &tx, &rx);
    if (rc < 0)
        return rc;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, sender, tx);
    for (int i = 0; i < 2 && rc >= 0; i++) {
        rc = weft_chan_recv(rx, &item);
        if (rc == 1) {
            printf("received \"%s\"\n", (char *)item);
            free(item); /* taken: ours now */
        }
    }
    weft_chan_rx_close(rx); /* the sender's next send fails */
    rc = weft_group_exit(&g, rc < 0 ? rc : 0);
    if (rc < 0)
        return rc;

    /* Draining before the last receive handle closes. */
    rc = weft_chan_open(4, &tx, &rx);
    if (rc < 0)
        return rc;
    char *left = make("left", 1);
    if (!left || weft_chan_send(tx, left) != 0) {
        free(left);
        return -ENOMEM;
    }
    weft_chan_tx_close(tx);
    int n = 0;
    while (weft_chan_try_recv(rx, &item) == 1) {
        printf("drained \"%s\" before closing\n", (char *)item);
        free(item);
        n++;
    }
    weft_chan_rx_close(rx); /* the last handle: the channel is freed */
    return n == 1 ? 0 : -EPROTO;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "chan_close: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
