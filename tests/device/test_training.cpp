// The trainer end to end on the device: finite-difference gradients through a whole MLP, path invariance
// (coopmat vs tiled fp16 vs fp32), dynamic loss scaling with an injected overflow, and checkpoints.
#include <cmath>

#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

using vkt_test::Batch;
using vkt_test::make_batch;

TrainerOptions options(Precision p, GemmPath path = GemmPath::auto_select, uint32_t batch = 8) {
    TrainerOptions o;
    o.precision = p;
    o.gemm_path = path;
    o.batch_size = batch;
    o.seed = 42;
    return o;
}

// Central differences of the loss (fp32 device arithmetic) against the analytic backward pass, for every
// parameter of a small GELU MLP (smooth, so differences converge). eps 1e-2 balances truncation
// (O(eps^2) ~ 1e-4 relative) against fp32 rounding of the loss (~1e-7 / eps).
TEST(GradientCheck, FiniteDifferencesThroughWholeMlp) {
    const Model model = Model::mlp(5, {7, 6}, 3, vktrain::OpKind::gelu);
    Trainer t(vkt_test::context(), model, options(Precision::fp32, GemmPath::auto_select, 4));
    const Batch b = make_batch(4, 5, 3, 7);
    std::vector<std::vector<float>> grads;
    t.compute_gradients(b.x.data(), b.labels.data(), 4, grads);
    auto params = t.parameters();
    ASSERT_EQ(grads.size(), params.size());
    const float eps = 1e-2f;
    size_t checked = 0;
    for (size_t p = 0; p < params.size(); ++p)
        for (size_t i = 0; i < params[p].data.size(); ++i) {
            auto perturbed = params;
            std::vector<std::vector<float>> unused;
            perturbed[p].data[i] = params[p].data[i] + eps;
            t.set_parameters(perturbed);
            const double up = t.compute_gradients(b.x.data(), b.labels.data(), 4, unused);
            perturbed[p].data[i] = params[p].data[i] - eps;
            t.set_parameters(perturbed);
            const double down = t.compute_gradients(b.x.data(), b.labels.data(), 4, unused);
            const double fd = (up - down) / (2 * eps);
            EXPECT_NEAR(grads[p][i], fd, 2e-3 + 2e-2 * std::fabs(fd)) << params[p].name << "[" << i << "]";
            ++checked;
        }
    EXPECT_EQ(checked, model.parameter_count());
}

double relative_difference(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
    double diff = 0, norm = 0;
    for (size_t p = 0; p < a.size(); ++p)
        for (size_t i = 0; i < a[p].size(); ++i) {
            diff += (double(a[p][i]) - b[p][i]) * (double(a[p][i]) - b[p][i]);
            norm += double(b[p][i]) * b[p][i];
        }
    return std::sqrt(diff / norm);
}

std::vector<std::vector<float>> gradients(Precision p, GemmPath path, const Model& model, const Batch& b, uint32_t n) {
    Trainer t(vkt_test::context(), model, options(p, path, n));
    std::vector<std::vector<float>> g;
    t.compute_gradients(b.x.data(), b.labels.data(), n, g);
    return g;
}

// The same gradients from every path: fp16 storage costs ~2^-11 relative per rounding, so mixed vs
// fp32 agree to about 1e-2; coopmat and tiled differ only in fp32 summation order.
TEST(PathInvariance, CoopmatTiledAndFp32GiveTheSameGradients) {
    const Model model = Model::mlp(37, {29, 17}, 10);
    const Batch b = make_batch(19, 37, 10, 3);
    const auto ref = gradients(Precision::fp32, GemmPath::fp32, model, b, 19);
    if (!vkt_test::context().fp16_available()) GTEST_SKIP() << "no 16-bit storage";
    const auto tiled = gradients(Precision::mixed, GemmPath::tiled_fp16, model, b, 19);
    EXPECT_LT(relative_difference(tiled, ref), 1e-2);
    VKT_REQUIRE_COOPMAT();
    const auto coop = gradients(Precision::mixed, GemmPath::coopmat, model, b, 19);
    EXPECT_LT(relative_difference(coop, ref), 1e-2);
    EXPECT_LT(relative_difference(coop, tiled), 2e-3);
}

