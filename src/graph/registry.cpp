#include "graph/registry.hpp"

#include <cfloat>
#include <cmath>
#include <memory>
#include <unordered_map>

#include "common/check.hpp"

namespace vktrain::graph {

namespace {

// Built on first use and never changed after: a constant table, not mutable global state.
const std::vector<OpDef>& table() {
    static const std::vector<OpDef> ops = [] {
        std::vector<OpDef> t;
        register_ops(t);
        return t;
    }();
    return ops;
}

} // namespace

void register_ops(std::vector<OpDef>& t) {
    OpDef input;
    input.name = "input";
    input.infer = [](const Node& n, const std::vector<const Node*>&) { return n.shape; };
    t.push_back(input);
    register_dense_ops(t);
    register_elementwise_ops(t);
    register_loss_ops(t);
    register_vision_ops(t);
    register_shape_ops(t);
    register_decode_ops(t);    // generation
    register_embedding_ops(t); // embeddings
    // LayerNorm and RMSNorm
    register_norm_ops(t);
    // softmax and self-attention (issue 12)
    register_attention_ops(t);
}

namespace {

// Looked up for every node of every model, many times over: by hash, not by scanning the table.
const std::unordered_map<std::string, const OpDef*>& index() {
    static const std::unordered_map<std::string, const OpDef*> by_name = [] {
        std::unordered_map<std::string, const OpDef*> m;
        for (const OpDef& d : table()) m.emplace(d.name, &d);
        return m;
    }();
    return by_name;
}

} // namespace

const OpDef& op_def(const std::string& name) {
    const auto it = index().find(name);
    VKT_CHECK(it != index().end(), "unknown op '", name, "'");
    return *it->second;
}

std::vector<const OpDef*> registered_ops() {
    std::vector<const OpDef*> out;
    for (const OpDef& d : table()) out.push_back(&d);
    return out;
}

void expect_inputs(const Node& node, const std::vector<const Node*>& inputs, size_t count) {
    VKT_CHECK(inputs.size() == count, node.op, " '", node.name, "' takes ", count, " input(s), got ", inputs.size());
}

void expect_real(const Node& node, const Node& input) {
    VKT_CHECK(input.type == DataType::f32, node.op, " '", node.name, "': input '", input.name,
              "' holds integers; this op takes real values");
}

} // namespace vktrain::graph

namespace vktrain::graph {

AttrSpec size_attr(const char* name) {
    return {name, AttrKind::integer, 1.0, 2147483647.0};
}
AttrSpec count_attr(const char* name) {
    return {name, AttrKind::integer, 0.0, 2147483647.0};
}
AttrSpec flag_attr(const char* name) {
    return {name, AttrKind::flag};
}
AttrSpec positive_real_attr(const char* name) {
    return {name, AttrKind::real, 0.0, double(FLT_MAX), true, false};
}

void check_attributes(const OpDef& def, const Node& node) {
    for (const auto& [key, value] : node.attrs) {
        bool known = false;
        for (const AttrSpec& a : def.attrs) known = known || key == a.name;
        VKT_CHECK(known, node.op, " '", node.name, "': unknown attribute '", key, "'");
    }
    for (const AttrSpec& a : def.attrs) {
        const auto it = node.attrs.find(a.name);
        if (it == node.attrs.end() && a.optional) continue;
        VKT_CHECK(it != node.attrs.end(), node.op, " '", node.name, "': attribute '", a.name, "' is missing");
        const double v = it->second;
        VKT_CHECK(std::isfinite(v), node.op, " '", node.name, "': attribute '", a.name, "' is not finite");
        if (a.kind == AttrKind::flag) {
            VKT_CHECK(v == 0 || v == 1, node.op, " '", node.name, "': attribute '", a.name, "' is ", v,
                      "; expected 0 or 1");
            continue;
        }
        if (a.kind == AttrKind::integer)
            VKT_CHECK(v == std::floor(v), node.op, " '", node.name, "': attribute '", a.name, "' is ", v,
                      "; expected an integer");
        const bool low = a.min_open ? v > a.min : v >= a.min, high = a.max_open ? v < a.max : v <= a.max;
        VKT_CHECK(low && high, node.op, " '", node.name, "': attribute '", a.name, "' is ", v, "; expected ",
                  a.min_open ? "(" : "[", a.min, ", ", a.max, a.max_open ? ")" : "]");
    }
}

} // namespace vktrain::graph
