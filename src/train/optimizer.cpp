#include "train/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/check.hpp"
#include "common/half.hpp"
#include "common/parallel.hpp"

namespace vktrain::train {

namespace {

bool is_unit_interval(float value) { // [0, 1)
    return value >= 0.0f && value < 1.0f;
}

void validate_learning_rate(float lr) {
    VKT_CHECK(std::isfinite(lr) && lr > 0.0f, "optimizer: learning_rate must be positive and finite, got ", lr);
}

void validate_options(const OptimizerOptions& options) {
    validate_learning_rate(options.learning_rate);
    VKT_CHECK(std::isfinite(options.weight_decay) && options.weight_decay >= 0.0f,
              "optimizer: weight_decay must be finite and >= 0, got ", options.weight_decay);
    switch (options.kind) {
    case OptimizerKind::sgd:
        VKT_CHECK(is_unit_interval(options.momentum), "optimizer: SGD momentum must be in [0, 1), got ",
                  options.momentum);
        VKT_CHECK(!options.nesterov || options.momentum > 0.0f, "optimizer: SGD nesterov requires momentum > 0");
        return;
    case OptimizerKind::adamw:
        VKT_CHECK(is_unit_interval(options.beta1), "optimizer: AdamW beta1 must be in [0, 1), got ", options.beta1);
        VKT_CHECK(is_unit_interval(options.beta2), "optimizer: AdamW beta2 must be in [0, 1), got ", options.beta2);
        VKT_CHECK(std::isfinite(options.epsilon) && options.epsilon > 0.0f,
                  "optimizer: AdamW epsilon must be positive and finite, got ", options.epsilon);
        return;
    }
    VKT_FAIL("optimizer: unknown optimizer kind ", static_cast<int>(options.kind));
}

// The kernels are templated on the per-step switches so every variant is a straight loop without invariant
// branches, which the compiler vectorises; the pointers never alias (params, grads and state are separate buffers).

// PyTorch SGD (dampening 0): d = g + wd * p; buf = first ? d : momentum * buf + d; d = nesterov ? d + momentum * buf
// : buf; p = p - lr * d. Every operation is one fp32 rounding, in PyTorch's order.
template <bool WeightDecay, bool Momentum, bool Nesterov, bool First>
void sgd_kernel(float* __restrict param, const float* __restrict grad, float* __restrict buffer, size_t n,
                float multiplier, float clip, float lr, float weight_decay, float momentum) {
    for (size_t i = 0; i < n; ++i) {
        float d = (grad[i] * multiplier) * clip; // unscale, then clip: two fp32 roundings as in PyTorch
        if constexpr (WeightDecay) d = d + weight_decay * param[i];
        if constexpr (Momentum) {
            float b;
            if constexpr (First) {
                b = d; // torch.clone(d_p): no decay of a buffer that does not exist yet
            } else {
                b = momentum * buffer[i] + d;
            }
            buffer[i] = b;
            if constexpr (Nesterov) {
                d = d + momentum * b;
            } else {
                d = b;
            }
        }
        param[i] = param[i] - lr * d;
    }
}

using SgdKernel = void (*)(float*, const float*, float*, size_t, float, float, float, float, float);

template <bool WeightDecay, bool Momentum>
SgdKernel pick_sgd_kernel(bool nesterov, bool first) {
    if constexpr (Momentum) {
        if (nesterov) {
            return first ? sgd_kernel<WeightDecay, true, true, true> : sgd_kernel<WeightDecay, true, true, false>;
        }
        return first ? sgd_kernel<WeightDecay, true, false, true> : sgd_kernel<WeightDecay, true, false, false>;
    } else {
        (void)nesterov;
        (void)first;
        return sgd_kernel<WeightDecay, false, false, false>;
    }
}

struct AdamScalars {
    float multiplier;
    float clip;  // gradient clipping coefficient (1: none)
    float decay; // 1 - lr * weight_decay
    float beta1;
    float one_minus_beta1;
    float beta2;
    float one_minus_beta2;
    float step_size;  // lr / (1 - beta1^t)
    float bias2_sqrt; // sqrt(1 - beta2^t)
    float epsilon;
};

// PyTorch AdamW: p *= 1 - lr * wd; m = b1 * m + (1 - b1) * g; v = b2 * v + (1 - b2) * g * g;
// p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
template <bool WeightDecay>
void adamw_kernel(float* __restrict param, const float* __restrict grad, float* __restrict exp_avg,
                  float* __restrict exp_avg_sq, size_t n, const AdamScalars& s) {
    for (size_t i = 0; i < n; ++i) {
        const float g = (grad[i] * s.multiplier) * s.clip;
        float p = param[i];
        if constexpr (WeightDecay) p = p * s.decay;
        const float m = s.beta1 * exp_avg[i] + s.one_minus_beta1 * g;
        const float v = s.beta2 * exp_avg_sq[i] + s.one_minus_beta2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        const float denom = std::sqrt(v) / s.bias2_sqrt + s.epsilon;
        param[i] = p - s.step_size * m / denom;
    }
}

// The device's fp16 copy of a chunk just updated, while it is still in cache (a second loop rather than a wider
// kernel: the conversion has its own vectorised build, several times faster than inside the update loop).
void pack_chunk(const std::vector<float*>& params, const std::vector<uint16_t*>& halves, const TensorChunk& c) {
    if (!halves.empty()) floats_to_halves_serial(params[c.tensor] + c.begin, halves[c.tensor] + c.begin, c.count);
}

} // namespace

Optimizer::Optimizer(const OptimizerOptions& options, std::vector<size_t> param_sizes)
    : m_options(options), m_param_sizes(std::move(param_sizes)) {
    validate_options(m_options);
    const auto zeros = [this] {
        std::vector<std::vector<float>> tensors;
        tensors.reserve(m_param_sizes.size());
        for (size_t size : m_param_sizes) tensors.emplace_back(size, 0.0f);
        return tensors;
    };
    if (m_options.kind == OptimizerKind::sgd && m_options.momentum > 0.0f) m_momentum_buffers = zeros();
    if (m_options.kind == OptimizerKind::adamw) {
        m_exp_avgs = zeros();
        m_exp_avg_sqs = zeros();
    }
}

void Optimizer::set_learning_rate(float lr) {
    validate_learning_rate(lr);
    m_options.learning_rate = lr;
}

void Optimizer::step(const std::vector<float*>& params, const std::vector<const float*>& grads, float grad_multiplier,
                     float clip, const std::vector<uint16_t*>& halves) {
    VKT_CHECK(params.size() == m_param_sizes.size(), "optimizer step: got ", params.size(),
              " parameter tensors, expected ", m_param_sizes.size());
    VKT_CHECK(grads.size() == m_param_sizes.size(), "optimizer step: got ", grads.size(),
              " gradient tensors, expected ", m_param_sizes.size());
    VKT_CHECK(halves.empty() || halves.size() == m_param_sizes.size(), "optimizer step: got ", halves.size(),
              " fp16 destinations, expected ", m_param_sizes.size());
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        VKT_CHECK(m_param_sizes[i] == 0 || (params[i] && grads[i] && (halves.empty() || halves[i])),
                  "optimizer step: null pointer for tensor ", i);
    }
    VKT_CHECK(std::isfinite(grad_multiplier), "optimizer step: grad_multiplier must be finite, got ", grad_multiplier);
    VKT_CHECK(std::isfinite(clip) && clip > 0.0f && clip <= 1.0f, "optimizer step: clip must lie in (0, 1], got ",
              clip);

