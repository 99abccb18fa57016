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
 * The request parser serves perf/http_weft.c; the header-line calls
 * below are shared with weft-load's response parser
 * (tools/weft-load/http_resp.h), which parses responses as they arrive.
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

/* ---- header lines, shared by the request and response parsers ---- */

/* A span equals lower, ASCII case-insensitively (lower is lower case). */
bool http_span_is(struct http_span s, const char *lower);
/* "name: value" (a line without its CRLF) with optional spaces and tabs
 * around the value: 0, or -EBADMSG (no token before ':', a control
 * byte in the value). */
int http_parse_header(struct http_span line, struct http_header *h);
/* Content-Length: 1*DIGIT, at most 18 digits (no overflow): 0 or
 * -EBADMSG. */
int http_parse_length(struct http_span v, int64_t *out);
/* Connection: a comma-separated list of tokens; sets *close for "close"
 * and *keep for "keep-alive" (the caller decides that close wins). */
void http_parse_connection(struct http_span v, bool *close, bool *keep);

#endif
