// Element- and row-wise kernels around the GEMMs: bias add and its gradient, activations forward and
// backward, precision casts, and the scan that turns a gradient into one "non-finite seen" flag.
// Every kernel takes fp16 or fp32 storage (chosen by the MatRef dtypes) and computes in fp32.
#pragma once

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

enum class Activation { relu, gelu }; // gelu: the tanh approximation (PyTorch approximate="tanh")

// y[r, c] += bias[c]; y is rows×cols, bias 1×cols of the same dtype.
void record_bias_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& y, const MatRef& bias);

// db[c] = sum_r dy[r, c] (db is 1×cols fp32; accumulation in fp32).
void record_bias_grad(runtime::Device& device, runtime::Sequence& seq, const MatRef& dy, const MatRef& db);

// y = act(x); x and y have the same shape (dtypes may differ).
void record_activation(runtime::Device& device, runtime::Sequence& seq, Activation act, const MatRef& x,
                       const MatRef& y);

// dx = dy * act'(x), with x the pre-activation input of the forward pass.
void record_activation_backward(runtime::Device& device, runtime::Sequence& seq, Activation act, const MatRef& x,
                                const MatRef& dy, const MatRef& dx);

// dst = src converted to dst's dtype (same element count; fp32 -> fp16 rounds to nearest even, overflow -> inf).
void record_cast(runtime::Device& device, runtime::Sequence& seq, const MatRef& src, const MatRef& dst);

// flag[0] is set to 1 when any element of x is inf or NaN (it is never cleared here: fill it with 0 first).
// flag is a buffer of at least 4 bytes holding a uint32.
void record_nonfinite_scan(runtime::Device& device, runtime::Sequence& seq, const MatRef& x,
                           const runtime::Buffer& flag);

} // namespace vktrain::kernels
