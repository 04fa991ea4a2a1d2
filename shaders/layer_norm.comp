#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// LayerNorm (PyTorch nn.LayerNorm over the last dimension) or, with RMS_NORM, RMSNorm (nn.RMSNorm) of x seen
// as rows × cols, each row normalised over its cols elements, statistics in fp32 whatever the storage type:
//   LayerNorm: mean = sum x / cols, var = sum (x - mean)^2 / cols (biased), rstd = 1 / sqrt(var + eps),
//              y = (x - mean) * rstd * weight + bias
//   RMSNorm:   rstd = 1 / sqrt(sum x^2 / cols + eps), y = x * rstd * weight
// (without NORM_FLAG_AFFINE no weight or bias: they are 1 and 0). One workgroup per row (rows beyond the
// workgroup count loop), fixed-order sums (row_reduce.glsl): deterministic. x is read from memory once: each invocation keeps
// its NORM_PER elements (j = t, t + ROW_WG, ...) in registers, for rows of up to ROW_WG · NORM_PER elements
// (longer rows are read again for each pass). LayerNorm works on x - K with K = the row's first element, so that
// x = 1000 + noise sums the noise, not the offset: each invocation finds the mean and the sum of squared deviations
// of its own elements (two passes over its registers), and the invocations' (count, mean, M2) are combined pairwise
// (row_moments: no cancellation) in one reduction, then y normalises the same (x - K) - d. mean and rstd are
// saved (fp32) for the backward pass.
// Bindings: 0 x (IN type), 1 weight (IN type), 2 y (OUT type), 3 rstd (fp32); LayerNorm only: 4 mean (fp32),
// 5 bias (IN type); then (RES_B, RES_S below) the residual add's b and sum. Push: NormPush; offsets[k] is binding k's
// first element. With NORM_FLAG_RESIDUAL (a residual add fused into the norm, graph/fusion.hpp) binding 0 holds a and x
// is a + b rounded to x's type, as the add kernel stores it; the sum is written to RES_S (x's type) as well.
#include "elementwise.glsl"
// 16 invocations per row: on lavapipe (a workgroup is one thread, invocations SIMD lanes) 64 made the GPT recipe's
// 128-wide rows 8x slower (vktrain_bench_elementwise --only rows), per-workgroup work dominating short rows.
#define ROW_WG 16
#include "row_reduce.glsl"
#define NORM_PER 16

