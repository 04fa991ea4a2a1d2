// LoRA as a graph transform (Model::add_lora): each adapted linear layer gets three or four ordinary nodes after it
// (dropout, A, B, and an add that scales B's output by alpha / r), so training, autodiff, the planner, mixed precision
// and checkpoints need nothing of their own. Measured against what a fused op could save (lavapipe 25, fp32, GPT of
// 4 layers, width 256, context 64, batch 8, r 8, LoRA on every block linear): the adapter took 18.8% of the step's
// GPU time, 85% of it in the six rank-r GEMMs a fused op would run too; the add and the scaled gradient copy, which
// fusion could remove, were 2.8% of the step. Left for issue 25's fusion work.
#include <cmath>
#include <set>

#include "common/check.hpp"
#include "graph/name_pattern.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_adapter_node(const std::string& name) {
    return ends_with(name, ".lora_A") || ends_with(name, ".lora_B");
}

} // namespace

std::vector<std::string> Model::add_lora(const std::string& pattern, const LoraOptions& o) {
    VKT_CHECK(o.r >= 1, "add_lora: r must be at least 1");
    VKT_CHECK(std::isfinite(o.alpha) && o.alpha > 0.0f, "add_lora: alpha must be positive and finite, got ", o.alpha);
    VKT_CHECK(o.dropout >= 0.0f && o.dropout < 1.0f, "add_lora: dropout must be in [0, 1), got ", o.dropout);
    std::vector<bool> target(m_nodes.size(), false);
    std::vector<std::string> names, linears;
    for (size_t i = 0; i < m_nodes.size(); ++i) {
        const Node& n = m_nodes[i];
        if (n.op != "linear" || is_adapter_node(n.name)) continue;
        linears.push_back(n.name);
        if (!graph::matches_pattern(pattern, n.name)) continue;
        VKT_CHECK(m_node_index.count(n.name + ".lora_A") == 0, "add_lora: linear layer '", n.name,
                  "' has LoRA already");
        target[i] = true;
        names.push_back(n.name);
    }
    if (names.empty()) {
        std::string some;
        for (size_t i = 0; i < linears.size() && i < 4; ++i) some += (i ? ", " : "") + linears[i];
        if (linears.size() > 4) some += ", ...";
        VKT_FAIL("add_lora: no linear layer matches '", pattern, "' (", graph::pattern_rule, " over node names",
                 linears.empty() ? std::string("; the model has no linear layer") : "; linear layers: " + some, ")");
    }

    // The graph again, node by node, with each target's adapter right after it and its consumers reading the sum.
    Model out;
    std::vector<int> map(m_nodes.size(), -1);
    const auto node = [](const std::string& op, const std::string& name, std::vector<int> inputs,
                         std::map<std::string, double> attrs) {
        Node n;
        n.op = op;
        n.name = name;
        n.inputs = std::move(inputs);
        n.attrs = std::move(attrs);
        return n;
    };
    for (size_t i = 0; i < m_nodes.size(); ++i) {
        Node n = m_nodes[i];
        for (int& x : n.inputs) x = map[size_t(x)];
        const int id = n.op == "input" ? out.input(n.name, n.shape, n.type) : out.add_node(n, "add_lora");
        map[i] = id;
        if (!target[i]) continue;
        int x = n.inputs.at(0);
        // The adapter belongs to its layer's block (activation recomputation recomputes it with the layer).
        out.set_block(n.block);
        if (o.dropout > 0.0f)
            x = out.add_node(node("dropout", n.name + ".lora_dropout", {x}, {{"p", double(o.dropout)}}), "add_lora");
        const int a =
            out.add_node(node("linear", n.name + ".lora_A", {x}, {{"out", double(o.r)}, {"bias", 0.0}}), "add_lora");
        const int b = out.add_node(node("linear", n.name + ".lora_B", {a}, {{"out", n.attrs.at("out")}, {"bias", 0.0}}),
                                   "add_lora");
        map[i] = out.add_node(node("add", n.name + ".lora", {id, b}, {{"alpha", double(o.alpha) / double(o.r)}}),
                              "add_lora");
        out.set_block(-1);
    }
    out.m_counters = m_counters;
    for (const Override& ov : m_overrides) out.add_override(ov);
    for (const auto& [name, value] : m_outputs) out.output(map[size_t(value)], name);
    // PEFT's get_peft_model: the base is frozen, every adapter (earlier calls' too) trains; B starts at zero.
    out.set_trainable("*", false);
    for (const LoraModule& m : out.lora_modules()) {
        out.set_trainable(m.module + ".lora_A.weight", true);
        out.set_trainable(m.module + ".lora_B.weight", true);
    }
    for (const std::string& m : names) out.set_init(m + ".lora_B.weight", Init{InitKind::zeros});
    *this = std::move(out);
    return names;
}

std::vector<LoraModule> Model::lora_modules() const {
    std::vector<LoraModule> out;
    for (const Node& a : m_nodes) {
        if (a.op != "linear" || !ends_with(a.name, ".lora_A")) continue;
        LoraModule m;
        m.module = a.name.substr(0, a.name.size() - 7);
        const auto b = m_node_index.find(m.module + ".lora_B");
        const auto sum = m_node_index.find(m.module + ".lora");
        if (b == m_node_index.end() || sum == m_node_index.end()) continue; // not an adapter add_lora made
        m.in = uint32_t(m_nodes[size_t(a.inputs.at(0))].shape.back());
        m.out = uint32_t(m_nodes[size_t(b->second)].attrs.at("out"));
        m.options.r = uint32_t(a.attrs.at("out"));
        const auto& sum_attrs = m_nodes[size_t(sum->second)].attrs;
        const auto alpha = sum_attrs.find("alpha");
        m.options.alpha = float((alpha == sum_attrs.end() ? 1.0 : alpha->second) * m.options.r);
        const auto drop = m_node_index.find(m.module + ".lora_dropout");
        if (drop != m_node_index.end()) m.options.dropout = float(m_nodes[size_t(drop->second)].attrs.at("p"));
        out.push_back(std::move(m));
    }
    return out;
}

Model Model::without_lora() const {
    // Each adapter's nodes, and its sum "<m>.lora", whose consumers read "<m>" again.
    std::set<std::string> adapter_nodes;
    std::map<std::string, std::string> sums; // "<m>.lora" -> "<m>"
    for (const LoraModule& m : lora_modules()) {
        adapter_nodes.insert({m.module + ".lora_dropout", m.module + ".lora_A", m.module + ".lora_B"});
        sums[m.module + ".lora"] = m.module;
    }
    Model out;
    std::vector<int> map(m_nodes.size(), -1);
    for (size_t i = 0; i < m_nodes.size(); ++i) {
        const Node& from = m_nodes[i];
        if (adapter_nodes.count(from.name)) continue;
        const auto sum = sums.find(from.name);
        if (sum != sums.end()) {
            map[i] = map[size_t(m_node_index.at(sum->second))];
            continue;
        }
        Node n = from;
        for (int& x : n.inputs) x = map[size_t(x)];
        map[i] = n.op == "input" ? out.input(n.name, n.shape, n.type) : out.add_node(n, "without_lora");
    }
    out.m_counters = m_counters;
    // The parameter groups, less add_lora's freezing (every trainable flag: the merged model trains whole, as a base
    // exported with its adapter merged and imported again would) and whatever names an adapter's tensors.
    for (const Override& ov : m_overrides)
        if (ov.what != 0 && ov.pattern.find(".lora_") == std::string::npos) out.add_override(ov);
    for (const auto& [name, value] : m_outputs) out.output(map[size_t(value)], name);
    return out;
}

} // namespace vktrain
