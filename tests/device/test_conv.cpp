// Convolution as implicit GEMM: forward, data gradient and weight gradient on every path, against a
// double-precision CPU reference fed the same (fp16-rounded) inputs, with a tolerance from the reduction
// length (2·γ_K·Σ|a·b| plus the output rounding), on odd shapes (stride, padding, dilation, groups,
// depthwise, 1x1, the CNN recipe's 5x5 layers), operands at non-zero offsets and accumulate mode. The GEMM is
// forced for the depthwise shape too; test_depthwise_conv.cpp covers the depthwise kernel.
#include <cmath>
#include <cstring>
#include <functional>

#include "device/conv_reference.hpp"
#include "device/support.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm_autotune.hpp"
#include "runtime/context_access.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::Conv2dShape;
using vktrain::kernels::ConvDirection;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
using vktrain::kernels::TiledLoop;

struct NamedShape {
    const char* name;
    Conv2dShape s;
};

Conv2dShape make_shape(uint32_t n, uint32_t c_in, uint32_t h, uint32_t w, uint32_t c_out, uint32_t kh, uint32_t kw,
                       uint32_t sh = 1, uint32_t sw = 1, uint32_t ph = 0, uint32_t pw = 0, uint32_t dh = 1,
                       uint32_t dw = 1, uint32_t groups = 1) {
    return vkt_test::conv_shape(n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw, dh, dw, groups);
}

const NamedShape k_shapes[] = {
    {"odd", make_shape(2, 3, 7, 9, 5, 3, 2, 2, 1, 1, 2, 1, 2)},
    {"groups2", make_shape(2, 4, 7, 6, 6, 3, 3, 2, 2, 1, 0, 1, 1, 2)},
    {"depthwise", make_shape(2, 4, 8, 7, 4, 3, 3, 1, 2, 1, 1, 1, 1, 4)},
    {"pointwise", make_shape(3, 5, 4, 6, 7, 1, 1)},
    {"recipe1", make_shape(2, 1, 28, 28, 32, 5, 5, 1, 1, 2, 2)},
    {"recipe2", make_shape(2, 32, 14, 14, 64, 5, 5, 1, 1, 2, 2)},
    // The register blocks walk k as nested loops and decompose columns once per block: dilation and stride along
    // both axes with padding wider than the dilated tap, ResNet's strided 3x3 and 1x1 (downsample) on odd planes.
    {"dilated", make_shape(3, 3, 9, 8, 4, 3, 2, 3, 2, 2, 1, 2, 3)},
    {"strided3x3", make_shape(2, 8, 9, 10, 12, 3, 3, 2, 2, 1, 1)},
    {"down1x1", make_shape(2, 6, 7, 8, 10, 1, 1, 2, 2)},
};

struct Case {
    GemmPath path;
    DType out;
    ConvDirection dir;
    size_t shape;
    bool accumulate;
    TiledLoop loop;
};

std::string path_name(GemmPath p) {
    return p == GemmPath::coopmat ? "coopmat" : p == GemmPath::tiled_fp16 ? "tiled" : "fp32";
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
    const Case& c = info.param;
    const char* dir = c.dir == ConvDirection::forward         ? "fwd"
                      : c.dir == ConvDirection::backward_data ? "bwd_data"
                                                              : "bwd_weight";
    return path_name(c.path) + "_" + vktrain::kernels::dtype_name(c.out) + "_" + dir + "_" + k_shapes[c.shape].name +
           (c.accumulate ? "_acc" : "") + (c.loop == TiledLoop::shared_memory ? "_smem" : "");
}

class ConvTest : public testing::TestWithParam<Case> {};

TEST_P(ConvTest, MatchesDoubleReference) {
    const Case& c = GetParam();
    if (c.path == GemmPath::coopmat) VKT_REQUIRE_COOPMAT();
    if (c.path != GemmPath::fp32) VKT_REQUIRE_FP16();
    vkt_test::ForceTiledLoop force(c.loop);
    // Depthwise shapes run on the context without the depthwise kernel: this tests the implicit GEMM.
    const auto& s = k_shapes[c.shape].s;
    vktrain::Context* on = vktrain::kernels::is_depthwise(s) ? &vkt_test::gemm_conv_context() : nullptr;
    vkt_test::check_conv2d(c.path, c.out, c.dir, s, c.accumulate, 100 + uint32_t(c.shape), 0, on);
}

