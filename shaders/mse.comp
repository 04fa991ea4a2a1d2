#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Mean squared error (PyTorch MSELoss(reduction='mean') over the valid rows), loss and gradient in one pass;
// one workgroup per row (rows beyond the workgroup count loop), a fixed-order fp32 reduction (reduce.glsl):
//   r < n_valid: row_loss[r] = sum_j (pred[r, j] - target[r, j])^2 (the host divides the total by n_valid * cols)
//                dpred[r, j] = (pred - target) * (2 loss_scale / (n_valid * cols)), in dpred's type (an fp16
//                overflow gives inf, which the non-finite scan reports).
//   r >= n_valid (padding): row_loss 0, dpred 0.
// Bindings: 0 pred (IN type), 1 target (fp32), 2 StepParams, 3 row_loss (fp32), 4 dpred (OUT type).
// Push: rows, cols, offset0 = pred's first element, offset1 = target's, offset2 = dpred's.
#include "elementwise.glsl"
#include "reduce.glsl"

layout(local_size_x = RED_WG) in;
layout(binding = 0) readonly buffer BufPred { IN_S pred[]; };
layout(binding = 1) readonly buffer BufTarget { float target[]; };
layout(binding = 2) readonly buffer BufParams {
    uint n_valid;
    float loss_scale;
    uint step, pad1;
} params;
layout(binding = 3) writeonly buffer BufLoss { float row_loss[]; };
layout(binding = 4) writeonly buffer BufDpred { OUT_S dpred[]; };
layout(push_constant) uniform Push { ElementPush p; };

void main() {
    const uint n_valid = params.n_valid;
    // Formed only when there are valid rows (no 0 / 0 for an all-padding batch).
    const float scale = n_valid > 0u ? params.loss_scale * 2.0 / (float(n_valid) * float(p.cols)) : 0.0;
    // The loop bound and the validity of a row are uniform across the workgroup, so every invocation reaches
    // the barriers inside workgroup_sum.
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        const bool valid = r < n_valid;
        float acc = 0.0;
        for (uint j = gl_LocalInvocationIndex; j < p.cols; j += RED_WG) {
            const uint k = r * p.cols + j;
            const float d = valid ? LOAD_IN(pred[p.offset0 + k]) - target[p.offset1 + k] : 0.0;
            acc += d * d;
            dpred[p.offset2 + k] = STORE_OUT(d * scale);
        }
        const float sum = workgroup_sum(acc);
        if (gl_LocalInvocationIndex == 0u) row_loss[r] = sum;
    }
}
