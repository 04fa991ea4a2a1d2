// Element- and channel-wise kernels around the GEMMs and convolutions: per-channel bias add and its
// gradient, activations forward and backward, the element-wise sum, precision casts, and the scan that turns
// a gradient into one "non-finite seen" flag.
// Every kernel takes fp16 or fp32 storage (chosen by the MatRef dtypes) and computes in fp32.
#pragma once

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

enum class Activation {
    relu,
    gelu,     // the tanh approximation (PyTorch approximate="tanh")
    gelu_erf, // exact GELU x * Phi(x) (PyTorch nn.GELU() default); erf to ~1e-7 (shaders/activation.comp)
    silu,     // x * sigmoid(x)
};

// y[o, c, i] += bias[c] over y seen as [outer, channels, inner] (a linear layer's rows × cols output:
// outer = rows, channels = cols, inner = 1; an NCHW convolution output: outer = N, channels = C, inner = H·W).
// y holds outer·channels·inner elements (any rows × cols factorisation), bias `channels`; each fp16 or fp32.
void record_channel_bias_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& y, const MatRef& bias,
                             uint32_t outer, uint32_t channels, uint32_t inner);

// db[c] (+)= sum over o and i of dy[o, c, i] (dy as in record_channel_bias_add; db fp32 with `channels`
// elements). fp32 accumulation in a fixed order: the same inputs give the same bits on every run. With
// accumulate the sums are added to what db holds, else db is overwritten.
void record_channel_bias_grad(runtime::Device& device, runtime::Sequence& seq, const MatRef& dy, const MatRef& db,
                              uint32_t outer, uint32_t channels, uint32_t inner, bool accumulate = false);

// y[r, c] += bias[c]; y is rows×cols, bias 1×cols (record_channel_bias_add with inner = 1).
void record_bias_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& y, const MatRef& bias);

// db[c] = sum_r dy[r, c] (db is 1×cols fp32; record_channel_bias_grad with inner = 1).
void record_bias_grad(runtime::Device& device, runtime::Sequence& seq, const MatRef& dy, const MatRef& db);

// out = a + b element-wise (same element count; each of a, b, out fp16 or fp32; one fp32 add, one rounding).
// out may be exactly the same view as a or b (in-place accumulation: add(d, s, d)), but no other overlap.
// b_scale != 1: out = a + b_scale·b (torch.add's alpha; s·b formed in fp32).
void record_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& a, const MatRef& b, const MatRef& out,
                float b_scale = 1.0f);

// out = a·b element-wise (the op "mul": one fp32 product, one rounding; types and views as record_add, which it
// shares a shader with).
void record_mul(runtime::Device& device, runtime::Sequence& seq, const MatRef& a, const MatRef& b, const MatRef& out);

// y = act(x); x and y have the same shape (dtypes may differ).
void record_activation(runtime::Device& device, runtime::Sequence& seq, Activation act, const MatRef& x,
                       const MatRef& y);

// dx = dy * act'(x), with x the pre-activation input of the forward pass.
void record_activation_backward(runtime::Device& device, runtime::Sequence& seq, Activation act, const MatRef& x,
                                const MatRef& dy, const MatRef& dx);

// dst = src converted to dst's dtype (same element count; fp32 -> fp16 rounds to nearest even, overflow -> inf).
// scale != 1: dst = scale·src (formed in fp32, rounded once).
void record_cast(runtime::Device& device, runtime::Sequence& seq, const MatRef& src, const MatRef& dst,
                 float scale = 1.0f);

// flag[0] is set to 1 when any element of x is inf or NaN (it is never cleared here: fill it with 0 first).
// flag is a buffer of at least 4 bytes holding a uint32. For checks that stay on the device (the trainer checks the
// gradients on the host, where it reads them anyway; tests use it on intermediate values).
void record_nonfinite_scan(runtime::Device& device, runtime::Sequence& seq, const MatRef& x,
                           const runtime::Buffer& flag);

} // namespace vktrain::kernels
