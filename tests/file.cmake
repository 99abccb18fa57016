# tests/file.cmake - the files and paths suite (issue 7), included by
# tests/CMakeLists.txt after WEFT_CMOCKA is set. Built and registered
# exactly as the core suites are.
#
#   ctest -L file                          run it alone
#   ./test_file 'test_path_*'              run some tests by name
#   TMPDIR=/mnt/x ./test_file              work on another filesystem
#                                          (O_DIRECT tests skip where the
#                                          filesystem has no O_DIRECT)

add_executable(test_file test_file.c helpers.h)
target_link_libraries(test_file PRIVATE weft_static ${WEFT_CMOCKA})
target_compile_definitions(test_file PRIVATE _GNU_SOURCE)
add_test(NAME test_file COMMAND test_file)
set_tests_properties(test_file PROPERTIES TIMEOUT 120 LABELS file)
