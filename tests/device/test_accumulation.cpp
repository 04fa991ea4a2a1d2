// Training machinery of one step: gradient accumulation over micro-batches (equal to one big batch within fp32
// rounding), gradient clipping by the global L2 norm of the unscaled gradients (PyTorch's unscale_ then
// clip_grad_norm_ order; a skipped step clips nothing) and the learning-rate schedule applied per step.
#include <cmath>
#include <cstdio>

#include "device/support.hpp"

namespace {

using vktrain::Model;
using vktrain::OptimizerKind;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

constexpr uint32_t k_features = 12, k_classes = 5;

TrainerOptions sgd_options(Precision precision, uint32_t batch) {
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = batch;
    o.seed = 3;
    o.optimizer.kind = OptimizerKind::sgd;
    o.optimizer.momentum = 0.0f;
    o.optimizer.learning_rate = 1.0f; // p' = p - g: the parameter change is the gradient
    return o;
}

Model small_mlp() {
    return Model::mlp(k_features, {16, 9}, k_classes);
}

// p_before - p_after for every trainable value, flattened.
std::vector<float> change(const std::vector<vktrain::Parameter>& before, const std::vector<vktrain::Parameter>& after) {
    std::vector<float> d;
    for (size_t t = 0; t < before.size(); ++t)
        for (size_t i = 0; i < before[t].data.size(); ++i) d.push_back(before[t].data[i] - after[t].data[i]);
    return d;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double rel) {
    ASSERT_EQ(a.size(), b.size());
    double scale = 0.0;
    for (float v : a) scale = std::max(scale, std::fabs(double(v)));
    ASSERT_GT(scale, 0.0);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], rel * scale) << "element " << i;
}

class Accumulation : public ::testing::TestWithParam<Precision> {};

// 4 micro-batches of 8 give the update of one batch of 32 within fp32 rounding of the gradients.
TEST_P(Accumulation, FourMicroBatchesOfEightEqualOneBatchOf32) {
    const Precision precision = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    const vkt_test::Batch data = vkt_test::make_batch(32, k_features, k_classes, 21);
    Trainer big(vkt_test::context(), small_mlp(), sgd_options(precision, 32));
    Trainer micro(vkt_test::context(), small_mlp(), sgd_options(precision, 8));
    const auto start = big.parameters();
    ASSERT_EQ(start[0].data, micro.parameters()[0].data); // same seed, same initial weights

    const vktrain::StepResult one = big.step(data.x.data(), data.labels.data(), 32);
    std::vector<vktrain::MicroBatch> parts;
    for (uint32_t b = 0; b < 4; ++b)
        parts.push_back({{data.x.data() + b * 8 * k_features, data.labels.data() + b * 8}, 8});
    const vktrain::StepResult four = micro.step(parts);
    ASSERT_FALSE(one.skipped);
    ASSERT_FALSE(four.skipped);
    EXPECT_NEAR(one.loss, four.loss, 1e-5 * std::fabs(one.loss));
    EXPECT_NEAR(one.grad_norm, four.grad_norm, 1e-5 * one.grad_norm);
    const auto a = change(start, big.parameters());
    const auto b = change(start, micro.parameters());
    expect_close(a, b, 1e-5);
    EXPECT_EQ(micro.steps(), 1u);

    // Unequal micro-batches are weighted by their sample counts: 5 + 11 + 16 = 32.
    Trainer uneven(vkt_test::context(), small_mlp(), sgd_options(precision, 16));
    parts = {{{data.x.data(), data.labels.data()}, 5},
             {{data.x.data() + 5 * k_features, data.labels.data() + 5}, 11},
             {{data.x.data() + 16 * k_features, data.labels.data() + 16}, 16}};
    uneven.step(parts);
    // In mixed precision the loss gradient is divided by 5, 11 and 16 before its fp16 rounding, not by 32.
    expect_close(a, change(start, uneven.parameters()), precision == Precision::mixed ? 2e-3 : 1e-5);
}

// Clipping scales the unscaled gradients by min(1, max_norm / (norm + 1e-6)); grad_norm is the norm before clipping.
TEST_P(Accumulation, ClipsTheGlobalNormOfTheUnscaledGradients) {
    const Precision precision = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    const vkt_test::Batch data = vkt_test::make_batch(16, k_features, k_classes, 5);
    TrainerOptions o = sgd_options(precision, 16);
    Trainer probe(vkt_test::context(), small_mlp(), o);
    std::vector<std::vector<float>> grads;
    probe.compute_gradients(data.x.data(), data.labels.data(), 16, grads);
    double sq = 0.0;
    for (const auto& g : grads)
        for (float v : g) sq += double(v) * v;
    const double norm = std::sqrt(sq);
    ASSERT_GT(norm, 0.05);

    for (const float max_norm : {float(norm * 0.25), float(norm * 4.0)}) {
        o.max_grad_norm = max_norm;
        Trainer t(vkt_test::context(), small_mlp(), o);
        const auto before = t.parameters();
        const vktrain::StepResult r = t.step(data.x.data(), data.labels.data(), 16);
        ASSERT_FALSE(r.skipped);
        EXPECT_NEAR(r.grad_norm, norm, 1e-5 * norm);
        const double coef = std::min(1.0, max_norm / (norm + 1e-6));
        std::vector<float> want;
        for (const auto& g : grads)
            for (float v : g) want.push_back(float(v * coef));
        // Trainable tensors come first in parameters(), in the order compute_gradients uses.
        expect_close(want, change(before, t.parameters()), 1e-5);
        // The clipped update has norm max_norm (or the gradient's own when below it).
        double moved = 0.0;
        for (float v : change(before, t.parameters())) moved += double(v) * v;
        EXPECT_NEAR(std::sqrt(moved), std::min<double>(norm, max_norm), 1e-4 * norm);
    }
}

