// Model::gpt: the GPT of the transformer recipe, built from the public graph API.
#include <cmath>

#include "common/check.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

Model Model::gpt(const GptOptions& o) {
    VKT_CHECK(o.vocab >= 2, "gpt: the vocabulary needs at least 2 tokens, got ", o.vocab);
    VKT_CHECK(o.layers >= 1 && o.heads >= 1 && o.width >= 1 && o.context >= 1,
              "gpt: layers, heads, width and context must be at least 1");
    VKT_CHECK(o.width % o.heads == 0, "gpt: width ", o.width, " is not a multiple of heads ", o.heads);
    const uint32_t mlp = o.mlp ? o.mlp : 4 * o.width;
    Model m;
    const int64_t t = int64_t(o.context);
    const int ids = m.input("ids", {t}, DataType::i32);
    const int wte = m.embedding(ids, o.vocab, o.width);
    m.rename(wte, "transformer.wte");
    int x = m.position_embedding(wte, o.context);
    m.rename(x, "transformer.wpe");
    std::vector<std::string> normal, scaled;
    for (uint32_t l = 0; l < o.layers; ++l) {
        const std::string h = "transformer.h." + std::to_string(l) + ".";
        int a = m.layer_norm(x, o.eps);
        m.rename(a, h + "ln_1");
        a = m.linear(a, 3 * o.width);
        m.rename(a, h + "attn.c_attn");
        normal.push_back(h + "attn.c_attn.weight");
        a = m.self_attention(a, o.heads, true);
        m.rename(a, h + "attn.attention"); // no parameters: names the profile's lines
        a = m.linear(a, o.width);
        m.rename(a, h + "attn.c_proj");
        scaled.push_back(h + "attn.c_proj.weight");
        x = m.add(x, a);
        int f = m.layer_norm(x, o.eps);
        m.rename(f, h + "ln_2");
        f = m.linear(f, mlp);
        m.rename(f, h + "mlp.c_fc");
        normal.push_back(h + "mlp.c_fc.weight");
        f = m.gelu(f);
        f = m.linear(f, o.width);
        m.rename(f, h + "mlp.c_proj");
        scaled.push_back(h + "mlp.c_proj.weight");
        x = m.add(x, f);
    }
    x = m.layer_norm(x, o.eps);
    m.rename(x, "transformer.ln_f");
    int logits;
    if (o.tied) {
        logits = m.linear_tied(x, wte);
    } else {
        logits = m.linear(x, o.vocab, false);
        m.rename(logits, "lm_head");
        normal.push_back("lm_head.weight");
    }
    m.cross_entropy(logits, m.input("targets", {t}, DataType::i32));

    const float std_normal = 0.02f;
    const float std_scaled = float(0.02 / std::sqrt(2.0 * o.layers));
    m.set_init("transformer.wte.weight", Init{InitKind::normal, 0.0f, std_normal});
    m.set_init("transformer.wpe.weight", Init{InitKind::normal, 0.0f, std_normal});
    for (const std::string& n : normal) m.set_init(n, Init{InitKind::normal, 0.0f, std_normal});
    for (const std::string& n : scaled) m.set_init(n, Init{InitKind::normal, 0.0f, std_scaled});
    for (const ParameterInfo& p : m.parameters())
        if (p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0 &&
            p.name.find(".ln_") == std::string::npos && p.name.find("ln_f") == std::string::npos)
            m.set_init(p.name, Init{InitKind::zeros, 0.0f, 0.0f});
    return m;
}

int Model::cached_attention(int qkv, int position, uint32_t heads, uint32_t max_positions) {
    Node n;
    n.op = "cached_attention";
    n.name = next_name("cached_attention");
    n.inputs = {qkv, position};
    n.attrs["heads"] = heads;
    n.attrs["max_positions"] = max_positions;
    return add_node(std::move(n), "cached_attention");
}

Model Model::gpt_decoder(const GptOptions& o) {
    VKT_CHECK(o.vocab >= 2, "gpt_decoder: the vocabulary needs at least 2 tokens, got ", o.vocab);
    VKT_CHECK(o.layers >= 1 && o.heads >= 1 && o.width >= 1 && o.context >= 1 && o.width % o.heads == 0,
              "gpt_decoder: layers, heads, width, context must be positive and width a multiple of heads");
    const uint32_t mlp = o.mlp ? o.mlp : 4 * o.width;
    Model m;
    const int ids = m.input("ids", {1}, DataType::i32);
    const int pos = m.input("pos", {1}, DataType::i32);
    const int wte = m.embedding(ids, o.vocab, o.width);
    m.rename(wte, "transformer.wte");
    const int wpe = m.embedding(pos, o.context, o.width);
    m.rename(wpe, "transformer.wpe");
    int x = m.add(wte, wpe);
    for (uint32_t l = 0; l < o.layers; ++l) {
        const std::string h = "transformer.h." + std::to_string(l) + ".";
        int a = m.layer_norm(x, o.eps);
        m.rename(a, h + "ln_1");
        a = m.linear(a, 3 * o.width);
        m.rename(a, h + "attn.c_attn");
        a = m.cached_attention(a, pos, o.heads, o.context);
        m.rename(a, h + "attn.cache");
        a = m.linear(a, o.width);
        m.rename(a, h + "attn.c_proj");
        x = m.add(x, a);
        int f = m.layer_norm(x, o.eps);
        m.rename(f, h + "ln_2");
        f = m.linear(f, mlp);
        m.rename(f, h + "mlp.c_fc");
        f = m.gelu(f);
        f = m.linear(f, o.width);
        m.rename(f, h + "mlp.c_proj");
        x = m.add(x, f);
    }
    x = m.layer_norm(x, o.eps);
    m.rename(x, "transformer.ln_f");
    int logits;
    if (o.tied) {
        logits = m.linear_tied(x, wte);
    } else {
        logits = m.linear(x, o.vocab, false);
        m.rename(logits, "lm_head");
    }
    m.cross_entropy(logits, m.input("targets", {1}, DataType::i32));
    return m;
}

} // namespace vktrain
