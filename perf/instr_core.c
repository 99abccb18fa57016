/* SPDX-License-Identifier: MIT */
/*
 * perf/instr_core.c - the core hot paths for an instruction count
 * (perf/instr-bench runs it under callgrind): what a wall-clock figure on
 * a shared machine cannot show, a count shows the same in every run.
 *
 *   instr_core nop ROUNDS         64 tasks, each: weft_uring_sqe,
 *                                 io_uring_prep_nop, weft_uring_await;
 *                                 64 NOPs per loop round
 *   instr_core raw ROUNDS         liburing alone: 64 NOPs, one
 *                                 submit_and_wait(64), reap (the same ring
 *                                 flags as weft's, as in bench_core)
 *   instr_core checkpoint ROUNDS  two tasks calling weft_checkpoint in
 *                                 turn, 64 each per round
 *   instr_core spawn ROUNDS       ROUNDS/4 + 1 groups of 256 empty tasks
 *
 * Under Valgrind a loop marks what the kernel writes into a task's buffers
 * (engine/op.c), a path a native run never takes: the weft modes turn the
 * marking off, so the count is the native path's.
 */
#include <weft.h>
#include <weft/uring.h>

#include "engine/engine.h" /* wf_cur, to turn Valgrind's marking off */

#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TASKS = 64, SPAWN_BATCH = 256 };

static long rounds;
static bool stop;

static void native_path(void)
{
    wf_cur->valgrind = false;
}

static int nop_worker(void *arg)
{
    long *left = arg;
    while (*left > 0) {
        (*left)--;
        struct io_uring_sqe *sqe = weft_uring_sqe();
        if (!sqe)
            return -ENOTSUP; /* the epoll backend: no ring */
        io_uring_prep_nop(sqe);
        int rc = weft_uring_await(sqe);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int nop_main(void *arg)
{
    native_path();
    long left = rounds * TASKS;
    weft_group g;
    weft_group_enter(&g);
    for (int i = 1; i < TASKS; i++)
        weft_group_spawn(&g, nop_worker, &left);
    int rc = nop_worker(&left);
    return weft_group_exit(&g, rc);
}

static int partner(void *arg)
{
    while (!stop)
        weft_checkpoint();
    return 0;
}

static int checkpoint_main(void *arg)
{
    native_path();
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, partner, NULL);
    for (long i = 0; i < rounds * TASKS; i++)
        weft_checkpoint();
    stop = true;
    return weft_group_exit(&g, 0);
}

static int empty(void *arg)
{
    return 0;
}

static int spawn_main(void *arg)
{
    native_path();
    for (long k = 0; k < rounds / 4 + 1; k++) {
        weft_group g;
        weft_group_enter(&g);
        int rc = 0;
        for (int i = 0; i < SPAWN_BATCH && rc == 0; i++)
            rc = weft_group_spawn(&g, empty, NULL);
        rc = weft_group_exit(&g, rc);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int raw(void)
{
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL |
              IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p.cq_entries = 64 * 256; /* weft's default for 256 SQEs */
    int rc = io_uring_queue_init_params(256, &ring, &p);
    if (rc < 0)
        return rc;
    (void)io_uring_register_ring_fd(&ring);
    for (long r = 0; r < rounds && rc >= 0; r++) {
        for (int i = 0; i < TASKS; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, (uint64_t)i + 1);
        }
        rc = io_uring_submit_and_wait(&ring, TASKS);
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            if (cqe->res < 0)
                rc = cqe->res;
            n++;
        }
        io_uring_cq_advance(&ring, n);
    }
    io_uring_queue_exit(&ring);
    return rc < 0 ? rc : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (rounds = atol(argv[2])) <= 0) {
        fprintf(stderr, "usage: instr_core nop|raw|checkpoint|spawn ROUNDS\n");
        return 2;
    }
    weft_fn fn = NULL;
    if (!strcmp(argv[1], "nop"))
        fn = nop_main;
    else if (!strcmp(argv[1], "checkpoint"))
        fn = checkpoint_main;
    else if (!strcmp(argv[1], "spawn"))
        fn = spawn_main;
    else if (strcmp(argv[1], "raw")) {
        fprintf(stderr, "instr_core: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    weft_options o;
    memset(&o, 0, sizeof o);
    o.sq_entries = 256;
    int rc = fn ? weft_run(fn, NULL, &o) : raw();
    if (rc == -ENOTSUP && fn == nop_main && weft_backend_name()) {
        fprintf(stderr,
                "instr_core nop: raw ring NOPs need the io_uring backend, "
                "and the loop ran on %s\n",
                weft_backend_name());
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "instr_core %s: %s\n", argv[1], weft_strerror(rc));
        return 1;
    }
    return 0;
}
