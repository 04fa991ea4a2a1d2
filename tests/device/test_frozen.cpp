// Frozen parameters live only on the device, in the storage precision: the host keeps no fp32 master, gradient,
// optimizer state or upload staging for them (bytes counted through Trainer::memory()), they stay bit-identical
// through training, parameters() / parameter() read them back, set_parameter() writes them, and unfreezing brings
// them back as masters read from the device's copy. Every update strategy (host, pipelined buckets, device) and both
// precisions.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/half.hpp"
#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GptOptions;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::UpdateLocation;

enum class Strategy { host, pipelined, device };
struct Config {
    Strategy strategy;
    Precision precision;
};

std::string config_name(const Config& c) {
    return std::string(c.strategy == Strategy::host        ? "host"
                       : c.strategy == Strategy::pipelined ? "pipelined"
                                                           : "device") +
           (c.precision == Precision::mixed ? "_mixed" : "_fp32");
}

constexpr uint32_t batch = 2;

GptOptions tiny_gpt() {
    GptOptions g;
    g.vocab = 23;
    g.layers = 2;
    g.heads = 2;
    g.width = 16;
    g.context = 8;
    return g;
}

TrainerOptions options(const Config& c) {
    TrainerOptions o;
    o.precision = c.precision;
    o.batch_size = batch;
    o.seed = 5;
    o.optimizer.learning_rate = 0.01f;
    o.update_buckets = c.strategy == Strategy::pipelined ? 3 : 1;
    o.update_location = c.strategy == Strategy::device ? UpdateLocation::device : UpdateLocation::host;
    return o;
}

std::vector<int32_t> tokens(size_t n, int32_t vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> out(n);
    for (auto& t : out) t = int32_t(rng() % uint32_t(vocab));
    return out;
}

