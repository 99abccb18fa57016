/* SPDX-License-Identifier: MIT */
/*
 * resp.c - requests as Redis reads them (networking.c's
 * processMultibulkBuffer and processInlineBuffer, 7.0): RESP2 arrays of
 * bulk strings, and inline requests (a line of words, quotes allowed, as
 * sdssplitargs splits them). The parser is stateless: it is given what
 * the connection has buffered and says how many bytes one request takes,
 * or that more are needed, or that the bytes are malformed (the error
 * text is Redis's; the server replies with it and closes, as Redis does).
 * A request waiting for its bytes is bounded by the limits: a header line
 * or inline request of 64 KB, a bulk of proto-max-bulk-len.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

bool kv_parse_ll(const char *p, size_t n, long long *v)
{
    if (n == 0 || n > 20)
        return false;
    size_t i = 0;
    bool neg = false;
    if (p[0] == '-') {
        neg = true;
        if (++i == n)
            return false;
    }
    if (p[i] == '0')
        return n == 1 ? (*v = 0, true) : false;
    if (p[i] < '1' || p[i] > '9')
        return false;
    if (n - i <= 18) {
        /* Up to 18 digits cannot overflow: the common case (every length
         * of a request's header), without the overflow test per digit. */
        long long x = 0;
        for (; i < n; i++) {
            unsigned d = (unsigned)(p[i] - '0');
            if (d > 9)
                return false;
            x = x * 10 + (long long)d;
        }
        *v = neg ? -x : x;
        return true;
    }
    unsigned long long u = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (u > (ULLONG_MAX - d) / 10)
            return false;
        u = u * 10 + d;
    }
    if (neg) {
        if (u > (unsigned long long)LLONG_MAX + 1)
            return false;
        *v = u == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)u;
    } else {
        if (u > (unsigned long long)LLONG_MAX)
            return false;
        *v = (long long)u;
    }
    return true;
}

static int req_push(struct kv_req *req, const char *p, size_t n)
{
    if (req->argc == req->cap) {
        int cap = req->cap ? req->cap * 2 : 8;
        struct kv_arg *a = realloc(req->argv, (size_t)cap * sizeof *a);
        if (!a)
            abort(); /* as Redis: out of memory is fatal */
        req->argv = a;
        req->cap = cap;
    }
    req->argv[req->argc++] = (struct kv_arg){p, n};
    return 0;
}

static bool is_hex(char c)
{
    return isxdigit((unsigned char)c) != 0;
}

static int hex_val(char c)
{
    return c <= '9' ? c - '0' : (tolower((unsigned char)c) - 'a' + 10);
}

/* sdssplitargs on a NUL-terminated line; the words go to out (as big as
 * the line). false: unbalanced quotes. */
static bool split_words(const char *p, char *out, struct kv_req *req)
{
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            return true;
        bool inq = false, insq = false, done = false;
        char *w = out;
        while (!done) {
            if (inq) {
                if (p[0] == '\\' && p[1] == 'x' && is_hex(p[2]) &&
                    is_hex(p[3])) {
                    *out++ = (char)(hex_val(p[2]) * 16 + hex_val(p[3]));
                    p += 3;
                } else if (p[0] == '\\' && p[1]) {
                    p++;
                    char c = *p;
                    *out++ = c == 'n'   ? '\n'
                             : c == 'r' ? '\r'
                             : c == 't' ? '\t'
                             : c == 'b' ? '\b'
                             : c == 'a' ? '\a'
                                        : c;
                } else if (*p == '"') {
                    /* a closing quote must be followed by a blank or the
                     * end */
                    if (p[1] && !isspace((unsigned char)p[1]))
                        return false;
                    done = true;
                } else if (!*p) {
                    return false;
                } else {
                    *out++ = *p;
                }
            } else if (insq) {
                if (p[0] == '\\' && p[1] == '\'') {
                    p++;
                    *out++ = '\'';
                } else if (*p == '\'') {
                    if (p[1] && !isspace((unsigned char)p[1]))
                        return false;
                    done = true;
                } else if (!*p) {
                    return false;
                } else {
                    *out++ = *p;
                }
            } else {
                switch (*p) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                case '\0':
                    done = true;
                    break;
                case '"':
                    inq = true;
                    break;
                case '\'':
                    insq = true;
                    break;
                default:
                    *out++ = *p;
                }
            }
            if (*p)
                p++;
        }
        req_push(req, w, (size_t)(out - w));
    }
}

