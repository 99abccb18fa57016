/* SPDX-License-Identifier: MIT */
/*
 * tests/test_load.c - weft-load (tools/weft-load): its response parser
 * and its histogram against known inputs, then the program itself run
 * against servers written here with weft (on their own loop, in a
 * thread) that count what they serve, stall once, cut responses short,
 * answer chunked, with Connection: close, 404, 500 or 302, read request
 * bodies by Content-Length (keeping the method, an X-T header and the
 * body's first bytes), and echo over TCP and UDP.
 *
 * The one timing this suite asserts is a relation the tool exists to
 * show: a one-second stall of the server shows in the open loop's p99
 * (--rate) and not in the closed loop's (below the open loop's by 5x,
 * and below a generous 200 ms). Everything else is counts; durations
 * appear only as hang guards.
 */
#include "helpers.h"

#include "tools/weft-load/hist.h"
#include "tools/weft-load/http_resp.h"

#include <ctype.h>
#include <stdatomic.h>

/* ==== the histogram ==== */

static void test_hist_keeps_small_values_exact(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 100; v++)
        hist_record(&h, v);
    assert_int_equal(h.count, 100);
    assert_int_equal(hist_percentile(&h, 50), 50);
    assert_int_equal(hist_percentile(&h, 99), 99);
    assert_int_equal(hist_percentile(&h, 100), 100);
    assert_int_equal(hist_percentile(&h, 0.001), 1);
    assert_int_equal(h.max, 100);
    assert_true(hist_mean(&h) > 50.49 && hist_mean(&h) < 50.51);
}

/* Every value's bucket holds it, and is narrower than 1% of it. */
static void test_hist_buckets_bound_the_relative_error(void **state)
{
    (void)state;
    for (uint64_t v = 1; v < (1ull << 41); v = v * 5 / 4 + 1) {
        for (uint64_t d = 0; d < 3; d++) {
            uint64_t x = v + d;
            unsigned b = hist_bucket(x);
            assert_true(b < HIST_BUCKETS);
            assert_true(hist_bucket_low(b) <= x && x <= hist_bucket_high(b));
            assert_true((double)(hist_bucket_high(b) - hist_bucket_low(b)) <=
                        (double)x / 100);
        }
    }
    /* beyond the top: the last bucket, the exact max kept apart */
    static struct hist h;
    hist_init(&h);
    hist_record(&h, UINT64_MAX / 2);
    assert_int_equal(hist_bucket(UINT64_MAX / 2), HIST_BUCKETS - 1);
    assert_true(hist_percentile(&h, 50) == UINT64_MAX / 2);
}

static void test_hist_percentiles_within_one_percent(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++)
        hist_record(&h, v * 1000); /* 1 us .. 1 s in ns */
    const double q[] = {50, 90, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof q / sizeof *q; i++) {
        double exact = q[i] / 100 * 1e6 * 1000;
        double got = (double)hist_percentile(&h, q[i]);
        assert_true(got >= exact && got <= exact * 1.01);
    }
    assert_int_equal(hist_percentile(&h, 100), 1000000000ull);
}

/* Two cores' histograms merged are one histogram of all the records. */
static void test_hist_merge_equals_one_histogram(void **state)
{
    (void)state;
    static struct hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    uint64_t x = 12345;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t v = (x >> 40) + 1;
        hist_record(i % 3 ? &a : &b, v);
        hist_record(&all, v);
    }
    hist_merge(&a, &b);
    assert_int_equal(a.count, all.count);
    assert_int_equal(a.max, all.max);
    assert_int_equal(a.min, all.min);
    assert_memory_equal(a.b, all.b, sizeof a.b);
    assert_int_equal(hist_percentile(&a, 99.9), hist_percentile(&all, 99.9));
}

static void test_hist_empty_reports_zero(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    assert_int_equal(hist_percentile(&h, 99), 0);
    assert_true(hist_mean(&h) == 0 && hist_stdev(&h) == 0);
}

/* ==== the response parser ==== */

struct parsed {
    int n;          /* responses */
    int status[16]; /* each one's */
    uint64_t body[16];
    bool keep[16];
    int rc;        /* the last feed's or eof's error, else 0 */
    bool eof_done; /* the close ended the last response */
};

/* Feed data as weft-load does (lines not whole stay at the buffer's
 * front), in pieces cut at the offsets given, then the close if eof. */
static struct parsed parse(const char *data, size_t n, const size_t *cuts,
                           size_t ncuts, bool head, bool eof)
{
    struct parsed p = {0};
    static char buf[4096];
    size_t have = 0, from = 0;
    struct http_resp r;
    http_resp_start(&r, head);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        assert_true(have + (to - from) <= sizeof buf);
        memcpy(buf + have, data + from, to - from);
        have += to - from;
        from = to;
        size_t off = 0;
        for (;;) {
            size_t used;
            int rc = http_resp_feed(&r, buf + off, have - off, &used);
            assert_true(used <= have - off);
            off += used;
            if (rc < 0) {
                p.rc = rc;
                return p;
            }
            if (rc == HTTP_RESP_MORE)
                break;
            assert_true(p.n < 16);
            p.status[p.n] = r.status;
            p.body[p.n] = r.body;
            p.keep[p.n++] = r.keep_alive;
            http_resp_start(&r, head);
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    if (eof) {
        int rc = http_resp_eof(&r, have);
        if (rc == HTTP_RESP_DONE) {
            p.eof_done = true;
            p.status[p.n] = r.status;
            p.body[p.n] = r.body;
            p.keep[p.n++] = r.keep_alive;
        } else {
            p.rc = rc;
        }
    }
    return p;
}

static struct parsed parse_whole(const char *s)
{
    return parse(s, strlen(s), NULL, 0, false, false);
}

static const char cl_resp[] = "HTTP/1.1 200 OK\r\n"
                              "Server: x\r\n"
                              "Content-Length: 5\r\n"
                              "\r\n"
                              "hello";

static const char chunked_resp[] = "HTTP/1.1 201 Created\r\n"
                                   "Transfer-Encoding: gzip, chunked\r\n"
                                   "\r\n"
                                   "5;name=value;other\r\n"
                                   "hello\r\n"
                                   "A \t; ext\r\n"
                                   "0123456789\r\n"
                                   "0;last\r\n"
                                   "Trailer-One: 1\r\n"
                                   "Trailer-Two: two\r\n"
                                   "\r\n";

static void test_resp_content_length(void **state)
{
    (void)state;
    struct parsed p = parse_whole(cl_resp);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.status[0], 200);
    assert_int_equal(p.body[0], 5);
    assert_true(p.keep[0]);
}

