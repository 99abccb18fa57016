/* SPDX-License-Identifier: MIT */
/*
 * api/fs/file_stream.c - a weft_file as a weft_stream, so that files and
 * sockets compose (copy a file to a connection with the same calls).
 *
 * recv reads at the file position (one operation: some bytes, 0 at the
 * end); a recv of fewer than the file's read-ahead size (64 KiB by
 * default) reads that much into a buffer and serves the next recvs from
 * it. send writes all of its bytes at the position. There is no
 * half-close (send_eof is -ENOTSUP). close closes the file.
 */
#include "api/fs/fs_impl.h"
#include "api/stream/stream_impl.h"

#include <stdlib.h>
#include <string.h>

struct wf_file_stream {
    weft_stream base;
    weft_file *f;
    char *ahead; /* read-ahead: bytes [apos, apos + alen) not yet given */
    size_t apos, alen;
};

static struct wf_file_stream *fs(weft_stream *s)
{
    return (struct wf_file_stream *)s;
}

/* Read once at the position into buf; move the position. */
static ssize_t read_some(weft_file *f, void *buf, size_t max)
{
    int rc = wf_file_enter(f, 0);
    if (rc < 0)
        return rc;
    ssize_t n = wf_file_pos_lock(f);
    if (n == 0) {
        n = wf_file_read_at(f, buf, max, f->pos, true);
        if (n > 0)
            f->pos += n;
        wf_file_pos_unlock(f);
    }
    wf_file_leave(f);
    return n;
}

static ssize_t file_recv(weft_stream *s, void *buf, size_t max)
{
    struct wf_file_stream *x = fs(s);
    size_t ra = x->f->readahead;
    if (x->alen == 0 && (max >= ra || ra == SIZE_MAX || max == 0))
        return read_some(x->f, buf, max);
    if (x->alen == 0) {
        if (!x->ahead && !(x->ahead = wf_malloc(ra)))
            return -ENOMEM;
        ssize_t n = read_some(x->f, x->ahead, ra);
        if (n <= 0)
            return n;
        x->apos = 0;
        x->alen = (size_t)n;
    }
    size_t n = x->alen < max ? x->alen : max;
    memcpy(buf, x->ahead + x->apos, n);
    x->apos += n;
    x->alen -= n;
    return (ssize_t)n;
}

static ssize_t file_send(weft_stream *s, const void *buf, size_t len)
{
    return weft_file_write(fs(s)->f, buf, len);
}

static void file_kill(weft_stream *s)
{
    wf_file_kill(fs(s)->f);
}

static int file_close(weft_stream *s)
{
    struct wf_file_stream *x = fs(s);
    wf_free(x->ahead);
    return wf_file_close_now(x->f);
}

static int file_fd(const weft_stream *s)
{
    return weft_file_fd(((const struct wf_file_stream *)s)->f);
}

static const struct wf_stream_ops file_ops = {
    .recv = file_recv,
    .send = file_send,
    .send_eof = NULL, /* -ENOTSUP */
    .kill = file_kill,
    .close = file_close,
    .fd = file_fd,
};

WF_EXPORT weft_stream *weft_file_stream(weft_file *f)
{
    if (!f || f->gate.closing)
        return NULL;
    struct wf_file_stream *x = wf_calloc(1, sizeof *x);
    if (!x)
        return NULL;
    wf_stream_init(&x->base, &file_ops);
    x->f = f;
    return &x->base;
}
