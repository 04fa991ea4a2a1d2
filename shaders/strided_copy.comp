#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// A copy between two strided views of one shape (CopyPush): transpose and slice forward, and their gradients
// (with accumulate: dst += src). Element i of the shape is decomposed into its indices, last dimension fastest.
// Bindings: 0 src (IN type), 1 dst (OUT type; read too when accumulating).
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufSrc { IN_S src[]; };
layout(binding = 1) buffer BufDst { OUT_S dst[]; };
layout(push_constant) uniform Push { CopyPush p; };

void main() {
    FOR_EACH_ELEMENT(i, p.n) {
        uint rem = i, si = p.src_offset, di = p.dst_offset;
        [[unroll]] for (int d = COPY_DIMS - 1; d >= 0; --d) {
            const uint idx = rem % p.size[d];
            rem /= p.size[d];
            si += idx * p.src_stride[d];
            di += idx * p.dst_stride[d];
        }
        float v = LOAD_IN(src[si]);
        if (p.accumulate != 0u) v += LOAD_OUT(dst[di]);
        dst[di] = STORE_OUT(v);
    }
}