std::vector<Case> all_cases() {
    std::vector<Case> out;
    const std::pair<GemmPath, DType> paths[] = {{GemmPath::fp32, DType::f32},
                                                {GemmPath::tiled_fp16, DType::f16},
                                                {GemmPath::tiled_fp16, DType::f32},
                                                {GemmPath::coopmat, DType::f16},
                                                {GemmPath::coopmat, DType::f32}};
    for (auto [path, d] : paths)
        for (ConvDirection dir : {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight})
            for (size_t shape = 0; shape < std::size(k_shapes); ++shape) {
                out.push_back({path, d, dir, shape, false, TiledLoop::automatic});
                if (shape < 2) out.push_back({path, d, dir, shape, true, TiledLoop::automatic});
                // The other loop of the tiled paths (CPU devices choose register blocks, GPUs shared memory).
                if (path != GemmPath::coopmat && (shape == 0 || shape == 2))
                    out.push_back({path, d, dir, shape, false, TiledLoop::shared_memory});
            }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Conv, ConvTest, testing::ValuesIn(all_cases()), case_name);

// Every tile configuration of every path (what choose_conv_tile picks among: register blocks of several sizes on
// CPU devices, shared-memory tiles on GPUs, subgroup layouts for coopmat) in all three directions, on shapes whose
// sizes are multiples of no tile.
TEST(ConvTiles, EveryConfigurationMatchesReference) {
    auto& dev = vkt_test::device();
    const std::pair<GemmPath, DType> paths[] = {
        {GemmPath::fp32, DType::f32}, {GemmPath::tiled_fp16, DType::f16}, {GemmPath::coopmat, DType::f32}};
    const size_t shapes[] = {0, 6, 7}; // odd, dilated, strided3x3
    for (auto [path, out] : paths) {
        if (path == GemmPath::coopmat && !dev.coopmat_enabled()) continue;
        if (path != GemmPath::fp32 && !dev.fp16_enabled()) continue;
        for (ConvDirection dir : {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight})
            for (size_t shape : shapes) {
                const Conv2dShape& s = k_shapes[shape].s;
                const auto configs = vktrain::kernels::conv_configs(dev, path, dir, s, out);
                for (uint32_t t = 0; t < configs.size(); ++t) {
                    SCOPED_TRACE(path_name(path) + " " + vktrain::kernels::to_string(dir) + " " + k_shapes[shape].name +
                                 " tiles " + configs[t].tile_name());
                    vkt_test::check_conv2d(path, out, dir, s, shape == 0, 200 + uint32_t(shape), t);
                }
            }
    }
}

// A Trainer with tuning on reports tuned tiles for every convolution site (all three directions), and trains to the
// same weights as with the default tiles, bit for bit (fp32 path).
TEST(ConvTiles, TunedTrainerMatchesTheDefaultTilesBitForBit) {
    vktrain::Model m;
    int x = m.input("x", {2 * 9 * 10});
    x = m.reshape(m.linear(x, 2 * 9 * 10), {2, 9, 10}); // so that the convolution's input gradient is computed too
    x = m.relu(m.conv2d(x, 5, vktrain::Conv2dOptions::square(3, 2, 1)));
    x = m.linear(m.flatten(x), 3);
    m.softmax_cross_entropy(x);
    const uint32_t batch = 4;
    const auto xs = vkt_test::random_values(size_t(batch) * 180, 31);
    const std::vector<int32_t> labels = {0, 2, 1, 2};
    std::vector<std::vector<vktrain::Parameter>> weights;
    for (bool tune : {false, true}) {
        auto o = vkt_test::context_options();
        o.tune_gemm_tiles = tune;
        vktrain::Context ctx(o);
        vktrain::TrainerOptions t;
        t.precision = vktrain::Precision::fp32;
        t.batch_size = batch;
        t.seed = 3;
        vktrain::Trainer trainer(ctx, m, t);
        size_t conv_sites = 0;
        for (const auto& g : trainer.gemm_paths()) {
            if (g.shape.rfind("conv_", 0) != 0) continue;
            ++conv_sites;
            EXPECT_FALSE(g.tiles.empty()) << g.site;
            EXPECT_NE(g.tile_reason.find(tune ? "tuned" : "default"), std::string::npos) << g.tile_reason;
        }
        EXPECT_EQ(conv_sites, 3u); // forward, input gradient, weight gradient
        for (int step = 0; step < 2; ++step) trainer.step(xs.data(), labels.data(), batch);
        weights.push_back(trainer.parameters());
    }
    ASSERT_EQ(weights[0].size(), weights[1].size());
    for (size_t i = 0; i < weights[0].size(); ++i) {
        const auto &a = weights[0][i].data, &b = weights[1][i].data;
        ASSERT_EQ(a.size(), b.size());
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << weights[0][i].name;
    }
}

