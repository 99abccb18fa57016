/* SPDX-License-Identifier: MIT */
/*
 * thread_from_thread.c - a worker that calls back into its loop.
 *
 * A blocking reader (here: a loop with nanosleep standing for a blocking
 * API that yields one record at a time) runs on a worker with
 * weft_to_thread. For each record it
 *
 * - calls weft_from_thread_run(send_record, ...): send_record runs as a
 *   task on the loop, so it may block: it sends the record on a
 *   rendezvous channel and waits until a consumer task has taken it;
 * - calls weft_from_thread_run_sync(note_progress, ...): a plain function
 *   run on the loop's thread between tasks, for quick updates of state
 *   that the loop owns (no lock needed); it must not block.
 *
 * It prints:
 *
 *     watcher: half of the records are in
 *     consumer: 10 records, sum 55
 *
 * Exits 0 when the consumer got every record and the progress was seen.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <weft.h>

#define RECORDS 10

struct pipeline {
    weft_chan_tx *tx;
    weft_chan_rx *rx;
    weft_event half; /* set by note_progress, on the loop's thread */
    int progress;    /* owned by the loop: touched only there */
};

struct record {
    struct pipeline *p;
    int value;
};

/* On the loop, as a task: it may block. */
static int send_record(void *arg)
{
    struct record *r = arg;
    return weft_chan_send(r->p->tx, (void *)(intptr_t)r->value);
}

/* On the loop's thread, between tasks: quick, never blocks. */
static int note_progress(void *arg)
{
    struct pipeline *p = arg;
    if (++p->progress == RECORDS / 2)
        weft_event_set(&p->half);
    return 0;
}

/* On a worker thread. */
static int blocking_reader(void *arg)
{
    struct pipeline *p = arg;
    for (int i = 1; i <= RECORDS; i++) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the blocking read of one record */
        struct record r = {p, i};
        int rc = weft_from_thread_run(send_record, &r);
        if (rc == 0)
            rc = weft_from_thread_run_sync(note_progress, p);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int consumer(void *arg)
{
    struct pipeline *p = arg;
    void *item;
    int n = 0, sum = 0, rc;
    while ((rc = weft_chan_recv(p->rx, &item)) == 1) {
        n++;
        sum += (int)(intptr_t)item;
    }
    printf("consumer: %d records, sum %d\n", n, sum);
    return rc == 0 && n == RECORDS && sum == RECORDS * (RECORDS + 1) / 2
               ? 0
               : -EPROTO;
}

static int watcher(void *arg)
{
    struct pipeline *p = arg;
    int rc = weft_event_wait(&p->half);
    if (rc == 0)
        printf("watcher: half of the records are in\n");
    return rc;
}

static int root(void *arg)
{
    struct pipeline p = {.progress = 0};
    int rc = weft_chan_open(0, &p.tx, &p.rx);
    if (rc < 0)
        return rc;
    weft_event_init(&p.half);

    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, consumer, &p);
    weft_group_spawn(&g, watcher, &p);
    rc = weft_to_thread(blocking_reader, &p, NULL, 0);
    weft_chan_tx_close(p.tx); /* end of stream for the consumer */
    rc = weft_group_exit(&g, rc);
    weft_chan_rx_close(p.rx);
    if (rc == 0 && p.progress != RECORDS)
        rc = -EPROTO;
    return rc;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "thread_from_thread: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
