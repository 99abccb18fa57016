/* SPDX-License-Identifier: MIT */
// perf/bench_thread.cc - the thread bridge, each figure next to its baseline.
//
//   to_thread_roundtrip             weft_to_thread on an empty function from
//                                   the root task, one call per iteration
//                                   (workers wake the loop with an eventfd
//                                   watched by a multishot POLL_ADD)
//   to_thread_roundtrip_msg_ring    the same, woken by IORING_OP_MSG_RING
//                                   (WEFT_OPT_WAKE_MSG_RING)
//   to_thread_wake_eventfd          a call whose function busy-waits 50 us,
//                                   longer than the loop's 20 us spin, so
//                                   the loop is asleep in io_uring_enter
//                                   when the worker finishes: the wake-up
//                                   itself, reported as wake_ns (from the
//                                   function's end to the task running)
//   to_thread_wake_msg_ring         the same with IORING_OP_MSG_RING
//   wake_condvar                    baseline: a thread asleep on a condvar,
//                                   woken by a second thread that worked
//                                   50 us first (wake_ns as above)
//   wake_raw_uring_poll             baseline: liburing alone, a ring asleep
//                                   in io_uring_enter on a multishot poll
//                                   of an eventfd, woken by a write from a
//                                   second thread that worked 50 us first
//   to_thread_isolated              weft_sleep(1 ms), then one call: the CPU
//                                   an isolated call costs the process,
//                                   spins included, as proc_cpu_ns (all
//                                   threads' CPU time per iteration)
//   sleep_1ms_alone                 baseline: weft_sleep(1 ms) alone, its
//                                   proc_cpu_ns
//   handoff_mutex_condvar           baseline: this thread hands a request to
//                                   a second thread through a pthread mutex
//                                   and condvar and waits for its reply
//   to_thread_1000_concurrent       1,000 tasks, each one weft_to_thread on
//                                   an empty function, per iteration (the
//                                   default limiter: 40 at once)
//   to_thread_1000_concurrent_msg_ring   the same, MSG_RING wake-up
//   portal_call_roundtrip           weft_portal_call of an empty task from
//                                   this (plain) thread (a thread that is
//                                   not a worker always wakes a loop with
//                                   the eventfd, so there is no MSG_RING
//                                   variant)
//
// Each reports items_per_second (calls per second) and per_item (time per
// call). The weft benchmarks run Google Benchmark's state loop in the root
// task of one weft_run per benchmark run (weft_options.stack_size 256 KiB
// for Google Benchmark's frames), so weft_run's set-up falls outside the
// timed loop. Wall-clock time (UseRealTime): the other thread's work and
// the wake-ups count.
//
// Run it unpinned (at least two CPUs): a round trip between two threads
// pinned to one CPU measures the scheduler, not the hand-off. For example
//
//   bench_thread --benchmark_repetitions=10
//                --benchmark_report_aggregates_only=true
//
// (one command line) and read the medians.

#include <benchmark/benchmark.h>

#include "handoff.h"

