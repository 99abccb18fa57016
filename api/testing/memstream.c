/* SPDX-License-Identifier: MIT */
/*
 * api/testing/memstream.c - weft_memstream_pair: two streams joined in
 * memory, no fd, for tests. Each direction is a bounded ring buffer (a
 * pipe); each end sends into one and receives from the other.
 *
 * The stream layer lets one receiver and one sender use an end at a time,
 * so a pipe has at most one task waiting to read (the receiving end's)
 * and one waiting for room (the sending end's): a slot each, not a queue.
 * A waiter is woken to look again (data, room, end of stream, the peer's
 * close); it moves bytes only when it runs, so a cancellation that came
 * first leaves the bytes where they were, and one that comes after the
 * wake-up changes nothing (it is reported at the next checkpoint).
 *
 * A delay stamps what each send moved with the time it may be read
 * (now + delay on the loop's clock); the reader waits for that time on a
 * timer of the loop's heap. The stream's own close wakes its blocked
 * calls through the gate's kill hook (-EBADF).
 */
#include "api/stream/stream_impl.h"

#include <stdlib.h>
#include <string.h>
#include <weft/testing.h>

#define MEM_DEFAULT_CAPACITY ((size_t)64 * 1024)

/* A task blocked on a pipe, on its stack. */
struct mem_wait {
    struct wf_wait wait;
    struct weft__timer timer; /* a delayed read's due time */
    struct mem_wait **slot;   /* where the pipe points at it */
    int res;
};

/* Bytes that become readable at `due` end at stream offset `end`. */
struct mem_mark {
    uint64_t end;
    weft_time due;
};

/* One direction. Offsets count every byte ever written (wrote) and read
 * (read); the buffer holds wrote - read of them. */
struct mem_pipe {
    char *buf;
    size_t cap;
    uint64_t wrote, read;
    bool eof;               /* the writer sent EOF or closed its end */
    bool reader_gone;       /* the reading end is closed: sends fail */
    struct mem_mark *marks; /* with a delay: a FIFO ring of mcap */
    uint64_t due_end;       /* bytes before this have come due */
    size_t mhead, mlen, mcap;
    struct mem_wait *reader, *writer;
};

struct mem_shared {
    struct mem_pipe pipe[2]; /* [0]: a -> b, [1]: b -> a */
    size_t chunk;
    weft_time delay;
    unsigned ends; /* ends not yet closed */
};

struct mem_stream {
    weft_stream base;
    struct mem_shared *sh;
    int side; /* 0: a, 1: b */
};

static struct mem_stream *mem(weft_stream *s)
{
    return (struct mem_stream *)s;
}

static struct mem_pipe *pipe_in(struct mem_stream *m)
{
    return &m->sh->pipe[!m->side];
}

static struct mem_pipe *pipe_out(struct mem_stream *m)
{
    return &m->sh->pipe[m->side];
}

/* ---- waiting ---- */

static void wait_end(struct mem_wait *w, int res)
{
    if (wf_timer_armed(&w->timer))
        wf_timer_disarm(w->wait.task->loop, &w->timer);
    *w->slot = NULL;
    w->res = res;
    wf_wake(w->wait.task);
}

static void wait_cancel(struct wf_wait *ww)
{
    wait_end(wf_container_of(ww, struct mem_wait, wait), -ECANCELED);
}

static void wait_due(struct weft__timer *tm)
{
    wait_end(wf_container_of(tm, struct mem_wait, timer), 0);
}

/* Wake whoever waits in *slot to look again (or fail with res). */
static void wake(struct mem_wait **slot, int res)
{
    if (*slot)
        wait_end(*slot, res);
}

/* Block in *slot until woken, cancelled or (due != WEFT_FOREVER) until
 * due: 0 (look again), -ECANCELED, or -EBADF (this end is closing). */
