// Rotary position embeddings (RoPE) in transformers' rotate_half convention, as Llama applies them to queries and
// keys: x is rows × heads·head_size with the row at position r % positions (rows = samples · positions), and within
// each head element i < head_size/2 turns together with element i + head_size/2 by the angle t·theta^(-2i/head_size)
// (shaders/rotary.comp states the formula). The backward pass is the inverse rotation of dy (inverse = true).
// x and out share one storage type (fp16 in mixed precision, fp32 otherwise); arithmetic, angles, cos and sin fp32.
#pragma once

#include <cstdint>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

struct RotaryShape {
    uint32_t positions = 0; // rows per sample (T): a row's position is its index modulo this
    uint32_t heads = 0;
    uint32_t head_size = 0; // even
    float theta = 10000.0f; // the base of the frequencies (rope_theta), > 0
};

// out (+)= x turned by +angle (forward) or -angle (inverse: the backward pass). x and out hold the same number of
// rows·heads·head_size elements (rows a multiple of positions); out may be exactly x's view (in place) unless
// accumulating, but no other overlap.
void record_rotary(runtime::Device& device, runtime::Sequence& seq, const RotaryShape& shape, const MatRef& x,
                   const MatRef& out, bool inverse = false, bool accumulate = false);

} // namespace vktrain::kernels
