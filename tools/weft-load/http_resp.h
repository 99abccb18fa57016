/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/http_resp.h - HTTP/1.x responses parsed as they arrive
 * (RFC 9112), in place: no copy, no allocation, never a byte read
 * outside the buffer given.
 *
 * The caller reads into a buffer and feeds it; the parser consumes what
 * it can: whole lines of the head, chunk sizes and trailers, and any
 * number of body bytes. A line that has not arrived whole is left
 * unconsumed: the caller keeps those bytes at the front of its buffer
 * and reads more after them. A feed stops at the end of each response,
 * so pipelined responses come out one by one.
 *
 * Handles Content-Length, chunked bodies (extensions and trailers
 * skipped), bodies delimited by the close of the connection, responses
 * without a body (HEAD, 1xx, 204, 304; interim 1xx responses are skipped)
 * and Connection: close / keep-alive and HTTP/1.0's default.
 */
#ifndef WEFT_LOAD_HTTP_RESP_H
#define WEFT_LOAD_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    HTTP_RESP_MORE = 0, /* everything usable consumed: feed more bytes */
    HTTP_RESP_DONE = 1, /* a response ended: its fields are below */
};

struct http_resp {
    int status;             /* 100 .. 999 */
    int minor;              /* HTTP/1.<minor> */
    bool keep_alive;        /* false: the connection ends after it */
    bool chunked;           /* Transfer-Encoding: ..., chunked */
    int64_t content_length; /* -1: none */
    uint64_t body;          /* body bytes so far (without chunk framing) */
    /* the parser's own */
    bool head, started, conn_close, conn_keep;
    unsigned state;
    uint64_t left; /* of the body or of the chunk */
};

/* Start on a new response; head: it answers a HEAD request (no body). */
void http_resp_start(struct http_resp *r, bool head);

/*
 * Consume what can be consumed of buf[0..n): *used says how much.
 * HTTP_RESP_DONE: one response ended at buf[*used] (call
 * http_resp_start before feeding the bytes after it, the next pipelined
 * response). HTTP_RESP_MORE: buf[*used..n) is the start of a line that
 * has not arrived whole; keep it and feed it again with more after it.
 * -EBADMSG: malformed (a bad status line, header line, chunk size or a
 * conflicting Content-Length): the connection is unusable.
 */
int http_resp_feed(struct http_resp *r, const char *buf, size_t n,
                   size_t *used);

/*
 * The peer closed the connection, with pending bytes fed but left
 * unconsumed: HTTP_RESP_DONE if that ends the response (a body delimited
 * by the close), 0 if no response had begun (nothing pending either), and
 * -ENODATA if a response was cut short.
 */
int http_resp_eof(struct http_resp *r, size_t pending);

#endif
