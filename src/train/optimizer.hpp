// Host optimizers over fp32 master weights with PyTorch's update rules: SGD (momentum, dampening 0, nesterov,
// L2 weight decay) and AdamW (decoupled weight decay), fp32 arithmetic with host scalars formed in double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "vktrain/options.hpp"

namespace vktrain::train {

// Named state tensors for checkpoints: "momentum_buffer.<name>" (SGD with momentum), "exp_avg.<name>" and
// "exp_avg_sq.<name>" (AdamW), where <name> is the tensor's name as the caller gives it (the trainer: the parameter
// name), or its index when none is given.
using NamedTensors = std::vector<std::pair<std::string, std::vector<float>>>;

class Optimizer {
public:
    // One entry of param_sizes per parameter tensor (element counts). Throws vktrain::Error unless
    // learning_rate > 0 and finite and weight_decay >= 0 and finite; for SGD momentum in [0, 1) and nesterov only
    // with momentum > 0; for AdamW beta1, beta2 in [0, 1) and epsilon > 0 and finite. Fields of the other kind are
    // ignored.
    Optimizer(const OptimizerOptions& options, std::vector<size_t> param_sizes);

    // One update. params[i] and grads[i] point at param_sizes[i] floats and must not overlap. Each gradient is
    // multiplied by grad_multiplier (1 / loss scale) and then by clip (a gradient clipping coefficient) in fp32 before
    // anything else. Throws vktrain::Error on a tensor count mismatch, a null pointer, a non-finite grad_multiplier or
    // a clip outside (0, 1].
    // `halves` (empty, or one per tensor): also writes each updated weight's fp16 value there, in the same pass (the
    // device's copy in mixed precision). Large models are updated on several threads, with identical results.
    void step(const std::vector<float*>& params, const std::vector<const float*>& grads, float grad_multiplier = 1.0f,
              float clip = 1.0f, const std::vector<uint16_t*>& halves = {});

    // The same update in parts, for a pipeline that updates some tensors before the others' gradients are known and
    // must be able to drop the whole step (an overflow in a later bucket). begin_staged() fixes the step's scalars;
    // stage() computes the update of `tensors` from params[t] into params_out[t] (another buffer) and the optimizer
    // state into a second bank, writing fp16 copies to halves[t] if given; nothing current changes. commit() (every
    // tensor staged) makes the second bank current and sets the learning rate, exactly as step() would have left
    // it; discard() forgets the step. The second bank costs one more copy of the state, allocated on first use.
    void begin_staged(float grad_multiplier, float clip, float learning_rate);
    void stage(const std::vector<size_t>& tensors, const std::vector<const float*>& params,
               const std::vector<float*>& params_out, const std::vector<const float*>& grads,
               const std::vector<uint16_t*>& halves = {});
    void commit();
    void discard();
    // A step applied elsewhere (the device update): the learning rate and step counts as step() would leave them.
    void advance(float learning_rate);

    // The same optimizer over another set of tensors (Trainer::set_trainable): tensor i of the result takes the state
    // and step count of this optimizer's tensor from[i], or starts fresh (zero state, step 0) where from[i] < 0.
    // step_count(), the learning rate and the options carry over; `weight_decays` as set_weight_decays takes them,
    // `lr_scales` as set_learning_rate_scales.
    Optimizer regrouped(std::vector<size_t> param_sizes, const std::vector<int64_t>& from,
                        std::vector<float> weight_decays, std::vector<float> lr_scales = {}) const;

    // Per-tensor weight decay (parameter groups): one value >= 0 per tensor; empty = options().weight_decay for all.
    void set_weight_decays(std::vector<float> weight_decays);
    float weight_decay(size_t tensor) const {
        return m_weight_decays.empty() ? m_options.weight_decay : m_weight_decays[tensor];
    }
    // Per-tensor learning-rate scales (parameter groups with their own lr): one value > 0 and finite per tensor;
    // empty = 1 for all. A tensor's step uses learning_rate() x its scale, formed in double and rounded once as
    // PyTorch's group lr (a Python float) is; AdamW's decoupled weight decay uses the scaled rate too.
    void set_learning_rate_scales(std::vector<float> scales);
    float learning_rate_scale(size_t tensor) const { return m_lr_scales.empty() ? 1.0f : m_lr_scales[tensor]; }
    // The tensor's learning rate for a step at rate `lr`, in double (the scalars derived from it round once).
    double tensor_learning_rate(size_t tensor, float lr) const {
        return double(lr) * double(learning_rate_scale(tensor));
    }

    int64_t step_count() const { return m_step_count; } // updates applied
    // Per tensor, the updates it has taken part in: AdamW's bias correction and SGD's first momentum buffer follow it,
    // as PyTorch keeps a `step` per parameter and creates a parameter's state at its first gradient. It equals
    // step_count() for tensors updated from the start; a tensor that became trainable later (regrouped) counts from 0.
    const std::vector<int64_t>& tensor_steps() const { return m_tensor_steps; }
    float learning_rate() const { return m_options.learning_rate; }
    // For schedules; throws vktrain::Error unless lr >= 0 and finite (0: steps leave the weights as they are).
    void set_learning_rate(float lr);

    const OptimizerOptions& options() const { return m_options; }
    const std::vector<size_t>& param_sizes() const { return m_param_sizes; }
    uint64_t state_bytes() const; // host memory of the state, both banks (memory accounting)

    // Everything besides the step counts needed to continue bit-identically (empty for SGD without momentum), per
    // tensor in order; `names` (empty: the indices) name the tensors.
    NamedTensors state_tensors(const std::vector<std::string>& names = {}) const;
    // Restores a state exported by state_tensors(names), step_count() and tensor_steps() (empty: every tensor at
    // step_count; else each in [0, step_count]). Requires exactly the expected names with the expected sizes; throws
    // vktrain::Error naming the problem and leaves the optimizer unchanged on failure.
    void load_state(int64_t step_count, const NamedTensors& tensors, const std::vector<std::string>& names = {},
                    const std::vector<int64_t>& tensor_steps = {});

private:
    void sgd_step(const std::vector<float*>& params, const std::vector<const float*>& grads, float grad_multiplier,
                  float clip, const std::vector<uint16_t*>& halves);
    void adamw_step(const std::vector<float*>& params, const std::vector<const float*>& grads, float grad_multiplier,
                    float clip, const std::vector<uint16_t*>& halves);
    std::vector<std::string> state_names(const std::vector<std::string>& names) const;
    void count_step(); // one more update of every tensor

    struct Staged {
        bool active = false;
        float multiplier = 1.0f, clip = 1.0f, learning_rate = 0.0f;
        std::vector<bool> done; // per tensor
    };
    Staged m_staged;
    std::vector<std::vector<float>> m_momentum_next, m_exp_avgs_next, m_exp_avg_sqs_next; // the second bank

    OptimizerOptions m_options;
    std::vector<size_t> m_param_sizes;
    std::vector<float> m_weight_decays;
    std::vector<float> m_lr_scales;
    int64_t m_step_count = 0;
    std::vector<int64_t> m_tensor_steps;                // per tensor
    std::vector<std::vector<float>> m_momentum_buffers; // SGD with momentum
    std::vector<std::vector<float>> m_exp_avgs;         // AdamW first moment
    std::vector<std::vector<float>> m_exp_avg_sqs;      // AdamW second moment
};

} // namespace vktrain::train
