#include "graph/registry.hpp"

#include <cfloat>
#include <cmath>
#include <memory>
#include <sstream>
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
    // Rotary position embeddings (Llama)
    register_rotary_ops(t);
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

const OpDef* find_op(const std::string& name) {
    const auto it = index().find(name);
    return it == index().end() ? nullptr : it->second;
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

AttrSpec AttrSpec::or_default(double value) const {
    AttrSpec a = *this;
    a.has_default = true;
    a.default_value = value;
    return a;
}
AttrSpec AttrSpec::or_same_as(const char* other) const {
    AttrSpec a = *this;
    a.default_from = other;
    return a;
}
AttrSpec AttrSpec::about(const char* text) const {
    AttrSpec a = *this;
    a.doc = text;
    return a;
}
AttrSpec AttrSpec::set_by_lowering() const {
    AttrSpec a = *this;
    a.internal = true;
    return a;
}

AttrSpec size_attr(const char* name, const char* doc) {
    return int_attr(name, 1.0, 2147483647.0, doc);
}
AttrSpec count_attr(const char* name, const char* doc) {
    return int_attr(name, 0.0, 2147483647.0, doc);
}
AttrSpec flag_attr(const char* name, const char* doc) {
    AttrSpec a{name, AttrKind::flag, 0.0, 1.0};
    a.doc = doc;
    return a;
}
AttrSpec positive_real_attr(const char* name, const char* doc) {
    AttrSpec a{name, AttrKind::real, 0.0, double(FLT_MAX), true, false};
    a.doc = doc;
    return a;
}
AttrSpec int_attr(const char* name, double min, double max, const char* doc) {
    AttrSpec a{name, AttrKind::integer, min, max};
    a.doc = doc;
    return a;
}
AttrSpec real_attr(const char* name, double min, double max, bool max_open, const char* doc) {
    AttrSpec a{name, AttrKind::real, min, max, false, max_open};
    a.doc = doc;
    return a;
}
AttrSpec shape_attr(const char* name, const char* doc) {
    AttrSpec a{name, AttrKind::shape};
    a.doc = doc;
    return a;
}

const AttrSpec* find_attr(const OpDef& def, const std::string& name) {
    for (const AttrSpec& a : def.attrs)
        if (name == a.name) return &a;
    return nullptr;
}

namespace {
std::string number_text(double v) {
    if (v == std::floor(v) && std::fabs(v) < 9.0e15) return std::to_string(int64_t(v));
    std::ostringstream s;
    s << v;
    return s.str();
}
} // namespace

std::string range_text(const AttrSpec& a) {
    if (a.kind == AttrKind::flag) return "0 or 1";
    if (a.kind == AttrKind::real && a.max == double(FLT_MAX) && !a.max_open)
        return (a.min_open ? "> " : ">= ") + number_text(a.min);
    return (a.min_open ? "(" : "[") + number_text(a.min) + ", " + number_text(a.max) + (a.max_open ? ")" : "]");
}

void check_attributes(const OpDef& def, const Node& node) {
    const AttrSpec* shape = nullptr;
    for (const AttrSpec& a : def.attrs)
        if (a.kind == AttrKind::shape) shape = &a;
    for (const auto& [key, value] : node.attrs) {
        const AttrSpec* a = find_attr(def, key);
        VKT_CHECK(a && !a->internal && a->kind != AttrKind::shape, node.op, " '", node.name, "': unknown attribute '",
                  key, "'");
    }
    VKT_CHECK(shape || node.shape_attr.empty(), node.op, " '", node.name, "' takes no shape attribute");
    for (const AttrSpec& a : def.attrs) {
        if (a.internal) continue;
        if (a.kind == AttrKind::shape) {
            VKT_CHECK(!node.shape_attr.empty() || a.optional, node.op, " '", node.name, "': attribute '", a.name,
                      "' (a shape) is missing");
            continue;
        }
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
                  range_text(a));
    }
}

double attribute_value(const OpDef& def, const std::map<std::string, double>& attrs, const std::string& node,
                       const char* name, AttrKind want, double lo, double hi) {
    const AttrSpec* a = find_attr(def, name);
    VKT_CHECK(a != nullptr, "internal: op '", def.name, "' (node '", node, "') reads attribute '", name,
              "', which it does not declare");
    const bool fits = want == AttrKind::real ? a->kind == AttrKind::real
                      : want == AttrKind::flag
                          ? a->kind == AttrKind::flag
                          : (a->kind == AttrKind::integer || a->kind == AttrKind::flag) && a->min >= lo && a->max <= hi;
    VKT_CHECK(fits, "internal: op '", def.name, "' reads attribute '", name,
              "' as a type its declaration does not fit");
    const auto it = attrs.find(name);
    VKT_CHECK(it != attrs.end(), "internal: op '", def.name, "' (node '", node, "') has no attribute '", name, "'");
    return it->second;
}

bool has_optional_attribute(const OpDef& def, const std::map<std::string, double>& attrs, const std::string& node,
                            const char* name) {
    const AttrSpec* a = find_attr(def, name);
    VKT_CHECK(a != nullptr, "internal: op '", def.name, "' (node '", node, "') reads attribute '", name,
              "', which it does not declare");
    VKT_CHECK(a->optional, "internal: op '", def.name, "' asks whether it has attribute '", name,
              "', which is not optional");
    return attrs.count(name) != 0;
}

const std::vector<int64_t>& shape_attr_of(const Node& n) {
    const OpDef& def = op_def(n.op);
    bool declared = false;
    for (const AttrSpec& a : def.attrs) declared = declared || a.kind == AttrKind::shape;
    VKT_CHECK(declared, "internal: op '", def.name, "' reads a shape attribute it does not declare");
    return n.shape_attr;
}

} // namespace vktrain::graph
