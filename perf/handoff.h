// SPDX-License-Identifier: MIT
// perf/handoff.h - the baseline of the thread benchmarks (bench_thread,
// bench_cores): a request and its reply handed between two threads with
// a mutex and two condition variables.
#pragma once

#include <benchmark/benchmark.h>
#include <pthread.h>

struct Handoff {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t req_cv = PTHREAD_COND_INITIALIZER;
    pthread_cond_t rep_cv = PTHREAD_COND_INITIALIZER;
    bool request = false, reply = false, stop = false;
};

// The second thread: wait for a request, "run" it, hand back the reply.
inline void *handoff_server(void *arg)
{
    auto *h = static_cast<Handoff *>(arg);
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->request && !h->stop)
            pthread_cond_wait(&h->req_cv, &h->mu);
        if (h->stop)
            break;
        h->request = false;
        h->reply = true;
        pthread_cond_signal(&h->rep_cv);
    }
    pthread_mutex_unlock(&h->mu);
    return nullptr;
}

// One round trip per iteration of state; false (and the benchmark
// skipped) if the second thread could not start.
inline bool handoff_round_trips(benchmark::State &state)
{
    Handoff h;
    pthread_t th;
    if (pthread_create(&th, nullptr, handoff_server, &h) != 0) {
        state.SkipWithError("pthread_create failed");
        return false;
    }
    for (auto _ : state) {
        pthread_mutex_lock(&h.mu);
        h.request = true;
        pthread_cond_signal(&h.req_cv);
        while (!h.reply)
            pthread_cond_wait(&h.rep_cv, &h.mu);
        h.reply = false;
        pthread_mutex_unlock(&h.mu);
    }
    pthread_mutex_lock(&h.mu);
    h.stop = true;
    pthread_cond_signal(&h.req_cv);
    pthread_mutex_unlock(&h.mu);
    pthread_join(th, nullptr);
    return true;
}
