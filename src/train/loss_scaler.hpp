// Dynamic loss scaling with exactly torch.amp.GradScaler's update rule, so mixed-precision runs can be compared
// step for step with PyTorch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "vktrain/options.hpp"

namespace vktrain::train {

// The smallest loss scale: fp16's smallest subnormal. A scale below it underflows every fp16 gradient anyway, and
// its reciprocal stays finite.
constexpr float k_min_loss_scale = 0x1p-24f;

// What a checkpoint needs to continue the scale schedule exactly.
struct LossScalerState {
    float scale = 65536.0f;
    int32_t growth_tracker = 0; // consecutive finite steps since the last growth or backoff
};

class LossScaler {
public:
    // Throws vktrain::Error unless init_scale is positive and finite, growth_factor > 1 (finite),
    // 0 < backoff_factor < 1 and growth_interval >= 1 (checked even when disabled, so a bad config fails early).
    explicit LossScaler(const LossScalerOptions& options = {});

    bool enabled() const { return m_options.enabled; }
    const LossScalerOptions& options() const { return m_options; }

    // The factor the loss is multiplied by before backward; 1 when disabled.
    float scale() const { return m_options.enabled ? m_scale : 1.0f; }
    // What gradients are multiplied by to unscale them: computed like PyTorch (scale.double().reciprocal().float()).
    // Unscale a step's gradients with the scale that step used (update() may have changed it since).
    float inv_scale() const;
    static float reciprocal(float scale);
    int32_t growth_tracker() const { return m_growth_tracker; }

    // Call once per iteration after the gradients were checked; returns true when the optimizer step must be
    // skipped. Enabled: a non-finite gradient backs the scale off, resets the tracker and skips; otherwise after
    // growth_interval consecutive finite steps the scale grows (only if the grown scale is finite, as PyTorch) and
    // the tracker resets. Disabled: like GradScaler(enabled=False), never skips and never changes anything.
    bool update(bool found_inf);

    // The internal scale and tracker (when disabled these stay at init_scale and 0, so a checkpoint from an fp32
    // run resumed in mixed precision starts from the configured scale rather than from 1).
    LossScalerState get_state() const { return {m_scale, m_growth_tracker}; }
    // Throws vktrain::Error unless scale is positive and finite and 0 <= growth_tracker < growth_interval.
    void set_state(const LossScalerState& state);

private:
    LossScalerOptions m_options;
    float m_scale;
    int32_t m_growth_tracker = 0;
};

// True when no element is inf or NaN. Tests exponent bits rather than calling std::isfinite, so the check survives
// -ffast-math (which lets the compiler assume no inf/NaN) and vectorises without a branch per element.
bool all_finite(const float* values, size_t n);

} // namespace vktrain::train
