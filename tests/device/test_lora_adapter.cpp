// PEFT adapter folders: a trained LoRA GPT's adapters saved alone (adapter_config.json's fields, the safetensors keys
// and shapes), loaded onto a fresh base with the config's adapters give identical logits; bad folders are one-line
// errors that change nothing; the export merge hook adds (alpha / r)·B·A to exactly the adapted weights.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "device/support.hpp"
#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "vktrain/lora.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

constexpr uint32_t batch = 2;

vktrain::GptOptions tiny() {
    vktrain::GptOptions g;
    g.vocab = 19;
    g.layers = 2;
    g.heads = 2;
    g.width = 16;
    g.context = 6;
    return g;
}

TrainerOptions options(Precision p) {
    TrainerOptions o;
    o.precision = p;
    o.batch_size = batch;
    o.seed = 3;
    o.optimizer.learning_rate = 0.02f;
    return o;
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> v(n);
    for (auto& t : v) t = int32_t(rng() % tiny().vocab);
    return v;
}

class LoraAdapter : public testing::TestWithParam<Precision> {
protected:
    void SetUp() override {
        if (GetParam() == Precision::mixed) VKT_REQUIRE_FP16();
    }
};

TEST_P(LoraAdapter, SavedInPeftLayoutAndLoadedOntoAFreshBase) {
    const Precision p = GetParam();
    const std::string dir = vkt_test::temp_dir("lora_adapter") + "/adapter";
    Trainer base(vkt_test::context(), Model::gpt(tiny()), options(p));
    const auto base_weights = base.parameters();
    Model m = Model::gpt(tiny());
    vktrain::LoraOptions lo;
    lo.r = 4;
    lo.alpha = 8.0f;
    lo.dropout = 0.1f;
    m.add_lora("*.attn.c_attn", lo);
    m.add_lora("*.mlp.c_fc", lo);
    Trainer t(vkt_test::context(), m, options(p));
    t.set_parameters(base_weights);
    const auto ids = tokens(batch * tiny().context, 1);
    for (uint32_t s = 0; s < 3; ++s) {
        const auto targets = tokens(batch * tiny().context, 10 + s);
        t.step({ids.data(), targets.data()}, batch);
    }
    vktrain::save_lora_adapter(t, dir, "base-gpt");

    const vktrain::io::Json c = vktrain::io::read_json_file(dir + "/adapter_config.json");
    EXPECT_EQ(c.at("peft_type").as_string(), "LORA");
    EXPECT_EQ(c.at("r").as_int64(), 4);
    EXPECT_EQ(c.at("lora_alpha").as_number(), 8.0);
    EXPECT_NEAR(c.at("lora_dropout").as_number(), 0.1, 1e-7);
    EXPECT_EQ(c.at("task_type").as_string(), "CAUSAL_LM");
    EXPECT_EQ(c.at("bias").as_string(), "none");
    EXPECT_TRUE(c.at("fan_in_fan_out").as_bool()); // GPT-2's Conv1D layers
    EXPECT_EQ(c.at("base_model_name_or_path").as_string(), "base-gpt");
    EXPECT_EQ(c.at("target_modules").size(), 4u);
    const auto tensors = vktrain::io::read_safetensors(dir + "/adapter_model.safetensors");
    ASSERT_EQ(tensors.size(), 8u); // A and B of four modules, nothing of the base
    for (const auto& x : tensors) {
        EXPECT_EQ(x.name.rfind("base_model.model.transformer.h.", 0), 0u) << x.name;
        if (x.name == "base_model.model.transformer.h.1.mlp.c_fc.lora_A.weight") {
            EXPECT_EQ(x.shape, (std::vector<int64_t>{4, 16}));
        }
        if (x.name == "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight") {
            EXPECT_EQ(x.shape, (std::vector<int64_t>{64, 4}));
        }
    }

    // A fresh base (the same weights), the config's adapters, the folder loaded: the same logits, bit for bit.
    Model fresh = Model::gpt(tiny());
    const vktrain::LoraAdapterConfig config = vktrain::read_lora_adapter_config(dir);
    EXPECT_EQ(vktrain::add_lora(fresh, config).size(), 4u);
    Trainer u(vkt_test::context(), fresh, options(p));
    u.set_parameters(base_weights);
    vktrain::load_lora_adapter(u, dir);
    const std::vector<float> want = t.predict({ids.data(), nullptr}, batch);
    EXPECT_EQ(u.predict({ids.data(), nullptr}, batch), want);
    const std::string a = "transformer.h.0.attn.c_attn.lora_B.weight";
    EXPECT_EQ(u.parameter(a).data, t.parameter(a).data);
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

INSTANTIATE_TEST_SUITE_P(Precisions, LoraAdapter, testing::Values(Precision::fp32, Precision::mixed),
                         [](const testing::TestParamInfo<Precision>& i) {
                             return i.param == Precision::mixed ? std::string("mixed") : std::string("fp32");
                         });

TEST(LoraAdapterErrors, BadFoldersAreOneLineAndChangeNothing) {
    const std::string root = vkt_test::temp_dir("lora_adapter_bad");
    const std::string dir = root + "/adapter";
    Model m = Model::gpt(tiny());
    m.add_lora("*.c_attn", vktrain::LoraOptions{});
    Trainer t(vkt_test::context(), m, options(Precision::fp32));
    vktrain::save_lora_adapter(t, dir);
    const auto before = t.parameters();
    const auto expect_error = [&](const std::function<void()>& f, const std::string& needle) {
        try {
            f();
            ADD_FAILURE() << "no error (" << needle << ")";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        }
    };
    const auto rewrite = [&](const std::string& from, const std::string& to) {
        const std::string path = dir + "/adapter_config.json";
        std::ifstream in(path);
        std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        s.replace(s.find(from), from.size(), to);
        std::ofstream(path) << s;
    };
    // A model with another rank.
    Model other = Model::gpt(tiny());
    vktrain::LoraOptions r4;
    r4.r = 4;
    other.add_lora("*.c_attn", r4);
    Trainer u(vkt_test::context(), other, options(Precision::fp32));
    expect_error([&] { vktrain::load_lora_adapter(u, dir); }, "differ from module 'transformer.h.0.attn.c_attn'");
    // A model with more adapters than the file.
    Model more = Model::gpt(tiny());
    more.add_lora("*.c_attn", vktrain::LoraOptions{});
    more.add_lora("*.c_fc", vktrain::LoraOptions{});
    Trainer v(vkt_test::context(), more, options(Precision::fp32));
    expect_error([&] { vktrain::load_lora_adapter(v, dir); },
                 "tensor 'base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight' is missing");
    rewrite("\"LORA\"", "\"IA3\"");
    expect_error([&] { vktrain::load_lora_adapter(t, dir); }, "peft_type must be \"LORA\"");
    rewrite("\"IA3\"", "\"LORA\"");
    rewrite("\"bias\": \"none\"", "\"bias\": \"all\"");
    expect_error([&] { vktrain::load_lora_adapter(t, dir); }, "bias \"all\" is not supported");
    expect_error([&] { vktrain::load_lora_adapter(t, root + "/nowhere"); }, "adapter_config.json: no such file");
    const auto after = t.parameters();
    for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(before[i].data, after[i].data) << before[i].name;
    Model plain = Model::gpt(tiny());
    Trainer w(vkt_test::context(), plain, options(Precision::fp32));
    expect_error([&] { vktrain::save_lora_adapter(w, root + "/x"); }, "the model has no LoRA adapter");
    std::filesystem::remove_all(root);
}

// The export hook: W + (alpha / r)·B·A on the adapted weights, every other tensor untouched.
TEST(LoraAdapterMerge, HookAddsTheScaledProductToAdaptedWeightsOnly) {
    const std::string root = vkt_test::temp_dir("lora_merge");
    const std::string dir = root + "/adapter";
    Model m = Model::gpt(tiny());
    vktrain::LoraOptions o;
    o.r = 2;
    o.alpha = 6.0f;
    m.add_lora("transformer.h.1.mlp.c_fc", o);
    Trainer t(vkt_test::context(), m, options(Precision::fp32));
    const std::string mod = "transformer.h.1.mlp.c_fc";
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> a(2 * 16), b(64 * 2);
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
    t.set_parameter(mod + ".lora_A.weight", a);
    t.set_parameter(mod + ".lora_B.weight", b);
    vktrain::save_lora_adapter(t, dir);
    const auto hook = vktrain::lora_merge_hook(dir, Model::gpt(tiny()));
    std::vector<float> w = t.parameter(mod + ".weight").data;
    const std::vector<float> w0 = w;
    hook(mod + ".weight", {64, 16}, w);
    for (uint32_t i = 0; i < 64; ++i)
        for (uint32_t j = 0; j < 16; ++j) {
            double d = 0.0;
            for (uint32_t k = 0; k < 2; ++k) d += double(b[i * 2 + k]) * a[k * 16 + j];
            EXPECT_NEAR(w[i * 16 + j], w0[i * 16 + j] + 3.0 * d, 1e-5) << i << "," << j;
        }
    std::vector<float> other = t.parameter("transformer.h.0.mlp.c_fc.weight").data;
    const std::vector<float> other0 = other;
    hook("transformer.h.0.mlp.c_fc.weight", {64, 16}, other);
    EXPECT_EQ(other, other0);
    // An adapter for a module the base does not have.
    vktrain::GptOptions g = tiny();
    g.layers = 1;
    try {
        (void)vktrain::lora_merge_hook(dir, Model::gpt(g));
        ADD_FAILURE() << "merged into a base without the module";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("adapts no linear weight of the base model"), std::string::npos)
            << e.what();
    }
    std::filesystem::remove_all(root);
}

} // namespace

