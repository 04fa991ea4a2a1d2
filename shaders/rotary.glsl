// Rotary-embedding arithmetic shared by rotary.comp and attention_decode.comp (the cached decoder rotates q and k at
// its position inside the attention kernel), so both turn by bit-identical angles. Include after push_constants.h.
// (sin v, cos v) for v >= 0 to about 1 ulp of fp32 over the angles rotary embeddings produce (below ~1e5): Cephes'
// sinf/cosf. v is reduced by multiples j of pi/4 (j even) with pi/4 split in three parts (the first two products
// are exact), then minimax polynomials on [-pi/4, pi/4].
vec2 rotary_sincos(float v) {
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
float rotary_frequency(uint i, uint d, float log2_theta, float log2_theta_lo) {
    const float e = float(2u * i) / float(d);
    precise const float hi = e * log2_theta;
    precise const float lo = fma(e, log2_theta, -hi) + e * log2_theta_lo;
    const float n = floor(hi + 0.5);
    precise const float r = (hi - n) + lo; // hi - n is exact
    return ldexp(exp2(-r), -int(n));
}
