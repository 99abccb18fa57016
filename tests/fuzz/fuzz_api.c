/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api - random sequences of weft calls with cancellations.
 *
 * The input is a list of 3-byte operations [op, a, b]. The root task,
 * inside a 50 ms move_on_after (a guard: when it fires everything is
 * cancelled, which must end the run too), either spawns a task that makes
 * one blocking call inside its own cancel scope (a slot: the root may
 * cancel it or move its deadline), or acts itself: cancels or moves a
 * slot's scope, closes a channel end, sets the event, half-closes the
 * stream, sleeps or checkpoints. At the end it sets the event and cancels
 * the group. Checked:
 *   - every call returns success, -ECANCELED or an error its header
 *     documents for the situation (listed at each call below);
 *   - channel items: each one sent with success is received exactly once
 *     (by a task, or drained from the buffer at the end), and no other;
 *   - stream bytes: what was received is at least what sends reported
 *     sent, at most what they were asked to send (a cancelled send may
 *     have sent part), and every byte is the one value senders write;
 *   - the loop ends (libFuzzer's -timeout catches a hang), ASan is clean.
 * Sleeps are at most ~1 ms: a run takes a few ms of real time.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

enum { NSLOTS = 8, MAX_ITEMS = 256, BYTE = 0x5a };

enum task_kind {
    T_SLEEP,
    T_LOCK,
    T_SEM,
    T_CHAN_SEND,
    T_CHAN_RECV,
    T_STREAM_SEND,
    T_STREAM_RECV,
    T_STREAM_UNTIL,
    T_EVENT,
    NKINDS
};

enum root_op {
    R_SPAWN, /* twice as likely: ops 0 and 1 */
    R_SPAWN2,
    R_CANCEL,
    R_DEADLINE,
    R_CLOSE_TX,
    R_CLOSE_RX,
    R_EVENT,
    R_EOF,
    R_SLEEP,
    R_CHECKPOINT,
    NOPS
};

struct world {
    weft_lock lock;
    weft_semaphore sem;
    weft_event event;
    weft_chan_tx *tx;           /* NULL once closed by the root */
    weft_chan_rx *rx, *rx_keep; /* rx_keep: the root drains it at the end */
    weft_stream *a, *b;         /* tasks send on a, receive on b */
    bool eof;                   /* a half-closed */
    weft_scope *slot[NSLOTS];   /* a live task's scope, or NULL */
    size_t next_item;
    uint8_t sent[MAX_ITEMS + 1], got[MAX_ITEMS + 1];
    size_t bytes_asked, bytes_sent, bytes_got;
};

struct job {
    struct world *w;
    enum task_kind kind;
    uint8_t a, b;
    unsigned slot;
};

static weft_time small(uint8_t x) /* 0 .. ~1 ms */
{
    return (weft_time)x * 4 * WEFT_USEC;
}

static void count_bytes(struct world *w, const uint8_t *buf, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++)
        CHECK(buf[i] == BYTE);
    w->bytes_got += (size_t)n;
}

