#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// y[r, c] += bias[c] over a rows × cols matrix: one fp32 add, then one rounding to y's type.
// Bindings: 0 y (OUT type, read-write), 1 bias (IN type). Push: n = rows * cols, cols,
// offset0 = y's first element, offset1 = bias's first element.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) buffer BufY { OUT_S y[]; };
layout(binding = 1) readonly buffer BufBias { IN_S bias[]; };
layout(push_constant) uniform Push { ElementPush p; };

void main() {
    FOR_EACH_ELEMENT(i, p.n) {
        const uint idx = p.offset0 + i;
        y[idx] = STORE_OUT(LOAD_OUT(y[idx]) + LOAD_IN(bias[p.offset1 + i % p.cols]));
    }
}