// The same for a small CNN with batch norm, dropout and a residual connection: convolutions in every direction,
// pooling and batch statistics agree across precisions and GEMM paths.
Model small_cnn() {
    Model m;
    int x = m.input("x", {2, 9, 7});
    x = m.relu(m.batch_norm2d(m.conv2d(x, 6, vktrain::Conv2dOptions::square(3, 1, 1))));
    x = m.add(x, m.conv2d(m.gelu(x), 6, vktrain::Conv2dOptions::square(3, 1, 1)));
    x = m.max_pool2d(x, vktrain::Pool2dOptions::square(2));
    x = m.linear(m.dropout(m.flatten(x), 0.2f), 5);
    m.softmax_cross_entropy(x);
    return m;
}

TEST(PathInvariance, SmallCnnGradientsAgreeAcrossPaths) {
    const Model model = small_cnn();
    const Batch b = make_batch(6, 2 * 9 * 7, 5, 4);
    const auto ref = gradients(Precision::fp32, GemmPath::fp32, model, b, 6);
    if (!vkt_test::context().fp16_available()) GTEST_SKIP() << "no 16-bit storage";
    const auto tiled = gradients(Precision::mixed, GemmPath::tiled_fp16, model, b, 6);
    EXPECT_LT(relative_difference(tiled, ref), 2e-2);
    VKT_REQUIRE_COOPMAT();
    const auto coop = gradients(Precision::mixed, GemmPath::coopmat, model, b, 6);
    EXPECT_LT(relative_difference(coop, ref), 2e-2);
    EXPECT_LT(relative_difference(coop, tiled), 5e-3);
}

// Dropout masks come from the seed and the step: two trainers with one seed take identical steps; another seed
// gives other masks.
TEST(Dropout, TrainingIsReproducibleFromTheSeed) {
    const Model model = small_cnn();
    const Batch b = make_batch(6, 2 * 9 * 7, 5, 6);
    auto run = [&](uint64_t seed) {
        auto o = options(Precision::fp32, GemmPath::fp32, 6);
        o.seed = seed;
        Trainer t(vkt_test::context(), model, o);
        for (int i = 0; i < 3; ++i) t.step(b.x.data(), b.labels.data(), 6);
        std::vector<float> all;
        for (const auto& p : t.parameters()) all.insert(all.end(), p.data.begin(), p.data.end());
        return all;
    };
    EXPECT_EQ(run(9), run(9));
    auto o = options(Precision::fp32, GemmPath::fp32, 6);
    o.seed = 9;
    Trainer a(vkt_test::context(), model, o);
    auto p = a.parameters();
    o.seed = 10;
    Trainer c(vkt_test::context(), model, o);
    c.set_parameters(p); // same weights, another dropout seed
    std::vector<std::vector<float>> ga, gc;
    a.compute_gradients(b.x.data(), b.labels.data(), 6, ga);
    c.compute_gradients(b.x.data(), b.labels.data(), 6, gc);
    EXPECT_NE(ga, gc);
}

// Counts what ran: a training step forced onto the coopmat path executes cooperative-matrix GEMMs
// (3 per hidden linear layer, 2 for the first). On the coopmat test device a skip here is a failure.
TEST(Coopmat, TrainingStepExecutesCooperativeMatrixKernels) {
    VKT_REQUIRE_COOPMAT();
    const Model model = Model::mlp(20, {16}, 4);
    Trainer t(vkt_test::context(), model, options(Precision::mixed, GemmPath::coopmat, 8));
    for (const auto& r : t.gemm_paths()) EXPECT_EQ(r.path, GemmPath::coopmat) << r.site;
    const Batch b = make_batch(8, 20, 4, 5);
    const uint64_t before = vkt_test::device().dispatch_count("gemm_cm_");
    t.step(b.x.data(), b.labels.data(), 8);
    EXPECT_EQ(vkt_test::device().dispatch_count("gemm_cm_") - before, 5u);
}