static void act(struct job *j)
{
    struct world *w = j->w;
    int rc;
    switch (j->kind) {
    case T_SLEEP:
        rc = weft_sleep(small(j->a));
        CHECK(rc == 0 || rc == -ECANCELED);
        break;
    case T_LOCK: /* acquire: 0, -ECANCELED; release: 0 */
        rc = weft_lock_acquire(&w->lock);
        CHECK(rc == 0 || rc == -ECANCELED);
        if (rc == 0) {
            rc = weft_sleep(small(j->b));
            CHECK(rc == 0 || rc == -ECANCELED);
            CHECK(weft_lock_release(&w->lock) == 0);
        }
        break;
    case T_SEM: /* acquire: 0, -ECANCELED; release: 0 (never past max) */
        rc = j->a & 1 ? weft_semaphore_try_acquire(&w->sem)
                      : weft_semaphore_acquire(&w->sem);
        CHECK(rc == 0 || rc == -ECANCELED || (rc == -EAGAIN && (j->a & 1)));
        if (rc == 0) {
            rc = weft_checkpoint();
            CHECK(rc == 0 || rc == -ECANCELED);
            CHECK(weft_semaphore_release(&w->sem) == 0);
        }
        break;
    case T_CHAN_SEND: { /* 0, -EBADF (closed), -ECANCELED, -EAGAIN (try) */
        if (!w->tx || w->next_item == MAX_ITEMS)
            break;
        size_t id = ++w->next_item;
        weft_chan_tx *tx = w->tx;
        rc = j->a & 1 ? weft_chan_try_send(tx, (void *)id)
                      : weft_chan_send(tx, (void *)id);
        CHECK(rc == 0 || rc == -ECANCELED || rc == -EBADF ||
              (rc == -EAGAIN && (j->a & 1)));
        if (rc == 0)
            w->sent[id] = 1;
        break;
    }
    case T_CHAN_RECV: { /* 1, 0 (ended), -EBADF, -ECANCELED, -EAGAIN */
        void *item = NULL;
        rc = j->a & 1 ? weft_chan_try_recv(w->rx, &item)
                      : weft_chan_recv(w->rx, &item);
        CHECK(rc == 1 || rc == 0 || rc == -EBADF || rc == -ECANCELED ||
              (rc == -EAGAIN && (j->a & 1)));
        if (rc == 1) {
            size_t id = (size_t)item;
            CHECK(id >= 1 && id <= MAX_ITEMS && !w->got[id]);
            w->got[id] = 1;
        }
        break;
    }
    case T_STREAM_SEND: { /* len, -EBUSY, -ECANCELED, -EPIPE after eof */
        size_t n = (size_t)j->a * 64 + 1;
        uint8_t *buf = malloc(n);
        CHECK(buf);
        memset(buf, BYTE, n);
        bool eof = w->eof;
        ssize_t r = weft_stream_send(w->a, buf, n);
        CHECK(r == (ssize_t)n || r == -EBUSY || r == -ECANCELED ||
              ((eof || w->eof) && r == -EPIPE));
        if (r != -EBUSY)
            w->bytes_asked += n;
        if (r == (ssize_t)n)
            w->bytes_sent += n;
        free(buf);
        break;
    }
    case T_STREAM_RECV: { /* >0, 0 (eof), -EBUSY, -ECANCELED */
        size_t n = (size_t)j->a + 1;
        uint8_t *buf = malloc(n);
        CHECK(buf);
        ssize_t r = j->b & 1 ? weft_stream_recv_exactly(w->b, buf, n)
                             : weft_stream_recv(w->b, buf, n);
        CHECK(r >= 0 || r == -EBUSY || r == -ECANCELED ||
              (r == -ENODATA && (j->b & 1)));
        if (r > 0) {
            CHECK((size_t)r <= n && (!(j->b & 1) || (size_t)r == n));
            count_bytes(w, buf, r);
        }
        free(buf);
        break;
    }
    case T_STREAM_UNTIL: { /* the delimiter never comes: -EMSGSIZE */
        size_t max = j->a;
        uint8_t *buf = malloc(max + 1);
        CHECK(buf);
        ssize_t r = weft_stream_recv_until(w->b, buf, max, "\n", 1);
        CHECK(r == -EMSGSIZE || r == -ENODATA || r == -EBUSY ||
              r == -ECANCELED);
        free(buf);
        break;
    }
    case T_EVENT:
        rc = weft_event_wait(&w->event);
        CHECK(rc == 0 || rc == -ECANCELED);
        break;
    default:
        break;
    }
}

static int task(void *arg)
{
    struct job *j = arg;
    struct world *w = j->w;
    weft_scope s;
    weft_scope_enter(&s, j->b & 0x80 ? weft_now() + small(j->b) : WEFT_FOREVER);
    bool mine = !w->slot[j->slot];
    if (mine)
        w->slot[j->slot] = &s;
    act(j);
    if (mine)
        w->slot[j->slot] = NULL;
    int rc = weft_scope_exit(&s, 0);
    CHECK(rc == 0);
    free(j);
    return 0;
}

