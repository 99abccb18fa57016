/* SPDX-License-Identifier: MIT */
/*
 * backends.c - one program on both backends.
 *
 * First it runs a loop with the defaults (WEFT_BACKEND_AUTO) and says
 * which backend weft chose. Then it runs the same small program twice,
 * forcing io_uring and then epoll with weft_options.backend: a TCP echo
 * over loopback, a receive that its scope's deadline cancels, a file
 * written and read back, and raw ring access through weft/uring.h. It
 * prints, where io_uring is allowed:
 *
 *     auto: io_uring
 *     io_uring: echo "ping" came back
 *     io_uring: recv under a 20 ms deadline: -ECANCELED, the scope caught it
 *     io_uring: file: 21 bytes written and read back
 *     io_uring: raw ring: a NOP through weft_uring_sqe
 *     epoll: echo "ping" came back
 *     epoll: recv under a 20 ms deadline: -ECANCELED, the scope caught it
 *     epoll: file: 21 bytes written and read back
 *     epoll: raw ring: none (weft_uring_sqe is NULL, await -ENOTSUP)
 *     both backends: the same results
 *
 * Where io_uring is refused (a container's seccomp profile, the sysctl
 * kernel.io_uring_disabled), "auto" says epoll and the forced io_uring run
 * says why it could not start. With WEFT_BACKEND set in the environment,
 * both runs get the backend it names: the variable overrides the option.
 *
 * Exits 0 when every part behaved the same on every backend it ran on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>
#include <weft/uring.h>

/* What the small program saw: compared between the backends. */
struct outcome {
    int echo;      /* 0: "ping" came back */
    int cancelled; /* the cancelled recv's result: -ECANCELED */
    bool caught;   /* the scope caught its own cancellation */
    ssize_t file;  /* bytes written and read back */
    bool raw;      /* weft_uring_sqe gave an SQE */
};

/* ---- a TCP echo over loopback ---- */

static int echo_once(weft_stream *conn, void *arg)
{
    char buf[64];
    ssize_t n = weft_stream_recv(conn, buf, sizeof buf);
    if (n <= 0)
        return (int)n;
    n = weft_stream_send(conn, buf, (size_t)n);
    return n < 0 ? (int)n : 0;
}

static int server(void *arg)
{
    weft_listener *l;
    int rc = weft_tcp_listen(&l, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    int port = weft_listener_port(l);
    weft_task_started(&port);
    rc = weft_listener_serve(l, echo_once, NULL); /* until cancelled */
    weft_listener_close(l);
    return rc;
}

static int echo(void)
{
    weft_group g;
    void *started;
    weft_group_enter(&g);
    int rc = weft_group_start(&g, server, NULL, &started);
    if (rc == 0) {
        int port = *(int *)started; /* on the server's stack, alive */
        weft_stream *s;
        rc = weft_tcp_connect(&s, "127.0.0.1", (uint16_t)port);
        if (rc == 0) {
            char buf[5];
            ssize_t n = weft_stream_send(s, "ping", 4);
            if (n >= 0)
                n = weft_stream_recv_exactly(s, buf, 4);
            if (n >= 0 && memcmp(buf, "ping", 4) != 0)
                n = -EPROTO;
            rc = n < 0 ? (int)n : 0;
            weft_stream_close(s);
        }
        weft_group_cancel(&g); /* stop the server */
    }
    return weft_group_exit(&g, rc);
}

/* ---- a receive that nothing answers, under a deadline ---- */

static int cancelled_recv(bool *caught)
{
    weft_stream *a, *b;
    int rc = weft_stream_pair(&a, &b);
    if (rc < 0)
        return rc;
    weft_scope scope;
    char c;
    weft_move_on_after(&scope, 20 * WEFT_MSEC);
    ssize_t n = weft_stream_recv(a, &c, 1); /* nothing is ever sent */
    weft_scope_exit(&scope, (int)n);
    *caught = weft_scope_cancelled_caught(&scope);
    weft_stream_close(a);
    weft_stream_close(b);
    return (int)n;
}

/* ---- a file written and read back ---- */

static ssize_t file_roundtrip(void)
{
    static const char text[] = "the same on both ends";
    char path[64], back[64];
    snprintf(path, sizeof path, "/tmp/weft-backends.%ld", (long)getpid());
    int rc = weft_path_write_all(path, text, sizeof text - 1);
    if (rc < 0)
        return rc;
    weft_file *f;
    rc = weft_file_open(&f, path, O_RDONLY, 0);
    ssize_t n = rc;
    if (rc == 0) {
        n = weft_file_pread(f, back, sizeof back, 0);
        weft_file_close(f);
    }
    weft_path_unlink(path);
    if (n >= 0 && ((size_t)n != sizeof text - 1 || memcmp(back, text, n)))
        n = -EPROTO;
    return n;
}

/* ---- raw ring access: io_uring only ---- */

static bool raw_ring(void)
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (sqe == NULL) /* the epoll backend: there is no ring to write to */
        return weft_uring_await(NULL) != -ENOTSUP; /* false */
    io_uring_prep_nop(sqe);
    return weft_uring_await(sqe) == 0;
}

