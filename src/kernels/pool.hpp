// 2-D max and average pooling over NCHW tensors, forward and backward, with PyTorch's semantics
// (MaxPool2d / AvgPool2d with ceil_mode = False, dilation 1; average pooling counts the padding).
#pragma once

#include <cstdint>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// An NCHW input of n × c × h × w pooled by kh × kw windows at the given strides, with pad_h / pad_w cells of
// padding on each side. x holds n·c·h·w elements and y n·c·out_h()·out_w() (any rows × cols factorisation).
struct Pool2dShape {
    uint32_t n = 0, c = 0, h = 0, w = 0;
    uint32_t kh = 0, kw = 0, stride_h = 0, stride_w = 0;
    uint32_t pad_h = 0, pad_w = 0;

    uint32_t out_h() const; // (h + 2 pad_h - kh) / stride_h + 1
    uint32_t out_w() const; // (w + 2 pad_w - kw) / stride_w + 1
    // Throws unless the windows are non-empty (kh, kw, strides >= 1), padding is at most half the window (as
    // PyTorch requires, so every window holds a real element), the padded input holds a window, and every
    // element index fits in 31 bits.
    void validate() const;
};

// y = max over each window (padding is -inf; on ties the first maximum in row-major window order wins).
void record_max_pool2d(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape, const MatRef& x,
                       const MatRef& y);

// dx (+)= the gradient of max pooling: each input element gathers the dy of the windows whose maximum it is
// (the argmax is recomputed from x: no index buffer; a fixed order, no atomics, deterministic).
void record_max_pool2d_backward(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape,
                                const MatRef& x, const MatRef& dy, const MatRef& dx, bool accumulate = false);

// y = the mean over each window, padding counted as zeros (every window divides by kh·kw).
void record_avg_pool2d(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape, const MatRef& x,
                       const MatRef& y);

// dx (+)= the gradient of average pooling: each input element gathers dy / (kh·kw) of the windows containing it.
void record_avg_pool2d_backward(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape,
                                const MatRef& dy, const MatRef& dx, bool accumulate = false);

// All operands of one call share one storage type (fp16 or fp32); arithmetic is fp32. With accumulate the
// gradient is added to what dx holds, else dx is overwritten.

} // namespace vktrain::kernels