    if (m_options.kind == OptimizerKind::sgd) {
        sgd_step(params, grads, grad_multiplier, clip, halves);
    } else {
        adamw_step(params, grads, grad_multiplier, clip, halves);
    }
}

void Optimizer::set_weight_decays(std::vector<float> weight_decays) {
    VKT_CHECK(weight_decays.empty() || weight_decays.size() == m_param_sizes.size(),
              "optimizer: ", weight_decays.size(), " weight decays for ", m_param_sizes.size(), " tensors");
    for (float w : weight_decays)
        VKT_CHECK(std::isfinite(w) && w >= 0.0f, "optimizer: weight_decay must be finite and >= 0, got ", w);
    m_weight_decays = std::move(weight_decays);
}

void Optimizer::sgd_step(const std::vector<float*>& params, const std::vector<const float*>& grads,
                         float grad_multiplier, float clip, const std::vector<uint16_t*>& halves) {
    const bool momentum = m_options.momentum != 0.0f;
    // PyTorch creates the momentum buffer from the first gradient; restored state (step_count > 0) already has one.
    const bool first = m_step_count == 0;
    std::vector<SgdKernel> kernels(m_param_sizes.size());
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        if (weight_decay(i) != 0.0f) {
            kernels[i] = momentum ? pick_sgd_kernel<true, true>(m_options.nesterov, first)
                                  : pick_sgd_kernel<true, false>(m_options.nesterov, first);
        } else {
            kernels[i] = momentum ? pick_sgd_kernel<false, true>(m_options.nesterov, first)
                                  : pick_sgd_kernel<false, false>(m_options.nesterov, first);
        }
    }
    parallel_chunks(tensor_chunks(m_param_sizes), [&](size_t, const TensorChunk& c) {
        float* buffer = momentum ? m_momentum_buffers[c.tensor].data() + c.begin : nullptr;
        kernels[c.tensor](params[c.tensor] + c.begin, grads[c.tensor] + c.begin, buffer, c.count, grad_multiplier, clip,
                          m_options.learning_rate, weight_decay(c.tensor), m_options.momentum);
        pack_chunk(params, halves, c);
    });
    ++m_step_count;
}

