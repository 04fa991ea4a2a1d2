// The learning-rate schedule and the optimizer at its end: a warm-up/cosine schedule may decay to 0 (PyTorch's
// CosineAnnealingLR with eta_min=0), a step at rate 0 leaves the weights exactly as they were but counts, and a rate
// that underflows below the smallest normal float is 0 on every path (host and device updates agree).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "train/optimizer.hpp"
#include "vktrain/error.hpp"
#include "vktrain/options.hpp"

namespace {

using vktrain::LrSchedule;
using vktrain::LrScheduleKind;
using vktrain::OptimizerKind;
using vktrain::OptimizerOptions;
using vktrain::train::Optimizer;

constexpr float k_min_normal = std::numeric_limits<float>::min();

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Schedule, CosineToZeroIsAcceptedAndEndsAtZero) {
    const LrSchedule s{LrScheduleKind::warmup_cosine, 2, 10, 0.0f};
    EXPECT_NO_THROW(vktrain::check_schedule(s, 3e-4f));
    EXPECT_EQ(vktrain::scheduled_learning_rate(s, 3e-4f, 9), 0.0f);
    EXPECT_EQ(vktrain::scheduled_learning_rate(s, 3e-4f, 100), 0.0f);
    for (uint64_t step = 0; step < 9; ++step) EXPECT_GT(vktrain::scheduled_learning_rate(s, 3e-4f, step), 0.0f);
}

TEST(Schedule, RatesBelowTheSmallestNormalFloatAreZero) {
    // --min-lr 1e-60 and --lr 1e-45 of the issue: the float rates underflow; they are 0, never subnormal.
    const LrSchedule cosine{LrScheduleKind::warmup_cosine, 1, 50, 1e-39f}; // a subnormal floor
    ASSERT_LT(1e-39f, k_min_normal);
    EXPECT_NO_THROW(vktrain::check_schedule(cosine, 1e-3f));
    EXPECT_EQ(vktrain::scheduled_learning_rate(cosine, 1e-3f, 49), 0.0f);
    const LrSchedule constant{};
    EXPECT_EQ(vktrain::scheduled_learning_rate(constant, 1e-45f, 0), 0.0f);
    EXPECT_EQ(vktrain::scheduled_learning_rate(constant, k_min_normal, 7), k_min_normal);
    for (float peak : {1e-45f, 1e-38f, 2e-38f, 1e-30f, 3e-4f}) {
        const LrSchedule s{LrScheduleKind::warmup_cosine, 3, 20, 0.0f};
        for (uint64_t step = 0; step < 25; ++step) {
            const float r = vktrain::scheduled_learning_rate(s, peak, step);
            EXPECT_TRUE(r == 0.0f || (r >= k_min_normal && r <= peak)) << peak << " step " << step << ": " << r;
        }
    }
}

TEST(Schedule, PeakRateMustBeFiniteAndNotNegative) {
    for (LrScheduleKind kind : {LrScheduleKind::constant, LrScheduleKind::warmup_cosine}) {
        const LrSchedule s{kind, 1, 5, 0.0f};
        EXPECT_THROW(vktrain::check_schedule(s, -1e-3f), vktrain::Error);
        EXPECT_THROW(vktrain::check_schedule(s, NAN), vktrain::Error);
        EXPECT_THROW(vktrain::check_schedule(s, INFINITY), vktrain::Error);
        EXPECT_NO_THROW(vktrain::check_schedule(s, 0.0f)); // Trainer::set_learning_rate(0)
    }
    EXPECT_THROW(vktrain::check_schedule({LrScheduleKind::warmup_cosine, 1, 5, -1e-9f}, 1e-3f), vktrain::Error);
}

// Every optimizer kind: a step at rate 0 (set_learning_rate, a staged step, or a step applied elsewhere) is legal,
// leaves the weights bit for bit as they were, counts, and still updates the moments, as in PyTorch.
TEST(Schedule, OptimizerStepAtRateZeroChangesNoWeightButCounts) {
    OptimizerOptions adamw;
    adamw.kind = OptimizerKind::adamw;
    adamw.learning_rate = 1e-3f;
    adamw.weight_decay = 0.1f;
    OptimizerOptions sgd;
    sgd.kind = OptimizerKind::sgd;
    sgd.learning_rate = 0.1f;
    sgd.momentum = 0.9f;
    sgd.weight_decay = 0.01f;
    for (const OptimizerOptions& o : {adamw, sgd}) {
        Optimizer opt(o, {5});
        std::vector<float> p = {0.5f, -1.0f, 2.0f, 0.25f, -0.125f};
        const std::vector<float> g = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f};
        opt.step({p.data()}, {g.data()}, 1.0f); // a normal step first: moments exist
        const std::vector<float> before = p;
        const auto state_before = opt.state_tensors();
        ASSERT_NO_THROW(opt.set_learning_rate(0.0f));
        opt.step({p.data()}, {g.data()}, 1.0f);
        EXPECT_TRUE(same_bits(p, before));
        EXPECT_EQ(opt.step_count(), 2);
        EXPECT_EQ(opt.learning_rate(), 0.0f);
        EXPECT_NE(opt.state_tensors(), state_before); // momentum / moments still move

        std::vector<float> out(5);
        ASSERT_NO_THROW(opt.begin_staged(1.0f, 1.0f, 0.0f));
        opt.stage({0}, {p.data()}, {out.data()}, {g.data()});
        opt.commit();
        EXPECT_TRUE(same_bits(out, before));
        EXPECT_EQ(opt.step_count(), 3);
        ASSERT_NO_THROW(opt.advance(0.0f));
        EXPECT_EQ(opt.step_count(), 4);
        EXPECT_THROW(opt.advance(-1.0f), vktrain::Error);
        EXPECT_THROW(opt.begin_staged(1.0f, 1.0f, NAN), vktrain::Error);
    }
    // The configured peak rate must still be positive.
    OptimizerOptions zero = adamw;
    zero.learning_rate = 0.0f;
    EXPECT_THROW(Optimizer(zero, {5}), vktrain::Error);
}

} // namespace
