#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Batch-norm normalisation of x seen as [n, c, hw]: y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c], in
// fp32, one rounding to y's type. Training: mean and invstd are the batch statistics of batch_norm_stats.comp.
// Evaluation (BN_FLAG_EVAL): mean is running_mean and invstd = 1 / sqrt(running_var + eps).
// x - mean is formed first (exact when x is near the mean), so a large common offset does not swamp the
// normalised value.
// Bindings: 0 x (IN type), 1 gamma (IN type), 2 beta (IN type), 3 mean (fp32), 4 invstd or running_var
// (fp32), 5 y (OUT type). Push: ChannelPush (outer = n, channels = c, inner = hw, flags, eps); offsets[k] is
// binding k's first element.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufGamma { IN_S gamma[]; };
layout(binding = 2) readonly buffer BufBeta { IN_S beta[]; };
layout(binding = 3) readonly buffer BufMean { float mean[]; };
layout(binding = 4) readonly buffer BufScale { float scale[]; };
layout(binding = 5) writeonly buffer BufY { OUT_S y[]; };
layout(push_constant) uniform Push { ChannelPush p; };

void main() {
    const uint n = p.outer * p.channels * p.inner; // < 2^31, checked on the host
    const bool eval = (p.flags & BN_FLAG_EVAL) != 0u;
    FOR_EACH_ELEMENT(i, n) {
        const uint c = (i / p.inner) % p.channels;
        const float s = scale[p.offsets[4] + c];
        const float invstd = eval ? inversesqrt(s + p.eps) : s;
        const float xc = LOAD_IN(x[p.offsets[0] + i]) - mean[p.offsets[3] + c];
        const float r = xc * invstd * LOAD_IN(gamma[p.offsets[1] + c]) + LOAD_IN(beta[p.offsets[2] + c]);
        y[p.offsets[5] + i] = STORE_OUT(r);
    }
}
