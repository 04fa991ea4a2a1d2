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

// The peak rate a run is configured with must be positive; the rate of a step may also be 0 (a schedule that decays
// to 0, as PyTorch's CosineAnnealingLR with eta_min=0: the step leaves the weights as they are but still counts and
// still updates the optimizer's moments).
void validate_learning_rate(float lr) {
    VKT_CHECK(std::isfinite(lr) && lr > 0.0f, "optimizer: learning_rate must be positive and finite, got ", lr);
}

void validate_step_learning_rate(float lr) {
    VKT_CHECK(std::isfinite(lr) && lr >= 0.0f, "optimizer: a step's learning rate must be finite and >= 0, got ", lr);
}

void validate_step_scalars(float grad_multiplier, float clip) {
    VKT_CHECK(std::isfinite(grad_multiplier), "optimizer step: grad_multiplier must be finite, got ", grad_multiplier);
    VKT_CHECK(std::isfinite(clip) && clip > 0.0f && clip <= 1.0f, "optimizer step: clip must lie in (0, 1], got ",
              clip);
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
// Each update rule is one inline function of an element's values, used by two loops: in place (a plain step), and
// staged (reading the current values and writing a second bank, for the bucketed pipeline).

struct SgdScalars {
    float multiplier, clip, lr, weight_decay, momentum;
};

// PyTorch SGD (dampening 0): d = g + wd * p; buf = first ? d : momentum * buf + d; d = nesterov ? d + momentum * buf
// : buf; p = p - lr * d. Every operation is one fp32 rounding, in PyTorch's order. `b` holds the buffer in and out.
template <bool WeightDecay, bool Momentum, bool Nesterov, bool First>
inline float sgd_update(float p, float grad, float& b, const SgdScalars& s) {
    float d = (grad * s.multiplier) * s.clip; // unscale, then clip: two fp32 roundings as in PyTorch
    if constexpr (WeightDecay) d = d + s.weight_decay * p;
    if constexpr (Momentum) {
        if constexpr (First) {
            b = d; // torch.clone(d_p): no decay of a buffer that does not exist yet
        } else {
            b = s.momentum * b + d;
        }
        if constexpr (Nesterov) {
            d = d + s.momentum * b;
        } else {
            d = b;
        }
    }
    return p - s.lr * d;
}

template <bool WeightDecay, bool Momentum, bool Nesterov, bool First>
void sgd_kernel(float* __restrict param, const float* __restrict grad, float* __restrict buffer, size_t n,
                const SgdScalars& s) {
    for (size_t i = 0; i < n; ++i) {
        float b = Momentum && !First ? buffer[i] : 0.0f;
        param[i] = sgd_update<WeightDecay, Momentum, Nesterov, First>(param[i], grad[i], b, s);
        if constexpr (Momentum) buffer[i] = b;
    }
}

template <bool WeightDecay, bool Momentum, bool Nesterov, bool First>
void sgd_kernel_staged(const float* __restrict param, float* __restrict param_out, const float* __restrict grad,
                       const float* __restrict buffer, float* __restrict buffer_out, size_t n, const SgdScalars& s) {
    for (size_t i = 0; i < n; ++i) {
        float b = Momentum && !First ? buffer[i] : 0.0f;
        param_out[i] = sgd_update<WeightDecay, Momentum, Nesterov, First>(param[i], grad[i], b, s);
        if constexpr (Momentum) buffer_out[i] = b;
    }
}

struct SgdKernels {
    void (*in_place)(float*, const float*, float*, size_t, const SgdScalars&);
    void (*staged)(const float*, float*, const float*, const float*, float*, size_t, const SgdScalars&);
};

template <bool WeightDecay, bool Momentum, bool Nesterov, bool First>
SgdKernels sgd_kernels() {
    return {sgd_kernel<WeightDecay, Momentum, Nesterov, First>,
            sgd_kernel_staged<WeightDecay, Momentum, Nesterov, First>};
}

template <bool WeightDecay, bool Momentum>
SgdKernels pick_sgd_kernel(bool nesterov, bool first) {
    if constexpr (Momentum) {
        if (nesterov) {
            return first ? sgd_kernels<WeightDecay, true, true, true>() : sgd_kernels<WeightDecay, true, true, false>();
        }
        return first ? sgd_kernels<WeightDecay, true, false, true>() : sgd_kernels<WeightDecay, true, false, false>();
    } else {
        (void)nesterov;
        (void)first;
        return sgd_kernels<WeightDecay, false, false, false>();
    }
}

SgdKernels pick_sgd(bool weight_decay, bool momentum, bool nesterov, bool first) {
    if (weight_decay)
        return momentum ? pick_sgd_kernel<true, true>(nesterov, first) : pick_sgd_kernel<true, false>(nesterov, first);
    return momentum ? pick_sgd_kernel<false, true>(nesterov, first) : pick_sgd_kernel<false, false>(nesterov, first);
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
// p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps). `m` and `v` hold the moments in and out.
template <bool WeightDecay>
inline float adamw_update(float p, float grad, float& m, float& v, const AdamScalars& s) {
    const float g = (grad * s.multiplier) * s.clip;
    if constexpr (WeightDecay) p = p * s.decay;
    m = s.beta1 * m + s.one_minus_beta1 * g;
    v = s.beta2 * v + s.one_minus_beta2 * g * g;
    const float denom = std::sqrt(v) / s.bias2_sqrt + s.epsilon;
    return p - s.step_size * m / denom;
}

template <bool WeightDecay>
void adamw_kernel(float* __restrict param, const float* __restrict grad, float* __restrict exp_avg,
                  float* __restrict exp_avg_sq, size_t n, const AdamScalars& s) {
    for (size_t i = 0; i < n; ++i) {
        float m = exp_avg[i], v = exp_avg_sq[i];
        param[i] = adamw_update<WeightDecay>(param[i], grad[i], m, v, s);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
    }
}

template <bool WeightDecay>
void adamw_kernel_staged(const float* __restrict param, float* __restrict param_out, const float* __restrict grad,
                         const float* __restrict exp_avg, float* __restrict exp_avg_out,
                         const float* __restrict exp_avg_sq, float* __restrict exp_avg_sq_out, size_t n,
                         const AdamScalars& s) {
    for (size_t i = 0; i < n; ++i) {
        float m = exp_avg[i], v = exp_avg_sq[i];
        param_out[i] = adamw_update<WeightDecay>(param[i], grad[i], m, v, s);
        exp_avg_out[i] = m;
        exp_avg_sq_out[i] = v;
    }
}

// The device's fp16 copy of a chunk just updated, while it is still in cache (a second loop rather than a wider
// kernel: the conversion has its own vectorised build, several times faster than inside the update loop).
void pack_chunk(const std::vector<float*>& params, const std::vector<uint16_t*>& halves, const TensorChunk& c) {
    if (!halves.empty()) floats_to_halves_serial(params[c.tensor] + c.begin, halves[c.tensor] + c.begin, c.count);
}

} // namespace

Optimizer::Optimizer(const OptimizerOptions& options, std::vector<size_t> param_sizes)
    : m_options(options), m_param_sizes(std::move(param_sizes)), m_tensor_steps(m_param_sizes.size(), 0) {
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
    validate_step_learning_rate(lr);
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
    validate_step_scalars(grad_multiplier, clip);

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

void Optimizer::set_learning_rate_scales(std::vector<float> scales) {
    VKT_CHECK(scales.empty() || scales.size() == m_param_sizes.size(), "optimizer: ", scales.size(),
              " learning-rate scales for ", m_param_sizes.size(), " tensors");
    for (float s : scales)
        VKT_CHECK(std::isfinite(s) && s > 0.0f, "optimizer: a learning-rate scale must be > 0 and finite, got ", s);
    m_lr_scales = std::move(scales);
}

namespace {

SgdScalars sgd_scalars(const Optimizer& o, size_t tensor, float grad_multiplier, float clip, float lr) {
    return {grad_multiplier, clip, static_cast<float>(o.tensor_learning_rate(tensor, lr)), o.weight_decay(tensor),
            o.options().momentum};
}

// The scalars of the tensor's next step.
AdamScalars adam_scalars(const Optimizer& o, size_t tensor, float grad_multiplier, float clip, float base_lr) {
    const double lr = o.tensor_learning_rate(tensor, base_lr);
    const int64_t t = o.tensor_steps()[tensor] + 1;
    const OptimizerOptions& options = o.options();
    const double beta1 = options.beta1;
    const double beta2 = options.beta2;
    // PyTorch forms these scalars on the host in double (Python floats) and the fp32 kernels round them once to
    // fp32; doing the same keeps e.g. 1 - beta2^t accurate for beta2 close to 1, where fp32 would cancel badly.
    const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    AdamScalars s{};
    s.multiplier = grad_multiplier;
    s.clip = clip;
    s.decay = static_cast<float>(1.0 - lr * static_cast<double>(o.weight_decay(tensor)));
    s.beta1 = options.beta1;
    s.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    s.beta2 = options.beta2;
    s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    s.step_size = static_cast<float>(lr / bias1);
    s.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
    s.epsilon = options.epsilon;
    return s;
}

} // namespace

void Optimizer::sgd_step(const std::vector<float*>& params, const std::vector<const float*>& grads,
                         float grad_multiplier, float clip, const std::vector<uint16_t*>& halves) {
    const bool momentum = m_options.momentum != 0.0f;
    parallel_chunks(tensor_chunks(m_param_sizes), [&](size_t, const TensorChunk& c) {
        float* buffer = momentum ? m_momentum_buffers[c.tensor].data() + c.begin : nullptr;
        // PyTorch creates the momentum buffer from the first gradient; restored state (steps > 0) already has one.
        const bool first = m_tensor_steps[c.tensor] == 0;
        const SgdKernels k = pick_sgd(weight_decay(c.tensor) != 0.0f, momentum, m_options.nesterov, first);
        k.in_place(params[c.tensor] + c.begin, grads[c.tensor] + c.begin, buffer, c.count,
                   sgd_scalars(*this, c.tensor, grad_multiplier, clip, m_options.learning_rate));
        pack_chunk(params, halves, c);
    });
    count_step();
}

void Optimizer::adamw_step(const std::vector<float*>& params, const std::vector<const float*>& grads,
                           float grad_multiplier, float clip, const std::vector<uint16_t*>& halves) {
    parallel_chunks(tensor_chunks(m_param_sizes), [&](size_t, const TensorChunk& c) {
        const AdamScalars s = adam_scalars(*this, c.tensor, grad_multiplier, clip, m_options.learning_rate);
        const auto kernel = weight_decay(c.tensor) != 0.0f ? adamw_kernel<true> : adamw_kernel<false>;
        kernel(params[c.tensor] + c.begin, grads[c.tensor] + c.begin, m_exp_avgs[c.tensor].data() + c.begin,
               m_exp_avg_sqs[c.tensor].data() + c.begin, c.count, s);
        pack_chunk(params, halves, c);
    });
    count_step();
}

void Optimizer::count_step() {
    ++m_step_count;
    for (int64_t& t : m_tensor_steps) ++t;
}

void Optimizer::begin_staged(float grad_multiplier, float clip, float learning_rate) {
    validate_step_scalars(grad_multiplier, clip);
    validate_step_learning_rate(learning_rate);
    const auto second_bank = [this](const std::vector<std::vector<float>>& current) {
        std::vector<std::vector<float>> bank;
        bank.reserve(current.size());
        for (const auto& t : current) bank.emplace_back(t.size(), 0.0f);
        return bank;
    };
    // Allocated on the first staged step only: a plain step() never pays for the second bank.
    if (m_momentum_next.size() != m_momentum_buffers.size()) m_momentum_next = second_bank(m_momentum_buffers);
    if (m_exp_avgs_next.size() != m_exp_avgs.size()) {
        m_exp_avgs_next = second_bank(m_exp_avgs);
        m_exp_avg_sqs_next = second_bank(m_exp_avg_sqs);
    }
    m_staged = Staged{true, grad_multiplier, clip, learning_rate, std::vector<bool>(m_param_sizes.size(), false)};
}

void Optimizer::stage(const std::vector<size_t>& tensors, const std::vector<const float*>& params,
                      const std::vector<float*>& params_out, const std::vector<const float*>& grads,
                      const std::vector<uint16_t*>& halves) {
    VKT_CHECK(m_staged.active, "optimizer: stage() without begin_staged()");
    const size_t n = m_param_sizes.size();
    VKT_CHECK(params.size() == n && params_out.size() == n && grads.size() == n &&
                  (halves.empty() || halves.size() == n),
              "optimizer stage: the pointer lists must hold one entry per tensor (", n, ")");
    std::vector<size_t> sizes(n, 0);
    for (size_t t : tensors) {
        VKT_CHECK(t < n && !m_staged.done[t], "optimizer stage: tensor ", t, " is out of range or staged twice");
        VKT_CHECK(m_param_sizes[t] == 0 || (params[t] && params_out[t] && grads[t] && (halves.empty() || halves[t])),
                  "optimizer stage: null pointer for tensor ", t);
        VKT_CHECK(params[t] != params_out[t] || m_param_sizes[t] == 0, "optimizer stage: tensor ", t,
                  " is staged onto itself");
        sizes[t] = m_param_sizes[t];
        m_staged.done[t] = true;
    }
    const bool sgd = m_options.kind == OptimizerKind::sgd;
    const bool momentum = sgd && m_options.momentum != 0.0f;
    const Staged& st = m_staged;
    parallel_chunks(tensor_chunks(sizes), [&](size_t, const TensorChunk& c) {
        const size_t t = c.tensor;
        const float* p = params[t] + c.begin;
        float* out = params_out[t] + c.begin;
        const float* g = grads[t] + c.begin;
        if (sgd) {
            const SgdKernels k =
                pick_sgd(weight_decay(t) != 0.0f, momentum, m_options.nesterov, m_tensor_steps[t] == 0);
            k.staged(p, out, g, momentum ? m_momentum_buffers[t].data() + c.begin : nullptr,
                     momentum ? m_momentum_next[t].data() + c.begin : nullptr, c.count,
                     sgd_scalars(*this, t, st.multiplier, st.clip, st.learning_rate));
        } else {
            const auto kernel = weight_decay(t) != 0.0f ? adamw_kernel_staged<true> : adamw_kernel_staged<false>;
            kernel(p, out, g, m_exp_avgs[t].data() + c.begin, m_exp_avgs_next[t].data() + c.begin,
                   m_exp_avg_sqs[t].data() + c.begin, m_exp_avg_sqs_next[t].data() + c.begin, c.count,
                   adam_scalars(*this, t, st.multiplier, st.clip, st.learning_rate));
        }
        if (!halves.empty()) floats_to_halves_serial(out, halves[t] + c.begin, c.count);
    });
}

void Optimizer::commit() {
    VKT_CHECK(m_staged.active, "optimizer: commit() without begin_staged()");
    for (size_t t = 0; t < m_param_sizes.size(); ++t)
        VKT_CHECK(m_staged.done[t], "optimizer: commit() before tensor ", t, " was staged");
    std::swap(m_momentum_buffers, m_momentum_next);
    std::swap(m_exp_avgs, m_exp_avgs_next);
    std::swap(m_exp_avg_sqs, m_exp_avg_sqs_next);
    m_options.learning_rate = m_staged.learning_rate;
    count_step();
    m_staged = Staged{};
}

void Optimizer::advance(float learning_rate) {
    validate_step_learning_rate(learning_rate);
    m_options.learning_rate = learning_rate;
    count_step();
}

Optimizer Optimizer::regrouped(std::vector<size_t> param_sizes, const std::vector<int64_t>& from,
                               std::vector<float> weight_decays, std::vector<float> lr_scales) const {
    VKT_CHECK(from.size() == param_sizes.size(), "optimizer: ", from.size(), " sources for ", param_sizes.size(),
              " tensors");
    Optimizer o(m_options, std::move(param_sizes));
    o.set_weight_decays(std::move(weight_decays));
    o.set_learning_rate_scales(std::move(lr_scales));
    o.m_step_count = m_step_count;
    for (size_t i = 0; i < from.size(); ++i) {
        if (from[i] < 0) continue; // fresh: zero state, step 0
        const auto k = size_t(from[i]);
        VKT_CHECK(k < m_param_sizes.size() && m_param_sizes[k] == o.m_param_sizes[i], "optimizer: tensor ", i,
                  " cannot take the state of tensor ", from[i]);
        o.m_tensor_steps[i] = m_tensor_steps[k];
        if (!m_momentum_buffers.empty()) o.m_momentum_buffers[i] = m_momentum_buffers[k];
        if (!m_exp_avgs.empty()) {
            o.m_exp_avgs[i] = m_exp_avgs[k];
            o.m_exp_avg_sqs[i] = m_exp_avg_sqs[k];
        }
    }
    return o;
}

void Optimizer::discard() {
    m_staged = Staged{};
}

std::vector<std::string> Optimizer::state_names(const std::vector<std::string>& names) const {
    VKT_CHECK(names.empty() || names.size() == m_param_sizes.size(), "optimizer state: ", names.size(), " names for ",
              m_param_sizes.size(), " tensors");
    std::vector<std::string> out;
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        const std::string name = names.empty() ? std::to_string(i) : names[i];
        if (!m_momentum_buffers.empty()) out.push_back("momentum_buffer." + name);
        if (!m_exp_avgs.empty()) {
            out.push_back("exp_avg." + name);
            out.push_back("exp_avg_sq." + name);
        }
    }
    return out;
}

NamedTensors Optimizer::state_tensors(const std::vector<std::string>& names) const {
    const std::vector<std::string> keys = state_names(names);
    NamedTensors tensors;
    tensors.reserve(keys.size());
    size_t k = 0;
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        if (!m_momentum_buffers.empty()) tensors.emplace_back(keys[k++], m_momentum_buffers[i]);
        if (!m_exp_avgs.empty()) {
            tensors.emplace_back(keys[k++], m_exp_avgs[i]);
            tensors.emplace_back(keys[k++], m_exp_avg_sqs[i]);
        }
    }
    return tensors;
}

