# SPDX-License-Identifier: MIT
# perf/instr.cmake - the core hot paths for an instruction count under
# callgrind (perf/instr-bench; docs/performance.md, "The NOP path").
# Plain C; it reads the loop's record (engine/engine.h) to count the
# native path, so it sees the source tree's internal headers.

add_executable(instr_core instr_core.c)
target_link_libraries(instr_core PRIVATE weft_static)
target_include_directories(instr_core PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(instr_core PRIVATE _GNU_SOURCE)
