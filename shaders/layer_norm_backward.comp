#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// LayerNorm / RMSNorm (RMS_NORM) backward, input gradient, x, dy and dx seen as rows × cols, per row with the
// statistics layer_norm.comp saved, in fp32, one rounding to dx's type:
//   g = dy * weight (dy without NORM_FLAG_AFFINE), xhat = (x - mean) * rstd (RMSNorm: mean = 0),
//   LayerNorm: dx (+)= rstd * (g - mean_row(g) - xhat * mean_row(g * xhat))
//   RMSNorm:   dx (+)= rstd * (g - xhat * mean_row(g * xhat))
// (the derivative through the row's mean and biased variance, or through its mean square). One workgroup per
// row, fixed-order sums (row_reduce.glsl); x and dy are read from memory once: each invocation keeps g and xhat of
// its NORM_PER elements in registers, for rows of up to ROW_WG · NORM_PER elements (longer rows are read twice).
// The weight and bias gradients are column sums over rows
// (layer_norm_weight_grad.comp, bias_grad.comp).
// Bindings: 0 x, 1 dy, 2 weight (IN type), 3 rstd (fp32), 4 dx (OUT type, read-write with FLAG_ACCUMULATE);
// LayerNorm only: 5 mean (fp32); then DX2 (below), with NORM_FLAG_SECOND_DX a second output receiving dx's
// stored value too (a residual add's gradient copy, graph/fusion.hpp). Push: NormPush; offsets[k] is binding k's
// first element.
#include "elementwise.glsl"
// 16 invocations per row: on lavapipe (a workgroup is one thread, invocations SIMD lanes) 64 made the GPT recipe's
// 128-wide rows 8x slower (vktrain_bench_elementwise --only rows), per-workgroup work dominating short rows.
#define ROW_WG 16
#include "row_reduce.glsl"
#define NORM_PER 16

layout(local_size_x = ROW_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) readonly buffer BufWeight { IN_S weight[]; };
layout(binding = 3) readonly buffer BufRstd { float save_rstd[]; };
layout(binding = 4) buffer BufDx { OUT_S dx[]; };
#ifndef RMS_NORM
layout(binding = 5) readonly buffer BufMean { float save_mean[]; };
#define DX2 6
#else
#define DX2 5
#endif
layout(binding = DX2) writeonly buffer BufDx2 { OUT_S dx2[]; };
layout(push_constant) uniform Push { NormPush p; };

void main() {
    const uint t = gl_LocalInvocationIndex;
    const bool affine = (p.flags & NORM_FLAG_AFFINE) != 0u;
    const bool accumulate = (p.flags & FLAG_ACCUMULATE) != 0u;
    const bool second = (p.flags & NORM_FLAG_SECOND_DX) != 0u;
    const float cols = float(p.cols);
    // The loop bound is uniform across the workgroup, so every invocation reaches the barriers inside.
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        const uint xr = p.offsets[0] + r * p.cols, gr = p.offsets[1] + r * p.cols; // < 2^31, checked on the host
        const uint dr = p.offsets[4] + r * p.cols, d2r = p.offsets[DX2] + r * p.cols;
        const float rstd = save_rstd[p.offsets[3] + r];
#ifdef RMS_NORM
        const float mean = 0.0;
#else
        const float mean = save_mean[p.offsets[5] + r];
#endif
        const bool cached = p.cols <= ROW_WG * NORM_PER; // uniform
        float gv[NORM_PER], xv[NORM_PER];
        float sum_g = 0.0, sum_gx = 0.0;
        if (cached) {
            [[unroll]] for (uint k = 0; k < NORM_PER; ++k) {
                const uint j = t + k * ROW_WG;
                gv[k] = 0.0;
                xv[k] = 0.0;
                if (j < p.cols) {
                    gv[k] = LOAD_IN(dy[gr + j]);
                    if (affine) gv[k] *= LOAD_IN(weight[p.offsets[2] + j]);
                    xv[k] = (LOAD_IN(x[xr + j]) - mean) * rstd;
                }
                sum_g += gv[k];
                sum_gx += gv[k] * xv[k];
            }
        } else {
            for (uint j = t; j < p.cols; j += ROW_WG) {
                float g = LOAD_IN(dy[gr + j]);
                if (affine) g *= LOAD_IN(weight[p.offsets[2] + j]);
                sum_g += g;
                sum_gx += g * ((LOAD_IN(x[xr + j]) - mean) * rstd);
            }
        }
        const vec2 sums = row_sum2(sum_g, sum_gx);
#ifdef RMS_NORM
        const float mean_g = 0.0;
#else
        const float mean_g = sums.x / cols;
#endif
        const float mean_gx = sums.y / cols;
        if (cached) {
            [[unroll]] for (uint k = 0; k < NORM_PER; ++k) {
                const uint j = t + k * ROW_WG;
                if (j < p.cols) {
                    float v = rstd * (gv[k] - mean_g - xv[k] * mean_gx);
                    if (accumulate) v += LOAD_OUT(dx[dr + j]);
                    dx[dr + j] = STORE_OUT(v);
                    if (second) dx2[d2r + j] = STORE_OUT(v);
                }
            }
        } else {
            for (uint j = t; j < p.cols; j += ROW_WG) {
                float g = LOAD_IN(dy[gr + j]);
                if (affine) g *= LOAD_IN(weight[p.offsets[2] + j]);
                const float xhat = (LOAD_IN(x[xr + j]) - mean) * rstd;
                float v = rstd * (g - mean_g - xhat * mean_gx);
                if (accumulate) v += LOAD_OUT(dx[dr + j]);
                dx[dr + j] = STORE_OUT(v);
                if (second) dx2[d2r + j] = STORE_OUT(v);
            }
        }
    }
}
