#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Softmax over each row of a rows × cols matrix, forward or backward (SOFTMAX_FLAG_BACKWARD), in fp32
// arithmetic; one invocation per row (rows are many: batch × heads × positions for attention).
// With SOFTMAX_FLAG_CAUSAL, row r sees columns j <= r % cols only (row r of each cols × cols block is query
// position r % cols); the others get probability 0, and gradient 0, written exactly.
//   forward:  p_j = exp(s·x_j - max) / sum over the visible j of exp(s·x_j - max)
//             bindings: 0 x (IN type), 1 unused (bound to x), 2 p (OUT type)
//   backward: dx_j = s · p_j · (dp_j - sum_i dp_i p_i), the gradient with respect to the unscaled x
//             bindings: 0 dp (IN type), 1 p (OUT type), 2 dx (OUT type; FLAG_ACCUMULATE adds to it)
// Push: SoftmaxPush (s = scale; offset0..2 = the first element of bindings 0..2 in their bound ranges).
#include "elementwise.glsl"

layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer BufIn { IN_S inv[]; };
layout(binding = 1) readonly buffer BufP { OUT_S pv[]; };
layout(binding = 2) buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { SoftmaxPush p; };

void store(uint idx, float v) {
    if ((p.flags & FLAG_ACCUMULATE) != 0u) v += LOAD_OUT(outv[idx]);
    outv[idx] = STORE_OUT(v);
}

void main() {
    const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x; // rows beyond 65535 workgroups loop
    for (uint r = gl_GlobalInvocationID.x; r < p.rows; r += stride) {
        const uint in_row = p.offset0 + r * p.cols;
        const uint p_row = p.offset1 + r * p.cols;
        const uint out_row = p.offset2 + r * p.cols;
        const uint visible = (p.flags & SOFTMAX_FLAG_CAUSAL) != 0u ? r % p.cols + 1u : p.cols;
        if ((p.flags & SOFTMAX_FLAG_BACKWARD) != 0u) {
            float dot = 0.0;
            for (uint j = 0; j < visible; ++j) dot += LOAD_IN(inv[in_row + j]) * LOAD_OUT(pv[p_row + j]);
            for (uint j = 0; j < visible; ++j)
                store(out_row + j, p.scale * LOAD_OUT(pv[p_row + j]) * (LOAD_IN(inv[in_row + j]) - dot));
        } else {
            // The largest visible value is subtracted first: every exponent is <= 0 and the sum is >= 1.
            float m = p.scale * LOAD_IN(inv[in_row]);
            for (uint j = 1; j < visible; ++j) m = max(m, p.scale * LOAD_IN(inv[in_row + j]));
            float sum = 0.0;
            for (uint j = 0; j < visible; ++j) sum += exp(p.scale * LOAD_IN(inv[in_row + j]) - m);
            const float inv_sum = 1.0 / sum;
            for (uint j = 0; j < visible; ++j)
                store(out_row + j, exp(p.scale * LOAD_IN(inv[in_row + j]) - m) * inv_sum);
        }
        // Masked entries: exactly 0 (accumulating adds nothing to them).
        if ((p.flags & FLAG_ACCUMULATE) == 0u)
            for (uint j = visible; j < p.cols; ++j) outv[out_row + j] = STORE_OUT(0.0);
    }
}
