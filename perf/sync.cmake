# SPDX-License-Identifier: MIT
# bench_sync: event ping-pong, uncontended lock (semaphore, limiter), and
# channel throughput at capacity 0, 1 and 64, each next to its pthread
# baseline (mutex + condvar between two threads, an uncontended mutex) and
# a bare weft_checkpoint. Included from perf/CMakeLists.txt after Google
# Benchmark was found (the file returns early without it).

add_executable(bench_sync bench_sync.cc)
target_link_libraries(bench_sync PRIVATE
  weft_static benchmark::benchmark PkgConfig::LIBURING Threads::Threads)
target_compile_definitions(bench_sync PRIVATE _GNU_SOURCE)
