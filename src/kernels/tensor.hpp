// What kernels operate on: a device buffer seen as a row-major matrix of fp16 or fp32 elements.
#pragma once

#include <cstdint>

#include "runtime/memory.hpp"

namespace vktrain::kernels {

enum class DType { f32, f16 };

inline uint32_t dtype_size(DType t) {
    return t == DType::f16 ? 2u : 4u;
}
inline const char* dtype_name(DType t) {
    return t == DType::f16 ? "f16" : "f32";
}

struct MatRef {
    const runtime::Buffer* buffer = nullptr;
    DType dtype = DType::f32;
    uint32_t rows = 0, cols = 0;
    uint32_t offset = 0; // in elements
};

} // namespace vktrain::kernels
