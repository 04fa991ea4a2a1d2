// Effective GEMM path = requested ∧ supported ∧ worthwhile. "Supported" is not enough: lavapipe emulates
// cooperative matrix and is slower with it than with the tiled fp16 loop, so in auto mode each GEMM
// shape is timed on both fp16 paths the first time it is seen, and the choice is cached per device
// and driver (cache_dir/gemm-paths-<device key>.json).
#pragma once

#include <string>

#include "kernels/tensor.hpp"
#include "vktrain/context.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

struct GemmShape {
    bool trans_a = false, trans_b = false;
    uint32_t m = 0, n = 0, k = 0;
    DType out = DType::f16;
    std::string key() const; // "AtB:m=256,n=784,k=128,out=f32"
};

struct GemmChoice {
    GemmPath path = GemmPath::fp32;
    std::string reason;       // one line: why this path
    double coopmat_us = -1.0; // measured time per GEMM (-1: not measured)
    double tiled_us = -1.0;
    bool cached = false; // came from the cache file
};

// For mixed precision: resolves `requested` (auto, coopmat or tiled_fp16) for one GEMM shape.
GemmChoice choose_gemm_path(runtime::Device& device, GemmPath requested, const GemmShape& shape);

// Microseconds per GEMM of `shape` on `path` (a few timed repetitions after a warm-up).
double time_gemm(runtime::Device& device, GemmPath path, const GemmShape& shape, int repeats = 3);

} // namespace vktrain::kernels
