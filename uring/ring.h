/* SPDX-License-Identifier: MIT */
/*
 * uring/ring.h - the io_uring layer: ring set-up and feature probing, SQE
 * supply, completion dispatch and kernel-side cancellation.
 *
 * This layer knows nothing of tasks. An operation's user_data points at a
 * struct wf_completion; reaping calls its fn with the CQE's res and flags.
 * user_data 0 marks a CQE nobody waits for (a failed ASYNC_CANCEL).
 */
#ifndef WF_RING_H
#define WF_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct wf_completion {
    void (*fn)(struct wf_completion *c, int res, unsigned flags);
    bool untracked; /* posted from outside (MSG_RING): owes no inflight */
    bool standing;  /* counted in standing too (wf_ring_track_standing) */
    bool polled;    /* on an IOPOLL ring, which takes no ASYNC_CANCEL */
};

enum { WF_RING_WHY = 200 };

/* weft_options.backend's values (weft/base.h's WEFT_BACKEND_*). */
enum { WF_BACKEND_AUTO, WF_BACKEND_URING, WF_BACKEND_EPOLL };

struct wf_epoll;

/*
 * A loop's ring: io_uring's, or, on the epoll backend (epoll/epoll.h),
 * an SQ of the same shape in memory that the backend reads and carries
 * out with epoll, plain system calls and a worker pool. Either way the
 * engine writes SQEs and gets each CQE's res and flags in its
 * wf_completion, so every rule above this layer is the same code.
 */
struct wf_ring {
    struct io_uring ring;
    struct wf_epoll *ep;  /* the epoll backend's state, or NULL */
    unsigned setup_flags; /* IORING_SETUP_* in force */
    unsigned sq_entries, cq_entries;
    unsigned inflight;     /* CQEs still owed to a wf_completion */
    unsigned standing;     /* of those, weft's own armed operations */
    unsigned max_inflight; /* admission bound for the others */
    unsigned in_handler;   /* a completion handler runs: no SQEs now */
    unsigned sq_end;       /* SQ tail up to which slots are free, as of the
                              last look at the head (which only moves on) */
    uint64_t ops[4];       /* supported opcodes, a bit each */
};

/* The ring's table of registered (fixed) files: made sparse, n slots, the
 * first time it is needed; 0, or -errno (-EBUSY: someone registered one). */
int wf_ring_files_table(struct wf_ring *r, unsigned n);
/* Empty a slot of that table at once (no SQE: for error paths). */
void wf_ring_files_clear(struct wf_ring *r, int slot);

/* How to set a ring up. mode: as enum weft_ring_mode. wq_fd: another
 * ring whose io-wq this one attaches to (IORING_SETUP_ATTACH_WQ), or -1.
 * iowq_max_workers: IORING_REGISTER_IOWQ_MAX_WORKERS, 0 = the kernel's.
 * flags: set-up flags added to every mode tried. */
struct wf_ring_params {
    unsigned sq, cq, mode;
    int wq_fd;
    unsigned iowq_max_workers;
    unsigned flags;          /* IORING_SETUP_SQPOLL, IORING_SETUP_IOPOLL */
    unsigned sq_thread_idle; /* SQPOLL: ms before its thread sleeps */
    unsigned backend;        /* WF_BACKEND_*: AUTO falls back to epoll */
    bool no_fallback;        /* AUTO does not fall back: an option needs
                                io_uring (WEFT_OPT_IOPOLL's polled ring) */
};
/* With backend AUTO, io_uring's refusal is left in why even when the
 * epoll backend then took over (r->ep set): diagnostics name it. */
int wf_ring_init(struct wf_ring *r, const struct wf_ring_params *rp, char *why,
                 unsigned whylen);
/* A second ring for polled file I/O (IORING_SETUP_IOPOLL, entries SQEs):
 * 0, or -errno with why saying what failed. Its max_inflight is its SQ's
 * size. wf_ring_pump never waits on it: each call polls the device. */
int wf_ring_init_polled(struct wf_ring *r, unsigned entries, char *why,
                        unsigned whylen);
void wf_ring_exit(struct wf_ring *r);

/* An SQE; a full SQ is submitted first, so this never fails. */
struct io_uring_sqe *wf_ring_sqe(struct wf_ring *r);
/* Make sure the next n wf_ring_sqe() calls need no flush. */
void wf_ring_flush_for(struct wf_ring *r, unsigned n);
/* The same, looking at the kernel's head only when the room seen at the
 * last look is used up. */
static inline void wf_ring_reserve(struct wf_ring *r, unsigned n)
{
    if (__builtin_expect((int)(r->sq_end - r->ring.sq.sqe_tail) < (int)n, 0))
        wf_ring_flush_for(r, n);
}
/*
 * The next SQE, where wf_ring_reserve made room for it: no second look
 * at the kernel's head, which the reserve just read. weft never sets
 * IORING_SETUP_SQE128, so an SQE is one slot.
 */
