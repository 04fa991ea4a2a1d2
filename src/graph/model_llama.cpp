// Model::llama, Model::llama_decoder and llama_options: Hugging Face's LlamaForCausalLM with its own parameter names,
// so that importing a checkpoint is a name check and the config mapping (src/import/hf_llama.cpp), and its decoder for
// generation (one position over key/value caches, the same parameters). The rotary, mul and attention ops are built
// through Model::op, the same calls their typed builders make.
#include <algorithm>

#include "common/check.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

namespace {

void check_options(const LlamaOptions& o, const char* what) {
    VKT_CHECK(o.vocab >= 2, what, ": the vocabulary needs at least 2 tokens, got ", o.vocab);
    VKT_CHECK(o.layers >= 1 && o.heads >= 1 && o.width >= 1 && o.context >= 1, what,
              ": layers, heads, width and context must be at least 1");
    VKT_CHECK(o.width % o.heads == 0, what, ": width ", o.width, " is not a multiple of heads ", o.heads);
    VKT_CHECK((o.width / o.heads) % 2 == 0, what, ": the head size ", o.width / o.heads,
              " (width / heads) is odd; rotary embeddings rotate pairs of columns");
    const uint32_t kv = o.kv_heads ? o.kv_heads : o.heads;
    VKT_CHECK(o.heads % kv == 0, what, ": kv_heads ", kv, " does not divide heads ", o.heads);
    VKT_CHECK(o.sequence <= o.context, what, ": sequence ", o.sequence, " is longer than the context ", o.context);
    VKT_CHECK(o.eps > 0.0f, what, ": eps must be positive, got ", o.eps);
    VKT_CHECK(o.rope_theta > 0.0f, what, ": rope_theta must be positive, got ", o.rope_theta);
}

} // namespace

// decode: inputs "ids" and "pos" of one position, the rotary embeddings and attention in one cached op; else "ids" and
// "targets" of the whole window.
static Model build_llama(const LlamaOptions& o, bool decode) {
    const uint32_t kv = o.kv_heads ? o.kv_heads : o.heads;
    const uint32_t head = o.width / o.heads;
    const uint32_t inter = o.intermediate ? o.intermediate : 4 * o.width;
    const int64_t t = decode ? 1 : int64_t(o.sequence ? o.sequence : o.context);
    Model m;
    const auto named = [&m](int node, const std::string& name) {
        m.rename(node, name);
        return node;
    };
    const int ids = m.input("ids", {t}, DataType::i32);
    const int pos = decode ? m.input("pos", {1}, DataType::i32) : -1;
    const int embed = named(m.embedding(ids, o.vocab, o.width), "model.embed_tokens");
    int x = embed;
    for (uint32_t l = 0; l < o.layers; ++l) {
        const std::string h = "model.layers." + std::to_string(l) + ".";
        m.set_block(int(l)); // activation recomputation keeps only the layer's input x
        int n = named(m.rms_norm(x, o.eps), h + "input_layernorm");
        int q = named(m.linear(n, o.heads * head, false), h + "self_attn.q_proj");
        int k = named(m.linear(n, kv * head, false), h + "self_attn.k_proj");
        const int v = named(m.linear(n, kv * head, false), h + "self_attn.v_proj");
        int a;
        if (decode) {
            a = named(
                m.op("cached_rotary_attention", {q, k, v, pos},
                     {{"heads", o.heads}, {"kv_heads", kv}, {"theta", o.rope_theta}, {"max_positions", o.context}}),
                h + "self_attn.cache");
        } else {
            q = named(m.op("rotary", {q}, {{"heads", o.heads}, {"theta", o.rope_theta}}), h + "self_attn.q_rotary");
            k = named(m.op("rotary", {k}, {{"heads", kv}, {"theta", o.rope_theta}}), h + "self_attn.k_rotary");
            a = named(m.op("attention", {q, k, v}, {{"heads", o.heads}, {"kv_heads", kv}, {"causal", 1}}),
                      h + "self_attn.attention");
        }
        x = m.add(x, named(m.linear(a, o.width, false), h + "self_attn.o_proj"));
        n = named(m.rms_norm(x, o.eps), h + "post_attention_layernorm");
        const int gate = named(m.linear(n, inter, false), h + "mlp.gate_proj");
        const int up = named(m.linear(n, inter, false), h + "mlp.up_proj");
        const int f = named(m.op("mul", {named(m.silu(gate), h + "mlp.act_fn"), up}), h + "mlp.mul");
        x = m.add(x, named(m.linear(f, o.width, false), h + "mlp.down_proj"));
    }
    m.set_block(-1);
    x = named(m.rms_norm(x, o.eps), "model.norm");
    const int logits = o.tied ? m.linear_tied(x, embed) : named(m.linear(x, o.vocab, false), "lm_head");
    if (decode) // generation needs no loss: the next token's logits are the output
        m.output(logits, "logits");
    else
        m.cross_entropy(logits, m.input("targets", {t}, DataType::i32));
    return m;
}

