// Llama without a device or PyTorch (the PyTorch parity tests are tests/python/check_hf_llama.py): Model::llama's
// names and shapes, llama_options' round trip and refusals, a Llama folder written here in Hugging Face's names
// imported and exported back bit for bit, the export of a Llama that was never imported, and the config mapping's
// one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "scratch_dir.hpp"
#include "vktrain/error.hpp"
#include "vktrain/import.hpp"
#include "vktrain/weights.hpp"
#include "error_text.hpp"

namespace {

using vkt_test::error_of;

using vktrain::io::NamedTensor;

vktrain::LlamaOptions tiny_options() {
    vktrain::LlamaOptions o;
    o.vocab = 11;
    o.layers = 2;
    o.heads = 4;
    o.kv_heads = 2;
    o.width = 16;
    o.intermediate = 24;
    o.context = 8;
    o.eps = 1e-5f;
    o.rope_theta = 500000.0f;
    return o;
}

// A tiny Llama folder (the options above, untied) with every value distinct, under Hugging Face's names.
struct LlamaFolder {
    std::vector<NamedTensor> tensors;
    vktrain::io::Json config = vktrain::io::Json::object();
};

LlamaFolder tiny_llama() {
    LlamaFolder f;
    f.config["model_type"] = "llama";
    f.config["vocab_size"] = 11;
    f.config["hidden_size"] = 16;
    f.config["intermediate_size"] = 24;
    f.config["num_hidden_layers"] = 2;
    f.config["num_attention_heads"] = 4;
    f.config["num_key_value_heads"] = 2;
    f.config["max_position_embeddings"] = 8;
    f.config["rms_norm_eps"] = 1e-5;
    f.config["rope_theta"] = 500000.0;
    f.config["hidden_act"] = "silu";
    f.config["rope_scaling"] = vktrain::io::Json();
    f.config["tie_word_embeddings"] = false;
    float next = 0.001f;
    const auto t = [&](const std::string& name, std::vector<int64_t> shape) {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        std::vector<float> v(n);
        for (float& x : v) x = (next += 0.001f);
        f.tensors.push_back({name, std::move(shape), std::move(v)});
    };
    t("model.embed_tokens.weight", {11, 16});
    for (int l = 0; l < 2; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        t(p + "self_attn.q_proj.weight", {16, 16});
        t(p + "self_attn.k_proj.weight", {8, 16}); // 2 key/value heads of 4
        t(p + "self_attn.v_proj.weight", {8, 16});
        t(p + "self_attn.o_proj.weight", {16, 16});
        t(p + "mlp.gate_proj.weight", {24, 16});
        t(p + "mlp.up_proj.weight", {24, 16});
        t(p + "mlp.down_proj.weight", {16, 24});
        t(p + "input_layernorm.weight", {16});
        t(p + "post_attention_layernorm.weight", {16});
    }
    t("model.norm.weight", {16});
    t("lm_head.weight", {11, 16});
    return f;
}

void write_folder(const std::string& dir, const LlamaFolder& f) {
    std::filesystem::create_directories(dir);
    vktrain::io::write_json_file(dir + "/config.json", f.config);
    vktrain::io::write_safetensors(dir + "/model.safetensors", f.tensors, {{"format", "pt"}});
}

TEST(LlamaModel, HuggingFaceNamesAndShapes) {
    const vktrain::Model m = vktrain::Model::llama(tiny_options());
    std::vector<std::string> names;
    for (const vktrain::ParameterInfo& p : m.parameters()) {
        names.push_back(p.name);
        if (p.name == "model.layers.1.self_attn.k_proj.weight") {
            EXPECT_EQ(p.shape, (std::vector<int64_t>{8, 16}));
        } else if (p.name == "model.layers.0.mlp.down_proj.weight") {
            EXPECT_EQ(p.shape, (std::vector<int64_t>{16, 24}));
        } else if (p.name == "lm_head.weight") {
            EXPECT_EQ(p.shape, (std::vector<int64_t>{11, 16}));
        }
        const bool norm = p.name.find("norm") != std::string::npos;
        EXPECT_EQ(p.init.kind, norm ? vktrain::InitKind::ones : vktrain::InitKind::normal) << p.name;
    }
    std::vector<std::string> want;
    for (const NamedTensor& t : tiny_llama().tensors) want.push_back(t.name);
    std::sort(names.begin(), names.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(names, want); // no biases, no other parameters
    EXPECT_EQ(m.nodes()[size_t(m.inputs()[0])].shape, std::vector<int64_t>{8});

    vktrain::LlamaOptions o = tiny_options();
    o.tied = true;
    o.sequence = 5;
    const vktrain::Model tied = vktrain::Model::llama(o);
    for (const vktrain::ParameterInfo& p : tied.parameters()) EXPECT_NE(p.name, "lm_head.weight");
    EXPECT_EQ(tied.nodes()[size_t(tied.inputs()[0])].shape, std::vector<int64_t>{5});
}

TEST(LlamaModel, OptionsRoundTripAndRefusals) {
    vktrain::LlamaOptions o = tiny_options();
    o.tied = true;
    const vktrain::LlamaOptions back =
        vktrain::llama_options(vktrain::Model::from_json(vktrain::Model::llama(o).to_json()));
    EXPECT_EQ(back.vocab, 11u);
    EXPECT_EQ(back.layers, 2u);
    EXPECT_EQ(back.heads, 4u);
    EXPECT_EQ(back.kv_heads, 2u);
    EXPECT_EQ(back.width, 16u);
    EXPECT_EQ(back.intermediate, 24u);
    EXPECT_EQ(back.context, 8u);
    EXPECT_EQ(back.eps, 1e-5f);
    EXPECT_EQ(back.rope_theta, 500000.0f);
    EXPECT_TRUE(back.tied);
    vktrain::LlamaOptions plain;
    plain.vocab = 5;
    const vktrain::LlamaOptions d = vktrain::llama_options(vktrain::Model::llama(plain));
    EXPECT_EQ(d.kv_heads, 4u);            // 0: the attention heads
    EXPECT_EQ(d.intermediate, 4u * 128u); // 0: 4 · width
    EXPECT_FALSE(d.tied);

    EXPECT_CONTAINS(error_of([] { vktrain::llama_options(vktrain::Model::gpt(vktrain::GptOptions{13})); }),
                    "not a Llama of Model::llama's shape");
    // The same graph with the final RMSNorm's eps changed: the first node that differs from the options' Llama (which
    // takes eps from model.norm) is named.
    vktrain::Model m = vktrain::Model::llama(o);
    vktrain::io::Json j = vktrain::io::Json::parse(m.to_json(), "graph");
    for (vktrain::io::Json& node : j["nodes"].as_array())
        if (node["name"].as_string() == "model.norm") node["attrs"]["eps"] = 0.5;
    const vktrain::Model changed = vktrain::Model::from_json(j.dump(false));
    const std::string e = error_of([&] { vktrain::llama_options(changed); });
    EXPECT_CONTAINS(e, "not a Llama of Model::llama's shape");
    EXPECT_CONTAINS(e, "('model.layers.0.input_layernorm', rms_norm) differs from the Llama of its options");

    o = tiny_options();
    o.kv_heads = 3;
    EXPECT_CONTAINS(error_of([&] { vktrain::Model::llama(o); }), "kv_heads 3 does not divide heads 4");
    o = tiny_options();
    o.width = 12; // head size 3
    EXPECT_CONTAINS(error_of([&] { vktrain::Model::llama(o); }), "the head size 3 (width / heads) is odd");
    o = tiny_options();
    o.sequence = 9;
    EXPECT_CONTAINS(error_of([&] { vktrain::Model::llama(o); }), "sequence 9 is longer than the context 8");
}

TEST(HfImport, LlamaImportsAndExportsBitForBit) {
    vkt_test::ScratchDir dir("hf-llama");
    LlamaFolder f = tiny_llama();
    // Older transformers saved each layer's rotary inv_freq: recognised and skipped.
    f.tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {2}, {1.0f, 0.01f}});
    write_folder(dir.path() + "/in", f);
    f.tensors.pop_back();
    const std::string file = dir.path() + "/llama.safetensors";
    const vktrain::ImportResult r = vktrain::import_hf(dir.path() + "/in", file);
    EXPECT_EQ(r.model_type, "llama");
    EXPECT_EQ(r.tensors, f.tensors.size());
    EXPECT_EQ(r.skipped, std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});
    const vktrain::LlamaOptions o = vktrain::llama_options(r.model);
    EXPECT_EQ(o.kv_heads, 2u);
    EXPECT_EQ(o.intermediate, 24u);
    EXPECT_EQ(o.rope_theta, 500000.0f);
    EXPECT_EQ(o.eps, 1e-5f);
    EXPECT_FALSE(o.tied);

    const vktrain::WeightsFile w = vktrain::read_weights(file);
    const vktrain::Model m = vktrain::load_model(w);
    for (const vktrain::Parameter& v : vktrain::parameters_for(m, w)) { // Trainer::load's checks; values unchanged
        bool found = false;
        for (const NamedTensor& t : f.tensors)
            if (t.name == v.name) {
                found = true;
                EXPECT_EQ(v.shape, t.shape) << v.name;
                EXPECT_EQ(v.data, t.data) << v.name;
            }
        EXPECT_TRUE(found) << v.name;
    }

    vktrain::export_hf(file, dir.path() + "/out");
    const std::vector<NamedTensor> back = vktrain::io::read_safetensors(dir.path() + "/out/model.safetensors");
    ASSERT_EQ(back.size(), f.tensors.size());
    for (size_t i = 0; i < back.size(); ++i) {
        EXPECT_EQ(back[i].name, f.tensors[i].name);
        EXPECT_EQ(back[i].shape, f.tensors[i].shape);
        EXPECT_EQ(0, std::memcmp(back[i].data.data(), f.tensors[i].data.data(), back[i].data.size() * 4));
    }

    // A tied head: absent, or saved and equal to the embedding.
    f = tiny_llama();
    f.config["tie_word_embeddings"] = true;
    f.tensors.back().data = f.tensors.front().data;
    std::filesystem::remove_all(dir.path() + "/in");
    write_folder(dir.path() + "/in", f);
    EXPECT_TRUE(vktrain::llama_options(vktrain::import_hf(dir.path() + "/in", file).model).tied);
}

