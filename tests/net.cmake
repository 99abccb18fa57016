# tests/net.cmake - the suites of byte streams and networking (issue 6),
# included by tests/CMakeLists.txt after WEFT_CMOCKA is set. Built and
# registered exactly as the core suites are: one executable per module,
# linked to weft_static and cmocka, run by ctest with a generous limit.
# Everything runs over loopback (127.0.0.1, ::1, localhost) and Unix
# sockets; every test checks that it leaked no file descriptor.
#
#   ctest -L net                                  both suites
#   ./test_stream 'test_stream_tcp_*'             the TCP half alone
#   ./test_net test_net_serve_1000_connections    one test alone

set(WEFT_NET_TEST_SUITES stream net)

foreach(suite ${WEFT_NET_TEST_SUITES})
  add_executable(test_${suite} test_${suite}.c helpers.h net_helpers.h)
  target_link_libraries(test_${suite} PRIVATE weft_static ${WEFT_CMOCKA})
  target_compile_definitions(test_${suite} PRIVATE _GNU_SOURCE)
  add_test(NAME test_${suite} COMMAND test_${suite})
  set_tests_properties(test_${suite} PROPERTIES TIMEOUT 300 LABELS net)
endforeach()
