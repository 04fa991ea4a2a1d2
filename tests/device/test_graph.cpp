// The graph machinery around the ops: the memory plan (against the allocator and against one buffer per value),
// weights uploaded only when they changed, frozen parameters and per-group weight decay, whole models saved and
// loaded from a weights file, inference-only sessions, and per-range hazards in recorded sequences.
#include <cmath>
#include <cstdio>
#include <memory>

#include "device/support.hpp"
#include "graph/ir.hpp"
#include "graph/planner.hpp"
#include "kernels/elementwise.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vkt_test::Batch;
using vkt_test::make_batch;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

TrainerOptions options(Precision p, uint32_t batch = 8) {
    TrainerOptions o;
    o.precision = p;
    o.batch_size = batch;
    o.seed = 5;
    return o;
}

TEST(MemoryPlan, PeakIsBelowOneBufferPerValueAndMatchesTheAllocator) {
    const Model model = Model::mlp(64, {128, 128, 128, 64}, 10);
    for (Precision p : {Precision::fp32, Precision::mixed}) {
        if (p == Precision::mixed && !vkt_test::context().fp16_available()) continue;
        const uint64_t before = vkt_test::context().allocated_bytes();
        Trainer t(vkt_test::context(), model, options(p, 32));
        const vktrain::MemoryReport m = t.memory();
        EXPECT_EQ(vkt_test::context().allocated_bytes() - before, t.device_bytes());
        EXPECT_EQ(m.total_bytes, t.device_bytes());
        EXPECT_EQ(m.arena_bytes, std::max(m.train_plan_bytes, m.eval_plan_bytes));
        EXPECT_GT(m.train_plan_bytes, 0u);
        // A chain frees activations as the backward pass consumes them: the plan must beat one buffer per value.
        EXPECT_LT(m.train_plan_bytes, m.unplanned_bytes);
        EXPECT_LE(m.eval_plan_bytes, m.train_plan_bytes);
        // What one buffer per value would hold, recomputed here from the graph.
        const auto ir = vktrain::graph::build_ir(model, 32, true);
        uint64_t sum = 0;
        for (const auto& v : ir.values)
            if (vktrain::graph::in_arena(v)) sum += vktrain::graph::storage_bytes(v, p == Precision::mixed);
        EXPECT_LE(sum, m.unplanned_bytes); // the plan rounds each value up to the alignment
        EXPECT_GE(sum * 2, m.unplanned_bytes);
    }
}

// No two values that are live at the same node share bytes.
TEST(MemoryPlan, LiveValuesNeverOverlap) {
    const Model model = Model::mlp(30, {20, 20}, 5, vktrain::OpKind::gelu);
    const auto ir = vktrain::graph::build_ir(model, 16, true);
    const auto plan = vktrain::graph::plan_memory(ir, true, 64);
    for (size_t a = 0; a < ir.values.size(); ++a)
        for (size_t b = a + 1; b < ir.values.size(); ++b) {
            if (plan.offset[a] < 0 || plan.offset[b] < 0) continue;
            const bool live_together = plan.first[a] <= plan.last[b] && plan.first[b] <= plan.last[a];
            if (!live_together) continue;
            const auto a0 = uint64_t(plan.offset[a]), b0 = uint64_t(plan.offset[b]);
            const uint64_t a1 = a0 + vktrain::graph::storage_bytes(ir.values[a], true);
            const uint64_t b1 = b0 + vktrain::graph::storage_bytes(ir.values[b], true);
            const bool in_place = plan.last[a] == plan.first[b] || plan.last[b] == plan.first[a];
            if (!in_place) {
                EXPECT_TRUE(a1 <= b0 || b1 <= a0) << ir.values[a].label << " and " << ir.values[b].label;
            }
            EXPECT_EQ(a0 % 64, 0u);
        }
}

TEST(Graph, WeightsAreUploadedOnlyWhenTheyChange) {
    const Model model = Model::mlp(6, {5}, 3);
    Trainer t(vkt_test::context(), model, options(Precision::fp32));
    const Batch b = make_batch(8, 6, 3, 1);
    t.predict(b.x.data(), 8);
    const uint64_t first = t.weight_uploads();
    EXPECT_EQ(first, 1u); // the initial weights
    t.predict(b.x.data(), 8);
    t.evaluate(b.x.data(), b.labels.data(), 8);
    const Batch many = make_batch(30, 6, 3, 2);
    t.predict(many.x.data(), 30); // several chunks
    EXPECT_EQ(t.weight_uploads(), first);
    t.step(b.x.data(), b.labels.data(), 8); // uses the weights already there, then changes them
    EXPECT_EQ(t.weight_uploads(), first);
    t.step(b.x.data(), b.labels.data(), 8);
    EXPECT_EQ(t.weight_uploads(), first + 1);
}