void Optimizer::adamw_step(const std::vector<float*>& params, const std::vector<const float*>& grads,
                           float grad_multiplier, float clip, const std::vector<uint16_t*>& halves) {
    const int64_t t = m_step_count + 1;
    const double lr = m_options.learning_rate;
    const double beta1 = m_options.beta1;
    const double beta2 = m_options.beta2;
    // PyTorch forms these scalars on the host in double (Python floats) and the fp32 kernels round them once to
    // fp32; doing the same keeps e.g. 1 - beta2^t accurate for beta2 close to 1, where fp32 would cancel badly.
    const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    AdamScalars s{};
    s.multiplier = grad_multiplier;
    s.clip = clip;
    s.decay = 1.0f;
    s.beta1 = m_options.beta1;
    s.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    s.beta2 = m_options.beta2;
    s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    s.step_size = static_cast<float>(lr / bias1);
    s.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
    s.epsilon = m_options.epsilon;

    parallel_chunks(tensor_chunks(m_param_sizes), [&](size_t, const TensorChunk& c) {
        const float wd = weight_decay(c.tensor);
        AdamScalars cs = s;
        cs.decay = static_cast<float>(1.0 - lr * static_cast<double>(wd));
        const auto kernel = wd != 0.0f ? adamw_kernel<true> : adamw_kernel<false>;
        kernel(params[c.tensor] + c.begin, grads[c.tensor] + c.begin, m_exp_avgs[c.tensor].data() + c.begin,
               m_exp_avg_sqs[c.tensor].data() + c.begin, c.count, cs);
        pack_chunk(params, halves, c);
    });
    m_step_count = t;
}

std::vector<std::string> Optimizer::state_names() const {
    std::vector<std::string> names;
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        const std::string index = std::to_string(i);
        if (!m_momentum_buffers.empty()) names.push_back("momentum_buffer." + index);
        if (!m_exp_avgs.empty()) {
            names.push_back("exp_avg." + index);
            names.push_back("exp_avg_sq." + index);
        }
    }
    return names;
}

NamedTensors Optimizer::state_tensors() const {
    NamedTensors tensors;
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        const std::string index = std::to_string(i);
        if (!m_momentum_buffers.empty()) tensors.emplace_back("momentum_buffer." + index, m_momentum_buffers[i]);
        if (!m_exp_avgs.empty()) {
            tensors.emplace_back("exp_avg." + index, m_exp_avgs[i]);
            tensors.emplace_back("exp_avg_sq." + index, m_exp_avg_sqs[i]);
        }
    }
    return tensors;
}

void Optimizer::load_state(int64_t step_count, const NamedTensors& tensors) {
    VKT_CHECK(step_count >= 0, "optimizer state: step count must be >= 0, got ", step_count);

    // Map every expected name to its destination and size, then validate everything before touching any state so
    // that a bad checkpoint leaves the optimizer as it was.
    struct Slot {
        std::vector<float>* tensor;
        size_t size;
        bool seen;
    };
    std::map<std::string, Slot> slots;
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        const std::string index = std::to_string(i);
        if (!m_momentum_buffers.empty()) {
            slots["momentum_buffer." + index] = {&m_momentum_buffers[i], m_param_sizes[i], false};
        }
        if (!m_exp_avgs.empty()) {
            slots["exp_avg." + index] = {&m_exp_avgs[i], m_param_sizes[i], false};
            slots["exp_avg_sq." + index] = {&m_exp_avg_sqs[i], m_param_sizes[i], false};
        }
    }
    for (const auto& [name, values] : tensors) {
        const auto it = slots.find(name);
        VKT_CHECK(it != slots.end(), "optimizer state: unexpected tensor '", name, "' for this optimizer (",
                  m_param_sizes.size(), " parameters)");
        VKT_CHECK(!it->second.seen, "optimizer state: tensor '", name, "' appears twice");
        VKT_CHECK(values.size() == it->second.size, "optimizer state: tensor '", name, "' has ", values.size(),
                  " elements, expected ", it->second.size);
        // A state that could only come from a corrupted file would turn the run to NaN silently.
        const bool second_moment = name.rfind("exp_avg_sq.", 0) == 0;
        for (size_t k = 0; k < values.size(); ++k)
            VKT_CHECK(std::isfinite(values[k]) && (!second_moment || values[k] >= 0.0f), "optimizer state: tensor '",
                      name, "' holds ", values[k], " at element ", k,
                      second_moment ? " (must be finite and >= 0)" : " (must be finite)");
        it->second.seen = true;
    }
    for (const std::string& name : state_names()) {
        VKT_CHECK(slots.at(name).seen, "optimizer state: missing tensor '", name, "'");
    }

    for (const auto& [name, values] : tensors) *slots.at(name).tensor = values;
    m_step_count = step_count;
}

} // namespace vktrain::train
