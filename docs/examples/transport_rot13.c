/* SPDX-License-Identifier: MIT */
/*
 * transport_rot13.c - a transport of your own (<weft/transport.h>): rot13
 * over another stream, in four callbacks. The stream layer around it
 * gives it the rest of <weft/stream.h>: recv_until and its read-ahead,
 * -EBUSY, and a close that cuts short a callback blocked inside and waits
 * for it. It prints:
 *
 *     wire: "Uryyb, jbeyq!\nFrpbaq yvar\n"
 *     line: "Hello, world!"
 *     line: "Second line"
 *     close while blocked: the receive gave -EBADF
 *     the transport was closed 1 time
 *
 * Exits 0 when each step saw what it expected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

/* ---- the transport ---- */

struct rot13 {
    weft_stream *inner; /* owned: closed with the rot13 stream */
    int *closes;        /* counts rot_close, for the example's check */
    char out[4096];     /* the encoded bytes of one send */
};

static void rot13(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'a' && c <= 'z')
            p[i] = (char)('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
            p[i] = (char)('A' + (c - 'A' + 13) % 26);
    }
}

/* Some bytes (1..max), 0 at the end, or -errno. It may block in any weft
 * call: a close of the rot13 stream cuts that call short. */
static ssize_t rot_recv(void *impl, void *buf, size_t max)
{
    struct rot13 *r = impl;
    ssize_t n = weft_stream_recv(r->inner, buf, max);
    if (n > 0)
        rot13(buf, (size_t)n);
    return n;
}

/* Takes some of the bytes; the stream layer calls again for the rest. */
static ssize_t rot_send(void *impl, const void *buf, size_t len)
{
    struct rot13 *r = impl;
    size_t n = len < sizeof r->out ? len : sizeof r->out;
    memcpy(r->out, buf, n);
    rot13(r->out, n);
    ssize_t rc = weft_stream_send(r->inner, r->out, n);
    return rc < 0 ? rc : (ssize_t)n;
}

static int rot_send_eof(void *impl)
{
    return weft_stream_send_eof(((struct rot13 *)impl)->inner);
}

/* Called once, when no callback is under way any more. */
static int rot_close(void *impl)
{
    struct rot13 *r = impl;
    int rc = weft_stream_close(r->inner);
    ++*r->closes;
    free(r);
    return rc;
}

static const weft_transport rot13_transport = {
    .recv = rot_recv,
    .send = rot_send,
    .send_eof = rot_send_eof,
    .close = rot_close,
};

/* A rot13 stream over inner, which it takes (closed on failure too). */
static int rot13_wrap(weft_stream **out, weft_stream *inner, int *closes)
{
    struct rot13 *r = malloc(sizeof *r);
    if (!r) {
        weft_stream_close(inner);
        return -ENOMEM;
    }
    r->inner = inner;
    r->closes = closes;
    return weft_stream_new(out, &rot13_transport, r); /* fails: rot_close */
}

/* ---- using it ---- */

static void print_escaped(const char *label, const char *p, size_t n)
{
    printf("%s: \"", label);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            printf("\\n");
        else
            putchar(p[i]);
    }
    printf("\"\n");
}

static ssize_t blocked_rc;

static int blocked_reader(void *arg)
{
    char buf[64];
    blocked_rc = weft_stream_recv(arg, buf, sizeof buf); /* nothing comes */
    return 0;
}

static int lines(weft_stream *s, weft_stream *peer)
{
    static const char text[] = "Hello, world!\nSecond line\n";
    const size_t n = sizeof text - 1;
    char wire[64], line[64];

    /* What s sends is rot13 on the wire... */
    ssize_t rc = weft_stream_send(s, text, n);
    if (rc == (ssize_t)n)
        rc = weft_stream_recv_exactly(peer, wire, n);
    if (rc != (ssize_t)n)
        return rc < 0 ? (int)rc : -EIO;
    print_escaped("wire", wire, n);
    /* ...and rot13 from the peer reads back as text, line by line: one
     * receive brought both lines, the second waits in the read-ahead. */
    rc = weft_stream_send(peer, wire, n);
    for (int i = 0; i < 2 && rc >= 0; i++) {
        rc = weft_stream_recv_until(s, line, sizeof line, "\n", 1);
        if (rc >= 0)
            print_escaped("line", line, (size_t)rc);
    }
    return rc < 0 ? (int)rc : 0;
}

static int root(void *arg)
{
    (void)arg;
    weft_stream *inner, *peer, *s;
    int closes = 0;
    int rc = weft_stream_pair(&inner, &peer);
    if (rc < 0)
        return rc;
    rc = rot13_wrap(&s, inner, &closes);
    if (rc < 0) {
        weft_stream_close(peer);
        return rc;
    }
    rc = lines(s, peer);

    /* A task blocked in rot_recv (in the inner stream's receive): the
     * close cuts that receive short, the task's call returns -EBADF,
     * and only then does rot_close run. */
    weft_group g;
    weft_group_enter(&g);
    if (rc == 0)
        rc = weft_group_spawn(&g, blocked_reader, s);
    if (rc == 0)
        rc = weft_sleep(10 * WEFT_MSEC); /* let it block */
    int close_rc = weft_stream_close(s);
    rc = weft_group_exit(&g, rc);
    if (rc == 0) {
        printf("close while blocked: the receive gave %s\n",
               blocked_rc == -EBADF ? "-EBADF" : "something else");
        printf("the transport was closed %d time%s\n", closes,
               closes == 1 ? "" : "s");
        if (blocked_rc != -EBADF || closes != 1 || close_rc != 0)
            rc = -EIO;
    }
    weft_stream_close(peer);
    return rc;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "transport_rot13: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