TEST(Graph, SkippedStepUploadsNothing) {
    VKT_REQUIRE_FP16();
    const Model model = Model::mlp(6, {5}, 3);
    auto o = options(Precision::mixed);
    o.loss_scaler.init_scale = 3e38f; // the scaled gradients overflow fp16: every step is skipped
    Trainer t(vkt_test::context(), model, o);
    const Batch b = make_batch(8, 6, 3, 2);
    t.step(b.x.data(), b.labels.data(), 8);
    const uint64_t after_first = t.weight_uploads();
    const auto r = t.step(b.x.data(), b.labels.data(), 8);
    EXPECT_TRUE(r.skipped);
    EXPECT_EQ(t.weight_uploads(), after_first);
}

TEST(Graph, FrozenParametersStayAndGetNoGradient) {
    Model model = Model::mlp(6, {5}, 3);
    model.set_trainable("linear0.", false);
    Trainer t(vkt_test::context(), model, options(Precision::fp32));
    const auto before = t.parameters();
    std::vector<std::vector<float>> g;
    const Batch b = make_batch(8, 6, 3, 3);
    t.compute_gradients(b.x.data(), b.labels.data(), 8, g);
    EXPECT_EQ(g.size(), 2u); // linear1.weight and linear1.bias only
    for (int i = 0; i < 3; ++i) t.step(b.x.data(), b.labels.data(), 8);
    const auto after = t.parameters();
    EXPECT_EQ(before[0].data, after[0].data);
    EXPECT_EQ(before[1].data, after[1].data);
    EXPECT_NE(before[2].data, after[2].data);
    EXPECT_EQ(t.optimizer_state().size(), 4u); // exp_avg and exp_avg_sq of the two trainable tensors
    // Frozen weights went up once, with the initial upload; after a step only the trainable ones (3·5 + 3 floats):
    // the step uploads what the previous step changed, the prediction what this one changed.
    const uint64_t bytes = t.weight_upload_bytes();
    t.step(b.x.data(), b.labels.data(), 8);
    t.predict(b.x.data(), 1);
    EXPECT_EQ(t.weight_upload_bytes() - bytes, 2u * (3u * 5u + 3u) * 4u);
    EXPECT_THROW(model.set_trainable("nope.", false), vktrain::Error);
}

TEST(Graph, WeightDecayPerGroup) {
    Model model = Model::mlp(4, {3}, 2);
    model.set_weight_decay("linear0.weight", 0.5f);
    auto o = options(Precision::fp32);
    o.optimizer.learning_rate = 0.1f;
    Trainer t(vkt_test::context(), model, o);
    // With zero gradients AdamW only decays: p *= 1 - lr * wd.
    std::vector<float> x(8 * 4, 0.0f);
    std::vector<int32_t> labels(8, 0);
    auto params = t.parameters();
    for (auto& p : params)
        if (p.name.rfind("linear1", 0) == 0) std::fill(p.data.begin(), p.data.end(), 0.0f);
    t.set_parameters(params); // logits 0 for every class... the gradient reaches linear1 only
    const auto before = t.parameters();
    t.step(x.data(), labels.data(), 8);
    const auto after = t.parameters();
    for (size_t i = 0; i < before[0].data.size(); ++i)
        EXPECT_FLOAT_EQ(after[0].data[i], before[0].data[i] * (1.0f - 0.1f * 0.5f)) << i;
    EXPECT_EQ(after[1].data, before[1].data); // linear0.bias: default weight decay 0, zero gradient
}

