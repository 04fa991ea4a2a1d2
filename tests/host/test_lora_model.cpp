// Model::add_lora, the graph transform: the adapter's nodes and parameters under PEFT's names and shapes, the base
// frozen and the adapters trainable, B initialised to zeros, the scaling alpha / r on the add, lora_modules() reading
// the options back (through JSON too), and one-line errors that leave the model unchanged.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::LoraOptions;
using vktrain::Model;

vktrain::GptOptions tiny() {
    vktrain::GptOptions g;
    g.vocab = 11;
    g.layers = 2;
    g.heads = 2;
    g.width = 8;
    g.context = 4;
    return g;
}

const vktrain::ParameterInfo* find(const std::vector<vktrain::ParameterInfo>& ps, const std::string& name) {
    for (const auto& p : ps)
        if (p.name == name) return &p;
    return nullptr;
}

TEST(LoraModel, AddsPeftNamedAdaptersAndFreezesTheBase) {
    Model m = Model::gpt(tiny());
    const size_t nodes = m.nodes().size();
    LoraOptions o;
    o.r = 3;
    o.alpha = 6.0f;
    o.dropout = 0.1f;
    const auto names = m.add_lora("transformer.h.*.attn.c_attn", o);
    EXPECT_EQ(names, (std::vector<std::string>{"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"}));
    EXPECT_EQ(m.nodes().size(), nodes + 2 * 4); // dropout, A, B, add per layer
    const auto ps = m.parameters();
    for (const std::string& mod : names) {
        const auto* a = find(ps, mod + ".lora_A.weight");
        const auto* b = find(ps, mod + ".lora_B.weight");
        ASSERT_NE(a, nullptr) << mod;
        ASSERT_NE(b, nullptr) << mod;
        EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 8}));  // [r, in]
        EXPECT_EQ(b->shape, (std::vector<int64_t>{24, 3})); // [out, r]
        EXPECT_TRUE(a->trainable && b->trainable);
        EXPECT_EQ(a->init.kind, vktrain::InitKind::default_init); // Kaiming-uniform a = sqrt(5): U(+-1/sqrt(in))
        EXPECT_EQ(a->fan_in, 8u);
        EXPECT_EQ(b->init.kind, vktrain::InitKind::zeros);
        EXPECT_EQ(find(ps, mod + ".lora_A.bias"), nullptr);
    }
    for (const auto& p : ps) {
        if (p.name.find(".lora_") == std::string::npos) {
            EXPECT_FALSE(p.trainable) << p.name;
        }
    }
    // Every consumer of c_attn now reads the sum: the attention node's input is "<m>.lora".
    for (const auto& n : m.nodes()) {
        if (n.op == "self_attention") {
            EXPECT_EQ(m.nodes()[size_t(n.inputs.at(0))].name.find(".lora"), 27u) << n.name;
        }
    }

    const auto mods = m.lora_modules();
    ASSERT_EQ(mods.size(), 2u);
    EXPECT_EQ(mods[1].module, "transformer.h.1.attn.c_attn");
    EXPECT_EQ(mods[1].in, 8u);
    EXPECT_EQ(mods[1].out, 24u);
    EXPECT_EQ(mods[1].options.r, 3u);
    EXPECT_EQ(mods[1].options.alpha, 6.0f);
    EXPECT_EQ(mods[1].options.dropout, 0.1f);

    // A second call adds more; the adapters of the first stay trainable. The architecture survives JSON.
    m.add_lora("*.mlp.c_fc", LoraOptions{});
    const Model back = Model::from_json(m.to_json());
    EXPECT_EQ(back.lora_modules().size(), 4u);
    EXPECT_EQ(back.to_json(), m.to_json());
    EXPECT_TRUE(find(back.parameters(), "transformer.h.0.attn.c_attn.lora_A.weight")->trainable);
    EXPECT_TRUE(find(back.parameters(), "transformer.h.0.mlp.c_fc.lora_B.weight")->trainable);
    EXPECT_FALSE(find(back.parameters(), "transformer.h.0.mlp.c_fc.weight")->trainable);
    // Without dropout there is no dropout node.
    EXPECT_EQ(back.lora_modules()[1].options.dropout, 0.0f);
}

TEST(LoraModel, BadRequestsAreOneLineAndChangeNothing) {
    Model m = Model::gpt(tiny());
    const std::string before = m.to_json();
    const auto expect_error = [&](const std::string& pattern, const LoraOptions& o, const std::string& needle) {
        try {
            m.add_lora(pattern, o);
            ADD_FAILURE() << "no error for '" << pattern << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        }
        EXPECT_EQ(m.to_json(), before);
    };
    LoraOptions o;
    expect_error("*.c_nope", o, "no linear layer matches '*.c_nope'");
    expect_error("transformer.wte", o, "linear layers: transformer.h.0.attn.c_attn");
    o.r = 0;
    expect_error("*.c_attn", o, "r must be at least 1");
    o = LoraOptions{};
    o.alpha = 0.0f;
    expect_error("*.c_attn", o, "alpha must be positive");
    o = LoraOptions{};
    o.dropout = 1.0f;
    expect_error("*.c_attn", o, "dropout must be in [0, 1)");
    m.add_lora("transformer.h.0.attn.c_attn", LoraOptions{});
    try {
        m.add_lora("*.c_attn", LoraOptions{});
        ADD_FAILURE() << "LoRA added twice";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("has LoRA already"), std::string::npos) << e.what();
    }
}

} // namespace
