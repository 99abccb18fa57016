# SPDX-License-Identifier: MIT
# perf/kv.cmake - weft-kv (docs/examples/weft-kv/), built here too because
# scripts/bench builds without the examples; run by perf/kv-bench against
# redis-server under redis-benchmark.
add_executable(perf_weft_kv
  ${PROJECT_SOURCE_DIR}/docs/examples/weft-kv/server.c
  ${PROJECT_SOURCE_DIR}/docs/examples/weft-kv/shard.c
  ${PROJECT_SOURCE_DIR}/docs/examples/weft-kv/commands.c
  ${PROJECT_SOURCE_DIR}/docs/examples/weft-kv/command_docs.c
  ${PROJECT_SOURCE_DIR}/docs/examples/weft-kv/keyspace.c
  ${PROJECT_SOURCE_DIR}/docs/examples/weft-kv/resp.c)
target_link_libraries(perf_weft_kv PRIVATE weft_static)
set_target_properties(perf_weft_kv PROPERTIES OUTPUT_NAME weft-kv)