TEST(LossScaling, InjectedOverflowSkipsStepAndHalvesScale) {
    VKT_REQUIRE_FP16();
    const Model model = Model::mlp(6, {5}, 3);
    auto o = options(Precision::mixed, GemmPath::tiled_fp16, 4);
    o.loss_scaler.growth_interval = 3;
    Trainer t(vkt_test::context(), model, o);
    Batch b = make_batch(4, 6, 3, 9);
    auto r = t.step(b.x.data(), b.labels.data(), 4); // one clean step so the optimizer has state
    EXPECT_FALSE(r.skipped);
    EXPECT_EQ(r.loss_scale, 65536.0f);
    const auto params = t.parameters();
    const auto state = t.optimizer_state();
    Batch bad = b;
    bad.x[0] = 1e6f; // beyond fp16 range: the input cast makes it inf, the gradients go non-finite
    r = t.step(bad.x.data(), bad.labels.data(), 4);
    EXPECT_TRUE(r.skipped);
    EXPECT_EQ(r.loss_scale, 65536.0f);
    EXPECT_EQ(t.loss_scale(), 32768.0f);
    EXPECT_EQ(t.skipped_steps(), 1u);
    const auto params_after = t.parameters();
    const auto state_after = t.optimizer_state();
    for (size_t p = 0; p < params.size(); ++p)
        EXPECT_EQ(0, std::memcmp(params[p].data.data(), params_after[p].data.data(), params[p].data.size() * 4))
            << params[p].name;
    ASSERT_EQ(state.size(), state_after.size());
    for (size_t s = 0; s < state.size(); ++s) EXPECT_EQ(state[s].second, state_after[s].second) << state[s].first;
    // Growth after growth_interval (3) consecutive clean steps.
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(t.step(b.x.data(), b.labels.data(), 4).skipped);
    EXPECT_EQ(t.loss_scale(), 65536.0f);
}

// GradScaler unscales a step's gradients with the scale that step used, and only then grows it (scaler.step, then
// scaler.update). Two SGD runs whose scales differ by powers of two (one grows after every step, one never) see the
// same fp16 gradients up to that power of two, so every step must move every weight by the same amount; unscaling
// a growth step by the grown scale would halve its update.
TEST(LossScaling, GrowthStepUnscalesWithTheScaleItUsed) {
    VKT_REQUIRE_FP16();
    const Model model = Model::mlp(6, {5}, 3);
    std::vector<std::vector<vktrain::Parameter>> runs;
    for (int32_t interval : {1, 1000}) {
        auto o = options(Precision::mixed, GemmPath::tiled_fp16, 4);
        o.optimizer.kind = vktrain::OptimizerKind::sgd;
        o.optimizer.momentum = 0.0f;
        o.optimizer.learning_rate = 0.5f;
        o.loss_scaler.init_scale = 1024.0f;
        o.loss_scaler.growth_interval = interval;
        Trainer t(vkt_test::context(), model, o);
        const Batch b = make_batch(4, 6, 3, 21);
        for (int i = 0; i < 3; ++i) {
            const auto r = t.step(b.x.data(), b.labels.data(), 4);
            EXPECT_FALSE(r.skipped);
            EXPECT_EQ(r.loss_scale, interval == 1 ? 1024.0f * float(1 << i) : 1024.0f);
        }
        runs.push_back(t.parameters());
    }
    const auto initial = Trainer(vkt_test::context(), model, options(Precision::mixed, GemmPath::tiled_fp16, 4))
                             .parameters(); // the same seed: the same initial weights
    ASSERT_EQ(runs[0].size(), runs[1].size());
    for (size_t p = 0; p < runs[0].size(); ++p)
        for (size_t i = 0; i < runs[0][p].data.size(); ++i) {
            const double grown = runs[0][p].data[i] - initial[p].data[i],
                         fixed = runs[1][p].data[i] - initial[p].data[i];
            EXPECT_NEAR(grown, fixed, 1e-3 * std::fabs(fixed) + 1e-7) << runs[0][p].name << "[" << i << "]";
        }
}

// A GEMM whose fp16 result exceeds 65504 must store inf (not a saturated 65504, which a driver's native
// conversion may give), so the step is seen as non-finite and skipped, on every fp16 GEMM path.
void gemm_overflow_is_skipped(GemmPath path) {
    Model model(4);
    model.softmax_cross_entropy(model.linear(model.relu(model.linear(model.input(), 3)), 2));
    Trainer t(vkt_test::context(), model, options(Precision::mixed, path, 4));
    auto params = t.parameters();
    for (float& w : params[0].data) w = 1.0f;
    for (float& w : params[1].data) w = 0.0f;
    t.set_parameters(params);
    std::vector<float> x(16, 10000.0f); // every hidden unit: 4 · 10000 = 40000 in fp16 range...
    std::vector<int32_t> labels(4, 1);
    EXPECT_FALSE(t.step(x.data(), labels.data(), 4).skipped);
    params = t.parameters();
    for (float& w : params[0].data) w = 1.75f; // ...and 70000 beyond it: the forward GEMM overflows
    t.set_parameters(params);
    const float scale = t.loss_scale();
    const auto r = t.step(x.data(), labels.data(), 4);
    EXPECT_TRUE(r.skipped);
    EXPECT_EQ(t.loss_scale(), scale / 2);
    EXPECT_EQ(t.parameters()[0].data, params[0].data); // nothing updated
    EXPECT_TRUE(std::isinf(t.predict(x.data(), 1)[0]) || std::isnan(t.predict(x.data(), 1)[0]));
}

