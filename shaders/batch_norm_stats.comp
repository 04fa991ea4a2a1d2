#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Batch-norm training statistics of x seen as [n, c, hw] (outer, channels, inner): per channel over its
// m = n * hw elements, in fp32, one workgroup per channel, fixed-order reductions (reduce.glsl):
//   pass 1: d = sum (x - K) / m with K = the channel's first element, mean = K + d. Shifting by a sample
//           makes the summed terms the size of the spread, not of the mean: x = 1000 + noise sums the noise.
//   pass 2: var = sum ((x - K) - d)^2 / m (the biased variance that normalises; two passes, no cancellation).
//   save_mean = mean, save_invstd = 1 / sqrt(var + eps);
//   running_mean = (1 - momentum) running_mean + momentum mean,
//   running_var  = (1 - momentum) running_var + momentum var * m / (m - 1)  (unbiased, as PyTorch; m >= 2).
// Bindings: 0 x (IN type), 1 save_mean, 2 save_invstd, 3 running_mean, 4 running_var (fp32; the running
// statistics read-write). Push: ChannelPush (outer = n, channels = c, inner = hw, eps, momentum); offsets[k]
// is binding k's first element.
#include "elementwise.glsl"
#include "reduce.glsl"

layout(local_size_x = RED_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) writeonly buffer BufMean { float save_mean[]; };
layout(binding = 2) writeonly buffer BufInvstd { float save_invstd[]; };
layout(binding = 3) buffer BufRunMean { float running_mean[]; };
layout(binding = 4) buffer BufRunVar { float running_var[]; };
layout(push_constant) uniform Push { ChannelPush p; };

void main() {
    const uint m = p.outer * p.inner;
    const uint t = gl_LocalInvocationIndex;
    // The loop bound is uniform across the workgroup, so every invocation reaches the barriers inside.
    for (uint c = gl_WorkGroupID.x; c < p.channels; c += gl_NumWorkGroups.x) {
        const uint base = p.offsets[0];
        const float pivot = LOAD_IN(x[base + channel_element(0u, c, p.channels, p.inner)]);
        float acc = 0.0;
        for (uint j = t; j < m; j += RED_WG) acc += LOAD_IN(x[base + channel_element(j, c, p.channels, p.inner)]) - pivot;
        const float shift = workgroup_sum(acc) / float(m);
        acc = 0.0;
        for (uint j = t; j < m; j += RED_WG) {
            const float d = (LOAD_IN(x[base + channel_element(j, c, p.channels, p.inner)]) - pivot) - shift;
            acc += d * d;
        }
        const float var = workgroup_sum(acc) / float(m);
        if (t == 0u) {
            const float mean = pivot + shift;
            save_mean[p.offsets[1] + c] = mean;
            save_invstd[p.offsets[2] + c] = inversesqrt(var + p.eps);
            const float unbiased = var * (float(m) / float(m - 1u));
            const uint rm = p.offsets[3] + c, rv = p.offsets[4] + c;
            running_mean[rm] = (1.0 - p.momentum) * running_mean[rm] + p.momentum * mean;
            running_var[rv] = (1.0 - p.momentum) * running_var[rv] + p.momentum * unbiased;
        }
    }
}
