# docs/examples/file.cmake - the files guide's examples (issue 7),
# included by docs/examples/CMakeLists.txt. Each file_<name>.c is built as
# example_file_<name> and run as a test, as the other examples are; the
# weft-cp tool is built as weft-cp and tested by copying a small tree
# (weft-cp-check.sh: diff -r and the modes of every entry).

set(WEFT_FILE_EXAMPLES
  file_basics
  file_many
)

foreach(name IN LISTS WEFT_FILE_EXAMPLES)
  add_executable(example_${name} ${name}.c)
  target_link_libraries(example_${name} PRIVATE weft_static)
  add_test(NAME example_${name} COMMAND example_${name})
  set_tests_properties(example_${name} PROPERTIES TIMEOUT 30)
endforeach()

add_executable(weft-cp weft-cp.c)
target_link_libraries(weft-cp PRIVATE weft_static)
add_test(NAME example_weft_cp_tree
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/weft-cp-check.sh $<TARGET_FILE:weft-cp>)
set_tests_properties(example_weft_cp_tree PROPERTIES TIMEOUT 60)
