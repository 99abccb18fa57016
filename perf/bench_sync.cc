/* SPDX-License-Identifier: MIT */
// perf/bench_sync.cc - the sync primitives and channels, each next to its
// baseline measured in the same run.
//
//   event_pingpong_weft        two tasks, two events: set one, wait for the
//                              other (one round trip = two hand-offs)
//   pingpong_mutex_condvar     baseline: the same ping-pong between two
//                              threads with a pthread mutex and condvars
//   lock_uncontended_weft      weft_lock_acquire + weft_lock_release, one task
//   mutex_uncontended          baseline: pthread_mutex_lock + unlock
//   semaphore_uncontended_weft acquire + release (reference)
//   limiter_uncontended_weft   acquire + release (reference; a hash table)
//   chan_weft/C                one producer task, the root consumes: items
//                              through a channel of capacity C (0, 1, 64)
//   chan_mutex_condvar/C       baseline: a bounded queue between two threads
//                              with a pthread mutex and condvars (capacity 0:
//                              the producer waits until its item is taken)
//   shchan_2loops/C            a shared channel (weft_chan_open_shared) of
//                              capacity C between two loops on two threads
//                              pinned to CPUs 0 and 1: one producer task on
//                              one loop, the root of the other consumes
//   chan_mutex_condvar_pinned/C  baseline for it: chan_mutex_condvar with
//                              the same two pinned threads
//   chan_sendrecv_same_task    send then receive in one task, capacity 64:
//                              the channel's own cost, no switch
//   checkpoint_weft            weft_checkpoint in a lone task: the yardstick
//                              of the "under 2x a checkpoint" target
//
// Targets (perf/run prints the ratios): an uncontended lock round trip
// under 10 ns; a capacity-64 channel send + receive under 2x a checkpoint.
//
// The weft benchmarks run Google Benchmark's state loop inside the root
// task of one weft_run per call (stack 256 KiB for its frames); weft_run's
// set-up and tear-down fall outside the timed loop. Every benchmark reports
// items_per_second and per_item. All times are wall-clock (UseRealTime).

#include <benchmark/benchmark.h>

#include <weft.h>

#include <pthread.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

