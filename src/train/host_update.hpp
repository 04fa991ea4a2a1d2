// The host update strategy (train/update_strategy.hpp): every gradient comes back before anything is decided; the host
// sums their unscaled squares (the inf/NaN check and the norm, in one pass), and an unskipped step runs the optimizer
// on the fp32 master weights, writing the device's copy as it goes. It also serves the steps no other strategy can
// take: gradient accumulation (the summed gradients are its one bucket) and clipping (the norm before any update).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "train/optimizer.hpp"
#include "train/update_strategy.hpp"

namespace vktrain::graph {
class Resources; // the device's copy of the weights (graph/resources.hpp); these headers stay free of Vulkan
}

namespace vktrain::train {

class HostUpdate final : public UpdateStrategy {
public:
    // master: the host's fp32 masters (every parameter at Layout::master_offset); res: the device's working copy,
    // written (fp32) or staged (fp16, by the optimizer in the same pass) after an update. max_grad_norm > 0: clipping.
    HostUpdate(Optimizer& optimizer, std::vector<float>& master, graph::Resources& res, TrainableTensors tensors,
               float max_grad_norm);

    void begin(const StepScalars& scalars) override;
    void on_bucket(size_t bucket, const float* grads) override;
    GradientCheck check() override;
    StepTiming finish(bool skip) override;

private:
    Optimizer& m_optimizer;
    std::vector<float>& m_master;
    graph::Resources& m_res;
    TrainableTensors m_tensors;
    float m_max_grad_norm;
    std::vector<uint16_t*> m_halves; // mixed precision: each tensor's fp16 staging (else empty)
    StepScalars m_scalars;
    const float* m_grads = nullptr;
    std::vector<const float*> m_grad_ptrs;
    float m_norm = 0.0f;
    std::chrono::steady_clock::time_point m_start;
};

} // namespace vktrain::train