static int wait_in(struct mem_wait **slot, weft_time due, const char *what)
{
    struct weft_task *t = wf_self();
    if (!t) /* the stream layer claimed the side: never, but say so */
        return -EPERM;
    /* A cancel that came while the call ran (between two transfers of
     * one recv_exactly) reached no wait: look before blocking. */
    if (t->loop->ncancelled && wf_cancelled(t))
        return -ECANCELED;
    struct mem_wait w = {
        .wait = {.cancel = wait_cancel, .what = what},
        .timer = {.fire = wait_due},
        .slot = slot,
    };
    *slot = &w;
    if (due != WEFT_FOREVER)
        wf_timer_arm(t->loop, &w.timer, due);
    wf_block(&w.wait);
    return w.res;
}

/* ---- the pipe ---- */

static size_t pipe_len(const struct mem_pipe *p)
{
    return (size_t)(p->wrote - p->read);
}

/* Bytes readable now; *due is when more become readable (or FOREVER).
 * Marks that have come due are dropped as they are passed: each is
 * looked at once. */
static size_t pipe_readable(struct mem_pipe *p, weft_time *due)
{
    *due = WEFT_FOREVER;
    if (!p->mcap)
        return pipe_len(p);
    if (p->mlen) {
        weft_time now = weft_now();
        while (p->mlen && p->marks[p->mhead].due <= now) {
            p->due_end = p->marks[p->mhead].end;
            p->mhead = (p->mhead + 1) % p->mcap;
            p->mlen--;
        }
        if (p->mlen)
            *due = p->marks[p->mhead].due;
    }
    return (size_t)(p->due_end - p->read);
}

static void pipe_copy_out(struct mem_pipe *p, char *dst, size_t n)
{
    size_t at = (size_t)(p->read % p->cap);
    size_t first = p->cap - at < n ? p->cap - at : n;
    memcpy(dst, p->buf + at, first);
    memcpy(dst + first, p->buf, n - first);
    p->read += n;
}

static int pipe_copy_in(struct mem_pipe *p, const char *src, size_t n,
                        weft_time delay)
{
    if (delay > 0) {
        if (p->mlen == p->mcap) {
            size_t cap = p->mcap ? 2 * p->mcap : 16;
            struct mem_mark *v = wf_malloc(cap * sizeof *v);
            if (!v)
                return -ENOMEM;
            for (size_t i = 0; i < p->mlen; i++)
                v[i] = p->marks[(p->mhead + i) % p->mcap];
            wf_free(p->marks);
            p->marks = v;
            p->mcap = cap;
            p->mhead = 0;
        }
        weft_time now = weft_now();
        p->marks[(p->mhead + p->mlen++) % p->mcap] = (struct mem_mark){
            .end = p->wrote + n,
            .due = delay < WEFT_FOREVER - now ? now + delay : WEFT_FOREVER - 1,
        };
    }
    size_t at = (size_t)(p->wrote % p->cap);
    size_t first = p->cap - at < n ? p->cap - at : n;
    memcpy(p->buf + at, src, first);
    memcpy(p->buf, src + first, n - first);
    p->wrote += n;
    return 0;
}

/* ---- the transport ---- */

static ssize_t mem_recv(weft_stream *s, void *buf, size_t max)
{
    struct mem_stream *m = mem(s);
    struct mem_pipe *p = pipe_in(m);
    for (;;) {
        if (wf_stream_closing(s))
            return -EBADF;
        weft_time due;
        size_t n = pipe_readable(p, &due);
        if (n) {
            if (n > max)
                n = max;
            if (m->sh->chunk && n > m->sh->chunk)
                n = m->sh->chunk;
            pipe_copy_out(p, buf, n);
            wake(&p->writer, 0); /* room */
            return (ssize_t)n;
        }
        if (p->eof && !pipe_len(p))
            return 0;
        int rc = wait_in(&p->reader, due, "weft_stream_recv (memory)");
        if (rc < 0)
            return rc;
    }
}

