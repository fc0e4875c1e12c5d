# flowlat_layer(<folder> [LAYERS <lower layers...>] [LIBS <third-party targets...>])
# Builds daemon/<folder>/*.cpp into the static library flowlat_<folder>. A layer links only
# the layers below it and the third-party libraries it names, and tests/layering.py checks
# that every #include of the folder is covered by this link line, so the build files are
# the architecture's rules. Headers are included by folder: "probe/probe.hpp".
function(flowlat_layer folder)
  cmake_parse_arguments(ARG "" "" "LAYERS;LIBS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  set(target flowlat_${folder})
  if(sources)
    add_library(${target} STATIC ${sources})
    target_include_directories(${target} PUBLIC ${FLOWLAT_DAEMON_DIR})
    target_compile_options(${target} PRIVATE ${FLOWLAT_WARNINGS})
    set(scope PUBLIC)
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${FLOWLAT_DAEMON_DIR})
    set(scope INTERFACE)
  endif()
  list(TRANSFORM ARG_LAYERS PREPEND flowlat_)
  target_link_libraries(${target} ${scope} ${ARG_LAYERS} ${ARG_LIBS})
endfunction()