TEST(Graph, WholeModelSavedAndLoadedFromTheWeightsFile) {
    Model model;
    int x = model.input("x", {2, 3});
    const int h = model.relu(model.linear(x, 4));
    x = model.linear(model.flatten(h), 3);
    model.softmax_cross_entropy(x);
    model.set_trainable("linear0.bias", false);
    Trainer t(vkt_test::context(), model, options(Precision::fp32));
    const Batch b = make_batch(8, 6, 3, 4);
    t.step(b.x.data(), b.labels.data(), 8);
    const std::string path = testing::TempDir() + "vktrain_whole_model.safetensors";
    t.save(path);

    const Model loaded = vktrain::load_model(path);
    EXPECT_EQ(loaded.to_json(), model.to_json());
    auto o = options(Precision::fp32);
    o.inference_only = true;
    Trainer inference(vkt_test::context(), loaded, o);
    inference.load(path);
    EXPECT_EQ(inference.predict(b.x.data(), 8), t.predict(b.x.data(), 8));
    // No gradients, no optimizer: less device memory than the training session, and no training calls.
    EXPECT_LT(inference.device_bytes(), t.device_bytes());
    EXPECT_THROW(inference.step(b.x.data(), b.labels.data(), 8), vktrain::Error);
    EXPECT_THROW(inference.save_checkpoint(path + ".ckpt"), vktrain::Error);
    EXPECT_TRUE(inference.optimizer_state().empty());
    std::remove(path.c_str());

    EXPECT_THROW(Model::from_json("{\"vktrain_graph\": 1, \"nodes\": [{\"op\": \"warp\", \"name\": \"a\", "
                                  "\"inputs\": []}]}"),
                 vktrain::Error);
    EXPECT_THROW(Model::from_json("{\"vktrain_graph\": 1, \"nodes\": [{\"op\": \"relu\", \"name\": \"a\", "
                                  "\"inputs\": [0]}]}"),
                 vktrain::Error);
    EXPECT_THROW(Model::from_json("[]"), vktrain::Error);
}

TEST(Graph, BuilderRejectsBadShapesWithClearErrors) {
    Model m;
    const int x = m.input("x", {3, 4});
    const int l = m.input("labels", {}, vktrain::DataType::i32);
    EXPECT_THROW(m.relu(l), vktrain::Error);             // integers into a real op
    EXPECT_THROW(m.reshape(x, {5, -1}), vktrain::Error); // 12 is not a multiple of 5
    EXPECT_THROW(m.input("x", {2}), vktrain::Error);     // duplicate name
    EXPECT_THROW(m.cross_entropy(x, l), vktrain::Error); // labels must be shaped [3]
    const int y = m.linear(m.flatten(x), 4);
    m.cross_entropy(y, l);
    EXPECT_THROW(m.relu(y), vktrain::Error); // nothing after the loss
}

// Two dispatches writing disjoint ranges of one buffer need no barrier between them; overlapping ones do.
TEST(Sequence, HazardsAreTrackedPerByteRange) {
    auto& dev = vkt_test::device();
    auto buf = vkt_test::make_buffer(std::vector<float>(4096, 1.0f), vktrain::kernels::DType::f32);
    using vktrain::kernels::MatRef;
    const auto count_barriers = [&](uint64_t second_offset) {
        vktrain::runtime::Sequence seq(dev);
        seq.begin();
        const uint64_t b0 = seq.barrier_count();
        vktrain::kernels::record_activation(dev, seq, vktrain::kernels::Activation::relu,
                                            MatRef{&buf, vktrain::kernels::DType::f32, 1, 256, 0},
                                            MatRef{&buf, vktrain::kernels::DType::f32, 1, 256, 1024});
        vktrain::kernels::record_activation(dev, seq, vktrain::kernels::Activation::relu,
                                            MatRef{&buf, vktrain::kernels::DType::f32, 1, 256, 2048},
                                            MatRef{&buf, vktrain::kernels::DType::f32, 1, 256, second_offset});
        const uint64_t n = seq.barrier_count() - b0;
        seq.end();
        seq.submit_and_wait();
        return n;
    };
    EXPECT_EQ(count_barriers(3072), 0u); // disjoint from the first op's ranges
    EXPECT_EQ(count_barriers(1024), 1u); // writes what the first op wrote
}

} // namespace