#include <weft.h>
#include <weft/uring.h>

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace {

constexpr int kConcurrent = 1000;

void report_items(benchmark::State &state, double items)
{
    state.SetItemsProcessed(static_cast<int64_t>(items));
    state.counters["per_item"] = benchmark::Counter(
        items, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void skip_on_error(benchmark::State &state, const char *what, int rc)
{
    if (rc < 0 && !state.error_occurred()) {
        static char msg[256];
        std::snprintf(msg, sizeof msg, "%s: %s", what, weft_strerror(rc));
        state.SkipWithError(msg);
    }
}

// ---- running a benchmark body as a weft root task ----

template <class F> int call_body(void *p)
{
    return (*static_cast<F *>(p))();
}

weft_options bench_options(unsigned flags)
{
    weft_options o;
    std::memset(&o, 0, sizeof o);
    o.stack_size = 256 * 1024; // the state loop runs in the root task
    o.flags = flags;
    return o;
}

template <class F> void in_weft(benchmark::State &state, unsigned flags, F body)
{
    weft_options o = bench_options(flags);
    skip_on_error(state, "weft_run", weft_run(call_body<F>, &body, &o));
}

// IORING_OP_MSG_RING is there, or the benchmark is skipped (the loop would
// silently fall back to the eventfd and measure that instead).
bool need_msg_ring(benchmark::State &state)
{
    bool has = false;
    weft_run(
        [](void *arg) -> int {
            *static_cast<bool *>(arg) = weft_uring_has_op(IORING_OP_MSG_RING);
            return 0;
        },
        &has, nullptr);
    if (!has)
        state.SkipWithError("IORING_OP_MSG_RING not supported by this kernel");
    return has;
}

int empty_fn(void *)
{
    return 0;
}

// ---- 1. one weft_to_thread at a time ----

void to_thread_roundtrip(benchmark::State &state, unsigned flags)
{
    in_weft(state, flags, [&state]() -> int {
        for (auto _ : state) {
            int rc = weft_to_thread(empty_fn, nullptr, nullptr, 0);
            if (rc < 0) {
                skip_on_error(state, "weft_to_thread", rc);
                break;
            }
        }
        report_items(state, static_cast<double>(state.iterations()));
        return 0;
    });
}

void BM_to_thread_roundtrip(benchmark::State &state)
{
    to_thread_roundtrip(state, 0);
}
BENCHMARK(BM_to_thread_roundtrip)->UseRealTime();

void BM_to_thread_roundtrip_msg_ring(benchmark::State &state)
{
    if (need_msg_ring(state))
        to_thread_roundtrip(state, WEFT_OPT_WAKE_MSG_RING);
}
BENCHMARK(BM_to_thread_roundtrip_msg_ring)->UseRealTime();

// ---- 1b. the wake-up of a loop that sleeps in the ring ----

constexpr weft_time kBusy = 50 * WEFT_USEC; // past the loop's 20 us spin

struct WakeProbe {
    weft_time end; // when the function returned (worker's clock read)
};

int busy_then_stamp(void *arg)
{
    weft_time until = weft_now() + kBusy;
    while (weft_now() < until) {
    }
    static_cast<WakeProbe *>(arg)->end = weft_now();
    return 0;
}

void to_thread_wake(benchmark::State &state, unsigned flags)
{
    in_weft(state, flags, [&state]() -> int {
        WakeProbe probe{};
        double wake_total = 0;
        for (auto _ : state) {
            int rc = weft_to_thread(busy_then_stamp, &probe, nullptr, 0);
            weft_time back = weft_now();
            if (rc < 0) {
                skip_on_error(state, "weft_to_thread", rc);
                break;
            }
            wake_total += static_cast<double>(back - probe.end);
        }
        report_items(state, static_cast<double>(state.iterations()));
        state.counters["wake_ns"] =
            benchmark::Counter(wake_total, benchmark::Counter::kAvgIterations);
        return 0;
    });
}

void BM_to_thread_wake_eventfd(benchmark::State &state)
{
    to_thread_wake(state, 0);
}
BENCHMARK(BM_to_thread_wake_eventfd)->UseRealTime();

void BM_to_thread_wake_msg_ring(benchmark::State &state)
{
    if (need_msg_ring(state))
        to_thread_wake(state, WEFT_OPT_WAKE_MSG_RING);
}
BENCHMARK(BM_to_thread_wake_msg_ring)->UseRealTime();

// ---- 1b'. baselines of a wake-up: a condvar, and a raw ring ----

void busy_wait(weft_time ns)
{
    weft_time until = weft_now() + ns;
    while (weft_now() < until) {
    }
}

struct CvWake {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t go_cv = PTHREAD_COND_INITIALIZER;
    pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
    bool go = false, done = false, stop = false;
    weft_time stamp = 0;
};

void *cv_wake_server(void *arg)
{
    auto *w = static_cast<CvWake *>(arg);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->go && !w->stop)
            pthread_cond_wait(&w->go_cv, &w->mu);
        if (w->stop)
            break;
        w->go = false;
        pthread_mutex_unlock(&w->mu);
        busy_wait(kBusy);
        pthread_mutex_lock(&w->mu);
        w->stamp = weft_now();
        w->done = true;
        pthread_cond_signal(&w->done_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return nullptr;
}

void BM_wake_condvar(benchmark::State &state)
{
    CvWake w;
    pthread_t th;
    if (pthread_create(&th, nullptr, cv_wake_server, &w) != 0) {
        state.SkipWithError("pthread_create failed");
        return;
    }
    double wake_total = 0;
    for (auto _ : state) {
        pthread_mutex_lock(&w.mu);
        w.go = true;
        pthread_cond_signal(&w.go_cv);
        while (!w.done)
            pthread_cond_wait(&w.done_cv, &w.mu);
        w.done = false;
        wake_total += static_cast<double>(weft_now() - w.stamp);
        pthread_mutex_unlock(&w.mu);
    }
    pthread_mutex_lock(&w.mu);
    w.stop = true;
    pthread_cond_signal(&w.go_cv);
    pthread_mutex_unlock(&w.mu);
    pthread_join(th, nullptr);
    report_items(state, static_cast<double>(state.iterations()));
    state.counters["wake_ns"] =
        benchmark::Counter(wake_total, benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_wake_condvar)->UseRealTime();

struct RawWake {
    int efd = -1;
    std::atomic<int> request{0};
    std::atomic<bool> stop{false};
    std::atomic<weft_time> stamp{0};
};

// Waits (spinning) for a request, works 50 us, stamps, writes the eventfd.
void *raw_wake_server(void *arg)
{
    auto *w = static_cast<RawWake *>(arg);
    while (!w->stop.load()) {
        if (!w->request.exchange(0))
            continue;
        busy_wait(kBusy);
        w->stamp.store(weft_now());
        uint64_t one = 1;
        if (write(w->efd, &one, sizeof one) < 0)
            break;
    }
    return nullptr;
}

void arm_poll(struct io_uring *ring, int efd)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_poll_multishot(sqe, efd, POLLIN);
}

void BM_wake_raw_uring_poll(benchmark::State &state)
{
    struct io_uring ring;
    // The ring set-up weft prefers, else a plain one.
    if (io_uring_queue_init(64, &ring,
                            IORING_SETUP_SINGLE_ISSUER |
                                IORING_SETUP_DEFER_TASKRUN) < 0 &&
        io_uring_queue_init(64, &ring, 0) < 0) {
        state.SkipWithError("io_uring_queue_init failed");
        return;
    }
    RawWake w;
    w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    arm_poll(&ring, w.efd);
    io_uring_submit(&ring);
    pthread_t th;
    if (w.efd < 0 || pthread_create(&th, nullptr, raw_wake_server, &w) != 0) {
        state.SkipWithError("eventfd or pthread_create failed");
        io_uring_queue_exit(&ring);
        return;
    }
    double wake_total = 0;
    for (auto _ : state) {
        w.request.store(1);
        io_uring_submit_and_wait(&ring, 1);
        weft_time back = weft_now();
        wake_total += static_cast<double>(back - w.stamp.load());
        struct io_uring_cqe *cqe;
        bool rearm = false;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            rearm |= !(cqe->flags & IORING_CQE_F_MORE);
            io_uring_cqe_seen(&ring, cqe);
        }
        if (rearm)
            arm_poll(&ring, w.efd);
    }
    w.stop.store(true);
    pthread_join(th, nullptr);
    close(w.efd);
    io_uring_queue_exit(&ring);
    report_items(state, static_cast<double>(state.iterations()));
    state.counters["wake_ns"] =
        benchmark::Counter(wake_total, benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_wake_raw_uring_poll)->UseRealTime();

// ---- 1c. what an isolated call costs in CPU (the spins) ----

weft_time process_cpu()
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<weft_time>(ts.tv_sec) * WEFT_SEC + ts.tv_nsec;
}

void spaced(benchmark::State &state, bool call)
{
    in_weft(state, 0, [&state, call]() -> int {
        weft_time cpu0 = process_cpu();
        for (auto _ : state) {
            int rc = weft_sleep(WEFT_MSEC);
            if (rc == 0 && call)
                rc = weft_to_thread(empty_fn, nullptr, nullptr, 0);
            if (rc < 0) {
                skip_on_error(state, "weft_to_thread", rc);
                break;
            }
        }
        state.counters["proc_cpu_ns"] =
            benchmark::Counter(static_cast<double>(process_cpu() - cpu0),
                               benchmark::Counter::kAvgIterations);
        return 0;
    });
}

void BM_to_thread_isolated(benchmark::State &state)
{
    spaced(state, true);
}
BENCHMARK(BM_to_thread_isolated)->UseRealTime();

void BM_sleep_1ms_alone(benchmark::State &state)
{
    spaced(state, false);
}
BENCHMARK(BM_sleep_1ms_alone)->UseRealTime();

// ---- 2. the baseline: a mutex + condvar hand-off between two threads ----

void BM_handoff_mutex_condvar(benchmark::State &state)
{
    if (handoff_round_trips(state))
        report_items(state, static_cast<double>(state.iterations()));
}
BENCHMARK(BM_handoff_mutex_condvar)->UseRealTime();

// ---- 3. 1,000 calls at once ----

int one_call(void *arg)
{
    int rc = weft_to_thread(empty_fn, nullptr, nullptr, 0);
    if (rc < 0)
        *static_cast<int *>(arg) = rc;
    return rc;
}

void to_thread_concurrent(benchmark::State &state, unsigned flags)
{
    in_weft(state, flags, [&state]() -> int {
        int err = 0;
        for (auto _ : state) {
            weft_group g;
            weft_group_enter(&g);
            for (int i = 0; i < kConcurrent; i++)
                weft_group_spawn(&g, one_call, &err);
            int rc = weft_group_exit(&g, 0);
            if (rc < 0 || err < 0) {
                skip_on_error(state, "weft_to_thread", rc < 0 ? rc : err);
                break;
            }
        }
        report_items(state,
                     static_cast<double>(state.iterations()) * kConcurrent);
        return 0;
    });
}

void BM_to_thread_1000_concurrent(benchmark::State &state)
{
    to_thread_concurrent(state, 0);
}
BENCHMARK(BM_to_thread_1000_concurrent)->UseRealTime();

void BM_to_thread_1000_concurrent_msg_ring(benchmark::State &state)
{
    if (need_msg_ring(state))
        to_thread_concurrent(state, WEFT_OPT_WAKE_MSG_RING);
}
BENCHMARK(BM_to_thread_1000_concurrent_msg_ring)->UseRealTime();

// ---- 4. a portal call from a plain thread ----

void BM_portal_call_roundtrip(benchmark::State &state)
{
    weft_options o = bench_options(0);
    weft_portal *p = nullptr;
    int rc = weft_portal_open(&p, &o);
    if (rc < 0) {
        skip_on_error(state, "weft_portal_open", rc);
        return;
    }
    for (auto _ : state) {
        rc = weft_portal_call(p, empty_fn, nullptr);
        if (rc < 0) {
            skip_on_error(state, "weft_portal_call", rc);
            break;
        }
    }
    weft_portal_close(p);
    report_items(state, static_cast<double>(state.iterations()));
}
BENCHMARK(BM_portal_call_roundtrip)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