static int parse_inline(const char *buf, size_t len,
                        const struct kv_limits *lim, struct kv_req *req,
                        size_t *used, const char **err)
{
    const char *nl = memchr(buf, '\n', len);
    if (!nl) {
        if (len > lim->max_inline) {
            *err = "ERR Protocol error: too big inline request";
            return RESP_ERROR;
        }
        return RESP_MORE;
    }
    size_t n = (size_t)(nl - buf);
    *used = n + 1;
    if (n && buf[n - 1] == '\r')
        n--;
    if (req->scratch_cap < 2 * (n + 1)) {
        free(req->scratch);
        req->scratch_cap = 2 * (n + 1);
        req->scratch = malloc(req->scratch_cap);
        if (!req->scratch)
            abort();
    }
    memcpy(req->scratch, buf, n);
    req->scratch[n] = '\0';
    if (!split_words(req->scratch, req->scratch + n + 1, req)) {
        req->argc = 0;
        *err = "ERR Protocol error: unbalanced quotes in request";
        return RESP_ERROR;
    }
    return RESP_REQUEST;
}

/* A "<c><number>\r\n" header at buf[pos]: the number, and pos past it.
 * RESP_MORE, RESP_ERROR (too long), or RESP_REQUEST. */
static int header(const char *buf, size_t len, size_t *pos,
                  const struct kv_limits *lim, const char **num, size_t *numlen,
                  const char *too_big, const char **err)
{
    const char *cr = memchr(buf + *pos, '\r', len - *pos);
    if (!cr) {
        if (len - *pos > lim->max_inline) {
            *err = too_big;
            return RESP_ERROR;
        }
        return RESP_MORE;
    }
    size_t at = (size_t)(cr - buf);
    if (at + 2 > len) /* the '\n' after it */
        return RESP_MORE;
    *num = buf + *pos + 1;
    *numlen = at - *pos - 1;
    *pos = at + 2;
    return RESP_REQUEST;
}

static int parse_multibulk(const char *buf, size_t len,
                           const struct kv_limits *lim, struct kv_req *req,
                           size_t *used, const char **err)
{
    size_t pos = 0, numlen;
    const char *num;
    long long count, blen;
    int rc = header(buf, len, &pos, lim, &num, &numlen,
                    "ERR Protocol error: too big mbulk count string", err);
    if (rc != RESP_REQUEST)
        return rc;
    if (!kv_parse_ll(num, numlen, &count) || count > lim->max_argc) {
        *err = "ERR Protocol error: invalid multibulk length";
        return RESP_ERROR;
    }
    for (long long i = 0; i < count; i++) {
        size_t start = pos;
        if (pos >= len)
            return RESP_MORE;
        rc = header(buf, len, &pos, lim, &num, &numlen,
                    "ERR Protocol error: too big bulk count string", err);
        if (rc != RESP_REQUEST)
            return rc;
        if (buf[start] != '$') {
            snprintf(req->errbuf, sizeof req->errbuf,
                     "ERR Protocol error: expected '$', got '%c'", buf[start]);
            *err = req->errbuf;
            return RESP_ERROR;
        }
        if (!kv_parse_ll(num, numlen, &blen) || blen < 0 ||
            blen > lim->max_bulk) {
            *err = "ERR Protocol error: invalid bulk length";
            return RESP_ERROR;
        }
        if (len - pos < (size_t)blen + 2)
            return RESP_MORE;
        req_push(req, buf + pos, (size_t)blen);
        pos += (size_t)blen + 2; /* Redis skips the CRLF unread */
    }
    *used = pos;
    return RESP_REQUEST;
}

int resp_parse(const char *buf, size_t len, const struct kv_limits *lim,
               struct kv_req *req, size_t *used, const char **err)
{
    req->argc = 0;
    if (len == 0)
        return RESP_MORE;
    int rc = buf[0] == '*' ? parse_multibulk(buf, len, lim, req, used, err)
                           : parse_inline(buf, len, lim, req, used, err);
    if (rc != RESP_REQUEST)
        req->argc = 0;
    return rc;
}

void resp_req_free(struct kv_req *req)
{
    free(req->argv);
    free(req->scratch);
    *req = (struct kv_req){0};
}
