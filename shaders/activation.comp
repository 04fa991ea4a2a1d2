#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// ReLU, GELU (tanh approximation), exact GELU, SiLU, ReLU6, hardswish and hardsigmoid, forward and backward, chosen by ElementPush::flags.
//   forward:  out = act(x)              bindings: 0 x (IN type), 1 unused (bound to x), 2 out (OUT type)
//   backward: out = dy * act'(x)        bindings: 0 x (IN type), 1 dy (IN type), 2 out = dx (OUT type)
// Push: n, flags (ACT_FLAG_*), offset0 = x's first element, offset1 = dy's, offset2 = out's.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) writeonly buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { ElementPush p; };

#include "gelu.glsl"

// SiLU: x * sigmoid(x). sigmoid is formed from e = exp(-|x|) <= 1, which never overflows: s = 1 / (1 + e)
// for x >= 0 and e / (1 + e) for x < 0, accurate in both tails (no clamp, no inf / inf). The derivative is
// s + x s (1 - s) with s (1 - s) = e / (1 + e)^2 for either sign; where e underflows the term is 0.
float silu_sigmoid(float v, out float e) {
    e = exp(-abs(v));
    return v >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

float silu(float v) {
    float e;
    return v * silu_sigmoid(v, e);
}

float silu_grad(float v) {
    float e;
    const float s = silu_sigmoid(v, e);
    if (e == 0.0) return s;
    const float q = 1.0 / (1.0 + e);
    return s + v * (e * q * q);
}

// The piecewise-linear vision activations, as PyTorch 1.13 defines them (the scalar CPU and the CUDA kernels of
// hardtanh_backward, hardswish_backward and hardsigmoid_backward), gradients at the kinks included:
//   relu6 = hardtanh(x, 0, 6): grad 0 for x <= 0 or x >= 6 (0 at both kinks);
//   hardswish = x * relu6(x + 3) / 6: grad 0 for x < -3, x / 3 + 0.5 for -3 <= x <= 3 (-0.5 at -3, 1.5 at 3),
//     1 above;
//   hardsigmoid = relu6(x + 3) / 6: grad 1/6 for -3 < x < 3, else 0 (0 at both kinks).
// (PyTorch's vectorised CPU path gives hardswish 1 at x = 3 and relu6 0 for NaN: it disagrees with its own scalar
// and CUDA kernels there, which are followed here.) NaN propagates through the forward pass (GLSL's min / max may
// drop it, hence the explicit test); the gradient of a NaN is what the comparisons below give, as in PyTorch's.
float relu6_of(float v) {
    return isnan(v) ? v : min(max(v, 0.0), 6.0);
}

float vision_act(uint kind, float v) {
    if (kind == ACT_FLAG_RELU6) return relu6_of(v);
    if (kind == ACT_FLAG_HARDSWISH) return v * relu6_of(v + 3.0) / 6.0;
    return relu6_of(v + 3.0) / 6.0; // hardsigmoid
}

float vision_act_grad(uint kind, float v) {
    if (kind == ACT_FLAG_RELU6) return v <= 0.0 || v >= 6.0 ? 0.0 : 1.0;
    if (kind == ACT_FLAG_HARDSWISH) return v < -3.0 ? 0.0 : v <= 3.0 ? v / 3.0 + 0.5 : 1.0;
    return v > -3.0 && v < 3.0 ? 1.0 / 6.0 : 0.0; // hardsigmoid
}

void main() {
    const bool backward = (p.flags & ACT_FLAG_BACKWARD) != 0u;
    const uint kind = p.flags & (ACT_FLAG_GELU | ACT_FLAG_GELU_ERF | ACT_FLAG_SILU | ACT_FLAG_RELU6 |
                                 ACT_FLAG_HARDSWISH | ACT_FLAG_HARDSIGMOID); // 0: ReLU
    const bool vision = (kind & (ACT_FLAG_RELU6 | ACT_FLAG_HARDSWISH | ACT_FLAG_HARDSIGMOID)) != 0u;
    FOR_EACH_ELEMENT(i, p.n) {
        const float v = LOAD_IN(x[p.offset0 + i]);
        float r;
        if (backward) {
            const float g = LOAD_IN(dy[p.offset1 + i]);
            if (vision)
                r = g * vision_act_grad(kind, v);
            else if (kind == ACT_FLAG_GELU)
                r = g * gelu_grad(v);
            else if (kind == ACT_FLAG_GELU_ERF)
                r = g * gelu_erf_grad(v);
            else if (kind == ACT_FLAG_SILU)
                r = g * silu_grad(v);
            else
                r = v > 0.0 ? g : 0.0; // ReLU'(x) = [x > 0]
        } else {
            if (vision)
                r = vision_act(kind, v);
            else if (kind == ACT_FLAG_GELU)
                r = gelu(v);
            else if (kind == ACT_FLAG_GELU_ERF)
                r = gelu_erf(v);
            else if (kind == ACT_FLAG_SILU)
                r = silu(v);
            else
                r = (v > 0.0 || isnan(v)) ? v : 0.0; // NaN propagates, -0 becomes +0
        }
        outv[p.offset2 + i] = STORE_OUT(r);
    }
}
