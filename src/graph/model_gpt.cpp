// Model::gpt and Model::gpt_decoder: the GPT of the transformer recipe, for training (whole windows) and for
// generation (one token over key/value caches), with one body and nanoGPT's names, so one weights file serves both.
#include <algorithm>
#include <cmath>

#include "common/check.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

namespace {

void check_options(const GptOptions& o, const char* what) {
    VKT_CHECK(o.vocab >= 2, what, ": the vocabulary needs at least 2 tokens, got ", o.vocab);
    VKT_CHECK(o.layers >= 1 && o.heads >= 1 && o.width >= 1 && o.context >= 1, what,
              ": layers, heads, width and context must be at least 1");
    VKT_CHECK(o.width % o.heads == 0, what, ": width ", o.width, " is not a multiple of heads ", o.heads);
    VKT_CHECK(o.sequence <= o.context, what, ": sequence ", o.sequence, " is longer than the context ", o.context);
}

} // namespace

// decode: inputs "ids" and "pos" of one position, cached attention; else "ids" of the whole context.
static Model build_gpt(const GptOptions& o, bool decode) {
    const uint32_t mlp = o.mlp ? o.mlp : 4 * o.width;
    const int64_t t = decode ? 1 : int64_t(o.sequence ? o.sequence : o.context);
    Model m;
    const int ids = m.input("ids", {t}, DataType::i32);
    const int pos = decode ? m.input("pos", {1}, DataType::i32) : -1;
    const int wte = m.embedding(ids, o.vocab, o.width);
    m.rename(wte, "transformer.wte");
    int x;
    if (decode) { // the same [context, width] table, looked up at the fed position
        const int wpe = m.embedding(pos, o.context, o.width);
        m.rename(wpe, "transformer.wpe");
        x = m.add(wte, wpe);
    } else {
        x = m.position_embedding(wte, o.context);
        m.rename(x, "transformer.wpe");
    }
    const auto named = [&m](int node, const std::string& name) {
        m.rename(node, name);
        return node;
    };
    for (uint32_t l = 0; l < o.layers; ++l) {
        const std::string h = "transformer.h." + std::to_string(l) + ".";
        m.set_block(int(l)); // activation recomputation keeps only the layer's input x
        int a = named(m.linear(named(m.layer_norm(x, o.eps), h + "ln_1"), 3 * o.width), h + "attn.c_attn");
        a = decode ? named(m.cached_attention(a, pos, o.heads, o.context), h + "attn.cache")
                   : named(m.self_attention(a, o.heads, true), h + "attn.attention");
        x = m.add(x, named(m.linear(a, o.width), h + "attn.c_proj"));
        int f = named(m.linear(named(m.layer_norm(x, o.eps), h + "ln_2"), mlp), h + "mlp.c_fc");
        f = o.activation == GptActivation::gelu_tanh ? m.gelu_tanh(f) : m.gelu(f);
        x = m.add(x, named(m.linear(f, o.width), h + "mlp.c_proj"));
    }
    m.set_block(-1);
    x = named(m.layer_norm(x, o.eps), "transformer.ln_f");
    const int logits = o.tied ? m.linear_tied(x, wte) : named(m.linear(x, o.vocab, false), "lm_head");
    if (decode) // generation needs no loss: the next token's logits are the output
        m.output(logits, "logits");
    else
        m.cross_entropy(logits, m.input("targets", {t}, DataType::i32));
    return m;
}

Model Model::gpt(const GptOptions& o) {
    check_options(o, "gpt");
    Model m = build_gpt(o, false);
    // GPT-2's initialisation: weights N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 * layers)), biases 0
    // (LayerNorm's own defaults, 1 and 0, stay).
    const Init normal{InitKind::normal, 0.0f, 0.02f};
    const Init scaled{InitKind::normal, 0.0f, float(0.02 / std::sqrt(2.0 * o.layers))};
    for (const ParameterInfo& p : m.parameters()) {
        const auto ends = [&](const std::string& tail) {
            return p.name.size() >= tail.size() && p.name.compare(p.name.size() - tail.size(), tail.size(), tail) == 0;
        };
        const bool norm = p.name.find(".ln_") != std::string::npos || p.name.rfind("transformer.ln_f.", 0) == 0;
        if (norm) continue;
        if (ends(".bias"))
            m.set_init(p.name, Init{InitKind::zeros, 0.0f, 0.0f});
        else if (ends("c_proj.weight"))
            m.set_init(p.name, scaled);
        else
            m.set_init(p.name, normal);
    }
    return m;
}

