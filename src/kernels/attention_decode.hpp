// Decode-time attention over a key/value cache: one new position per call, so generating a token costs one
// position's work instead of a pass over the whole context.
#pragma once

#include "kernels/tensor.hpp"
#include "vktrain/model.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// The largest head size the kernel holds (shaders/attention_decode.comp, ATTN_DECODE_MAX_HEAD).
constexpr uint32_t attention_decode_max_head = decoder_max_head_size;

struct AttentionDecodeShape {
    uint32_t heads = 1;         // query heads
    uint32_t kv_heads = 1;      // key/value heads, dividing heads (grouped-query attention)
    uint32_t head_size = 1;     // at most attention_decode_max_head; even with rotary
    uint32_t max_positions = 1; // rows of each cache
    float rope_theta = 0.0f;    // > 0: rotate q and k at the position first (a Llama's rotary embeddings), else none
};

// q: heads · head_size values of the new position, k and v: kv_heads · head_size each (the type of out; they may be
// views of one qkv buffer); position: one int32 (bound as a 4-byte f32 MatRef), p < max_positions; k_cache, v_cache:
// fp32 max_positions × kv_heads · head_size, kept between calls; out: heads · head_size. Writes the new (rotated) k
// and v into row p, then out = softmax(q·Kᵀ[0..p] / sqrt(head_size)) · V[0..p] per query head, over its key/value
// head. One dispatch.
void record_attention_decode(runtime::Device& device, runtime::Sequence& seq, const MatRef& q, const MatRef& k,
                             const MatRef& v, const MatRef& position, const MatRef& k_cache, const MatRef& v_cache,
                             const MatRef& out, const AttentionDecodeShape& shape);

} // namespace vktrain::kernels
