#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// db[c] (+)= sum_r dy[r, c] (column sums of a rows × cols matrix), accumulated in fp32 and written fp32.
// A workgroup owns BIAS_COLS adjacent columns (so each row read is BIAS_COLS contiguous elements) and
// splits the rows among BIAS_LANES lanes per column; each lane sums rows/BIAS_LANES values in order and
// the lanes' partial sums are added in a fixed order, so the result is deterministic and the rounding
// error is at most about (rows / BIAS_LANES + BIAS_LANES) * 2^-24 * sum_r |dy[r, c]|.
// Bindings: 0 dy (IN type), 1 db (fp32, read-write with FLAG_ACCUMULATE). Push: rows, cols, flags
// (FLAG_ACCUMULATE: add the sums to db), offset0 = dy's first element, offset1 = db's.
#include "elementwise.glsl"

#define BIAS_COLS 16
#define BIAS_LANES 8
layout(local_size_x = BIAS_COLS, local_size_y = BIAS_LANES) in;
layout(binding = 0) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 1) buffer BufDb { float db[]; };
layout(push_constant) uniform Push { ElementPush p; };

shared float partial[BIAS_LANES][BIAS_COLS];

void main() {
    const uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    // Column blocks are strided by the workgroup count (at most 65535 workgroups are guaranteed).
    // The loop bound is uniform across the workgroup, so the barriers inside are reached by all.
    for (uint block = gl_WorkGroupID.x; block * BIAS_COLS < p.cols; block += gl_NumWorkGroups.x) {
        const uint c = block * BIAS_COLS + lx;
        float acc = 0.0;
        if (c < p.cols)
            for (uint r = ly; r < p.rows; r += BIAS_LANES) acc += LOAD_IN(dy[p.offset0 + r * p.cols + c]);
        partial[ly][lx] = acc;
        barrier();
        if (ly == 0 && c < p.cols) {
            float sum = partial[0][lx];
            [[unroll]] for (uint l = 1; l < BIAS_LANES; ++l) sum += partial[l][lx];
            const uint k = p.offset1 + c;
            db[k] = (p.flags & FLAG_ACCUMULATE) != 0u ? db[k] + sum : sum;
        }
        barrier(); // partial is rewritten by the next block
    }
}