TEST(HfImport, ExportsALlamaThatWasNeverImported) {
    vkt_test::ScratchDir dir("hf-llama-native");
    vktrain::LlamaOptions o = tiny_options();
    o.tied = true;
    const vktrain::Model m = vktrain::Model::llama(o);
    std::vector<NamedTensor> ts;
    float next = 0.5f;
    for (const vktrain::ParameterInfo& p : m.parameters()) {
        size_t n = 1;
        for (int64_t d : p.shape) n *= size_t(d);
        std::vector<float> v(n);
        for (float& x : v) x = (next += 0.25f);
        ts.push_back({p.name, p.shape, std::move(v)});
    }
    const std::string file = dir.path() + "/native.safetensors";
    vktrain::io::write_safetensors(file, ts, {{"vktrain_graph", m.to_json()}});
    vktrain::export_hf(file, dir.path() + "/hf");
    const vktrain::io::Json c = vktrain::io::read_json_file(dir.path() + "/hf/config.json");
    EXPECT_EQ(c.at("model_type").as_string(), "llama");
    EXPECT_EQ(c.at("architectures").as_array().at(0).as_string(), "LlamaForCausalLM");
    EXPECT_EQ(c.at("num_key_value_heads").as_int64(), 2);
    EXPECT_EQ(c.at("intermediate_size").as_int64(), 24);
    EXPECT_EQ(c.at("rope_theta").as_number(), 500000.0);
    EXPECT_TRUE(c.at("tie_word_embeddings").as_bool());
    EXPECT_EQ(c.at("hidden_act").as_string(), "silu");
    const vktrain::ImportResult r = vktrain::import_hf(dir.path() + "/hf", dir.path() + "/again.safetensors");
    EXPECT_EQ(r.model.to_json(), m.to_json());
    const vktrain::WeightsFile again = vktrain::read_weights(dir.path() + "/again.safetensors");
    for (const NamedTensor& t : ts) EXPECT_EQ(again.tensor(t.name).to_f32(), t.data) << t.name;
}

