#include "train/host_update.hpp"

#include <cmath>
#include <utility>

#include "common/check.hpp"
#include "graph/resources.hpp"
#include "train/gradients.hpp"

namespace vktrain::train {

HostUpdate::HostUpdate(Optimizer& optimizer, std::vector<float>& master, graph::Resources& res,
                       TrainableTensors tensors, float max_grad_norm)
    : m_optimizer(optimizer), m_master(master), m_res(res), m_tensors(std::move(tensors)),
      m_max_grad_norm(max_grad_norm), m_halves(res.trainable_half_staging()) {
    VKT_CHECK(m_tensors.grad_offsets.size() == optimizer.param_sizes().size(), "internal: host update of ",
              m_tensors.grad_offsets.size(), " tensors, the optimizer has ", optimizer.param_sizes().size());
}

void HostUpdate::begin(const StepScalars& scalars) {
    m_scalars = scalars;
    m_grads = nullptr;
}

// Every tensor is read in check(), once the last bucket is in; buckets share one gradient layout.
void HostUpdate::on_bucket(size_t, const float* grads) {
    m_grads = grads;
}

GradientCheck HostUpdate::check() {
    VKT_CHECK(m_grads != nullptr, "internal: host update checked before any gradient arrived");
    m_start = std::chrono::steady_clock::now();
    m_grad_ptrs.resize(m_tensors.grad_offsets.size());
    for (size_t t = 0; t < m_grad_ptrs.size(); ++t) m_grad_ptrs[t] = m_grads + m_tensors.grad_offsets[t];
    // The inf/NaN check reads every unscaled gradient once, in the pass that sums the squares for the norm (the host
    // reads them all for the update anyway, so a device-side scan would only add a pass).
    const double sum_squares = global_sum_squares(m_grad_ptrs, m_optimizer.param_sizes(), m_scalars.multiplier);
    m_norm = l2_norm_of(sum_squares);
    return {!std::isfinite(sum_squares), m_norm};
}

StepTiming HostUpdate::finish(bool skip) {
    if (!skip) {
        const float clip = m_max_grad_norm > 0.0f ? clip_coefficient(m_norm, m_max_grad_norm) : 1.0f;
        std::vector<float*> params(m_tensors.master_offsets.size());
        for (size_t t = 0; t < params.size(); ++t) params[t] = m_master.data() + m_tensors.master_offsets[t];
        m_optimizer.set_learning_rate(m_scalars.learning_rate);
        // Mixed precision: the update also writes the fp16 copy the device reads, chunk by chunk while it is in cache.
        m_optimizer.step(params, m_grad_ptrs, m_scalars.multiplier, clip, m_halves);
        if (m_halves.empty())
            m_res.set_trainable_weights(m_master.data());
        else
            m_res.trainable_weights_staged();
    }
    StepTiming t;
    t.host_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
    return t;
}

} // namespace vktrain::train
