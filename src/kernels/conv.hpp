// 2D convolution (PyTorch semantics, NCHW activations, weight [c_out, c_in/groups, kh, kw]) as implicit
// GEMM on the GEMM paths: forward, data gradient and weight gradient, with stride, padding, dilation and
// groups. No im2col copy is made; the shaders gather operands on the fly. Depthwise convolutions (see
// is_depthwise) run on their own kernel instead, on every path, unless the context disallows it. Bias is a
// separate kernel (bias_add / bias_grad over the NCHW planes).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/context.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

struct Conv2dShape {
    uint32_t n = 1, c_in = 1, h = 1, w = 1, c_out = 1, kh = 1, kw = 1;
    uint32_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
    uint32_t out_h() const; // floor((h + 2·pad_h − dil_h·(kh − 1) − 1) / stride_h) + 1
    uint32_t out_w() const;
    void validate() const; // throws vktrain::Error with a one-line message on a bad shape
};

enum class ConvDirection { forward, backward_data, backward_weight };
const char* to_string(ConvDirection d); // "conv_fwd", "conv_bwd_data", "conv_bwd_weight"

// Depthwise: groups = c_in > 1 and c_out = groups · m (any channel multiplier m; m = 1 is MobileNet's). Such a
// convolution is c_in GEMMs with m output rows each; record_conv2d runs it on a dedicated kernel instead
// (shaders/depthwise_conv.comp: each input tile staged once for all taps, a deterministic weight gradient), on
// every path (fp32, and fp16 storage with fp32 accumulation for tiled_fp16 and coopmat alike), unless the device
// was made with ContextOptions::allow_depthwise_kernel false (Device::depthwise_kernel_enabled) or the shape's
// staging does not fit (kernels beyond 9x9 taps, extreme dilations): then it keeps the per-group GEMM.
bool is_depthwise(const Conv2dShape& s);
// Whether record_conv2d runs this convolution on the depthwise kernel (what reports call "depthwise").
bool uses_depthwise_kernel(const runtime::Device& device, ConvDirection d, const Conv2dShape& s);

// Path rules as for GEMM: fp32 = fp32 everywhere; tiled_fp16 and coopmat take fp16 x, w and dy and write
// fp16 or fp32 with fp32 accumulation (fp16 rounded to nearest even, overflow to inf). Each of x, w and y
// must hold fewer than 2^31 elements (32-bit shader indexing; validate() says so otherwise).

// y (+)= conv(x, w). x: n × c_in·h·w; w: c_out × (c_in/groups)·kh·kw; y: n × c_out·oh·ow.
void record_conv2d_forward(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const Conv2dShape& shape,
                           const MatRef& x, const MatRef& w, const MatRef& y, bool accumulate = false);
// dx (+)= conv2d input gradient from dy and w (a gather over output positions: deterministic, no atomics).
void record_conv2d_backward_data(runtime::Device& device, runtime::Sequence& seq, GemmPath path,
                                 const Conv2dShape& shape, const MatRef& dy, const MatRef& w, const MatRef& dx,
                                 bool accumulate = false);
// dw (+)= weight gradient from dy and x (reduction over the batch and output positions); dw may be fp32
// (usual) or fp16.
void record_conv2d_backward_weight(runtime::Device& device, runtime::Sequence& seq, GemmPath path,
                                   const Conv2dShape& shape, const MatRef& dy, const MatRef& x, const MatRef& dw,
                                   bool accumulate = false);

// The three above by direction, with operands named by their role in it: forward (x, w → y),
// backward_data (dy, w → dx), backward_weight (dy, x → dw). `tile` indexes conv_configs (0: the default; past the
// end: the default), as chosen per problem by choose_conv_tile (gemm_autotune.hpp). stride_phases = false runs a
// strided data gradient as one gather over every tap (the path uses_stride_phases replaces; for tests and benches).
void record_conv2d(runtime::Device& device, runtime::Sequence& seq, GemmPath path, ConvDirection direction,
                   const Conv2dShape& shape, const MatRef& in0, const MatRef& in1, const MatRef& out,
                   bool accumulate = false, uint32_t tile = 0, bool stride_phases = true);

// A strided data gradient gathers dy through every tap for every dx pixel, and at stride s only about 1/s² of
// them hit. Where this is true (backward data, a stride above 1, no dilation, at most k_max_stride_phases
// phases) record_conv2d splits dx by stride phase instead: the pixels with the same (iy + pad) mod stride
// receive the same taps, a dense GEMM of its own per phase (one dispatch each) with no wasted multiply. Each
// sum is the gather's without its zero terms, in the same order.
constexpr uint32_t k_max_stride_phases = 16;
bool uses_stride_phases(ConvDirection d, const Conv2dShape& s);

// The tile configurations the implicit GEMM of one convolution may run with on `path` (gemm_configs for its
// per-group GEMM sizes — the largest phase's where the data gradient is split by stride phase — the default first;
// a depthwise convolution on its own kernel ignores them).
std::vector<GemmConfig> conv_configs(const runtime::Device& device, GemmPath path, ConvDirection direction,
                                     const Conv2dShape& shape, DType out, bool stride_phases = true);

} // namespace vktrain::kernels