static void test_resp_chunked_with_extensions_and_trailers(void **state)
{
    (void)state;
    struct parsed p = parse_whole(chunked_resp);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.status[0], 201);
    assert_int_equal(p.body[0], 15);
}

/* Three responses back to back in one read, and one more half of a
 * fourth: three come out, each with its own fields. */
static void test_resp_pipelined_come_out_one_by_one(void **state)
{
    (void)state;
    char all[1024];
    int n = snprintf(all, sizeof all, "%s%s%sHTTP/1.1 404 Not Found\r\nCont",
                     cl_resp, chunked_resp,
                     "HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n"
                     "\r\n");
    struct parsed p = parse(all, (size_t)n, NULL, 0, false, false);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.status[0], 200);
    assert_int_equal(p.status[1], 201);
    assert_int_equal(p.body[1], 15);
    assert_int_equal(p.status[2], 204);
    assert_true(p.keep[2]);
}

/* The same responses, cut in two at every byte and in single bytes:
 * the same results every time. */
static void test_resp_split_at_every_byte_boundary(void **state)
{
    (void)state;
    char all[1024];
    int n = snprintf(all, sizeof all, "%s%s%s", cl_resp, chunked_resp, cl_resp);
    for (size_t cut = 0; cut <= (size_t)n; cut++) {
        struct parsed p = parse(all, (size_t)n, &cut, 1, false, false);
        assert_int_equal(p.rc, 0);
        assert_int_equal(p.n, 3);
        assert_int_equal(p.body[0], 5);
        assert_int_equal(p.body[1], 15);
        assert_int_equal(p.status[2], 200);
    }
    size_t cuts[1024];
    for (size_t i = 0; i < (size_t)n; i++)
        cuts[i] = i + 1;
    struct parsed p = parse(all, (size_t)n, cuts, (size_t)n - 1, false, false);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.body[1], 15);
}

static void test_resp_connection_close_and_http10(void **state)
{
    (void)state;
    struct parsed p = parse_whole("HTTP/1.1 200 OK\r\nConnection: Close\r\n"
                                  "Content-Length: 0\r\n\r\n");
    assert_int_equal(p.n, 1);
    assert_false(p.keep[0]);
    p = parse_whole("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx");
    assert_int_equal(p.n, 1);
    assert_false(p.keep[0]);
    p = parse_whole("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                    "Content-Length: 1\r\n\r\nx");
    assert_true(p.keep[0]);
}

/* No length, not chunked: the body runs to the close, which ends it. */
static void test_resp_body_until_close(void **state)
{
    (void)state;
    const char *s = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nall of this";
    struct parsed p = parse(s, strlen(s), NULL, 0, false, true);
    assert_int_equal(p.rc, 0);
    assert_true(p.eof_done);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.body[0], 11);
    assert_false(p.keep[0]);
}

/* A close inside a response is an error; between responses it is not. */
static void test_resp_cut_short_by_close(void **state)
{
    (void)state;
    static const char chunked_cut[] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    const char *cuts[] = {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
                          "HTTP/1.1 200 OK\r\nContent-Le", chunked_cut};
    for (size_t i = 0; i < 3; i++) {
        struct parsed p = parse(cuts[i], strlen(cuts[i]), NULL, 0, false, true);
        assert_int_equal(p.rc, -ENODATA);
    }
    struct parsed p = parse(cl_resp, strlen(cl_resp), NULL, 0, false, true);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.n, 1);
    assert_false(p.eof_done);
}

/* HEAD, 204 and 304 have no body, whatever their headers say; a 100
 * Continue before the response is skipped. */
static void test_resp_without_body_and_interim(void **state)
{
    (void)state;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    struct parsed p = parse(s, strlen(s), NULL, 0, true, false);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.body[0], 0);
    p = parse_whole("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
                    "HTTP/1.1 100 Continue\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_int_equal(p.n, 2);
    assert_int_equal(p.status[0], 304);
    assert_int_equal(p.status[1], 200);
    assert_int_equal(p.body[1], 2);
}

static void test_resp_malformed_is_an_error(void **state)
{
    (void)state;
    const char *bad[] = {
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1\r\nab\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1000000000000000\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct parsed p = parse_whole(bad[i]);
        if (p.rc != -EBADMSG)
            fail_msg("accepted: %s", bad[i]);
    }
}

/* ==== a JSON checker, for --json's output ==== */

/* A JSON value's syntax (RFC 8259) from p: the end of the value, or
 * NULL. Enough of a parser to tell valid from not without python3. */
static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL; /* the end, or a control byte unescaped */
        if (*p != '\\')
            continue;
        p++;
        if (*p == 'u') {
            for (int i = 1; i <= 4; i++)
                if (!isxdigit((unsigned char)p[i]))
                    return NULL;
            p += 4;
        } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
            return NULL;
        }
    }
    return p + 1;
}

static const char *json_number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit((unsigned char)*p))
            p++;
    else
        return NULL;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        if (*++p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return p;
}

static const char *json_value(const char *p, int depth)
{
    p = json_ws(p);
    if (depth > 32)
        return NULL;
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = json_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (!(p = json_string(json_ws(p))))
                    return NULL;
                p = json_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = json_value(p, depth + 1)))
                return NULL;
            p = json_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return json_string(p);
    const char *lit[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++)
        if (strncmp(p, lit[i], strlen(lit[i])) == 0)
            return p + strlen(lit[i]);
    return json_number(p);
}

/* The whole of s one JSON value, whitespace around it. */
static bool json_valid(const char *s)
{
    const char *end = json_value(s, 0);
    return end && *json_ws(end) == 0;
}

