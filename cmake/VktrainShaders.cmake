# Build-time SPIR-V: every row of shaders/variants.txt ("name source target-env [DEFINE ...]") is compiled
# by glslang into a C array, with a depfile so edits to included .glsl files trigger a rebuild, and one
# generated index (find_spirv(name)) embeds them all in the library: no shader files or compiler at run time.
function(vktrain_embed_shaders out_sources table)
  get_filename_component(_dir ${table} DIRECTORY)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${table})
  file(STRINGS ${table} _rows)
  set(_gen ${CMAKE_BINARY_DIR}/generated/spirv)
  file(MAKE_DIRECTORY ${_gen})
  set(_headers)
  set(_includes "")
  set(_entries "")
  foreach(_row IN LISTS _rows)
    string(STRIP "${_row}" _row)
    if(_row STREQUAL "" OR _row MATCHES "^#")
      continue()
    endif()
    string(REGEX REPLACE "[ \t]+" ";" _f "${_row}")
    list(LENGTH _f _n)
    if(_n LESS 3)
      message(FATAL_ERROR "vktrain: bad row in ${table}: '${_row}' (want: name source target-env [DEFINE ...])")
    endif()
    list(GET _f 0 _name)
    list(GET _f 1 _src)
    list(GET _f 2 _env)
    set(_defs)
    if(_n GREATER 3)
      list(SUBLIST _f 3 -1 _defs)
    endif()
    set(_dflags)
    foreach(_d IN LISTS _defs)
      list(APPEND _dflags -D${_d})
    endforeach()
    set(_out ${_gen}/${_name}.h)
    add_custom_command(OUTPUT ${_out}
      COMMAND ${VKTRAIN_GLSLANG} -V --quiet --target-env ${_env} -I${_dir} ${_dflags}
              --vn vktrain_spv_${_name} --depfile ${_gen}/${_name}.d -o ${_out} ${_dir}/${_src}
      DEPENDS ${_dir}/${_src} ${table}
      DEPFILE ${_gen}/${_name}.d
      COMMENT "glslang ${_name} (${_src} ${_defs})"
      VERBATIM)
    list(APPEND _headers ${_out})
    string(APPEND _includes "#include \"spirv/${_name}.h\"\n")
    string(APPEND _entries "    {\"${_name}\", vktrain_spv_${_name}, sizeof(vktrain_spv_${_name}) / sizeof(uint32_t)},\n")
  endforeach()
  set(_index ${_gen}/spirv_index.cpp)
  file(CONFIGURE OUTPUT ${_index} CONTENT [=[
// Generated from shaders/variants.txt by cmake/VktrainShaders.cmake.
#include <cstdint>
#include <cstring>
#include "kernels/spirv_table.hpp"
@_includes@
namespace vktrain::kernels {
namespace {
const SpirvBlob k_blobs[] = {
@_entries@};
} // namespace
const SpirvBlob* find_spirv(std::string_view name) {
    for (const SpirvBlob& b : k_blobs)
        if (name == b.name) return &b;
    return nullptr;
}
} // namespace vktrain::kernels
]=] @ONLY)
  set(${out_sources} ${_index} ${_headers} PARENT_SCOPE)
endfunction()
