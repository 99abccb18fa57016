/* SPDX-License-Identifier: MIT */
/*
 * uring_read.c - any io_uring operation from a task, under weft's
 * cancellation and deadlines.
 *
 * Reads a pipe with weft_uring_sqe + io_uring_prep_read + weft_uring_await:
 * once with data arriving in time, once with a scope deadline that cancels
 * the read in the kernel (IORING_OP_ASYNC_CANCEL), and once with a linked
 * timeout that the kernel enforces itself (weft_uring_await_until). It
 * prints:
 *
 *     read 4 bytes: ping
 *     no more data after 20 ms: the read was cancelled
 *     await_until: -ETIMEDOUT, the kernel ended the read
 *
 * Exits 0 when each read ends as shown; 77 (skipped) on the epoll
 * backend (WEFT_BACKEND=epoll, or where io_uring is refused), which has
 * no ring for weft_uring_sqe to give.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>
#include <weft/uring.h>

/* Read from fd as a checkpoint: bytes read, 0 at end, or -errno. */
static int read_some(int fd, void *buf, unsigned len)
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (sqe == NULL)
        return -EPERM; /* not called from a task, or no ring (epoll) */
    io_uring_prep_read(sqe, fd, buf, len, 0);
    return weft_uring_await(sqe);
}

/* Write "ping" into the pipe after 5 ms. */
static int pinger(void *arg)
{
    int fd = *(int *)arg;
    int rc = weft_sleep(5 * WEFT_MSEC);
    if (rc < 0)
        return rc;
    return write(fd, "ping", 4) == 4 ? 0 : -EIO;
}

static int reads(int fd)
{
    char buf[64] = {0}; /* Valgrind cannot see the kernel fill it */
    weft_scope s;

    /* 1. Data arrives in time: the read returns it. */
    weft_fail_after(&s, 5 * WEFT_SEC);
    int rc = read_some(fd, buf, sizeof buf); /* 4 */
    rc = weft_scope_exit(&s, rc);            /* not -ECANCELED: unchanged */
    if (rc != 4)
        return rc < 0 ? rc : -EPROTO;
    printf("read %d bytes: %.*s\n", rc, rc, buf);

    /* 2. Nothing more comes: the deadline cancels the read in the kernel;
     *    weft_uring_await returns only when the kernel is done with buf. */
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    rc = read_some(fd, buf, sizeof buf); /* -ECANCELED */
    rc = weft_scope_exit(&s, rc);        /* caught: 0 */
    if (rc != 0 || !weft_scope_cancelled_caught(&s))
        return rc < 0 ? rc : -EPROTO;
    printf("no more data after 20 ms: the read was cancelled\n");

    /* 3. A linked timeout: the kernel itself ends the read at the deadline. */
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (sqe == NULL)
        return -EPERM;
    io_uring_prep_read(sqe, fd, buf, sizeof buf, 0);
    rc = weft_uring_await_until(sqe, weft_now() + 20 * WEFT_MSEC);
    if (rc != -ETIMEDOUT)
        return rc < 0 ? rc : -EPROTO;
    printf("await_until: -ETIMEDOUT, the kernel ended the read\n");
    return 0;
}

static int root(void *arg)
{
    int fds[2];
    if (strcmp(weft_backend_name(), "epoll") == 0) {
        /* No ring to take SQEs from: docs/guide/backends.md. */
        printf("the epoll backend has no raw ring: skipped\n");
        *(bool *)arg = true;
        return 0;
    }
    if (!weft_uring_has_op(IORING_OP_READ))
        return -ENOSYS; /* the kernel is too old (before 5.6) */
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;

    weft_group g;
    weft_group_enter(&g);
    int rc = weft_group_spawn_named(&g, "pinger", pinger, &fds[1]);
    if (rc == 0)
        rc = reads(fds[0]);
    rc = weft_group_exit(&g, rc);

    close(fds[0]);
    close(fds[1]);
    return rc;
}

int main(void)
{
    bool skipped = false;
    int rc = weft_run(root, &skipped, NULL);
    if (rc < 0) {
        fprintf(stderr, "uring_read: %s\n", weft_strerror(rc));
        return 1;
    }
    return skipped ? 77 : 0; /* 77: ctest's "skipped" */
}