void Optimizer::load_state(int64_t step_count, const NamedTensors& tensors, const std::vector<std::string>& names,
                           const std::vector<int64_t>& tensor_steps) {
    VKT_CHECK(step_count >= 0, "optimizer state: step count must be >= 0, got ", step_count);
    VKT_CHECK(tensor_steps.empty() || tensor_steps.size() == m_param_sizes.size(),
              "optimizer state: ", tensor_steps.size(), " step counts for ", m_param_sizes.size(), " tensors");
    for (size_t i = 0; i < tensor_steps.size(); ++i)
        VKT_CHECK(tensor_steps[i] >= 0 && tensor_steps[i] <= step_count, "optimizer state: tensor ",
                  names.empty() ? std::to_string(i) : names.at(i), " has ", tensor_steps[i], " steps, outside [0, ",
                  step_count, "]");

    // Map every expected name to its destination and size, then validate everything before touching any state so
    // that a bad checkpoint leaves the optimizer as it was.
    struct Slot {
        std::vector<float>* tensor;
        size_t size;
        bool seen;
    };
    const std::vector<std::string> keys = state_names(names);
    std::map<std::string, Slot> slots;
    size_t k = 0;
    for (size_t i = 0; i < m_param_sizes.size(); ++i) {
        if (!m_momentum_buffers.empty()) slots[keys[k++]] = {&m_momentum_buffers[i], m_param_sizes[i], false};
        if (!m_exp_avgs.empty()) {
            slots[keys[k++]] = {&m_exp_avgs[i], m_param_sizes[i], false};
            slots[keys[k++]] = {&m_exp_avg_sqs[i], m_param_sizes[i], false};
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
        for (size_t e = 0; e < values.size(); ++e)
            VKT_CHECK(std::isfinite(values[e]) && (!second_moment || values[e] >= 0.0f), "optimizer state: tensor '",
                      name, "' holds ", values[e], " at element ", e,
                      second_moment ? " (must be finite and >= 0)" : " (must be finite)");
        it->second.seen = true;
    }
    for (const std::string& name : keys) VKT_CHECK(slots.at(name).seen, "optimizer state: missing tensor '", name, "'");

    for (const auto& [name, values] : tensors) *slots.at(name).tensor = values;
    m_step_count = step_count;
    if (tensor_steps.empty())
        m_tensor_steps.assign(m_param_sizes.size(), step_count);
    else
        m_tensor_steps = tensor_steps;
}

uint64_t Optimizer::state_bytes() const {
    uint64_t n = 0;
    for (const auto* bank :
         {&m_momentum_buffers, &m_exp_avgs, &m_exp_avg_sqs, &m_momentum_next, &m_exp_avgs_next, &m_exp_avg_sqs_next})
        for (const auto& v : *bank) n += v.capacity() * 4;
    return n;
}

} // namespace vktrain::train
