// GELU's two forms and their derivatives, shared by activation.comp and the GEMM epilogue (gemm.comp), so a GELU
// fused into a GEMM computes the same bits as the activation kernel.
// GELU(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). With 1 + tanh(u) = 2 sigmoid(2u) this is
// x * s, s = 1 / (1 + exp(-2u)): no tanh (whose exp-based expansions overflow to inf/inf = NaN for large |u|
// on some drivers) and no cancellation in 1 + tanh(u) for negative x, so the result has small relative
// error everywhere. 2u is clamped to +-80 so exp neither overflows nor underflows (e^80 < 2^127); beyond
// that s is 1 or below e^-80 and the clamp changes nothing visible in the product.
const float GELU_K0 = 0.7978845608028654; // sqrt(2/pi)
const float GELU_K1 = 0.044715;
const float GELU_CLAMP = 80.0;

float gelu_two_u(float v) { return 2.0 * GELU_K0 * v * (1.0 + GELU_K1 * v * v); }

float gelu(float v) {
    const float e = exp(-clamp(gelu_two_u(v), -GELU_CLAMP, GELU_CLAMP));
    return v / (1.0 + e);
}

// d/dx [x s(2u)] = s + x * s (1 - s) * 2 u'(x), with s (1 - s) = e / (1 + e)^2 and
// 2 u'(x) = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2) (equal to the tanh form 0.5 (1 + t) + 0.5 x (1 - t^2) u').
// Where 2u is clamped the second term is below 3 |2u| e^-|2u| < 1e-32 and is dropped: keeping the clamped
// e^-80 would multiply it with an unbounded x^3.
float gelu_grad(float v) {
    const float two_u = gelu_two_u(v);
    const float e = exp(-clamp(two_u, -GELU_CLAMP, GELU_CLAMP));
    const float s = 1.0 / (1.0 + e);
    if (abs(two_u) >= GELU_CLAMP) return s;
    return s + v * (e * s * s) * (2.0 * GELU_K0 * (1.0 + 3.0 * GELU_K1 * v * v));
}

// Exact GELU: x * Phi(x), Phi the standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2 (PyTorch nn.GELU()).
// GLSL has no erf, so erfc comes from the Chebyshev-fitted form of Numerical Recipes (Press et al., 2nd ed.,
// section 6.2, erfcc): for z >= 0, erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), P of degree 9, with a
// relative error below 1.2e-7 for every z >= 0 (checked in double against the C library's erfc: at most
// 1.05e-7 relative, 8.3e-8 absolute). Working from erfc of |x| keeps the relative accuracy in the negative
// tail, where 1 + erf(x / sqrt 2) would cancel, and erf itself is 1 - erfc to about 1e-7 absolute. The same
// exp(-z^2) gives the density phi(x) = exp(-x^2 / 2) / sqrt(2 pi) that the derivative Phi + x phi needs.
// z^2 is formed exactly (z split into a 12-bit head and its tail) so its rounding is not amplified by exp
// into a relative error of z^2 * 2^-24. Beyond z = 10 the tail erfc(z) < 2^-149 is below fp32 and is 0.
const float SQRT1_2 = 0.70710678118654752;
const float INV_SQRT_2PI = 0.39894228040143268;
const float ERFC_Z_MAX = 10.0;

// Returns Phi(v); pdf receives phi(v). Both tails are exact zeros beyond |v| = 10 sqrt 2.
float normal_cdf(float v, out float pdf) {
    const float z = abs(v) * SQRT1_2;
    if (!(z < ERFC_Z_MAX)) { // also for NaN: the caller's product with v propagates it
        pdf = 0.0;
        return v > 0.0 ? 1.0 : 0.0;
    }
    const float zh = uintBitsToFloat(floatBitsToUint(z) & 0xfffff000u); // zh * zh is exact in fp32
    const float zl = z - zh;
    const float e = exp(-zh * zh) * exp(-zl * (z + zh)); // exp(-z^2)
    const float t = 1.0 / (1.0 + 0.5 * z);
    // P(t) by Horner's rule, highest coefficient first.
    float poly = 0.17087277;
    poly = poly * t - 0.82215223;
    poly = poly * t + 1.48851587;
    poly = poly * t - 1.13520398;
    poly = poly * t + 0.27886807;
    poly = poly * t - 0.18628806;
    poly = poly * t + 0.09678418;
    poly = poly * t + 0.37409196;
    poly = poly * t + 1.00002368;
    poly = poly * t - 1.26551223;
    const float half_erfc = 0.5 * t * e * exp(poly); // erfc(|v| / sqrt 2) / 2 = Phi(-|v|)
    pdf = e * INV_SQRT_2PI;
    return v < 0.0 ? half_erfc : 1.0 - half_erfc;
}

float gelu_erf(float v) {
    float pdf;
    return v * normal_cdf(v, pdf); // -inf gives NaN (-inf * 0), as x * Phi(x) does in PyTorch
}

float gelu_erf_grad(float v) {
    float pdf;
    const float cdf = normal_cdf(v, pdf);
    return pdf == 0.0 ? cdf : cdf + v * pdf; // skipping v * 0 keeps +-inf from making NaN
}
