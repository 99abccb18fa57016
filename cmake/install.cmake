# SPDX-License-Identifier: MIT
# cmake/install.cmake - what `cmake --install` puts where.
#
# Included by the top CMakeLists.txt once the targets weft_static and
# weft_shared exist. It installs:
#   include/weft.h, include/weft/*.h      the public headers (api/)
#   lib/libweft.a, lib/libweft.so*        both libraries (OUTPUT_NAME weft)
#   lib/pkgconfig/weft.pc                 for `pkg-config --cflags --libs weft`
#   lib/pkgconfig/weft-static.pc          the same with libweft.a
#   lib/cmake/weft/                       for `find_package(weft)`:
#                                         weft::weft (static), weft::shared
#   bin/weft-load                         the load generator (tools/), when
#                                         WEFT_BUILD_TOOLS is on
# (lib/ is CMAKE_INSTALL_LIBDIR: lib/<multiarch> on Debian under /usr.)

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# A project that pulls weft in with add_subdirectory() may not want weft's
# files in its own install tree.
option(WEFT_INSTALL "Generate weft's install rules" ${PROJECT_IS_TOP_LEVEL})
if(NOT WEFT_INSTALL)
  return()
endif()

# liburing's minimum, shared by weft.pc and weftConfig.cmake; keep it equal
# to the pkg_check_modules() call of the top CMakeLists.txt.
set(WEFT_LIBURING_MIN 2.3)
set(WEFT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/weft)

# ---- headers: api/weft.h and api/weft/*.h only (the rooms api/net/,
# api/stream/, api/fs/... with their sources and private headers stay
# out) ----
install(FILES ${PROJECT_SOURCE_DIR}/api/weft.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT Development)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/api/weft/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/weft COMPONENT Development
        FILES_MATCHING PATTERN "*.h")

# ---- libraries, exported as weft::weft (static) and weft::shared ----
set_target_properties(weft_static PROPERTIES EXPORT_NAME weft)
set_target_properties(weft_shared PROPERTIES EXPORT_NAME shared)
install(TARGETS weft_static weft_shared EXPORT weftTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
                NAMELINK_COMPONENT Development
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# ---- tools: the load generator ----
if(TARGET weft-load)
  install(TARGETS weft-load RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
          COMPONENT Runtime)
endif()

# ---- CMake package ----
# The exported targets name PkgConfig::LIBURING and Threads::Threads in
# their link interface; weftConfig.cmake re-creates both before it loads
# weftTargets.cmake.
install(EXPORT weftTargets NAMESPACE weft:: FILE weftTargets.cmake
        DESTINATION ${WEFT_CMAKE_DIR} COMPONENT Development)
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/weftConfig.cmake.in
  ${PROJECT_BINARY_DIR}/weftConfig.cmake
  INSTALL_DESTINATION ${WEFT_CMAKE_DIR})
# 0.x: a new minor version may break the API, so only 0.N.* is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/weftConfig.cmake
              ${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
        DESTINATION ${WEFT_CMAKE_DIR} COMPONENT Development)

# ---- pkg-config ----
# weft.pc is written at install time, not at configure time, so that its
# prefix is the one actually installed to: `cmake --install build --prefix
# /tmp/x` must give prefix=/tmp/x, not the CMAKE_INSTALL_PREFIX of the
# configure step. libdir and includedir stay relative to ${prefix} unless
# the user made them absolute.
foreach(_weft_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_weft_dir}}")
    set(_weft_pc_${_weft_dir} "${CMAKE_INSTALL_${_weft_dir}}")
  else()
    set(_weft_pc_${_weft_dir} "\${prefix}/${CMAKE_INSTALL_${_weft_dir}}")
  endif()
endforeach()
# The compile flags weft exports (the top CMakeLists.txt: stack probes).
list(JOIN WEFT_USER_CFLAGS " " _weft_pc_flags)
set(WEFT_PC_CFLAGS "-I\${includedir}")
if(_weft_pc_flags)
  string(APPEND WEFT_PC_CFLAGS " ${_weft_pc_flags}")
endif()
# The bracket arguments keep the install script from expanding ${prefix}.
install(CODE "
  set(WEFT_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(WEFT_PC_LIBDIR [==[${_weft_pc_LIBDIR}]==])
  set(WEFT_PC_INCLUDEDIR [==[${_weft_pc_INCLUDEDIR}]==])
  set(WEFT_PC_VERSION [==[${PROJECT_VERSION}]==])
  set(WEFT_LIBURING_MIN [==[${WEFT_LIBURING_MIN}]==])
  set(WEFT_PC_CFLAGS [==[${WEFT_PC_CFLAGS}]==])
  set(WEFT_PC_NAME weft)
  set(WEFT_PC_LIBS [==[-L\${libdir} -lweft]==])
  set(WEFT_PC_REQUIRES [==[]==])
  set(WEFT_PC_REQUIRES_PRIVATE [==[libssl >= 3 libcrypto >= 3]==])
  configure_file([==[${CMAKE_CURRENT_LIST_DIR}/weft.pc.in]==]
                 [==[${PROJECT_BINARY_DIR}/weft.pc]==] @ONLY)
  set(WEFT_PC_NAME [==[weft (static)]==])
  set(WEFT_PC_LIBS [==[\${libdir}/libweft.a]==])
  set(WEFT_PC_REQUIRES [==[, libssl >= 3, libcrypto >= 3]==])
  set(WEFT_PC_REQUIRES_PRIVATE [==[]==])
  configure_file([==[${CMAKE_CURRENT_LIST_DIR}/weft.pc.in]==]
                 [==[${PROJECT_BINARY_DIR}/weft-static.pc]==] @ONLY)
" COMPONENT Development)
install(FILES ${PROJECT_BINARY_DIR}/weft.pc ${PROJECT_BINARY_DIR}/weft-static.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT Development)
