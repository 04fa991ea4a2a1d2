// A whole small GPT: every parameter's gradient against central finite differences (through embeddings, LayerNorm,
// causal attention, GELU, residual adds and the token loss), the recipe's initialisation and nanoGPT names, and
// generation over the key/value cache (Model::gpt_decoder) against the full-context forward pass.
#include <cmath>

#include "device/support.hpp"

namespace {

using vktrain::GptOptions;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

GptOptions tiny() {
    GptOptions g;
    g.vocab = 7;
    g.layers = 2;
    g.heads = 2;
    g.width = 8;
    g.context = 5;
    g.mlp = 12;
    return g;
}

std::vector<int32_t> tokens(size_t n, int32_t vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> out(n);
    for (auto& t : out) t = int32_t(rng() % uint32_t(vocab));
    return out;
}

TEST(Gpt, NamesShapesAndInitialisationFollowTheRecipe) {
    GptOptions g = tiny();
    g.layers = 4;
    const Model m = Model::gpt(g);
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = 2;
    o.seed = 5;
    Trainer t(vkt_test::context(), m, o);
    std::map<std::string, vktrain::Parameter> p;
    for (auto& x : t.parameters()) p[x.name] = x;
    ASSERT_TRUE(p.count("transformer.wte.weight"));
    EXPECT_EQ(p["transformer.wte.weight"].shape, (std::vector<int64_t>{7, 8}));
    EXPECT_EQ(p["transformer.wpe.weight"].shape, (std::vector<int64_t>{5, 8}));
    EXPECT_EQ(p["transformer.h.3.attn.c_attn.weight"].shape, (std::vector<int64_t>{24, 8}));
    EXPECT_EQ(p["transformer.h.0.mlp.c_fc.bias"].shape, (std::vector<int64_t>{12}));
    EXPECT_EQ(p["lm_head.weight"].shape, (std::vector<int64_t>{7, 8}));
    EXPECT_FALSE(p.count("lm_head.bias"));
    const auto stddev = [](const std::vector<float>& v) {
        double s = 0;
        for (float x : v) s += double(x) * x;
        return std::sqrt(s / double(v.size()));
    };
    // 24x8 and 8x24 draws: the sample std is within ~20% of the target.
    EXPECT_NEAR(stddev(p["transformer.h.1.attn.c_attn.weight"].data), 0.02, 0.005);
    EXPECT_NEAR(stddev(p["transformer.h.1.attn.c_proj.weight"].data), 0.02 / std::sqrt(8.0), 0.0015);
    EXPECT_NEAR(stddev(p["transformer.h.2.mlp.c_proj.weight"].data), 0.02 / std::sqrt(8.0), 0.0015);
    for (const char* zero :
         {"transformer.h.0.attn.c_attn.bias", "transformer.h.0.mlp.c_proj.bias", "transformer.ln_f.bias"})
        for (float x : p[zero].data) ASSERT_EQ(x, 0.0f) << zero;
    for (float x : p["transformer.h.2.ln_2.weight"].data) ASSERT_EQ(x, 1.0f);
    EXPECT_THROW(Model::gpt([] {
                     GptOptions b = tiny();
                     b.heads = 3;
                     return b;
                 }()),
                 vktrain::Error);
}

// Every parameter of a 2-layer GPT against central differences of the mean token loss (fp32).
TEST(Gpt, WholeModelGradientsMatchFiniteDifferences) {
    const GptOptions g = tiny();
    const uint32_t batch = 3;
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = batch;
    o.seed = 11;
    Model m = Model::gpt(g);
    Trainer t(vkt_test::context(), m, o);
    // Larger weights than the recipe's init, so every path (attention, MLP) carries a visible gradient.
    auto params = t.parameters();
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    for (auto& p : params)
        if (p.name.find("ln_") == std::string::npos)
            for (float& x : p.data) x = u(rng);
    t.set_parameters(params);
    const auto ids = tokens(batch * g.context, int32_t(g.vocab), 1), targets = tokens(batch * g.context, 7, 2);
    const std::vector<const void*> in{ids.data(), targets.data()};
    std::vector<std::vector<float>> grads, unused;
    t.compute_gradients(in, batch, grads);
    ASSERT_EQ(grads.size(), params.size());
    const auto loss_at = [&](size_t p, size_t i, float delta) {
        auto q = params;
        q[p].data[i] += delta;
        t.set_parameters(q);
        return double(t.compute_gradients(in, batch, unused));
    };
    size_t checked = 0;
    for (size_t p = 0; p < params.size(); ++p) {
        const size_t count = params[p].data.size(), stride = std::max<size_t>(1, count / 6);
        for (size_t i = p % stride; i < count; i += stride) {
            const float eps = 4e-3f;
            const double fd = (loss_at(p, i, eps) - loss_at(p, i, -eps)) / (2.0 * eps);
            EXPECT_NEAR(grads[p][i], fd, 3e-3 + 3e-2 * std::fabs(fd)) << params[p].name << "[" << i << "]";
            ++checked;
        }
    }
    t.set_parameters(params);
    EXPECT_GT(checked, 100u);
}

class GptDecode : public testing::TestWithParam<Precision> {};

// Feeding a sequence one position at a time through the key/value cache gives, at every position, the logits of the
// full-context forward pass (within the storage precision).
TEST_P(GptDecode, CachedPositionsMatchTheFullForwardPass) {
    const Precision precision = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    GptOptions g = tiny();
    g.context = 9;
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 1;
    o.inference_only = true;
    o.seed = 2;
    Trainer full(vkt_test::context(), Model::gpt(g), o);
    auto params = full.parameters();
    std::mt19937 rng(8);
    std::uniform_real_distribution<float> u(-0.4f, 0.4f);
    for (auto& p : params)
        for (float& x : p.data) x += u(rng);
    full.set_parameters(params);
    Trainer dec(vkt_test::context(), Model::gpt_decoder(g), o);
    std::vector<vktrain::Parameter> dp;
    for (const auto& info : dec.model().parameters()) {
        vktrain::Parameter q{info.name, info.shape, {}};
        for (const auto& p : params)
            if (p.name == info.name) q.data = p.data;
        if (q.data.empty()) q.data.assign(size_t(info.shape[0] * info.shape[1]), 0.0f); // caches
        dp.push_back(q);
    }
    dec.set_parameters(dp);

    const auto ids = tokens(g.context, int32_t(g.vocab), 3);
    const std::vector<int32_t> none(g.context, 0);
    const std::vector<float> want = full.predict({ids.data(), none.data()}, 1); // [context, vocab]
    const double tol = precision == Precision::fp32 ? 2e-5 : 3e-2;
    for (uint32_t p = 0; p < g.context; ++p) {
        const int32_t id[1] = {ids[p]}, pos[1] = {int32_t(p)};
        const std::vector<float> got = dec.predict({id, pos}, 1);
        ASSERT_EQ(got.size(), g.vocab);
        for (uint32_t v = 0; v < g.vocab; ++v)
            ASSERT_NEAR(got[v], want[p * g.vocab + v], tol) << "position " << p << " token " << v;
    }
    // A position outside the context is refused before anything runs.
    const int32_t id[1] = {0}, pos[1] = {int32_t(g.context)};
    EXPECT_THROW(dec.predict({id, pos}, 1), vktrain::Error);
    // The decoder cannot train.
    TrainerOptions train = o;
    train.inference_only = false;
    EXPECT_THROW(Trainer(vkt_test::context(), Model::gpt_decoder(g), train), vktrain::Error);
}

INSTANTIATE_TEST_SUITE_P(Precisions, GptDecode, testing::Values(Precision::fp32, Precision::mixed),
                         [](const auto& p) { return p.param == Precision::fp32 ? "fp32" : "mixed"; });

} // namespace
