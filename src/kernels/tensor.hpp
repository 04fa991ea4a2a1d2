// What kernels operate on: a device buffer seen as a row-major matrix of fp16 or fp32 elements, and the
// one place that turns such a view into a descriptor binding plus the element offset its shader adds.
#pragma once

#include <cstdint>

#include "common/check.hpp"
#include "runtime/memory.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::kernels {

enum class DType { f32, f16 };

inline uint32_t dtype_size(DType t) {
    return t == DType::f16 ? 2u : 4u;
}
inline const char* dtype_name(DType t) {
    return t == DType::f16 ? "f16" : "f32";
}

// rows × cols elements starting at element `offset` of `buffer` (64-bit: arenas and parameter arrays may
// exceed 4 GiB). An N-D tensor is passed flattened (e.g. NCHW as N × C·H·W); kernels that need the
// dimensions take them separately.
struct MatRef {
    const runtime::Buffer* buffer = nullptr;
    DType dtype = DType::f32;
    uint32_t rows = 0, cols = 0;
    uint64_t offset = 0; // in elements

    uint64_t count() const { return uint64_t(rows) * cols; }
    uint64_t byte_offset() const { return offset * dtype_size(dtype); }
    uint64_t byte_size() const { return count() * dtype_size(dtype); }
};

// A kernel operand: the range of the buffer to bind and the element offset of the view inside that range
// (what the shader adds to its indices). Every kernel binds its operands through operand(), so how
// views map to descriptors (whole buffer, or an aligned sub-range) is decided here once.
struct Operand {
    runtime::Binding binding;
    uint32_t offset = 0; // elements from the start of the bound range
};

Operand operand(const runtime::Device& device, const MatRef& m, runtime::Access access);

} // namespace vktrain::kernels
