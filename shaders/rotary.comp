#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Rotary position embeddings in transformers' rotate_half convention (LlamaRotaryEmbedding + apply_rotary_pos_emb):
// x is rows × heads·D (D = 2·half_size), row r at position t = r % positions. Per head, for i < D/2 with
// f_i = theta^(-2i/D) and a = t·f_i:
//   y[i]       = x[i]·cos a - x[i + D/2]·sin a
//   y[i + D/2] = x[i + D/2]·cos a + x[i]·sin a
// ROTARY_FLAG_INVERSE turns by -a (the backward pass: dx is dy turned back). FLAG_ACCUMULATE: out += result.
// One invocation per pair (i, i + D/2): it reads both elements before writing them, so out may be exactly x's view
// (in place). All arithmetic in fp32: the angle is the fp32 product t·f_i as transformers forms it, and cos/sin are
// computed here (sincos below) rather than by GLSL's cos/sin, whose precision Vulkan only bounds by 2^-11 inside
// [-pi, pi] and leaves undefined outside, while angles reach t (thousands of radians at long contexts).
// Bindings: 0 x (IN type), 1 out (OUT type). Push: RotaryPush.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { RotaryPush p; };

#include "rotary.glsl"

void main() {
    const uint per_row = p.heads * p.half_size;
    const uint d = 2u * p.half_size;
    const bool inverse = (p.flags & ROTARY_FLAG_INVERSE) != 0u;
    const bool accumulate = (p.flags & FLAG_ACCUMULATE) != 0u;
    FOR_EACH_ELEMENT(k, p.pairs) {
        const uint row = k / per_row;
        const uint rest = k - row * per_row;
        const uint head = rest / p.half_size;
        const uint i = rest - head * p.half_size;
        const float f = rotary_frequency(i, d, p.log2_theta, p.log2_theta_lo);
        const float angle = float(row % p.positions) * f;
        vec2 sc = rotary_sincos(angle);
        if (inverse) sc.x = -sc.x;
        const uint e0 = row * per_row * 2u + head * d + i, e1 = e0 + p.half_size;
        const float x0 = LOAD_IN(x[p.offset0 + e0]), x1 = LOAD_IN(x[p.offset0 + e1]);
        float y0 = x0 * sc.y - x1 * sc.x;
        float y1 = x1 * sc.y + x0 * sc.x;
        if (accumulate) {
            y0 += LOAD_OUT(outv[p.offset1 + e0]);
            y1 += LOAD_OUT(outv[p.offset1 + e1]);
        }
        outv[p.offset1 + e0] = STORE_OUT(y0);
        outv[p.offset1 + e1] = STORE_OUT(y1);
    }
}
