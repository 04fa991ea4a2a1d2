#include <cmath>
#include <limits>

#include "common/check.hpp"
#include "vktrain/options.hpp"

namespace vktrain {

namespace {

// A rate below the smallest normal float is taken as 0: a GPU may flush subnormal numbers to zero (Vulkan leaves it
// to the implementation), and the host and device updates must do the same thing with the same rate.
float flush_subnormal(double rate) {
    const float r = float(rate);
    return r < std::numeric_limits<float>::min() ? 0.0f : r;
}

} // namespace

void check_schedule(const LrSchedule& s, float lr) {
    VKT_CHECK(std::isfinite(lr) && lr >= 0.0f, "learning rate must be finite and >= 0, got ", lr);
    if (s.kind == LrScheduleKind::constant) return;
    VKT_CHECK(s.total_steps > s.warmup_steps, "warm-up/cosine schedule: total steps (", s.total_steps,
              ") must exceed the warm-up steps (", s.warmup_steps, ")");
    VKT_CHECK(std::isfinite(s.min_learning_rate) && s.min_learning_rate >= 0.0f && s.min_learning_rate <= lr,
              "warm-up/cosine schedule: the final learning rate ", s.min_learning_rate, " must lie in [0, ", lr, "]");
}

float scheduled_learning_rate(const LrSchedule& s, float lr, uint64_t step) {
    if (s.kind == LrScheduleKind::constant) return flush_subnormal(lr);
    if (step < s.warmup_steps) return flush_subnormal(double(lr) * double(step + 1) / double(s.warmup_steps));
    if (step + 1 >= s.total_steps) return flush_subnormal(s.min_learning_rate);
    const double span = double(s.total_steps - 1 - s.warmup_steps); // >= 1 here
    const double progress = double(step - s.warmup_steps) / span;
    const double pi = 3.14159265358979323846;
    return flush_subnormal(s.min_learning_rate +
                           (double(lr) - s.min_learning_rate) * 0.5 * (1.0 + std::cos(pi * progress)));
}

} // namespace vktrain
