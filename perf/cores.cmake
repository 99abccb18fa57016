# SPDX-License-Identifier: MIT
# bench_cores: weft_core_call's round trip between two cores, next to a
# mutex + condvar hand-off between two threads. Included from
# perf/CMakeLists.txt after Google Benchmark was found.

add_executable(bench_cores bench_cores.cc)
target_link_libraries(bench_cores PRIVATE
  weft_static benchmark::benchmark PkgConfig::LIBURING Threads::Threads)
target_compile_definitions(bench_cores PRIVATE _GNU_SOURCE)
