// The optimizer on the device (TrainerOptions::update_location = device): the same training as the host optimizer
// (every operation rounds as the host's does; compared with a tolerance of a few ulps so that GPUs whose sqrt or
// division differ in the last bit pass too), a step with an inf/NaN gradient changes nothing anywhere, the host's
// copies stay readable and writable (parameters, checkpoints, set_parameters, micro-batch steps), and automatic
// keeps the host where there is nothing to gain.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::OptimizerKind;
using vktrain::Precision;
using vktrain::StepResult;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::UpdateLocation;

TrainerOptions options(Precision precision, OptimizerKind kind, UpdateLocation where, bool nesterov = true) {
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 16;
    o.seed = 9;
    o.optimizer.kind = kind;
    o.optimizer.learning_rate = kind == OptimizerKind::sgd ? 0.05f : 0.003f;
    o.optimizer.momentum = nesterov ? 0.9f : 0.0f;
    o.optimizer.nesterov = nesterov;
    o.optimizer.weight_decay = 0.01f;
    o.loss_scaler.init_scale = 1099511627776.0f; // 2^40: the first mixed steps overflow and are skipped
    o.loss_scaler.growth_interval = 3;
    o.lr_schedule = {vktrain::LrScheduleKind::warmup_cosine, 2, 12, 0.0001f};
    o.update_location = where;
    if (precision == Precision::mixed) o.gemm_path = vktrain::GemmPath::tiled_fp16;
    return o;
}

const Model& mlp() {
    static const Model m = [] {
        Model g = Model::mlp(40, {48, 32}, 6);
        g.set_weight_decay("linear0.bias", 0.0f); // per-tensor decay reaches the device too
        return g;
    }();
    return m;
}

vkt_test::Batch batch(uint32_t step) {
    return vkt_test::make_batch(16, 40, 6, 300 + step);
}

// Bit for bit on CPU devices (lavapipe compiles sqrt and division to the correctly rounded IEEE operations, as the
// host's are); within a few ulps of the values elsewhere (GPU sqrt and division may differ in the last bit).
void expect_close(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    const bool exact = vkt_test::context().device_info().type == "cpu";
    size_t bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const bool same =
            exact ? std::memcmp(&a[i], &b[i], 4) == 0 : std::fabs(a[i] - b[i]) <= 1e-7f + 4e-6f * std::fabs(b[i]);
        if (!same) ++bad;
    }
    EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << a.size() << " elements differ";
}

class DeviceUpdate : public testing::TestWithParam<std::tuple<Precision, int>> {};

TEST_P(DeviceUpdate, TrainsAsTheHostOptimizer) {
    const auto [precision, which] = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    const OptimizerKind kind = which == 0 ? OptimizerKind::adamw : OptimizerKind::sgd;
    Trainer dev(vkt_test::context(), mlp(), options(precision, kind, UpdateLocation::device, which == 1));
    Trainer host(vkt_test::context(), mlp(), options(precision, kind, UpdateLocation::host, which == 1));
    EXPECT_EQ(dev.update_location(), UpdateLocation::device);
    EXPECT_EQ(dev.update_location_reason(), "requested");
    EXPECT_EQ(host.update_location(), UpdateLocation::host);
    uint32_t skipped = 0;
    for (uint32_t s = 0; s < 12; ++s) {
        const auto b = batch(s);
        const StepResult d = dev.step(b.x.data(), b.labels.data(), 16);
        const StepResult h = host.step(b.x.data(), b.labels.data(), 16);
        EXPECT_EQ(d.skipped, h.skipped) << "step " << s;
        EXPECT_EQ(d.loss_scale, h.loss_scale) << "step " << s;
        EXPECT_EQ(d.learning_rate, h.learning_rate) << "step " << s;
        EXPECT_NEAR(d.loss, h.loss, 1e-5f * (1.0f + std::fabs(h.loss))) << "step " << s;
        EXPECT_TRUE(d.skipped ? std::isinf(d.grad_norm) : std::isnan(d.grad_norm)) << "not formed on the device";
        skipped += d.skipped ? 1u : 0u;
    }
    if (precision == Precision::mixed) {
        EXPECT_GT(skipped, 0u) << "no step overflowed: the skip path was not exercised";
    }
    EXPECT_EQ(dev.skipped_steps(), host.skipped_steps());
    EXPECT_EQ(dev.learning_rate(), host.learning_rate());
    const auto pd = dev.parameters(), ph = host.parameters();
    ASSERT_EQ(pd.size(), ph.size());
    for (size_t i = 0; i < pd.size(); ++i) expect_close(pd[i].data, ph[i].data, pd[i].name);
    const auto sd = dev.optimizer_state(), sh = host.optimizer_state();
    ASSERT_EQ(sd.size(), sh.size());
    for (size_t i = 0; i < sd.size(); ++i) expect_close(sd[i].second, sh[i].second, sd[i].first);
    // What the device's kernels read: predictions agree too.
    const auto b = batch(99);
    expect_close(dev.predict(b.x.data(), 16), host.predict(b.x.data(), 16), "predictions");
}

