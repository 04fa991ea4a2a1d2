// The convolution tests' double-precision CPU reference (test_conv.cpp, test_depthwise_conv.cpp): one
// record_conv2d call on seeded random operands at non-zero offsets, checked element by element against the
// same (storage-rounded) inputs summed in double, with a tolerance from the reduction length.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "device/support.hpp"
#include "kernels/conv.hpp"

namespace vkt_test {

vktrain::kernels::Conv2dShape conv_shape(uint32_t n, uint32_t c_in, uint32_t h, uint32_t w, uint32_t c_out, uint32_t kh,
                                         uint32_t kw, uint32_t sh = 1, uint32_t sw = 1, uint32_t ph = 0,
                                         uint32_t pw = 0, uint32_t dh = 1, uint32_t dw = 1, uint32_t groups = 1);

// Calls f(x index, w index, y index) for every multiply of the convolution (all three directions multiply the
// same pairs; they differ in which index accumulates).
void for_each_conv_tap(const vktrain::kernels::Conv2dShape& s, const std::function<void(size_t, size_t, size_t)>& f);

// One checked convolution: the output view's values and each element's tolerance.
struct ConvCheck {
    std::vector<float> got;
    std::vector<double> tolerance;
};

// Runs record_conv2d(path, dir, s, ..., accumulate, tile, stride_phases) on `on` (nullptr: context()) with inputs from
// `seed` and checks every output element against the reference: |got - ref| <= 2·γ_K·Σ|a·b| + u_out·|ref| +
// floor_abs(out), K the reduction length (plus one when accumulating into a random initial output), γ_K = K·u/(1 - K·u)
// for fp32 accumulation, and that nothing around the output's view changed (failures are reported with ADD_FAILURE).
ConvCheck check_conv2d(vktrain::GemmPath path, DType out, vktrain::kernels::ConvDirection dir,
                       const vktrain::kernels::Conv2dShape& s, bool accumulate, uint32_t seed, uint32_t tile = 0,
                       vktrain::Context* on = nullptr, bool stride_phases = true);

// context() with ContextOptions::allow_depthwise_kernel off: depthwise convolutions run as per-group GEMMs.
vktrain::Context& gemm_conv_context();

} // namespace vkt_test
