#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// ReLU and GELU (tanh approximation), forward and backward, chosen by ElementPush::flags.
//   forward:  out = act(x)              bindings: 0 x (IN type), 1 unused (bound to x), 2 out (OUT type)
//   backward: out = dy * act'(x)        bindings: 0 x (IN type), 1 dy (IN type), 2 out = dx (OUT type)
// Push: n, flags (ACT_FLAG_*), offset0 = x's first element, offset1 = dy's, offset2 = out's.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) writeonly buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { ElementPush p; };

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

void main() {
    const bool is_gelu = (p.flags & ACT_FLAG_GELU) != 0u;
    const bool backward = (p.flags & ACT_FLAG_BACKWARD) != 0u;
    FOR_EACH_ELEMENT(i, p.n) {
        const float v = LOAD_IN(x[p.offset0 + i]);
        float r;
        if (backward) {
            const float g = LOAD_IN(dy[p.offset1 + i]);
            r = is_gelu ? g * gelu_grad(v) : (v > 0.0 ? g : 0.0); // ReLU'(x) = [x > 0]
        } else {
            r = is_gelu ? gelu(v) : ((v > 0.0 || isnan(v)) ? v : 0.0); // NaN propagates, -0 becomes +0
        }
        outv[p.offset2 + i] = STORE_OUT(r);
    }
}
