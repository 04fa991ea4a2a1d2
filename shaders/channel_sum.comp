#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// db[c] (+)= sum over o and i of dy[o, c, i], dy seen as [outer, channels, inner]: the bias gradient of a
// convolution (or of a linear layer with few columns). One workgroup per channel (channels beyond the
// workgroup count loop), a fixed-order reduction in fp32 (reduce.glsl), written fp32.
// Bindings: 0 dy (IN type), 1 db (fp32, read-write with FLAG_ACCUMULATE). Push: ChannelPush; offsets[0] =
// dy's first element, offsets[1] = db's.
#include "elementwise.glsl"
#include "reduce.glsl"

layout(local_size_x = RED_WG) in;
layout(binding = 0) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 1) buffer BufDb { float db[]; };
layout(push_constant) uniform Push { ChannelPush p; };

void main() {
    const uint m = p.outer * p.inner;
    // The loop bound is uniform across the workgroup, so every invocation reaches the barriers inside.
    for (uint c = gl_WorkGroupID.x; c < p.channels; c += gl_NumWorkGroups.x) {
        float acc = 0.0;
        for (uint j = gl_LocalInvocationIndex; j < m; j += RED_WG)
            acc += LOAD_IN(dy[p.offsets[0] + channel_element(j, c, p.channels, p.inner)]);
        const float sum = workgroup_sum(acc);
        if (gl_LocalInvocationIndex == 0u) {
            const uint k = p.offsets[1] + c;
            db[k] = (p.flags & FLAG_ACCUMULATE) != 0u ? db[k] + sum : sum;
        }
    }
}
