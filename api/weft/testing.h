/* SPDX-License-Identifier: MIT */
/*
 * weft/testing.h - tools for testing programs built on weft (and weft
 * itself): fault injection, a cancellation sweep, an in-memory stream
 * pair, waiting until every task is blocked, a free port and a sequencer.
 * The virtual clock is in <weft/base.h> and <weft/time.h>
 * (weft_options.clock, weft_clock_advance). docs/guide/testing.md shows
 * them together.
 */
#ifndef WEFT_TESTING_H
#define WEFT_TESTING_H

#include <stddef.h>
#include <stdint.h>
#include <weft/base.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fault injection (seeded, reproducible; off and free by default) ---- */

#define WEFT_FAULT_ERRORS                                                      \
    1u                      /* completions replaced by errors the kernel       \
                               could return for that operation                 \
                               (-ECONNRESET, -EPIPE, -EIO, -ENOMEM,            \
                               -EAGAIN, -EINTR) */
#define WEFT_FAULT_SHORT 2u /* reads and writes cut short */
#define WEFT_FAULT_DELAY 4u /* completions held back for a round */
#define WEFT_FAULT_ALLOC 8u /* weft's own allocations fail (-ENOMEM) */
#define WEFT_FAULT_CANCEL_MISS                                                 \
    16u /* a cancel misses its operation (the kernel answers -ENOENT while     \
           it is in flight, as Linux 6.1 can): weft must send it again */
#define WEFT_FAULT_ALL 31u

/*
 * weft_options.faults, or the environment variable WEFT_FAULTS for every
 * loop of the process ("seed=N,rate=R,kinds=errors+short+delay+alloc+
 * cancel_miss"; "1" for the defaults). The same seed and the same program make
 * the same faults. The seed is printed on stderr when a loop with faults ends
 * with an error, so that the run can be replayed.
 */
typedef struct weft_faults {
    uint64_t seed;  /* 0 = one from the clock (printed) */
    unsigned kinds; /* WEFT_FAULT_*; 0 = all */
    unsigned rate;  /* faults per million eligible events; 0 = 10,000 */
} weft_faults;

/* The current loop's fault seed (0 if faults are off), and how many
 * faults it has injected so far. */
uint64_t weft_faults_seed(void);
uint64_t weft_faults_injected(void);

/* ---- cancellation sweep ---- */

/* Checkpoints the current loop has passed (every call that is a
 * checkpoint counts once, whether or not it blocked). */
uint64_t weft_checkpoint_count(void);

/*
 * Run scenario(arg) again and again under weft_run: once to count its
 * checkpoints, then once per checkpoint k, cancelling the root task's
 * scope when the k-th is reached, then (fault_seeds times) under random
 * fault injection. After each run it checks that the loop ended, that no
 * fd, stack, ring operation or weft allocation was left, and that the
 * scenario returned 0, -ECANCELED or one of `allowed`; a scenario checks
 * its own conservation (bytes, items) and returns -EPROTO if it is
 * broken. Returns 0 if every run passed, else the first failure (and
 * fills *r either way).
 */
typedef struct weft_sweep_opts {
    const weft_options *loop; /* the scenario's loop options, or NULL */
    weft_time budget;         /* stop trying new points after this much
                                 real time; 0 = no bound */
    unsigned fault_seeds;     /* runs under fault injection; 0 = none */
    uint64_t first_seed;      /* the first of them; 0 = 1 */
    const int *allowed;       /* other results a run may end with */
    size_t nallowed;
    bool verbose; /* a line per failing run on stderr */
} weft_sweep_opts;

typedef struct weft_sweep_result {
    uint64_t checkpoints; /* in the uncancelled run */
    uint64_t points;      /* cancellation points tried */
    uint64_t seeds;       /* fault seeds tried */
    uint64_t runs;
    uint64_t leaks;               /* runs that left something behind */
    uint64_t failures;            /* runs with a result not allowed */
    uint64_t first_failing_point; /* 0 if none */
    uint64_t first_failing_seed;  /* 0 if none */
} weft_sweep_result;

int weft_sweep(weft_fn scenario, void *arg, const weft_sweep_opts *opts,
               weft_sweep_result *r);

/* ---- helpers for tests ---- */

/*
 * Two connected in-memory streams (no fd): what one sends the other
 * receives. chunk > 0 caps what one receive returns (framing code meets
 * every split); delay > 0 holds each transfer back for that long (on the
 * loop's clock, so a virtual clock makes it free).
 */
typedef struct weft_memstream_opts {
    size_t chunk;    /* 0 = no cap */
    weft_time delay; /* 0 = none */
    size_t capacity; /* bytes buffered per direction before send waits;
                        0 = 64 KiB */
} weft_memstream_opts;
int weft_memstream_pair(weft_stream **a, weft_stream **b,
                        const weft_memstream_opts *opts);

/* trio's wait_all_tasks_blocked: return once every other task of the
 * loop is blocked and no completion is pending (a checkpoint). */
int weft_wait_all_tasks_blocked(void);

/* A TCP port on 127.0.0.1 that was free a moment ago (anyio's
 * free_tcp_port), or -errno. */
int weft_free_port(void);

/*
 * trio's Sequencer: tasks take turns in the order of the numbers they
 * give. weft_sequencer_begin(s, n) waits until every position below n
 * has ended; weft_sequencer_end(s, n) ends position n. A cancelled wait
 * returns -ECANCELED and the sequence is broken for everyone after it
 * (-EPIPE), as in trio.
 */
typedef struct weft_sequencer {
    unsigned next; /* members are weft's */
    bool broken;
    bool wf_running; /* position `next` has begun and not ended */
    struct weft__link wf_waiters;
    size_t wf_nwait;
} weft_sequencer;
void weft_sequencer_init(weft_sequencer *s);
int weft_sequencer_begin(weft_sequencer *s, unsigned position);
void weft_sequencer_end(weft_sequencer *s, unsigned position);

#ifdef __cplusplus
}
#endif
#endif