static void test_json_checker_tells_valid_from_not(void **state)
{
    (void)state;
    const char *good[] = {
        "{}",
        " {\"a\":[1,-2.5e+3,0.25,true,false,null,\"x\\\"\\u00e9\"],\"b\":{}}\n",
        "[[],{\"\":\"\"}]",
    };
    const char *bad[] = {
        "{",          "{\"a\":1,}", "{\"a\" 1}",   "{\"a\":01}",
        "{\"a\":1.}", "{\"a\":.5}", "{\"a\":nan}", "{\"a\":\"\\x\"}",
        "{\"a\":1}}", "{a:1}",      "[1 2]",       "{\"a\":\"\n\"}",
        "",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!json_valid(good[i]))
            fail_msg("rejected: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (json_valid(bad[i]))
            fail_msg("accepted: %s", bad[i]);
}

/* ==== weft-load against servers of this suite ==== */

#ifdef WEFT_LOAD_PATH

enum srv_kind { SRV_HTTP, SRV_TCP_ECHO, SRV_UDP_ECHO };

/* The server's behaviour and counts: set before it starts, read after
 * it stops (its thread's end orders them); counts are atomics because
 * they are read while it serves. */
static struct srv {
    enum srv_kind kind;
    const char *host;
    long stall_at;        /* sleep 1 s before answering this request (from 1) */
    long cut_every;       /* every Nth response is cut short, then close */
    long close_every;     /* every Nth response says Connection: close */
    bool chunked;         /* answer with a chunked body */
    weft_tls_config *tls; /* non-NULL: HTTPS with this configuration */
    atomic_long arrived, served, cut;
    atomic_long moved_to;   /* requests for /moved-to (302's Location) */
    atomic_long body_bytes; /* request bodies' bytes, by Content-Length */
    /* the last request's method, X-T header ("" if none) and body (its
     * first bytes): written by the server, read after it stops */
    char method[16], xt[32], body[64];
    long body_len;
    atomic_int port; /* 0 until it listens; < 0: it could not */
    int port_pipe;   /* > 0: also write the port there (a child server) */
    atomic_bool stop;
    pthread_t thread;
} srv;

static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
                            "Content-Type: text/plain\r\n\r\nhello\n";
static const char hello_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
                                  "Connection: close\r\n\r\nhello\n";
static const char hello_chunked[] = "HTTP/1.1 200 OK\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n"
                                    "3;x=y\r\nhel\r\n3\r\nlo\n\r\n"
                                    "0\r\nT: 1\r\n\r\n";
static const char not_found[] = "HTTP/1.1 404 Not Found\r\n"
                                "Content-Length: 0\r\n\r\n";
static const char server_error[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                   "Content-Length: 4\r\n\r\noops";
static const char moved[] = "HTTP/1.1 302 Found\r\n"
                            "Location: /moved-to\r\n"
                            "Content-Length: 0\r\n\r\n";

/* A header's value in head (NUL-terminated, lines by CRLF), copied to
 * out; false if there is none. */
static bool header_value(const char *head, const char *name, char *out,
                         size_t len)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, n) != 0 || l[n] != ':')
            continue;
        const char *v = l + n + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t k = strcspn(v, "\r");
        if (k >= len)
            k = len - 1;
        memcpy(out, v, k);
        out[k] = 0;
        return true;
    }
    return false;
}

/* Read the request's body (Content-Length bytes), keeping its first
 * bytes; false if the stream ended first. */
static bool read_body(weft_stream *s, const char *head)
{
    char cl[32], buf[4096];
    long len = 0;
    if (header_value(head, "Content-Length", cl, sizeof cl))
        len = strtol(cl, NULL, 10);
    srv.body_len = len;
    for (long got = 0; got < len;) {
        size_t k =
            (size_t)(len - got) < sizeof buf ? (size_t)(len - got) : sizeof buf;
        if (weft_stream_recv_exactly(s, buf, k) != (ssize_t)k)
            return false;
        if (got < (long)sizeof srv.body)
            memcpy(srv.body + got, buf,
                   k < sizeof srv.body - (size_t)got
                       ? k
                       : sizeof srv.body - (size_t)got);
        got += (long)k;
        atomic_fetch_add(&srv.body_bytes, (long)k);
    }
    return true;
}

static int http_conn(weft_stream *s, void *arg)
{
    (void)arg;
    char head[4096];
    for (;;) {
        ssize_t n =
            weft_stream_recv_until(s, head, sizeof head - 1, "\r\n\r\n", 4);
        if (n <= 0)
            return 0;
        head[n] = 0;
        snprintf(srv.method, sizeof srv.method, "%.*s", (int)strcspn(head, " "),
                 head);
        if (!header_value(head, "X-T", srv.xt, sizeof srv.xt))
            srv.xt[0] = 0;
        if (!read_body(s, head))
            return 0;
        long k = atomic_fetch_add(&srv.arrived, 1) + 1;
        if (k == srv.stall_at && weft_sleep(WEFT_SEC) < 0)
            return 0;
        const char *r = hello;
        bool close = false;
        const char *path = strchr(head, ' ');
        path = path ? path + 1 : "";
        if (strncmp(path, "/404 ", 5) == 0)
            r = not_found;
        else if (strncmp(path, "/500 ", 5) == 0)
            r = server_error;
        else if (strncmp(path, "/302 ", 5) == 0)
            r = moved;
        else if (strncmp(path, "/moved-to ", 10) == 0)
            atomic_fetch_add(&srv.moved_to, 1);
        else if (srv.chunked)
            r = hello_chunked;
        else if (srv.close_every && k % srv.close_every == 0)
            r = hello_close, close = true;
        if (srv.cut_every && k % srv.cut_every == 0) {
            weft_stream_send(s, hello, sizeof hello - 4); /* body cut */
            atomic_fetch_add(&srv.cut, 1);
            return 0;
        }
        if (weft_stream_send(s, r, strlen(r)) < 0)
            return 0;
        atomic_fetch_add(&srv.served, 1);
        if (close)
            return 0;
    }
}