static ssize_t mem_send(weft_stream *s, const void *buf, size_t len)
{
    struct mem_stream *m = mem(s);
    struct mem_pipe *p = pipe_out(m);
    for (;;) {
        if (wf_stream_closing(s))
            return -EBADF;
        if (p->reader_gone || p->eof)
            return -EPIPE;
        size_t room = p->cap - pipe_len(p);
        if (room) {
            size_t n = len < room ? len : room;
            int rc = pipe_copy_in(p, buf, n, m->sh->delay);
            if (rc < 0)
                return rc;
            wake(&p->reader, 0);
            return (ssize_t)n;
        }
        int rc = wait_in(&p->writer, WEFT_FOREVER, "weft_stream_send (memory)");
        if (rc < 0)
            return rc;
    }
}

static int mem_send_eof(weft_stream *s)
{
    struct mem_pipe *p = pipe_out(mem(s));
    p->eof = true;
    wake(&p->reader, 0);
    return 0;
}

/* The gate's kill: this end is closing; its blocked calls end now. */
static void mem_kill(weft_stream *s)
{
    struct mem_stream *m = mem(s);
    wake(&pipe_in(m)->reader, -EBADF);
    wake(&pipe_out(m)->writer, -EBADF);
}

static void pipe_free(struct mem_pipe *p)
{
    wf_free(p->buf);
    wf_free(p->marks);
}

static int mem_close(weft_stream *s)
{
    struct mem_stream *m = mem(s);
    struct mem_shared *sh = m->sh;
    /* The peer reads what is left, then the end; its sends fail. */
    struct mem_pipe *out = pipe_out(m), *in = pipe_in(m);
    out->eof = true;
    wake(&out->reader, 0);
    in->reader_gone = true;
    wake(&in->writer, 0);
    if (--sh->ends == 0) {
        pipe_free(&sh->pipe[0]);
        pipe_free(&sh->pipe[1]);
        wf_free(sh);
    }
    return 0;
}

static const struct wf_stream_ops mem_ops = {
    .recv = mem_recv,
    .send = mem_send,
    .send_eof = mem_send_eof,
    .kill = mem_kill,
    .close = mem_close,
    .fd = NULL, /* weft_stream_fd: -ENOTSUP */
};

WF_EXPORT int weft_memstream_pair(weft_stream **a, weft_stream **b,
                                  const weft_memstream_opts *opts)
{
    if (!a || !b)
        return -EINVAL;
    weft_memstream_opts o = {0};
    if (opts)
        o = *opts;
    if (o.delay < 0)
        return -EINVAL;
    if (!o.capacity)
        o.capacity = MEM_DEFAULT_CAPACITY;
    struct mem_shared *sh = wf_calloc(1, sizeof *sh);
    struct mem_stream *ma = wf_malloc(sizeof *ma);
    struct mem_stream *mb = wf_malloc(sizeof *mb);
    if (sh) {
        sh->pipe[0].buf = wf_malloc(o.capacity);
        sh->pipe[1].buf = wf_malloc(o.capacity);
    }
    if (!sh || !ma || !mb || !sh->pipe[0].buf || !sh->pipe[1].buf) {
        if (sh) {
            pipe_free(&sh->pipe[0]);
            pipe_free(&sh->pipe[1]);
        }
        wf_free(sh);
        wf_free(ma);
        wf_free(mb);
        return -ENOMEM;
    }
    sh->chunk = o.chunk;
    sh->delay = o.delay;
    sh->ends = 2;
    sh->pipe[0].cap = sh->pipe[1].cap = o.capacity;
    wf_stream_init(&ma->base, &mem_ops);
    wf_stream_init(&mb->base, &mem_ops);
    ma->sh = mb->sh = sh;
    ma->side = 0;
    mb->side = 1;
    *a = &ma->base;
    *b = &mb->base;
    return 0;
}
