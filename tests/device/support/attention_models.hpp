// Shared by the attention tests (test_flash_attention.cpp, test_gqa_attention.cpp): random attention operands
// rounded to the storage type, and the small classifier models built around one attention node.
#pragma once

#include <cstdint>
#include <vector>

#include "device/support.hpp"
#include "kernels/attention.hpp"
#include "vktrain/model.hpp"

namespace vkt_test {

// q, k, v, the output gradient dout and existing gradients dq0, dk0, dv0 (for accumulation), uniform random and
// rounded through `act` (what the device sees): q and k in [-qk, qk), the others in [-1, 1).
struct AttentionInputs {
    std::vector<float> q, k, v, dout, dq0, dk0, dv0;
};

inline AttentionInputs make_attention_inputs(const vktrain::kernels::AttentionShape& s, DType act, uint32_t seed,
                                             float qk) {
    const size_t rows = size_t(s.batch) * s.seq;
    const auto r = [&](size_t n, uint32_t salt, float lo, float hi) {
        return round_through(random_values(n, seed + salt, lo, hi), act);
    };
    AttentionInputs in;
    in.q = r(rows * s.channels(), 1, -qk, qk);
    in.k = r(rows * s.kv_channels(), 2, -qk, qk);
    in.v = r(rows * s.kv_channels(), 3, -1.0f, 1.0f);
    in.dout = r(rows * s.channels(), 4, -1.0f, 1.0f);
    in.dq0 = r(in.q.size(), 5, -1.0f, 1.0f);
    in.dk0 = r(in.k.size(), 6, -1.0f, 1.0f);
    in.dv0 = r(in.v.size(), 7, -1.0f, 1.0f);
    return in;
}

// x [seq, 6] -> q = linear(heads · head_size), k and v = linear(kv_heads · head_size) (built in that order) ->
// attention -> linear(4) -> flatten -> linear(3) -> cross-entropy; kv_heads 0: GPT-2's fused qkv projection
// (linear(3 · heads · head_size)) with self_attention instead.
inline vktrain::Model attention_classifier(uint32_t seq, uint32_t heads, uint32_t head_size, uint32_t kv_heads,
                                           bool causal) {
    vktrain::Model m;
    const int x = m.input("x", {int64_t(seq), 6});
    const int channels = int(heads * head_size);
    int a = 0;
    if (kv_heads == 0) {
        a = m.self_attention(m.linear(x, 3 * channels), heads, causal);
    } else {
        const int kv = int(kv_heads * head_size);
        const int q = m.linear(x, channels);
        const int k = m.linear(x, kv);
        const int v = m.linear(x, kv);
        a = m.attention(q, k, v, heads, kv_heads, causal);
    }
    m.softmax_cross_entropy(m.linear(m.flatten(m.linear(a, 4)), 3));
    return m;
}

} // namespace vkt_test