/* HTTPS: the same server inside a TLS stream over the connection. */
static int https_conn(weft_stream *s, void *arg)
{
    weft_stream *b, *t;
    if (weft_stream_borrow(&b, s) < 0)
        return 0;
    if (weft_tls_wrap(&t, b, srv.tls, NULL) < 0)
        return 0; /* b is closed: a client that did not trust us */
    http_conn(t, arg);
    weft_stream_close(t);
    return 0;
}

static int echo_conn(weft_stream *s, void *arg)
{
    (void)arg;
    char buf[8192];
    ssize_t n;
    while ((n = weft_stream_recv(s, buf, sizeof buf)) > 0) {
        if (weft_stream_send(s, buf, (size_t)n) < 0)
            break;
        atomic_fetch_add(&srv.served, n);
    }
    return 0;
}

static int udp_echo(void *arg)
{
    weft_udp *u = arg;
    char buf[2048];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = weft_udp_recvfrom(u, buf, sizeof buf, &from, &fl);
        if (n < 0)
            return n == -ECANCELED ? 0 : (int)n;
        if (weft_udp_sendto(u, buf, (size_t)n, (struct sockaddr *)&from, fl) >=
            0)
            atomic_fetch_add(&srv.served, 1);
    }
}

/* Cancel the server once the test says stop. */
static int stopper(void *arg)
{
    while (!atomic_load(&srv.stop))
        if (weft_sleep(5 * WEFT_MSEC) < 0)
            return 0;
    weft_group_cancel(arg);
    return 0;
}

static int serve(void *arg)
{
    (void)arg;
    weft_group g;
    weft_group_enter(&g);
    int rc = weft_group_spawn(&g, stopper, &g);
    if (srv.kind == SRV_UDP_ECHO) {
        weft_udp *u;
        if (rc == 0 && (rc = weft_udp_open(&u, srv.host, 0)) == 0) {
            atomic_store(&srv.port, weft_udp_port(u));
            rc = udp_echo(u);
            weft_udp_close(u);
        }
    } else {
        weft_listener *l;
        if (rc == 0 && (rc = weft_tcp_listen(&l, srv.host, 0)) == 0) {
            int port = weft_listener_port(l);
            atomic_store(&srv.port, port);
            if (srv.port_pipe > 0 &&
                write(srv.port_pipe, &port, sizeof port) != sizeof port)
                rc = -EPIPE;
            rc = weft_listener_serve(l,
                                     srv.kind != SRV_HTTP ? echo_conn
                                     : srv.tls            ? https_conn
                                                          : http_conn,
                                     NULL);
            weft_listener_close(l);
        }
    }
    if (rc < 0 && rc != -ECANCELED)
        atomic_store(&srv.port, rc);
    weft_group_cancel(&g);
    weft_group_exit(&g, rc);
    return 0;
}

static void *srv_thread(void *arg)
{
    weft_run(serve, arg, NULL);
    return NULL;
}

/* Start the server as configured in srv; its port, or a skip. */
static int srv_start(void)
{
    atomic_store(&srv.port, 0);
    atomic_store(&srv.stop, false);
    assert_int_equal(pthread_create(&srv.thread, NULL, srv_thread, NULL), 0);
    for (int i = 0; i < 2000 && atomic_load(&srv.port) == 0; i++)
        usleep(1000);
    int port = atomic_load(&srv.port);
    if (port <= 0) {
        atomic_store(&srv.stop, true);
        pthread_join(srv.thread, NULL);
        if (port < 0)
            fail_msg("the test server cannot listen: %s", strerror(-port));
        fail_msg("the test server did not start");
    }
    return port;
}

static void srv_stop(void)
{
    atomic_store(&srv.stop, true);
    pthread_join(srv.thread, NULL);
}

static void srv_reset(enum srv_kind kind)
{
    memset(&srv, 0, sizeof srv);
    srv.kind = kind;
    srv.host = "127.0.0.1";
}

/* Run a shell command; its stdout, malloc'd. */
static char *run_cmd(int *status, const char *cmd)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t k;
    while ((k = fread(out + n, 1, cap - 1 - n, f)) > 0)
        n += k;
    out[n] = 0;
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

/* Run weft-load with args (a printf format); its stdout, malloc'd. */
static char *run_load(int *status, const char *fmt, ...)
{
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    /* timeout(1): a hang guard, never a measurement */
    snprintf(cmd, sizeof cmd, "timeout 120 %s -q %s", WEFT_LOAD_PATH, args);
    return run_cmd(status, cmd);
}

/* A number of the JSON object: "key": at its first place after within. */
static double json_num(const char *json, const char *within, const char *key)
{
    const char *p = json;
    if (within) {
        char w[64];
        snprintf(w, sizeof w, "\"%s\":{", within);
        p = strstr(json, w);
        if (!p)
            fail_msg("no object %s in %s", within, json);
    }
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *q = strstr(p, k);
    if (!q)
        fail_msg("no field %s in %s", key, json);
    return strtod(q + strlen(k), NULL);
}

static long jl(const char *json, const char *within, const char *key)
{
    return (long)json_num(json, within, key);
}

static void test_load_counts_match_the_server(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char *out =
        run_load(&st, "--json -t 1 -c 8 -n 3000 http://127.0.0.1:%d/", port);
    srv_stop();
    assert_int_equal(st, 0);
    assert_int_equal(jl(out, NULL, "requests"), 3000);
    assert_int_equal(jl(out, NULL, "errors"), 0);
    assert_int_equal(atomic_load(&srv.served), 3000);
    assert_int_equal(jl(out, "status", "2xx"), 3000);
    free(out);
}

/* -d: whatever it counts, the server served; at most one request per
 * connection was under way when the time ran out. */
static void test_load_duration_counts_what_was_served(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char *out =
        run_load(&st, "--json -c 6 -p 3 -d 1 http://127.0.0.1:%d/", port);
    srv_stop();
    assert_int_equal(st, 0);
    long req = jl(out, NULL, "requests"), served = atomic_load(&srv.served);
    assert_true(req > 0);
    assert_true(served >= req && served - req <= 6 * 3);
    assert_int_equal(jl(out, NULL, "errors"), 0);
    free(out);
}

