/* SPDX-License-Identifier: MIT */
// perf/bench_core.cc - weft's core hot paths, each next to its baseline.
//
// Every benchmark reports items_per_second and per_item (per NOP, per
// checkpoint, per switch, per task, per recv); perf/run pairs each weft
// figure with its baseline from the same run and prints the ratio.
//
//   nop_weft_64tasks/CQ 64 tasks, each: weft_uring_sqe, prep_nop, await
//   nop_raw_batch64/CQ  liburing alone: 64 NOPs, submit_and_wait(64), reap
//                       (both on a ring of 256 SQEs and CQ CQEs)
//   checkpoint_pingpong two tasks calling weft_checkpoint in turn
//   spawn_join_1000     weft_group_spawn of 1000 empty tasks, group exit
//   sleep0              weft_sleep(0) in a lone task (a yield)
//   clock_now           weft_now() alone (reference for deadlines)
//   switch_bare         wf_ctx_switch between two hand-made contexts
//   recv_*              1-byte write then recv over an AF_UNIX socketpair,
//                       under a scope deadline (timer heap), a linked
//                       timeout (kernel), or no deadline at all
//
// The weft benchmarks run Google Benchmark's state loop inside the root
// task of one weft_run per call: weft_run's set-up and tear-down fall
// outside the timed loop.
//
// Rates (items_per_second, per_item) come from the thread's CPU time,
// Google Benchmark's default, which includes the kernel's time in the
// thread's system calls. Everything measured here runs on the benchmark
// thread (NOPs and recvs of ready data complete inline in io_uring_enter,
// DEFER_TASKRUN runs task work in the thread; nothing goes to io-wq), so
// CPU time is the whole cost, and unlike wall-clock time it does not count
// the time other processes take the CPU away. On a quiet machine the two
// agree (the console table shows both).

#include <benchmark/benchmark.h>

#include <weft.h>
#include <weft/uring.h>

#include <liburing.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif

// The engine's context switch (engine/switch_*.S). Hidden in the shared
// library, but a static link resolves it.
extern "C" void wf_ctx_switch(void **save_sp, void *const *load_sp);

namespace {

constexpr unsigned kSqEntries = 256; // weft's default SQ size
constexpr int kNopTasks = 64;
constexpr int kSpawnBatch = 1000;

// Items per second, and its inverse: the console shows per_item=93.6ns.
void report_items(benchmark::State &state, double items)
{
    state.SetItemsProcessed(static_cast<int64_t>(items));
    state.counters["per_item"] = benchmark::Counter(
        items, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// ---- running a benchmark body as a weft root task ----

template <class F> int call_body(void *p)
{
    return (*static_cast<F *>(p))();
}

// Run body() as the root task of a fresh loop. The state loop runs inside
// it, so the root's stack must hold Google Benchmark's frames: 256 KiB.
// cq_entries 0 is weft's default.
template <class F>
void in_weft(benchmark::State &state, F body, unsigned cq_entries = 0)
{
    weft_options o;
    std::memset(&o, 0, sizeof o);
    o.stack_size = 256 * 1024;
    o.sq_entries = kSqEntries;
    o.cq_entries = cq_entries;
    int rc = weft_run(call_body<F>, &body, &o);
    if (rc < 0 && !state.error_occurred()) {
        static char msg[256];
        std::snprintf(msg, sizeof msg, "weft_run: %s", weft_strerror(rc));
        state.SkipWithError(msg);
    }
}

void label_ring(benchmark::State &state, unsigned flags)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "ring flags 0x%x", flags);
    state.SetLabel(buf);
}

// ---- 1. NOPs through the ring ----

// Raw ring operations (weft/uring.h) are io_uring's only: on the epoll
// backend weft_uring_sqe() returns NULL, and these benchmarks say so.
constexpr const char *kNeedsUring =
    "raw ring operations need the io_uring backend; this loop runs on epoll";

struct NopShared {
    bool stop = false;
    uint64_t ops = 0; // NOPs completed by the workers
    int err = 0;
};

int nop_once()
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!sqe)
        return -ENOTSUP; // the epoll backend: no ring
    io_uring_prep_nop(sqe);
    return weft_uring_await(sqe);
}

int nop_worker(void *arg)
{
    auto *sh = static_cast<NopShared *>(arg);
    while (!sh->stop) {
        int rc = nop_once();
        if (rc < 0) {
            sh->err = rc;
            return rc;
        }
        sh->ops++;
    }
    return 0;
}

