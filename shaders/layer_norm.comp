#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// LayerNorm (PyTorch nn.LayerNorm over the last dimension) or, with RMS_NORM, RMSNorm (nn.RMSNorm) of x seen
// as rows × cols, each row normalised over its cols elements, statistics in fp32 whatever the storage type:
//   LayerNorm: mean = sum x / cols, var = sum (x - mean)^2 / cols (biased), rstd = 1 / sqrt(var + eps),
//              y = (x - mean) * rstd * weight + bias
//   RMSNorm:   rstd = 1 / sqrt(sum x^2 / cols + eps), y = x * rstd * weight
// (without NORM_FLAG_AFFINE no weight or bias: they are 1 and 0). One workgroup per row (rows beyond the
// workgroup count loop), fixed-order sums (reduce.glsl). The mean is found as in batch_norm_stats.comp:
// d = sum (x - K) / cols with K = the row's first element, mean = K + d, so that x = 1000 + noise sums the
// noise, not the offset; the variance sums ((x - K) - d)^2 (two passes, no cancellation), and y normalises the
// same (x - K) - d. mean and rstd are saved (fp32) for the backward pass.
// Bindings: 0 x (IN type), 1 weight (IN type), 2 y (OUT type), 3 rstd (fp32); LayerNorm only: 4 mean (fp32),
// 5 bias (IN type). Push: NormPush; offsets[k] is binding k's first element.
#include "elementwise.glsl"
#define RED_WG 64
#include "reduce.glsl"

layout(local_size_x = RED_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufWeight { IN_S weight[]; };
layout(binding = 2) writeonly buffer BufY { OUT_S y[]; };
layout(binding = 3) writeonly buffer BufRstd { float save_rstd[]; };
#ifndef RMS_NORM
layout(binding = 4) writeonly buffer BufMean { float save_mean[]; };
layout(binding = 5) readonly buffer BufBias { IN_S bias[]; };
#endif
layout(push_constant) uniform Push { NormPush p; };

void main() {
    const uint t = gl_LocalInvocationIndex;
    const bool affine = (p.flags & NORM_FLAG_AFFINE) != 0u;
    const float cols = float(p.cols);
    // The loop bound is uniform across the workgroup, so every invocation reaches the barriers inside.
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        const uint xr = p.offsets[0] + r * p.cols, yr = p.offsets[2] + r * p.cols; // < 2^31, checked on the host
#ifdef RMS_NORM
        float acc = 0.0;
        for (uint j = t; j < p.cols; j += RED_WG) {
            const float v = LOAD_IN(x[xr + j]);
            acc += v * v;
        }
        const float rstd = inversesqrt(workgroup_sum(acc) / cols + p.eps);
        if (t == 0u) save_rstd[p.offsets[3] + r] = rstd;
        for (uint j = t; j < p.cols; j += RED_WG) {
            float v = LOAD_IN(x[xr + j]) * rstd;
            if (affine) v *= LOAD_IN(weight[p.offsets[1] + j]);
            y[yr + j] = STORE_OUT(v);
        }
#else
        const float pivot = LOAD_IN(x[xr]);
        float acc = 0.0;
        for (uint j = t; j < p.cols; j += RED_WG) acc += LOAD_IN(x[xr + j]) - pivot;
        const float shift = workgroup_sum(acc) / cols;
        acc = 0.0;
        for (uint j = t; j < p.cols; j += RED_WG) {
            const float d = (LOAD_IN(x[xr + j]) - pivot) - shift;
            acc += d * d;
        }
        const float rstd = inversesqrt(workgroup_sum(acc) / cols + p.eps);
        if (t == 0u) {
            save_mean[p.offsets[4] + r] = pivot + shift;
            save_rstd[p.offsets[3] + r] = rstd;
        }
        for (uint j = t; j < p.cols; j += RED_WG) {
            float v = ((LOAD_IN(x[xr + j]) - pivot) - shift) * rstd;
            if (affine) v = v * LOAD_IN(weight[p.offsets[1] + j]) + LOAD_IN(bias[p.offsets[5] + j]);
            y[yr + j] = STORE_OUT(v);
        }
#endif
    }
}
