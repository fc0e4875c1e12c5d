# flowlat_bpf_skeleton(<name> SOURCE <file.bpf.c> HEADERS <shared headers...>)
# Compiles a BPF C file with clang and turns the object into <name>.skel.h with
# `bpftool gen skeleton`, so the daemon embeds the object and loads nothing from
# disk. The shared headers are dependencies: editing one rebuilds the object.
find_program(BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

function(flowlat_bpf_skeleton name)
  cmake_parse_arguments(ARG "" "SOURCE" "HEADERS" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/generated)
  set(object ${out_dir}/${name}.bpf.o)
  set(skeleton ${out_dir}/${name}.skel.h)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                  OUTPUT_VARIABLE multiarch OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT multiarch)
    set(multiarch ${CMAKE_SYSTEM_PROCESSOR}-linux-gnu)
  endif()
  add_custom_command(
    OUTPUT ${object}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} -O2 -g -target bpf -mcpu=v3 -Wall -Werror
            -I/usr/include/${multiarch} -I${CMAKE_SOURCE_DIR}/bpf
            -c ${ARG_SOURCE} -o ${object}
    DEPENDS ${ARG_SOURCE} ${ARG_HEADERS}
    COMMENT "BPF ${name}: clang -target bpf"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skeleton}
    COMMAND ${BPFTOOL} gen skeleton ${object} name ${name} > ${skeleton}
    DEPENDS ${object}
    COMMENT "BPF ${name}: bpftool gen skeleton"
    VERBATIM)
  add_custom_target(${name}_skeleton DEPENDS ${skeleton})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skeleton)
  # SYSTEM: the generated header is not ours to hold to -Werror.
  target_include_directories(${name}_skel SYSTEM INTERFACE ${out_dir})
  set(${name}_OBJECT ${object} PARENT_SCOPE)
endfunction()
