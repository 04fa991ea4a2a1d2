// Per-group learning rates (Model::set_learning_rate_scale) in every update strategy: the host optimizer, the
// pipelined buckets and the device update train to the same weights with scales 1 and 0.1 on two layers; a scaled
// group's SGD step is the scale times the unscaled one, also after Trainer::set_trainable regrouped the optimizer;
// weights files and checkpoints record the scales.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::OptimizerKind;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::UpdateLocation;

enum class Strategy { host, pipelined, device };
constexpr Strategy kStrategies[] = {Strategy::host, Strategy::pipelined, Strategy::device};

const char* strategy_name(Strategy s) {
    return s == Strategy::host ? "host" : s == Strategy::pipelined ? "pipelined" : "device";
}

TrainerOptions options(Precision precision, OptimizerKind kind, Strategy s) {
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 16;
    o.seed = 9;
    o.optimizer.kind = kind;
    o.optimizer.learning_rate = kind == OptimizerKind::sgd ? 0.05f : 0.003f;
    o.optimizer.momentum = kind == OptimizerKind::sgd ? 0.9f : 0.0f;
    o.optimizer.nesterov = kind == OptimizerKind::sgd;
    o.optimizer.weight_decay = 0.01f;
    o.lr_schedule = {vktrain::LrScheduleKind::warmup_cosine, 2, 8, 0.0001f};
    o.update_buckets = s == Strategy::pipelined ? 3 : 1;
    o.update_location = s == Strategy::device ? UpdateLocation::device : UpdateLocation::host;
    if (precision == Precision::mixed) o.gemm_path = vktrain::GemmPath::tiled_fp16;
    return o;
}

// linear0 at 1 (set explicitly), linear1 at 0.1, linear2 at the default.
Model scaled_mlp() {
    Model m = Model::mlp(40, {48, 32}, 6);
    m.set_learning_rate_scale("linear0.", 1.0f);
    m.set_learning_rate_scale("linear1.", 0.1f);
    return m;
}

vkt_test::Batch batch(uint32_t step) {
    return vkt_test::make_batch(16, 40, 6, 500 + step);
}

std::vector<float> values(const Trainer& t, const std::string& name) {
    return t.parameter(name).data;
}

// Bit for bit on CPU devices; within a few ulps elsewhere (GPU sqrt and division may differ in the last bit), as
// test_device_update.cpp compares the device update with the host's.
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

class LearningRateScale : public testing::TestWithParam<std::tuple<Precision, OptimizerKind>> {};

TEST_P(LearningRateScale, HostPipelinedAndDeviceUpdatesAgree) {
    const auto [precision, kind] = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    std::vector<std::vector<vktrain::Parameter>> results;
    for (Strategy s : kStrategies) {
        Trainer t(vkt_test::context(), scaled_mlp(), options(precision, kind, s));
        EXPECT_EQ(t.update_location(), s == Strategy::device ? UpdateLocation::device : UpdateLocation::host);
        for (uint32_t i = 0; i < 6; ++i) {
            const auto b = batch(i);
            t.step(b.x.data(), b.labels.data(), 16);
        }
        results.push_back(t.parameters());
    }
    for (size_t s = 1; s < results.size(); ++s)
        for (size_t i = 0; i < results[0].size(); ++i)
            expect_close(results[s][i].data, results[0][i].data,
                         std::string(strategy_name(kStrategies[s])) + " vs host: " + results[0][i].name);

    // The scale did something: without it linear1 ends elsewhere.
    Trainer plain(vkt_test::context(), Model::mlp(40, {48, 32}, 6), options(precision, kind, Strategy::host));
    for (uint32_t i = 0; i < 6; ++i) {
        const auto b = batch(i);
        plain.step(b.x.data(), b.labels.data(), 16);
    }
    const std::vector<float> a = values(plain, "linear1.weight");
    double moved = 0.0;
    for (const auto& p : results[0])
        if (p.name == "linear1.weight")
            for (size_t i = 0; i < a.size(); ++i) moved = std::max(moved, double(std::fabs(a[i] - p.data[i])));
    EXPECT_GT(moved, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(PrecisionsAndOptimizers, LearningRateScale,
                         testing::Combine(testing::Values(Precision::fp32, Precision::mixed),
                                          testing::Values(OptimizerKind::adamw, OptimizerKind::sgd)),
                         [](const auto& i) {
                             return std::string(std::get<0>(i.param) == Precision::mixed ? "mixed" : "fp32") + "_" +
                                    (std::get<1>(i.param) == OptimizerKind::adamw ? "adamw" : "sgd");
                         });

// Plain SGD (no momentum, no decay, constant rate), one step from the same weights on the same batch: the scaled
// group moves 0.1 times as far as without a scale and the others exactly as far, in every strategy, after the
// trainer regrouped its optimizer twice (linear0 frozen, then trainable again).
TEST(LearningRateScaleSteps, ScaledGroupMovesByTheScaleAfterRegrouping) {
    for (Strategy s : kStrategies) {
        TrainerOptions o = options(Precision::fp32, OptimizerKind::sgd, s);
        o.optimizer.momentum = 0.0f;
        o.optimizer.nesterov = false;
        o.optimizer.weight_decay = 0.0f;
        o.lr_schedule = {};
        Trainer scaled(vkt_test::context(), scaled_mlp(), o);
        Trainer plain(vkt_test::context(), Model::mlp(40, {48, 32}, 6), o);
        scaled.set_trainable("linear0.", false);
        scaled.set_trainable("linear0.", true);
        const auto before = plain.parameters();
        const auto b = batch(0);
        scaled.step(b.x.data(), b.labels.data(), 16);
        plain.step(b.x.data(), b.labels.data(), 16);
        for (const auto& p0 : before) {
            const std::vector<float> ps = values(scaled, p0.name), pp = values(plain, p0.name);
            const bool in_group = p0.name.rfind("linear1.", 0) == 0;
            double worst = 0.0, largest = 0.0;
            for (size_t i = 0; i < p0.data.size(); ++i) {
                const double moved = double(ps[i]) - double(p0.data[i]);
                const double expected = (in_group ? 0.1 : 1.0) * (double(pp[i]) - double(p0.data[i]));
                worst = std::max(worst, std::fabs(moved - expected));
                largest = std::max(largest, std::fabs(expected));
            }
            EXPECT_GT(largest, 1e-6) << strategy_name(s) << ": " << p0.name << " did not move";
            // Rounding of the weights (|w| < 0.2): a few 1e-8; the step of linear1 is 0.1 times that of plain.
            EXPECT_LT(worst, in_group ? 5e-8 : 1e-12) << strategy_name(s) << ": " << p0.name;
        }
    }
}

// The scales travel with the architecture a weights file or a checkpoint records.
TEST(LearningRateScaleSteps, WeightsFilesAndCheckpointsRecordTheScales) {
    const std::string dir = vkt_test::temp_dir("lr_scale");
    Trainer t(vkt_test::context(), scaled_mlp(), options(Precision::fp32, OptimizerKind::adamw, Strategy::host));
    t.save(dir + "/w.safetensors");
    t.save_checkpoint(dir + "/c.safetensors");
    for (const char* file : {"/w.safetensors", "/c.safetensors"})
        for (const auto& p : vktrain::load_model(dir + file).parameters())
            EXPECT_EQ(p.lr_scale, p.name.rfind("linear1.", 0) == 0 ? 0.1f : 1.0f) << file << " " << p.name;
}

} // namespace
