# flowlat_metrics_proto: C++ generated at build time by protoc from the metrics.proto that
# Debian's golang-github-prometheus-client-model-dev ships (the Prometheus client data model
# with the native-histogram fields), compiled against Debian's libprotobuf. Only the export
# layer links it (daemon/export/CMakeLists.txt); nothing is vendored.
find_package(Protobuf REQUIRED)
set(FLOWLAT_CLIENT_MODEL_DIR /usr/share/gocode/src/github.com/prometheus/client_model CACHE PATH
    "Directory holding io/prometheus/client/metrics.proto (golang-github-prometheus-client-model-dev)")
set(_proto ${FLOWLAT_CLIENT_MODEL_DIR}/io/prometheus/client/metrics.proto)
if(NOT EXISTS ${_proto})
  message(FATAL_ERROR "${_proto} not found: install golang-github-prometheus-client-model-dev "
                      "(packaging/build-deps.sh) or set FLOWLAT_CLIENT_MODEL_DIR")
endif()
set(_out ${CMAKE_BINARY_DIR}/generated/proto)
set(_generated ${_out}/io/prometheus/client/metrics.pb.cc ${_out}/io/prometheus/client/metrics.pb.h)
add_custom_command(
  OUTPUT ${_generated}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_out}
  COMMAND protobuf::protoc --cpp_out=${_out} -I${FLOWLAT_CLIENT_MODEL_DIR} -I${Protobuf_INCLUDE_DIRS} ${_proto}
  DEPENDS ${_proto} protobuf::protoc
  COMMENT "protoc: io/prometheus/client/metrics.proto"
  VERBATIM)
add_library(flowlat_metrics_proto STATIC ${_out}/io/prometheus/client/metrics.pb.cc)
# SYSTEM and no warnings: generated code is not ours to hold to -Werror.
target_include_directories(flowlat_metrics_proto SYSTEM PUBLIC ${_out})
target_compile_options(flowlat_metrics_proto PRIVATE -w)
set_target_properties(flowlat_metrics_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(flowlat_metrics_proto PUBLIC protobuf::libprotobuf)
