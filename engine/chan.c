/* SPDX-License-Identifier: MIT */
/*
 * engine/chan.c - channels (anyio's memory object streams).
 *
 * One struct per channel with its buffer (a ring that grows by doubling
 * up to the capacity) and two waiter queues. Receivers wait only while the
 * buffer is empty, senders only while it is full (always, for capacity
 * 0), so a send first hands its item to a waiting receiver, and a receive
 * refills the buffer from the first waiting sender. Every handle, open or
 * closed, stays allocated until the last one closes.
 *
 * Shared channels (weft_chan_open_shared) live in engine/shchan.c: each
 * public call tests the handle's `shared` byte first (one predictable
 * branch on a line it reads anyway) and hands them over.
 */
#include "engine/engine.h"

#include <stdlib.h>

struct wf_chan {
    size_t capacity;
    void **buf;
    size_t bufcap, head, count; /* bufcap: a power of two, or 0 */
    wf_link senders, receivers;
    size_t nsend, nrecv;
    size_t open_tx, open_rx;
    struct wf_end *ends; /* every handle, for the final free */
};

static void *new_end(struct wf_chan *ch, size_t size)
{
    struct wf_end *e = wf_calloc(1, size);
    if (!e)
        return NULL;
    e->ch = ch;
    e->next = ch->ends;
    ch->ends = e;
    return e;
}

WF_EXPORT int weft_chan_open(size_t capacity, weft_chan_tx **tx,
                             weft_chan_rx **rx)
{
    if (!tx || !rx)
        return -EINVAL;
    *tx = NULL; /* on every failure, not a stale handle */
    *rx = NULL;
    struct wf_chan *ch = wf_calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->capacity = capacity;
    wf_list_init(&ch->senders);
    wf_list_init(&ch->receivers);
    *tx = new_end(ch, sizeof **tx);
    *rx = new_end(ch, sizeof **rx);
    if (!*tx || !*rx) {
        wf_free(*tx);
        wf_free(*rx);
        wf_free(ch);
        *tx = NULL;
        *rx = NULL;
        return -ENOMEM;
    }
    ch->open_tx = ch->open_rx = 1;
    return 0;
}

/* Room for one more item; the buffer grows by doubling up to capacity. */
static int buf_reserve(struct wf_chan *ch)
{
    if (ch->count < ch->bufcap)
        return 0;
    size_t cap = ch->bufcap ? ch->bufcap * 2 : 16;
    void **buf = wf_malloc(cap * sizeof *buf);
    if (!buf)
        return -ENOMEM;
    for (size_t i = 0; i < ch->count; i++)
        buf[i] = ch->buf[(ch->head + i) & (ch->bufcap - 1)];
    wf_free(ch->buf);
    ch->buf = buf;
    ch->bufcap = cap;
    ch->head = 0;
    return 0;
}

static int buf_push(struct wf_chan *ch, void *item)
{
    int rc = buf_reserve(ch);
    if (rc < 0)
        return rc;
    ch->buf[(ch->head + ch->count++) & (ch->bufcap - 1)] = item;
    return 0;
}

static void *buf_pop(struct wf_chan *ch)
{
    void *item = ch->buf[ch->head];
    ch->head = (ch->head + 1) & (ch->bufcap - 1);
    ch->count--;
    return item;
}

/* Send without waiting: 0, -EAGAIN (would wait), or an error. */
static int send_now(struct weft_chan_tx *tx, void *item)
{
    struct wf_chan *ch = tx->e.ch;
    if (tx->e.closed)
        return -EBADF;
    if (!ch->open_rx)
        return -EPIPE;
    struct wf_waiter *r = wf_waiter_first(&ch->receivers);
    if (r) {
        r->item = item;
        wf_waiter_grant(r, 1);
        return 0;
    }
    if (ch->count < ch->capacity)
        return buf_push(ch, item);
    return -EAGAIN;
}

/* Receive without waiting: 1, 0 (end of stream), -EAGAIN, or -EBADF. */
static int recv_now(struct weft_chan_rx *rx, void **item)
{
    struct wf_chan *ch = rx->e.ch;
    if (rx->e.closed)
        return -EBADF;
    struct wf_waiter *s = wf_waiter_first(&ch->senders);
    if (ch->count) {
        *item = buf_pop(ch);
        /* The first waiting sender's item takes the freed place. */
        if (s && buf_push(ch, s->item) == 0)
            wf_waiter_grant(s, 0);
        return 1;
    }
    if (s) {
        *item = s->item;
        wf_waiter_grant(s, 0);
        return 1;
    }
    return ch->open_tx ? -EAGAIN : 0;
}

WF_EXPORT int weft_chan_send(weft_chan_tx *tx, void *item)
{
    if (tx && wf_unlikely(tx->e.shared))
        return wf_shchan_send(tx, item);
    struct weft_task *t;
    int rc = wf_entry(&t, tx != NULL, tx && tx->e.closed);
    if (rc < 0)
        return rc;
    rc = send_now(tx, item);
    if (rc != -EAGAIN)
        return rc;
    struct wf_chan *ch = tx->e.ch;
    struct wf_waiter wr = {.item = item, .key = tx};
    return wf_waiter_block(&wr, &ch->senders, &ch->nsend, "weft_chan_send",
                           true);
}

