/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/http_resp.c - the response parser (http_resp.h): a
 * state machine over lines and body bytes. Header lines are checked by
 * perf/http_parse.c's code, the same as the server's requests.
 */
#include "http_resp.h"

#include "perf/http_parse.h"

#include <errno.h>
#include <string.h>

enum {
    S_STATUS,     /* the status line */
    S_HEADER,     /* header lines, up to the empty line */
    S_BODY,       /* Content-Length bytes */
    S_CHUNK_SIZE, /* hex size [; extensions] */
    S_CHUNK_DATA, /* the chunk's bytes */
    S_CHUNK_END,  /* the CRLF after them */
    S_TRAILER,    /* trailer lines, up to the empty line */
    S_UNTIL_CLOSE /* every byte until the connection closes */
};

void http_resp_start(struct http_resp *r, bool head)
{
    memset(r, 0, sizeof *r);
    r->head = head;
    r->content_length = -1;
    r->state = S_STATUS;
}

/* The next whole line of buf[*at..n), without its LF and an optional CR
 * before it; false if it has not arrived whole. */
static bool take_line(const char *buf, size_t n, size_t *at,
                      struct http_span *line)
{
    const char *p = buf + *at;
    const char *lf = memchr(p, '\n', n - *at);
    if (!lf)
        return false;
    size_t len = (size_t)(lf - p);
    *at += len + 1;
    if (len && p[len - 1] == '\r')
        len--;
    *line = (struct http_span){p, len};
    return true;
}

/* "HTTP/1.d SP 3DIGIT [SP reason]" */
static int status_line(struct http_resp *r, struct http_span l)
{
    if (l.n < 12 || memcmp(l.p, "HTTP/1.", 7) != 0 || l.p[7] < '0' ||
        l.p[7] > '9' || l.p[8] != ' ')
        return -EBADMSG;
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (l.p[i] < '0' || l.p[i] > '9')
            return -EBADMSG;
        s = s * 10 + (l.p[i] - '0');
    }
    if (s < 100 || (l.n > 12 && l.p[12] != ' '))
        return -EBADMSG;
    for (size_t i = 13; i < l.n; i++) {
        unsigned char c = (unsigned char)l.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -EBADMSG;
    }
    r->status = s;
    r->minor = l.p[7] - '0';
    return 0;
}

