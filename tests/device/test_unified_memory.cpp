// Unified memory (integrated GPUs, CPU devices such as lavapipe): the host writes the weights and reads the gradients
// where the device has them, with no staging copies. Training must be bit-identical to the staged path of discrete
// GPUs, and the device memory of the staging and readback buffers must be gone.
#include <cstring>
#include <string>
#include <vector>

#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Context;
using vktrain::ContextOptions;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

struct TrainRun {
    std::vector<float> losses;
    std::vector<vktrain::Parameter> params;
    std::vector<std::pair<std::string, std::vector<float>>> state;
    std::vector<float> prediction;
    uint64_t uploads = 0, upload_bytes = 0;
    uint64_t peak = 0;
};

TrainRun train(bool unified, Precision precision, const Model& model) {
    ContextOptions co = vkt_test::context_options();
    co.allow_unified_memory = unified;
    Context ctx(co);
    EXPECT_EQ(ctx.unified_memory_available(), unified);
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 16;
    o.seed = 11;
    // One path on both sides: `auto` measures coopmat against tiled per context, and timing noise may pick differently.
    if (precision == Precision::mixed) o.gemm_path = vktrain::GemmPath::tiled_fp16;
    TrainRun r;
    {
        Trainer t(ctx, model, o);
        for (uint32_t s = 0; s < 6; ++s) {
            const vkt_test::Batch b = vkt_test::make_batch(16, 24, 5, 100 + s);
            r.losses.push_back(t.step(b.x.data(), b.labels.data(), 16).loss);
        }
        const vkt_test::Batch b = vkt_test::make_batch(9, 24, 5, 7);
        r.prediction = t.predict(b.x.data(), 9);
        r.params = t.parameters();
        // Written back (state included) and read again: the state goes through the host and back unchanged.
        t.set_parameters(r.params);
        const auto again = t.parameters();
        EXPECT_EQ(again.size(), r.params.size());
        for (size_t i = 0; i < again.size() && i < r.params.size(); ++i)
            EXPECT_EQ(again[i].data, r.params[i].data) << again[i].name;
        r.state = t.optimizer_state();
        r.uploads = t.weight_uploads();
        r.upload_bytes = t.weight_upload_bytes();
    }
    r.peak = ctx.peak_allocated_bytes();
    return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(UnifiedMemory, TrainsBitIdenticallyToStagingCopiesWithLessMemory) {
    const auto& info = vkt_test::context().device_info();
    if (!info.unified_memory)
        GTEST_SKIP() << "device '" << info.name << "' (" << info.type << ") is not unified memory";
    // An MLP, and a small CNN whose BatchNorm running statistics are device state the host reads (parameters())
    // and writes (set_parameters()).
    Model cnn;
    int x = cnn.input("x", {4, 2, 3});
    x = cnn.batch_norm2d(cnn.conv2d(x, 3, vktrain::Conv2dOptions::square(3, 1, 1)));
    cnn.softmax_cross_entropy(cnn.linear(cnn.flatten(cnn.relu(x)), 5));
    for (const Model& model : {Model::mlp(24, {40, 32}, 5), cnn})
        for (Precision p : {Precision::fp32, Precision::mixed}) {
            uint64_t weights = 0, trainable = 0, state = 0;
            for (const auto& pi : model.parameters()) {
                uint64_t n = 1;
                for (int64_t d : pi.shape) n *= uint64_t(d);
                weights += pi.buffer ? 0 : n;
                trainable += pi.trainable && !pi.buffer ? n : 0;
                state += pi.buffer && !pi.counter ? n : 0; // the counter is kept on the host
            }
            if (p == Precision::mixed && !vkt_test::context().fp16_available()) continue;
            SCOPED_TRACE(std::string(p == Precision::mixed ? "mixed " : "fp32 ") + model.describe());
            const TrainRun staged = train(false, p, model);
            const TrainRun unified = train(true, p, model);
            EXPECT_TRUE(same_bits(staged.losses, unified.losses));
            EXPECT_TRUE(same_bits(staged.prediction, unified.prediction));
            ASSERT_EQ(staged.params.size(), unified.params.size());
            for (size_t i = 0; i < staged.params.size(); ++i)
                EXPECT_TRUE(same_bits(staged.params[i].data, unified.params[i].data)) << staged.params[i].name;
            ASSERT_EQ(staged.state.size(), unified.state.size());
            for (size_t i = 0; i < staged.state.size(); ++i)
                EXPECT_TRUE(same_bits(staged.state[i].second, unified.state[i].second)) << staged.state[i].first;
            // The weights were refreshed as often and as much either way: copied, or written in place.
            EXPECT_EQ(staged.uploads, unified.uploads);
            EXPECT_EQ(staged.upload_bytes, unified.upload_bytes);
            // No weight staging (one weight per parameter, in the device's precision), no gradient readback (fp32) and
            // no state transfer buffer (fp32).
            const uint64_t esz = p == Precision::mixed ? 2 : 4;
            EXPECT_GE(staged.peak, unified.peak + weights * esz + trainable * 4 + state * 4)
                << "staged " << staged.peak << " bytes, unified " << unified.peak;
        }
}

TEST(UnifiedMemory, ForbiddingItKeepsTheStagingCopies) {
    ContextOptions co = vkt_test::context_options();
    co.allow_unified_memory = false;
    Context ctx(co);
    EXPECT_FALSE(ctx.unified_memory_available());
    // What the device offers is still reported.
    EXPECT_EQ(ctx.device_info().unified_memory, vkt_test::context().device_info().unified_memory);
    if (ctx.device_info().type == "cpu" || ctx.device_info().type == "integrated") {
        EXPECT_TRUE(ctx.device_info().unified_memory) << ctx.device_info().name;
    } else {
        EXPECT_FALSE(ctx.device_info().unified_memory) << "a " << ctx.device_info().type << " device";
    }
}

} // namespace
