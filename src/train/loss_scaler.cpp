#include "train/loss_scaler.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.hpp"

namespace vktrain::train {

LossScaler::LossScaler(const LossScalerOptions& options) : m_options(options), m_scale(options.init_scale) {
    VKT_CHECK(std::isfinite(options.init_scale) && options.init_scale >= k_min_loss_scale,
              "loss scaler: init_scale must be finite and at least 2^-24, got ", options.init_scale);
    VKT_CHECK(std::isfinite(options.growth_factor) && options.growth_factor > 1.0f,
              "loss scaler: growth_factor must be finite and > 1, got ", options.growth_factor);
    VKT_CHECK(options.backoff_factor > 0.0f && options.backoff_factor < 1.0f,
              "loss scaler: backoff_factor must be in (0, 1), got ", options.backoff_factor);
    VKT_CHECK(options.growth_interval >= 1, "loss scaler: growth_interval must be >= 1, got ", options.growth_interval);
}

float LossScaler::reciprocal(float scale) {
    // PyTorch unscales with scale.double().reciprocal().float(): one rounding, from the exact double reciprocal.
    return static_cast<float>(1.0 / static_cast<double>(scale));
}

float LossScaler::inv_scale() const {
    return reciprocal(scale());
}

bool LossScaler::update(bool found_inf) {
    if (!m_options.enabled) return false;
    // Same arithmetic as at::_amp_update_scale_: the factors are doubles there, so the product is formed in double
    // and rounded once to fp32 (identical to fp32 for the default power-of-two factors).
    if (found_inf) {
        m_scale = static_cast<float>(static_cast<double>(m_scale) * static_cast<double>(m_options.backoff_factor));
        // A floor (GradScaler has none): below it a run of overflowing steps would reach subnormal scales or 0,
        // whose reciprocal is inf, and every later step would fail. At the floor the run has diverged; the caller
        // sees steps skipped at the minimum scale.
        m_scale = std::max(m_scale, k_min_loss_scale);
        m_growth_tracker = 0;
        return true;
    }
    const int32_t successful = m_growth_tracker + 1;
    if (successful == m_options.growth_interval) {
        const auto grown =
            static_cast<float>(static_cast<double>(m_scale) * static_cast<double>(m_options.growth_factor));
        if (std::isfinite(grown)) m_scale = grown; // PyTorch keeps the old scale rather than growing to inf
        m_growth_tracker = 0;
    } else {
        m_growth_tracker = successful;
    }
    return false;
}

void LossScaler::set_state(const LossScalerState& state) {
    VKT_CHECK(std::isfinite(state.scale) && state.scale >= k_min_loss_scale,
              "loss scaler state: scale must be finite and at least 2^-24, got ", state.scale);
    VKT_CHECK(state.growth_tracker >= 0 && state.growth_tracker < m_options.growth_interval,
              "loss scaler state: growth_tracker ", state.growth_tracker,
              " is outside [0, growth_interval = ", m_options.growth_interval, ")");
    m_scale = state.scale;
    m_growth_tracker = state.growth_tracker;
}

bool all_finite(const float* values, size_t n) {
    // inf and NaN are exactly the patterns with an all-ones exponent. OR-ing a per-element flag over fixed blocks
    // keeps the inner loop branch-free (vectorisable) while still stopping soon after the first bad block.
    constexpr size_t block = 4096;
    for (size_t begin = 0; begin < n; begin += block) {
        const size_t end = std::min(n, begin + block);
        uint32_t bad = 0;
        for (size_t i = begin; i < end; ++i) {
            uint32_t bits;
            std::memcpy(&bits, values + i, sizeof bits);
            bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
        }
        if (bad) return false;
    }
    return true;
}

} // namespace vktrain::train
