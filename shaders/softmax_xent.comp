#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Softmax cross-entropy, loss and gradient in one pass over each row; one invocation per row (rows are
// batch samples and classes are few, so a row fits one invocation's loop).
//   r < n_valid: row_loss[r] = log(sum_j exp(z_j - m)) - (z_label - m), m = max_j z_j (no overflow: every
//                exponent is <= 0 and the sum is >= 1);
//                dlogits[r, j] = (softmax_j - [j == label]) * (loss_scale / n_valid). Written in the dlogits
//                type: in fp16 a huge loss_scale overflows to inf, which the non-finite scan reports.
//   r >= n_valid (padding): row_loss 0, dlogits 0.
//   label outside [0, cols): row_loss NaN (the step is reported non-finite), dlogits 0.
//   With an ignore_index (PyTorch's): a valid row whose label equals it gets row_loss 0 and dlogits 0, and the
//   others divide by loss_terms (the rows not ignored, counted by the host) instead of the valid rows.
// Bindings: 0 logits (IN type), 1 labels (int32), 2 StepParams, 3 row_loss (fp32), 4 dlogits (OUT type).
// Push: rows, cols, flags = rows per sample (0 = 1: n_valid counts samples, each owning that many rows),
// offset0 = logits' first element, offset1 = dlogits' first element, pad0 = 1 with an ignore_index, offset2 = the
// index (an int's bits).
#include "elementwise.glsl"

layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer BufLogits { IN_S logits[]; };
layout(binding = 1) readonly buffer BufLabels { int labels[]; };
layout(binding = 2) readonly buffer BufParams {
    uint n_valid;
    float loss_scale;
    uint step, loss_terms;
} params;
layout(binding = 3) writeonly buffer BufLoss { float row_loss[]; };
layout(binding = 4) writeonly buffer BufDlogits { OUT_S dlogits[]; };
layout(push_constant) uniform Push { ElementPush p; };

void main() {
    const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x; // rows beyond 65535 workgroups loop
    for (uint r = gl_GlobalInvocationID.x; r < p.rows; r += stride) {
        const uint in_row = p.offset0 + r * p.cols;
        const uint out_row = p.offset1 + r * p.cols;
        const int label = labels[r];
        const uint valid = params.n_valid * max(p.flags, 1u);
        const bool ignored = p.pad0 != 0u && label == int(p.offset2);
        if (r >= valid || ignored || label < 0 || uint(label) >= p.cols) {
            row_loss[r] = r >= valid || ignored ? 0.0 : uintBitsToFloat(0x7fc00000u); // quiet NaN
            for (uint j = 0; j < p.cols; ++j) dlogits[out_row + j] = STORE_OUT(0.0);
            continue;
        }
        float m = LOAD_IN(logits[in_row]);
        for (uint j = 1; j < p.cols; ++j) m = max(m, LOAD_IN(logits[in_row + j]));
        float sum = 0.0;
        for (uint j = 0; j < p.cols; ++j) sum += exp(LOAD_IN(logits[in_row + j]) - m);
        row_loss[r] = log(sum) - (LOAD_IN(logits[in_row + uint(label)]) - m);

        // One reciprocal per row, one product per element; the scale is folded in once, in fp32.
        const float inv_sum = 1.0 / sum;
        // A row reaching here is counted in loss_terms, so that divisor is at least 1.
        const float scale = params.loss_scale / float(p.pad0 != 0u ? params.loss_terms : valid);
        for (uint j = 0; j < p.cols; ++j) {
            const float prob = exp(LOAD_IN(logits[in_row + j]) - m) * inv_sum;
            dlogits[out_row + j] = STORE_OUT((prob - (j == uint(label) ? 1.0 : 0.0)) * scale);
        }
    }
}