WF_EXPORT int weft_chan_try_send(weft_chan_tx *tx, void *item)
{
    if (!tx)
        return -EINVAL;
    if (wf_unlikely(tx->e.shared))
        return wf_shchan_try_send(tx, item);
    return send_now(tx, item);
}

WF_EXPORT int weft_chan_recv(weft_chan_rx *rx, void **item)
{
    if (rx && wf_unlikely(rx->e.shared))
        return wf_shchan_recv(rx, item);
    struct weft_task *t;
    int rc = wf_entry(&t, rx && item, rx && rx->e.closed);
    if (rc < 0)
        return rc;
    rc = recv_now(rx, item);
    if (rc != -EAGAIN)
        return rc;
    struct wf_chan *ch = rx->e.ch;
    struct wf_waiter wr = {.key = rx};
    rc = wf_waiter_block(&wr, &ch->receivers, &ch->nrecv, "weft_chan_recv",
                         true);
    if (rc == 1)
        *item = wr.item;
    return rc;
}

WF_EXPORT int weft_chan_try_recv(weft_chan_rx *rx, void **item)
{
    if (!rx || !item)
        return -EINVAL;
    if (wf_unlikely(rx->e.shared))
        return wf_shchan_try_recv(rx, item);
    return recv_now(rx, item);
}

static void *clone_end(struct wf_end *e, size_t size, size_t *open)
{
    if (!e || e->closed)
        return NULL;
    struct wf_end *c = new_end(e->ch, size);
    if (c)
        (*open)++;
    return c;
}

WF_EXPORT weft_chan_tx *weft_chan_tx_clone(weft_chan_tx *tx)
{
    if (tx && wf_unlikely(tx->e.shared))
        return (weft_chan_tx *)wf_shchan_clone(&tx->e, true);
    return tx ? clone_end(&tx->e, sizeof *tx, &tx->e.ch->open_tx) : NULL;
}

WF_EXPORT weft_chan_rx *weft_chan_rx_clone(weft_chan_rx *rx)
{
    if (rx && wf_unlikely(rx->e.shared))
        return (weft_chan_rx *)wf_shchan_clone(&rx->e, false);
    return rx ? clone_end(&rx->e, sizeof *rx, &rx->e.ch->open_rx) : NULL;
}

/* Wake the waiters of queue q that used handle key (NULL: all) with res. */
static void wake_all(wf_link *q, const void *key, int res)
{
    for (wf_link *n = q->next, *next; n != q; n = next) {
        next = n->next;
        struct wf_waiter *wr = wf_container_of(n, struct wf_waiter, node);
        if (!key || wr->key == key)
            wf_waiter_grant(wr, res);
    }
}

static void maybe_free(struct wf_chan *ch)
{
    if (ch->open_tx || ch->open_rx)
        return;
    for (struct wf_end *e = ch->ends, *next; e; e = next) {
        next = e->next;
        wf_free(e);
    }
    wf_free(ch->buf);
    wf_free(ch);
}

WF_EXPORT void weft_chan_tx_close(weft_chan_tx *tx)
{
    if (tx && wf_unlikely(tx->e.shared)) {
        wf_shchan_close(&tx->e, true);
        return;
    }
    if (!tx || tx->e.closed)
        return;
    struct wf_chan *ch = tx->e.ch;
    tx->e.closed = true;
    ch->open_tx--;
    wake_all(&ch->senders, tx, -EBADF);
    if (!ch->open_tx)
        wake_all(&ch->receivers, NULL, 0); /* end of stream */
    maybe_free(ch);
}

WF_EXPORT void weft_chan_rx_close(weft_chan_rx *rx)
{
    if (rx && wf_unlikely(rx->e.shared)) {
        wf_shchan_close(&rx->e, false);
        return;
    }
    if (!rx || rx->e.closed)
        return;
    struct wf_chan *ch = rx->e.ch;
    rx->e.closed = true;
    ch->open_rx--;
    wake_all(&ch->receivers, rx, -EBADF);
    if (!ch->open_rx) {
        wake_all(&ch->senders, NULL, -EPIPE);
        ch->count = 0; /* undeliverable now */
    }
    maybe_free(ch);
}

static int stats(const struct wf_chan *ch, weft_chan_stats *st)
{
    if (!st)
        return -EINVAL;
    st->current_buffer_used = ch->count;
    st->max_buffer_size = ch->capacity;
    st->open_send_streams = ch->open_tx;
    st->open_receive_streams = ch->open_rx;
    st->tasks_waiting_send = ch->nsend;
    st->tasks_waiting_receive = ch->nrecv;
    return 0;
}

WF_EXPORT int weft_chan_tx_statistics(const weft_chan_tx *tx,
                                      weft_chan_stats *st)
{
    if (!tx)
        return -EINVAL;
    return tx->e.shared ? wf_shchan_stats(&tx->e, st) : stats(tx->e.ch, st);
}

WF_EXPORT int weft_chan_rx_statistics(const weft_chan_rx *rx,
                                      weft_chan_stats *st)
{
    if (!rx)
        return -EINVAL;
    return rx->e.shared ? wf_shchan_stats(&rx->e, st) : stats(rx->e.ch, st);
}
