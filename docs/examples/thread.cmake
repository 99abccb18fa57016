# The thread bridge's examples (docs/guide/threads.md), built and run like
# the others: example_<name>, exit 0 = the program saw what the guide says.
# Included from docs/examples/CMakeLists.txt.

find_package(Threads REQUIRED)

set(WEFT_THREAD_EXAMPLES
  thread_to_thread
  thread_cancel
  thread_from_thread
  thread_portal
)

foreach(name IN LISTS WEFT_THREAD_EXAMPLES)
  add_executable(example_${name} ${name}.c)
  target_link_libraries(example_${name} PRIVATE weft_static Threads::Threads)
  add_test(NAME example_${name} COMMAND example_${name})
  set_tests_properties(example_${name} PROPERTIES TIMEOUT 30)
endforeach()
