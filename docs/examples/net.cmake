# docs/examples/net.cmake - the networking guide's programs (issue 6),
# included by docs/examples/CMakeLists.txt. Built like the others, as
# example_<name>.
#
# net_echo_server and net_echo_client are the guide's complete server and
# client: built (so that what the guide shows compiles) but not run, since
# the server runs until stopped. net_echo runs both in one loop against a
# port-0 listener, and net_local shows UDP, Unix sockets, fd passing,
# getaddrinfo and readiness: those two run as tests (exit 0 = they saw
# what the guide says), over loopback only.

foreach(name IN ITEMS net_echo_server net_echo_client net_echo net_local)
  add_executable(example_${name} ${name}.c)
  target_link_libraries(example_${name} PRIVATE weft_static)
endforeach()

foreach(name IN ITEMS net_echo net_local)
  add_test(NAME example_${name} COMMAND example_${name})
  set_tests_properties(example_${name} PROPERTIES TIMEOUT 30)
endforeach()
