/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_resp - weft-load's response parser (tools/weft-load/
 * http_resp.c) and its latency histogram (hist.c).
 *
 * Input: one byte of flags (bit 0: the request was HEAD), two bytes of a
 * cut position, then the bytes a server sent. The bytes are fed as
 * weft-load feeds them (a line not yet whole stays at the buffer's
 * front), once whole and once cut in two at the position and once a byte
 * at a time, each in a buffer of exactly its size (ASan sees a read past
 * it). Checks: no crash; a feed never consumes more than it was given;
 * the three feedings give the same responses (status, body length,
 * keep-alive) and the same end (an error, or what the close says). Then
 * the input, read as 8-byte values, goes into two histograms: each value
 * lies in its bucket, percentiles grow with q and stay between the
 * minimum and the maximum, and the merge of both equals one histogram of
 * every value.
 */
#include "fuzz.h"
#include "tools/weft-load/hist.h"
#include "tools/weft-load/http_resp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { MAXR = 64 };

struct outcome {
    int n, end;
    int status[MAXR];
    uint64_t body[MAXR];
    bool keep[MAXR];
};

/* Feed data in pieces of at most step bytes (step 0: cut at cut only). */
static void run(const char *data, size_t n, size_t cut, size_t step, bool head,
                struct outcome *o)
{
    char *buf = malloc(n ? n : 1);
    CHECK(buf);
    memset(o, 0, sizeof *o);
    size_t have = 0, from = 0;
    struct http_resp r;
    http_resp_start(&r, head);
    while (from < n || (from == 0 && n == 0)) {
        size_t to = step ? from + step : from < cut ? cut : n;
        if (to > n)
            to = n;
        memcpy(buf + have, data + from, to - from);
        have += to - from;
        from = to;
        size_t off = 0;
        for (;;) {
            size_t used;
            /* exactly the bytes there are: a copy of their own size */
            char *exact = malloc(have - off ? have - off : 1);
            CHECK(exact);
            memcpy(exact, buf + off, have - off);
            int rc = http_resp_feed(&r, exact, have - off, &used);
            free(exact);
            CHECK(used <= have - off);
            CHECK(rc == HTTP_RESP_MORE || rc == HTTP_RESP_DONE ||
                  rc == -EBADMSG);
            off += used;
            if (rc < 0) {
                o->end = rc;
                free(buf);
                return;
            }
            if (rc == HTTP_RESP_MORE)
                break;
            CHECK(r.status >= 100 && r.status <= 999);
            if (o->n < MAXR) {
                o->status[o->n] = r.status;
                o->body[o->n] = r.body;
                o->keep[o->n] = r.keep_alive;
            }
            o->n++;
            http_resp_start(&r, head);
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        if (n == 0)
            break;
    }
    o->end = http_resp_eof(&r, have);
    CHECK(o->end == 0 || o->end == HTTP_RESP_DONE || o->end == -ENODATA);
    free(buf);
}

static void same(const struct outcome *a, const struct outcome *b)
{
    CHECK(a->n == b->n && a->end == b->end);
    for (int i = 0; i < a->n && i < MAXR; i++)
        CHECK(a->status[i] == b->status[i] && a->body[i] == b->body[i] &&
              a->keep[i] == b->keep[i]);
}

static void histograms(const uint8_t *p, size_t n)
{
    static struct hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v >>= p[i] & 63; /* small values too */
        unsigned k = hist_bucket(v);
        CHECK(k < HIST_BUCKETS);
        CHECK(hist_bucket_low(k) <= v && v <= hist_bucket_high(k));
        hist_record(i & 8 ? &a : &b, v);
        hist_record(&all, v);
    }
    hist_merge(&a, &b);
    CHECK(a.count == all.count && a.max == all.max && a.min == all.min);
    CHECK(memcmp(a.b, all.b, sizeof a.b) == 0);
    uint64_t last = 0;
    const double q[] = {0.1, 50, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof q / sizeof *q; i++) {
        uint64_t v = hist_percentile(&all, q[i]);
        CHECK(v >= last);
        CHECK(all.count == 0 || (v >= all.min && v <= all.max));
        last = v;
    }
    if (all.count)
        CHECK(hist_percentile(&all, 100) == all.max);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    bool head = fuzz_u8(&in) & 1;
    size_t cut = fuzz_u16(&in);
    const char *body = (const char *)in.p;
    size_t n = in.n;
    if (cut > n)
        cut = n;
    static struct outcome whole, two, bytes;
    run(body, n, n, 0, head, &whole);
    run(body, n, cut, 0, head, &two);
    same(&whole, &two);
    if (n <= 4096) {
        run(body, n, 0, 1, head, &bytes);
        same(&whole, &bytes);
    }
    histograms(data, size);
    return 0;
}
