# civetweb, built here as a static library from Debian's source package.
#
# Debian's libcivetweb is built without IPv6 and its TLS crashes with OpenSSL 3, so flowlatd
# compiles civetweb itself. Nothing is downloaded: packaging/build-deps.sh unpacks the source
# package (`apt-get source civetweb`) under build-deps/civetweb/, which git ignores.
# FLOWLAT_CIVETWEB_SOURCE_DIR names another unpacked tree.
#
# civetweb's own CMake options map to these definitions, which are set directly so that
# none of its build (tests, installs, global flags) enters ours:
#   CIVETWEB_ENABLE_IPV6=ON                  -> USE_IPV6
#   CIVETWEB_ENABLE_SSL=ON                   -> (no NO_SSL)
#   CIVETWEB_ENABLE_SSL_DYNAMIC_LOADING=OFF  -> NO_SSL_DL (libssl is linked, not dlopen'ed)
#   CIVETWEB_SSL_OPENSSL_API_1_1=OFF         -> OPENSSL_API_3_0 instead of OPENSSL_API_1_1
#   CIVETWEB_ENABLE_CGI=OFF, serving no files -> NO_CGI, NO_FILES (flowlatd handles every URI)
# One addition of flowlatd's own: cmake/civetweb-adopt-listening-fd.patch (listening_ports
# "fd:N" adopts an inherited listening socket, for --web.systemd-socket).
# Defines flowlat::civetweb, the target the export layer links (not civetweb::civetweb-cpp:
# prometheus-cpp's CMake package imports that name for Debian's shared libcivetweb, which
# flowlatd must not link; only prometheus-cpp::core is linked).

find_package(OpenSSL 3 REQUIRED)

set(FLOWLAT_CIVETWEB_SOURCE_DIR "" CACHE PATH "Unpacked civetweb source (default: build-deps/civetweb/civetweb-*)")
if(NOT FLOWLAT_CIVETWEB_SOURCE_DIR)
  file(GLOB _civetweb_trees LIST_DIRECTORIES true ${CMAKE_SOURCE_DIR}/build-deps/civetweb/civetweb-*)
  foreach(_tree ${_civetweb_trees})
    if(IS_DIRECTORY ${_tree} AND EXISTS ${_tree}/src/civetweb.c)
      set(FLOWLAT_CIVETWEB_SOURCE_DIR ${_tree})
    endif()
  endforeach()
endif()
if(NOT EXISTS "${FLOWLAT_CIVETWEB_SOURCE_DIR}/src/civetweb.c")
  message(FATAL_ERROR "civetweb source not found under ${CMAKE_SOURCE_DIR}/build-deps/civetweb: "
                      "run packaging/build-deps.sh (it runs `apt-get source civetweb` there) "
                      "or set FLOWLAT_CIVETWEB_SOURCE_DIR")
endif()
message(STATUS "civetweb source: ${FLOWLAT_CIVETWEB_SOURCE_DIR}")

# flowlatd's patches (cmake/civetweb-*.patch) are applied to a copy of src/ in the build
# directory, at every configure: the fetched source is never modified, so applying them is
# idempotent, and packaging/build-deb.sh's copy of the tree gets them the same way. A
# patched file is replaced only when its content changes, so a re-configure does not
# recompile civetweb.
file(GLOB _civetweb_patches CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/cmake/civetweb-*.patch)
list(SORT _civetweb_patches)
set(_civetweb_work ${CMAKE_BINARY_DIR}/civetweb-patch-work)
set(_civetweb_src ${CMAKE_BINARY_DIR}/civetweb-src)
file(REMOVE_RECURSE ${_civetweb_work})
file(COPY ${FLOWLAT_CIVETWEB_SOURCE_DIR}/src DESTINATION ${_civetweb_work})
find_program(FLOWLAT_PATCH_EXECUTABLE patch REQUIRED)
foreach(_patch ${_civetweb_patches})
  execute_process(COMMAND ${FLOWLAT_PATCH_EXECUTABLE} -p1 --batch --forward --silent -i ${_patch}
                  WORKING_DIRECTORY ${_civetweb_work}
                  RESULT_VARIABLE _patch_rc OUTPUT_VARIABLE _patch_out ERROR_VARIABLE _patch_out)
  if(NOT _patch_rc EQUAL 0)
    message(FATAL_ERROR "${_patch} does not apply to ${FLOWLAT_CIVETWEB_SOURCE_DIR}: ${_patch_out}")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_patch})
endforeach()
file(MAKE_DIRECTORY ${_civetweb_src})
file(GLOB _civetweb_files RELATIVE ${_civetweb_work}/src ${_civetweb_work}/src/*)
foreach(_file ${_civetweb_files})
  if(NOT IS_DIRECTORY ${_civetweb_work}/src/${_file})
    file(COPY_FILE ${_civetweb_work}/src/${_file} ${_civetweb_src}/${_file} ONLY_IF_DIFFERENT)
  endif()
endforeach()
file(REMOVE_RECURSE ${_civetweb_work})
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${FLOWLAT_CIVETWEB_SOURCE_DIR}/src/civetweb.c)

add_library(flowlat_civetweb STATIC
  ${_civetweb_src}/civetweb.c
  ${_civetweb_src}/CivetServer.cpp)
target_include_directories(flowlat_civetweb SYSTEM PUBLIC ${FLOWLAT_CIVETWEB_SOURCE_DIR}/include)
target_compile_definitions(flowlat_civetweb PRIVATE
  USE_IPV6 NO_SSL_DL OPENSSL_API_3_0 NO_CGI NO_FILES NO_CACHING
  # Worker stacks: civetweb's CMake default is 100 KiB; flowlatd's handlers keep large
  # buffers on the heap, and many workers should not reserve 8 MiB of address space each.
  USE_STACK_SIZE=262144)
# Third-party code: compiled with its authors' warnings off, never with -Werror.
target_compile_options(flowlat_civetweb PRIVATE -w)
set_target_properties(flowlat_civetweb PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(flowlat_civetweb PUBLIC OpenSSL::SSL OpenSSL::Crypto Threads::Threads ${CMAKE_DL_LIBS})
add_library(flowlat::civetweb ALIAS flowlat_civetweb)
