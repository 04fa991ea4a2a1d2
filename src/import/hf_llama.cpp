// Llama (transformers' LlamaForCausalLM) for the Hugging Face import/export framework: config.json -> Model::llama,
// and the name table. Model::llama uses Hugging Face's names and nn.Linear's [out, in] layouts unchanged, so every
// tensor maps to itself; what this file decides is which configurations vktrain computes exactly (no rope_scaling, no
// biases, SiLU, head_dim = hidden_size / heads) and refuses the rest with the field at fault. Files may carry the
// rotary embeddings' inv_freq buffers (older transformers saved them): recognised and skipped.
#include <cmath>

#include "common/check.hpp"
#include "import/hf_architecture.hpp"

namespace vktrain::hf {

namespace {

constexpr int64_t max_dim = int64_t{1} << 24;
constexpr int64_t max_layers = 4096;

// "model.layers.<digits>.self_attn.rotary_emb.inv_freq" (and the model-level "model.rotary_emb.inv_freq").
bool is_inv_freq(const std::string& name) {
    if (name == "model.rotary_emb.inv_freq") return true;
    const std::string head = "model.layers.";
    const std::string tail = ".self_attn.rotary_emb.inv_freq";
    if (name.compare(0, head.size(), head) != 0 || name.size() <= head.size() + tail.size()) return false;
    if (name.compare(name.size() - tail.size(), tail.size(), tail) != 0) return false;
    for (size_t i = head.size(); i < name.size() - tail.size(); ++i)
        if (name[i] < '0' || name[i] > '9') return false;
    return true;
}

} // namespace

Plan llama_plan(const PlanInput& in) {
    // LlamaConfig's defaults apply where config.json leaves a key out (num_key_value_heads: num_attention_heads).
    LlamaOptions o;
    o.vocab = uint32_t(config_int(in, "vocab_size", 32000, 2, max_dim));
    o.width = uint32_t(config_int(in, "hidden_size", 4096, 1, max_dim));
    o.intermediate = uint32_t(config_int(in, "intermediate_size", 11008, 1, max_dim));
    o.layers = uint32_t(config_int(in, "num_hidden_layers", 32, 1, max_layers));
    o.heads = uint32_t(config_int(in, "num_attention_heads", 32, 1, max_dim));
    o.kv_heads = uint32_t(config_int(in, "num_key_value_heads", o.heads, 1, max_dim));
    o.context = uint32_t(config_int(in, "max_position_embeddings", 2048, 1, max_dim));
    VKT_CHECK(o.width % o.heads == 0, in.origin, ": hidden_size ", o.width,
              " is not a multiple of num_attention_heads ", o.heads);
    VKT_CHECK(o.heads % o.kv_heads == 0, in.origin, ": num_key_value_heads ", o.kv_heads,
              " does not divide num_attention_heads ", o.heads);
    const uint32_t head = o.width / o.heads;
    if (const io::Json* h = in.config.find("head_dim"); h != nullptr && !h->is_null()) {
        const int64_t d = config_int(in, "head_dim", std::nullopt, 1, max_dim);
        VKT_CHECK(d == int64_t(head), in.origin, ": head_dim ", d, " is not hidden_size / num_attention_heads = ", head,
                  " (vktrain's Llama has no separate head size)");
    }
    VKT_CHECK(head % 2 == 0, in.origin, ": the head size ", head,
              " (hidden_size / num_attention_heads) is odd; rotary embeddings rotate pairs of columns");
    const double eps = config_real(in, "rms_norm_eps", 1e-6);
    VKT_CHECK(eps > 0.0 && eps < 1.0, in.origin, ": rms_norm_eps ", eps, " is outside (0, 1)");
    o.eps = float(eps);
    const double theta = config_real(in, "rope_theta", 10000.0);
    VKT_CHECK(std::isfinite(theta) && theta > 0.0 && theta < 1e30, in.origin, ": rope_theta ", theta,
              " is outside (0, 1e30)");
    o.rope_theta = float(theta);
    o.tied = config_bool(in, "tie_word_embeddings", false);
    const std::string act = config_string(in, "hidden_act", "silu");
    VKT_CHECK(act == "silu", in.origin, ": hidden_act \"", act, "\" is not supported (Llama's MLP is SwiGLU: silu)");
    if (const io::Json* s = in.config.find("rope_scaling"); s != nullptr && !s->is_null()) {
        // transformers' "default" rope_type is the unscaled rotation; every other type (linear, dynamic, yarn,
        // longrope, llama3) changes the frequencies.
        const io::Json* type = s->is_object() ? s->find("rope_type") : nullptr;
        if (type == nullptr && s->is_object()) type = s->find("type");
        const bool unscaled =
            type != nullptr && type->is_string() && type->as_string() == "default" && s->as_object().size() == 1;
        VKT_CHECK(unscaled, in.origin, ": rope_scaling ", s->dump(),
                  " is not supported (vktrain's rotary embeddings are unscaled: rope_scaling must be null or "
                  "{\"rope_type\": \"default\"})");
    }
    VKT_CHECK(!config_bool(in, "attention_bias", false), in.origin,
              ": attention_bias true is not supported (vktrain's Llama projections have no biases)");
    VKT_CHECK(!config_bool(in, "mlp_bias", false), in.origin,
              ": mlp_bias true is not supported (vktrain's Llama MLP has no biases)");
    // Numerics of training only (vktrain has no dropout in Llama): a non-zero value is refused rather than ignored.
    VKT_CHECK(config_real(in, "attention_dropout", 0.0) == 0.0, in.origin,
              ": attention_dropout must be 0 (vktrain's Llama has no attention dropout)");
    const int64_t tp = config_int(in, "pretraining_tp", 1, 1, max_dim);
    (void)tp; // a slicing of the same matmuls in the original training code: the same function for any value

    Plan plan;
    plan.what = "LlamaForCausalLM";
    try {
        plan.model = Model::llama(o);
    } catch (const Error& e) {
        VKT_FAIL(in.origin, ": ", e.what());
    }
    for (const ParameterInfo& p : plan.model.parameters()) {
        if (!p.persistent) continue;
        plan.tensors.push_back({p.name, p.name, p.shape, false});
    }
    if (o.tied) plan.aliases.push_back({"lm_head.weight", "model.embed_tokens.weight"});
    plan.skippable = is_inv_freq;
    return plan;
}

std::optional<io::Json> llama_config_for(const Model& model) {
    LlamaOptions o;
    try {
        o = llama_options(model);
    } catch (const Error&) {
        return std::nullopt;
    }
    io::Json c = io::Json::object();
    io::Json arch = io::Json::array();
    arch.push_back("LlamaForCausalLM");
    c["architectures"] = std::move(arch);
    c["attention_bias"] = false;
    c["attention_dropout"] = 0.0;
    c["head_dim"] = o.width / o.heads;
    c["hidden_act"] = "silu";
    c["hidden_size"] = o.width;
    c["intermediate_size"] = o.intermediate;
    c["max_position_embeddings"] = o.context;
    c["mlp_bias"] = false;
    c["model_type"] = "llama";
    c["num_attention_heads"] = o.heads;
    c["num_hidden_layers"] = o.layers;
    c["num_key_value_heads"] = o.kv_heads;
    c["rms_norm_eps"] = double(o.eps);
    c["rope_scaling"] = io::Json();
    c["rope_theta"] = double(o.rope_theta);
    c["tie_word_embeddings"] = o.tied;
    c["vocab_size"] = o.vocab;
    return c;
}

} // namespace vktrain::hf