layout(local_size_x = ROW_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufWeight { IN_S weight[]; };
layout(binding = 2) writeonly buffer BufY { OUT_S y[]; };
layout(binding = 3) writeonly buffer BufRstd { float save_rstd[]; };
#ifndef RMS_NORM
layout(binding = 4) writeonly buffer BufMean { float save_mean[]; };
layout(binding = 5) readonly buffer BufBias { IN_S bias[]; };

#define RES_B 6
#define RES_S 7
#else
#define RES_B 4
#define RES_S 5
#endif
layout(binding = RES_B) readonly buffer BufResB { IN_S res_b[]; };
layout(binding = RES_S) writeonly buffer BufResS { OUT_S res_s[]; };
layout(push_constant) uniform Push { NormPush p; };

bool g_residual;
uint g_br, g_sr; // row starts of b and of the sum (residual add)

// Element j of the row starting at xr: x, or with the residual add a + b rounded as add.comp rounds it. `store`: also
// write the sum (each element once, by the invocation that owns it).
float load_x(uint xr, uint j, bool store) {
    const float a = LOAD_IN(x[xr + j]);
    if (!g_residual) return a;
    const float s = LOAD_OUT(STORE_OUT(a + LOAD_IN(res_b[g_br + j])));
    if (store) res_s[g_sr + j] = STORE_OUT(s);
    return s;
}

void main() {
    const uint t = gl_LocalInvocationIndex;
    g_residual = (p.flags & NORM_FLAG_RESIDUAL) != 0u;
    const bool affine = (p.flags & NORM_FLAG_AFFINE) != 0u;
    const float cols = float(p.cols);
    const bool cached = p.cols <= ROW_WG * NORM_PER; // uniform
    float v[NORM_PER];
    // The loop bound is uniform across the workgroup, so every invocation reaches the barriers inside.
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        const uint xr = p.offsets[0] + r * p.cols, yr = p.offsets[2] + r * p.cols; // < 2^31, checked on the host
        g_br = p.offsets[RES_B] + r * p.cols;
        g_sr = p.offsets[RES_S] + r * p.cols;
#ifdef RMS_NORM
        float acc = 0.0;
        if (cached) {
            [[unroll]] for (uint k = 0; k < NORM_PER; ++k) {
                const uint j = t + k * ROW_WG;
                v[k] = j < p.cols ? load_x(xr, j, true) : 0.0;
                acc += v[k] * v[k];
            }
        } else {
            for (uint j = t; j < p.cols; j += ROW_WG) {
                const float a = load_x(xr, j, true);
                acc += a * a;
            }
        }
        const float rstd = inversesqrt(row_sum2(acc, 0.0).x / cols + p.eps);
        if (t == 0u) save_rstd[p.offsets[3] + r] = rstd;
        if (cached) {
            [[unroll]] for (uint k = 0; k < NORM_PER; ++k) {
                const uint j = t + k * ROW_WG;
                if (j < p.cols) {
                    float o = v[k] * rstd;
                    if (affine) o *= LOAD_IN(weight[p.offsets[1] + j]);
                    y[yr + j] = STORE_OUT(o);
                }
            }
        } else {
            for (uint j = t; j < p.cols; j += ROW_WG) {
                float o = load_x(xr, j, false) * rstd;
                if (affine) o *= LOAD_IN(weight[p.offsets[1] + j]);
                y[yr + j] = STORE_OUT(o);
            }
        }
#else
        const float pivot = load_x(xr, 0u, false);
        // This invocation's elements: count, then mean and M2 of x - pivot (two passes over registers, or memory).
        const float n = t < p.cols ? float((p.cols - t - 1u) / ROW_WG + 1u) : 0.0;
        float sum = 0.0, m2 = 0.0;
        if (cached) {
            [[unroll]] for (uint k = 0; k < NORM_PER; ++k) {
                const uint j = t + k * ROW_WG;
                v[k] = j < p.cols ? load_x(xr, j, true) - pivot : 0.0;
                sum += v[k];
            }
        } else {
            for (uint j = t; j < p.cols; j += ROW_WG) sum += load_x(xr, j, true) - pivot;
        }
        const float local_mean = n > 0.0 ? sum / n : 0.0;
        if (cached) {
            [[unroll]] for (uint k = 0; k < NORM_PER; ++k) {
                const float d = v[k] - local_mean;
                if (t + k * ROW_WG < p.cols) m2 += d * d;
            }
        } else {
            for (uint j = t; j < p.cols; j += ROW_WG) {
                const float d = (load_x(xr, j, false) - pivot) - local_mean;
                m2 += d * d;
            }
        }
        const vec2 moments = row_moments(n, local_mean, m2);
        const float shift = moments.x;
        const float rstd = inversesqrt(moments.y / cols + p.eps);
        if (t == 0u) {
            save_mean[p.offsets[4] + r] = pivot + shift;
            save_rstd[p.offsets[3] + r] = rstd;
        }
        if (cached) {
            [[unroll]] for (uint k = 0; k < NORM_PER; ++k) {
                const uint j = t + k * ROW_WG;
                if (j < p.cols) {
                    float o = (v[k] - shift) * rstd;
                    if (affine) o = o * LOAD_IN(weight[p.offsets[1] + j]) + LOAD_IN(bias[p.offsets[5] + j]);
                    y[yr + j] = STORE_OUT(o);
                }
            }
        } else {
            for (uint j = t; j < p.cols; j += ROW_WG) {
                float o = ((load_x(xr, j, false) - pivot) - shift) * rstd;
                if (affine) o = o * LOAD_IN(weight[p.offsets[1] + j]) + LOAD_IN(bias[p.offsets[5] + j]);
                y[yr + j] = STORE_OUT(o);
            }
        }
#endif
    }
}
