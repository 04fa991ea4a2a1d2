// GEMM in the three forms training needs — A·B, A·Bᵀ, Aᵀ·B — on three paths: cooperative matrix
// (fp16 in, fp32 accumulate), tiled fp16 storage with fp32 arithmetic, and fp32.
#pragma once

#include <string>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/context.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// A concrete path (never auto_select here).
struct GemmConfig {
    GemmPath path = GemmPath::fp32;
    uint32_t bm = 0, bn = 0, bk = 0, wg = 0, tm = 0, tn = 0, tk = 0, sg_n = 0;
    uint32_t required_subgroup_size = 0;
    std::string variant;
};

// The tile configuration for a path on this device and problem (throws if the path is unavailable).
GemmConfig gemm_config(const runtime::Device& device, GemmPath path, DType c_type, uint32_t m, uint32_t n, uint32_t k);

// C[m×n] (+)= op(A)·op(B). A is stored row-major as m×k (or k×m when trans_a), B as k×n (or n×k when trans_b).
void record_gemm(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const MatRef& a, bool trans_a,
                 const MatRef& b, bool trans_b, const MatRef& c, bool accumulate = false);

} // namespace vktrain::kernels
