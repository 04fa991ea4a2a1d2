// The tile configurations of each GEMM path (kernels::gemm_configs) and their per-shape tuning
// (kernels::choose_gemm_tile): every configuration computes the default's result (bit for bit on the tiled
// and fp32 paths, whose every output element is the same fma chain over k in the same order), and tuning
// times each one, keeps the fastest, caches it by name and reuses it.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "device/support.hpp"
#include "io/json.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_autotune.hpp"
#include "runtime/context_access.hpp"
#include "runtime/device.hpp"

namespace {

namespace fs = std::filesystem;
using vktrain::GemmPath;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
using vktrain::kernels::TiledLoop;

struct Problem {
    bool ta, tb;
    uint32_t m, n, k;
};

// C = op(A)·op(B) with gemm_configs(...)[tile], as stored bits of the output type.
std::vector<float> run(GemmPath path, DType out, const Problem& p, uint32_t tile) {
    auto& dev = vkt_test::device();
    const DType in = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const uint32_t a_rows = p.ta ? p.k : p.m, a_cols = p.ta ? p.m : p.k;
    const uint32_t b_rows = p.tb ? p.n : p.k, b_cols = p.tb ? p.k : p.n;
    auto a = vkt_test::make_buffer(vkt_test::random_values(size_t(a_rows) * a_cols, 3 + p.m), in);
    auto b = vkt_test::make_buffer(vkt_test::random_values(size_t(b_rows) * b_cols, 4 + p.n), in);
    auto c = vkt_test::make_buffer(std::vector<float>(size_t(p.m) * p.n, 7.0f), out);
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_gemm(dev, seq, path, MatRef{&a, in, a_rows, a_cols}, p.ta, MatRef{&b, in, b_rows, b_cols},
                                  p.tb, MatRef{&c, out, p.m, p.n}, false, tile);
    seq.end();
    seq.submit_and_wait();
    return vkt_test::read_buffer(c, out, size_t(p.m) * p.n);
}

TEST(GemmTiles, EveryConfigurationComputesTheDefaultsResult) {
    // Edges in both directions; n a multiple of 4 (B not transposed) takes the vec4 register blocks; a
    // classifier-head-like narrow output.
    const Problem problems[] = {
        {false, false, 37, 132, 29}, {false, true, 65, 31, 129}, {true, false, 130, 68, 20}, {false, true, 33, 10, 40}};
    auto& dev = vkt_test::device();
    size_t compared = 0;
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat}) {
        if (path == GemmPath::coopmat && !dev.coopmat_enabled()) {
            std::printf("[  NOTE    ] no usable cooperative matrix: its tile configurations are not covered here\n");
            continue;
        }
        if (path != GemmPath::fp32 && !dev.fp16_enabled()) continue;
        for (TiledLoop loop : {TiledLoop::registers, TiledLoop::shared_memory}) {
            if (path == GemmPath::coopmat && loop == TiledLoop::shared_memory) continue; // coopmat has one loop
            vkt_test::ForceTiledLoop force(loop);
            for (DType out : {DType::f32, DType::f16}) {
                if (path == GemmPath::fp32 && out == DType::f16) continue;
                for (const Problem& p : problems) {
                    const bool vec4_b = !p.tb && p.n % 4 == 0;
                    const auto configs = vktrain::kernels::gemm_configs(dev, path, out, p.m, p.n, p.k, vec4_b);
                    ASSERT_FALSE(configs.empty());
                    const std::vector<float> want = run(path, out, p, 0);
                    for (uint32_t t = 1; t < configs.size(); ++t) {
                        SCOPED_TRACE(std::string(vktrain::to_string(path)) + " " + configs[t].tile_name() + " " +
                                     std::to_string(p.m) + "x" + std::to_string(p.n) + "x" + std::to_string(p.k) +
                                     (p.ta   ? " AtB"
                                      : p.tb ? " ABt"
                                             : " AB") +
                                     " out " + vktrain::kernels::dtype_name(out));
                        const std::vector<float> got = run(path, out, p, t);
                        ASSERT_EQ(got.size(), want.size());
                        size_t bad = 0;
                        for (size_t i = 0; i < got.size(); ++i) {
                            // coopmat: the device's own matrix multiply-add may order its sums per layout.
                            const bool same = path == GemmPath::coopmat
                                                  ? std::fabs(got[i] - want[i]) <= 1e-3f * (1.0f + std::fabs(want[i]))
                                                  : std::memcmp(&got[i], &want[i], sizeof(float)) == 0;
                            if (!same && bad++ < 3)
                                ADD_FAILURE() << "C[" << i << "] = " << got[i] << ", default tiles " << want[i];
                        }
                        EXPECT_EQ(bad, 0u);
                        ++compared;
                    }
                }
            }
        }
    }
    EXPECT_GT(compared, 0u); // every path has more than one configuration on these shapes
}

