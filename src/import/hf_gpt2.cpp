// GPT-2 (transformers' GPT2LMHeadModel) for the Hugging Face import/export framework: config.json -> Model::gpt, and
// the name table. vktrain's GPT already uses GPT-2's names ("transformer.h.0.attn.c_attn.weight"); what differs is
// the layout of the Conv1D weights (stored [in, out], vktrain's linear weights are [out, in]), the optional
// "transformer." prefix (GPT2Model checkpoints, such as the original "gpt2" upload, have none), the head (tied to the
// token embedding by default, and then absent from save_pretrained's files) and the causal-mask buffers older files
// carry ("h.N.attn.bias", "h.N.attn.masked_bias").
#include "common/check.hpp"
#include "import/hf_architecture.hpp"

namespace vktrain::hf {

namespace {

constexpr int64_t max_dim = int64_t{1} << 24;
constexpr int64_t max_layers = 4096;

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A Conv1D weight (transformers.pytorch_utils.Conv1D: y = x · W + b with W [in, out]).
bool is_conv1d_weight(const std::string& name) {
    return ends_with(name, ".attn.c_attn.weight") || ends_with(name, ".attn.c_proj.weight") ||
           ends_with(name, ".mlp.c_fc.weight") || ends_with(name, ".mlp.c_proj.weight");
}

// "h.<digits>.attn.bias" / "h.<digits>.attn.masked_bias" after the prefix.
bool is_mask_buffer(const std::string& name, const std::string& prefix) {
    if (name.compare(0, prefix.size(), prefix) != 0) return false;
    const std::string rest = name.substr(prefix.size());
    if (rest.compare(0, 2, "h.") != 0) return false;
    size_t i = 2;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') ++i;
    if (i == 2) return false;
    const std::string tail = rest.substr(i);
    return tail == ".attn.bias" || tail == ".attn.masked_bias";
}

} // namespace

Plan gpt2_plan(const PlanInput& in) {
    // Each key's GPT2Config default applies when config.json leaves it out.
    const bool cross = config_bool(in, "add_cross_attention", false);
    VKT_CHECK(!cross, in.origin, ": add_cross_attention true is not supported (GPT-2 with cross-attention layers)");
    VKT_CHECK(config_bool(in, "scale_attn_weights", true), in.origin,
              ": scale_attn_weights false is not supported (vktrain's attention scales scores by 1/sqrt(head size))");
    VKT_CHECK(!config_bool(in, "scale_attn_by_inverse_layer_idx", false), in.origin,
              ": scale_attn_by_inverse_layer_idx true is not supported");
    (void)config_bool(in, "reorder_and_upcast_attn", false); // numerics only: vktrain's attention is fp32 inside

    // Bounds far above any GPT-2 (the largest has 1600 wide, 48 layers) that keep every tensor's element count in
    // range and the graph small, so a hostile config.json fails here rather than building a model of 4e9 layers.
    GptOptions g;
    g.vocab = uint32_t(config_int(in, "vocab_size", 50257, 2, max_dim));
    g.context = uint32_t(config_int(in, "n_positions", 1024, 1, max_dim));
    g.width = uint32_t(config_int(in, "n_embd", 768, 1, max_dim));
    g.layers = uint32_t(config_int(in, "n_layer", 12, 1, max_layers));
    g.heads = uint32_t(config_int(in, "n_head", 12, 1, max_dim));
    const io::Json* inner = in.config.find("n_inner");
    g.mlp = inner == nullptr || inner->is_null() ? 0 : uint32_t(config_int(in, "n_inner", std::nullopt, 1, max_dim));
    VKT_CHECK(g.width % g.heads == 0, in.origin, ": n_embd ", g.width, " is not a multiple of n_head ", g.heads);
    const double eps = config_real(in, "layer_norm_epsilon", 1e-5);
    VKT_CHECK(eps > 0.0 && eps < 1.0, in.origin, ": layer_norm_epsilon ", eps, " is outside (0, 1)");
    g.eps = float(eps);
    g.tied = config_bool(in, "tie_word_embeddings", true);
    const std::string act = config_string(in, "activation_function", "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
        g.activation = GptActivation::gelu_tanh; // the same function: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
    else if (act == "gelu")
        g.activation = GptActivation::gelu;
    else
        VKT_FAIL(in.origin, ": activation_function \"", act,
                 "\" is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast or gelu)");

    Plan plan;
    plan.what = "GPT2LMHeadModel";
    plan.model = Model::gpt(g);
    // GPT2LMHeadModel's state dict names everything but the head "transformer.*"; GPT2Model's has no prefix.
    const std::string prefix = !in.has("transformer.wte.weight") && in.has("wte.weight") ? "" : "transformer.";
    const std::string own = "transformer.";
    for (const ParameterInfo& p : plan.model.parameters()) {
        if (!p.persistent) continue;
        TensorMap t;
        t.vktrain = p.name;
        t.hf = p.name.compare(0, own.size(), own) == 0 ? prefix + p.name.substr(own.size()) : p.name;
        t.transpose = is_conv1d_weight(p.name);
        t.hf_shape = p.shape;
        if (t.transpose) t.hf_shape = {p.shape[1], p.shape[0]};
        plan.tensors.push_back(std::move(t));
    }
    if (g.tied) plan.aliases.push_back({"lm_head.weight", prefix + "wte.weight"});
    plan.skippable = [prefix](const std::string& name) { return is_mask_buffer(name, prefix); };
    return plan;
}

std::optional<io::Json> gpt2_config_for(const Model& model) {
    GptOptions g;
    try {
        g = gpt_options(model);
    } catch (const Error&) {
        return std::nullopt;
    }
    io::Json c = io::Json::object();
    c["activation_function"] = g.activation == GptActivation::gelu_tanh ? "gelu_new" : "gelu";
    io::Json arch = io::Json::array();
    arch.push_back("GPT2LMHeadModel");
    c["architectures"] = std::move(arch);
    c["attn_pdrop"] = 0.0; // vktrain's GPT has no dropout
    c["embd_pdrop"] = 0.0;
    c["resid_pdrop"] = 0.0;
    c["layer_norm_epsilon"] = double(g.eps);
    c["model_type"] = "gpt2";
    c["n_embd"] = g.width;
    c["n_head"] = g.heads;
    c["n_inner"] = g.mlp;
    c["n_layer"] = g.layers;
    c["n_positions"] = g.context;
    c["tie_word_embeddings"] = g.tied;
    c["vocab_size"] = g.vocab;
    return c;
}

} // namespace vktrain::hf
