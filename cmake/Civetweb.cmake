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

add_library(flowlat_civetweb STATIC
  ${FLOWLAT_CIVETWEB_SOURCE_DIR}/src/civetweb.c
  ${FLOWLAT_CIVETWEB_SOURCE_DIR}/src/CivetServer.cpp)
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
