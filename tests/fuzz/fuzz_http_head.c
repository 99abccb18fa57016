/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_head - perf/http_parse.c's request-head parser.
 *
 * The input is a head as weft_stream_recv_until(..., "\r\n\r\n") returns
 * it, in a buffer of exactly its size (ASan sees a read past it). Checks:
 * no crash; every span lies inside the input; a head that parses, written
 * out again in canonical form, parses to the same fields and writes out
 * to the same bytes; http_head_end finds the first "\r\n\r\n", and the
 * head before it parses cleanly (or fails cleanly) in a buffer of its own
 * exact size.
 */
#include "fuzz.h"
#include "perf/http_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void in_input(struct http_span s, const char *buf, size_t n)
{
    CHECK(s.p >= buf && s.n <= n && (size_t)(s.p - buf) <= n - s.n);
}

static bool span_eq(struct http_span a, struct http_span b)
{
    return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static void put(char **o, const void *p, size_t n)
{
    memcpy(*o, p, n);
    *o += n;
}

/* The canonical form: single spaces, "name: value", CRLF between lines.
 * out has room for 2 * n + 64 bytes for a head of n bytes. */
static size_t format(const struct http_request *r, char *out)
{
    char *o = out;
    put(&o, r->method.p, r->method.n);
    put(&o, " ", 1);
    put(&o, r->target.p, r->target.n);
    put(&o, " HTTP/1.", 8);
    *o++ = (char)('0' + r->minor);
    for (size_t i = 0; i < r->nheaders; i++) {
        put(&o, "\r\n", 2);
        put(&o, r->headers[i].name.p, r->headers[i].name.n);
        put(&o, ": ", 2);
        put(&o, r->headers[i].value.p, r->headers[i].value.n);
    }
    return (size_t)(o - out);
}

static void same(const struct http_request *a, const struct http_request *b)
{
    CHECK(span_eq(a->method, b->method) && span_eq(a->target, b->target));
    CHECK(a->minor == b->minor && a->content_length == b->content_length);
    CHECK(a->keep_alive == b->keep_alive && a->nheaders == b->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        CHECK(span_eq(a->headers[i].name, b->headers[i].name));
        CHECK(span_eq(a->headers[i].value, b->headers[i].value));
    }
}

static int parse_copy(const char *p, size_t n, struct http_request *r,
                      char **copy)
{
    *copy = malloc(n ? n : 1);
    CHECK(*copy);
    memcpy(*copy, p, n);
    return http_parse_request(*copy, n, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static struct http_request r, r2, r3;
    int rc = http_parse_request(buf, size, &r);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
    if (rc == 0) {
        in_input(r.method, buf, size);
        in_input(r.target, buf, size);
        CHECK(r.nheaders <= HTTP_MAX_HEADERS);
        CHECK(r.minor >= 0 && r.minor <= 9 && r.content_length >= -1);
        for (size_t i = 0; i < r.nheaders; i++) {
            in_input(r.headers[i].name, buf, size);
            in_input(r.headers[i].value, buf, size);
        }
        char *out = malloc(2 * size + 64), *out2 = malloc(2 * size + 64);
        CHECK(out && out2);
        size_t n = format(&r, out);
        CHECK(http_parse_request(out, n, &r2) == 0);
        same(&r, &r2);
        CHECK(format(&r2, out2) == n && memcmp(out, out2, n) == 0);
        free(out);
        free(out2);
    }

    size_t end = http_head_end(buf, size);
    CHECK(end == 0 || (end >= 4 && end <= size));
    if (end) {
        CHECK(memcmp(buf + end - 4, "\r\n\r\n", 4) == 0);
        CHECK(http_head_end(buf, end - 1) == 0); /* the first one */
        char *copy;
        int rc2 = parse_copy(buf, end - 4, &r3, &copy);
        CHECK(rc2 == 0 || rc2 == -EBADMSG || rc2 == -E2BIG);
        free(copy);
    } else {
        for (size_t i = 0; i + 4 <= size; i++)
            CHECK(memcmp(buf + i, "\r\n\r\n", 4) != 0);
    }
    return 0;
}
