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

// (sin v, cos v) for v >= 0 to about 1 ulp of fp32 over the angles rotary embeddings produce (below ~1e5): Cephes'
// sinf/cosf. v is reduced by multiples j of pi/4 (j even) with pi/4 split in three parts (the first two products
// are exact), then minimax polynomials on [-pi/4, pi/4].
vec2 sincos(float v) {
    float j = floor(v * 1.27323954473516); // 4 / pi
    if (mod(j, 2.0) != 0.0) j += 1.0;
    precise float r = ((v - j * 0.78515625) - j * 2.4187564849853515625e-4) - j * 3.77489497744594108e-8;
    const float z = r * r;
    const float s = r + r * z * ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1);
    const float c = 1.0 - 0.5 * z + z * z * ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2);
    // v = (j/2)·pi/2 + r: the quarter turn q = j/2 mod 4 picks the signs and which polynomial.
    const uint q = uint(mod(j * 0.5, 4.0));
    if (q == 0u) return vec2(s, c);
    if (q == 1u) return vec2(c, -s);
    if (q == 2u) return vec2(-s, -c);
    return vec2(-c, s);
}

// The frequency theta^(-2i/D) = 2^-(e·log2(theta)), e = 2i/D, within a few ulp of transformers' fp32 inv_freq
// (1.0 / (theta ** e), which is within an ulp of the exact value): the exponent is carried in two floats
// (log2(theta) split by the host, fma for the product's rounding error) and exp2 only sees its fractional part
// (|r| <= 1/2, where Vulkan bounds exp2 to 4 ulp, against 3 + 2|x| ulp for the whole exponent, up to ~40 ulp at
// theta = 500000), the integer part exact through ldexp. Each ulp of f moves the angle at position t by t·f·2^-24:
// bit-exact inv_freq would need a correctly rounded exp2, which GLSL does not promise.
float frequency(uint i, uint d) {
    const float e = float(2u * i) / float(d);
    precise const float hi = e * p.log2_theta;
    precise const float lo = fma(e, p.log2_theta, -hi) + e * p.log2_theta_lo;
    const float n = floor(hi + 0.5);
    precise const float r = (hi - n) + lo; // hi - n is exact
    return ldexp(exp2(-r), -int(n));
}

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
        const float f = frequency(i, d);
        const float angle = float(row % p.positions) * f;
        vec2 sc = sincos(angle);
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
