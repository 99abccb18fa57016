/* SPDX-License-Identifier: MIT */
/*
 * fuzz_framing - the read-ahead of weft_stream_recv_exactly/recv_until
 * against an in-memory model.
 *
 * The input decodes as:
 *   [1] delimiter length (1..8)  [len] the delimiter
 *   [2] max of recv_until (0..1023)
 *   [1] number of chunk sizes (0..15)  [n] chunk sizes (0 = a checkpoint)
 *   [1] number of reads (0..63)  [2 each] a read: kind, argument
 *   the rest: the data
 * A writer task sends the data over weft_stream_pair in those chunks
 * (round robin, weft_checkpoint between two), then closes its end; the
 * reader makes the decoded reads, then drains the stream with recv. Each
 * result must be what the model (the data and a position in it) says:
 * the bytes in order, none lost or twice, recv_until the bytes before the
 * first delimiter at or after the position (-EMSGSIZE iff that delimiter
 * ends past max + its length, -ENODATA if there is none before the end),
 * recv_exactly all of n, 0 at the end or -ENODATA (nothing consumed).
 * Buffers are allocated at their exact size: ASan sees a byte past them.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

enum { READ_EXACTLY, READ_UNTIL, READ_SOME, READ_BUFFERED, READ_CHECKPOINT };

struct run {
    const uint8_t *delim;
    size_t delim_len, max;
    const uint8_t *chunks;
    size_t nchunks;
    const uint8_t *reads;
    size_t nreads;
    const uint8_t *data;
    size_t len;
    size_t pos;     /* the model: bytes consumed by the reader */
    size_t sending; /* bytes handed to send so far (sent or in flight) */
};

static int writer(weft_stream *s, struct run *r)
{
    size_t done = 0, i = 0;
    bool sized = false; /* a chunk size that is not 0 */
    for (size_t k = 0; k < r->nchunks; k++)
        sized |= r->chunks[k] != 0;
    while (done < r->len) {
        size_t n = sized ? r->chunks[i++ % r->nchunks] : r->len;
        if (n > r->len - done)
            n = r->len - done;
        r->sending = done + n;
        if (n)
            CHECK(weft_stream_send(s, r->data + done, n) == (ssize_t)n);
        done += n;
        CHECK(weft_checkpoint() == 0);
    }
    return weft_stream_close(s);
}

struct writer_arg {
    weft_stream *s;
    struct run *r;
};

static int writer_task(void *arg)
{
    struct writer_arg *w = arg;
    return writer(w->s, w->r);
}

/* Where the first delimiter at or after pos begins, or len. */
static size_t model_find(const struct run *r)
{
    for (size_t i = r->pos; i + r->delim_len <= r->len; i++)
        if (memcmp(r->data + i, r->delim, r->delim_len) == 0)
            return i;
    return r->len;
}

static void read_exactly(weft_stream *s, struct run *r, size_t n)
{
    uint8_t *buf = malloc(n);
    CHECK(buf || !n);
    ssize_t got = weft_stream_recv_exactly(s, buf, n);
    size_t left = r->len - r->pos;
    if (n == 0 || left == 0) {
        CHECK(got == 0);
    } else if (left < n) {
        CHECK(got == -ENODATA);
    } else {
        CHECK(got == (ssize_t)n);
        CHECK(memcmp(buf, r->data + r->pos, n) == 0);
        r->pos += n;
    }
    free(buf);
}

static void read_until(weft_stream *s, struct run *r, size_t max)
{
    uint8_t *buf = malloc(max);
    CHECK(buf || !max);
    ssize_t got = weft_stream_recv_until(s, buf, max, r->delim, r->delim_len);
    size_t at = model_find(r);
    if (at < r->len) { /* a delimiter: within max, or too far */
        size_t rec = at - r->pos;
        if (rec <= max) {
            CHECK(got == (ssize_t)rec);
            CHECK(memcmp(buf, r->data + r->pos, rec) == 0);
            r->pos += rec + r->delim_len;
        } else {
            CHECK(got == -EMSGSIZE);
        }
    } else if (r->len - r->pos >= max + r->delim_len) {
        CHECK(got == -EMSGSIZE); /* no delimiter, and more than max */
    } else {
        CHECK(got == -ENODATA);
    }
    free(buf);
}

static void read_some(weft_stream *s, struct run *r, size_t max)
{
    uint8_t *buf = malloc(max);
    CHECK(buf);
    ssize_t got = weft_stream_recv(s, buf, max);
    if (r->pos == r->len) {
        CHECK(got == 0);
    } else {
        CHECK(got > 0 && (size_t)got <= max);
        CHECK((size_t)got <= r->len - r->pos);
        CHECK(memcmp(buf, r->data + r->pos, (size_t)got) == 0);
        r->pos += (size_t)got;
    }
    free(buf);
}

static int reader(void *arg)
{
    struct run *r = arg;
    weft_stream *a, *b;
    CHECK(weft_stream_pair(&a, &b) == 0);
    weft_group g;
    weft_group_enter(&g);
    struct writer_arg w = {b, r};
    CHECK(weft_group_spawn(&g, writer_task, &w) == 0);
    for (size_t i = 0; i < r->nreads; i++) {
        uint8_t kind = r->reads[2 * i] % 5, x = r->reads[2 * i + 1];
        switch (kind) {
        case READ_EXACTLY:
            read_exactly(a, r, x);
            break;
        case READ_UNTIL: /* the decoded max, or a small one */
            read_until(a, r, x & 0x80 ? x & 0x7f : r->max);
            break;
        case READ_SOME:
            read_some(a, r, (size_t)x + 1);
            break;
        case READ_BUFFERED:
            CHECK(weft_stream_buffered(a) <= r->sending - r->pos);
            break;
        case READ_CHECKPOINT:
            CHECK(weft_checkpoint() == 0);
            break;
        }
    }
    while (r->pos < r->len)
        read_some(a, r, 4096);
    read_some(a, r, 1); /* and then the end */
    CHECK(weft_stream_buffered(a) == 0);
    CHECK(weft_group_exit(&g, 0) == 0);
    CHECK(weft_stream_close(a) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct run r = {0};
    size_t got;
    r.delim_len = 1 + (fuzz_u8(&in) & 7);
    r.delim = fuzz_bytes(&in, r.delim_len, &got);
    if (got < r.delim_len)
        return 0;
    r.max = fuzz_u16(&in) & 1023;
    r.nchunks = fuzz_u8(&in) & 15;
    r.chunks = fuzz_bytes(&in, r.nchunks, &r.nchunks);
    r.nreads = fuzz_u8(&in) & 63;
    r.reads = fuzz_bytes(&in, 2 * r.nreads, &got);
    r.nreads = got / 2;
    r.data = in.p;
    r.len = in.n;
    CHECK(weft_run(reader, &r, NULL) == 0);
    return 0;
}