void train_steps(Trainer& t, uint32_t steps, uint32_t seed) {
    const GptOptions g = tiny_gpt();
    for (uint32_t i = 0; i < steps; ++i) {
        const auto ids = tokens(batch * g.context, int32_t(g.vocab), seed + 2 * i);
        const auto targets = tokens(batch * g.context, int32_t(g.vocab), seed + 2 * i + 1);
        t.step({ids.data(), targets.data()}, batch);
    }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> through_half(std::vector<float> v) {
    for (float& x : v) x = vktrain::half_to_float(vktrain::float_to_half(x));
    return v;
}

class FrozenParameters : public testing::TestWithParam<Config> {
protected:
    void SetUp() override {
        if (GetParam().precision == Precision::mixed) VKT_REQUIRE_FP16();
    }
};

// The bytes: a model with its blocks and embeddings frozen holds host memory for the trainable rest only, the same
// whether it was frozen in the model (construction) or at run time (Trainer::set_trainable).
TEST_P(FrozenParameters, HostHoldsNoMasterGradientStateOrStagingForThem) {
    const Config c = GetParam();
    const GptOptions g = tiny_gpt();
    Model frozen = Model::gpt(g);
    frozen.set_trainable("transformer.h.", false);
    frozen.set_trainable("transformer.wte.", false);
    frozen.set_trainable("transformer.wpe.", false);
    uint64_t trainable = 0, all = 0;
    for (const auto& p : frozen.parameters()) {
        if (p.buffer) continue;
        uint64_t n = 1;
        for (int64_t d : p.shape) n *= uint64_t(d);
        all += n;
        if (p.trainable) trainable += n;
    }
    ASSERT_GT(trainable, 0u);
    ASSERT_LT(trainable * 4, all); // most of the model is frozen

    Trainer full(vkt_test::context(), Model::gpt(g), options(c));
    Trainer t(vkt_test::context(), frozen, options(c));
    Trainer later(vkt_test::context(), Model::gpt(g), options(c));
    later.set_trainable("transformer.h.", false);
    later.set_trainable("transformer.wte.", false);
    later.set_trainable("transformer.wpe.", false);
    for (Trainer* x : {&full, &t, &later}) train_steps(*x, 2, 40);

    const uint64_t esz = c.precision == Precision::mixed ? 2 : 4;
    const bool pipelined = c.strategy == Strategy::pipelined;
    const bool unified = vkt_test::context().unified_memory_available();
    const auto expect_counts = [&](const Trainer& x, uint64_t n, const std::string& what) {
        const vktrain::MemoryReport r = x.memory();
        EXPECT_EQ(r.trainable_parameters, n) << what;
        EXPECT_EQ(r.frozen_parameters, all - n) << what;
        // fp32 masters (and the pipeline's second bank), AdamW's two moments (both banks when pipelined: the
        // optimizer keeps the second bank after its first pipelined step), the readback and the staging.
        EXPECT_EQ(r.host_master_bytes, n * 4 * (pipelined ? 2 : 1)) << what;
        EXPECT_EQ(r.host_optimizer_bytes, n * 8 * (pipelined ? 2 : 1)) << what;
        EXPECT_EQ(r.host_gradient_bytes, unified ? 0 : n * 4) << what; // (the device update keeps one too)
        EXPECT_EQ(r.host_staging_bytes, unified ? 0 : n * esz) << what;
    };
    expect_counts(full, all, "full training");
    expect_counts(t, trainable, "frozen in the model");
    expect_counts(later, trainable, "frozen at run time");
    EXPECT_LT(t.device_bytes(), full.device_bytes()); // no gradients for the frozen part on the device either
}

// Frozen tensors stay bit-identical on the device through training (read back by parameters() and parameter()),
// while the rest trains; set_parameter writes a frozen tensor's device copy (in the storage precision) and a
// prediction uses it.
TEST_P(FrozenParameters, StayBitIdenticalAndAreReadAndWritten) {
    const Config c = GetParam();
    const GptOptions g = tiny_gpt();
    Model m = Model::gpt(g);
    m.set_trainable("transformer.h.", false);
    Trainer t(vkt_test::context(), m, options(c));
    const auto before = t.parameters();
    train_steps(t, 3, 60);
    const auto after = t.parameters();
    ASSERT_EQ(before.size(), after.size());
    for (size_t i = 0; i < before.size(); ++i) {
        if (before[i].name.rfind("transformer.h.", 0) == 0) {
            EXPECT_TRUE(same_bits(before[i].data, after[i].data)) << before[i].name << " changed while frozen";
        } else {
            EXPECT_FALSE(same_bits(before[i].data, after[i].data)) << before[i].name << " did not train";
        }
        EXPECT_TRUE(same_bits(t.parameter(after[i].name).data, after[i].data)) << after[i].name;
    }
    // The initial values are the ones a fully trainable trainer with the same seed draws (the generator runs over
    // every parameter in order, frozen or not), in the storage precision.
    Trainer same_seed(vkt_test::context(), Model::gpt(g), options(c));
    const std::string name = "transformer.h.1.mlp.c_fc.weight";
    std::vector<float> drawn = same_seed.parameter(name).data;
    if (c.precision == Precision::mixed) drawn = through_half(drawn);
    EXPECT_TRUE(same_bits(t.parameter(name).data, drawn));

    const auto ids = tokens(batch * g.context, int32_t(g.vocab), 1);
    const std::vector<float> logits = t.predict({ids.data(), nullptr}, batch);
    std::vector<float> w(t.parameter(name).data.size(), 0.0f);
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * float(int(i % 7) - 3) + 1.0f / 3.0f;
    t.set_parameter(name, w);
    const std::vector<float> expect = c.precision == Precision::mixed ? through_half(w) : w;
    EXPECT_TRUE(same_bits(t.parameter(name).data, expect));
    EXPECT_FALSE(same_bits(t.predict({ids.data(), nullptr}, batch), logits));
    train_steps(t, 2, 80);
    EXPECT_TRUE(same_bits(t.parameter(name).data, expect)) << "a step brought old values back";
}

// Unfreezing: the new fp32 master starts from the device's copy (in mixed precision the fp16 values: the fp32 values
// frozen earlier are not kept anywhere), and the tensor trains from there. Freezing again drops the master.
TEST_P(FrozenParameters, UnfreezingStartsTheMasterFromTheDeviceCopy) {
    const Config c = GetParam();
    const GptOptions g = tiny_gpt();
    Trainer t(vkt_test::context(), Model::gpt(g), options(c));
    train_steps(t, 2, 100);
    const std::string name = "transformer.h.0.attn.c_attn.weight";
    const std::vector<float> master = t.parameter(name).data;
    t.set_trainable("transformer.h.0.", false);
    const std::vector<float> frozen = t.parameter(name).data;
    EXPECT_TRUE(same_bits(frozen, c.precision == Precision::mixed ? through_half(master) : master));
    const uint64_t fewer = t.memory().host_master_bytes;
    train_steps(t, 2, 110);
    EXPECT_TRUE(same_bits(t.parameter(name).data, frozen));
    t.set_trainable("transformer.h.0.", true);
    EXPECT_GT(t.memory().host_master_bytes, fewer);
    EXPECT_TRUE(same_bits(t.parameter(name).data, frozen)); // the master starts from the device's copy
    train_steps(t, 1, 120);
    EXPECT_FALSE(same_bits(t.parameter(name).data, frozen));
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, FrozenParameters,
    testing::Values(Config{Strategy::host, Precision::fp32}, Config{Strategy::host, Precision::mixed},
                    Config{Strategy::pipelined, Precision::fp32}, Config{Strategy::pipelined, Precision::mixed},
                    Config{Strategy::device, Precision::fp32}, Config{Strategy::device, Precision::mixed}),
    [](const testing::TestParamInfo<Config>& i) { return config_name(i.param); });

} // namespace
