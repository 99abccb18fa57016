# tests/sync.cmake - the suites of the sync primitives and channels
# (issue 4), included by tests/CMakeLists.txt. Built and registered
# exactly as the core suites are: one executable per module, linked to
# weft_static and cmocka, run by ctest with a generous time limit.
#
#   ./test_sync test_lock_*      run the lock tests alone
#   WEFT_TEST_SEED=0x1234 ./test_chan test_chan_random_stress

set(WEFT_SYNC_TEST_SUITES sync chan)

foreach(suite ${WEFT_SYNC_TEST_SUITES})
  add_executable(test_${suite} test_${suite}.c helpers.h)
  target_link_libraries(test_${suite} PRIVATE weft_static ${WEFT_CMOCKA})
  target_compile_definitions(test_${suite} PRIVATE _GNU_SOURCE)
  add_test(NAME test_${suite} COMMAND test_${suite})
  set_tests_properties(test_${suite} PROPERTIES TIMEOUT 120 LABELS core)
endforeach()