/* Transfer-Encoding: chunked counts only as the last coding. */
static bool ends_chunked(struct http_span v)
{
    size_t e = v.n;
    while (e && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
        e--;
    size_t b = e;
    while (b && v.p[b - 1] != ',' && v.p[b - 1] != ' ' && v.p[b - 1] != '\t')
        b--;
    return http_span_is((struct http_span){v.p + b, e - b}, "chunked");
}

static int header_line(struct http_resp *r, struct http_span l)
{
    struct http_header h;
    if (http_parse_header(l, &h) < 0)
        return -EBADMSG;
    if (h.name.n == 14 && http_span_is(h.name, "content-length")) {
        int64_t len;
        if (http_parse_length(h.value, &len) < 0 ||
            (r->content_length >= 0 && r->content_length != len))
            return -EBADMSG;
        r->content_length = len;
    } else if (h.name.n == 10 && http_span_is(h.name, "connection")) {
        http_parse_connection(h.value, &r->conn_close, &r->conn_keep);
    } else if (h.name.n == 17 && http_span_is(h.name, "transfer-encoding")) {
        /* A later Transfer-Encoding line adds codings after these. */
        r->chunked = ends_chunked(h.value);
        if (!r->chunked)
            r->content_length = -2; /* another coding: until the close */
    }
    return 0;
}

/* The empty line after the headers: what kind of body follows. */
static int head_done(struct http_resp *r)
{
    r->keep_alive = !r->conn_close && (r->conn_keep || r->minor >= 1);
    if (r->status < 200 && r->status != 101) {
        bool head = r->head; /* interim: the real response follows */
        http_resp_start(r, head);
        r->started = true;
        return HTTP_RESP_MORE;
    }
    if (r->head || r->status == 204 || r->status == 304 || r->status == 101)
        return HTTP_RESP_DONE;
    if (r->chunked) {
        r->content_length = -1;
        r->state = S_CHUNK_SIZE;
        return HTTP_RESP_MORE;
    }
    if (r->content_length == -2)
        r->content_length = -1;
    else if (r->content_length >= 0) {
        if (r->content_length == 0)
            return HTTP_RESP_DONE;
        r->left = (uint64_t)r->content_length;
        r->state = S_BODY;
        return HTTP_RESP_MORE;
    }
    r->keep_alive = false;
    r->state = S_UNTIL_CLOSE;
    return HTTP_RESP_MORE;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "1*HEXDIG [BWS ; extensions]": at most 15 digits (no overflow). */
static int chunk_size(struct http_resp *r, struct http_span l)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; i < l.n && hex(l.p[i]) >= 0; i++) {
        if (i == 15)
            return -EBADMSG;
        x = x << 4 | (uint64_t)hex(l.p[i]);
    }
    if (i == 0)
        return -EBADMSG;
    while (i < l.n && (l.p[i] == ' ' || l.p[i] == '\t'))
        i++;
    if (i < l.n && l.p[i] != ';')
        return -EBADMSG;
    for (; i < l.n; i++)
        if ((unsigned char)l.p[i] < 0x20 && l.p[i] != '\t')
            return -EBADMSG;
    r->left = x;
    r->state = x ? S_CHUNK_DATA : S_TRAILER;
    return 0;
}

/* Body bytes of buf[*at..n), up to r->left. */
static void take_body(struct http_resp *r, size_t n, size_t *at)
{
    size_t k = n - *at;
    if (r->state != S_UNTIL_CLOSE && k > r->left)
        k = (size_t)r->left;
    *at += k;
    r->body += k;
    if (r->state != S_UNTIL_CLOSE)
        r->left -= k;
}

/* One line in a line state: HTTP_RESP_MORE to go on, DONE, or -EBADMSG. */
static int on_line(struct http_resp *r, struct http_span l)
{
    switch (r->state) {
    case S_STATUS:
        r->state = S_HEADER;
        return status_line(r, l);
    case S_HEADER:
        return l.n ? header_line(r, l) : head_done(r);
    case S_CHUNK_SIZE:
        return chunk_size(r, l);
    case S_CHUNK_END:
        r->state = S_CHUNK_SIZE;
        return l.n ? -EBADMSG : HTTP_RESP_MORE;
    default: /* S_TRAILER: fields are skipped, but must be fields */
        if (!l.n)
            return HTTP_RESP_DONE;
        struct http_header h;
        return http_parse_header(l, &h) < 0 ? -EBADMSG : HTTP_RESP_MORE;
    }
}

int http_resp_feed(struct http_resp *r, const char *buf, size_t n, size_t *used)
{
    size_t at = 0;
    int rc = HTTP_RESP_MORE;
    while (rc == HTTP_RESP_MORE && at < n) {
        r->started = true;
        if (r->state == S_BODY || r->state == S_CHUNK_DATA ||
            r->state == S_UNTIL_CLOSE) {
            take_body(r, n, &at);
            if (r->state == S_UNTIL_CLOSE || r->left)
                continue;
            if (r->state == S_BODY)
                rc = HTTP_RESP_DONE;
            else
                r->state = S_CHUNK_END;
            continue;
        }
        struct http_span l;
        if (!take_line(buf, n, &at, &l))
            break;
        rc = on_line(r, l);
    }
    *used = at;
    return rc;
}

int http_resp_eof(struct http_resp *r, size_t pending)
{
    if (r->state == S_UNTIL_CLOSE)
        return HTTP_RESP_DONE;
    return r->started || pending ? -ENODATA : 0;
}
