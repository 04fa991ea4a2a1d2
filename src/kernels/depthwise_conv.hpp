// The depthwise convolution kernel behind record_conv2d (shaders/depthwise_conv.comp): groups = c_in > 1 and
// c_out = groups · m. Internal to src/kernels; callers go through conv.hpp, which picks it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "kernels/conv.hpp"

namespace vktrain::kernels {

// How one depthwise convolution runs: invocations per workgroup, the tile of outputs (forward, backward weight)
// or of dx (backward data) a workgroup computes per step, and the adjacent outputs of a row per invocation.
struct DepthwisePlan {
    uint32_t wg = 64, tile_h = 8, tile_w = 8, rx = 4;
    std::string name() const; // "depthwise 8x32 wg16 rx4"
};

// The plan for `s` in direction `d`, or nothing where the device disallows the kernel
// (ContextOptions::allow_depthwise_kernel), the shape is not depthwise or its staging does not fit the kernel's shared
// memory (kernels beyond 9x9, or dilations so wide that one output's taps span more than 4096
// elements): such convolutions keep the per-group GEMM.
std::optional<DepthwisePlan> plan_depthwise(const runtime::Device& device, ConvDirection d, const Conv2dShape& s);

// Records the convolution with operands already checked by record_conv2d (in0, in1 -> out by direction).
void record_depthwise_conv2d(runtime::Device& device, runtime::Sequence& seq, GemmPath path, ConvDirection direction,
                             const Conv2dShape& s, const DepthwisePlan& plan, const MatRef& in0, const MatRef& in1,
                             const MatRef& out, bool accumulate);

} // namespace vktrain::kernels
