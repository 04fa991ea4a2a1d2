// The bucketed update pipeline end to end: a trainer that reads its gradients back in buckets and updates each while
// the device computes the rest trains bit-identically to one that reads everything back and then updates, in fp32
// and mixed precision, with AdamW and SGD, through steps that overflow and are skipped, on an MLP, a CNN with
// BatchNorm and a GPT with tied weights (a tensor read again long after its first use).
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::Precision;
using vktrain::StepResult;
using vktrain::Trainer;
using vktrain::TrainerOptions;

struct TrainRun {
    std::vector<StepResult> steps;
    std::vector<vktrain::Parameter> params;
    std::vector<std::pair<std::string, std::vector<float>>> state;
    uint32_t buckets = 0;
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

using Feed = std::function<std::vector<const void*>(uint32_t step, std::vector<std::vector<uint8_t>>& keep)>;

TrainRun train(const Model& model, TrainerOptions o, uint32_t buckets, uint32_t steps, const Feed& feed) {
    o.update_buckets = buckets;
    Trainer t(vkt_test::context(), model, o);
    TrainRun r;
    r.buckets = t.update_buckets();
    for (uint32_t s = 0; s < steps; ++s) {
        std::vector<std::vector<uint8_t>> keep;
        const auto inputs = feed(s, keep);
        r.steps.push_back(t.step(inputs, o.batch_size));
    }
    r.params = t.parameters();
    r.state = t.optimizer_state();
    return r;
}

void expect_identical(const TrainRun& a, const TrainRun& b) {
    ASSERT_EQ(a.steps.size(), b.steps.size());
    for (size_t s = 0; s < a.steps.size(); ++s) {
        EXPECT_EQ(a.steps[s].loss, b.steps[s].loss) << "step " << s;
        EXPECT_EQ(a.steps[s].skipped, b.steps[s].skipped) << "step " << s;
        EXPECT_EQ(a.steps[s].loss_scale, b.steps[s].loss_scale) << "step " << s;
        EXPECT_EQ(a.steps[s].grad_norm, b.steps[s].grad_norm) << "step " << s;
        EXPECT_EQ(a.steps[s].learning_rate, b.steps[s].learning_rate) << "step " << s;
    }
    ASSERT_EQ(a.params.size(), b.params.size());
    for (size_t i = 0; i < a.params.size(); ++i)
        EXPECT_TRUE(same_bits(a.params[i].data, b.params[i].data)) << a.params[i].name;
    ASSERT_EQ(a.state.size(), b.state.size());
    for (size_t i = 0; i < a.state.size(); ++i)
        EXPECT_TRUE(same_bits(a.state[i].second, b.state[i].second)) << a.state[i].first;
}

Feed image_feed(uint32_t batch, uint32_t features, uint32_t classes) {
    return [=](uint32_t step, std::vector<std::vector<uint8_t>>& keep) {
        const vkt_test::Batch b = vkt_test::make_batch(batch, features, classes, 50 + step);
        keep.emplace_back(reinterpret_cast<const uint8_t*>(b.x.data()),
                          reinterpret_cast<const uint8_t*>(b.x.data() + b.x.size()));
        keep.emplace_back(reinterpret_cast<const uint8_t*>(b.labels.data()),
                          reinterpret_cast<const uint8_t*>(b.labels.data() + b.labels.size()));
        return std::vector<const void*>{keep[0].data(), keep[1].data()};
    };
}

// The first steps overflow at a loss scale of 2^40 (mixed) and are skipped until the scale has backed off; the
// scale then grows every 3 finite steps.
TrainerOptions options(Precision precision, vktrain::OptimizerKind kind, uint32_t batch) {
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = batch;
    o.seed = 4;
    o.optimizer.kind = kind;
    o.optimizer.learning_rate = kind == vktrain::OptimizerKind::sgd ? 0.05f : 0.003f;
    o.optimizer.momentum = 0.9f;
    o.optimizer.weight_decay = 0.01f;
    o.loss_scaler.init_scale = 1099511627776.0f;
    o.loss_scaler.growth_interval = 3;
    o.lr_schedule = {vktrain::LrScheduleKind::warmup_cosine, 2, 12, 0.0001f};
    if (precision == Precision::mixed) o.gemm_path = vktrain::GemmPath::tiled_fp16; // one path on both sides
    return o;
}

class UpdatePipeline : public testing::TestWithParam<std::tuple<Precision, vktrain::OptimizerKind>> {};

TEST_P(UpdatePipeline, MlpTrainsBitIdenticallyToOneReadback) {
    const auto [precision, kind] = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    const Model m = Model::mlp(40, {48, 32, 24}, 6);
    const TrainerOptions o = options(precision, kind, 16);
    const TrainRun piped = train(m, o, 4, 12, image_feed(16, 40, 6));
    const TrainRun plain = train(m, o, 1, 12, image_feed(16, 40, 6));
    EXPECT_GE(piped.buckets, 3u) << "the MLP's four layers make buckets";
    EXPECT_EQ(plain.buckets, 1u);
    expect_identical(piped, plain);
    uint32_t skipped = 0;
    for (const StepResult& s : piped.steps) skipped += s.skipped ? 1u : 0u;
    if (precision == Precision::mixed) {
        EXPECT_GT(skipped, 0u) << "the overflow path was not exercised";
    }
    for (const StepResult& s : plain.steps) EXPECT_EQ(s.overlapped_ms, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(PrecisionsAndOptimizers, UpdatePipeline,
                         testing::Combine(testing::Values(Precision::fp32, Precision::mixed),
                                          testing::Values(vktrain::OptimizerKind::adamw, vktrain::OptimizerKind::sgd)),
                         [](const auto& i) {
                             return std::string(std::get<0>(i.param) == Precision::mixed ? "mixed" : "fp32") + "_" +
                                    (std::get<1>(i.param) == vktrain::OptimizerKind::sgd ? "sgd" : "adamw");
                         });

TEST(UpdatePipelineModels, CnnWithBatchNormTrainsBitIdentically) {
    VKT_REQUIRE_FP16();
    Model m;
    int x = m.input("x", {2, 6, 6});
    x = m.relu(m.batch_norm2d(m.conv2d(x, 4, vktrain::Conv2dOptions::square(3, 1, 1))));
    x = m.linear(m.flatten(m.max_pool2d(x, vktrain::Pool2dOptions::square(2))), 5);
    m.cross_entropy(x, m.input("labels", {}, vktrain::DataType::i32));
    const TrainerOptions o = options(Precision::mixed, vktrain::OptimizerKind::adamw, 8);
    const TrainRun piped = train(m, o, 4, 8, image_feed(8, 72, 5));
    const TrainRun plain = train(m, o, 1, 8, image_feed(8, 72, 5));
    EXPECT_GE(piped.buckets, 2u);
    expect_identical(piped, plain);
}

TEST(UpdatePipelineModels, GptWithTiedWeightsTrainsBitIdentically) {
    VKT_REQUIRE_FP16();
    vktrain::GptOptions g;
    g.vocab = 11;
    g.layers = 2;
    g.heads = 2;
    g.width = 8;
    g.context = 6;
    g.mlp = 16;
    g.tied = true;
    const Model m = Model::gpt(g);
    const TrainerOptions o = options(Precision::mixed, vktrain::OptimizerKind::adamw, 3);
    const Feed feed = [&](uint32_t step, std::vector<std::vector<uint8_t>>& keep) {
        std::mt19937 rng(70 + step);
        for (int k = 0; k < 2; ++k) {
            std::vector<int32_t> ids(size_t(3) * g.context);
            for (auto& t : ids) t = int32_t(rng() % g.vocab);
            keep.emplace_back(reinterpret_cast<const uint8_t*>(ids.data()),
                              reinterpret_cast<const uint8_t*>(ids.data() + ids.size()));
        }
        return std::vector<const void*>{keep[0].data(), keep[1].data()};
    };
    const TrainRun piped = train(m, o, 4, 8, feed);
    const TrainRun plain = train(m, o, 1, 8, feed);
    EXPECT_GE(piped.buckets, 2u);
    expect_identical(piped, plain);
}

TEST(UpdatePipelineModels, ClippingReadsEverythingFirstAndSmallModelsReadBackOnce) {
    const Model m = Model::mlp(40, {48, 32}, 6);
    TrainerOptions o = options(Precision::fp32, vktrain::OptimizerKind::adamw, 16);
    o.max_grad_norm = 1.0f;
    Trainer clipped(vkt_test::context(), m, o);
    EXPECT_EQ(clipped.update_buckets(), 1u) << "clipping needs the global norm before any update";
    o.max_grad_norm = 0.0f;
    o.update_buckets = 0; // automatic: by model size
    EXPECT_EQ(Trainer(vkt_test::context(), m, o).update_buckets(), 1u) << "a small model reads back once";
    const Model big = Model::mlp(784, {1024, 1024}, 10); // 1.86M parameters
    EXPECT_GT(Trainer(vkt_test::context(), big, o).update_buckets(), 1u);
}

} // namespace
