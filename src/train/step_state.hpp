// What a trainer carries from one step to the next besides weights and optimizer state — the loss scaler, the step and
// skipped-step counters, the peak learning rate the schedule scales — and the two moments every step shares, whatever
// its update strategy: the scalars it starts with, and GradScaler's decision at its end.
#pragma once

#include <cstdint>

#include "train/loss_scaler.hpp"
#include "train/update_strategy.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain::train {

class StepState {
public:
    // Throws vktrain::Error for bad loss-scaler options, or (training) a bad learning-rate schedule or max_grad_norm.
    explicit StepState(const TrainerOptions& options);

    // The loss scale steps use now (1 in fp32 or with the scaler disabled).
    float loss_scale() const;
    // The next step's scalars: its loss scale, 1 / that scale as GradScaler.unscale_ forms it (scaler.step runs before
    // scaler.update, so a step that grows the scale is unscaled by the scale it used), and its scheduled rate.
    StepScalars begin() const;
    // GradScaler's decision: a step whose gradients hold an inf or NaN is skipped and the scale backs off (mixed
    // precision); in fp32, where no scaler runs, such a step is skipped too rather than written into the master
    // weights. Counts the step (and the skip); returns whether to skip.
    bool conclude(const GradientCheck& check);

    uint64_t steps() const { return m_steps; }
    uint64_t skipped() const { return m_skipped; }
    float peak_learning_rate() const { return m_peak_lr; }
    void set_peak_learning_rate(float lr); // checked against the schedule
    const LossScaler& scaler() const { return m_scaler; }
    // A checkpoint's values (checked by the caller).
    void restore(const LossScaler& scaler, uint64_t steps, uint64_t skipped, float peak_lr);

private:
    bool m_mixed;
    LrSchedule m_schedule;
    LossScaler m_scaler;
    uint64_t m_steps = 0, m_skipped = 0;
    float m_peak_lr = 0.0f;
};

} // namespace vktrain::train