static void root_op(struct world *w, weft_group *g, const uint8_t *op)
{
    uint8_t a = op[1], b = op[2];
    weft_scope *s = w->slot[a % NSLOTS];
    int rc;
    switch (op[0] % NOPS) {
    case R_SPAWN:
    case R_SPAWN2: {
        struct job *j = malloc(sizeof *j);
        CHECK(j);
        /* a: kind (low 4 bits) and slot (high); b: the task's own
         * argument; op[0]'s high bit: a deadline for its scope */
        *j = (struct job){w, (enum task_kind)((a & 15) % NKINDS), b, op[0],
                          (a >> 4) % NSLOTS};
        rc = weft_group_spawn(g, task, j);
        CHECK(rc == 0 || rc == -ECANCELED);
        if (rc < 0)
            free(j);
        break;
    }
    case R_CANCEL:
        if (s)
            weft_scope_cancel(s);
        break;
    case R_DEADLINE:
        if (s)
            weft_scope_set_deadline(s, b & 1 ? WEFT_FOREVER
                                             : weft_now() + small(b));
        break;
    case R_CLOSE_TX:
        if (w->tx) {
            weft_chan_tx_close(w->tx);
            w->tx = NULL;
        }
        break;
    case R_CLOSE_RX:
        weft_chan_rx_close(w->rx); /* again: a no-op on a closed handle */
        break;
    case R_EVENT:
        weft_event_set(&w->event);
        break;
    case R_EOF:
        if (!w->eof) {
            w->eof = true;
            rc = weft_stream_send_eof(w->a);
            CHECK(rc == 0 || rc == -EBUSY || rc == -ECANCELED);
            if (rc < 0)
                w->eof = false;
        }
        break;
    case R_SLEEP:
        rc = weft_sleep(small(a) / 4);
        CHECK(rc == 0 || rc == -ECANCELED);
        break;
    case R_CHECKPOINT:
        rc = weft_checkpoint();
        CHECK(rc == 0 || rc == -ECANCELED);
        break;
    }
}

struct input {
    const uint8_t *ops;
    size_t nops;
};

static int root(void *arg)
{
    struct input *in = arg;
    struct world *w = calloc(1, sizeof *w);
    CHECK(w);
    weft_lock_init(&w->lock);
    weft_semaphore_init(&w->sem, in->nops ? in->ops[0] % 3 : 1, 4);
    weft_event_init(&w->event);
    size_t cap = in->nops ? in->ops[1] % 4 : 0;
    CHECK(weft_chan_open(cap, &w->tx, &w->rx) == 0);
    w->rx_keep = weft_chan_rx_clone(w->rx);
    CHECK(w->rx_keep);
    CHECK(weft_stream_pair(&w->a, &w->b) == 0);

    weft_scope guard;
    weft_move_on_after(&guard, 50 * WEFT_MSEC);
    weft_group g;
    weft_group_enter(&g);
    for (size_t i = 0; i < in->nops; i++)
        root_op(w, &g, in->ops + 3 * i);
    weft_event_set(&w->event);
    weft_group_cancel(&g);
    CHECK(weft_group_exit(&g, 0) == 0);
    CHECK(weft_scope_exit(&guard, 0) == 0);

    /* Items: every one sent was received once, or is still buffered. */
    if (w->tx)
        weft_chan_tx_close(w->tx);
    void *item;
    int rc;
    while ((rc = weft_chan_try_recv(w->rx_keep, &item)) == 1) {
        size_t id = (size_t)item;
        CHECK(id >= 1 && id <= MAX_ITEMS && !w->got[id]);
        w->got[id] = 1;
    }
    CHECK(rc == 0); /* every send handle closed: the end */
    for (size_t id = 1; id <= MAX_ITEMS; id++)
        CHECK(w->sent[id] == w->got[id]);
    weft_chan_rx_close(w->rx);
    weft_chan_rx_close(w->rx_keep);

    /* Bytes: drain b after a's end. */
    if (!w->eof)
        CHECK(weft_stream_send_eof(w->a) == 0);
    uint8_t buf[4096];
    ssize_t n;
    while ((n = weft_stream_recv(w->b, buf, sizeof buf)) > 0)
        count_bytes(w, buf, n);
    CHECK(n == 0);
    CHECK(w->bytes_got >= w->bytes_sent && w->bytes_got <= w->bytes_asked);
    CHECK(weft_stream_close(w->a) == 0);
    CHECK(weft_stream_close(w->b) == 0);
    free(w);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size / 3};
    if (in.nops > 64)
        in.nops = 64;
    CHECK(weft_run(root, &in, NULL) == 0);
    return 0;
}
