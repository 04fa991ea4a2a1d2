#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// y[o, c, i] += bias[c] over y seen as [outer, channels, inner] (a linear layer's rows × cols output is
// [rows, cols, 1]; an NCHW convolution output is [N, C, H*W]): one fp32 add, then one rounding to y's type.
// Bindings: 0 y (OUT type, read-write), 1 bias (IN type). Push: ChannelPush; offsets[0] = y's first element,
// offsets[1] = bias's.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) buffer BufY { OUT_S y[]; };
layout(binding = 1) readonly buffer BufBias { IN_S bias[]; };
layout(push_constant) uniform Push { ChannelPush p; };

void main() {
    const uint n = p.outer * p.channels * p.inner; // < 2^31, checked on the host
    FOR_EACH_ELEMENT(i, n) {
        const uint idx = p.offsets[0] + i;
        const uint c = (i / p.inner) % p.channels;
        y[idx] = STORE_OUT(LOAD_OUT(y[idx]) + LOAD_IN(bias[p.offsets[1] + c]));
    }
}