Model Model::llama(const LlamaOptions& o) {
    check_options(o, "llama");
    Model m = build_llama(o, false);
    // LlamaPreTrainedModel._init_weights: Linear and Embedding weights N(0, initializer_range = 0.02); RMSNorm 1.
    const Init normal{InitKind::normal, 0.0f, 0.02f};
    for (const ParameterInfo& p : m.parameters()) {
        const bool norm = p.name.find("layernorm.") != std::string::npos || p.name.rfind("model.norm.", 0) == 0;
        if (!norm) m.set_init(p.name, normal);
    }
    return m;
}

Model Model::llama_decoder(const LlamaOptions& o) {
    check_options(o, "llama_decoder");
    // The caches hold the whole context (the positions the rotary angles are defined for); sequence is unused.
    LlamaOptions d = o;
    d.sequence = 0;
    return build_llama(d, true);
}

LlamaOptions llama_options(const Model& model) {
    const char* not_llama = "not a Llama of Model::llama's shape";
    LlamaOptions o;
    o.layers = 0;
    o.context = 0;
    const auto attr = [&](const Node& n, const char* key) {
        const auto it = n.attrs.find(key);
        VKT_CHECK(it != n.attrs.end(), not_llama, ": node '", n.name, "' has no attribute '", key, "'");
        return it->second;
    };
    for (const Node& n : model.nodes()) {
        if (n.name == "model.embed_tokens" && n.op == "embedding") {
            o.vocab = uint32_t(attr(n, "num_embeddings"));
            o.width = uint32_t(attr(n, "dim"));
        } else if (n.op == "attention") {
            o.heads = uint32_t(attr(n, "heads"));
            o.kv_heads = uint32_t(attr(n, "kv_heads"));
            ++o.layers;
        } else if (n.op == "rotary" && o.layers == 0) {
            o.rope_theta = float(attr(n, "theta"));
        } else if (n.name == "model.layers.0.mlp.gate_proj") {
            o.intermediate = uint32_t(attr(n, "out"));
        } else if (n.op == "linear_tied") {
            o.tied = true;
        } else if (n.name == "model.norm") {
            o.eps = float(attr(n, "eps"));
        } else if (n.op == "input" && n.name == "ids" && n.shape.size() == 1) {
            o.context = uint32_t(n.shape[0]);
        }
    }
    VKT_CHECK(o.vocab != 0 && o.layers != 0 && o.context != 0 && o.width != 0 && o.heads != 0, not_llama,
              ": it lacks the token embedding \"model.embed_tokens\", the ids input or the attention layers");
    // Everything else must be what the options build, or the model would be something else under the same names.
    Model expected;
    try {
        expected = Model::llama(o);
    } catch (const Error& e) {
        VKT_FAIL(not_llama, " (", e.what(), ")");
    }
    const std::vector<Node>& have = model.nodes();
    const std::vector<Node>& want = expected.nodes();
    for (size_t i = 0; i < std::max(have.size(), want.size()); ++i) {
        VKT_CHECK(i < have.size() && i < want.size(), not_llama, ": it has ", have.size(),
                  " nodes, the Llama of its options ", want.size());
        const Node& a = have[i];
        const Node& b = want[i];
        VKT_CHECK(a.op == b.op && a.name == b.name && a.inputs == b.inputs && a.shape == b.shape && a.type == b.type &&
                      a.attrs == b.attrs && a.shape_attr == b.shape_attr,
                  not_llama, ": node ", i, " ('", a.name, "', ", a.op, ") differs from the Llama of its options");
    }
    return o;
}

} // namespace vktrain
