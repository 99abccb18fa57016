/* SPDX-License-Identifier: MIT */
/*
 * weft/base.h - what every part of weft shares: time, errors, task
 * functions, loop options and weft_run.
 *
 * All calls return >= 0 on success and a negative errno on failure, as the
 * kernel and liburing do. weft_strerror() names any code.
 */
#ifndef WEFT_BASE_H
#define WEFT_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Nanoseconds of CLOCK_MONOTONIC. */
typedef int64_t weft_time;

#define WEFT_USEC ((weft_time)1000)
#define WEFT_MSEC ((weft_time)1000000)
#define WEFT_SEC ((weft_time)1000000000)
#define WEFT_FOREVER INT64_MAX

/* A task: its return value is its result (0 or a negative errno). */
typedef int (*weft_fn)(void *arg);

/*
 * Private building blocks of the complete types users declare on their own
 * stack (scopes, groups, sync primitives). Their members are weft's alone.
 */
struct weft__link {
    struct weft__link *next, *prev;
};

struct weft__timer { /* a node of the loop's pairing heap */
    weft_time when;
    struct weft__timer *child, *next, *prev;
    void (*fire)(struct weft__timer *t);
    bool armed;
};

struct weft_task;

/* Force a ring set-up mode instead of the best the kernel offers. */
enum weft_ring_mode {
    WEFT_RING_AUTO = 0,  /* DEFER_TASKRUN, else COOP_TASKRUN, else plain */
    WEFT_RING_DEFER = 1, /* SINGLE_ISSUER | DEFER_TASKRUN, or fail */
    WEFT_RING_COOP = 2,  /* COOP_TASKRUN | TASKRUN_FLAG, or fail */
    WEFT_RING_PLAIN = 3, /* no task-run flags */
};

/* weft_options.flags */
/* no SIGSEGV handler naming the task */
#define WEFT_OPT_NO_OVERFLOW_HANDLER 1u
/* workers wake the loop with IORING_OP_MSG_RING instead of an eventfd
 * (slower here; see docs/guide/threads.md) */
#define WEFT_OPT_WAKE_MSG_RING 2u
/* IORING_SETUP_SQPOLL: a kernel thread takes submissions from the ring,
 * so a busy loop submits without system calls; it spins for
 * sq_thread_idle before sleeping, burning a core meanwhile. Takes
 * ring_mode AUTO (then PLAIN) or PLAIN. Not by default; see
 * docs/guide/files.md, "Ring options". */
#define WEFT_OPT_SQPOLL 4u
/* IORING_SETUP_IOPOLL, on a second ring of the loop's: reads and writes
 * of WEFT_FILE_DIRECT files go there and complete by polling the device
 * (NVMe with nvme.poll_queues); a device without polled queues refuses
 * them and they go to the main ring, transparently. The loop spins while
 * polled operations are in flight, burning a core. Ignored on epoll. Not
 * by default; see docs/guide/files.md, "Ring options". */
#define WEFT_OPT_IOPOLL 8u
/* Say on stderr, once per process, which backend a loop got and why
 * (WEFT_BACKEND_AUTO falling back to epoll names io_uring's refusal).
 * The environment variable WEFT_DIAG=1 sets it for every loop. */
#define WEFT_OPT_DIAG 16u

/* weft_options.backend (API.md, "Backends"): io_uring, or epoll where
 * io_uring is refused (a container's seccomp profile, the sysctl
 * kernel.io_uring_disabled, an old kernel). The environment variable
 * WEFT_BACKEND=uring|epoll overrides it for every loop of the process.
 * See docs/guide/backends.md. */
#define WEFT_BACKEND_AUTO 0  /* io_uring, else epoll */
#define WEFT_BACKEND_URING 1 /* io_uring, or weft_run fails */
#define WEFT_BACKEND_EPOLL 2 /* epoll, with a worker pool for files */

/* weft_options.clock (API.md, "Test clock"): trio's MockClock. */
#define WEFT_CLOCK_REAL 0
#define WEFT_CLOCK_VIRTUAL 1

struct weft_faults;

/*
 * Loop options. Zero-initialise, then set what you need: every zero field
 * means "the default".
 */
typedef struct weft_options {
    size_t stack_size;     /* per task; 0 = 256 KiB (1 MiB under ASan) */
    unsigned sq_entries;   /* 0 = 256 */
    unsigned cq_entries;   /* 0 = 64 x sq_entries (room for many idle
                              operations, e.g. one recv per connection) */
    unsigned max_inflight; /* tasks' operations in flight (weft's own
                              armed ones not counted); 0 = cq - sq
                              entries, less a few for weft's own */
    unsigned stack_cache;  /* stacks kept for reuse; 0 = 1024 */
    unsigned ring_mode;    /* enum weft_ring_mode */
    unsigned flags;        /* WEFT_OPT_* */
    weft_time thread_idle; /* idle workers retire after this; 0 = 10 s
                              (the pool is per process: the last loop
                              started with a value sets it) */
    unsigned clock;        /* WEFT_CLOCK_REAL (0) or WEFT_CLOCK_VIRTUAL */
    weft_time autojump;    /* virtual clock: how long (real time) every
                              task must stay blocked with no completion
                              before time jumps to the next timer; 0 =
                              1 ms, WEFT_FOREVER = never (only
                              weft_clock_advance moves it) */
    const struct weft_faults *faults; /* fault injection (weft/testing.h);
                               NULL = off, unless WEFT_FAULTS is set */
    unsigned iowq_max_workers;        /* bound on the kernel's io-wq workers of
                                      each loop's thread (bounded and unbounded
                                      work alike; IORING_REGISTER_IOWQ_MAX_WORKERS,
                                      Linux 5.15+); 0 = the kernel's default */
    unsigned sq_thread_idle; /* WEFT_OPT_SQPOLL: milliseconds its kernel
                                thread spins with nothing to do before it
                                sleeps; 0 = 1000 (the kernel's default) */
    unsigned backend;        /* WEFT_BACKEND_*; 0 = AUTO */
} weft_options;

/*
 * Make a loop (one io_uring) on the calling thread, run main(arg) as its
 * root task and return main's result once main and every task it started
 * have ended. If the loop cannot start: a negative errno, and
 * weft_strerror() of that code says why (for example that io_uring is
 * disabled by sysctl or seccomp).
 */
int weft_run(weft_fn main, void *arg, const weft_options *opts);

/* The calling loop's backend: "io_uring" or "epoll"; outside a loop,
 * the one the last loop this thread ran had, else NULL. */
const char *weft_backend_name(void);

/* A message for any code weft returns (a negative errno). */
const char *weft_strerror(int rc);

#ifdef __cplusplus
}
#endif
#endif
