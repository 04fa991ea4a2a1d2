// Model::without_lora and merge_lora_parameters: a LoRA model (add_lora, also read back from its JSON as a weights
// file records it) gives back the base graph, which gpt_options and llama_options take again, trainable whole; and
// its weights with each adapted layer's W + (alpha / r)·B·A, the adapters' tensors dropped.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "vktrain/error.hpp"
#include "vktrain/lora.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::Parameter;

vktrain::GptOptions tiny() {
    vktrain::GptOptions g;
    g.vocab = 11;
    g.layers = 2;
    g.heads = 2;
    g.width = 8;
    g.context = 4;
    return g;
}

// The same node list: ops, names, inputs and attributes.
void expect_same_graph(const Model& a, const Model& b) {
    ASSERT_EQ(a.nodes().size(), b.nodes().size());
    for (size_t i = 0; i < a.nodes().size(); ++i) {
        EXPECT_EQ(a.nodes()[i].op, b.nodes()[i].op) << i;
        EXPECT_EQ(a.nodes()[i].name, b.nodes()[i].name) << i;
        EXPECT_EQ(a.nodes()[i].inputs, b.nodes()[i].inputs) << i;
        EXPECT_EQ(a.nodes()[i].attrs, b.nodes()[i].attrs) << i;
    }
}

TEST(LoraMergeModel, WithoutLoraIsTheBaseGraphTrainableWhole) {
    const Model base = Model::gpt(tiny());
    Model m = base;
    m.add_lora("transformer.h.*.attn.c_attn", {2, 4.0f, 0.1f});
    m.add_lora("transformer.h.1.mlp.c_fc", {3, 3.0f, 0.0f});
    for (const Model& adapted : {m, Model::from_json(m.to_json())}) {
        const Model plain = adapted.without_lora();
        expect_same_graph(plain, base);
        EXPECT_TRUE(plain.lora_modules().empty());
        EXPECT_EQ(vktrain::gpt_options(plain).width, 8u);
        EXPECT_EQ(plain.parameter_count(), base.parameter_count());
        for (const vktrain::ParameterInfo& p : plain.parameters()) EXPECT_TRUE(p.trainable) << p.name;
    }
    EXPECT_THROW(vktrain::gpt_options(m), vktrain::Error); // why generate needs it
    expect_same_graph(base.without_lora(), base);          // nothing to strip

    vktrain::LlamaOptions l;
    l.vocab = 13;
    l.layers = 1;
    l.heads = 2;
    l.kv_heads = 1;
    l.width = 8;
    l.intermediate = 12;
    l.context = 4;
    Model llama = Model::llama(l);
    llama.add_lora("*.q_proj", {2, 2.0f, 0.0f});
    EXPECT_THROW(vktrain::llama_options(llama), vktrain::Error);
    EXPECT_EQ(vktrain::llama_options(llama.without_lora()).intermediate, 12u);
}

TEST(LoraMergeModel, MergedParametersAreWPlusScaledBA) {
    Model m = Model::gpt(tiny());
    m.add_lora("transformer.h.0.attn.c_attn", {2, 6.0f, 0.0f}); // scaling 3
    std::vector<Parameter> ps;
    for (const vktrain::ParameterInfo& i : m.parameters()) {
        uint64_t n = 1;
        for (int64_t d : i.shape) n *= uint64_t(d);
        std::vector<float> v(n);
        for (uint64_t k = 0; k < n; ++k) v[k] = float(int(k % 7) - 3) * 0.25f;
        ps.push_back({i.name, i.shape, v});
    }
    const std::vector<Parameter> merged = vktrain::merge_lora_parameters(m, ps);
    const std::vector<vktrain::ParameterInfo> plain = m.without_lora().parameters();
    ASSERT_EQ(merged.size(), plain.size());
    const auto get = [](const std::vector<Parameter>& from, const std::string& name) -> const Parameter& {
        for (const Parameter& p : from)
            if (p.name == name) return p;
        throw vktrain::Error("no " + name);
    };
    for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(merged[i].name, plain[i].name);
    const std::string mod = "transformer.h.0.attn.c_attn";
    const Parameter& w = get(ps, mod + ".weight");
    const Parameter& a = get(ps, mod + ".lora_A.weight"); // [2, 8]
    const Parameter& b = get(ps, mod + ".lora_B.weight"); // [24, 2]
    const Parameter& got = get(merged, mod + ".weight");
    for (int o = 0; o < 24; ++o)
        for (int i = 0; i < 8; ++i) {
            double d = 0.0;
            for (int k = 0; k < 2; ++k) d += double(b.data[size_t(o * 2 + k)]) * a.data[size_t(k * 8 + i)];
            EXPECT_EQ(got.data[size_t(o * 8 + i)], float(double(w.data[size_t(o * 8 + i)]) + 3.0 * d)) << o << "," << i;
        }
    EXPECT_EQ(get(merged, "transformer.h.1.attn.c_attn.weight").data,
              get(ps, "transformer.h.1.attn.c_attn.weight").data);

    ps.erase(ps.begin() + long(&get(ps, mod + ".lora_B.weight") - ps.data()));
    try {
        vktrain::merge_lora_parameters(m, ps);
        FAIL() << "a missing adapter tensor is refused";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("no tensor 'transformer.h.0.attn.c_attn.lora_B.weight'"),
                  std::string::npos)
            << e.what();
    }
}

} // namespace
