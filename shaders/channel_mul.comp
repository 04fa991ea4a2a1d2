#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// out[i] = x[i] * s[i / inner]: x seen as [planes, inner] (planes = N * C, inner = H * W) scaled per plane
// (squeeze-excitation; also its input gradient dx = dy * s). One fp32 product, one rounding.
// Bindings: 0 x (IN type), 1 s (IN type), 2 out (OUT type). Push: ElementPush with n = planes * inner,
// cols = inner; offset0 = x, offset1 = s, offset2 = out.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufS { IN_S s[]; };
layout(binding = 2) writeonly buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { ElementPush p; };

void main() {
    FOR_EACH_ELEMENT(i, p.n) {
        outv[p.offset2 + i] = STORE_OUT(LOAD_IN(x[p.offset0 + i]) * LOAD_IN(s[p.offset1 + i / p.cols]));
    }
}