INSTANTIATE_TEST_SUITE_P(PrecisionsAndOptimizers, DeviceUpdate,
                         testing::Combine(testing::Values(Precision::fp32, Precision::mixed), testing::Values(0, 1, 2)),
                         [](const auto& i) {
                             const int w = std::get<1>(i.param);
                             return std::string(std::get<0>(i.param) == Precision::mixed ? "mixed" : "fp32") + "_" +
                                    (w == 0   ? "adamw"
                                     : w == 1 ? "sgd_nesterov"
                                              : "sgd");
                         });

// An input of 1e30 is inf in fp16 (and its square overflows fp32 downstream): every gradient is NaN, on the device and
// through the host's bucketed pipeline alike. Nothing may change but the scaler.
void check_overflow_changes_nothing(UpdateLocation where) {
    TrainerOptions o = options(Precision::mixed, OptimizerKind::adamw, where);
    o.loss_scaler.init_scale = 1024.0f;
    o.loss_scaler.growth_interval = 1000;
    Trainer t(vkt_test::context(), mlp(), o);
    for (uint32_t s = 0; s < 3; ++s) {
        const auto b = batch(s);
        ASSERT_FALSE(t.step(b.x.data(), b.labels.data(), 16).skipped);
    }
    const auto params = t.parameters();
    const auto state = t.optimizer_state();
    const auto probe = batch(50);
    const auto prediction = t.predict(probe.x.data(), 16);
    const float lr = t.learning_rate();
    auto bad = batch(3);
    bad.x[17] = 1e30f;
    const StepResult r = t.step(bad.x.data(), bad.labels.data(), 16);
    EXPECT_TRUE(r.skipped);
    EXPECT_EQ(t.loss_scale(), 512.0f);
    EXPECT_EQ(t.skipped_steps(), 1u);
    EXPECT_EQ(t.learning_rate(), lr);
    const auto after = t.parameters();
    for (size_t i = 0; i < params.size(); ++i)
        EXPECT_EQ(0, std::memcmp(after[i].data.data(), params[i].data.data(), params[i].data.size() * 4))
            << params[i].name;
    const auto state_after = t.optimizer_state();
    ASSERT_EQ(state_after.size(), state.size());
    for (size_t i = 0; i < state.size(); ++i) EXPECT_EQ(state_after[i].second, state[i].second) << state[i].first;
    EXPECT_EQ(t.predict(probe.x.data(), 16), prediction) << "the device's weights changed";
}

TEST(DeviceUpdateSemantics, AnOverflowingStepChangesNothingOnTheDevice) {
    VKT_REQUIRE_FP16();
    check_overflow_changes_nothing(UpdateLocation::device);
}

TEST(DeviceUpdateSemantics, AnOverflowingStepChangesNothingThroughTheHostPipeline) {
    VKT_REQUIRE_FP16();
    check_overflow_changes_nothing(UpdateLocation::host);
}

TEST(DeviceUpdateSemantics, CheckpointsParametersAndMicroBatchesGoThroughTheHost) {
    VKT_REQUIRE_FP16();
    TrainerOptions o = options(Precision::mixed, OptimizerKind::adamw, UpdateLocation::device);
    o.loss_scaler.init_scale = 1024.0f;
    Trainer dev(vkt_test::context(), mlp(), o);
    o.update_location = UpdateLocation::host;
    Trainer host(vkt_test::context(), mlp(), o);
    const std::string path = vkt_test::temp_dir("device_update") + "/c.safetensors";
    const auto both = [&](uint32_t s) {
        const auto b = batch(s);
        return std::make_pair(dev.step(b.x.data(), b.labels.data(), 16), host.step(b.x.data(), b.labels.data(), 16));
    };
    for (uint32_t s = 0; s < 3; ++s) both(s);
    dev.save_checkpoint(path);
    std::vector<float> losses;
    for (uint32_t s = 3; s < 5; ++s) losses.push_back(both(s).first.loss);
    dev.load_checkpoint(path); // back to step 3: the same steps give the same losses, bit for bit
    for (uint32_t s = 3; s < 5; ++s) {
        const auto b = batch(s);
        EXPECT_EQ(dev.step(b.x.data(), b.labels.data(), 16).loss, losses[s - 3]) << "step " << s;
    }
    host.load_checkpoint(path);
    for (uint32_t s = 3; s < 5; ++s) {
        const auto b = batch(s);
        host.step(b.x.data(), b.labels.data(), 16);
    }
    // Weights written by the host reach the device's masters; a step of two micro-batches runs on the host.
    auto params = host.parameters();
    for (float& x : params[0].data) x *= 0.5f;
    dev.set_parameters(params);
    host.set_parameters(params);
    const auto b1 = batch(20), b2 = batch(21);
    const std::vector<vktrain::MicroBatch> parts = {{{b1.x.data(), b1.labels.data()}, 16},
                                                    {{b2.x.data(), b2.labels.data()}, 16}};
    EXPECT_NEAR(dev.step(parts).loss, host.step(parts).loss, 1e-5f);
    for (uint32_t s = 22; s < 24; ++s) {
        const auto [d, h] = both(s);
        EXPECT_NEAR(d.loss, h.loss, 1e-5f) << "step " << s;
    }
    const auto pd = dev.parameters(), ph = host.parameters();
    for (size_t i = 0; i < pd.size(); ++i) expect_close(pd[i].data, ph[i].data, pd[i].name);
    EXPECT_EQ(dev.steps(), host.steps());
}