TEST(HfImport, LlamaConfigErrorsNameTheField) {
    vkt_test::ScratchDir dir("hf-llama-errors");
    const std::string in = dir.path() + "/in", out = dir.path() + "/o.safetensors";
    const auto import_error = [&](const LlamaFolder& f) {
        std::filesystem::remove_all(in);
        write_folder(in, f);
        return error_of([&] { vktrain::import_hf(in, out); });
    };
    const auto with = [](const char* key, vktrain::io::Json value) {
        LlamaFolder f = tiny_llama();
        f.config[key] = std::move(value);
        return f;
    };
    vktrain::io::Json scaling = vktrain::io::Json::object();
    scaling["rope_type"] = "llama3";
    scaling["factor"] = 8.0;
    std::string e = import_error(with("rope_scaling", scaling));
    EXPECT_CONTAINS(e, "config.json: rope_scaling {");
    EXPECT_CONTAINS(e, "is not supported");
    EXPECT_EQ(e.find('\n'), std::string::npos);
    vktrain::io::Json unscaled = vktrain::io::Json::object();
    unscaled["rope_type"] = "default"; // transformers' name for no scaling: accepted
    LlamaFolder plain = with("rope_scaling", unscaled);
    std::filesystem::remove_all(in);
    write_folder(in, plain);
    EXPECT_EQ(vktrain::import_hf(in, out).model_type, "llama");
    unscaled["factor"] = 2.0; // but not with a factor it would ignore
    EXPECT_CONTAINS(import_error(with("rope_scaling", unscaled)), "config.json: rope_scaling {");
    EXPECT_CONTAINS(import_error(with("hidden_act", "gelu")), "config.json: hidden_act \"gelu\" is not supported");
    EXPECT_CONTAINS(import_error(with("num_key_value_heads", 3)),
                    "config.json: num_key_value_heads 3 does not divide num_attention_heads 4");
    EXPECT_CONTAINS(import_error(with("num_attention_heads", 3)),
                    "hidden_size 16 is not a multiple of num_attention_heads 3");
    EXPECT_CONTAINS(import_error(with("head_dim", 8)), "head_dim 8 is not hidden_size / num_attention_heads = 4");
    EXPECT_CONTAINS(import_error(with("attention_bias", true)), "attention_bias true is not supported");
    EXPECT_CONTAINS(import_error(with("mlp_bias", true)), "mlp_bias true is not supported");
    EXPECT_CONTAINS(import_error(with("rope_theta", -1.0)), "rope_theta -1 is outside (0, 1e30)");
    EXPECT_CONTAINS(import_error(with("max_position_embeddings", "8")),
                    "field \"max_position_embeddings\" must be an integer");
    LlamaFolder f = with("head_dim", 4);
    std::filesystem::remove_all(in);
    write_folder(in, f);
    EXPECT_EQ(vktrain::import_hf(in, out).model_type, "llama"); // head_dim equal to hidden / heads is fine

    // Tensors: missing, extra, mis-shaped, an untied head that was declared tied.
    f = tiny_llama();
    f.tensors.erase(f.tensors.begin() + 5); // model.layers.0.mlp.gate_proj.weight
    EXPECT_CONTAINS(import_error(f), "missing tensor 'model.layers.0.mlp.gate_proj.weight' (LlamaForCausalLM");
    f = tiny_llama();
    f.tensors.push_back({"model.layers.0.self_attn.q_proj.bias", {16}, std::vector<float>(16, 0.0f)});
    EXPECT_CONTAINS(import_error(f), "unexpected tensor 'model.layers.0.self_attn.q_proj.bias' (not a weight of "
                                     "LlamaForCausalLM");
    f = tiny_llama();
    f.tensors[2].shape = {16, 16}; // k_proj without grouped-query heads
    f.tensors[2].data.resize(256);
    EXPECT_CONTAINS(import_error(f),
                    "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 16], config.json implies [8, 16]");
    f = with("tie_word_embeddings", true);
    EXPECT_CONTAINS(import_error(f), "'lm_head.weight' differs from 'model.embed_tokens.weight'");
}

} // namespace
