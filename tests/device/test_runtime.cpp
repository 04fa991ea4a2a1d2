// The runtime around the kernels: device listing and choice, capability switches (forbid coopmat, force
// fp32), several contexts at once, memory accounting, and the per-device caches.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "device/support.hpp"
#include "runtime/context_access.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_autotune.hpp"
#include "runtime/pipeline.hpp"
#include "vktrain/trainer.hpp"
#include "error_text.hpp"

namespace {

using vkt_test::error_of;

namespace fs = std::filesystem;
using vktrain::GemmPath;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;

TEST(Runtime, ListDevicesReportsCapabilities) {
    const auto devices = vktrain::list_devices(vkt_test::context_options());
    ASSERT_FALSE(devices.empty());
    for (const auto& d : devices) {
        EXPECT_FALSE(d.name.empty());
        EXPECT_GT(d.subgroup_size, 0u);
        EXPECT_LE(d.min_subgroup_size, d.subgroup_size);
        EXPECT_GE(d.max_subgroup_size, d.subgroup_size);
        EXPECT_GE(d.max_shared_memory, 16384u); // the Vulkan minimum
        if (d.coopmat_feature) {
            EXPECT_FALSE(d.coopmat_shapes.empty()) << d.name;
        }
        for (const auto& s : d.coopmat_shapes) EXPECT_TRUE(s.m > 0 && s.n > 0 && s.k > 0);
    }
    // The context's device is one of them, with the same capabilities.
    const auto& mine = vkt_test::context().device_info();
    ASSERT_LT(mine.index, devices.size());
    EXPECT_EQ(devices[mine.index].name, mine.name);
    EXPECT_EQ(devices[mine.index].coopmat_shapes.size(), mine.coopmat_shapes.size());
}

TEST(Runtime, BadDeviceChoiceIsAClearError) {
    auto o = vkt_test::context_options();
    o.device_index = 99;
    EXPECT_NE(error_of([&] { vktrain::Context c(o); }).find("device index 99 is out of range"), std::string::npos);
    o = vkt_test::context_options();
    o.device_name = "no-such-gpu";
    EXPECT_NE(error_of([&] { vktrain::Context c(o); }).find("no Vulkan device name contains 'no-such-gpu'"),
              std::string::npos);
}

// Two contexts (two VkDevices) alive and working at once: nothing in vktrain is global.
TEST(Runtime, ContextsCoexist) {
    vktrain::Context second(vkt_test::context_options());
    for (vktrain::Context* c : {&vkt_test::context(), &second}) {
        auto& dev = vktrain::detail::ContextAccess::device(*c);
        vktrain::runtime::Buffer a(dev, 4 * 4, vktrain::runtime::MemoryKind::readback, "a");
        vktrain::runtime::Buffer cbuf(dev, 4 * 4, vktrain::runtime::MemoryKind::readback, "c");
        const float av[4] = {1, 2, 3, 4};
        a.write(av, sizeof av);
        vktrain::runtime::Sequence seq(dev);
        seq.begin();
        // C (2×2) = A (2×2) · Aᵀ
        vktrain::kernels::record_gemm(dev, seq, GemmPath::fp32, MatRef{&a, DType::f32, 2, 2}, false,
                                      MatRef{&a, DType::f32, 2, 2}, true, MatRef{&cbuf, DType::f32, 2, 2});
        seq.end();
        seq.submit_and_wait();
        float cv[4];
        cbuf.read(cv, sizeof cv);
        EXPECT_EQ(cv[0], 5.0f);
        EXPECT_EQ(cv[1], 11.0f);
        EXPECT_EQ(cv[3], 25.0f);
    }
}

TEST(Runtime, ForbiddingCoopmatForcesTheTiledPath) {
    VKT_REQUIRE_FP16();
    auto o = vkt_test::context_options();
    o.allow_coopmat = false;
    vktrain::Context ctx(o);
    EXPECT_FALSE(ctx.coopmat_available());
    vktrain::TrainerOptions t;
    t.batch_size = 8;
    vktrain::Trainer trainer(ctx, vktrain::Model::mlp(16, {8}, 4), t);
    for (const auto& g : trainer.gemm_paths()) EXPECT_EQ(g.path, GemmPath::tiled_fp16) << g.site;
    EXPECT_EQ(trainer.gemm_path_summary(), "tiled-fp16");
    t.gemm_path = GemmPath::coopmat;
    EXPECT_NE(error_of([&] {
                  vktrain::Trainer x(ctx, vktrain::Model::mlp(16, {8}, 4), t);
              }).find("GEMM path coopmat was requested"),
              std::string::npos);
}

TEST(Runtime, DisablingFp16LeavesOnlyFp32) {
    auto o = vkt_test::context_options();
    o.allow_fp16 = false;
    vktrain::Context ctx(o);
    EXPECT_FALSE(ctx.fp16_available());
    EXPECT_FALSE(ctx.coopmat_available());
    vktrain::TrainerOptions t;
    t.batch_size = 4;
    EXPECT_NE(error_of([&] {
                  vktrain::Trainer x(ctx, vktrain::Model::mlp(6, {5}, 3), t);
              }).find("mixed precision needs 16-bit storage"),
              std::string::npos);
    t.precision = vktrain::Precision::fp32;
    vktrain::Trainer fp32(ctx, vktrain::Model::mlp(6, {5}, 3), t);
    EXPECT_EQ(fp32.gemm_path_summary(), "fp32");
}

TEST(Runtime, MemoryIsAccountedAndReturned) {
    auto& ctx = vkt_test::context();
    const uint64_t before = ctx.allocated_bytes();
    {
        vktrain::runtime::Buffer b(vktrain::detail::ContextAccess::device(ctx), 1 << 20,
                                   vktrain::runtime::MemoryKind::device, "big");
        EXPECT_GE(ctx.allocated_bytes(), before + (1 << 20));
        EXPECT_GE(ctx.peak_allocated_bytes(), before + (1 << 20));
    }
    EXPECT_EQ(ctx.allocated_bytes(), before);
}

// The pipeline cache is written per device and driver when the context goes away, and reused.
TEST(Runtime, PipelineCacheIsPersisted) {
    const std::string dir = vkt_test::temp_dir("pipelines");
    auto o = vkt_test::context_options();
    o.cache_dir = dir;
    std::string file;
    {
        vktrain::Context ctx(o);
        vktrain::TrainerOptions t;
        t.precision = vktrain::Precision::fp32;
        t.batch_size = 4;
        vktrain::Trainer trainer(ctx, vktrain::Model::mlp(6, {5}, 3), t);
        file = vktrain::detail::ContextAccess::device(ctx).pipelines().file_path();
        EXPECT_GT(vktrain::detail::ContextAccess::device(ctx).pipelines().size(), 0u);
    }
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_GT(fs::file_size(file), 0u);
    vktrain::Context again(o); // loads the file without complaint (a warning would fail under validation)
    fs::remove_all(dir);
}

// In auto mode the measured choice is stored per device and driver and reused.
TEST(Runtime, AutoGemmChoiceIsMeasuredOnceThenCached) {
    VKT_REQUIRE_COOPMAT();
    const std::string dir = vkt_test::temp_dir("gemmpaths");
    auto o = vkt_test::context_options();
    o.cache_dir = dir;
    vktrain::Context ctx(o);
    const vktrain::kernels::GemmShape shape{false, true, 32, 24, 40, DType::f16};
    const auto first =
        vktrain::kernels::choose_gemm_path(vktrain::detail::ContextAccess::device(ctx), GemmPath::auto_select, shape);
    EXPECT_FALSE(first.cached);
    EXPECT_GT(first.coopmat_us, 0.0);
    EXPECT_GT(first.tiled_us, 0.0);
    const auto second =
        vktrain::kernels::choose_gemm_path(vktrain::detail::ContextAccess::device(ctx), GemmPath::auto_select, shape);
    EXPECT_TRUE(second.cached);
    EXPECT_EQ(second.path, first.path);
    EXPECT_NE(second.reason.find("cached"), std::string::npos);
    fs::remove_all(dir);
}

// A cache file of valid JSON with the wrong types is a warning naming the file, never a failed run: the shape is
// measured again and the entry replaced.
TEST(Runtime, MalformedGemmPathCacheIsMeasuredAgain) {
    VKT_REQUIRE_COOPMAT();
    const std::string dir = vkt_test::temp_dir("badcache");
    auto o = vkt_test::context_options();
    o.cache_dir = dir;
    std::vector<std::string> warnings;
    o.log = [&](vktrain::LogLevel level, vktrain::LogSource, const std::string& m) {
        if (level == vktrain::LogLevel::warning) warnings.push_back(m);
    };
    o.log_level = vktrain::LogLevel::warning;
    vktrain::Context ctx(o);
    const vktrain::kernels::GemmShape shape{false, true, 16, 8, 24, DType::f16};
    const auto measured =
        vktrain::kernels::choose_gemm_path(vktrain::detail::ContextAccess::device(ctx), GemmPath::auto_select, shape);
    ASSERT_FALSE(measured.cached);
    const std::string file = dir + "/gemm-paths-" + vktrain::detail::ContextAccess::device(ctx).cache_key() + ".json";
    ASSERT_TRUE(fs::exists(file));
    for (const char* bad : {"{\"%s\": {\"path\": 7, \"coopmat_us\": \"x\", \"tiled_us\": null}}", "{\"%s\": [1, 2]}",
                            "{\"%s\": {\"path\": \"warp\"}}"}) {
        char text[512];
        std::snprintf(text, sizeof text, bad, shape.key().c_str());
        std::ofstream(file) << text;
        warnings.clear();
        const auto again = vktrain::kernels::choose_gemm_path(vktrain::detail::ContextAccess::device(ctx),
                                                              GemmPath::auto_select, shape);
        EXPECT_FALSE(again.cached) << text;
        ASSERT_EQ(warnings.size(), 1u) << text;
        EXPECT_NE(warnings[0].find(file), std::string::npos) << warnings[0];
        // ...and the entry was replaced by a good one.
        EXPECT_TRUE(vktrain::kernels::choose_gemm_path(vktrain::detail::ContextAccess::device(ctx),
                                                       GemmPath::auto_select, shape)
                        .cached)
            << text;
    }
    fs::remove_all(dir);
}

} // namespace
