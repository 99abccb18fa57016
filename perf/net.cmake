# SPDX-License-Identifier: MIT
# perf/net.cmake - the throughput programs of perf/net-bench: echo servers
# (weft, hand-written epoll, raw liburing) and the weft HTTP "hello"
# server (compared with nginx under wrk). The echo load generator is
# weft-load (tools/weft-load), which replaced perf/load_echo.
#
# Plain C; no Google Benchmark needed. Included from perf/CMakeLists.txt
# before it looks for Google Benchmark, so these build either way.

set(WEFT_NET_WEFT_PROGRAMS echo_weft http_weft net_sendzc) # link weft
set(WEFT_NET_URING_PROGRAMS echo_uring) # raw liburing
set(WEFT_NET_PLAIN_PROGRAMS echo_epoll)           # libc only

foreach(name ${WEFT_NET_WEFT_PROGRAMS} ${WEFT_NET_URING_PROGRAMS}
        ${WEFT_NET_PLAIN_PROGRAMS})
  add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
endforeach()
foreach(name ${WEFT_NET_WEFT_PROGRAMS})
  target_link_libraries(${name} PRIVATE weft_static)
endforeach()
# The request-head parser, shared with tests/fuzz/fuzz_http_head.
target_sources(http_weft PRIVATE ${CMAKE_CURRENT_LIST_DIR}/http_parse.c
                                 ${CMAKE_CURRENT_LIST_DIR}/serve_app.c)
foreach(name ${WEFT_NET_URING_PROGRAMS})
  target_link_libraries(${name} PRIVATE PkgConfig::LIBURING)
endforeach()

# perf/idle-rss's client: holds N idle connections open (plain C).
add_executable(idle_conns ${CMAKE_CURRENT_LIST_DIR}/idle_conns.c)
target_compile_definitions(idle_conns PRIVATE _GNU_SOURCE)
