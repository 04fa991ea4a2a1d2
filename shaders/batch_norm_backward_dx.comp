#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Batch-norm backward, element-wise part (training mode), x, dy and dx seen as [n, c, hw], m = n * hw:
//   dx (+)= gamma * invstd * (dy - dbeta / m - xhat * dgamma / m),  xhat = (x - mean) * invstd
// (the derivative through the batch mean and biased variance, as PyTorch's batch_norm_backward), in fp32,
// one rounding to dx's type; dgamma and dbeta come from batch_norm_backward_reduce.comp.
// Frozen statistics (BN_FLAG_FROZEN): the mean and variance are constants, so dx (+)= gamma * invstd * dy with
// invstd = 1 / sqrt(running_var + eps) (bindings 3 and 4 hold running_mean and running_var; 5 and 6 are unread).
// Bindings: 0 x, 1 dy, 2 gamma (IN type), 3 save_mean, 4 save_invstd, 5 dgamma, 6 dbeta (fp32), 7 dx (OUT
// type, read-write with FLAG_ACCUMULATE). Push: ChannelPush (outer = n, channels = c, inner = hw, flags);
// offsets[k] is binding k's first element.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) readonly buffer BufGamma { IN_S gamma[]; };
layout(binding = 3) readonly buffer BufMean { float save_mean[]; };
layout(binding = 4) readonly buffer BufInvstd { float save_invstd[]; };
layout(binding = 5) readonly buffer BufDgamma { float dgamma[]; };
layout(binding = 6) readonly buffer BufDbeta { float dbeta[]; };
layout(binding = 7) buffer BufDx { OUT_S dx[]; };
layout(push_constant) uniform Push { ChannelPush p; };

void main() {
    const uint n = p.outer * p.channels * p.inner; // < 2^31, checked on the host
    const float inv_m = 1.0 / float(p.outer * p.inner);
    const bool frozen = (p.flags & BN_FLAG_FROZEN) != 0u;
    FOR_EACH_ELEMENT(i, n) {
        const uint c = (i / p.inner) % p.channels;
        const float s = save_invstd[p.offsets[4] + c];
        float r;
        if (frozen) {
            r = LOAD_IN(gamma[p.offsets[2] + c]) * inversesqrt(s + p.eps) * LOAD_IN(dy[p.offsets[1] + i]);
        } else {
            const float xhat = (LOAD_IN(x[p.offsets[0] + i]) - save_mean[p.offsets[3] + c]) * s;
            const float g = LOAD_IN(dy[p.offsets[1] + i]) - dbeta[p.offsets[6] + c] * inv_m -
                            xhat * (dgamma[p.offsets[5] + c] * inv_m);
            r = LOAD_IN(gamma[p.offsets[2] + c]) * s * g;
        }
        const uint k = p.offsets[7] + i;
        if ((p.flags & FLAG_ACCUMULATE) != 0u) r += LOAD_OUT(dx[k]);
        dx[k] = STORE_OUT(r);
    }
}
