# SPDX-License-Identifier: MIT
# perf/million.cmake - a million sleeping tasks in one loop (issue 16):
# spawn time and resident memory per task (docs/performance.md, "A million
# tasks"); Go's peer is perf/go/million.go. Plain C.

add_executable(million million.c)
target_link_libraries(million PRIVATE weft_static)
target_compile_definitions(million PRIVATE _GNU_SOURCE)
