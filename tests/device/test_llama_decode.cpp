// Generation from a Llama over the key/value cache (Model::llama_decoder: grouped-query attention with the rotary
// embeddings at the position, one cached_rotary_attention kernel per layer) against the full-window forward pass of
// Model::llama: the same logits at every position, for multi-head, grouped-query and multi-query attention, head
// sizes below and above the kernel's 64 invocations, and contexts past its 64-key chunks.
#include <cmath>
#include <cstdio>

#include "device/support.hpp"

namespace {

using vktrain::LlamaOptions;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

struct Case {
    const char* name;
    uint32_t heads, kv_heads, width, context;
    float theta;
};

void expect_cached_matches_full(const Case& c, Precision precision) {
    LlamaOptions o;
    o.vocab = 11;
    o.layers = 2;
    o.heads = c.heads;
    o.kv_heads = c.kv_heads;
    o.width = c.width;
    o.intermediate = 24;
    o.context = c.context;
    o.rope_theta = c.theta;
    TrainerOptions t;
    t.precision = precision;
    t.batch_size = 1;
    t.inference_only = true;
    t.seed = 3;
    Trainer full(vkt_test::context(), Model::llama(o), t);
    auto params = full.parameters();
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-0.3f, 0.3f);
    for (auto& p : params)
        for (float& x : p.data) x += u(rng);
    full.set_parameters(params);
    Trainer dec(vkt_test::context(), Model::llama_decoder(o), t);
    std::vector<vktrain::Parameter> dp;
    for (const auto& info : dec.model().parameters()) {
        vktrain::Parameter q{info.name, info.shape, {}};
        for (const auto& p : params)
            if (p.name == info.name) q.data = p.data;
        if (q.data.empty()) q.data.assign(size_t(info.shape[0] * info.shape[1]), 0.0f); // the caches
        dp.push_back(q);
    }
    ASSERT_EQ(dp.size(), params.size() + 2 * o.layers);
    dec.set_parameters(dp);

    std::vector<int32_t> ids(c.context);
    for (auto& id : ids) id = int32_t(rng() % o.vocab);
    const std::vector<int32_t> none(c.context, 0);
    const std::vector<float> want = full.predict({ids.data(), none.data()}, 1); // [context, vocab]
    double scale = 0.0;
    for (float w : want) scale = std::max(scale, double(std::fabs(w)));
    const double tol = (precision == Precision::fp32 ? 1e-5 : 2e-2) * std::max(1.0, scale);
    for (uint32_t p = 0; p < c.context; ++p) {
        const int32_t id[1] = {ids[p]}, pos[1] = {int32_t(p)};
        const std::vector<float> got = dec.predict({id, pos}, 1);
        ASSERT_EQ(got.size(), o.vocab);
        for (uint32_t v = 0; v < o.vocab; ++v)
            ASSERT_NEAR(got[v], want[p * o.vocab + v], tol) << c.name << " position " << p << " token " << v;
    }
    // A position outside the context is refused before anything runs, and the decoder cannot train.
    const int32_t id[1] = {0}, pos[1] = {int32_t(c.context)};
    EXPECT_THROW(dec.predict({id, pos}, 1), vktrain::Error);
    TrainerOptions train = t;
    train.inference_only = false;
    EXPECT_THROW(Trainer(vkt_test::context(), Model::llama_decoder(o), train), vktrain::Error);
}

class LlamaDecode : public testing::TestWithParam<Precision> {};

TEST_P(LlamaDecode, CachedPositionsMatchTheFullForwardPass) {
    if (GetParam() == Precision::mixed) VKT_REQUIRE_FP16();
    // head sizes 8, 16, 80 (two passes of the kernel's 64 columns) and 512 (eight); 70 positions: two chunks of 64.
    const Case cases[] = {{"grouped-query", 4, 2, 32, 70, 10000.0f},
                          {"multi-head", 2, 2, 32, 9, 500000.0f},
                          {"multi-query, head size 80", 2, 1, 160, 12, 1000.0f},
                          {"head size 512 (the largest)", 1, 1, 512, 3, 10000.0f}};
    for (const Case& c : cases) expect_cached_matches_full(c, GetParam());
}