// Start-up tuning is bounded: once a device has spent kernels::k_tile_tuning_budget_s timing convolution tiles, new
// problems run the default tiles (uncached and unmemoized, so a later run tunes them); GEMM shapes are not budgeted.
TEST(ConvTiles, TuningStopsAtTheDeviceBudget) {
    auto o = vkt_test::context_options();
    o.cache_dir = "none";
    vktrain::Context ctx(o);
    auto& dev = vktrain::detail::ContextAccess::device(ctx);
    vktrain::kernels::ConvProblem p;
    p.direction = ConvDirection::forward;
    p.shape = k_shapes[7].s;
    p.out = DType::f32;
    const auto configs = vktrain::kernels::conv_configs(dev, GemmPath::fp32, p.direction, p.shape, p.out);
    if (configs.size() < 2) GTEST_SKIP() << "one tile configuration: nothing to tune";
    dev.tile_tuning_seconds() = vktrain::kernels::k_tile_tuning_budget_s;
    const auto spent = vktrain::kernels::choose_conv_tile(dev, GemmPath::fp32, p);
    EXPECT_EQ(spent.tile, 0u);
    EXPECT_TRUE(spent.us.empty());
    EXPECT_NE(spent.reason.find("budget"), std::string::npos) << spent.reason;
    dev.tile_tuning_seconds() = 0;
    const auto tuned = vktrain::kernels::choose_conv_tile(dev, GemmPath::fp32, p);
    EXPECT_NE(tuned.reason.find("tuned (measured)"), std::string::npos) << tuned.reason;
    EXPECT_EQ(tuned.us.size(), configs.size());
    EXPECT_GT(dev.tile_tuning_seconds(), 0.0);
    dev.tile_tuning_seconds() = vktrain::kernels::k_tile_tuning_budget_s;
    const vktrain::kernels::GemmShape g{false, false, 40, 72, 24, DType::f32};
    if (vktrain::kernels::gemm_shape_configs(dev, GemmPath::fp32, g).size() > 1) {
        const auto gemm = vktrain::kernels::choose_gemm_tile(dev, GemmPath::fp32, g);
        EXPECT_NE(gemm.reason.find("tuned (measured)"), std::string::npos) << gemm.reason;
    }
}