TEST(LossScaling, GemmOverflowBecomesInfAndSkipsTheStepTiled) {
    VKT_REQUIRE_FP16();
    gemm_overflow_is_skipped(GemmPath::tiled_fp16);
}

TEST(LossScaling, GemmOverflowBecomesInfAndSkipsTheStepCoopmat) {
    VKT_REQUIRE_COOPMAT();
    gemm_overflow_is_skipped(GemmPath::coopmat);
}

TEST(LossScaling, GradientOverflowAtHugeScaleIsDetected) {
    VKT_REQUIRE_FP16();
    const Model model = Model::mlp(6, {5}, 3);
    auto o = options(Precision::mixed, GemmPath::tiled_fp16, 4);
    o.loss_scaler.init_scale = 1e30f; // scaled output gradients overflow fp16
    Trainer t(vkt_test::context(), model, o);
    const Batch b = make_batch(4, 6, 3, 11);
    const auto r = t.step(b.x.data(), b.labels.data(), 4);
    EXPECT_TRUE(r.skipped);
    EXPECT_EQ(t.loss_scale(), 5e29f);
}

TEST(Checkpoint, SafetensorsRoundTripGivesIdenticalPredictions) {
    const Model model = Model::mlp(12, {9}, 4);
    Trainer a(vkt_test::context(), model, options(Precision::fp32));
    const Batch b = make_batch(8, 12, 4, 13);
    for (int i = 0; i < 3; ++i) a.step(b.x.data(), b.labels.data(), 8);
    const std::string path = testing::TempDir() + "vktrain_roundtrip.safetensors";
    a.save(path);
    auto o = options(Precision::fp32);
    o.seed = 7; // different initial weights, replaced by the load
    Trainer c(vkt_test::context(), model, o);
    c.load(path);
    const auto pa = a.parameters(), pc = c.parameters();
    for (size_t p = 0; p < pa.size(); ++p) EXPECT_EQ(pa[p].data, pc[p].data) << pa[p].name;
    EXPECT_EQ(a.predict(b.x.data(), 8), c.predict(b.x.data(), 8));
    const Model other = Model::mlp(12, {10}, 4);
    Trainer d(vkt_test::context(), other, options(Precision::fp32));
    EXPECT_THROW(d.load(path), vktrain::Error);
    std::remove(path.c_str());
}

// A value may feed several ops; an op whose result reaches no loss gets no gradient (its parameters' gradients stay
// exactly zero) and does not disturb the others.
TEST(Trainer, DeadEndBranchGetsZeroGradient) {
    Model branching(4);
    const int h = branching.linear(branching.input(), 6);
    const int a = branching.relu(h);
    branching.linear(h, 3); // linear1: h feeds two ops, this one reaches nothing
    branching.softmax_cross_entropy(branching.linear(a, 3));
    Trainer t(vkt_test::context(), branching, options(Precision::fp32));
    const Batch b = make_batch(8, 4, 3, 5);
    std::vector<std::vector<float>> g;
    t.compute_gradients(b.x.data(), b.labels.data(), 8, g);
    const auto params = t.parameters();
    ASSERT_EQ(g.size(), params.size());
    for (size_t i = 0; i < params.size(); ++i) {
        double norm = 0;
        for (float v : g[i]) norm += double(v) * v;
        if (params[i].name.rfind("linear1.", 0) == 0)
            EXPECT_EQ(norm, 0.0) << params[i].name;
        else
            EXPECT_GT(norm, 0.0) << params[i].name;
    }
}

TEST(Trainer, RejectsBadBatches) {
    const Model model = Model::mlp(3, {4}, 2);
    Trainer t(vkt_test::context(), model, options(Precision::fp32, GemmPath::auto_select, 4));
    std::vector<float> x(12, 0.5f);
    std::vector<int32_t> labels = {0, 1, 2, 0};
    EXPECT_THROW(t.step(x.data(), labels.data(), 4), vktrain::Error); // label 2 >= 2 classes
    labels[2] = 1;
    EXPECT_THROW(t.step(x.data(), labels.data(), 5), vktrain::Error); // more than the batch size
    EXPECT_THROW(t.step(x.data(), labels.data(), 0), vktrain::Error);
    EXPECT_NO_THROW(t.step(x.data(), labels.data(), 3)); // a partial batch is fine
}

} // namespace
