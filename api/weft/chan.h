/* SPDX-License-Identifier: MIT */
/*
 * weft/chan.h - channels: anyio's memory object streams.
 *
 * weft_chan_open gives one send and one receive handle; clone either end
 * for more producers or consumers (fan-in and fan-out work: each end may
 * be used by many tasks at once). The stream ends for receivers when every
 * send handle is closed and the buffer is drained; sends fail with -EPIPE
 * once every receive handle is closed. A send whose item was not taken
 * returns an error and the caller still owns the item; a cancelled send
 * never delivers; a cancelled receive never consumes. A closed handle
 * stays valid (calls return -EBADF) while any other handle of its channel
 * is open; when the last handle closes, the channel and all its handles
 * are freed. Items left in the buffer when the last receive handle closes
 * are dropped: drain them with weft_chan_try_recv first if they own
 * memory. A channel from weft_chan_open belongs to one loop; one from
 * weft_chan_open_shared may be used from tasks on any loop (and its try_
 * calls from any thread).
 */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_CHAN_UNBOUNDED SIZE_MAX

typedef struct weft_chan_tx weft_chan_tx;
typedef struct weft_chan_rx weft_chan_rx;

typedef struct weft_chan_stats {
    size_t current_buffer_used;
    size_t max_buffer_size; /* WEFT_CHAN_UNBOUNDED for unbounded */
    size_t open_send_streams;
    size_t open_receive_streams;
    size_t tasks_waiting_send;
    size_t tasks_waiting_receive;
} weft_chan_stats;

/* 0, -EINVAL (NULL out-pointers), -ENOMEM */
int weft_chan_open(size_t capacity /* 0 = rendezvous */, weft_chan_tx **tx,
                   weft_chan_rx **rx);
/* 0, -EPIPE no receivers, -EBADF closed, -ECANCELED, -ENOMEM (unbounded) */
/* A channel whose handles tasks on any loop (any core of a weft_run_cores
 * runtime) may use, clone and close, with weft_chan_open's semantics;
 * 0, -EINVAL, -ENOMEM. */
int weft_chan_open_shared(size_t capacity, weft_chan_tx **tx,
                          weft_chan_rx **rx);
int weft_chan_send(weft_chan_tx *tx, void *item);
int weft_chan_try_send(weft_chan_tx *tx, void *item); /* also -EAGAIN */
/* 1 item, 0 end of stream, -EBADF, -ECANCELED */
int weft_chan_recv(weft_chan_rx *rx, void **item);
int weft_chan_try_recv(weft_chan_rx *rx, void **item); /* also -EAGAIN */
weft_chan_tx *weft_chan_tx_clone(weft_chan_tx *tx);    /* NULL if closed */
weft_chan_rx *weft_chan_rx_clone(weft_chan_rx *rx);
void weft_chan_tx_close(weft_chan_tx *tx);
void weft_chan_rx_close(weft_chan_rx *rx);
int weft_chan_tx_statistics(const weft_chan_tx *tx, weft_chan_stats *st);
int weft_chan_rx_statistics(const weft_chan_rx *rx, weft_chan_stats *st);

#ifdef __cplusplus
}
#endif
#endif