// The root is one of the 64 tasks: it runs the state loop, one NOP per
// iteration, while 63 workers do the same until told to stop. Each loop
// round then queues 64 NOPs and makes one submit-and-wait, as the raw
// baseline does. Items are the NOPs completed inside the timed loop.
// The argument is the CQ size, the same for weft's ring and the raw one.
void BM_nop_weft_64tasks(benchmark::State &state)
{
    in_weft(
        state,
        [&state]() -> int {
            NopShared sh;
            weft_group g;
            weft_group_enter(&g);
            for (int i = 1; i < kNopTasks; i++)
                weft_group_spawn(&g, nop_worker, &sh);
            label_ring(state, weft_uring_setup_flags());
            int err = 0;
            for (auto _ : state) {
                int rc = nop_once();
                if (rc < 0) {
                    err = rc;
                    break;
                }
            }
            double done = double(state.iterations()) + double(sh.ops);
            sh.stop = true;
            weft_group_exit(&g, 0);
            if (err == -ENOTSUP || sh.err == -ENOTSUP) {
                state.SkipWithError(kNeedsUring);
                return 0;
            }
            if (err || sh.err) {
                state.SkipWithError("a NOP failed");
                return 0;
            }
            report_items(state, done);
            return 0;
        },
        unsigned(state.range(0)));
}

// The same ring set-up as weft's (SINGLE_ISSUER | DEFER_TASKRUN |
// TASKRUN_FLAG | SUBMIT_ALL, CQSIZE | CLAMP, 256 SQ entries and the CQ
// size asked for, a registered ring fd),
// falling back to no task-run flags if the kernel refuses.
int raw_ring_init(struct io_uring *ring, unsigned cq_entries,
                  unsigned *flags_out)
{
    const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    for (unsigned mode : modes) {
        struct io_uring_params p;
        std::memset(&p, 0, sizeof p);
        p.flags = mode | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(kSqEntries, ring, &p);
        if (rc == 0) {
            *flags_out = p.flags;
            (void)io_uring_register_ring_fd(ring);
            return 0;
        }
    }
    return rc;
}

void BM_nop_raw_batch64(benchmark::State &state)
{
    struct io_uring ring;
    unsigned flags = 0;
    int rc = raw_ring_init(&ring, unsigned(state.range(0)), &flags);
    if (rc < 0) {
        state.SkipWithError("io_uring_queue_init_params failed");
        return;
    }
    label_ring(state, flags);
    bool failed = false;
    for (auto _ : state) {
        for (int i = 0; i < kNopTasks; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, i + 1);
        }
        rc = io_uring_submit_and_wait(&ring, kNopTasks);
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            failed |= cqe->res < 0;
            n++;
        }
        io_uring_cq_advance(&ring, n);
        if (rc < 0 || n != unsigned(kNopTasks)) {
            failed = true;
            break;
        }
    }
    io_uring_queue_exit(&ring);
    if (failed) {
        state.SkipWithError("a raw NOP batch failed");
        return;
    }
    report_items(state, double(state.iterations()) * kNopTasks);
}

// ---- 2. checkpoint ping-pong, and the bare switch it is measured by ----

struct PingShared {
    bool stop = false;
    uint64_t checkpoints = 0;
};

int ping_partner(void *arg)
{
    auto *sh = static_cast<PingShared *>(arg);
    while (!sh->stop) {
        weft_checkpoint();
        sh->checkpoints++;
    }
    return 0;
}

// Two tasks, the root (state loop) and a partner, each calling
// weft_checkpoint in turn. Items are the checkpoints of both tasks.
void BM_checkpoint_pingpong(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        PingShared sh;
        weft_group g;
        weft_group_enter(&g);
        weft_group_spawn(&g, ping_partner, &sh);
        weft_checkpoint(); // the partner is running from here on
        uint64_t before = sh.checkpoints;
        for (auto _ : state)
            weft_checkpoint();
        double done =
            double(state.iterations()) + double(sh.checkpoints - before);
        sh.stop = true;
        weft_group_exit(&g, 0);
        report_items(state, done);
        return 0;
    });
}

// Two contexts on the benchmark thread: main and bounce, on a small
// mmap'd stack. Each iteration switches main -> bounce -> main: two
// switches, the unit the checkpoint and spawn figures are compared with.
void *g_main_sp, *g_bounce_sp;

[[noreturn]] void bounce()
{
    for (;;)
        wf_ctx_switch(&g_bounce_sp, &g_main_sp);
}

#if defined(__x86_64__)
// The frame wf_ctx_switch pops, as engine/fiber.c's wf_fiber_init lays it
// out, but returning straight into bounce(): from the top, a pad (so that
// bounce starts with rsp = 8 mod 16, as after a call), the return address,
// then rbp, rbx, r12, r13, r14, r15.
void *bare_frame(void *stack, size_t size)
{
    uintptr_t top =
        (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
    void **sp = reinterpret_cast<void **>(top);
    *--sp = nullptr;                           // pad: bounce's "caller"
    *--sp = reinterpret_cast<void *>(&bounce); // ret lands here
    for (int i = 0; i < 6; i++)
        *--sp = nullptr; // rbp rbx r12 r13 r14 r15
    return sp;
}
#endif

void BM_switch_bare(benchmark::State &state)
{
#if defined(__x86_64__)
    const size_t size = 64 * 1024;
    void *stack = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        state.SkipWithError("mmap failed");
        return;
    }
    g_bounce_sp = bare_frame(stack, size);
    for (auto _ : state)
        wf_ctx_switch(&g_main_sp, &g_bounce_sp);
    munmap(stack, size);
    report_items(state, 2.0 * double(state.iterations()));
#else
    state.SkipWithError("the bare frame is built for x86-64 only");
#endif
}

