// Decode-time attention over a key/value cache: one new position per call, so generating a token costs one
// position's work instead of a pass over the whole context.
#pragma once

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// qkv: 3 · width values of the new position (q | k | v, `heads` heads each); position: one int32 (bound as a 4-byte
// f32 MatRef), p < max_positions; k_cache, v_cache: fp32 max_positions × width, kept between calls; out: width values
// (the type of qkv). Writes the new k, v into row p, then out = softmax(q·Kᵀ[0..p] · scale) · V[0..p] per head.
void record_attention_decode(runtime::Device& device, runtime::Sequence& seq, const MatRef& qkv, const MatRef& position,
                             const MatRef& k_cache, const MatRef& v_cache, const MatRef& out, uint32_t heads,
                             uint32_t max_positions);

} // namespace vktrain::kernels
