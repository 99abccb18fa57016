/* SPDX-License-Identifier: MIT */
/*
 * api/net/ready.c - waiting for a descriptor to be readable or writable
 * (POLL_ADD), for descriptors weft does not wrap.
 */
#include "api/net/net_impl.h"

#include <poll.h>
#include <weft/uring.h>

static int wait_poll(int fd, unsigned mask, const char *what)
{
    struct weft_task *t;
    int rc = wf_entry(&t, true, fd < 0); /* no fd: as a closed one */
    if (rc < 0)
        return rc;
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_poll_add(sqe, fd, mask);
    rc = wf_await(sqe, what);
    return rc < 0 ? rc : 0;
}

WF_EXPORT int weft_wait_readable(int fd)
{
    return wait_poll(fd, POLLIN, "weft_wait_readable");
}

WF_EXPORT int weft_wait_writable(int fd)
{
    return wait_poll(fd, POLLOUT, "weft_wait_writable");
}
