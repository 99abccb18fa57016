/* SPDX-License-Identifier: MIT */
/*
 * perf/http_parse.h - HTTP/1.x message heads, parsed in place: no copy,
 * no allocation, never a byte read outside the buffer given.
 *
 * A head is what weft_stream_recv_until(s, buf, max, "\r\n\r\n", 4)
 * returns: the start line and the header lines, separated by CRLF,
 * without the empty line that ends the head. http_head_end finds that
 * end in bytes read some other way.
 *
 * The request parser serves perf/http_weft.c; a response parser (for a
 * load generator) belongs beside it, sharing the header-line code.
 */
#ifndef WEFT_PERF_HTTP_PARSE_H
#define WEFT_PERF_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS 32

struct http_span { /* bytes of the caller's buffer */
    const char *p;
    size_t n;
};

struct http_header {
    struct http_span name, value; /* value without surrounding spaces */
};

struct http_request {
    struct http_span method, target;
    int minor;              /* HTTP/1.<minor>: 0 or 1 ... 9 */
    int64_t content_length; /* -1: no Content-Length */
    bool keep_alive;        /* Connection, else the version's default */
    size_t nheaders;
    struct http_header headers[HTTP_MAX_HEADERS];
};

/* The length of the head in buf (up to and with its "\r\n\r\n"), or 0 if
 * buf[0..n) does not hold a whole head yet. */
size_t http_head_end(const char *buf, size_t n);

/* Parse a request head (see above). 0; -EBADMSG if it is malformed (a bad
 * request line or header line, a bare CR or LF, a bad or conflicting
 * Content-Length); -E2BIG with more than HTTP_MAX_HEADERS header lines.
 * On error *req is unspecified. */
int http_parse_request(const char *buf, size_t n, struct http_request *req);

#endif
