#include "train/pipelined_update.hpp"

#include <cmath>
#include <utility>

#include "common/check.hpp"
#include "graph/resources.hpp"
#include "common/half.hpp"
#include "common/parallel.hpp"
#include "train/gradients.hpp"

namespace vktrain::train {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

PipelinedUpdate::PipelinedUpdate(Optimizer& optimizer, std::vector<std::vector<size_t>> buckets,
                                 TrainableTensors tensors, std::vector<float>& master, std::vector<float>* master_next,
                                 std::vector<uint16_t*> halves, graph::Resources* res)
    : m_optimizer(optimizer), m_buckets(std::move(buckets)), m_tensors(std::move(tensors)), m_master(master),
      m_next(master_next ? master_next : &m_own_next), m_next_stale(master_next == nullptr),
      m_halves(std::move(halves)), m_res(res) {
    const std::vector<size_t>& sizes = optimizer.param_sizes();
    const size_t n = sizes.size();
    VKT_CHECK(m_tensors.master_offsets.size() == n && m_tensors.grad_offsets.size() == n,
              "pipelined step: offsets for ", m_tensors.master_offsets.size(), " tensors, the optimizer has ", n);
    VKT_CHECK(m_halves.empty() || m_halves.size() == n, "pipelined step: ", m_halves.size(), " fp16 destinations for ",
              n, " tensors");
    std::vector<bool> seen(n, false);
    for (const auto& b : m_buckets)
        for (size_t t : b) {
            VKT_CHECK(t < n && !seen[t], "pipelined step: tensor ", t, " is out of range or in two buckets");
            seen[t] = true;
        }
    for (size_t t = 0; t < n; ++t) VKT_CHECK(seen[t], "pipelined step: tensor ", t, " is in no bucket");
    m_chunks = tensor_chunks(sizes);
    m_chunks_of.resize(n);
    for (size_t i = 0; i < m_chunks.size(); ++i) m_chunks_of[m_chunks[i].tensor].push_back(i);
}

void PipelinedUpdate::host_changed(bool trainable_only) {
    // A commit rewrites every trainable tensor of the second bank; anything else must be copied over again.
    if (!trainable_only) m_next_stale = true;
}

void PipelinedUpdate::begin(const StepScalars& scalars) {
    VKT_CHECK(m_next->empty() || m_next->size() == m_master.size(), "pipelined step: master banks of ", m_master.size(),
              " and ", m_next->size(), " floats");
    if (m_next_stale || m_next->size() != m_master.size()) *m_next = m_master; // (trainable tensors only)
    m_next_stale = false;
    const size_t n = m_tensors.master_offsets.size();
    m_params.resize(n);
    m_params_out.resize(n);
    m_grads.assign(n, nullptr);
    for (size_t t = 0; t < n; ++t) {
        m_params[t] = m_master.data() + m_tensors.master_offsets[t];
        m_params_out[t] = m_next->data() + m_tensors.master_offsets[t];
    }
    m_sums.assign(m_chunks.size(), 0.0);
    m_staged.clear();
    m_finite = true;
    m_sum = 0.0;
    m_timing = {};
    m_arrived = 0;
    m_multiplier = scalars.multiplier;
    m_optimizer.begin_staged(scalars.multiplier, 1.0f, scalars.learning_rate);
}

void PipelinedUpdate::on_bucket(size_t b, const float* g) {
    VKT_CHECK(b == m_arrived && b < m_buckets.size(), "internal: bucket ", b, " arrived after ", m_arrived, " of ",
              m_buckets.size());
    ++m_arrived;
    const auto start = std::chrono::steady_clock::now();
    std::vector<size_t> which;
    for (size_t t : m_buckets[b]) {
        m_grads[t] = g + m_tensors.grad_offsets[t];
        which.insert(which.end(), m_chunks_of[t].begin(), m_chunks_of[t].end());
    }
    chunk_sum_squares(m_grads, m_chunks, which, m_multiplier, m_sums);
    double bucket_sum = 0.0;
    for (size_t i : which) bucket_sum += m_sums[i];
    // After an overflow the step is dropped: later buckets are only summed (the norm reports inf either way).
    m_finite = m_finite && std::isfinite(bucket_sum);
    if (m_finite) {
        m_optimizer.stage(m_buckets[b], m_params, m_params_out, m_grads, m_halves);
        m_staged.insert(m_staged.end(), m_buckets[b].begin(), m_buckets[b].end());
    }
    const double spent = seconds_since(start);
    m_timing.host_seconds += spent;
    if (b + 1 < m_buckets.size()) m_timing.overlapped_seconds += spent;
}

GradientCheck PipelinedUpdate::check() {
    VKT_CHECK(m_arrived == m_buckets.size(), "internal: checked after ", m_arrived, " of ", m_buckets.size(),
              " buckets");
    const auto start = std::chrono::steady_clock::now();
    m_sum = 0.0;
    for (double s : m_sums) m_sum += s; // in chunk order: bit-identical to global_sum_squares
    m_timing.host_seconds += seconds_since(start);
    return {!std::isfinite(m_sum), l2_norm_of(m_sum)};
}

StepTiming PipelinedUpdate::finish(bool skip) {
    const auto start = std::chrono::steady_clock::now();
    if (!skip) {
        m_optimizer.commit();
        m_master.swap(*m_next);
        if (m_res) {
            if (m_halves.empty())
                m_res->set_trainable_weights(m_master.data());
            else
                m_res->trainable_weights_staged();
        }
    } else {
        m_optimizer.discard();
        // The fp16 copies of the tensors staged before the overflow was seen hold the dropped step's weights.
        if (!m_halves.empty())
            for (size_t t : m_staged) floats_to_halves(m_params[t], m_halves[t], m_optimizer.param_sizes()[t]);
    }
    m_timing.host_seconds += seconds_since(start);
    return m_timing;
}

void PipelinedUpdate::abandon() {
    m_optimizer.discard();
    // The device may hold fp16 copies of a step that will not happen: rewrite them all from the unchanged masters.
    if (m_res) m_res->set_weights(m_master.data());
}

PipelinedStep pipelined_step(Optimizer& optimizer, const std::vector<std::vector<size_t>>& buckets,
                             const std::function<const float*(size_t)>& wait_bucket, const PipelineTensors& tensors,
                             std::vector<float>& master, std::vector<float>& master_next, float multiplier,
                             float learning_rate, const std::vector<uint16_t*>& halves) {
    VKT_CHECK(master.size() == master_next.size(), "pipelined step: master banks of ", master.size(), " and ",
              master_next.size(), " floats");
    PipelinedUpdate update(optimizer, buckets, tensors, master, &master_next, halves, nullptr);
    StepScalars s;
    s.multiplier = multiplier;
    s.learning_rate = learning_rate;
    update.begin(s);
    for (size_t b = 0; b < buckets.size(); ++b) update.on_bucket(b, wait_bucket(b));
    const GradientCheck c = update.check();
    const StepTiming t = update.finish(c.found_inf);
    return {update.sum_squares(), !c.found_inf, t.host_seconds, t.overlapped_seconds};
}

} // namespace vktrain::train
