// The faces of the op registry on the public Model: the generic builder Model::op (which every typed builder calls),
// list_ops() (which the C API, the vktrain command and bindings read), and describe().
#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/check.hpp"
#include "graph/registry.hpp"
#include "vktrain/model.hpp"

namespace vktrain {

namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
    return s.empty() ? "none" : s;
}

std::vector<std::string> attribute_names(const graph::OpDef& def) {
    std::vector<std::string> out;
    for (const graph::AttrSpec& a : def.attrs)
        if (!a.internal) out.emplace_back(a.name);
    return out;
}

std::vector<std::string> public_op_names() {
    std::vector<std::string> out;
    for (const graph::OpDef* d : graph::registered_ops())
        if (d->is_public) out.push_back(d->name);
    return out;
}

} // namespace

int Model::op(const std::string& name, const std::vector<int>& inputs, const OpAttrs& attrs) {
    const graph::OpDef* def = graph::find_op(name);
    VKT_CHECK(def != nullptr && def->is_public,
              name == "input" ? "op 'input': inputs are made with Model::input"
              : def           ? "op '" + name + "' is internal to vktrain (not a model op)"
                              : "unknown op '" + name + "'",
              " (ops: ", joined(public_op_names()), ")");
    std::vector<std::string> input_names(def->inputs.begin(), def->inputs.end());
    VKT_CHECK(inputs.size() == def->inputs.size(), name, " takes ", def->inputs.size(), " input(s) (",
              joined(input_names), "), got ", inputs.size());
    Node n;
    n.op = name;
    n.inputs = inputs;
    for (const auto& [key, value] : attrs) {
        const graph::AttrSpec* a = graph::find_attr(*def, key);
        VKT_CHECK(a != nullptr && !a->internal, name, ": unknown attribute '", key,
                  "' (attributes: ", joined(attribute_names(*def)), ")");
        if (a->kind == AttrKind::shape) {
            VKT_CHECK(value.is_shape(), name, ": attribute '", key,
                      "' is a shape (a list of dimensions), not a number");
            n.shape_attr = value.shape();
        } else {
            VKT_CHECK(!value.is_shape(), name, ": attribute '", key, "' is a number, not a shape");
            n.attrs[key] = value.number();
        }
    }
    // Defaults, in declaration order, so that one may copy an attribute declared before it (given or defaulted).
    for (const graph::AttrSpec& a : def->attrs) {
        if (a.internal || a.kind == AttrKind::shape || n.attrs.count(a.name)) continue;
        if (a.has_default) {
            n.attrs[a.name] = a.default_value;
        } else if (a.default_from) {
            const auto from = n.attrs.find(a.default_from);
            if (from != n.attrs.end()) n.attrs[a.name] = from->second;
        }
        // Otherwise required (Model::add_node names it when missing) or optional.
    }
    const std::string prefix = def->node_prefix ? def->node_prefix : def->name;
    // A name Model::rename gave an earlier node (torchvision's "conv1", "bn1") is skipped, not a clash.
    while (!def->fixed_name && m_node_index.count(prefix + std::to_string(m_counters[prefix])) != 0)
        ++m_counters[prefix];
    // The counter moves only when the node is added: a refused call leaves the next node's name as it was.
    n.name = def->fixed_name ? prefix : prefix + std::to_string(m_counters[prefix]);
    const int id = add_node(std::move(n), name.c_str());
    if (!def->fixed_name) ++m_counters[prefix];
    return id;
}

std::vector<OpInfo> list_ops() {
    std::vector<OpInfo> out;
    for (const graph::OpDef* d : graph::registered_ops()) {
        if (!d->is_public) continue;
        OpInfo o;
        o.name = d->name;
        o.doc = d->doc;
        o.category = d->category;
        o.inputs.assign(d->inputs.begin(), d->inputs.end());
        o.loss = d->loss;
        o.inference_only = d->inference_only;
        for (const graph::AttrSpec& a : d->attrs) {
            if (a.internal) continue;
            OpAttrInfo i;
            i.name = a.name;
            i.kind = a.kind;
            i.min = a.min;
            i.max = a.max;
            i.min_open = a.min_open;
            i.max_open = a.max_open;
            if (a.has_default) i.default_value = a.default_value;
            if (a.default_from) i.default_from = a.default_from;
            i.optional = a.optional;
            i.required = !a.has_default && !a.default_from && !a.optional;
            i.doc = a.doc;
            o.attrs.push_back(std::move(i));
        }
        out.push_back(std::move(o));
    }
    return out;
}

namespace {

// An op's describe() pattern with each "{attr}" replaced by the node's value of that attribute.
std::string expand(const char* pattern, const Node& n) {
    std::string s;
    for (const char* p = pattern; *p;) {
        const char* close = *p == '{' ? std::strchr(p, '}') : nullptr;
        if (!close) {
            s += *p++;
            continue;
        }
        const std::string key(p + 1, close);
        const auto it = n.attrs.find(key);
        VKT_CHECK(it != n.attrs.end(), "internal: describe() of op '", n.op, "' names attribute '", key, "'");
        const double v = it->second;
        if (v == std::floor(v) && std::fabs(v) < 9.0e15) {
            s += std::to_string(int64_t(v));
        } else {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%g", v);
            s += buf;
        }
        p = close + 1;
    }
    return s;
}

} // namespace

// Two forms, both read from the registry (OpDef::summary, OpDef::mlp_summary): an MLP as "784-256(relu)-128(relu)-10"
// (the form files of earlier versions recorded, and checkpoints compare), any other graph op by op.
std::string Model::describe() const {
    if (m_nodes.empty()) return "empty";
    bool mlp = m_nodes[0].op == "input" && m_nodes[0].shape.size() == 1;
    for (const Node& n : m_nodes) mlp = mlp && (n.op == "input" || graph::op_def(n.op).mlp_summary != nullptr);
    std::string s;
    if (mlp) {
        s = std::to_string(m_nodes[0].shape[0]);
        for (const Node& n : m_nodes)
            if (n.op != "input") s += expand(graph::op_def(n.op).mlp_summary, n);
        return s;
    }
    for (const Node& n : m_nodes) {
        if (n.op == "input" && n.type == DataType::i32) continue;
        if (!s.empty()) s += " ";
        if (n.op == "input") {
            s += graph::shape_text(n.shape);
            continue;
        }
        const graph::OpDef& def = graph::op_def(n.op);
        s += def.summary ? expand(def.summary, n) : n.op;
        const auto frozen = n.attrs.find("frozen_stats"); // Model::freeze_batch_norm
        if (frozen != n.attrs.end() && frozen->second != 0) s += "(frozen)";
    }
    return s;
}

} // namespace vktrain
