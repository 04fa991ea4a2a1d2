#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// dst = src in dst's precision. fp32 -> fp16 rounds to nearest even with overflow to inf and exact
// subnormals (elementwise.glsl); fp16 -> fp32 is exact; same-type variants are copies.
// Bindings: 0 src (IN type), 1 dst (OUT type). Push: n, offset0 = src's first element, offset1 = dst's; flags
// FLAG_SCALE: dst = s·src with s the fp32 in pad0, rounded once to dst's type.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufSrc { IN_S src[]; };
layout(binding = 1) writeonly buffer BufDst { OUT_S dst[]; };
layout(push_constant) uniform Push { ElementPush p; };

void main() {
    if ((p.flags & FLAG_SCALE) != 0u) {
        const float s = uintBitsToFloat(p.pad0);
        FOR_EACH_ELEMENT(i, p.n) { dst[p.offset1 + i] = STORE_OUT(s * LOAD_IN(src[p.offset0 + i])); }
        return;
    }
    FOR_EACH_ELEMENT(i, p.n) {
#if defined(IN_F16) == defined(OUT_F16)
        dst[p.offset1 + i] = src[p.offset0 + i]; // a copy: bits move unchanged (NaN payloads included)
#else
        dst[p.offset1 + i] = STORE_OUT(LOAD_IN(src[p.offset0 + i]));
#endif
    }
}
