# SPDX-License-Identifier: MIT
# perf/file.cmake - the file throughput programs (issue 7), run by
# perf/file-bench. Plain C: they need no Google Benchmark, so
# perf/CMakeLists.txt includes this file before it looks for it.
#
#   weft_file_bench   4 KiB random reads at queue depth, file-to-socket
#                     copies (splice or not), and the test data (a 1 GiB
#                     file, a tree of small files)
#   weft-cp           docs/examples/weft-cp.c, built here too because
#                     scripts/bench builds without the examples
#
# Not named bench_*: perf/run runs those as Google Benchmark programs.

add_executable(weft_file_bench bench_file.c)
target_link_libraries(weft_file_bench PRIVATE weft_static)
target_compile_definitions(weft_file_bench PRIVATE _GNU_SOURCE)
# White-box for --iopoll: it prints the polled ring's counters (engine.h).
target_include_directories(weft_file_bench PRIVATE ${PROJECT_SOURCE_DIR})

add_executable(perf_weft_cp ${PROJECT_SOURCE_DIR}/docs/examples/weft-cp.c)
target_link_libraries(perf_weft_cp PRIVATE weft_static)
set_target_properties(perf_weft_cp PROPERTIES OUTPUT_NAME weft-cp)