TEST(GemmTiles, OutOfRangeTileRunsTheDefault) {
    auto& dev = vkt_test::device();
    const auto configs = vktrain::kernels::gemm_configs(dev, GemmPath::fp32, DType::f32, 20, 20, 20);
    const auto past =
        vktrain::kernels::gemm_config(dev, GemmPath::fp32, DType::f32, 20, 20, 20, false, uint32_t(configs.size()));
    EXPECT_EQ(past.tile_name(), configs.front().tile_name());
}

TEST(GemmTiles, TuningTimesEveryConfigurationKeepsTheFastestAndCachesIt) {
    const std::string dir = vkt_test::temp_dir("gemmtiles");
    auto o = vkt_test::context_options();
    o.cache_dir = dir;
    const vktrain::kernels::GemmShape shape{false, true, 48, 40, 64, DType::f32};
    const std::string key = std::string("fp32|") + shape.key();
    std::string chosen;
    {
        vktrain::Context ctx(o);
        auto& dev = vktrain::detail::ContextAccess::device(ctx);
        const auto configs = vktrain::kernels::gemm_shape_configs(dev, GemmPath::fp32, shape);
        ASSERT_GT(configs.size(), 1u);
        const auto first = vktrain::kernels::choose_gemm_tile(dev, GemmPath::fp32, shape);
        EXPECT_FALSE(first.cached);
        ASSERT_EQ(first.us.size(), configs.size());
        for (double us : first.us) EXPECT_GT(us, 0.0);
        for (double us : first.us) EXPECT_LE(first.us[first.tile], us);
        EXPECT_EQ(first.name, configs[first.tile].tile_name());
        chosen = first.name;
        // The same device remembers it without reading the file.
        const auto again = vktrain::kernels::choose_gemm_tile(dev, GemmPath::fp32, shape);
        EXPECT_TRUE(again.cached);
        EXPECT_EQ(again.tile, first.tile);
    }
    // A new context reads the cache file, which names the tiles.
    fs::path file;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().rfind("gemm-tiles-", 0) == 0) file = e.path();
    ASSERT_FALSE(file.empty());
    const vktrain::io::Json cache = vktrain::io::read_json_file(file.string());
    ASSERT_NE(cache.find(key), nullptr) << key;
    EXPECT_EQ(cache.at(key).at("tile").as_string(), chosen);
    {
        vktrain::Context ctx(o);
        const auto cached =
            vktrain::kernels::choose_gemm_tile(vktrain::detail::ContextAccess::device(ctx), GemmPath::fp32, shape);
        EXPECT_TRUE(cached.cached);
        EXPECT_EQ(cached.name, chosen);
        EXPECT_TRUE(cached.us.empty());
    }
    // An entry naming tiles this build does not list is measured again and replaced.
    {
        std::ofstream(file) << "{\"" << key << "\": {\"tile\": \"regs 3x3 wg1\"}}";
        vktrain::Context ctx(o);
        const auto remeasured =
            vktrain::kernels::choose_gemm_tile(vktrain::detail::ContextAccess::device(ctx), GemmPath::fp32, shape);
        EXPECT_FALSE(remeasured.cached);
        EXPECT_NE(remeasured.name, "regs 3x3 wg1");
    }
    fs::remove_all(dir);
}

// A Trainer with tuning on reports the tiles of every GEMM site, and trains to the same weights as with the
// default tiles (bit for bit on the tiled and fp32 paths).
TEST(GemmTiles, TunedTrainerMatchesTheDefaultTilesBitForBit) {
    VKT_REQUIRE_FP16();
    const auto batch = vkt_test::make_batch(32, 24, 5, 11);
    std::vector<std::vector<vktrain::Parameter>> weights;
    for (bool tune : {false, true}) {
        auto o = vkt_test::context_options();
        o.tune_gemm_tiles = tune;
        vktrain::Context ctx(o);
        vktrain::TrainerOptions t;
        t.precision = vktrain::Precision::mixed;
        t.gemm_path = GemmPath::tiled_fp16;
        t.batch_size = 32;
        vktrain::Trainer trainer(ctx, vktrain::Model::mlp(24, {20, 12}, 5), t);
        for (const auto& g : trainer.gemm_paths()) {
            EXPECT_FALSE(g.tiles.empty()) << g.site;
            EXPECT_NE(g.tile_reason.find(tune ? "tuned" : "default"), std::string::npos) << g.tile_reason;
        }
        for (int step = 0; step < 3; ++step) trainer.step(batch.x.data(), batch.labels.data(), 32);
        weights.push_back(trainer.parameters());
    }
    ASSERT_EQ(weights[0].size(), weights[1].size());
    for (size_t i = 0; i < weights[0].size(); ++i) {
        const auto &a = weights[0][i].data, &b = weights[1][i].data;
        ASSERT_EQ(a.size(), b.size());
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << weights[0][i].name;
    }
}

} // namespace