// Items per second, and its inverse: the console shows per_item=12.3ns.
void report_items(benchmark::State &state, double items)
{
    state.SetItemsProcessed(static_cast<int64_t>(items));
    state.counters["per_item"] = benchmark::Counter(
        items, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

template <class F> int call_body(void *p)
{
    return (*static_cast<F *>(p))();
}

// Run body() as the root task of a fresh loop with 256 KiB stacks.
template <class F> void in_weft(benchmark::State &state, F body)
{
    weft_options o;
    std::memset(&o, 0, sizeof o);
    o.stack_size = 256 * 1024;
    int rc = weft_run(call_body<F>, &body, &o);
    if (rc < 0 && !state.error_occurred()) {
        static char msg[256];
        std::snprintf(msg, sizeof msg, "weft_run: %s", weft_strerror(rc));
        state.SkipWithError(msg);
    }
}

// ---- 1. event ping-pong ----

struct EvPing {
    weft_event ping, pong;
    bool stop = false;
};

// Wait for ping, re-arm it (nobody else waits on it), answer with pong.
int ev_partner(void *arg)
{
    auto *p = static_cast<EvPing *>(arg);
    for (;;) {
        if (weft_event_wait(&p->ping) < 0)
            return 0;
        weft_event_init(&p->ping);
        bool stop = p->stop;
        weft_event_set(&p->pong);
        if (stop)
            return 0;
    }
}

void BM_event_pingpong_weft(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        EvPing p;
        weft_event_init(&p.ping);
        weft_event_init(&p.pong);
        weft_group g;
        weft_group_enter(&g);
        weft_group_spawn(&g, ev_partner, &p);
        int err = 0;
        for (auto _ : state) {
            weft_event_set(&p.ping);
            if ((err = weft_event_wait(&p.pong)) < 0)
                break;
            weft_event_init(&p.pong);
        }
        p.stop = true;
        weft_event_set(&p.ping);
        weft_event_wait(&p.pong);
        weft_group_exit(&g, 0);
        if (err)
            state.SkipWithError("weft_event_wait failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
}

struct PthPing {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t ping_cv = PTHREAD_COND_INITIALIZER;
    pthread_cond_t pong_cv = PTHREAD_COND_INITIALIZER;
    bool ping = false, pong = false, stop = false;
};

void *pth_partner(void *arg)
{
    auto *p = static_cast<PthPing *>(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->ping && !p->stop)
            pthread_cond_wait(&p->ping_cv, &p->mu);
        if (p->stop)
            break;
        p->ping = false;
        p->pong = true;
        pthread_cond_signal(&p->pong_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return nullptr;
}

void BM_pingpong_mutex_condvar(benchmark::State &state)
{
    PthPing p;
    pthread_t th;
    if (pthread_create(&th, nullptr, pth_partner, &p) != 0) {
        state.SkipWithError("pthread_create failed");
        return;
    }
    for (auto _ : state) {
        pthread_mutex_lock(&p.mu);
        p.ping = true;
        pthread_cond_signal(&p.ping_cv);
        while (!p.pong)
            pthread_cond_wait(&p.pong_cv, &p.mu);
        p.pong = false;
        pthread_mutex_unlock(&p.mu);
    }
    pthread_mutex_lock(&p.mu);
    p.stop = true;
    pthread_cond_signal(&p.ping_cv);
    pthread_mutex_unlock(&p.mu);
    pthread_join(th, nullptr);
    report_items(state, double(state.iterations()));
}

// ---- 2. uncontended lock round trips ----

void BM_lock_uncontended_weft(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        weft_lock l;
        weft_lock_init(&l);
        int err = 0;
        for (auto _ : state) {
            err |= weft_lock_acquire(&l);
            err |= weft_lock_release(&l);
        }
        if (err)
            state.SkipWithError("lock acquire/release failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
}

void BM_mutex_uncontended(benchmark::State &state)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    for (auto _ : state) {
        pthread_mutex_lock(&mu);
        benchmark::ClobberMemory();
        pthread_mutex_unlock(&mu);
    }
    report_items(state, double(state.iterations()));
}

void BM_semaphore_uncontended_weft(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        weft_semaphore s;
        weft_semaphore_init(&s, 1, 1);
        int err = 0;
        for (auto _ : state) {
            err |= weft_semaphore_acquire(&s);
            err |= weft_semaphore_release(&s);
        }
        if (err)
            state.SkipWithError("semaphore acquire/release failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
}

void BM_limiter_uncontended_weft(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        weft_limiter l;
        weft_limiter_init(&l, 4);
        int err = 0;
        for (auto _ : state) {
            err |= weft_limiter_acquire(&l);
            err |= weft_limiter_release(&l);
        }
        if (err)
            state.SkipWithError("limiter acquire/release failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
}

// ---- 3. channel throughput ----

// Send 1, 2, 3, ... until the receivers are gone (-EPIPE).
int chan_producer(void *arg)
{
    auto *tx = static_cast<weft_chan_tx *>(arg);
    uintptr_t i = 1;
    while (weft_chan_send(tx, reinterpret_cast<void *>(i)) == 0)
        i++;
    weft_chan_tx_close(tx);
    return 0;
}

void BM_chan_weft(benchmark::State &state)
{
    size_t cap = static_cast<size_t>(state.range(0));
    in_weft(state, [&state, cap]() -> int {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        if (weft_chan_open(cap, &tx, &rx) < 0) {
            state.SkipWithError("weft_chan_open failed");
            return 0;
        }
        weft_group g;
        weft_group_enter(&g);
        weft_group_spawn(&g, chan_producer, tx);
        uintptr_t expect = 1;
        bool bad = false;
        for (auto _ : state) {
            void *it;
            if (weft_chan_recv(rx, &it) != 1 ||
                reinterpret_cast<uintptr_t>(it) != expect++) {
                bad = true;
                break;
            }
        }
        weft_chan_rx_close(rx); // the producer's next send: -EPIPE
        weft_group_exit(&g, 0);
        if (bad)
            state.SkipWithError("wrong item or recv failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
}

// Pin a thread to one CPU (best effort: a smaller affinity mask keeps it
// where it may run). Returns the old mask's validity.
bool pin_to(pthread_t th, int cpu, cpu_set_t *old)
{
    if (old && pthread_getaffinity_np(th, sizeof *old, old) != 0)
        return false;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(th, sizeof set, &set) == 0;
}

void *shchan_producer_thread(void *arg)
{
    pin_to(pthread_self(), 1, nullptr);
    weft_options o;
    std::memset(&o, 0, sizeof o);
    o.stack_size = 256 * 1024;
    weft_run(chan_producer, arg, &o);
    return nullptr;
}

void BM_shchan_2loops(benchmark::State &state)
{
    size_t cap = static_cast<size_t>(state.range(0));
    cpu_set_t old;
    bool pinned = pin_to(pthread_self(), 0, &old);
    in_weft(state, [&state, cap]() -> int {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        if (weft_chan_open_shared(cap, &tx, &rx) < 0) {
            state.SkipWithError("weft_chan_open_shared failed");
            return 0;
        }
        pthread_t th;
        if (pthread_create(&th, nullptr, shchan_producer_thread, tx) != 0) {
            state.SkipWithError("pthread_create failed");
            return 0;
        }
        uintptr_t expect = 1;
        bool bad = false;
        for (auto _ : state) {
            void *it;
            if (weft_chan_recv(rx, &it) != 1 ||
                reinterpret_cast<uintptr_t>(it) != expect++) {
                bad = true;
                break;
            }
        }
        weft_chan_rx_close(rx); // the producer's next send: -EPIPE
        pthread_join(th, nullptr);
        if (bad)
            state.SkipWithError("wrong item or recv failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof old, &old);
}

// A bounded queue between two threads. Capacity 0 is a rendezvous: the
// producer waits until the consumer has taken its item.
struct PthQueue {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
    pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
    uintptr_t buf[64];
    size_t cap = 1, head = 0, count = 0;
    uint64_t pushed = 0, taken = 0;
    bool stop = false;
    bool pin = false; // producer on CPU 1, consumer on CPU 0
};

void *pth_producer(void *arg)
{
    auto *q = static_cast<PthQueue *>(arg);
    if (q->pin)
        pin_to(pthread_self(), 1, nullptr);
    size_t room = q->cap ? q->cap : 1;
    uintptr_t i = 1;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        while (q->count >= room && !q->stop)
            pthread_cond_wait(&q->not_full, &q->mu);
        if (q->stop)
            break;
        q->buf[(q->head + q->count++) % 64] = i++;
        uint64_t mine = ++q->pushed;
        pthread_cond_signal(&q->not_empty);
        if (q->cap == 0) // rendezvous: wait until it is taken
            while (q->taken < mine && !q->stop)
                pthread_cond_wait(&q->not_full, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return nullptr;
}

void chan_mutex_condvar(benchmark::State &state, bool pin)
{
    PthQueue q;
    q.cap = static_cast<size_t>(state.range(0));
    q.pin = pin;
    cpu_set_t old;
    bool pinned = pin && pin_to(pthread_self(), 0, &old);
    pthread_t th;
    if (pthread_create(&th, nullptr, pth_producer, &q) != 0) {
        state.SkipWithError("pthread_create failed");
        return;
    }
    uintptr_t expect = 1;
    bool bad = false;
    for (auto _ : state) {
        pthread_mutex_lock(&q.mu);
        while (q.count == 0)
            pthread_cond_wait(&q.not_empty, &q.mu);
        uintptr_t v = q.buf[q.head];
        q.head = (q.head + 1) % 64;
        q.count--;
        q.taken++;
        pthread_cond_signal(&q.not_full);
        pthread_mutex_unlock(&q.mu);
        bad |= v != expect++;
    }
    pthread_mutex_lock(&q.mu);
    q.stop = true;
    pthread_cond_broadcast(&q.not_full);
    pthread_mutex_unlock(&q.mu);
    pthread_join(th, nullptr);
    if (pinned)
        pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    if (bad)
        state.SkipWithError("wrong item");
    report_items(state, double(state.iterations()));
}

void BM_chan_mutex_condvar(benchmark::State &state)
{
    chan_mutex_condvar(state, false);
}

void BM_chan_mutex_condvar_pinned(benchmark::State &state)
{
    chan_mutex_condvar(state, true);
}

void BM_chan_sendrecv_same_task(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        weft_chan_tx *tx;
        weft_chan_rx *rx;
        if (weft_chan_open(64, &tx, &rx) < 0) {
            state.SkipWithError("weft_chan_open failed");
            return 0;
        }
        uintptr_t i = 0;
        bool bad = false;
        for (auto _ : state) {
            void *it;
            bad |= weft_chan_send(tx, reinterpret_cast<void *>(++i)) != 0;
            bad |= weft_chan_recv(rx, &it) != 1;
            benchmark::DoNotOptimize(it);
        }
        weft_chan_tx_close(tx);
        weft_chan_rx_close(rx);
        if (bad)
            state.SkipWithError("send or recv failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
}

// ---- 4. the yardstick: a bare checkpoint ----

void BM_checkpoint_weft(benchmark::State &state)
{
    in_weft(state, [&state]() -> int {
        int err = 0;
        for (auto _ : state)
            err |= weft_checkpoint();
        if (err)
            state.SkipWithError("weft_checkpoint failed");
        report_items(state, double(state.iterations()));
        return 0;
    });
}

} // namespace

BENCHMARK(BM_event_pingpong_weft)->UseRealTime();
BENCHMARK(BM_pingpong_mutex_condvar)->UseRealTime();
BENCHMARK(BM_lock_uncontended_weft)->UseRealTime();
BENCHMARK(BM_mutex_uncontended)->UseRealTime();
BENCHMARK(BM_semaphore_uncontended_weft)->UseRealTime();
BENCHMARK(BM_limiter_uncontended_weft)->UseRealTime();
BENCHMARK(BM_chan_weft)->Arg(0)->Arg(1)->Arg(64)->UseRealTime();
BENCHMARK(BM_chan_mutex_condvar)->Arg(0)->Arg(1)->Arg(64)->UseRealTime();
BENCHMARK(BM_shchan_2loops)->Arg(0)->Arg(1)->Arg(64)->UseRealTime();
BENCHMARK(BM_chan_mutex_condvar_pinned)->Arg(0)->Arg(1)->Arg(64)->UseRealTime();
BENCHMARK(BM_chan_sendrecv_same_task)->UseRealTime();
BENCHMARK(BM_checkpoint_weft)->UseRealTime();

BENCHMARK_MAIN();
