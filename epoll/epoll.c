/* SPDX-License-Identifier: MIT */
/*
 * epoll/epoll.c - the epoll backend (being built).
 */
#include "epoll/epoll.h"

#include <errno.h>
#include <stdio.h>

int wf_epoll_init(struct wf_ring *r, const struct wf_ring_params *rp, char *why,
                  unsigned whylen)
{
    (void)r;
    (void)rp;
    snprintf(why, whylen, "the epoll backend is not built yet");
    return -ENOSYS;
}

void wf_epoll_exit(struct wf_ring *r)
{
    (void)r;
}

void wf_epoll_submit(struct wf_ring *r)
{
    (void)r;
}

int wf_epoll_pump(struct wf_ring *r, bool wait, int64_t timeout_ns)
{
    (void)r;
    (void)wait;
    (void)timeout_ns;
    return 0;
}

void wf_epoll_forget(struct wf_ring *r, int fd)
{
    (void)r;
    (void)fd;
}
