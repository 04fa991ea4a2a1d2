// The fusions of graph/fusion.hpp against the unfused kernels (a context with ContextOptions::allow_fusion off): a
// GPT's loss, every gradient, its logits in evaluation mode and a few optimizer steps are the same bits fused and
// unfused, on every GEMM path (fp32, tiled fp16 with shared-memory tiles, cooperative matrix), for both GELU forms; and
// the fused step runs the expected number of fewer dispatches. The kernels' own accuracy is tested against references
// elsewhere (test_gemm.cpp, test_layer_norm.cpp, test_elementwise.cpp, test_gpt.cpp's finite differences).
#include <cstring>
#include <tuple>

#include "device/support.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::GptActivation;
using vktrain::GptOptions;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::kernels::TiledLoop;

GptOptions small(GptActivation act) {
    GptOptions g;
    g.vocab = 11;
    g.layers = 2;
    g.heads = 2;
    g.width = 16;
    g.context = 6;
    g.mlp = 20;
    g.activation = act;
    return g;
}

std::vector<int32_t> tokens(size_t n, int32_t vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> out(n);
    for (auto& t : out) t = int32_t(rng() % uint32_t(vocab));
    return out;
}

void expect_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && differ++ == 0) first = i;
    EXPECT_EQ(differ, 0u) << what << ": " << differ << " of " << a.size() << " differ, first [" << first
                          << "]: " << a[first] << " fused vs " << b[first] << " unfused";
}

// precision, GEMM path (mixed), tiled loop, GELU form
using Case = std::tuple<Precision, GemmPath, TiledLoop, GptActivation>;
class FusedGpt : public testing::TestWithParam<Case> {};

TEST_P(FusedGpt, SameBitsAsUnfusedAndFewerDispatches) {
    const auto [precision, path, loop, act] = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    if (path == GemmPath::coopmat) VKT_REQUIRE_COOPMAT();
    const vkt_test::ForceTiledLoop forced(loop);
    const GptOptions g = small(act);
    TrainerOptions o;
    o.precision = precision;
    o.gemm_path = path;
    o.batch_size = 3;
    o.seed = 7;
    Trainer fused(vkt_test::context(), Model::gpt(g), o);
    auto unfused = std::make_unique<Trainer>(vkt_test::unfused_context(), Model::gpt(g), o);
    // Larger weights than the recipe's init, so every GELU and norm sees a spread of inputs.
    auto params = fused.parameters();
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-0.6f, 0.6f);
    for (auto& p : params)
        for (float& x : p.data) x += u(rng);
    fused.set_parameters(params);
    unfused->set_parameters(params);

    const uint32_t batch = 3;
    const auto ids = tokens(batch * g.context, int32_t(g.vocab), 1), targets = tokens(batch * g.context, 11, 2);
    const std::vector<const void*> in{ids.data(), targets.data()};
    std::vector<std::vector<float>> gf, gu;
    const float lf = fused.compute_gradients(in, batch, gf), lu = unfused->compute_gradients(in, batch, gu);
    EXPECT_EQ(lf, lu);
    ASSERT_EQ(gf.size(), gu.size());
    for (size_t i = 0; i < gf.size(); ++i) expect_bits(gf[i], gu[i], params[i].name + " gradient");
    // Evaluation mode: the GELU's output is written over the pre-activation nobody reads.
    expect_bits(fused.predict(in, batch), unfused->predict(in, batch), "logits");

    // Per layer: GELU forward and backward, two residual adds, two gradient copies.
    const uint32_t df = fused.profile_step(in, batch).dispatches, du = unfused->profile_step(in, batch).dispatches;
    EXPECT_EQ(du - df, 6u * g.layers) << du << " unfused, " << df << " fused";

    for (int s = 0; s < 2; ++s) {
        const auto rf = fused.step(in, batch), ru = unfused->step(in, batch);
        EXPECT_EQ(rf.loss, ru.loss) << "step " << s;
    }
    const auto pf = fused.parameters(), pu = unfused->parameters();
    for (size_t i = 0; i < pf.size(); ++i) expect_bits(pf[i].data, pu[i].data, pf[i].name + " after 2 steps");
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
    const auto [precision, path, loop, act] = info.param;
    std::string s = precision == Precision::fp32 ? "fp32" : path == GemmPath::coopmat ? "mixed_coopmat" : "mixed_tiled";
    s += loop == TiledLoop::shared_memory ? "_shared" : "";
    return s + (act == GptActivation::gelu ? "_gelu_erf" : "_gelu_tanh");
}

INSTANTIATE_TEST_SUITE_P(
    Paths, FusedGpt,
    testing::Values(Case{Precision::fp32, GemmPath::auto_select, TiledLoop::automatic, GptActivation::gelu},
                    Case{Precision::mixed, GemmPath::tiled_fp16, TiledLoop::shared_memory, GptActivation::gelu_tanh},
                    Case{Precision::mixed, GemmPath::coopmat, TiledLoop::automatic, GptActivation::gelu}),
    case_name);

// RMSNorm after a residual add (the Llama blocks' pattern) fuses like LayerNorm, also for rows longer than the
// kernels keep in registers (300 > 256: read again per pass), and an add that is scaled does not fuse.
TEST(Fusion, ResidualNormsSameBitsAndOnlyWhereSafe) {
    const auto build = [](bool scaled, bool rms, int64_t width) {
        Model m;
        const int x = m.input("x", {2, width});
        const int h = m.linear(x, uint32_t(width));
        const int s = scaled ? m.op("add", {x, h}, {{"alpha", 0.5}}) : m.add(x, h);
        const int y = m.linear(rms ? m.rms_norm(s) : m.layer_norm(s), uint32_t(width));
        m.mse_loss(m.add(s, y), m.input("target", {2, width}));
        return m;
    };
    for (const auto& [scaled, rms, width] : {std::tuple{false, true, 12}, std::tuple{true, true, 12},
                                             std::tuple{false, false, 300}, std::tuple{false, true, 300}}) {
        SCOPED_TRACE(std::string(scaled ? "scaled " : "") + (rms ? "rms " : "layer ") + std::to_string(width));
        TrainerOptions o;
        o.precision = Precision::fp32;
        o.batch_size = 2;
        o.seed = 4;
        Trainer fused(vkt_test::context(), build(scaled, rms, width), o);
        auto unfused = std::make_unique<Trainer>(vkt_test::unfused_context(), build(scaled, rms, width), o);
        unfused->set_parameters(fused.parameters());
        const size_t n = size_t(2 * 2 * width);
        const auto x = vkt_test::random_values(n, 5), target = vkt_test::random_values(n, 6);
        const std::vector<const void*> in{x.data(), target.data()};
        std::vector<std::vector<float>> gf, gu;
        EXPECT_EQ(fused.compute_gradients(in, 2, gf), unfused->compute_gradients(in, 2, gu));
        for (size_t i = 0; i < gf.size(); ++i) expect_bits(gf[i], gu[i], "gradient " + std::to_string(i));
        expect_bits(fused.predict(in, 2), unfused->predict(in, 2), "output");
        const uint32_t df = fused.profile_step(in, 2).dispatches, du = unfused->profile_step(in, 2).dispatches;
        // The add and the copy of its second operand's gradient; none for the scaled add.
        EXPECT_EQ(du - df, scaled ? 0u : 2u);
    }
}

} // namespace
