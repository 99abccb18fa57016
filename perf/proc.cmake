# SPDX-License-Identifier: MIT
# perf/proc.cmake - spawn-and-wait per second (issue 13): weft_process_run
# of /bin/true against posix_spawn + waitpid (docs/performance.md,
# "Processes"). Plain C: no Google Benchmark needed.

add_executable(weft_proc_bench proc_bench.c)
target_link_libraries(weft_proc_bench PRIVATE weft_static)
target_compile_definitions(weft_proc_bench PRIVATE _GNU_SOURCE)
