# SPDX-License-Identifier: MIT
# bench_thread: the thread bridge's round trips (eventfd and MSG_RING
# wake-ups), 1,000 concurrent calls, a portal call, next to a mutex +
# condvar hand-off between two threads. Included from perf/CMakeLists.txt
# after Google Benchmark was found (the file returns early without it).

add_executable(bench_thread bench_thread.cc)
target_link_libraries(bench_thread PRIVATE
  weft_static benchmark::benchmark PkgConfig::LIBURING Threads::Threads)
target_compile_definitions(bench_thread PRIVATE _GNU_SOURCE)
