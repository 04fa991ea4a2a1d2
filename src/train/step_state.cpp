#include "train/step_state.hpp"

#include <cmath>
#include <limits>

#include "common/check.hpp"

namespace vktrain::train {

StepState::StepState(const TrainerOptions& o)
    : m_mixed(o.precision == Precision::mixed), m_schedule(o.lr_schedule), m_scaler(o.loss_scaler),
      m_peak_lr(o.optimizer.learning_rate) {
    if (o.inference_only) return;
    VKT_CHECK(std::isfinite(o.max_grad_norm) && o.max_grad_norm >= 0.0f,
              "max_grad_norm must be finite and >= 0 (0: no clipping), got ", o.max_grad_norm);
    check_schedule(m_schedule, m_peak_lr);
}

float StepState::loss_scale() const {
    return m_mixed ? m_scaler.scale() : 1.0f;
}

StepScalars StepState::begin() const {
    StepScalars s;
    s.loss_scale = loss_scale();
    s.multiplier = m_mixed && s.loss_scale != 1.0f ? LossScaler::reciprocal(s.loss_scale) : 1.0f;
    s.learning_rate = scheduled_learning_rate(m_schedule, m_peak_lr, m_steps);
    return s;
}

bool StepState::conclude(const GradientCheck& check) {
    const bool skip = m_mixed && m_scaler.enabled() ? m_scaler.update(check.found_inf) : check.found_inf;
    ++m_steps;
    if (skip) ++m_skipped;
    return skip;
}

void StepState::set_peak_learning_rate(float lr) {
    check_schedule(m_schedule, lr);
    m_peak_lr = lr;
}

void StepState::restore(const LossScaler& scaler, uint64_t steps, uint64_t skipped, float peak_lr) {
    m_scaler = scaler;
    m_steps = steps;
    m_skipped = skipped;
    m_peak_lr = peak_lr;
}

} // namespace vktrain::train
