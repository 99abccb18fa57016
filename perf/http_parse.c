/* SPDX-License-Identifier: MIT */
/*
 * perf/http_parse.c - HTTP/1.x request heads (RFC 9112), parsed in place.
 * The header-line code is shared with weft-load's response parser
 * (tools/weft-load/http_resp.c).
 */
#include "http_parse.h"

#include <errno.h>
#include <string.h>

size_t http_head_end(const char *buf, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

/* RFC 9110 tchar: the characters of a token (method, header name). */
static bool is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte of a field value (with obs-text), but not CR or LF. */
static bool is_vchar(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

bool http_span_is(struct http_span s, const char *lower)
{
    size_t n = strlen(lower);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)lower[i])
            return false;
    }
    return true;
}

/* The next line of head[*at..n) (without its CRLF); false at the end. A
 * bare CR or LF makes the line invalid (len set to SIZE_MAX). */
static bool next_line(const char *head, size_t n, size_t *at,
                      struct http_span *line)
{
    if (*at > n)
        return false;
    const char *p = head + *at;
    size_t left = n - *at, len = 0;
    while (len < left && p[len] != '\r' && p[len] != '\n')
        len++;
    line->p = p;
    line->n = len;
    if (len == left) {
        *at = n + 1; /* the last line: no CRLF after it */
    } else if (len + 1 < left && p[len] == '\r' && p[len + 1] == '\n') {
        *at += len + 2;
    } else {
        line->n = SIZE_MAX;
        *at = n + 1;
    }
    return true;
}

int http_parse_header(struct http_span line, struct http_header *h)
{
    size_t i = 0;
    while (i < line.n && is_tchar((unsigned char)line.p[i]))
        i++;
    if (i == 0 || i == line.n || line.p[i] != ':')
        return -EBADMSG;
    h->name = (struct http_span){line.p, i};
    size_t b = i + 1, e = line.n;
    while (b < e && (line.p[b] == ' ' || line.p[b] == '\t'))
        b++;
    while (e > b && (line.p[e - 1] == ' ' || line.p[e - 1] == '\t'))
        e--;
    for (size_t k = b; k < e; k++)
        if (!is_vchar((unsigned char)line.p[k]))
            return -EBADMSG;
    h->value = (struct http_span){line.p + b, e - b};
    return 0;
}

int http_parse_length(struct http_span v, int64_t *out)
{
    if (v.n == 0 || v.n > 18)
        return -EBADMSG;
    int64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -EBADMSG;
        x = x * 10 + (v.p[i] - '0');
    }
    *out = x;
    return 0;
}

void http_parse_connection(struct http_span v, bool *close, bool *keep)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t b = i;
        while (i < v.n && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        struct http_span t = {v.p + b, i - b};
        if (http_span_is(t, "close"))
            *close = true;
        else if (http_span_is(t, "keep-alive"))
            *keep = true;
    }
}

/* "METHOD SP target SP HTTP/1.d" */
static int parse_request_line(struct http_span l, struct http_request *req)
{
    size_t i = 0;
    while (i < l.n && is_tchar((unsigned char)l.p[i]))
        i++;
    if (i == 0 || i == l.n || l.p[i] != ' ')
        return -EBADMSG;
    req->method = (struct http_span){l.p, i};
    size_t t = ++i;
    while (i < l.n && (unsigned char)l.p[i] > 0x20 && l.p[i] != 0x7f)
        i++;
    if (i == t || i == l.n || l.p[i] != ' ')
        return -EBADMSG;
    req->target = (struct http_span){l.p + t, i - t};
    struct http_span v = {l.p + i + 1, l.n - i - 1};
    if (v.n != 8 || memcmp(v.p, "HTTP/1.", 7) != 0 || v.p[7] < '0' ||
        v.p[7] > '9')
        return -EBADMSG;
    req->minor = v.p[7] - '0';
    return 0;
}

int http_parse_request(const char *buf, size_t n, struct http_request *req)
{
    size_t at = 0;
    struct http_span line;
    memset(req, 0, sizeof *req);
    req->content_length = -1;
    if (!next_line(buf, n, &at, &line) || line.n == SIZE_MAX)
        return -EBADMSG;
    int rc = parse_request_line(line, req);
    if (rc < 0)
        return rc;
    bool close = false, keep = false;
    while (next_line(buf, n, &at, &line)) {
        if (line.n == SIZE_MAX)
            return -EBADMSG;
        if (req->nheaders == HTTP_MAX_HEADERS)
            return -E2BIG;
        struct http_header *h = &req->headers[req->nheaders++];
        if ((rc = http_parse_header(line, h)) < 0)
            return rc;
        if (http_span_is(h->name, "content-length")) {
            int64_t len;
            if (http_parse_length(h->value, &len) < 0 ||
                (req->content_length >= 0 && req->content_length != len))
                return -EBADMSG;
            req->content_length = len;
        } else if (http_span_is(h->name, "connection")) {
            http_parse_connection(h->value, &close, &keep);
        }
    }
    req->keep_alive = close ? false : keep || req->minor >= 1;
    return 0;
}