Model Model::gpt_decoder(const GptOptions& o) {
    check_options(o, "gpt_decoder");
    return build_gpt(o, true);
}

GptOptions gpt_options(const Model& model) {
    const char* not_gpt = "not a GPT of Model::gpt's shape";
    GptOptions g;
    g.layers = 0;
    bool decoder = false;
    uint32_t sequence = 0; // the ids input's length
    const auto attr = [&](const Node& n, const char* key) {
        const auto it = n.attrs.find(key);
        VKT_CHECK(it != n.attrs.end(), not_gpt, ": node '", n.name, "' has no attribute '", key, "'");
        return it->second;
    };
    for (const Node& n : model.nodes()) {
        if (n.name == "transformer.wte" && n.op == "embedding") {
            g.vocab = uint32_t(attr(n, "num_embeddings"));
            g.width = uint32_t(attr(n, "dim"));
        } else if (n.name == "transformer.wpe") { // a position embedding, or in the decoder a table looked up
            decoder = n.op == "embedding";
            g.context = uint32_t(attr(n, decoder ? "num_embeddings" : "max_positions"));
        } else if (n.op == "self_attention" || n.op == "cached_attention") {
            g.heads = uint32_t(attr(n, "heads"));
            ++g.layers;
        } else if (n.name == "transformer.h.0.mlp.c_fc") {
            g.mlp = uint32_t(attr(n, "out"));
        } else if (n.op == "linear_tied") {
            g.tied = true;
        } else if (n.name == "transformer.ln_f") {
            g.eps = float(attr(n, "eps"));
        } else if (n.op == "gelu_tanh") {
            g.activation = GptActivation::gelu_tanh;
        } else if (n.op == "input" && n.name == "ids" && !n.shape.empty()) {
            sequence = uint32_t(n.shape[0]);
        }
    }
    VKT_CHECK(g.vocab != 0 && g.layers != 0 && g.context != 0 && g.width != 0 && g.heads != 0, not_gpt,
              ": it lacks the token and position embeddings or the attention layers");
    if (!decoder && sequence != g.context) g.sequence = sequence;
    // Everything else (a LayerNorm without affine, a head with a bias, another activation) must be what the options
    // build, or a decoder made from them would run something other than the model.
    Model expected;
    try {
        expected = decoder ? Model::gpt_decoder(g) : Model::gpt(g);
    } catch (const Error& e) {
        VKT_FAIL(not_gpt, " (", e.what(), ")");
    }
    const std::vector<Node>& have = model.nodes();
    const std::vector<Node>& want = expected.nodes();
    for (size_t i = 0; i < std::max(have.size(), want.size()); ++i) {
        VKT_CHECK(i < have.size() && i < want.size(), not_gpt, ": it has ", have.size(),
                  " nodes, the GPT of its options ", want.size());
        const Node& a = have[i];
        const Node& b = want[i];
        VKT_CHECK(a.op == b.op && a.name == b.name && a.inputs == b.inputs && a.shape == b.shape && a.type == b.type &&
                      a.attrs == b.attrs && a.shape_attr == b.shape_attr,
                  not_gpt, ": node ", i, " ('", a.name, "', ", a.op, ") differs from the GPT of its options");
    }
    return g;
}

int Model::cached_attention(int qkv, int position, uint32_t heads, uint32_t max_positions) {
    return op("cached_attention", {qkv, position}, {{"heads", heads}, {"max_positions", max_positions}});
}

} // namespace vktrain