TEST(LlamaDecoder, NamesAndShapes) {
    LlamaOptions o;
    o.vocab = 9;
    o.layers = 1;
    o.heads = 4;
    o.kv_heads = 2;
    o.width = 16;
    o.context = 6;
    o.sequence = 3; // ignored: the caches hold the whole context
    const Model d = Model::llama_decoder(o);
    bool k = false, v = false;
    for (const auto& p : d.parameters()) {
        if (p.name == "model.layers.0.self_attn.cache.k") k = p.shape == std::vector<int64_t>{6, 8} && !p.persistent;
        if (p.name == "model.layers.0.self_attn.cache.v") v = p.shape == std::vector<int64_t>{6, 8} && !p.persistent;
    }
    EXPECT_TRUE(k && v);
    // Every parameter of llama() is the decoder's, under the same name and shape.
    for (const auto& p : Model::llama(o).parameters()) {
        bool found = false;
        for (const auto& q : d.parameters()) found = found || (q.name == p.name && q.shape == p.shape);
        EXPECT_TRUE(found) << p.name;
    }
}

// The decode step's dispatches: one attention kernel per layer (the rotary embeddings and the cache write folded in:
// no rotary dispatch), against the whole-window forward pass it replaces. The counts are printed for the report.
TEST(LlamaDecoder, OneAttentionDispatchPerLayerAndNoRotary) {
    LlamaOptions o;
    o.vocab = 11;
    o.layers = 3;
    o.heads = 4;
    o.kv_heads = 2;
    o.width = 32;
    o.context = 16;
    TrainerOptions t;
    t.precision = Precision::fp32;
    t.batch_size = 1;
    t.inference_only = true;
    Trainer full(vkt_test::context(), Model::llama(o), t);
    Trainer dec(vkt_test::context(), Model::llama_decoder(o), t);
    auto& device = vkt_test::device();
    const int32_t id[1] = {3}, pos[1] = {0};
    dec.predict({id, pos}, 1); // the first call may upload or prepare; count a steady step
    const uint64_t all = device.dispatch_count(""), attention = device.dispatch_count("attention_decode"),
                   rotary = device.dispatch_count("rotary");
    const int32_t pos1[1] = {1};
    dec.predict({id, pos1}, 1);
    const uint64_t step = device.dispatch_count("") - all;
    EXPECT_EQ(device.dispatch_count("attention_decode") - attention, o.layers);
    EXPECT_EQ(device.dispatch_count("rotary"), rotary);
    const std::vector<int32_t> ids(o.context, 1), none(o.context, 0);
    full.predict({ids.data(), none.data()}, 1);
    const uint64_t before = device.dispatch_count("");
    full.predict({ids.data(), none.data()}, 1);
    const uint64_t window = device.dispatch_count("") - before;
    std::printf("[llama decode] %u layers: %llu dispatches per cached token, %llu per whole-window forward pass\n",
                o.layers, static_cast<unsigned long long>(step), static_cast<unsigned long long>(window));
    EXPECT_LT(step, window);

    // The GPT recipe's decoder for comparison (LayerNorm, biases, GELU; one qkv GEMM per layer).
    vktrain::GptOptions g;
    g.vocab = 11;
    g.layers = 3;
    g.heads = 4;
    g.width = 32;
    g.context = 16;
    Trainer gpt(vkt_test::context(), Model::gpt_decoder(g), t);
    gpt.predict({id, pos}, 1);
    const uint64_t g0 = device.dispatch_count(""), ga = device.dispatch_count("attention_decode");
    gpt.predict({id, pos1}, 1);
    EXPECT_EQ(device.dispatch_count("attention_decode") - ga, g.layers);
    std::printf("[gpt decode] %u layers: %llu dispatches per cached token\n", g.layers,
                static_cast<unsigned long long>(device.dispatch_count("") - g0));
}

INSTANTIATE_TEST_SUITE_P(Precisions, LlamaDecode, testing::Values(Precision::fp32, Precision::mixed),
                         [](const auto& p) { return p.param == Precision::fp32 ? "fp32" : "mixed"; });

} // namespace
