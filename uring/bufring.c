/* SPDX-License-Identifier: MIT */
/*
 * uring/bufring.c - provided-buffer rings: set-up (incremental where the
 * kernel has it), what a receive's CQE says it took, and putting buffers
 * back.
 *
 * Incremental consumption (Linux 6.12+): the kernel fills the head buffer
 * from where the last receive stopped, and says with IORING_CQE_F_BUF_MORE
 * that it keeps the buffer for the next one. The bytes of a CQE are
 * therefore at the buffer's start plus what its earlier CQEs took, which
 * this file counts (st[bid].off). A receive that got no bytes (end of
 * stream, an error) took nothing: the kernel (6.12+) puts an unused buffer
 * back at its head itself.
 */
#include "uring/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Not in liburing 2.3's headers. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

/* Hand buffer bid back to the kernel, whole. */
static void refill(struct wf_bufring *b, uint16_t bid)
{
    b->st[bid] = (struct wf_buf_state){0};
    io_uring_buf_ring_add(b->br, b->mem + (size_t)bid * b->size, b->size, bid,
                          io_uring_buf_ring_mask(b->nbufs), 0);
    /* A store-release of the tail: the entry is written before the kernel
     * can see it. */
    io_uring_buf_ring_advance(b->br, 1);
    b->avail++;
}

static int reg(struct wf_ring *r, struct wf_bufring *b, uint16_t flags)
{
    struct io_uring_buf_reg rg;
    memset(&rg, 0, sizeof rg);
    rg.ring_addr = (uint64_t)(uintptr_t)b->br;
    rg.ring_entries = b->nbufs;
    rg.bgid = b->bgid;
    rg.pad = flags; /* `flags` since Linux 6.12's header */
    return io_uring_register_buf_ring(&r->ring, &rg, 0);
}

int wf_bufring_init(struct wf_ring *r, struct wf_bufring *b, uint16_t bgid,
                    unsigned nbufs, unsigned size)
{
    memset(b, 0, sizeof *b);
    b->nbufs = nbufs;
    b->size = size;
    b->bgid = bgid;
    b->br_len = nbufs * sizeof(struct io_uring_buf);
    if (r->ep)
        return -EOPNOTSUPP; /* epoll: receives bring their own buffers */
    int rc = -ENOMEM;
    b->st = calloc(nbufs, sizeof *b->st);
    /* Page-aligned, as the kernel wants the ring; buffers are committed
     * only where the kernel writes. */
    b->br = mmap(NULL, b->br_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b->mem = mmap(NULL, (size_t)nbufs * size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!b->st || b->br == MAP_FAILED || b->mem == MAP_FAILED)
        goto fail;
    io_uring_buf_ring_init(b->br);
    /* Incremental if the kernel takes the flag (6.12+): older ones
     * refuse an unknown flag with -EINVAL. */
    rc = reg(r, b, IOU_PBUF_RING_INC);
    b->inc = rc == 0;
    if (rc == -EINVAL)
        rc = reg(r, b, 0);
    if (rc < 0)
        goto fail;
    for (unsigned i = 0; i < nbufs; i++)
        refill(b, (uint16_t)i);
    return 0;
fail:
    if (b->br != MAP_FAILED && b->br)
        munmap(b->br, b->br_len);
    if (b->mem != MAP_FAILED && b->mem)
        munmap(b->mem, (size_t)nbufs * size);
    free(b->st);
    memset(b, 0, sizeof *b);
    return rc;
}

void wf_bufring_exit(struct wf_ring *r, struct wf_bufring *b)
{
    if (!b->br)
        return;
    io_uring_unregister_buf_ring(&r->ring, b->bgid);
    munmap(b->br, b->br_len);
    munmap(b->mem, (size_t)b->nbufs * b->size);
    free(b->st);
    memset(b, 0, sizeof *b);
}

void *wf_bufring_take(struct wf_bufring *b, int res, unsigned flags,
                      uint16_t *bid)
{
    if (!(flags & IORING_CQE_F_BUFFER))
        return NULL;
    uint16_t id = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
    if (id >= b->nbufs)
        return NULL; /* not one of ours: cannot happen */
    struct wf_buf_state *st = &b->st[id];
    char *p = b->mem + (size_t)id * b->size + st->off;
    if (b->inc) {
        if (res <= 0)
            return NULL; /* nothing consumed: still the kernel's */
        st->off += (uint32_t)res;
        if (!(flags & IORING_CQE_F_BUF_MORE)) {
            st->out = true; /* used up: the kernel moved past it */
            b->avail--;
        }
    } else {
        st->out = true; /* the whole buffer left the ring */
        b->avail--;
        if (res <= 0) {
            refill(b, id);
            return NULL;
        }
    }
    st->refs++;
    *bid = id;
    return p;
}

void wf_bufring_put(struct wf_bufring *b, uint16_t bid)
{
    struct wf_buf_state *st = &b->st[bid];
    if (--st->refs == 0 && st->out)
        refill(b, bid);
}