namespace {

// Trainer::save_checkpoint(path, extra, trainable_only): a LoRA checkpoint holds the adapters and their optimizer state
// (no base tensor), and a trainer holding the same base resumes from it bit-identically; a trainer that trains a
// tensor the checkpoint lacks refuses it by name.
TEST(LoraCheckpoint, TrainableOnlyHoldsTheAdaptersAndResumesBitIdentically) {
    const std::string root = vkt_test::temp_dir("lora_checkpoint");
    const std::string path = root + "/c.safetensors";
    Model m = Model::gpt(tiny());
    vktrain::LoraOptions o;
    o.r = 2;
    m.add_lora("*.c_attn", o);
    Trainer base(vkt_test::context(), Model::gpt(tiny()), options(Precision::fp32));
    const auto base_weights = base.parameters();
    const auto step = [](Trainer& t, uint32_t s) {
        const auto ids = tokens(batch * tiny().context, 50 + s), targets = tokens(batch * tiny().context, 60 + s);
        t.step({ids.data(), targets.data()}, batch);
    };
    Trainer a(vkt_test::context(), m, options(Precision::fp32));
    a.set_parameters(base_weights);
    for (uint32_t s = 0; s < 2; ++s) step(a, s);
    a.save_checkpoint(path, {{"note", "x"}}, true);
    const auto tensors = vktrain::io::read_safetensors(path);
    EXPECT_EQ(tensors.size(), 2u * 2u * 3u); // A and B of two layers, each with exp_avg and exp_avg_sq
    for (const auto& t : tensors) EXPECT_NE(t.name.find(".lora_"), std::string::npos) << t.name;
    for (uint32_t s = 2; s < 4; ++s) step(a, s);

    Trainer b(vkt_test::context(), m, options(Precision::fp32));
    b.set_parameters(base_weights);
    const auto extra = b.load_checkpoint(path);
    ASSERT_EQ(extra.size(), 1u);
    EXPECT_EQ(extra[0].second, "x");
    EXPECT_EQ(b.steps(), 2u);
    for (uint32_t s = 2; s < 4; ++s) step(b, s);
    const auto pa = a.parameters(), pb = b.parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].data, pb[i].data) << pa[i].name;

    Model more = m;
    more.set_trainable("lm_head.", true);
    Trainer c(vkt_test::context(), more, options(Precision::fp32));
    try {
        c.load_checkpoint(path);
        ADD_FAILURE() << "a checkpoint without lm_head.weight loaded into a trainer that trains it";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("tensor 'lm_head.weight' is missing"), std::string::npos) << e.what();
    }
    std::filesystem::remove_all(root);
}

} // namespace