TEST(ConvShape, OutputSizeAndValidation) {
    Conv2dShape s = make_shape(2, 3, 7, 9, 5, 3, 2, 2, 1, 1, 2, 1, 2);
    EXPECT_EQ(s.out_h(), 4u);  // (7 + 2 - 2 - 1) / 2 + 1
    EXPECT_EQ(s.out_w(), 11u); // (9 + 4 - 2 - 1) / 1 + 1
    EXPECT_NO_THROW(s.validate());
    auto bad = [](Conv2dShape t) {
        try {
            t.validate();
        } catch (const vktrain::Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    Conv2dShape t = s;
    t.groups = 2; // does not divide c_in = 3
    EXPECT_NE(bad(t).find("groups (2) must divide c_in (3)"), std::string::npos) << bad(t);
    t = s;
    t.stride_w = 0;
    EXPECT_NE(bad(t).find("stride_w must be positive"), std::string::npos) << bad(t);
    t = s;
    t.kh = 12; // 12 > 7 + 2
    EXPECT_NE(bad(t).find("more than the 9x13 padded input"), std::string::npos) << bad(t);
    t = s;
    t.n = 1u << 20, t.c_in = 1u << 10; // x would have 2^30 · 63 elements
    EXPECT_NE(bad(t).find("at most 2^31 - 1"), std::string::npos) << bad(t);
}

TEST(ConvShape, RecordRefusesMismatchedOperands) {
    auto& dev = vkt_test::device();
    const Conv2dShape s = make_shape(1, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1);
    auto buf = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    const MatRef x{&buf, DType::f32, 1, 32}, w{&buf, DType::f32, 3, 18}, y{&buf, DType::f32, 1, 48};
    EXPECT_NO_THROW(vktrain::kernels::record_conv2d_forward(dev, seq, GemmPath::fp32, s, x, w, y));
    try {
        vktrain::kernels::record_conv2d_forward(dev, seq, GemmPath::fp32, s, x, MatRef{&buf, DType::f32, 3, 9}, y);
        ADD_FAILURE() << "a wrong weight shape was accepted";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("conv_fwd: w is 3x9, expected 3x18"), std::string::npos) << e.what();
    }
    EXPECT_THROW(vktrain::kernels::record_conv2d_backward_weight(dev, seq, GemmPath::tiled_fp16, s, y, x, w),
                 vktrain::Error); // fp32 operands on an fp16 path
    seq.end();
}

// Path choice for convolutions: keyed like GEMM shapes; forced paths pass through, auto measures both
// fp16 paths where cooperative matrix is usable and otherwise takes the tiled path.
TEST(ConvAutotune, ChoosesAndTimesPaths) {
    auto& dev = vkt_test::device();
    vktrain::kernels::ConvProblem p;
    p.direction = ConvDirection::backward_weight;
    p.shape = make_shape(2, 3, 7, 9, 5, 3, 2, 2, 1, 1, 2, 1, 2);
    p.out = DType::f32;
    EXPECT_EQ(p.key(), "conv_bwd_weight:n=2,c=3,h=7,w=9,oc=5,k=3x2,s=2x1,p=1x2,d=1x2,g=1,out=f32");
    const auto forced = vktrain::kernels::choose_conv_path(dev, GemmPath::fp32, p);
    EXPECT_EQ(forced.path, GemmPath::fp32);
    EXPECT_GT(vktrain::kernels::time_conv(dev, GemmPath::fp32, p, 1), 0.0);
    if (!vkt_test::context().fp16_available()) return;
    const auto chosen = vktrain::kernels::choose_conv_path(dev, GemmPath::auto_select, p);
    if (vkt_test::context().coopmat_available()) {
        EXPECT_GT(chosen.coopmat_us, 0.0);
        EXPECT_GT(chosen.tiled_us, 0.0);
        EXPECT_TRUE(chosen.path == GemmPath::coopmat || chosen.path == GemmPath::tiled_fp16);
    } else {
        EXPECT_EQ(chosen.path, GemmPath::tiled_fp16);
    }
}

// The strided data gradient split by stride phase (kernels::uses_stride_phases) against the single gather over every
// tap it replaced, on the same operands: both within tolerance of the exact result (check_conv2d), and bit for bit
// the same on the fp32 and tiled paths (each sum is the gather's without its zero terms, in the same order; coopmat
// groups its products by tile, so there only the tolerance holds). Shapes: ResNet's strided 3x3 and 1x1 (half the
// phases of the 1x1 get no tap: zeros, or dx unchanged when accumulating), grouped, and a 2x3 kernel at stride 3x2
// with padding (a kernel row shorter than the stride: one phase row without taps).
TEST(ConvStridePhases, MatchTheGatherBitForBit) {
    auto& dev = vkt_test::device();
    const Conv2dShape shapes[] = {k_shapes[7].s, k_shapes[8].s, k_shapes[1].s,
                                  make_shape(2, 5, 11, 9, 6, 2, 3, 3, 2, 1, 1)};
    const std::pair<GemmPath, DType> paths[] = {
        {GemmPath::fp32, DType::f32}, {GemmPath::tiled_fp16, DType::f16}, {GemmPath::coopmat, DType::f32}};
    for (auto [path, out] : paths) {
        if (path == GemmPath::coopmat && !dev.coopmat_enabled()) continue;
        if (path != GemmPath::fp32 && !dev.fp16_enabled()) continue;
        for (size_t i = 0; i < std::size(shapes); ++i)
            for (bool accumulate : {false, true}) {
                const Conv2dShape& s = shapes[i];
                SCOPED_TRACE(path_name(path) + " shape " + std::to_string(i) + (accumulate ? " accumulate" : ""));
                ASSERT_TRUE(vktrain::kernels::uses_stride_phases(ConvDirection::backward_data, s));
                const uint32_t seed = 700 + uint32_t(i);
                const auto phases =
                    vkt_test::check_conv2d(path, out, ConvDirection::backward_data, s, accumulate, seed, 0, nullptr);
                const auto gather = vkt_test::check_conv2d(path, out, ConvDirection::backward_data, s, accumulate, seed,
                                                           0, nullptr, false);
                ASSERT_EQ(phases.got.size(), gather.got.size());
                if (path != GemmPath::coopmat) {
                    EXPECT_EQ(std::memcmp(phases.got.data(), gather.got.data(), phases.got.size() * sizeof(float)), 0);
                }
            }
    }
}

// Which convolutions are split: strided, undilated data gradients with at most k_max_stride_phases phases.
TEST(ConvStridePhases, Selection) {
    using vktrain::kernels::uses_stride_phases;
    const Conv2dShape strided = k_shapes[7].s; // 3x3 stride 2
    EXPECT_TRUE(uses_stride_phases(ConvDirection::backward_data, strided));
    EXPECT_FALSE(uses_stride_phases(ConvDirection::forward, strided));
    EXPECT_FALSE(uses_stride_phases(ConvDirection::backward_weight, strided));
    EXPECT_FALSE(uses_stride_phases(ConvDirection::backward_data, k_shapes[5].s)); // stride 1
    EXPECT_FALSE(uses_stride_phases(ConvDirection::backward_data, k_shapes[6].s)); // dilated
    EXPECT_TRUE(uses_stride_phases(ConvDirection::backward_data, make_shape(1, 2, 16, 16, 2, 4, 4, 4, 4)));
    EXPECT_FALSE(uses_stride_phases(ConvDirection::backward_data, make_shape(1, 2, 16, 16, 2, 5, 5, 5, 5)));
}

} // namespace
