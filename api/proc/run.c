/* SPDX-License-Identifier: MIT */
/*
 * api/proc/run.c - weft_process_run: a child fed and drained by three
 * tasks of one group (stdin's writer, stdout's and stderr's readers), so
 * that no size of input or output can deadlock it, then waited for.
 * What is discarded (out or err NULL) or empty (no input) is /dev/null
 * for the child, not a pipe.
 */
#include "api/proc/proc_impl.h"

#include <stdlib.h>
#include <string.h>

struct sink {
    weft_stream *s;
    char *buf; /* malloc'd: the caller frees it with free() */
    size_t len, cap;
};

struct run {
    weft_process *p;
    const char *input;
    size_t input_len;
    struct sink out, err;
};

static int feed(void *arg)
{
    struct run *r = arg;
    weft_stream *in = weft_process_stdin(r->p);
    ssize_t n = weft_stream_send(in, r->input, r->input_len);
    /* A child that ends without reading all of it is not an error. */
    if (n < 0 && n != -EPIPE)
        return (int)n;
    int rc = weft_stream_send_eof(in);
    return rc == -EPIPE ? 0 : rc;
}

static int drain(void *arg)
{
    struct sink *k = arg;
    for (;;) {
        if (k->cap - k->len < 4096) {
            size_t cap = k->cap ? k->cap * 2 : 16384;
            char *b = realloc(k->buf, cap);
            if (!b)
                return -ENOMEM;
            k->buf = b;
            k->cap = cap;
        }
        ssize_t n =
            weft_stream_recv(k->s, k->buf + k->len, k->cap - k->len - 1);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        k->len += (size_t)n;
    }
    k->buf[k->len] = '\0';
    return 0;
}

/* A sink's result: the buffer, or an empty string when nothing came. */
static int hand_over(struct sink *k, char **out, size_t *out_len)
{
    if (!k->buf && !(k->buf = malloc(1)))
        return -ENOMEM;
    if (!k->len)
        k->buf[0] = '\0';
    *out = k->buf;
    if (out_len)
        *out_len = k->len;
    k->buf = NULL;
    return 0;
}

WF_EXPORT int weft_process_run(const char *const argv[], const void *input,
                               size_t input_len, char **out, size_t *out_len,
                               char **err, size_t *err_len, int *status)
{
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (out_len)
        *out_len = 0;
    if (err_len)
        *err_len = 0;
    weft_process_opts o;
    memset(&o, 0, sizeof o);
    if (!input_len)
        o.in.how = WEFT_STDIO_DEVNULL;
    if (!out)
        o.out.how = WEFT_STDIO_DEVNULL;
    if (!err)
        o.err.how = WEFT_STDIO_DEVNULL;
    if (input_len && !input) {
        struct weft_task *t;
        int rc = wf_entry_err(&t, -EFAULT, false, false);
        return rc;
    }
    struct run r;
    memset(&r, 0, sizeof r);
    int rc = weft_process_open(&r.p, argv, &o);
    if (rc < 0)
        return rc;
    r.input = input;
    r.input_len = input_len;
    r.out.s = weft_process_stdout(r.p);
    r.err.s = weft_process_stderr(r.p);

    weft_group g;
    weft_group_enter(&g);
    if (r.p->in)
        rc = weft_group_spawn_named(&g, "weft_process_run stdin", feed, &r);
    if (rc == 0 && r.out.s)
        rc = weft_group_spawn_named(&g, "weft_process_run stdout", drain,
                                    &r.out);
    if (rc == 0 && r.err.s)
        rc = weft_group_spawn_named(&g, "weft_process_run stderr", drain,
                                    &r.err);
    if (rc < 0)
        weft_group_cancel(&g);
    int grc = weft_group_exit(&g, rc);
    rc = rc < 0 ? rc : grc;
    if (rc == 0) {
        rc = weft_process_wait(r.p);
        if (rc >= 0) {
            if (status)
                *status = rc;
            rc = 0;
        }
    }
    if (rc == 0 && out)
        rc = hand_over(&r.out, out, out_len);
    if (rc == 0 && err)
        rc = hand_over(&r.err, err, err_len);
    if (rc < 0 && out && *out) {
        free(*out);
        *out = NULL;
        if (out_len)
            *out_len = 0;
    }
    free(r.out.buf);
    free(r.err.buf);
    weft_process_close(r.p); /* kills and reaps it if still running */
    return rc;
}