static void test_load_pipelined_chunked_and_closing(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    srv.chunked = true;
    int port = srv_start(), st;
    char *out =
        run_load(&st, "--json -c 4 -p 8 -n 4000 http://127.0.0.1:%d/", port);
    srv_stop();
    assert_int_equal(jl(out, NULL, "requests"), 4000);
    assert_int_equal(jl(out, NULL, "errors"), 0);
    assert_int_equal(atomic_load(&srv.served), 4000);
    free(out);

    /* Connection: close every 7th: reconnect, no error, nothing lost */
    srv_reset(SRV_HTTP);
    srv.close_every = 7;
    port = srv_start();
    out = run_load(&st, "--json -c 4 -p 4 -n 2000 http://127.0.0.1:%d/", port);
    srv_stop();
    assert_int_equal(jl(out, NULL, "requests"), 2000);
    assert_int_equal(jl(out, NULL, "errors"), 0);
    assert_int_equal(atomic_load(&srv.served), 2000);
    free(out);
}

/* A server that closes mid-response: each time, a read error; the
 * responses it did finish are the requests counted. */
static void
test_load_counts_errors_when_the_server_closes_mid_response(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    srv.cut_every = 10;
    int port = srv_start(), st;
    char *out = run_load(&st, "--json -c 4 -n 1000 http://127.0.0.1:%d/", port);
    srv_stop();
    long cut = atomic_load(&srv.cut);
    assert_true(cut > 0);
    assert_int_equal(jl(out, "errors_by_kind", "read"), cut);
    assert_int_equal(jl(out, NULL, "requests"), atomic_load(&srv.served));
    assert_int_equal(jl(out, NULL, "requests") + cut, 1000);
    free(out);
}

static void test_load_counts_status_4xx(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char *out =
        run_load(&st, "--json -c 2 -n 50 http://127.0.0.1:%d/404", port);
    srv_stop();
    assert_int_equal(jl(out, NULL, "requests"), 50);
    assert_int_equal(jl(out, "errors_by_kind", "status_4xx"), 50);
    assert_int_equal(jl(out, NULL, "errors"), 50);
    free(out);
}

/* 5xx is an error of its own kind; a redirect is a response like any
 * other (3xx), not followed: nothing asks for its Location. */
static void test_load_counts_5xx_and_does_not_follow_redirects(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char *err =
        run_load(&st, "--json -c 2 -n 40 http://127.0.0.1:%d/500", port);
    char *redir =
        run_load(&st, "--json -c 2 -n 30 http://127.0.0.1:%d/302", port);
    srv_stop();
    assert_int_equal(jl(err, NULL, "requests"), 40);
    assert_int_equal(jl(err, "errors_by_kind", "status_5xx"), 40);
    assert_int_equal(jl(err, "status", "5xx"), 40);
    assert_int_equal(jl(err, NULL, "errors"), 40);
    assert_int_equal(jl(redir, NULL, "requests"), 30);
    assert_int_equal(jl(redir, "status", "3xx"), 30);
    assert_int_equal(jl(redir, NULL, "errors"), 0);
    assert_int_equal(atomic_load(&srv.arrived), 70);
    assert_int_equal(atomic_load(&srv.moved_to), 0);
    free(err);
    free(redir);
}

/* -m, -H and --body reach the server: its method, its header, and the
 * file's bytes as a body of Content-Length bytes (the server reads that
 * many, so a wrong length would break the next request). */
static void test_load_sends_method_headers_and_body(void **state)
{
    (void)state;
    char body[] = "/tmp/weft-load-test-body.XXXXXX";
    int fd = mkstemp(body);
    assert_true(fd >= 0);
    char data[3000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
    close(fd);
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char *out = run_load(&st,
                         "--json -c 2 -p 2 -n 100 -m PUT -H 'X-T: 1' "
                         "--body %s http://127.0.0.1:%d/",
                         body, port);
    srv_stop();
    unlink(body);
    assert_int_equal(st, 0);
    assert_int_equal(jl(out, NULL, "requests"), 100);
    assert_int_equal(jl(out, NULL, "errors"), 0);
    assert_int_equal(atomic_load(&srv.served), 100);
    assert_string_equal(srv.method, "PUT");
    assert_string_equal(srv.xt, "1");
    assert_int_equal(srv.body_len, sizeof data);
    assert_memory_equal(srv.body, data, sizeof srv.body);
    assert_int_equal(atomic_load(&srv.body_bytes), 100 * (long)sizeof data);
    free(out);
}

/* --timeout: the server stalls the second request for a second, past a
 * 0.2 s timeout: a timeout error, and the run goes on on a new
 * connection. */
static void test_load_counts_timeouts(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    srv.stall_at = 2;
    int port = srv_start(), st;
    char *out = run_load(&st,
                         "--json -c 1 -n 4 --timeout 0.2 "
                         "http://127.0.0.1:%d/",
                         port);
    srv_stop();
    assert_true(jl(out, "errors_by_kind", "timeout") >= 1);
    assert_true(jl(out, NULL, "errors") >=
                jl(out, "errors_by_kind", "timeout"));
    assert_true(jl(out, NULL, "requests") >= 1);
    assert_true(atomic_load(&srv.arrived) >= 2);
    free(out);
}

/* The server stalls one request for a second. Closed loop: one
 * connection waits, the others go on, and the stall is one sample in
 * many. Open loop at 1000/s: every request due during the stall on that
 * connection counts from when it was due, so p99 shows the stall. */
static void test_load_open_loop_shows_a_stall_closed_loop_hides(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    srv.stall_at = 300;
    int port = srv_start(), st;
    char *open = run_load(
        &st, "--json -t 1 -c 10 --rate 1000 -d 3 http://127.0.0.1:%d/", port);
    srv_stop();
    srv_reset(SRV_HTTP);
    srv.stall_at = 300;
    port = srv_start();
    char *closed =
        run_load(&st, "--json -t 1 -c 10 -d 3 http://127.0.0.1:%d/", port);
    srv_stop();
    double p99_open = json_num(open, "latency_us", "p99");
    double p99_closed = json_num(closed, "latency_us", "p99");
    print_message("p99: open loop %.0f us, closed loop %.0f us\n", p99_open,
                  p99_closed);
    assert_true(json_num(open, "latency_us", "max") >= 900000);
    assert_true(json_num(closed, "latency_us", "max") >= 900000);
    assert_true(p99_open >= 500000);
    assert_true(p99_closed * 5 < p99_open);
    /* and on its own: a guard as generous as a hang guard (the stall is
     * 1 s; a closed loop's p99 is a few ms), not a timing measured */
    assert_true(p99_closed < 200000);
    free(open);
    free(closed);
}

static void test_load_tcp_and_udp_echo(void **state)
{
    (void)state;
    srv_reset(SRV_TCP_ECHO);
    int port = srv_start(), st;
    char *out = run_load(
        &st, "--json -c 3 -p 4 -s 100 -n 2000 tcp://127.0.0.1:%d", port);
    srv_stop();
    assert_int_equal(jl(out, NULL, "requests"), 2000);
    assert_int_equal(jl(out, NULL, "errors"), 0);
    assert_int_equal(atomic_load(&srv.served), 2000 * 100);
    assert_int_equal(jl(out, NULL, "bytes"), 2000 * 100);
    free(out);

    srv_reset(SRV_UDP_ECHO);
    port = srv_start();
    out = run_load(&st, "--json -c 2 -s 32 -n 500 udp://127.0.0.1:%d", port);
    srv_stop();
    /* loopback UDP drops nothing here; a loss would be a timeout */
    assert_int_equal(
        jl(out, NULL, "requests") + jl(out, "errors_by_kind", "timeout"), 500);
    assert_true(jl(out, NULL, "requests") > 0);
    free(out);
}

/* A TCP echo server in a child process, on the child's main thread:
 * --server-pid reads /proc/PID/schedstat, the main thread's time. Its
 * port; *pid to kill and reap. */
static int child_echo_start(pid_t *pid)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    *pid = fork();
    assert_true(*pid >= 0);
    if (*pid == 0) {
        close(fds[0]);
        srv_reset(SRV_TCP_ECHO);
        srv.port_pipe = fds[1];
        weft_run(serve, NULL, NULL);
        _exit(0);
    }
    close(fds[1]);
    int port = 0;
    ssize_t n = read(fds[0], &port, sizeof port);
    close(fds[0]);
    if (n != sizeof port) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        fail_msg("the child echo server did not start");
    }
    return port;
}

