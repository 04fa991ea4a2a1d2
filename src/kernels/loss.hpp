// Losses, each forward and backward in one kernel computed in fp32: softmax cross-entropy and mean squared
// error. Both read the per-step scalars (StepParams) from a buffer the host rewrites before each replay.
#pragma once

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// The per-step scalars the host writes before each replay (shared with the shader as a storage buffer).
struct StepParams {
    uint32_t n_valid; // samples of the batch that are real (the rest are padding)
    float loss_scale; // multiplies the gradient (dynamic loss scaling); 1 in fp32 mode
    uint32_t step;    // the step counter (dropout masks are a function of seed, step and element)
    // softmax_xent with an ignore_index: the rows r < n_valid · rows_per_sample whose label is not ignored, which the
    // gradient is divided by (the host counts them; 0 when every row is ignored). Unused otherwise.
    uint32_t loss_terms;
};

// Cross-entropy's PyTorch ignore_index: rows whose label equals it get loss 0 and gradient 0, and the gradient of
// the others is divided by StepParams::loss_terms instead of the valid rows.
struct XentIgnore {
    bool enabled = false;
    int32_t index = -100;
};

// For each row r < n_valid: row_loss[r] = logsumexp(logits[r, :]) - logits[r, labels[r]] and
// dlogits[r, :] = loss_scale * (softmax(logits[r, :]) - onehot(labels[r])) / n_valid.
// Rows r >= n_valid get row_loss 0 and dlogits 0. logits and dlogits are rows×classes (fp16 or fp32),
// labels int32[rows], row_loss fp32[rows], params one StepParams. A label outside [0, classes) gives
// row_loss NaN (so the step is reported non-finite) and zero gradient for that row.
// rows_per_sample > 1 (per-token losses): each sample owns that many consecutive rows; rows below
// n_valid · rows_per_sample count and the gradient is divided by that number instead.
// ignore.enabled: valid rows whose label is ignore.index get row_loss 0 and dlogits 0 (whatever the index, in the class
// range or not), and the other valid rows' gradient is divided by params.loss_terms instead.
void record_softmax_xent(runtime::Device& device, runtime::Sequence& seq, const MatRef& logits,
                         const runtime::Buffer& labels, const runtime::Buffer& params, const runtime::Buffer& row_loss,
                         const MatRef& dlogits, uint32_t rows_per_sample = 1, const XentIgnore& ignore = {});

// Mean squared error, PyTorch MSELoss(reduction='mean') over the rows r < n_valid of a rows×cols prediction:
// row_loss[r] = sum_c (pred[r, c] - target[r, c])^2 (fp32; the host divides the total by n_valid·cols) and
// dpred = loss_scale·2·(pred - target)/(n_valid·cols). Rows r >= n_valid (padding) get row_loss 0 and dpred 0.
// pred and dpred are rows×cols of one type (fp16 or fp32), target fp32 with rows·cols elements, row_loss
// fp32[rows], params one StepParams (the buffer softmax_xent reads).
void record_mse(runtime::Device& device, runtime::Sequence& seq, const MatRef& pred, const MatRef& target,
                const runtime::Buffer& params, const runtime::Buffer& row_loss, const MatRef& dpred);

} // namespace vktrain::kernels
