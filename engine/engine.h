/* SPDX-License-Identifier: MIT */
/*
 * engine/engine.h - the engine's internal declarations: lists, fibers,
 * tasks, wait records, the loop, timers and scopes. Never included by a
 * public header.
 */
#ifndef WF_ENGINE_H
#define WF_ENGINE_H

#include <weft.h>

#include <stddef.h>
#include <stdint.h>

#include "epoll/epoll.h"
#include "uring/ring.h"
#include <unistd.h>
#include <sys/uio.h>

#define WF_EXPORT __attribute__((visibility("default")))
#if defined(__SANITIZE_ADDRESS__)
#define WF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WF_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WF_TSAN 1
#endif
#endif

#define wf_container_of(p, type, member)                                       \
    ((type *)((char *)(p)-offsetof(type, member)))
#define wf_likely(x) __builtin_expect(!!(x), 1)
#define wf_unlikely(x) __builtin_expect(!!(x), 0)

_Noreturn void wf_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* ---- intrusive doubly linked lists (a head is a link to itself) ---- */

typedef struct weft__link wf_link;

static inline void wf_list_init(wf_link *h)
{
    h->next = h->prev = h;
}
static inline bool wf_list_empty(const wf_link *h)
{
    return h->next == h;
}

static inline void wf_list_push(wf_link *h, wf_link *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void wf_list_del(wf_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

static inline wf_link *wf_list_pop(wf_link *h)
{
    wf_link *n = h->next;
    if (n == h)
        return NULL;
    wf_list_del(n);
    return n;
}

/* Move every node of from to the end of to; from ends empty. */
static inline void wf_list_splice(wf_link *to, wf_link *from)
{
    if (wf_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    wf_list_init(from);
}

/* ---- fibers (engine/fiber.c, engine/switch_*.S) ---- */

struct wf_fiber {
    void *sp;             /* saved stack pointer */
    const void *stack_lo; /* for ASan */
    size_t stack_size;
    void *asan_fake;
    void *tsan;
};

void wf_ctx_switch(void **save_sp, void *const *load_sp);
void wf_fiber_init(struct wf_fiber *f, void *stack_lo, size_t size,
                   void (*entry)(void *), void *arg);
void wf_fiber_adopt_thread(struct wf_fiber *f);
/* Out of line only where a sanitizer must be told of the switch: on the
 * hot path (a NOP awaited) the call in between costs a frame per task. */
#if defined(WF_ASAN) || defined(WF_TSAN)
void wf_fiber_switch(struct wf_fiber *from, struct wf_fiber *to,
                     bool from_dies);
#else
static inline void wf_fiber_switch(struct wf_fiber *from, struct wf_fiber *to,
                                   bool from_dies)
{
    (void)from_dies;
    wf_ctx_switch(&from->sp, &to->sp);
}
#endif
void wf_fiber_started(struct wf_fiber *self);
void wf_fiber_destroy(struct wf_fiber *f);

/* ---- tasks and wait records ---- */

/*
 * A blocked task points at a wait record on its own stack. cancel, if
 * set, is how a scope cancellation reaches the wait: it must end up
 * readying the task (at once for user-space waits, after the terminal CQE
 * for ring operations).
 */
struct wf_wait {
    void (*cancel)(struct wf_wait *w);
    const char *what; /* for weft_dump_tasks */
    struct weft_task *task;
    bool cancelling;
};

enum wf_task_state { WF_READY, WF_RUNNING, WF_BLOCKED, WF_DONE };

/*
 * Work a completion handler must not do itself (taking SQEs while the CQ
 * is being reaped): queued, and run by the loop once the reap is over.
 */
struct wf_defer {
    wf_link node;
    void (*fn)(struct wf_defer *d);
    bool queued;
};

struct wf_io; /* below: an operation a task awaits */

/*
 * The parts of an awaited operation that only a deadline or a
 * cancellation uses (engine/op.c). A task awaits one operation at a time
 * and returns from it only once nothing refers to these any more, so its
 * record holds them: the await's own record (struct wf_io) stays one cache
 * line on the awaiting stack, and an operation that is neither timed nor
 * cancelled never touches this.
 */
struct wf_io_extra {
    union {
        struct wf_completion timeout; /* the linked timeout's, if any */
        struct weft__timer vtimer;    /* virtual clock: the deadline */
    };
    struct wf_completion cancel; /* the answers to its ASYNC_CANCELs */
    struct wf_defer recancel;    /* a cancel that missed, sent again */
    struct wf_io *io;            /* the operation all this is for */
};

struct wf_start; /* engine/group.c */
struct wf_arena; /* engine/stack.c */

struct weft_task {
    /* The first cache line (the record is 64-byte aligned) holds what
     * every switch, block and wake touches. */
    struct wf_fiber fiber;
    struct wf_wait *wait; /* while blocked */
    struct wf_loop *loop;
    uint8_t state;
    uint32_t deep; /* bytes below the record at its deepest
                      suspension (stack.c trims by it) */
    /* the rest */
    weft_scope *scope; /* innermost scope the task is in */
    weft_scope root;   /* its node in the scope tree */
    wf_link link;      /* in a loop's list of waiters for room */
    weft_fn fn;
    void *arg;
    weft_group *group;      /* counted in this group, or NULL (root) */
    struct wf_start *start; /* while weft_group_start waits for it */
    unsigned tokens;        /* limiter tokens it took for itself */
    struct weft__group_more *group_errors; /* its groups' extra errors */
    void (*on_exit)(
        struct weft_task *t); /* system tasks: who gets the result */
    void *exit_arg;
    uint64_t id;
    int result;
    char name[32];
    /* its stack, a slot of an arena (stack.c):
     * [guard][stack ... ][this struct] */
    void *slot;
    struct weft_task *pool_next;
    unsigned vg_id;
    struct wf_io_extra io_extra; /* of the operation it awaits (op.c) */
};

/* Borrowers of limiters: one table per loop (engine/limiter.c). */
struct wf_borrow_table {
    struct wf_borrow {
        uint64_t id;          /* the limiter's */
        const void *borrower; /* a named borrower, or NULL for a task: */
        uint64_t task;        /* a task's id (records are reused) */
    } * slots;
    size_t cap, used, tombs;
};
void wf_borrow_table_free(struct wf_borrow_table *bt);
void wf_limiter_task_ended(struct weft_task *t);

/*
 * The ready tasks: one FIFO ring of pointers, cut in two by `mark`: the
 * tasks before it were ready when the round began and run in this round,
 * those after it wait for the next. Readying a task or picking the next
 * touches no other task's record (an intrusive list would write into its
 * neighbours'). The indices only grow; the capacity is kept at least the
 * number of live tasks when a task is made, so pushing never fails.
 */
struct wf_queue {
    struct weft_task **v;
    size_t cap;  /* a power of two */
    size_t mask; /* cap - 1 */
    size_t head, mark, tail;
};

static inline void wf_queue_push(struct wf_queue *q, struct weft_task *t)
{
    q->v[q->tail++ & q->mask] = t;
}

/* The next task of this round, or NULL when the round is over. */
static inline struct weft_task *wf_queue_next(struct wf_queue *q)
{
    return q->head == q->mark ? NULL : q->v[q->head++ & q->mask];
}

/* Warm the caches for the task after the next one: its record and the
 * top of its saved stack are what the switch to it will touch. */
static inline void wf_queue_prefetch(const struct wf_queue *q)
{
    if (q->head != q->mark) {
        const struct weft_task *t = q->v[q->head & q->mask];
        __builtin_prefetch(t);
        __builtin_prefetch(*(void *const *)t); /* fiber.sp */
    }
}

/* Tasks waiting for the next round. */
static inline size_t wf_queue_later(const struct wf_queue *q)
{
    return q->tail - q->mark;
}

static inline void wf_queue_new_round(struct wf_queue *q)
{
    q->mark = q->tail;
}

/* ---- the loop (engine/loop.c) ---- */

enum { WF_BLOCK_CLASSES = 5 }; /* 4 KiB << 0 .. 4 */
struct wf_block;

struct wf_loop {
    struct wf_ring ring;
    /* WEFT_OPT_IOPOLL on io_uring: a second ring, IOPOLL, for O_DIRECT
     * files' reads and writes only (engine/op.c, wf_poll_sqe); else NULL.
     * While it has operations in flight the loop polls, never sleeps. */
    struct wf_ring *poll;
    struct wf_queue ready;      /* this round's tasks, then the next's */
    struct weft_task *current;  /* NULL while the scheduler runs */
    struct weft_task *dead;     /* finished; its stack is reclaimed next */
    struct wf_fiber sched;      /* the thread's own stack */
    struct weft__timer *timers; /* pairing heap of sleeps and deadlines */
    size_t ntasks;              /* live tasks */
    uint64_t next_id;           /* task ids: unique in this loop */
    uint64_t serial;            /* unique per loop in the process, from 1 */
    unsigned ncancelled;        /* live scopes whose cancel was called */
    uint64_t checkpoints;       /* checkpoints passed (engine/sweep.c) */
    uint64_t cancel_at;         /* a sweep's: cancel at this one; 0 = no */
    wf_link room_waiters;       /* tasks waiting for ring capacity */
    wf_link deferred;           /* struct wf_defer, run after each reap */
    struct weft_task *pool;     /* recycled stacks, warm (stack.c) */
    unsigned npool, pool_cap;
    struct wf_arena *arenas; /* where stacks are carved, newest first */
    void **cold;             /* free slots whose pages were given back */
    size_t ncold, cold_cap;  /* cold_cap: every slot of every arena */
    unsigned colour;         /* the next fresh stack's (stack.c) */
    size_t stack_size, page;
    size_t guard;           /* guard bytes below each stack */
    size_t slot_len;        /* guard + stack_size: one slot of an arena */
    struct weft_task *root; /* the root task while it lives, then NULL
                               (its record is recycled once it ends) */
    uint64_t root_id;       /* its id: identifies it, unlike the record */
    int result;             /* the root task's, kept by value */
    struct wf_borrow_table borrows;
    struct wf_mailbox *mailbox;  /* other threads' way in (engine/mailbox.c) */
    size_t jobs_out;             /* weft_to_thread jobs not yet back */
    size_t remote_waits;         /* tasks blocked on shared channels */
    weft_limiter thread_limiter; /* weft_default_thread_limiter */
    bool thread_limiter_ready;
    weft_scope system; /* where tasks of no group hang */
    /* Tasks in weft_wait_all_tasks_blocked (engine/testing.c): while
     * any wait, the loop looks for completions without sleeping. */
    wf_link idle_waiters;
    size_t nidle;
    weft_options opts;
    /* The virtual clock (engine/clock.c): weft_now() is vnow. */
    bool virt;
    weft_time vnow;
    weft_time quiet_since;    /* real time all went quiet; 0 = not quiet */
    struct wf_faults *faults; /* NULL: fault injection is off */
    bool valgrind;           /* running under it: mark what the kernel writes */
    struct wf_bufring *bufs; /* provided buffers (engine/bufs.c) */
    bool bufs_tried;         /* set-up tried: bufs NULL means none */
    struct wf_block *blocks[WF_BLOCK_CLASSES]; /* free blocks, hot first */
    unsigned nblocks[WF_BLOCK_CLASSES];
    /* Registered (fixed) buffers of weft_file_register_buffers: a copy
     * of the iovecs the ring has, for READ_FIXED/WRITE_FIXED lookups. */
    struct iovec *fixed;
    unsigned nfixed;
    /* The multi-core runtime (engine/cores.c); rt is NULL under weft_run. */
    struct wf_runtime *rt;
    unsigned core;   /* 0 .. rt->n - 1 */
    bool keep_alive; /* cores 1..: run with no task until told to stop */
    size_t xreplies; /* messages from other cores awaited here */
    weft_time xlast; /* real time of the last cross-core start here */
    /* Of the polled ring's operations: answered there, and refused there
     * with -EOPNOTSUPP (the device has no polled queues), for the caller
     * to reissue on the main ring. For tests and diagnostics. */
    uint64_t npolled, npoll_refused;
};

/* initial-exec: one load per access, no __tls_get_addr call from -fPIC code. */
extern __thread struct wf_loop *wf_cur
    __attribute__((tls_model("initial-exec")));

static inline struct weft_task *wf_self(void)
{
    return wf_cur ? wf_cur->current : NULL;
}

/*
 * Objects that outlive a task (a lock's owner, a limiter's borrower) name
 * it by its id and its loop's serial number, never by its record's
 * address: records are reused by later tasks.
 */
static inline bool wf_task_is(const struct weft_task *t, uint64_t id,
                              uint64_t loop)
{
    return t->id == id && t->loop->serial == loop;
}

/* To the run queue's end. Inline: a completion readies its task with
 * no call (a few stores, all in the task's first line and the queue). */
static inline void wf_ready(struct weft_task *t)
{
    t->state = WF_READY;
    wf_queue_push(&t->loop->ready, t);
}
/* Ready a blocked task. */
static inline void wf_wake(struct weft_task *t)
{
    t->wait = NULL;
    wf_ready(t);
}
int wf_queues_reserve(struct wf_loop *L, size_t ntasks);

/*
 * Back on self's stack after a switch. Its saved stack pointer says how
 * deep it waited: a watermark in the record's first line, for stack.c to
 * trim deep stacks it pools.
 */
static inline void wf_resumed(struct weft_task *self)
{
    uint32_t deep = (uint32_t)((char *)self - (char *)self->fiber.sp);
    if (deep > self->deep)
        self->deep = deep;
    self->state = WF_RUNNING;
}

/* Switch from self, L's current task, to next (the next task of this
 * round, or NULL: then the next round's, or the scheduler). wf_suspend
 * in full (engine/loop.c). */
void wf_suspend_to(struct wf_loop *L, struct weft_task *self,
                   struct weft_task *next);

/*
 * Switch from self, the current task, to the next ready one. The common
 * case is inline, for the await of a ring operation: each of its frames
 * is one more line of every task's stack for the caches to hold.
 */
static inline __attribute__((always_inline)) void
wf_suspend_inline(struct wf_loop *L, struct weft_task *self)
{
    struct weft_task *next = wf_queue_next(&L->ready);
    if (wf_unlikely(!next || next == self)) {
        wf_suspend_to(L, self, next);
        return;
    }
    L->current = next;
    wf_queue_prefetch(&L->ready);
    wf_fiber_switch(&self->fiber, &next->fiber, false);
    wf_resumed(self);
}

/* wf_block, inline: self is L's current task. */
static inline __attribute__((always_inline)) void
wf_block_inline(struct wf_loop *L, struct weft_task *self, struct wf_wait *w)
{
    w->task = self;
    w->cancelling = false;
    self->wait = w;
    self->state = WF_BLOCKED;
    wf_suspend_inline(L, self);
}
void wf_block(struct wf_wait *w);            /* suspend until readied */
void wf_yield(void);                         /* ready self, suspend */
void wf_suspend(void);                       /* switch to the next task */
void wf_deliver_cancel(struct weft_task *t); /* poke its wait, if any */
void wf_room_wait_slow(struct wf_loop *L, unsigned need);
static inline void wf_room_wait(struct wf_loop *L, unsigned need)
{
    if (wf_unlikely(wf_ring_admitted(&L->ring) + need > L->ring.max_inflight))
        wf_room_wait_slow(L, need);
}

/* engine/task.c */
int wf_task_new(struct wf_loop *L, weft_fn fn, void *arg, const char *name,
                struct weft_task **out);
void wf_task_reclaim(struct wf_loop *L, struct weft_task *t);
void wf_task_finished(struct weft_task *t); /* engine/group.c */
void wf_group_errors_free(struct weft_task *t);
/* engine/stack.c: the guard below each stack (a fault on touch, never
 * committed; at least the stack-probe interval weft exports, so that a
 * probe cannot step over it), and how much of a pooled stack's top it
 * keeps resident. */
#define WF_GUARD ((size_t)64 * 1024)
#define WF_STACK_KEEP ((size_t)64 * 1024)
struct weft_task *wf_stack_get(struct wf_loop *L);
void wf_stack_put(struct wf_loop *L, struct weft_task *t);
void wf_stack_pool_drain(struct wf_loop *L);
void wf_overflow_guard_install(struct wf_loop *L);
void wf_overflow_guard_remove(struct wf_loop *L);

void wf_defer(struct wf_loop *L, struct wf_defer *d);
void wf_defer_cancel(struct wf_defer *d);
/* Wake every task in weft_wait_all_tasks_blocked (engine/testing.c). */
void wf_idle_wake(struct wf_loop *L);

/* engine/group.c: a task of no group, e.g. for another thread's call */
int wf_spawn_system(struct wf_loop *L, weft_fn fn, void *arg,
                    weft_scope *attach, void (*on_exit)(struct weft_task *),
                    void *exit_arg);
int wf_spawn_into(struct wf_loop *L, weft_group *g, weft_fn fn, void *arg);
/* g is a live group of loop L's. */
bool wf_group_open(const weft_group *g, const struct wf_loop *L);
/* A child of g ended with rc (its error kept under name, as a task's);
 * g's host is woken when it was the last. */
void wf_group_child_ended(weft_group *g, int rc, const char *name);
/* fn's symbol name into buf ("" if it has none). */
void wf_fn_name(weft_fn fn, char *buf, size_t n);

/* ---- the loop's life (engine/loop.c), for weft_run and engine/cores.c ---
 */

/* Make a loop on this thread (wf_cur); wq_fd >= 0: attach to that ring's
 * io-wq. On failure, weft_strerror of the code says why. */
int wf_loop_open(struct wf_loop **out, const weft_options *opts, int wq_fd);
/* Run main (if not NULL) as the root task; return once every task has
 * ended and, with keep_alive, the loop was told to stop. */
int wf_loop_run_main(struct wf_loop *L, weft_fn main, void *arg);
void wf_loop_close(struct wf_loop *L, int rc);
const char *wf_run_error_why(void); /* this thread's last failed start */

/* ---- the multi-core runtime (engine/cores.c) ---- */

/* deliver() reached a remote child's node in a cancelled subtree. */
void wf_remote_cancel(weft_scope *node);
/* weft_dump_tasks' line for such a node. */
void wf_remote_describe(const weft_scope *node, char *buf, size_t n);
/* A loop that waits on other cores may watch its mailbox a while
 * before it sleeps. */
bool wf_cores_spin(struct wf_loop *L);

/* ---- messages from other threads (engine/mailbox.c; the pool:
 * engine/pool.c) ---- */

struct wf_msg {
    void (*fn)(struct wf_loop *L, struct wf_msg *m); /* L NULL: loop gone */
    struct wf_msg *next;
};
struct wf_mailbox;
int wf_mailbox_open(struct wf_loop *L);
int wf_mailbox_post(struct wf_mailbox *mb, struct wf_msg *m);
void wf_mailbox_get(struct wf_mailbox *mb);
void wf_mailbox_put(struct wf_mailbox *mb);
/* Before a ring wait that may sleep: true if it may (the sleeping flag
 * is set); false if messages wait to be run first. */
bool wf_mailbox_may_sleep(struct wf_loop *L);
bool wf_mailbox_pending(struct wf_loop *L);      /* messages wait to be run */
unsigned wf_mailbox_standing(struct wf_loop *L); /* its armed poll: 0, 1 */
/* After the ring wait: clear the flag, run the messages, re-arm. */
void wf_mailbox_drain(struct wf_loop *L);
void wf_mailbox_close(struct wf_loop *L);
void wf_pool_set_idle(weft_time idle);
/* weft_to_thread, saying whether the job reached a worker (a cancel can
 * also come while it waits for a limiter token, before it is submitted). */
int wf_to_thread(weft_fn fn, void *arg, weft_limiter *limiter, unsigned flags,
                 bool *submitted);

/* ---- fault injection (engine/faults.c); every hook is behind
 * `if (wf_unlikely(L->faults))` ---- */

struct wf_faults;
int wf_faults_open(struct wf_loop *L); /* weft_options.faults, WEFT_FAULTS */
void wf_faults_close(struct wf_loop *L, int rc); /* rc < 0: print the seed */
int wf_faults_parse(const char *s, weft_faults *out);
/* Before a task's SQE is submitted: true = drop it and return *res
 * instead (ERRORS); it may also shorten the SQE (SHORT). */
bool wf_faults_submit(struct wf_loop *L, struct io_uring_sqe *sqe, int *res);
/* At a task's terminal CQE: true = held back for a round (DELAY). */
bool wf_faults_hold(struct wf_loop *L, struct weft_task *t);
/* Whether this cancel of an awaited operation misses it (CANCEL_MISS). */
bool wf_faults_cancel_miss(struct wf_loop *L);
bool wf_faults_holding(const struct wf_loop *L); /* tasks held back */
void wf_faults_round(struct wf_loop *L); /* between rounds: release them */
bool wf_faults_alloc_fails(struct wf_loop *L); /* ALLOC */

/* ---- weft's own allocations (engine/alloc.c): counted, and failing
 * under WEFT_FAULT_ALLOC on a loop's thread; freed with wf_free only ---- */

void *wf_malloc(size_t n);
void *wf_calloc(size_t n, size_t size);
void *wf_realloc(void *p, size_t n);
char *wf_strdup(const char *s);
void wf_free(void *p);
size_t wf_alloc_live(void); /* blocks taken and not yet given back */

/* ---- timers (engine/timer.c): a pairing heap, no allocation ---- */

void wf_timer_arm(struct wf_loop *L, struct weft__timer *t, weft_time when);
void wf_timer_disarm(struct wf_loop *L, struct weft__timer *t);
static inline bool wf_timer_armed(const struct weft__timer *t)
{
    return t->armed;
}
void wf_timers_expire(struct wf_loop *L, weft_time now);
/* Fire the current loop's timers that are due (a kernel timeout said the
 * time has come; scopes must know before the caller checkpoints). */
void wf_timers_fire_due(void);
static inline weft_time wf_timer_next(const struct wf_loop *L)
{
    return L->timers ? L->timers->when : WEFT_FOREVER;
}

/* ---- the clock (engine/clock.c) ---- */

weft_time wf_real_now(void); /* CLOCK_MONOTONIC, whatever the loop's clock */
int64_t wf_clock_idle_wait(struct wf_loop *L);
void wf_clock_after_wait(struct wf_loop *L, weft_time next, int n);

/* ---- scopes (engine/scope.c) ---- */

enum {
    WF_SCOPE_SHIELD = 1,
    WF_SCOPE_CANCELLED = 2, /* cancel called (or deadline passed) */
    WF_SCOPE_CAUGHT = 4,
    WF_SCOPE_FAIL = 8,      /* weft_fail_after */
    WF_SCOPE_TASKROOT = 16, /* a task's root node */
    WF_SCOPE_GROUP = 32,    /* a group's scope */
    WF_SCOPE_REMOTE = 64,   /* a group's child on another core (no task) */
};
enum { WF_SCOPE_LIVE = 1, WF_SCOPE_EXITED = 2 };
enum { WF_REASON_NONE, WF_REASON_CANCEL, WF_REASON_DEADLINE };

bool wf_cancelled(const struct weft_task *t);
void wf_scope_link(weft_scope *s, weft_scope *parent, struct weft_task *t,
                   uint16_t flags);
void wf_scope_unlink(struct wf_loop *L, weft_scope *s);
void wf_scope_reparent(weft_scope *s, weft_scope *parent);
bool wf_scope_outer_visible(const weft_scope *s);
void wf_scope_do_cancel(weft_scope *s, int reason);
int wf_scope_close(struct weft_task *t, weft_scope *s, int rc);
void wf_scope_check_innermost(struct weft_task *t, weft_scope *s,
                              const char *call);
void wf_scope_check_fresh(const struct weft_task *t, const weft_scope *s,
                          const char *call);
int wf_run_error_set(int rc, const char *why);

/* engine/sweep.c: a sweep's k-th checkpoint came: cancel the run; what
 * a loop takes from a sweep when it opens, and leaves it when it ends. */
void wf_sweep_fire(struct wf_loop *L);
void wf_sweep_loop_open(struct wf_loop *L);
void wf_sweep_loop_end(struct wf_loop *L, unsigned inflight);
bool wf_sweep_active(void); /* this thread runs a sweep's run */
/* engine/stack.c: task stacks mapped now, in the whole process. */
long wf_stacks_mapped(void);

/*
 * Every checkpoint passes here once: it is counted (weft_checkpoint_count;
 * a sweep cancels its run at the k-th), then says whether the task is
 * cancelled. cancel_at is 0 unless a sweep set it, and the count starts
 * at 1, so outside a sweep the first test is never true.
 */
static inline bool wf_checkpoint_cancelled(struct weft_task *t)
{
    struct wf_loop *L = t->loop;
    if (wf_unlikely(++L->checkpoints == L->cancel_at))
        wf_sweep_fire(L);
    return wf_unlikely(L->ncancelled) && wf_cancelled(t);
}

/* A checkpoint's first half: -EPERM outside a task, -ECANCELED if cancelled. */
static inline int wf_check(struct weft_task **out)
{
    struct weft_task *t = wf_self();
    if (wf_unlikely(!t))
        return -EPERM;
    *out = t;
    return wf_checkpoint_cancelled(t) ? -ECANCELED : 0;
}

/*
 * The entry check of a public call, in the one order every call keeps:
 * -EPERM (not in a task of a loop), -EINVAL (args_ok is false), -EBADF
 * (closed is true: the handle is closing or closed), then the
 * checkpoint's -ECANCELED (wf_entry only: calls that never block, such as
 * the try_ forms, use wf_entry_nowait). 0 = go on; *out is the caller.
 * wf_entry_err takes the argument verdict as an errno (0, -EINVAL, or
 * -EFAULT for a NULL buffer or path, as the kernel says) and says whether
 * the call is a checkpoint. Write `closed` so that it reads the handle
 * only when it is valid:
 * wf_entry(&t, s != NULL, s && s->gate.closing).
 */
static inline int wf_entry_err(struct weft_task **out, int bad_arg, bool closed,
                               bool checkpoint)
{
    struct weft_task *t = wf_self();
    if (wf_unlikely(!t))
        return -EPERM;
    if (wf_unlikely(bad_arg))
        return bad_arg;
    if (wf_unlikely(closed))
        return -EBADF;
    *out = t;
    return checkpoint && wf_checkpoint_cancelled(t) ? -ECANCELED : 0;
}

static inline int wf_entry_nowait(struct weft_task **out, bool args_ok,
                                  bool closed)
{
    return wf_entry_err(out, args_ok ? 0 : -EINVAL, closed, false);
}

static inline int wf_entry(struct weft_task **out, bool args_ok, bool closed)
{
    return wf_entry_err(out, args_ok ? 0 : -EINVAL, closed, true);
}

/* ---- waiter queues of the sync primitives and channels (engine/waitq.c) ----
 */

/*
 * A task waiting on a primitive, on its own stack. Whoever grants it
 * (a release, a set, a send) unlinks it, stores the result and wakes it;
 * waking clears the task's wait, so a cancellation that comes later cannot
 * undo a hand-off: the waiter returns success and its next checkpoint
 * reports the cancellation. A cancellation that comes first unlinks the
 * waiter, and the hand-off goes to the next one.
 */
struct wf_waiter {
    struct wf_wait wait;
    wf_link node;
    size_t *count;   /* the queue's length counter */
    void *item;      /* a channel's item */
    const void *key; /* a limiter's borrower, a channel's handle */
    int res;
};

int wf_waiter_block(struct wf_waiter *wr, wf_link *queue, size_t *count,
                    const char *what, bool cancellable);
void wf_waiter_grant(struct wf_waiter *wr, int res);
static inline struct wf_waiter *wf_waiter_first(wf_link *queue)
{
    return wf_list_empty(queue)
               ? NULL
               : wf_container_of(queue->next, struct wf_waiter, node);
}

/* ---- channel handles (engine/chan.c; shared ones: engine/shchan.c) ---- */

/*
 * Every handle, local or shared, starts with this: the public calls look
 * at `shared` first and hand shared handles to engine/shchan.c, whose
 * channel `ch` then points at (a struct wf_shchan). A shared handle's
 * `closed` is read and written with atomics (any thread may close it).
 */
struct wf_chan;
struct wf_end {
    struct wf_chan *ch;
    struct wf_end *next;
    bool closed;
    bool shared;
};
struct weft_chan_tx {
    struct wf_end e;
};
struct weft_chan_rx {
    struct wf_end e;
};

int wf_shchan_send(weft_chan_tx *tx, void *item);
int wf_shchan_try_send(weft_chan_tx *tx, void *item);
int wf_shchan_recv(weft_chan_rx *rx, void **item);
int wf_shchan_try_recv(weft_chan_rx *rx, void **item);
struct wf_end *wf_shchan_clone(struct wf_end *e, bool tx);
void wf_shchan_close(struct wf_end *e, bool tx);
int wf_shchan_stats(const struct wf_end *e, weft_chan_stats *st);

/* ---- ring operations from tasks (engine/op.c) ---- */

/*
 * One operation a task awaits (its own SQE, plus a linked timeout when a
 * deadline is given). It lives wherever the awaiting code keeps it (its
 * stack, or a stream that must be able to kill it on close) and stays
 * there until the terminal CQE. One cache line: everything a completion
 * and the awaiting task touch; what a deadline or a cancellation needs
 * besides is in the task's record (struct wf_io_extra).
 */
struct wf_io {
    struct wf_completion op; /* the operation's CQE */
    struct wf_wait wait;
    int res, tres;
    unsigned cqe_flags;
    uint8_t pending; /* CQEs still owed (cancels' answers too); 0 once
                        returned */
    uint8_t cancels; /* ASYNC_CANCELs sent, resends not counted */
    bool killed;     /* wf_io_kill sent its cancel */
    bool answered;   /* the operation posted a CQE: nothing to cancel */
};
_Static_assert(sizeof(struct wf_io) <= 64, "an await's record is one line");

/* Submit sqe (from weft_uring_sqe), wait for the terminal CQE; deadline
 * WEFT_FOREVER for none, else a linked timeout (-ETIMEDOUT); on a virtual
 * clock, a timer that cancels the operation (-ETIMEDOUT as well). */
int wf_io_await(struct wf_io *io, struct io_uring_sqe *sqe, weft_time deadline,
                const char *what);
/* The same with the record on the stack and no deadline. */
int wf_await(struct io_uring_sqe *sqe, const char *what);
/* An SQE taken but not to be submitted (its task was cancelled or its
 * object closed while it waited for ring room): taken back or a no-op. */
void wf_sqe_drop(struct wf_loop *L, struct io_uring_sqe *sqe);
/* From another task (a close): cancel io if it is in flight. The waiter
 * then returns -ECANCELED (or the result, if it completed anyway). */
void wf_io_kill(struct wf_io *io);
/*
 * The polled ring (WEFT_OPT_IOPOLL): an SQE there for one O_DIRECT read or
 * write, or NULL (no such ring, fault injection on, or as many operations
 * in flight there as it has SQEs): then the main ring's. Awaited with
 * wf_io_await_polled: no deadline (an IOPOLL ring takes no linked timeout)
 * and no ASYNC_CANCEL (it takes none either: -EINVAL on 6.1 and 6.18): a
 * cancellation waits for the operation, which a block device ends quickly,
 * and the result stands; the next checkpoint reports it. The kernel does
 * take IORING_REGISTER_SYNC_CANCEL there, but it searches io-wq and the
 * poll lists, not the device's queue where a polled read waits, and it
 * would block the loop's thread meanwhile. A -EOPNOTSUPP result (the
 * device has no polled queues) moved nothing: the caller reissues on the
 * main ring.
 */
struct io_uring_sqe *wf_poll_sqe(void);
int wf_io_await_polled(struct wf_io *io, struct io_uring_sqe *sqe,
                       const char *what);

/*
 * A gate (engine/gate.c): closing an object while tasks use it. A call
 * enters (after wf_entry said the gate is open) and leaves when done;
 * it takes its SQEs with wf_gate_sqe (NULL: closed meanwhile, -EBADF)
 * and awaits them with wf_gate_await (listed while in flight; -EBADF if
 * the close cut it short). wf_gate_close = shut (nothing new enters; the
 * listed operations and, with kill set, the object's own are cancelled)
 * + wait (until every call has left); then the object may be freed.
 */
struct wf_gate {
    unsigned users; /* calls inside, armed standing operations */
    bool closing;
    wf_link ops;                     /* struct wf_gate_op, in flight */
    struct weft_task *closer;        /* waiting in wf_gate_wait */
    void (*kill)(struct wf_gate *g); /* the object's own cancellations */
};

struct wf_gate_op {
    struct wf_io io;
    wf_link node;
};

void wf_gate_init(struct wf_gate *g);
static inline void wf_gate_enter(struct wf_gate *g)
{
    g->users++;
}
void wf_gate_leave(struct wf_gate *g);
struct io_uring_sqe *wf_gate_sqe(struct wf_gate *g);
int wf_gate_await(struct wf_gate *g, struct io_uring_sqe *sqe,
                  weft_time deadline, const char *what);
/* The same for an SQE of wf_poll_sqe (no deadline). */
int wf_gate_await_polled(struct wf_gate *g, struct io_uring_sqe *sqe,
                         const char *what);
/* The same, and the terminal CQE's flags in *flags (a buffer it took). */
int wf_gate_await_flags(struct wf_gate *g, struct io_uring_sqe *sqe,
                        weft_time deadline, const char *what, unsigned *flags);
void wf_gate_shut(struct wf_gate *g, bool kill_ops);
void wf_gate_wait(struct wf_gate *g, const char *what);
void wf_gate_close(struct wf_gate *g, const char *what);

/*
 * Standing operations: no task awaits them; a handler (c->fn, run while
 * the CQ is reaped, so it may take no SQE) gets each completion, e.g. a
 * listener's multishot accepts. Take an SQE, prepare it, then start it;
 * cancel sends an ASYNC_CANCEL, and c->fn sees the terminal CQE.
 *
 * They are counted apart from the tasks' operations (wf_ring.standing)
 * and take none of max_inflight's room, which a loop may have set as low
 * as 2. The mailbox's one poll, one or two accepts per open listener (one
 * per address), and one multishot receive per stream that turned it on
 * (api/stream/socket.c), each armed at most once at a time. The default
 * max_inflight keeps WF_STANDING_ROOM CQ entries for them; more (many
 * listeners, thousands of multishot streams each posting a few CQEs
 * before its pause lands) only overflows into NODROP's backlog, flushed,
 * never lost: a multishot receive the kernel ends for it is armed again.
 */
enum { WF_STANDING_ROOM = 32 };
struct io_uring_sqe *wf_standing_sqe(struct wf_loop *L);
/* weft_uring_sqe's work on either backend: what weft's own calls use. */
struct io_uring_sqe *wf_sqe(void);
/* Whether the loop's backend carries out opcode (either backend). */
bool wf_has_op(int opcode);

/* close(2) for any descriptor a loop may have waited on: the epoll
 * backend forgets it first (its number may come back as another file). */
static inline int wf_close(int fd)
{
    if (wf_cur && wf_cur->ring.ep)
        wf_epoll_forget(&wf_cur->ring, fd);
    return close(fd);
}
void wf_standing_start(struct wf_loop *L, struct io_uring_sqe *sqe,
                       struct wf_completion *c);
void wf_standing_cancel(struct wf_loop *L, struct wf_completion *c);

/* The loop's table of registered files: made sparse with n slots the
 * first time (0, or -errno); a slot emptied at once (error paths). */
int wf_files_table(struct wf_loop *L, unsigned n);
void wf_files_clear(struct wf_loop *L, int slot);

/*
 * The loop's provided buffers (engine/bufs.c): receives whose buffer the
 * kernel picks when data arrives. wf_bufs sets the ring up on first use
 * (NULL where the kernel has none: then receive into a buffer of your
 * own). select makes a receive prepared with no buffer take one; take
 * reads its CQE (wf_io.cqe_flags): the bytes' address, or NULL if it
 * took none (res <= 0, or -ENOBUFS: the ring was empty); put gives a
 * piece back once its bytes are no longer needed.
 */
struct wf_bufs_piece { /* of the calling loop's ring: 4 bytes */
    uint16_t bid;
    bool held; /* false: none */
};
struct wf_bufring *wf_bufs(struct wf_loop *L);
void wf_bufs_select(struct wf_bufring *b, struct io_uring_sqe *sqe);
void *wf_bufs_take(struct wf_loop *L, struct wf_bufring *b, int res,
                   unsigned flags, struct wf_bufs_piece *piece);
void wf_bufs_put(struct wf_bufs_piece *piece);
void wf_bufs_close(struct wf_loop *L);
/*
 * Blocks of 4, 8, 16, 32 or 64 KiB that streams' read-aheads come from:
 * a block freed goes to the calling loop's list and the next one taken
 * is the last one freed, still in the cache (the role a buffer ring
 * plays where the kernel fills it). Any other size is malloc's. get:
 * cap is rounded up to a class; NULL when out of memory. put: p may be
 * NULL; outside a loop it is freed.
 */
void *wf_block_get(size_t *cap);
void wf_block_put(void *p, size_t cap);

#include <errno.h>

#endif