static inline struct io_uring_sqe *wf_ring_take(struct wf_ring *r)
{
    struct io_uring_sq *sq = &r->ring.sq;
    return &sq->sqes[sq->sqe_tail++ & sq->ring_mask];
}
/* Take back the SQE just handed out, if it is still the last one queued. */
bool wf_ring_unget(struct wf_ring *r, struct io_uring_sqe *sqe);
/* Queue an ASYNC_CANCEL of the operation whose user_data is c. */
void wf_ring_cancel(struct wf_ring *r, struct wf_completion *c);
/* The same with the kernel's answer (0, -ENOENT, -EALREADY) always posted
 * to answer's fn, on success too; it owes no inflight (a cancel is not
 * admitted). target is the user_data to look for (c, normally). */
void wf_ring_cancel_answered(struct wf_ring *r, uint64_t target,
                             struct wf_completion *answer);

/* Point an SQE at its completion and count the CQE owed. */
static inline void wf_ring_track(struct wf_ring *r, struct io_uring_sqe *sqe,
                                 struct wf_completion *c)
{
    io_uring_sqe_set_data(sqe, c);
    r->inflight++;
}

/* The same for an operation that stays armed for long (a multishot poll
 * or accept): it owes a CQE too, but max_inflight does not admit it. */
static inline void wf_ring_track_standing(struct wf_ring *r,
                                          struct io_uring_sqe *sqe,
                                          struct wf_completion *c)
{
    c->standing = true;
    r->standing++;
    wf_ring_track(r, sqe, c);
}

/* The operations in flight that max_inflight bounds. */
static inline unsigned wf_ring_admitted(const struct wf_ring *r)
{
    return r->inflight - r->standing;
}

/*
 * Submit what is queued and dispatch every completion. With wait, block
 * until at least one completion or timeout_ns (< 0: no bound) passes.
 * Returns the number of CQEs dispatched.
 */
int wf_ring_pump(struct wf_ring *r, bool wait, int64_t timeout_ns);

static inline bool wf_ring_has_op(const struct wf_ring *r, int op)
{
    return op >= 0 && op < 256 && (r->ops[op / 64] >> (op % 64) & 1);
}

/*
 * A provided-buffer ring (uring/bufring.c; IORING_REGISTER_PBUF_RING,
 * Linux 5.19+): buffers the kernel picks from when a receive that asked
 * for one (IOSQE_BUFFER_SELECT) finds data, so that a receive still
 * waiting holds none. With incremental consumption (IOU_PBUF_RING_INC,
 * 6.12+) a receive takes only the bytes it got from the head buffer, and
 * the next one continues in it: large buffers, densely filled. Otherwise
 * each receive takes a whole buffer.
 *
 * A buffer goes back into the ring once the kernel is done with it and
 * every piece of it handed out has been put back.
 */
struct wf_bufring {
    struct io_uring_buf_ring *br; /* the ring the kernel reads */
    char *mem;                    /* nbufs * size bytes, untouched until used */
    size_t br_len;
    unsigned nbufs, size;
    uint16_t bgid;
    bool inc;       /* IOU_PBUF_RING_INC in force */
    unsigned avail; /* buffers in the ring (the kernel's to pick) */
    struct wf_buf_state {
        uint32_t off;  /* bytes of it handed out (incremental) */
        uint32_t refs; /* pieces handed out and not yet put back */
        bool out;      /* the kernel is done with it */
    } * st;
};

/* Set up and register nbufs (a power of two) buffers of size bytes as
 * group bgid, incremental if the kernel can: 0, or -errno (the kernel
 * has no buffer rings: -EINVAL, -ENOSYS, ...). */
int wf_bufring_init(struct wf_ring *r, struct wf_bufring *b, uint16_t bgid,
                    unsigned nbufs, unsigned size);
void wf_bufring_exit(struct wf_ring *r, struct wf_bufring *b);
/* Make sqe (a receive prepared with no buffer) pick one of b's. */
static inline void wf_bufring_select(const struct wf_bufring *b,
                                     struct io_uring_sqe *sqe)
{
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = b->bgid;
}
/* The bytes a buffer-select receive's CQE (res, flags) delivered: their
 * address (and *bid, for wf_bufring_put), or NULL if it carries none
 * (res <= 0: then a buffer it took, if any, is already back). */
void *wf_bufring_take(struct wf_bufring *b, int res, unsigned flags,
                      uint16_t *bid);
/* A piece taken from buffer bid is done with. */
void wf_bufring_put(struct wf_bufring *b, uint16_t bid);

#endif
