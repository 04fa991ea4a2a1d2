// The SPIR-V embedded at build time (one blob per row of shaders/variants.txt).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vktrain::kernels {

struct SpirvBlob {
    const char* name;
    const uint32_t* words;
    size_t word_count;
};

const SpirvBlob* find_spirv(std::string_view name); // nullptr when no such variant was built

} // namespace vktrain::kernels