static void child_echo_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* --warmup: the report covers the -d seconds after it; --server-pid adds
 * the server's CPU time per message and its share of a CPU; --spin only
 * changes how the generator waits. */
static void test_load_warmup_spin_and_server_cpu(void **state)
{
    (void)state;
    pid_t pid;
    int port = child_echo_start(&pid), st;
    char *out = run_load(&st,
                         "--json -t 1 -c 4 -s 64 -d 1 --warmup 0.5 --spin "
                         "--server-pid %d tcp://127.0.0.1:%d",
                         (int)pid, port);
    char *human = run_load(&st,
                           "-t 1 -c 2 -d 0.3 --server-pid %d "
                           "tcp://127.0.0.1:%d",
                           (int)pid, port);
    child_echo_stop(pid);
    assert_int_equal(st, 0);
    assert_true(jl(out, NULL, "requests") > 0);
    assert_int_equal(jl(out, NULL, "errors"), 0);
    double secs = json_num(out, NULL, "duration_s");
    assert_true(secs >= 0.95 && secs < 1.5); /* the window, not 1.5 s */
    assert_true(json_num(out, NULL, "warmup_s") == 0.5);
    assert_non_null(strstr(out, "\"spin\":true"));
    assert_int_equal(jl(out, NULL, "server_pid"), pid);
    double ns = json_num(out, NULL, "server_ns_per_msg");
    double util = json_num(out, NULL, "server_util");
    double cpu = json_num(out, NULL, "server_cpu_s");
    assert_true(ns > 0 && ns < 1e7); /* under 10 ms of CPU per echo */
    assert_true(util > 0 && util <= 1.05 && cpu > 0);
    /* the share and the time per message tell the same story */
    double want = ns * (double)jl(out, NULL, "requests") / 1e9;
    assert_true(cpu > want * 0.99 && cpu < want * 1.01);
    assert_non_null(strstr(human, "Server (pid"));
    assert_non_null(strstr(human, "of CPU per message"));
    free(out);
    free(human);
}

/* SIGUSR1: a MARK line on stderr at once, the count growing. */
static void test_load_sigusr1_prints_a_mark(void **state)
{
    (void)state;
    srv_reset(SRV_TCP_ECHO);
    int port = srv_start();
    char err[] = "/tmp/weft-load-test-mark.XXXXXX";
    int fd = mkstemp(err);
    assert_true(fd >= 0);
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s -q --json -t 1 -c 2 -d 2 tcp://127.0.0.1:%d "
             "2>%s >/dev/null & p=$!; sleep 0.7; kill -USR1 $p; sleep 0.3; "
             "kill -USR1 $p; wait $p",
             WEFT_LOAD_PATH, port, err);
    int st = system(cmd);
    srv_stop();
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    FILE *f = fopen(err, "r");
    assert_non_null(f);
    char line[256];
    unsigned long long msgs[2] = {0}, ns[2] = {0};
    int marks = 0;
    while (fgets(line, sizeof line, f))
        if (marks < 2 && sscanf(line, "MARK msgs=%llu ns=%llu", &msgs[marks],
                                &ns[marks]) == 2)
            marks++;
    fclose(f);
    unlink(err);
    assert_int_equal(marks, 2);
    assert_true(msgs[0] > 0 && msgs[1] > msgs[0]);
    assert_true(ns[1] > ns[0] + 100 * 1000000ull); /* 0.3 s apart */
}

