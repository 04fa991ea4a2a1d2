#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// LayerNorm / RMSNorm (RMS_NORM) weight gradient, x and dy seen as rows × cols:
//   dweight[c] (+)= sum_r dy[r, c] * xhat[r, c],  xhat = (x - mean[r]) * rstd[r]  (RMSNorm: x * rstd[r])
// accumulated in fp32 and written fp32, laid out as bias_grad.comp: a workgroup owns NORM_COLS adjacent columns
// (each row read is NORM_COLS contiguous elements) and splits the rows among NORM_LANES lanes per column; each
// lane sums its rows in order and the lanes' partial sums are added in a fixed order: deterministic (no
// atomics), with a rounding error of at most about (rows / NORM_LANES + NORM_LANES + 3) * 2^-24 *
// sum_r |dy * xhat|.
// Bindings: 0 x, 1 dy (IN type), 2 rstd (fp32), 3 dweight (fp32, read-write with FLAG_ACCUMULATE); LayerNorm
// only: 4 mean (fp32). Push: NormPush; offsets[k] is binding k's first element.
#include "elementwise.glsl"

#define NORM_COLS 16
#define NORM_LANES 16
layout(local_size_x = NORM_COLS, local_size_y = NORM_LANES) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) readonly buffer BufRstd { float save_rstd[]; };
layout(binding = 3) buffer BufDweight { float dweight[]; };
#ifndef RMS_NORM
layout(binding = 4) readonly buffer BufMean { float save_mean[]; };
#endif
layout(push_constant) uniform Push { NormPush p; };

shared float partial[NORM_LANES][NORM_COLS];

void main() {
    const uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    // Column blocks are strided by the workgroup count (at most 65535 workgroups are guaranteed).
    // The loop bound is uniform across the workgroup, so the barriers inside are reached by all.
    for (uint block = gl_WorkGroupID.x; block * NORM_COLS < p.cols; block += gl_NumWorkGroups.x) {
        const uint c = block * NORM_COLS + lx;
        float acc = 0.0;
        if (c < p.cols)
            for (uint r = ly; r < p.rows; r += NORM_LANES) {
                const uint i = r * p.cols + c; // < 2^31, checked on the host
#ifdef RMS_NORM
                const float xhat = LOAD_IN(x[p.offsets[0] + i]) * save_rstd[p.offsets[2] + r];
#else
                const float xhat = (LOAD_IN(x[p.offsets[0] + i]) - save_mean[p.offsets[4] + r]) *
                                   save_rstd[p.offsets[2] + r];
#endif
                acc += LOAD_IN(dy[p.offsets[1] + i]) * xhat;
            }
        partial[ly][lx] = acc;
        barrier();
        if (ly == 0 && c < p.cols) {
            float sum = partial[0][lx];
            [[unroll]] for (uint l = 1; l < NORM_LANES; ++l) sum += partial[l][lx];
            const uint k = p.offsets[3] + c;
            dweight[k] = (p.flags & FLAG_ACCUMULATE) != 0u ? dweight[k] + sum : sum;
        }
        barrier(); // partial is rewritten by the next block
    }
}
