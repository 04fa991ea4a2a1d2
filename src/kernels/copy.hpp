// Strided copies: the kernel behind views that a consumer cannot read in place (transpose, slice) and their
// gradients. Both sides are strided views of one shape of up to 6 dimensions.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

struct StridedView {
    uint64_t offset = 0;          // elements from the MatRef's first element
    std::vector<uint64_t> stride; // per dimension, elements
};

// dst (+)= src over `shape`: element (i_0, ..., i_k) of src at src_view.offset + sum i_d · src_view.stride[d] of
// `src`, likewise for dst. src and dst share one storage type; every addressed element must lie inside its MatRef.
void record_strided_copy(runtime::Device& device, runtime::Sequence& seq, const std::vector<uint64_t>& shape,
                         const MatRef& src, const StridedView& src_view, const MatRef& dst, const StridedView& dst_view,
                         bool accumulate = false);

// Contiguous row-major strides of `shape`.
std::vector<uint64_t> contiguous_strides(const std::vector<uint64_t>& shape);

} // namespace vktrain::kernels