static void test_load_ipv6(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    srv.host = "::1";
    atomic_store(&srv.port, 0);
    atomic_store(&srv.stop, false);
    assert_int_equal(pthread_create(&srv.thread, NULL, srv_thread, NULL), 0);
    for (int i = 0; i < 2000 && atomic_load(&srv.port) == 0; i++)
        usleep(1000);
    int port = atomic_load(&srv.port), st;
    if (port <= 0) {
        srv_stop();
        skip(); /* no IPv6 loopback here */
    }
    char *out = run_load(&st, "--json -c 2 -n 100 http://[::1]:%d/", port);
    srv_stop();
    assert_int_equal(jl(out, NULL, "requests"), 100);
    assert_non_null(strstr(out, "\"address\":\"::1\""));
    free(out);
}

/* --json: exactly one JSON object with the documented fields, each a
 * number or an object as documented (checked here always, and by
 * python3's json where there is one); the summary and --hist
 * otherwise. */
static void test_load_json_is_one_valid_object(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char hist[] = "/tmp/weft-load-test-hist.XXXXXX";
    int fd = mkstemp(hist);
    assert_true(fd >= 0);
    close(fd);
    char *out = run_load(&st,
                         "--json --hist %s -c 2 -n 200 "
                         "http://localhost:%d/x?y=\"z\"",
                         hist, port);
    char *human = run_load(&st, "-c 2 -n 100 http://127.0.0.1:%d/", port);
    srv_stop();
    const char *fields[] = {"requests", "errors",     "duration_s", "rps",
                            "bytes",    "p50",        "p90",        "p99",
                            "p999",     "max",        "connect",    "read",
                            "timeout",  "status_4xx", "status_5xx", "2xx"};
    const char *objects[] = {"latency_us", "errors_by_kind", "status"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        char k[64];
        snprintf(k, sizeof k, "\"%s\":", fields[i]);
        const char *v = strstr(out, k);
        if (!v)
            fail_msg("no %s in %s", k, out);
        v += strlen(k);
        const char *end = json_number(v);
        if (!end || (*end != ',' && *end != '}'))
            fail_msg("%s is not a number in %s", k, out);
    }
    for (size_t i = 0; i < sizeof objects / sizeof *objects; i++) {
        char k[64];
        snprintf(k, sizeof k, "\"%s\":{", objects[i]);
        if (!strstr(out, k))
            fail_msg("no object %s in %s", k, out);
    }
    assert_int_equal(out[0], '{');
    assert_true(json_valid(out));
    assert_non_null(strchr(out, '\n'));
    assert_int_equal(strchr(out, '\n')[1], 0); /* one line, one object */
    assert_int_equal(jl(out, NULL, "requests"), 200);
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json,sys; d = json.load(sys.stdin); "
                 "assert d[\"requests\"] == 200'");
        FILE *f = popen(cmd, "w");
        assert_non_null(f);
        fputs(out, f);
        assert_int_equal(pclose(f), 0);
    } else {
        print_message("no python3: the JSON checked here only\n");
    }
    assert_non_null(strstr(human, "Requests/sec:"));
    assert_non_null(strstr(human, "99.9%"));
    FILE *h = fopen(hist, "r");
    assert_non_null(h);
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof line, h))
        lines++;
    fclose(h);
    unlink(hist);
    assert_true(lines > 5);
    free(out);
    free(human);
}

/* --plot: with gnuplot, an SVG; without it (PATH without gnuplot), the
 * documented message on stderr, no file, and the run's own result. */
static void test_load_plot(void **state)
{
    (void)state;
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char plot[] = "/tmp/weft-load-test-plot.XXXXXX.svg";
    int fd = mkstemps(plot, 4);
    assert_true(fd >= 0);
    close(fd);
    unlink(plot);
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        char *out = run_load(&st,
                             "--json -c 2 -n 100 --plot %s "
                             "http://127.0.0.1:%d/",
                             plot, port);
        assert_int_equal(st, 0);
        assert_int_equal(jl(out, NULL, "requests"), 100);
        FILE *f = fopen(plot, "r");
        assert_non_null(f);
        char head[16] = {0};
        size_t n = fread(head, 1, sizeof head - 1, f);
        fclose(f);
        unlink(plot);
        assert_true(n >= 4);
        assert_true(strncmp(head, "<?xml", 5) == 0 ||
                    strncmp(head, "<svg", 4) == 0);
        free(out);
    } else {
        print_message("no gnuplot: only its absence is tested\n");
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "timeout 120 env PATH=/nonexistent %s -q --json -c 2 -n 50 "
             "--plot %s http://127.0.0.1:%d/ 2>&1",
             WEFT_LOAD_PATH, plot, port);
    char *out = run_cmd(&st, cmd);
    srv_stop();
    assert_int_equal(st, 0); /* the plot is an extra: the run succeeded */
    assert_int_equal(jl(out, NULL, "requests"), 50);
    assert_non_null(strstr(out, "weft-load: --plot needs gnuplot"));
    assert_int_equal(access(plot, F_OK), -1);
    free(out);
}

/* Without -q, on a terminal: the progress line, once a second, with the
 * run's elapsed time, requests/s, requests and errors so far (every
 * response here a 404: an error). script(1) gives weft-load a
 * pseudo-terminal. */
static void test_load_progress_line_on_a_terminal(void **state)
{
    (void)state;
    if (system("command -v script >/dev/null 2>&1") != 0) {
        print_message("no script(1) (util-linux): no pseudo-terminal\n");
        skip();
    }
    srv_reset(SRV_HTTP);
    int port = srv_start(), st;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "timeout 120 script -qec '%s --json -t 1 -c 2 -d 1.5 "
             "http://127.0.0.1:%d/404' /dev/null </dev/null",
             WEFT_LOAD_PATH, port);
    char *out = run_cmd(&st, cmd);
    srv_stop();
    assert_int_equal(st, 0);
    const char *p = strstr(out, "\r\033[K");
    assert_non_null(p);
    double secs = 0, rps = 0;
    unsigned long long req = 0, errs = 0;
    if (sscanf(p + 4, "%lfs %lf req/s %llu requests %llu errors", &secs, &rps,
               &req, &errs) != 4)
        fail_msg("no progress line in %s", out);
    assert_true(secs > 0.5 && rps > 0 && req > 0);
    assert_true(errs > 0 && errs <= req);
    /* a count along the way: no more than the run's whole */
    const char *json = strstr(out, "{\"mode\"");
    assert_non_null(json);
    assert_true((long)req <= jl(json, NULL, "requests"));
    assert_true((long)errs <= jl(json, NULL, "errors"));
    free(out);
}