TEST(DeviceUpdateSemantics, AutomaticKeepsTheHostWithoutTransfersToSaveAndClippingRefusesTheDevice) {
    TrainerOptions o = options(Precision::fp32, OptimizerKind::adamw, UpdateLocation::automatic);
    Trainer t(vkt_test::context(), mlp(), o);
    const auto& info = vkt_test::context().device_info();
    if (info.type == "cpu" || vkt_test::context().unified_memory_available()) {
        EXPECT_EQ(t.update_location(), UpdateLocation::host) << t.update_location_reason();
    } else {
        EXPECT_NE(t.update_location_reason().find("measured"), std::string::npos) << t.update_location_reason();
    }
    o.max_grad_norm = 1.0f;
    Trainer clipped(vkt_test::context(), mlp(), o);
    EXPECT_EQ(clipped.update_location(), UpdateLocation::host);
    o.update_location = UpdateLocation::device;
    EXPECT_THROW(Trainer(vkt_test::context(), mlp(), o), vktrain::Error);
}

// A schedule that decays to 0 (PyTorch's CosineAnnealingLR with eta_min=0), with every update strategy: the steps at
// rate 0 leave the weights bit for bit as they were but count; the run does not fail at its last step, host and
// device agree, and a checkpoint written at rate 0 loads.
TEST(DeviceUpdate, ScheduleEndingAtRateZero) {
    std::vector<std::vector<vktrain::Parameter>> finals;
    for (UpdateLocation where : {UpdateLocation::device, UpdateLocation::host}) {
        for (uint32_t buckets : {1u, 3u}) {
            if (where == UpdateLocation::device && buckets > 1) continue;
            TrainerOptions o = options(Precision::fp32, OptimizerKind::adamw, where);
            o.lr_schedule = {vktrain::LrScheduleKind::warmup_cosine, 1, 4, 0.0f};
            o.update_buckets = buckets;
            Trainer t(vkt_test::context(), mlp(), o);
            std::vector<vktrain::Parameter> before;
            for (uint32_t s = 0; s < 6; ++s) {
                if (s == 3) before = t.parameters();
                const auto b = batch(s);
                StepResult r;
                ASSERT_NO_THROW(r = t.step(b.x.data(), b.labels.data(), 16)) << "step " << s;
                EXPECT_EQ(r.learning_rate, s >= 3 ? 0.0f : vktrain::scheduled_learning_rate(o.lr_schedule, 0.003f, s));
            }
            EXPECT_EQ(t.steps(), 6u);
            EXPECT_EQ(t.learning_rate(), 0.0f);
            const auto after = t.parameters();
            for (size_t i = 0; i < after.size(); ++i)
                EXPECT_EQ(std::memcmp(after[i].data.data(), before[i].data.data(), after[i].data.size() * 4), 0)
                    << after[i].name << " changed at rate 0";
            const std::string path = testing::TempDir() + "vktrain_rate_zero.safetensors";
            t.save_checkpoint(path);
            Trainer u(vkt_test::context(), mlp(), o);
            ASSERT_NO_THROW(u.load_checkpoint(path));
            EXPECT_EQ(u.learning_rate(), 0.0f);
            const auto b = batch(7);
            ASSERT_NO_THROW(u.step(b.x.data(), b.labels.data(), 16));
            std::remove(path.c_str());
            finals.push_back(after);
        }
    }
    for (size_t k = 1; k < finals.size(); ++k)
        for (size_t i = 0; i < finals[0].size(); ++i)
            expect_close(finals[k][i].data, finals[0][i].data, finals[0][i].name);
}

} // namespace
