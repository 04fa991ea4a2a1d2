// Trainer::profile_step: one entry per op of the training step, in step order, with sane times, and no effect on
// the training state (weights, optimizer state, loss scale, counters) or on the steps that follow.
#include <cstring>
#include <set>

#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::Model;
using vktrain::Precision;
using vktrain::StepProfile;
using vktrain::Trainer;
using vktrain::TrainerOptions;

using vkt_test::Batch;
using vkt_test::make_batch;

TrainerOptions options(Precision p) {
    TrainerOptions o;
    o.precision = p;
    o.batch_size = 8;
    o.seed = 42;
    return o;
}

// The ops of a step of `model`: per linear layer a forward (GEMM and bias add), a weight-grad GEMM, a bias grad and
// (except after the input) an input-grad GEMM; per activation a forward and a backward op, except that a ReLU after a
// Linear runs in its GEMM's epilogue (graph/fusion.hpp); plus the input cast, the loss and (unless the host reads the
// gradients in place, on unified memory) the gradient readback.
// (Weights are uploaded outside the step, only when changed.)
size_t expected_ops(const Model& model) {
    // input cast, loss, (the readback of the gradients where there is no unified memory)
    size_t n = vkt_test::context().unified_memory_available() ? 2 : 3;
    for (const vktrain::Node& node : model.nodes()) {
        if (node.op == "linear") n += 3 + (model.nodes()[size_t(node.inputs[0])].op != "input" ? 1 : 0);
        if (node.op == "relu") n += model.nodes()[size_t(node.inputs[0])].op == "linear" ? 1 : 2;
        // A GELU after a Linear runs in its GEMM's epilogue, and its backward in the next Linear's input-gradient GEMM
        // (graph/fusion.hpp).
        if (node.op == "gelu_tanh") n += model.nodes()[size_t(node.inputs[0])].op == "linear" ? 0 : 2;
    }
    return n;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

void bitwise_equal(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << what;
}

void check_profile(Precision precision) {
    const Model model = Model::mlp(20, {16, 12}, 4);
    const uint32_t batch = 8;
    Trainer t(vkt_test::context(), model, options(precision));
    const Batch b = make_batch(batch, 20, 4, 3);
    t.step(b.x.data(), b.labels.data(), batch); // optimizer state exists and the counters are non-zero

    const auto params = t.parameters();
    const auto state = t.optimizer_state();
    const float scale = t.loss_scale();
    const uint64_t steps = t.steps(), skipped = t.skipped_steps();
    const float lr = t.learning_rate();

    const StepProfile p = t.profile_step(b.x.data(), b.labels.data(), batch);
    const StepProfile again = t.profile_step(b.x.data(), b.labels.data(), 5); // replayed, partial batch

    EXPECT_EQ(p.gpu_timestamps, vkt_test::context().device_info().timestamps);
    ASSERT_EQ(p.ops.size(), expected_ops(model));
    const size_t readback = vkt_test::context().unified_memory_available() ? 0 : 1;
    // 3 linear layers: 3 forward ops + 3·2 + 2 backward ops; 2 ReLUs (fused forward): 2; input cast, loss, readback.
    EXPECT_EQ(p.ops.size(), 15u + readback);
    std::set<std::string> names;
    double sum = 0, gemm = 0;
    size_t gemms = 0;
    for (const auto& op : p.ops) {
        EXPECT_TRUE(names.insert(op.name).second) << "duplicate op " << op.name;
        EXPECT_GE(op.microseconds, 0.0) << op.name;
        if (!p.gpu_timestamps) {
            EXPECT_EQ(op.microseconds, 0.0) << op.name;
        }
        sum += op.microseconds;
        if (contains(op.name, " (gemm ")) {
            gemm += op.microseconds;
            ++gemms;
        }
    }
    EXPECT_EQ(gemms, 8u);
    EXPECT_GT(p.total_microseconds, 0.0);
    if (p.gpu_timestamps) {
        EXPECT_NEAR(sum, p.total_microseconds, 1e-6 * p.total_microseconds + 1e-3);
    }
    EXPECT_LE(gemm, sum);

    // Step order, with the layer names in the op names.
    EXPECT_EQ(p.ops.front().name, "x.cast");
    EXPECT_TRUE(contains(p.ops[1].name, "linear0.forward (gemm ")) << p.ops[1].name;
    EXPECT_TRUE(contains(p.ops[2].name, "linear1.forward (gemm ")) << p.ops[2].name; // relu0 is in linear0's epilogue
    EXPECT_EQ(p.ops[4].name, "loss");
    EXPECT_TRUE(contains(p.ops[5].name, "linear2.weight_grad (gemm ")) << p.ops[5].name;
    EXPECT_EQ(p.ops[6].name, "linear2.bias_grad");
    EXPECT_TRUE(contains(p.ops[7].name, "linear2.input_grad (gemm ")) << p.ops[7].name;
    EXPECT_EQ(p.ops[8].name, "relu1.backward");
    EXPECT_EQ(p.ops[p.ops.size() - 1 - readback].name, "linear0.bias_grad"); // the host checks for inf/NaN
    if (readback) {
        EXPECT_EQ(p.ops.back().name, "readback");
    }
    for (const auto& op : p.ops) EXPECT_FALSE(contains(op.name, "linear0.input_grad")) << "the input needs no gradient";
    for (const char* layer : {"linear0", "linear1", "linear2", "relu0", "relu1"}) {
        size_t n = 0;
        for (const auto& op : p.ops) n += contains(op.name, std::string(layer) + ".");
        EXPECT_EQ(n, contains(layer, "relu") ? 1u : std::string(layer) == "linear0" ? 3u : 4u) << layer;
    }
    if (precision == Precision::fp32) {
        for (const auto& op : p.ops) {
            if (contains(op.name, "(gemm ")) {
                EXPECT_TRUE(contains(op.name, "(gemm fp32)")) << op.name;
            }
        }
    }

    ASSERT_EQ(again.ops.size(), p.ops.size());
    for (size_t i = 0; i < p.ops.size(); ++i) EXPECT_EQ(again.ops[i].name, p.ops[i].name);

    // Measurement only: nothing of the training state changed, bit for bit.
    const auto params_after = t.parameters();
    ASSERT_EQ(params.size(), params_after.size());
    for (size_t i = 0; i < params.size(); ++i) bitwise_equal(params[i].data, params_after[i].data, params[i].name);
    const auto state_after = t.optimizer_state();
    ASSERT_EQ(state.size(), state_after.size());
    for (size_t i = 0; i < state.size(); ++i) {
        EXPECT_EQ(state[i].first, state_after[i].first);
        bitwise_equal(state[i].second, state_after[i].second, state[i].first);
    }
    const float scale_after = t.loss_scale();
    EXPECT_EQ(0, std::memcmp(&scale, &scale_after, sizeof scale));
    EXPECT_EQ(t.steps(), steps);
    EXPECT_EQ(t.skipped_steps(), skipped);
    EXPECT_EQ(t.learning_rate(), lr);

    // ...and the next step is exactly the step an unprofiled twin takes.
    Trainer twin(vkt_test::context(), model, options(precision));
    twin.step(b.x.data(), b.labels.data(), batch);
    const Batch next = make_batch(batch, 20, 4, 4);
    const auto r = t.step(next.x.data(), next.labels.data(), batch);
    const auto r_twin = twin.step(next.x.data(), next.labels.data(), batch);
    EXPECT_EQ(r.loss, r_twin.loss);
    EXPECT_EQ(r.loss_scale, r_twin.loss_scale);
    const auto pt = t.parameters(), pw = twin.parameters();
    for (size_t i = 0; i < pt.size(); ++i) bitwise_equal(pt[i].data, pw[i].data, pt[i].name);
}

TEST(Profile, Fp32StepHasOneTimingPerOpAndChangesNothing) {
    check_profile(Precision::fp32);
}

TEST(Profile, MixedStepHasOneTimingPerOpAndChangesNothing) {
    VKT_REQUIRE_FP16();
    check_profile(Precision::mixed);
}

TEST(Profile, GeluNamesAndBadBatches) {
    const Model model = Model::mlp(6, {5}, 3, vktrain::OpKind::gelu);
    Trainer t(vkt_test::context(), model, options(Precision::fp32));
    const Batch b = make_batch(8, 6, 3, 9);
    const StepProfile p = t.profile_step(b.x.data(), b.labels.data(), 8);
    ASSERT_EQ(p.ops.size(), expected_ops(model));
    // linear0: 3, linear1: 4, input cast, loss and the readback; gelu0 runs in linear0's forward GEMM and linear1's
    // input-gradient GEMM (graph/fusion.hpp)
    EXPECT_EQ(p.ops.size(), vkt_test::context().unified_memory_available() ? 9u : 10u);
    std::set<std::string> names;
    for (const auto& op : p.ops) names.insert(op.name);
    EXPECT_EQ(names.count("gelu0.forward"), 0u);
    EXPECT_EQ(names.count("gelu0.backward"), 0u);
    EXPECT_EQ(names.count("linear1.input_grad (gemm fp32)"), 1u);
    EXPECT_THROW(t.profile_step(b.x.data(), b.labels.data(), 9), vktrain::Error);
    Batch bad = b;
    bad.labels[0] = 3;
    EXPECT_THROW(t.profile_step(bad.x.data(), bad.labels.data(), 8), vktrain::Error);
    EXPECT_EQ(t.steps(), 0u);
}

// StepProfile::dispatches: the compute dispatches of one step, counted where they are recorded. The MLP
// 20 -> 16 -> 12 -> 4 with ReLUs runs one kernel per op of its profile (the readback is a copy): the input cast,
// 3 GEMMs forward (bias and ReLU in their epilogues), the loss, 3 weight-grad GEMMs, 3 bias grads, 2 input-grad GEMMs
// and 2 ReLU backwards: 15. With GELU both the forward and the backward go into GEMM epilogues: 13; unfused
// (ContextOptions::allow_fusion off) 2 more forward and 2 more backward kernels than that. The device update adds
// the gradient scan and one optimizer kernel per parameter tensor (6 here, each small).
TEST(Profile, DispatchesPerStepCountedAndFusionDropsThem) {
    const Batch b = make_batch(8, 20, 4, 3);
    const auto dispatches = [&](vktrain::OpKind act, vktrain::UpdateLocation where, bool fuse = true) {
        TrainerOptions o = options(Precision::fp32);
        o.update_location = where;
        Trainer t(fuse ? vkt_test::context() : vkt_test::unfused_context(), Model::mlp(20, {16, 12}, 4, act), o);
        const uint32_t n = t.profile_step(b.x.data(), b.labels.data(), 8).dispatches;
        t.step(b.x.data(), b.labels.data(), 8); // the count is the step's: profiling again after a step agrees
        EXPECT_EQ(t.profile_step(b.x.data(), b.labels.data(), 5).dispatches, n);
        return n;
    };
    using vktrain::OpKind;
    using vktrain::UpdateLocation;
    EXPECT_EQ(dispatches(OpKind::relu, UpdateLocation::host), 15u);
    EXPECT_EQ(dispatches(OpKind::gelu, UpdateLocation::host), 13u);
    EXPECT_EQ(dispatches(OpKind::gelu, UpdateLocation::host, false), 17u);
    EXPECT_EQ(dispatches(OpKind::relu, UpdateLocation::host, false), 17u);
    EXPECT_EQ(dispatches(OpKind::relu, UpdateLocation::device), 15u + 1u + 6u);
}

} // namespace
