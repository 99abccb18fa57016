# The thread bridge suite (API.md "Thread bridge"): weft_to_thread,
# weft_from_thread_*, portals, with both wake-ups (eventfd and MSG_RING).
# Included from tests/CMakeLists.txt, after WEFT_CMOCKA is set.
# Run it alone:                ctest -L thread
# Run one test alone by name:  ./test_thread test_portal_call_after_close_began_is_ebadf

add_executable(test_thread test_thread.c helpers.h)
target_link_libraries(test_thread PRIVATE
  weft_static ${WEFT_CMOCKA} Threads::Threads)
target_compile_definitions(test_thread PRIVATE _GNU_SOURCE)
add_test(NAME test_thread COMMAND test_thread)
set_tests_properties(test_thread PROPERTIES TIMEOUT 120 LABELS thread)
