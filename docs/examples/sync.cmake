# docs/examples/sync.cmake - the examples of the guide's "Synchronisation
# and channels" page (docs/guide/sync-and-channels.md), included by
# docs/examples/CMakeLists.txt. Built and run exactly as the other
# examples: example_<name>, a test that passes when it exits 0.

set(WEFT_SYNC_DOC_EXAMPLES
  sync_event
  sync_lock
  sync_handoff
  sync_semaphore
  sync_condition
  sync_limiter
  chan_fan
  chan_close
)

foreach(name IN LISTS WEFT_SYNC_DOC_EXAMPLES)
  add_executable(example_${name} ${name}.c)
  target_link_libraries(example_${name} PRIVATE weft_static)
  add_test(NAME example_${name} COMMAND example_${name})
  set_tests_properties(example_${name} PROPERTIES TIMEOUT 30)
endforeach()
