// Loss scaler: torch.amp.GradScaler's update rule, checked step by step against an independent model.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "train/loss_scaler.hpp"
#include "vktrain/error.hpp"

namespace {

using vktrain::LossScalerOptions;
using vktrain::train::LossScaler;
using vktrain::train::LossScalerState;

LossScalerOptions interval_options(int32_t interval) {
    LossScalerOptions options;
    options.growth_interval = interval;
    return options;
}

TEST(LossScaler, DefaultsMatchGradScaler) {
    const LossScalerOptions options;
    EXPECT_TRUE(options.enabled);
    EXPECT_EQ(options.init_scale, 65536.0f);
    EXPECT_EQ(options.growth_factor, 2.0f);
    EXPECT_EQ(options.backoff_factor, 0.5f);
    EXPECT_EQ(options.growth_interval, 2000);
    const LossScaler scaler;
    EXPECT_EQ(scaler.scale(), 65536.0f);
    EXPECT_EQ(scaler.inv_scale(), 1.0f / 65536.0f);
    EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(LossScaler, InfHalvesScaleResetsTrackerAndSkips) {
    LossScaler scaler(interval_options(3));
    EXPECT_FALSE(scaler.update(false));
    EXPECT_FALSE(scaler.update(false));
    EXPECT_EQ(scaler.growth_tracker(), 2);
    EXPECT_TRUE(scaler.update(true));
    EXPECT_EQ(scaler.scale(), 32768.0f);
    EXPECT_EQ(scaler.inv_scale(), 1.0f / 32768.0f);
    EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(LossScaler, GrowsExactlyAfterIntervalCleanSteps) {
    LossScaler scaler(interval_options(3));
    EXPECT_FALSE(scaler.update(false));
    EXPECT_FALSE(scaler.update(false));
    EXPECT_EQ(scaler.scale(), 65536.0f);
    EXPECT_EQ(scaler.growth_tracker(), 2);
    EXPECT_FALSE(scaler.update(false));
    EXPECT_EQ(scaler.scale(), 131072.0f);
    EXPECT_EQ(scaler.growth_tracker(), 0);
    for (int i = 0; i < 3; ++i) scaler.update(false);
    EXPECT_EQ(scaler.scale(), 262144.0f);
}

TEST(LossScaler, GrowsExactlyAfterDefaultInterval) {
    LossScaler scaler;
    for (int i = 0; i < 1999; ++i) ASSERT_FALSE(scaler.update(false));
    EXPECT_EQ(scaler.scale(), 65536.0f);
    EXPECT_EQ(scaler.growth_tracker(), 1999);
    EXPECT_FALSE(scaler.update(false));
    EXPECT_EQ(scaler.scale(), 131072.0f);
    EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(LossScaler, IntervalOneGrowsEveryCleanStep) {
    LossScaler scaler(interval_options(1));
    scaler.update(false);
    scaler.update(false);
    EXPECT_EQ(scaler.scale(), 262144.0f);
    EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(LossScaler, MixedSequenceMatchesModel) {
    LossScalerOptions options;
    options.init_scale = 1024.0f;
    options.growth_interval = 4;
    options.growth_factor = 3.0f; // non power of two: exercises the double product rounded to fp32
    options.backoff_factor = 0.25f;
    LossScaler scaler(options);
    // Model written from GradScaler's documented rule.
    double scale = 1024.0;
    int tracker = 0;
    const std::vector<bool> infs = {false, false, true,  true,  false, false, false, false, false, true, false,
                                    false, false, false, false, false, false, false, false, true,  true, false};
    for (size_t i = 0; i < infs.size(); ++i) {
        bool skip = false;
        if (infs[i]) {
            scale *= 0.25;
            tracker = 0;
            skip = true;
        } else if (++tracker == 4) {
            scale = static_cast<float>(scale * 3.0);
            tracker = 0;
        }
        ASSERT_EQ(scaler.update(infs[i]), skip) << i;
        ASSERT_EQ(scaler.scale(), static_cast<float>(scale)) << i;
        ASSERT_EQ(scaler.growth_tracker(), tracker) << i;
    }
}

TEST(LossScaler, DoesNotGrowToInfinity) {
    LossScalerOptions options;
    options.init_scale = std::numeric_limits<float>::max();
    options.growth_interval = 1;
    LossScaler scaler(options);
    EXPECT_FALSE(scaler.update(false));
    EXPECT_EQ(scaler.scale(), std::numeric_limits<float>::max());
    EXPECT_EQ(scaler.growth_tracker(), 0);
}

// A long run of overflowing steps stops at the floor (2^-24): the scale never becomes subnormal or 0, its reciprocal
// stays finite, and a clean step grows it again.
TEST(LossScaler, BackoffStopsAtTheFloor) {
    LossScaler s(LossScalerOptions{});
    for (int i = 0; i < 200; ++i) EXPECT_TRUE(s.update(true));
    EXPECT_EQ(s.scale(), 0x1p-24f);
    EXPECT_TRUE(std::isfinite(s.inv_scale()));
    EXPECT_EQ(s.inv_scale(), 0x1p24f);
    LossScalerOptions o;
    o.growth_interval = 1;
    LossScaler g(o);
    for (int i = 0; i < 200; ++i) g.update(true);
    EXPECT_FALSE(g.update(false));
    EXPECT_EQ(g.scale(), 0x1p-23f);
    o.init_scale = 1e-39f; // below the floor: refused
    EXPECT_THROW(LossScaler{o}, vktrain::Error);
}

TEST(LossScaler, InvScaleIsRoundedDoubleReciprocal) {
    LossScalerOptions options;
    options.init_scale = 3.0f;
    const LossScaler scaler(options);
    EXPECT_EQ(scaler.inv_scale(), static_cast<float>(1.0 / 3.0));
}

TEST(LossScaler, DisabledNeverSkipsOrChanges) {
    LossScalerOptions options;
    options.enabled = false;
    options.growth_interval = 2;
    LossScaler scaler(options);
    EXPECT_FALSE(scaler.enabled());
    EXPECT_EQ(scaler.scale(), 1.0f);
    EXPECT_EQ(scaler.inv_scale(), 1.0f);
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(scaler.update(true));
        EXPECT_FALSE(scaler.update(false));
    }
    EXPECT_EQ(scaler.scale(), 1.0f);
    EXPECT_EQ(scaler.growth_tracker(), 0);
    EXPECT_EQ(scaler.get_state().scale, 65536.0f); // the configured scale, for resuming in mixed precision
}

TEST(LossScaler, InvalidOptionsThrow) {
    const auto expect_throw = [](auto mutate) {
        LossScalerOptions options;
        mutate(options);
        EXPECT_THROW(LossScaler{options}, vktrain::Error);
        options.enabled = false; // validated regardless
        EXPECT_THROW(LossScaler{options}, vktrain::Error);
    };
    expect_throw([](LossScalerOptions& o) { o.init_scale = 0.0f; });
    expect_throw([](LossScalerOptions& o) { o.init_scale = -1.0f; });
    expect_throw([](LossScalerOptions& o) { o.init_scale = INFINITY; });
    expect_throw([](LossScalerOptions& o) { o.init_scale = NAN; });
    expect_throw([](LossScalerOptions& o) { o.growth_factor = 1.0f; });
    expect_throw([](LossScalerOptions& o) { o.growth_factor = 0.5f; });
    expect_throw([](LossScalerOptions& o) { o.growth_factor = INFINITY; });
    expect_throw([](LossScalerOptions& o) { o.growth_factor = NAN; });
    expect_throw([](LossScalerOptions& o) { o.backoff_factor = 0.0f; });
    expect_throw([](LossScalerOptions& o) { o.backoff_factor = 1.0f; });
    expect_throw([](LossScalerOptions& o) { o.backoff_factor = -0.5f; });
    expect_throw([](LossScalerOptions& o) { o.backoff_factor = NAN; });
    expect_throw([](LossScalerOptions& o) { o.growth_interval = 0; });
    expect_throw([](LossScalerOptions& o) { o.growth_interval = -5; });
    try {
        LossScalerOptions options;
        options.growth_interval = 0;
        LossScaler scaler(options);
        FAIL() << "expected vktrain::Error";
    } catch (const vktrain::Error& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("growth_interval"), std::string::npos) << message;
        EXPECT_NE(message.find("loss_scaler.cpp:"), std::string::npos) << message;
    }
}

TEST(LossScaler, StateRoundTrip) {
    LossScaler a(interval_options(5));
    a.update(true);
    a.update(false);
    a.update(false);
    const LossScalerState state = a.get_state();
    EXPECT_EQ(state.scale, 32768.0f);
    EXPECT_EQ(state.growth_tracker, 2);

    LossScaler b(interval_options(5));
    b.set_state(state);
    EXPECT_EQ(b.scale(), 32768.0f);
    EXPECT_EQ(b.growth_tracker(), 2);
    const std::vector<bool> infs = {false, false, false, true, false, false, false, false, false, false};
    for (bool inf : infs) {
        ASSERT_EQ(a.update(inf), b.update(inf));
        ASSERT_EQ(a.scale(), b.scale());
        ASSERT_EQ(a.growth_tracker(), b.growth_tracker());
    }
}

TEST(LossScaler, InvalidStateThrowsAndKeepsState) {
    LossScaler scaler(interval_options(5));
    EXPECT_THROW(scaler.set_state({0.0f, 0}), vktrain::Error);
    EXPECT_THROW(scaler.set_state({NAN, 0}), vktrain::Error);
    EXPECT_THROW(scaler.set_state({INFINITY, 0}), vktrain::Error);
    EXPECT_THROW(scaler.set_state({1.0f, -1}), vktrain::Error);
    EXPECT_THROW(scaler.set_state({1.0f, 5}), vktrain::Error);
    EXPECT_EQ(scaler.scale(), 65536.0f);
    EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(LossScaler, AllFinite) {
    std::vector<float> values(10007, 1.5f);
    EXPECT_TRUE(vktrain::train::all_finite(values.data(), values.size()));
    EXPECT_TRUE(vktrain::train::all_finite(nullptr, 0));
    values[5000] = std::numeric_limits<float>::max();
    values[5001] = std::numeric_limits<float>::denorm_min();
    values[5002] = -0.0f;
    EXPECT_TRUE(vktrain::train::all_finite(values.data(), values.size()));
    for (float bad : {INFINITY, -INFINITY, NAN, -NAN}) {
        for (size_t at : {size_t{0}, size_t{4095}, size_t{4096}, size_t{10006}}) {
            std::vector<float> copy = values;
            copy[at] = bad;
            EXPECT_FALSE(vktrain::train::all_finite(copy.data(), copy.size())) << bad << " at " << at;
        }
    }
}

} // namespace