namespace {

// BatchNorm's running statistics are state: updated on the device by training steps, saved under PyTorch's names,
// used by evaluation; partial batches are refused in training (their padding would enter the statistics).
TEST(Graph, BatchNormRunningStatisticsAreSavedState) {
    Model m;
    int x = m.input("x", {2, 3, 3});
    x = m.batch_norm2d(m.conv2d(x, 4, vktrain::Conv2dOptions::square(3, 1, 1)));
    m.softmax_cross_entropy(m.linear(m.flatten(m.relu(x)), 3));
    Trainer t(vkt_test::context(), m, options(Precision::fp32, 4));
    const Batch b = make_batch(4, 18, 3, 8);
    for (auto& v : const_cast<std::vector<float>&>(b.x)) v = v * 2.0f + 3.0f; // mean 3, far from the initial 0
    const auto before = t.parameters();
    t.step(b.x.data(), b.labels.data(), 4);
    const auto after = t.parameters();
    std::vector<std::string> names;
    for (const auto& p : after) names.push_back(p.name);
    EXPECT_EQ(names, (std::vector<std::string>{"conv0.weight", "conv0.bias", "bn0.weight", "bn0.bias",
                                               "bn0.running_mean", "bn0.running_var", "bn0.num_batches_tracked",
                                               "linear0.weight", "linear0.bias"}));
    EXPECT_EQ(after[6].data, std::vector<float>{1.0f}); // one training step
    EXPECT_TRUE(after[6].shape.empty());
    EXPECT_NE(after[4].data, before[4].data); // running_mean moved towards the batch mean
    EXPECT_EQ(before[4].data, std::vector<float>(4, 0.0f));
    EXPECT_EQ(before[5].data, std::vector<float>(4, 1.0f));
    EXPECT_THROW(t.step(b.x.data(), b.labels.data(), 3), vktrain::Error);
    // Evaluation reads the running statistics: changing them changes the predictions.
    const auto p1 = t.predict(b.x.data(), 4);
    auto edited = t.parameters();
    for (float& v : edited[4].data) v += 1.0f;
    edited[6].data[0] = 41.0f;
    t.set_parameters(edited);
    EXPECT_NE(t.predict(b.x.data(), 4), p1);
    EXPECT_EQ(t.parameters()[6].data[0], 41.0f);
}

} // namespace

namespace {

// Misuse the library reports instead of crashing: null inputs, and a Context that was moved from.
TEST(Graph, NullInputsAndMovedFromContextsThrow) {
    const Model model = Model::mlp(4, {3}, 2);
    Trainer t(vkt_test::context(), model, options(Precision::fp32, 4));
    std::vector<float> x(16, 0.5f);
    std::vector<int32_t> labels(4, 1);
    EXPECT_THROW(t.evaluate(x.data(), nullptr, 4), vktrain::Error);
    EXPECT_THROW(t.step(x.data(), nullptr, 4), vktrain::Error);
    EXPECT_THROW(t.step(nullptr, labels.data(), 4), vktrain::Error);
    EXPECT_THROW(t.predict(nullptr, 4), vktrain::Error);
    EXPECT_EQ(t.evaluate(x.data(), labels.data(), 0).count, 0u);

    vktrain::Context a(vkt_test::context_options());
    vktrain::Context b(std::move(a));
    EXPECT_THROW(Trainer(a, model, options(Precision::fp32, 4)), vktrain::Error); // NOLINT(bugprone-use-after-move)
    EXPECT_THROW(a.device_info(), vktrain::Error);
    EXPECT_NO_THROW(Trainer(b, model, options(Precision::fp32, 4)));
}

} // namespace

namespace {

// A model whose buffers exceed what one storage-buffer descriptor may cover (maxStorageBufferRange, 128 MiB on
// lavapipe and many mobile GPUs) is refused when it is compiled, with the limit named, never bound in violation.
TEST(Graph, BindingsBeyondMaxStorageBufferRangeAreRefused) {
    const uint64_t range = vkt_test::device().caps().max_storage_buffer_range;
    if (range == 0 || range >= (1ull << 31)) GTEST_SKIP() << "maxStorageBufferRange is " << range;
    const uint32_t features = 1024;
    const auto batch = uint32_t(range / (features * 4) + 1); // the fp32 input alone exceeds the range
    try {
        Trainer t(vkt_test::context(), Model::mlp(features, {}, 2), options(Precision::fp32, batch));
        FAIL() << "a batch of " << batch << " was accepted";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("maxStorageBufferRange"), std::string::npos) << e.what();
    }
}

} // namespace

namespace {

// A Trainer may outlive the Context it was made on: it keeps the device alive, goes on working, and releases
// everything when it goes, without a "device memory still allocated" warning.
TEST(Graph, TrainerOutlivesItsContext) {
    std::vector<std::string> warnings;
    auto o = vkt_test::context_options();
    auto inner = o.log;
    o.log = [&](vktrain::LogLevel level, vktrain::LogSource source, const std::string& m) {
        if (level >= vktrain::LogLevel::warning) warnings.push_back(m);
        if (inner) inner(level, source, m);
    };
    const Model model = Model::mlp(6, {5}, 3);
    std::unique_ptr<Trainer> t;
    {
        vktrain::Context ctx(o);
        t = std::make_unique<Trainer>(ctx, model, options(Precision::fp32));
    }
    const Batch b = make_batch(8, 6, 3, 12);
    EXPECT_TRUE(std::isfinite(t->step(b.x.data(), b.labels.data(), 8).loss));
    EXPECT_EQ(t->predict(b.x.data(), 8).size(), 24u);
    t.reset();
    EXPECT_TRUE(warnings.empty()) << warnings.front();
}

} // namespace