INSTANTIATE_TEST_SUITE_P(Precisions, Accumulation, ::testing::Values(Precision::fp32, Precision::mixed),
                         [](const auto& p) { return p.param == Precision::fp32 ? "fp32" : "mixed"; });

// A step whose gradients overflow is skipped whole: nothing is clipped or updated, and the norm reads +inf.
TEST(Accumulation, OverflowInAnyMicroBatchSkipsTheStepAndClipsNothing) {
    VKT_REQUIRE_FP16();
    TrainerOptions o = sgd_options(Precision::mixed, 8);
    o.max_grad_norm = 1.0f;
    o.loss_scaler.init_scale = 3.0e38f; // the scaled loss gradient overflows fp16
    Trainer t(vkt_test::context(), small_mlp(), o);
    const vkt_test::Batch data = vkt_test::make_batch(16, k_features, k_classes, 9);
    const auto before = t.parameters();
    const vktrain::StepResult r = t.step(
        {{{data.x.data(), data.labels.data()}, 8}, {{data.x.data() + 8 * k_features, data.labels.data() + 8}, 8}});
    EXPECT_TRUE(r.skipped);
    EXPECT_TRUE(std::isinf(r.grad_norm));
    EXPECT_EQ(change(before, t.parameters()), std::vector<float>(change(before, before).size(), 0.0f));
    EXPECT_EQ(t.skipped_steps(), 1u);
    EXPECT_LT(t.loss_scale(), 3.0e38f);
}

// The warm-up/cosine schedule sets each step's rate from the step counter, and set_learning_rate moves its peak.
TEST(Accumulation, ScheduleSetsTheRateOfEveryStep) {
    TrainerOptions o = sgd_options(Precision::fp32, 4);
    o.optimizer.learning_rate = 0.1f;
    o.lr_schedule = {vktrain::LrScheduleKind::warmup_cosine, 2, 6, 0.01f};
    Trainer t(vkt_test::context(), small_mlp(), o);
    const vkt_test::Batch data = vkt_test::make_batch(4, k_features, k_classes, 2);
    const float want[] = {0.05f, 0.1f, 0.1f, 0.0775f, 0.0325f, 0.01f, 0.01f};
    for (size_t s = 0; s < 7; ++s) {
        const vktrain::StepResult r = t.step(data.x.data(), data.labels.data(), 4);
        EXPECT_NEAR(r.learning_rate, want[s], 1e-7) << "step " << s;
        EXPECT_FLOAT_EQ(t.learning_rate(), r.learning_rate);
    }
    o.lr_schedule.total_steps = 2;
    EXPECT_THROW(Trainer(vkt_test::context(), small_mlp(), o), vktrain::Error);
    o.lr_schedule.total_steps = 6;
    o.lr_schedule.min_learning_rate = 0.2f;
    EXPECT_THROW(Trainer(vkt_test::context(), small_mlp(), o), vktrain::Error);
    o.lr_schedule.min_learning_rate = 0.0f;
    o.max_grad_norm = -1.0f;
    EXPECT_THROW(Trainer(vkt_test::context(), small_mlp(), o), vktrain::Error);
}

// A scheduled run resumes bit-identically: the checkpoint carries the peak rate the schedule scales.
TEST(Accumulation, ScheduledRunResumesFromACheckpoint) {
    TrainerOptions o = sgd_options(Precision::fp32, 4);
    o.optimizer.learning_rate = 0.1f;
    o.max_grad_norm = 0.5f;
    o.lr_schedule = {vktrain::LrScheduleKind::warmup_cosine, 2, 8, 0.01f};
    const vkt_test::Batch data = vkt_test::make_batch(4, k_features, k_classes, 6);
    Trainer a(vkt_test::context(), small_mlp(), o);
    a.set_learning_rate(0.05f); // a new peak
    for (int s = 0; s < 3; ++s) a.step(data.x.data(), data.labels.data(), 4);
    const std::string path = testing::TempDir() + "vktrain_schedule_resume.safetensors";
    a.save_checkpoint(path);
    std::vector<float> rates_a;
    for (int s = 0; s < 3; ++s) rates_a.push_back(a.step(data.x.data(), data.labels.data(), 4).learning_rate);
    Trainer b(vkt_test::context(), small_mlp(), o);
    b.load_checkpoint(path);
    for (int s = 0; s < 3; ++s)
        EXPECT_EQ(b.step(data.x.data(), data.labels.data(), 4).learning_rate, rates_a[size_t(s)]) << "step " << s;
    EXPECT_NEAR(rates_a[0], vktrain::scheduled_learning_rate(o.lr_schedule, 0.05f, 3), 1e-9);
    const auto pa = a.parameters(), pb = b.parameters();
    for (size_t t = 0; t < pa.size(); ++t) EXPECT_EQ(pa[t].data, pb[t].data) << pa[t].name;
    std::remove(path.c_str());
}

} // namespace