/* ---- the small program: the same code on both ---- */

static int program(void *arg)
{
    struct outcome *out = arg;
    const char *name = weft_backend_name(); /* "io_uring" or "epoll" */

    out->echo = echo();
    if (out->echo == 0)
        printf("%s: echo \"ping\" came back\n", name);
    out->cancelled = cancelled_recv(&out->caught);
    printf("%s: recv under a 20 ms deadline: %s, the scope %s\n", name,
           out->cancelled == -ECANCELED ? "-ECANCELED" : "unexpected",
           out->caught ? "caught it" : "did not catch it");
    out->file = file_roundtrip();
    if (out->file >= 0)
        printf("%s: file: %zd bytes written and read back\n", name, out->file);
    out->raw = raw_ring();
    printf("%s: raw ring: %s\n", name,
           out->raw ? "a NOP through weft_uring_sqe"
                    : "none (weft_uring_sqe is NULL, await -ENOTSUP)");
    return out->echo < 0 ? out->echo : (out->file < 0 ? (int)out->file : 0);
}

/* ---- which one AUTO picks ---- */

static int nothing(void *arg)
{
    return 0;
}

static bool same(const struct outcome *a, const struct outcome *b)
{
    return a->echo == b->echo && a->cancelled == b->cancelled &&
           a->caught == b->caught && a->file == b->file;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = weft_run(nothing, NULL, NULL); /* AUTO, unless WEFT_BACKEND */
    if (rc < 0) {
        fprintf(stderr, "backends: %s\n", weft_strerror(rc));
        return 1;
    }
    /* Outside a loop: the backend of the last loop this thread ran. */
    printf("auto: %s\n", weft_backend_name());

    const unsigned backends[2] = {WEFT_BACKEND_URING, WEFT_BACKEND_EPOLL};
    struct outcome out[2] = {{0}, {0}};
    bool ran[2] = {false, false};
    for (int i = 0; i < 2; i++) {
        weft_options opts = {0};
        opts.backend = backends[i];
        rc = weft_run(program, &out[i], &opts);
        if (backends[i] == WEFT_BACKEND_URING &&
            (rc == -ENOSYS || rc == -EPERM || rc == -EOPNOTSUPP)) {
            /* Refused by the system (or the kernel is too old). */
            printf("io_uring: refused here: %s\n", weft_strerror(rc));
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "backends: %s\n", weft_strerror(rc));
            return 1;
        }
        ran[i] = true;
        if (out[i].cancelled != -ECANCELED || !out[i].caught)
            return 1;
        /* Raw access exactly where the loop is io_uring's. */
        bool uring = strcmp(weft_backend_name(), "io_uring") == 0;
        if (out[i].raw != uring)
            return 1;
    }
    if (ran[0] && ran[1]) {
        if (!same(&out[0], &out[1]))
            return 1;
        printf("both backends: the same results\n");
    }
    return ran[1] ? 0 : 1;
}
