/* SPDX-License-Identifier: MIT */
// perf/bench_cores.cc - the multi-core runtime's cross-core round trip,
// next to its baseline.
//
//   core_call_roundtrip         weft_core_call(1, empty) from core 0's main
//                               task, one call per iteration: a start
//                               message to core 1's mailbox, a task there,
//                               its end message back (weft_run_cores(2))
//   core_call_cold              the same after 3 ms of sleep, so that both
//                               loops are asleep in the ring when the call
//                               starts (manual time: the call alone)
//   handoff_mutex_condvar       baseline: this thread hands a request to a
//                               second thread under a mutex and condvar
//                               and waits for its reply
//
// Needs 2 CPUs in the affinity mask (weft_run_cores does not
// oversubscribe): skipped otherwise.
#include <benchmark/benchmark.h>

#include "handoff.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <weft.h>

namespace {

int empty_fn(void *)
{
    return 0;
}

struct Run {
    benchmark::State *state;
    bool cold;
    int err;
};

double now_s()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

int bench_main(void *arg)
{
    auto *r = static_cast<Run *>(arg);
    for (auto _ : *r->state) {
        if (r->cold) {
            r->state->PauseTiming();
            weft_sleep(3 * WEFT_MSEC);
            double t0 = now_s();
            int rc = weft_core_call(1, empty_fn, nullptr);
            r->state->SetIterationTime(now_s() - t0);
            r->state->ResumeTiming();
            if (rc < 0) {
                r->err = rc;
                break;
            }
            continue;
        }
        int rc = weft_core_call(1, empty_fn, nullptr);
        if (rc < 0) {
            r->err = rc;
            break;
        }
    }
    return 0;
}

void core_call(benchmark::State &state, bool cold)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < 2) {
        state.SkipWithError("needs 2 CPUs");
        return;
    }
    Run r{&state, cold, 0};
    int rc = weft_run_cores(2, bench_main, &r, nullptr);
    if (rc < 0 || r.err < 0)
        state.SkipWithError(weft_strerror(rc < 0 ? rc : r.err));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_core_call_roundtrip(benchmark::State &state)
{
    core_call(state, false);
}
BENCHMARK(BM_core_call_roundtrip)->UseRealTime();

void BM_core_call_cold(benchmark::State &state)
{
    core_call(state, true);
}
BENCHMARK(BM_core_call_cold)->UseManualTime()->Iterations(300);

void BM_handoff_mutex_condvar(benchmark::State &state)
{
    if (handoff_round_trips(state))
        state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_handoff_mutex_condvar)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