// ---- 3. spawn + run + join of empty tasks ----

int empty_task(void *)
{
    return 0;
}

int spawn_batch(int n)
{
    weft_group g;
    weft_group_enter(&g);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = weft_group_spawn(&g, empty_task, nullptr);
    int erc = weft_group_exit(&g, rc);
    return rc < 0 ? rc : erc;
}

// Each iteration spawns 1000 empty tasks into a group and exits the group
// (which runs and joins them). A first batch outside the timed loop fills
// the stack pool, so the figure is for pooled stacks (the steady state).
void BM_spawn_join_1000(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        if (spawn_batch(kSpawnBatch) < 0) {
            state.SkipWithError("weft_group_spawn failed");
            return 0;
        }
        int rc = 0;
        for (auto _ : state) {
            rc = spawn_batch(kSpawnBatch);
            if (rc < 0)
                break;
        }
        if (rc < 0) {
            state.SkipWithError("weft_group_spawn failed");
            return 0;
        }
        report_items(state, double(state.iterations()) * kSpawnBatch);
        return 0;
    });
}

// ---- 4. weft_sleep(0) ----

void BM_sleep0(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        for (auto _ : state)
            weft_sleep(0);
        report_items(state, double(state.iterations()));
        return 0;
    });
}

// weft_now (clock_gettime(CLOCK_MONOTONIC) through the vDSO): what each
// deadline computed, armed or checked costs.
void BM_clock_now(benchmark::State &state)
{
    for (auto _ : state)
        benchmark::DoNotOptimize(weft_now());
    report_items(state, double(state.iterations()));
}

// ---- 5. recv with a deadline, three ways ----

enum RecvMode { RECV_PLAIN, RECV_SCOPE, RECV_LINKED };

// One recv of one byte; with linked, bounded by a linked timeout 1 s out.
int recv_one(int fd, char *buf, bool linked)
{
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!sqe)
        return -ENOTSUP; // the epoll backend: no ring
    io_uring_prep_recv(sqe, fd, buf, 1, 0);
    if (linked)
        return weft_uring_await_until(sqe, weft_now() + WEFT_SEC);
    return weft_uring_await(sqe);
}

// Each iteration writes one byte into the peer end (a plain write(2)),
// then receives it through the ring: the data is there when the recv is
// submitted, so the kernel completes it inline.
void recv_bench(benchmark::State &state, RecvMode mode)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        state.SkipWithError("socketpair failed");
        return;
    }
    in_weft(state, [&state, &sv, mode]() -> int {
        char out = 'x', in = 0;
        int rc = 0;
        for (auto _ : state) {
            if (write(sv[1], &out, 1) != 1) {
                rc = -EIO;
                break;
            }
            if (mode == RECV_SCOPE) {
                weft_scope s;
                weft_move_on_after(&s, WEFT_SEC);
                rc = recv_one(sv[0], &in, false);
                weft_scope_exit(&s, rc < 0 ? rc : 0);
            } else {
                rc = recv_one(sv[0], &in, mode == RECV_LINKED);
            }
            if (rc != 1)
                break;
        }
        if (rc == -ENOTSUP) {
            state.SkipWithError(kNeedsUring);
            return 0;
        }
        if (rc != 1) {
            static char msg[128];
            std::snprintf(msg, sizeof msg, "recv returned %d", rc);
            state.SkipWithError(msg);
            return 0;
        }
        report_items(state, double(state.iterations()));
        return 0;
    });
    close(sv[0]);
    close(sv[1]);
}

void BM_recv_no_deadline(benchmark::State &state)
{
    recv_bench(state, RECV_PLAIN);
}

void BM_recv_scope_deadline(benchmark::State &state)
{
    recv_bench(state, RECV_SCOPE);
}

void BM_recv_linked_timeout(benchmark::State &state)
{
    recv_bench(state, RECV_LINKED);
}

} // namespace

// Each weft benchmark sits next to the baseline it is compared with.
// CQ 1024 (4 x SQ, as DESIGN.md has it) and 16384 (64 x SQ, weft's default).
BENCHMARK(BM_nop_weft_64tasks)->Arg(1024)->Arg(16384);
BENCHMARK(BM_nop_raw_batch64)->Arg(1024)->Arg(16384);
BENCHMARK(BM_checkpoint_pingpong);
BENCHMARK(BM_switch_bare);
BENCHMARK(BM_spawn_join_1000);
BENCHMARK(BM_sleep0);
BENCHMARK(BM_clock_now);
BENCHMARK(BM_recv_scope_deadline);
BENCHMARK(BM_recv_linked_timeout);
BENCHMARK(BM_recv_no_deadline);

BENCHMARK_MAIN();
