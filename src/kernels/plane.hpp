// Per-plane kernels over NCHW tensors seen as [planes, inner] (planes = N·C, inner = H·W): adaptive average
// pooling (PyTorch nn.AdaptiveAvgPool2d, the heads of ResNet and MobileNet), per-plane sums (global average pooling,
// the squeeze-excitation scale's gradient) and the channel-wise multiply of squeeze-excitation.
// All operands of one call share one storage type (fp16 or fp32); arithmetic is fp32.
#pragma once

#include <cstdint>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// n × c planes of h × w pooled to oh × ow: output cell (i, j) is the mean of rows [floor(i·h/oh), ceil((i+1)·h/oh))
// and columns likewise (PyTorch's bins; they overlap where the sizes do not divide).
struct AdaptivePool2dShape {
    uint32_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
    // Throws unless every size is at least 1, h·oh and w·ow fit in 32 bits and every element index in 31.
    void validate() const;
};

// y = the bin means. The 1×1 output (global average pooling) is record_plane_sum unless plane_reduction is false
// (then one invocation per output walks its bin, as for other sizes: for measurements).
void record_adaptive_avg_pool2d(runtime::Device& device, runtime::Sequence& seq, const AdaptivePool2dShape& shape,
                                const MatRef& x, const MatRef& y, bool plane_reduction = true);

// dx (+)= each input element's share of the dy of every bin containing it (dy / bin size), gathered in a fixed order.
void record_adaptive_avg_pool2d_backward(runtime::Device& device, runtime::Sequence& seq,
                                         const AdaptivePool2dShape& shape, const MatRef& dy, const MatRef& dx,
                                         bool accumulate = false);

// How record_plane_sum spreads the work: one invocation per plane (serial: short planes, many of them), or one
// workgroup per plane (a tree reduction: long planes, few of them); automatic picks by the shape (plane.cpp).
enum class PlaneSchedule { automatic, serial, workgroup };

// out[q] = scale · Σ_j a[q, j] (· b[q, j] where b is given) over `planes` planes of `inner` elements, in fp32 in a
// fixed order (the same bits on every run).
void record_plane_sum(runtime::Device& device, runtime::Sequence& seq, uint32_t planes, uint32_t inner, const MatRef& a,
                      const MatRef* b, const MatRef& out, float scale = 1.0f,
                      PlaneSchedule schedule = PlaneSchedule::automatic);

// out[q, j] = x[q, j] · s[q] (s holds one value per plane).
void record_channel_mul(runtime::Device& device, runtime::Sequence& seq, uint32_t planes, uint32_t inner,
                        const MatRef& x, const MatRef& s, const MatRef& out);

} // namespace vktrain::kernels
