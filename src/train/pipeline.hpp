// The host side of a step as a pipeline: the gradients arrive in buckets (graph/buckets.hpp) while the device
// still runs the backward pass of earlier layers; each bucket is checked for inf/NaN (in the pass that sums the
// squares for the norm) and its update is staged at once, so the update of late layers overlaps the backward pass
// of early ones. GradScaler's rule stays exact: the staged step is committed only when every bucket was finite;
// otherwise no master weight, optimizer state or fp16 copy changes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "train/optimizer.hpp"

namespace vktrain::train {

struct PipelineTensors {
    std::vector<size_t> master_offsets; // per trainable tensor: where it lies in the master vector
    std::vector<size_t> grad_offsets;   // per trainable tensor: where its gradient lies in the gradient buffer
};

struct PipelinedStep {
    double sum_squares = 0.0;        // of the unscaled gradients, bit-identical to global_sum_squares
    bool committed = false;          // false: a gradient was inf/NaN and nothing current changed
    double host_seconds = 0.0;       // checks, updates and the commit
    double overlapped_seconds = 0.0; // the part done before the last bucket had arrived
};

// One step. wait_bucket(b) blocks until bucket b's gradients are readable and returns the gradient buffer (every
// tensor at its grad_offset; only the buckets waited for so far may be read). The update reads `master`, writes
// `master_next` (the same size; values outside the trainable tensors must equal master's) and halves (empty, or one
// fp16 destination per tensor). On commit the two vectors are swapped (the updated weights are then in `master`)
// and the optimizer's second bank becomes current; otherwise the fp16 copies already written are rewritten from
// `master`. multiplier: 1 / the loss scale; learning_rate: this step's.
PipelinedStep pipelined_step(Optimizer& optimizer, const std::vector<std::vector<size_t>>& buckets,
                             const std::function<const float*(size_t)>& wait_bucket, const PipelineTensors& tensors,
                             std::vector<float>& master, std::vector<float>& master_next, float multiplier,
                             float learning_rate, const std::vector<uint16_t*>& halves);

} // namespace vktrain::train
