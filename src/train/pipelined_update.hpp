// The pipelined update strategy (train/update_strategy.hpp): the gradients arrive in buckets (graph/buckets.hpp) while
// the device still runs the backward pass of earlier layers; each bucket is checked for inf/NaN (in the pass that sums
// the squares for the norm) and its update is staged at once, so the update of late layers overlaps the backward pass
// of early ones. GradScaler's rule stays exact: the staged step is committed only when every bucket was finite;
// otherwise no master weight, optimizer state or fp16 copy changes. The optimizer reads the current masters and state
// and writes a second bank (a second copy of the master vector, kept here, and the optimizer's own); a commit swaps
// the banks, so nothing is copied back.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/parallel.hpp"
#include "train/optimizer.hpp"
#include "train/update_strategy.hpp"

namespace vktrain::graph {
class Resources; // the device's copy of the weights (graph/resources.hpp); these headers stay free of Vulkan
}

namespace vktrain::train {

using PipelineTensors = TrainableTensors;

class PipelinedUpdate final : public UpdateStrategy {
public:
    // buckets: trainable tensor indices, each tensor in exactly one. master: the host's fp32 masters; the second bank
    // is `master_next` when given (the same size; values outside the trainable tensors must equal master's) or kept
    // here, copied from master before the first step. halves: empty, or one fp16 destination per tensor (the device's
    // copy, written as each tensor is staged). res: the device's working copy, marked changed after a commit and
    // restored from the masters when a step is abandoned (null: no device, for tests). Throws vktrain::Error for
    // buckets that do not cover every tensor once.
    PipelinedUpdate(Optimizer& optimizer, std::vector<std::vector<size_t>> buckets, TrainableTensors tensors,
                    std::vector<float>& master, std::vector<float>* master_next, std::vector<uint16_t*> halves,
                    graph::Resources* res);

    void begin(const StepScalars& scalars) override;
    void on_bucket(size_t bucket, const float* grads) override;
    GradientCheck check() override;
    StepTiming finish(bool skip) override;
    void abandon() override;
    void host_changed(bool trainable_only) override;

    double sum_squares() const { return m_sum; } // of the last step's unscaled gradients, as global_sum_squares sums
    size_t buckets() const { return m_buckets.size(); }
    uint64_t host_bytes() const override { return m_own_next.capacity() * 4; }

private:
    Optimizer& m_optimizer;
    std::vector<std::vector<size_t>> m_buckets;
    TrainableTensors m_tensors;
    std::vector<float>& m_master;
    std::vector<float> m_own_next;
    std::vector<float>* m_next;
    bool m_next_stale = true; // copy master into the second bank before the next step
    std::vector<uint16_t*> m_halves;
    graph::Resources* m_res;

    std::vector<TensorChunk> m_chunks;            // as global_sum_squares sums, so the norm is the same bit for bit
    std::vector<std::vector<size_t>> m_chunks_of; // per tensor
    std::vector<double> m_sums;                   // per chunk
    std::vector<const float*> m_params, m_grads;
    std::vector<float*> m_params_out;
    std::vector<size_t> m_staged;
    float m_multiplier = 1.0f;
    bool m_finite = true;
    double m_sum = 0.0;
    StepTiming m_timing;
    size_t m_arrived = 0;
};

// One whole step on the host alone (the protocol Trainer::step drives, for tests): wait_bucket(b) blocks until bucket
// b's gradients are readable and returns the gradient buffer. On commit the two master vectors are swapped (the
// updated weights are then in `master`); otherwise the fp16 copies already written are rewritten from `master`.
// multiplier: 1 / the loss scale; learning_rate: this step's.
struct PipelinedStep {
    double sum_squares = 0.0;        // of the unscaled gradients, bit-identical to global_sum_squares
    bool committed = false;          // false: a gradient was inf/NaN and nothing current changed
    double host_seconds = 0.0;       // checks, updates and the commit
    double overlapped_seconds = 0.0; // the part done before the last bucket had arrived
};
PipelinedStep pipelined_step(Optimizer& optimizer, const std::vector<std::vector<size_t>>& buckets,
                             const std::function<const float*(size_t)>& wait_bucket, const PipelineTensors& tensors,
                             std::vector<float>& master, std::vector<float>& master_next, float multiplier,
                             float learning_rate, const std::vector<uint16_t*>& halves);

} // namespace vktrain::train
