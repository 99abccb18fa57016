# SPDX-License-Identifier: MIT
# perf/tls.cmake - the TLS programs of perf/tls-bench: the weft HTTPS
# "hello" server (compared with nginx under wrk) and the TLS bulk
# throughput pair (compared with openssl s_server/s_client and openssl
# speed). Plain C, like net.cmake; weft_static brings OpenSSL.

add_executable(https_weft ${CMAKE_CURRENT_LIST_DIR}/https_weft.c
                          ${CMAKE_CURRENT_LIST_DIR}/http_parse.c
                          ${CMAKE_CURRENT_LIST_DIR}/serve_app.c)
add_executable(tls_bulk ${CMAKE_CURRENT_LIST_DIR}/tls_bulk.c)
foreach(name https_weft tls_bulk)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_link_libraries(${name} PRIVATE weft_static)
endforeach()
