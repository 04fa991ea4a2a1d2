#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Batch-norm backward, per-channel part (training mode), x and dy seen as [n, c, hw]:
//   dbeta[c]  = sum dy
//   dgamma[c] = sum dy * xhat = invstd * sum dy * (x - mean)
// in fp32, one workgroup per channel, fixed-order reductions (reduce.glsl), written fp32 (they feed the
// fp32 master weights). batch_norm_backward_dx.comp then uses both sums for dx.
// Frozen statistics (BN_FLAG_FROZEN): bindings 2 and 3 hold running_mean and running_var, and
// invstd = 1 / sqrt(running_var + eps) as batch_norm_apply.comp computes it in evaluation.
// Bindings: 0 x (IN type), 1 dy (IN type), 2 save_mean, 3 save_invstd (fp32), 4 dgamma, 5 dbeta (fp32).
// Push: ChannelPush (outer = n, channels = c, inner = hw, flags, eps); offsets[k] is binding k's first element.
#include "elementwise.glsl"
#include "reduce.glsl"

layout(local_size_x = RED_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) readonly buffer BufMean { float save_mean[]; };
layout(binding = 3) readonly buffer BufInvstd { float save_invstd[]; };
layout(binding = 4) writeonly buffer BufDgamma { float dgamma[]; };
layout(binding = 5) writeonly buffer BufDbeta { float dbeta[]; };
layout(push_constant) uniform Push { ChannelPush p; };

void main() {
    const uint m = p.outer * p.inner;
    // The loop bound is uniform across the workgroup, so every invocation reaches the barriers inside.
    for (uint c = gl_WorkGroupID.x; c < p.channels; c += gl_NumWorkGroups.x) {
        const float mean = save_mean[p.offsets[2] + c];
        float sum_dy = 0.0, sum_dy_xc = 0.0;
        for (uint j = gl_LocalInvocationIndex; j < m; j += RED_WG) {
            const uint e = channel_element(j, c, p.channels, p.inner);
            const float g = LOAD_IN(dy[p.offsets[1] + e]);
            sum_dy += g;
            sum_dy_xc += g * (LOAD_IN(x[p.offsets[0] + e]) - mean);
        }
        const vec2 sums = workgroup_sum2(sum_dy, sum_dy_xc);
        if (gl_LocalInvocationIndex == 0u) {
            dbeta[p.offsets[5] + c] = sums.x;
            const float s = save_invstd[p.offsets[3] + c];
            dgamma[p.offsets[4] + c] = sums.y * ((p.flags & BN_FLAG_FROZEN) != 0u ? inversesqrt(s + p.eps) : s);
        }
    }
}
