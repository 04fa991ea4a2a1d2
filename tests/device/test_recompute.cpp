// Activation recomputation (TrainerOptions::recompute): a small GPT and Llama trained a few steps with and without it
// give bit-identical losses and weights (the recomputed values are the originals, bit for bit: same kernels, same
// inputs), in fp32 and mixed precision, with fused and unfused attention, dropout on in one case (LoRA adapters with
// dropout inside the blocks), the gradients coming back in buckets; and the planned activation arena is smaller.
#include <cstring>

#include "device/support.hpp"

namespace {

using vktrain::Model;
using vktrain::Precision;
using vktrain::Recompute;
using vktrain::Trainer;
using vktrain::TrainerOptions;

enum class Kind { gpt, gpt_fused_lora_dropout, llama };

struct Case {
    Kind kind;
    Precision precision;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
    const char* k = info.param.kind == Kind::gpt     ? "Gpt"
                    : info.param.kind == Kind::llama ? "Llama"
                                                     : "GptFusedLoraDropout";
    return std::string(k) + (info.param.precision == Precision::fp32 ? "Fp32" : "Mixed");
}

constexpr uint32_t k_vocab = 11, k_context = 8, k_batch = 2, k_layers = 3;

Model make_model(Kind kind) {
    if (kind == Kind::llama) {
        vktrain::LlamaOptions o;
        o.vocab = k_vocab;
        o.layers = k_layers;
        o.heads = 4;
        o.kv_heads = 2;
        o.width = 16;
        o.intermediate = 24;
        o.context = k_context;
        return Model::llama(o);
    }
    vktrain::GptOptions g;
    g.vocab = k_vocab;
    g.layers = k_layers;
    g.heads = 2;
    g.width = 16;
    g.context = k_context;
    g.mlp = 32;
    Model m = Model::gpt(g);
    if (kind == Kind::gpt_fused_lora_dropout) m.add_lora("*.c_attn", vktrain::LoraOptions{4, 8.0f, 0.25f});
    return m;
}

struct Result {
    std::vector<float> losses;
    std::vector<vktrain::Parameter> params;
    uint64_t train_plan_bytes = 0;
};

Result train(const Case& c, Recompute recompute) {
    TrainerOptions o;
    o.precision = c.precision;
    o.batch_size = k_batch;
    o.seed = 9;
    o.recompute = recompute;
    // A concrete path: auto times the paths on each trainer, and on a device with cooperative matrices the two
    // trainers may then pick different ones (different sums) for the same shape.
    if (c.precision == Precision::mixed) o.gemm_path = vktrain::GemmPath::tiled_fp16;
    o.update_buckets = 3;
    o.optimizer.learning_rate = 0.01f;
    vktrain::Context& ctx =
        c.kind == Kind::gpt_fused_lora_dropout ? vkt_test::fused_attention_context() : vkt_test::context();
    Trainer t(ctx, make_model(c.kind), o);
    std::mt19937 rng(3);
    Result r;
    for (int step = 0; step < 3; ++step) {
        std::vector<int32_t> ids(k_batch * k_context), targets(ids.size());
        for (auto& x : ids) x = int32_t(rng() % k_vocab);
        for (auto& x : targets) x = int32_t(rng() % k_vocab);
        r.losses.push_back(t.step({ids.data(), targets.data()}, k_batch).loss);
    }
    r.params = t.parameters();
    r.train_plan_bytes = t.memory().train_plan_bytes;
    return r;
}

bool same_bits(float a, float b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

class RecomputeExact : public testing::TestWithParam<Case> {};

TEST_P(RecomputeExact, LossesAndWeightsAreBitIdenticalAndThePlanIsSmaller) {
    const Case c = GetParam();
    if (c.precision == Precision::mixed) VKT_REQUIRE_FP16();
    const Result plain = train(c, Recompute::none);
    const Result recomputed = train(c, Recompute::blocks);
    ASSERT_EQ(plain.losses.size(), recomputed.losses.size());
    for (size_t i = 0; i < plain.losses.size(); ++i)
        EXPECT_TRUE(same_bits(plain.losses[i], recomputed.losses[i]))
            << "step " << i << ": " << plain.losses[i] << " vs " << recomputed.losses[i];
    ASSERT_EQ(plain.params.size(), recomputed.params.size());
    size_t differing = 0;
    for (size_t p = 0; p < plain.params.size(); ++p) {
        ASSERT_EQ(plain.params[p].data.size(), recomputed.params[p].data.size()) << plain.params[p].name;
        for (size_t i = 0; i < plain.params[p].data.size(); ++i)
            if (!same_bits(plain.params[p].data[i], recomputed.params[p].data[i]) && differing++ < 5)
                ADD_FAILURE() << plain.params[p].name << "[" << i << "]: " << plain.params[p].data[i] << " vs "
                              << recomputed.params[p].data[i];
    }
    EXPECT_EQ(differing, 0u);
    // The weights moved (the comparison is not of untouched initial values).
    EXPECT_TRUE(std::isfinite(plain.losses.back()));
    EXPECT_LT(recomputed.train_plan_bytes, plain.train_plan_bytes);
}

INSTANTIATE_TEST_SUITE_P(Models, RecomputeExact,
                         testing::Values(Case{Kind::gpt, Precision::fp32}, Case{Kind::gpt, Precision::mixed},
                                         Case{Kind::gpt_fused_lora_dropout, Precision::fp32},
                                         Case{Kind::gpt_fused_lora_dropout, Precision::mixed},
                                         Case{Kind::llama, Precision::fp32}, Case{Kind::llama, Precision::mixed}),
                         case_name);

// --profile names the recomputed ops apart from the forward ops they copy (and the step has more of them).
TEST(Recompute, TheProfileNamesTheRecomputedOps) {
    const Case c{Kind::gpt, Precision::fp32};
    uint32_t dispatches[2] = {0, 0};
    for (Recompute r : {Recompute::none, Recompute::blocks}) {
        TrainerOptions o;
        o.precision = Precision::fp32;
        o.batch_size = k_batch;
        o.recompute = r;
        Trainer t(vkt_test::context(), make_model(c.kind), o);
        std::vector<int32_t> ids(k_batch * k_context, 1), targets(ids.size(), 2);
        const vktrain::StepProfile p = t.profile_step({ids.data(), targets.data()}, k_batch);
        size_t recomputed = 0, c_fc = 0;
        for (const auto& op : p.ops) {
            recomputed += op.name.find(".recomputed") != std::string::npos ? 1 : 0;
            c_fc += op.name.rfind("transformer.h.1.mlp.c_fc.forward.recomputed (gemm ", 0) == 0 ? 1 : 0;
        }
        EXPECT_EQ(recomputed > 0, r == Recompute::blocks);
        EXPECT_EQ(c_fc, r == Recompute::blocks ? 1u : 0u);
        dispatches[r == Recompute::blocks] = p.dispatches;
    }
    EXPECT_GT(dispatches[1], dispatches[0]);
}

// A model without blocks trains as before, with one warning through the context's log.
TEST(Recompute, ModelWithoutBlocksWarnsAndTrains) {
    std::vector<std::string> warnings;
    vktrain::ContextOptions co = vkt_test::context_options();
    co.log = [&](vktrain::LogLevel level, vktrain::LogSource, const std::string& m) {
        if (level == vktrain::LogLevel::warning) warnings.push_back(m);
    };
    vktrain::Context ctx(co);
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = 4;
    o.recompute = Recompute::blocks;
    Trainer t(ctx, Model::mlp(6, {5}, 3), o);
    const auto b = vkt_test::make_batch(4, 6, 3, 1);
    EXPECT_TRUE(std::isfinite(t.step(b.x.data(), b.labels.data(), 4).loss));
    size_t found = 0;
    for (const auto& w : warnings) found += w.find("no blocks") != std::string::npos ? 1 : 0;
    EXPECT_EQ(found, 1u);
}

} // namespace
