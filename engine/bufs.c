/* SPDX-License-Identifier: MIT */
/*
 * engine/bufs.c - each loop's provided buffers for stream receives: one
 * buffer ring (uring/bufring.c), set up the first time a receive asks for
 * it, so that a loop that never uses it pays nothing.
 *
 * Sizes: with incremental consumption (6.12+) 16 buffers of 64 KiB, which
 * receives fill one after the other (64-byte messages from 15,000
 * connections take 1 MiB, not 15,000 pages); without it 64 buffers of
 * 16 KiB, one per receive. Either way 1 MiB of address space, committed
 * only where the kernel writes. A program that holds every buffer at once
 * makes the next receives fall back to buffers of their own (-ENOBUFS
 * from the kernel; api/stream/stream.c).
 */
#include "engine/engine.h"

#ifdef WEFT_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#endif

/* weft's buffer group: far from the small ids programs using
 * weft/uring.h tend to pick for their own. */
enum { WF_BUFS_GROUP = 0xfe00 };

struct wf_bufring *wf_bufs(struct wf_loop *L)
{
    if (wf_likely(L->bufs || L->bufs_tried))
        return L->bufs;
    L->bufs_tried = true;
    struct wf_bufring *b = wf_malloc(sizeof *b);
    if (!b)
        return NULL;
    if (wf_bufring_init(&L->ring, b, WF_BUFS_GROUP, 16, 64 * 1024) == 0 &&
        !b->inc) {
        wf_bufring_exit(&L->ring, b);
        (void)wf_bufring_init(&L->ring, b, WF_BUFS_GROUP, 64, 16 * 1024);
    }
    if (!b->br) { /* no buffer rings here (before 5.19): receive as before */
        wf_free(b);
        return NULL;
    }
    L->bufs = b;
    return b;
}

void wf_bufs_select(struct wf_bufring *b, struct io_uring_sqe *sqe)
{
    wf_bufring_select(b, sqe);
}

void *wf_bufs_take(struct wf_loop *L, struct wf_bufring *b, int res,
                   unsigned flags, struct wf_bufs_piece *piece)
{
    void *p = wf_bufring_take(b, res, flags, &piece->bid);
    piece->held = p != NULL;
#ifdef WEFT_HAVE_VALGRIND_H
    /* The kernel wrote them where Memcheck cannot see (engine/op.c does
     * the same for receives into the caller's buffer). */
    if (p && L->valgrind)
        VALGRIND_MAKE_MEM_DEFINED(p, (size_t)res);
#else
    (void)L;
#endif
    return p;
}

/* A piece is put back on the loop it came from: streams stay on theirs.
 * After the loop's end its ring is gone, and so is the piece. */
void wf_bufs_put(struct wf_bufs_piece *piece)
{
    if (piece->held) {
        piece->held = false;
        if (wf_cur && wf_cur->bufs)
            wf_bufring_put(wf_cur->bufs, piece->bid);
    }
}

struct wf_block {
    struct wf_block *next;
};

enum { BLOCK_MIN = 4096, BLOCKS_KEPT = 64 };

/* The class of a block of cap bytes, or -1. */
static int block_class(size_t cap)
{
    for (int c = 0; c < WF_BLOCK_CLASSES; c++)
        if (cap == (size_t)BLOCK_MIN << c)
            return c;
    return -1;
}

void *wf_block_get(size_t *cap)
{
    size_t want = *cap;
    if (want <= (size_t)BLOCK_MIN << (WF_BLOCK_CLASSES - 1)) {
        size_t c = BLOCK_MIN;
        while (c < want)
            c *= 2;
        *cap = c;
    }
    struct wf_loop *L = wf_cur;
    int k = block_class(*cap);
    if (L && k >= 0 && L->blocks[k]) {
        struct wf_block *b = L->blocks[k];
        L->blocks[k] = b->next;
        L->nblocks[k]--;
        return b;
    }
    return wf_malloc(*cap);
}

void wf_block_put(void *p, size_t cap)
{
    struct wf_loop *L = wf_cur;
    int k = block_class(cap);
    if (!p)
        return;
    if (!L || k < 0 || L->nblocks[k] >= BLOCKS_KEPT) {
        wf_free(p);
        return;
    }
    struct wf_block *b = p;
    b->next = L->blocks[k];
    L->blocks[k] = b;
    L->nblocks[k]++;
}

void wf_bufs_close(struct wf_loop *L)
{
    for (int k = 0; k < WF_BLOCK_CLASSES; k++) {
        while (L->blocks[k]) {
            struct wf_block *b = L->blocks[k];
            L->blocks[k] = b->next;
            wf_free(b);
        }
        L->nblocks[k] = 0;
    }
    if (L->bufs) {
        wf_bufring_exit(&L->ring, L->bufs);
        wf_free(L->bufs);
        L->bufs = NULL;
    }
}