/* A CA and a server certificate for 127.0.0.1 only, made by openssl in
 * a fresh directory (as tests/test_tls.c does); false without openssl. */
static bool make_certs(char *dir, size_t len)
{
    snprintf(dir, len, "%s/weft-load-tls.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return false;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'\n"
             "key() { openssl ecparam -name prime256v1 -genkey -noout "
             "-out $1; }\n"
             "key ca.key; openssl req -x509 -new -key ca.key -subj /CN=ca "
             "-days 30 -out ca.pem\n"
             "key srv.key; openssl req -new -key srv.key -subj /CN=srv "
             "-out srv.csr\n"
             "echo subjectAltName=IP:127.0.0.1 >srv.ext\n"
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
             "-CAcreateserial -days 30 -extfile srv.ext -out srv.pem\n",
             dir);
    FILE *sh = popen("sh >/dev/null 2>&1", "w");
    if (!sh)
        return false;
    fputs(cmd, sh);
    return pclose(sh) == 0;
}

static void rm_certs(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", dir);
}

/* https://: every request answered through TLS with --cacert; with
 * --insecure a name the certificate does not hold is accepted; without
 * either, a server the system does not trust fails every handshake, each
 * a connect error. */
static void test_load_https_verifies_or_counts_connect_errors(void **state)
{
    (void)state;
    char dir[512], cert[600], key[600];
    if (!make_certs(dir, sizeof dir)) {
        rm_certs(dir);
        skip(); /* no openssl command here */
    }
    snprintf(cert, sizeof cert, "%s/srv.pem", dir);
    snprintf(key, sizeof key, "%s/srv.key", dir);
    weft_tls_config *sc;
    assert_int_equal(weft_tls_config_server(&sc, cert, key), 0);
    srv_reset(SRV_HTTP);
    srv.tls = sc;
    int port = srv_start(), st;
    char *ok = run_load(&st,
                        "--json -c 4 -p 2 -n 400 --cacert %s/ca.pem "
                        "https://127.0.0.1:%d/",
                        dir, port);
    char *k =
        run_load(&st, "--json -c 2 -n 100 -k https://localhost:%d/", port);
    char *bad = run_load(&st, "--json -c 2 -n 4 https://127.0.0.1:%d/", port);
    srv_stop();
    weft_tls_config_free(sc);
    rm_certs(dir);
    assert_int_equal(jl(ok, NULL, "requests"), 400);
    assert_int_equal(jl(ok, NULL, "errors"), 0);
    assert_int_equal(jl(k, NULL, "requests"), 100);
    assert_int_equal(jl(k, NULL, "errors"), 0);
    assert_int_equal(atomic_load(&srv.served), 500);
    assert_int_equal(st, 1); /* none answered */
    assert_int_equal(jl(bad, "errors_by_kind", "connect"), 4);
    assert_int_equal(jl(bad, NULL, "requests"), 0);
    free(ok);
    free(k);
    free(bad);
}

/* A server that is not there: connect errors, and the run still ends. */
static void test_load_counts_connect_errors(void **state)
{
    (void)state;
    int port = weft_free_port(), st;
    char *out = run_load(&st, "--json -c 2 -n 4 http://127.0.0.1:%d/", port);
    assert_int_equal(st, 1); /* no request answered */
    assert_int_equal(jl(out, "errors_by_kind", "connect"), 4);
    assert_int_equal(jl(out, NULL, "requests"), 0);
    free(out);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_keeps_small_values_exact),
        cmocka_unit_test(test_hist_buckets_bound_the_relative_error),
        cmocka_unit_test(test_hist_percentiles_within_one_percent),
        cmocka_unit_test(test_hist_merge_equals_one_histogram),
        cmocka_unit_test(test_hist_empty_reports_zero),
        cmocka_unit_test(test_resp_content_length),
        cmocka_unit_test(test_resp_chunked_with_extensions_and_trailers),
        cmocka_unit_test(test_resp_pipelined_come_out_one_by_one),
        cmocka_unit_test(test_resp_split_at_every_byte_boundary),
        cmocka_unit_test(test_resp_connection_close_and_http10),
        cmocka_unit_test(test_resp_body_until_close),
        cmocka_unit_test(test_resp_cut_short_by_close),
        cmocka_unit_test(test_resp_without_body_and_interim),
        cmocka_unit_test(test_resp_malformed_is_an_error),
        cmocka_unit_test(test_json_checker_tells_valid_from_not),
#ifdef WEFT_LOAD_PATH
        cmocka_unit_test(test_load_counts_match_the_server),
        cmocka_unit_test(test_load_duration_counts_what_was_served),
        cmocka_unit_test(test_load_pipelined_chunked_and_closing),
        cmocka_unit_test(
            test_load_counts_errors_when_the_server_closes_mid_response),
        cmocka_unit_test(test_load_counts_status_4xx),
        cmocka_unit_test(test_load_counts_timeouts),
        cmocka_unit_test(test_load_counts_5xx_and_does_not_follow_redirects),
        cmocka_unit_test(test_load_sends_method_headers_and_body),
        cmocka_unit_test(test_load_open_loop_shows_a_stall_closed_loop_hides),
        cmocka_unit_test(test_load_tcp_and_udp_echo),
        cmocka_unit_test(test_load_warmup_spin_and_server_cpu),
        cmocka_unit_test(test_load_sigusr1_prints_a_mark),
        cmocka_unit_test(test_load_ipv6),
        cmocka_unit_test(test_load_json_is_one_valid_object),
        cmocka_unit_test(test_load_plot),
        cmocka_unit_test(test_load_progress_line_on_a_terminal),
        cmocka_unit_test(test_load_counts_connect_errors),
        cmocka_unit_test(test_load_https_verifies_or_counts_connect_errors),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
