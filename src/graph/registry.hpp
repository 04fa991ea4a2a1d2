// The op registry: one entry per op with everything the graph needs to know about it. Adding an op means its
// shader(s) and variant rows, its kernel function, one entry here (in the family file ops_<family>.cpp), and
// its tests (tests/device/test_graph_ops.cpp fails for a registered op without forward, backward and
// finite-difference coverage).
#pragma once

#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "graph/ir.hpp"

namespace vktrain::graph {

class Exec;
class Autodiff;

// A parameter an op owns, named "<node name>.<suffix>" (PyTorch's state_dict names).
struct ParamDecl {
    std::string suffix;
    Shape shape;
    uint32_t fan_in = 0;
    InitKind init = InitKind::default_init; // default_init: U(+-1/sqrt(fan_in)) (PyTorch Linear/Conv2d)
    bool buffer = false;                    // state (running statistics), not trained
    bool counter = false;                   // a host-side buffer counting training forward passes
    bool persistent = true;                 // buffers: false for run-time state that is never saved (caches)
    // Init::a and Init::b of `init` (normal: mean and std; an embedding's N(0, 1)).
    float init_a = 0.0f, init_b = 0.0f;
};

// An attribute of an op (Node::attrs, or Node::shape_attr for a shape). The declaration is the single source for
// everything that handles attributes: Model::add_node checks values against it (so a file's bad value is a one-line
// error and infer/record convert without checks), Model::op fills defaults from it, list_ops() (and through it the C
// API's listing, `vktrain ops` and describe) publishes it, and the typed accessors attr<T>() below refuse to read an
// attribute that is not declared. Model::from_json replays nodes from files, so a value may be missing, fractional,
// huge or negative; such a node is refused with one line naming it.
using vktrain::AttrKind; // integer, real, flag (0 or 1), shape (reshape's target; at most one per op)
struct AttrSpec {
    const char* name;
    AttrKind kind;
    double min = 0.0, max = 0.0; // integer and real; flags are 0 or 1
    bool min_open = false, max_open = false;
    bool optional = false; // may be absent (the op then behaves as before the attribute existed); no default
    // What Model::op uses when the caller gives no value: a number, or the value of an attribute declared earlier
    // (pooling's stride_h is kernel_h). Neither (and not optional): the attribute is required.
    bool has_default = false;
    double default_value = 0.0;
    const char* default_from = nullptr;
    const char* doc = ""; // one line: what it means, for listings and bindings
    // Written by the op's lower() (e.g. an activation's kind, a convolution's input shape) and read by record():
    // declared so the accessors can check them, but never part of a model (refused in Model::add_node and files).
    bool internal = false;

    AttrSpec or_default(double value) const;
    AttrSpec or_same_as(const char* other) const;
    AttrSpec about(const char* text) const;
    AttrSpec set_by_lowering() const;
};
// Common ranges: a size (1 .. 2^31 - 1), a non-negative count, a yes/no, a positive real (0, FLT_MAX], an integer in
// [min, max], a real in [min, max] (open ends where said), a shape.
AttrSpec size_attr(const char* name, const char* doc = "");
AttrSpec count_attr(const char* name, const char* doc = "");
AttrSpec flag_attr(const char* name, const char* doc = "");
AttrSpec positive_real_attr(const char* name, const char* doc = "");
AttrSpec int_attr(const char* name, double min, double max, const char* doc = "");
AttrSpec real_attr(const char* name, double min, double max, bool max_open, const char* doc = "");
AttrSpec shape_attr(const char* name, const char* doc = "");

struct OpDef {
    std::string name;
    std::vector<AttrSpec> attrs; // the attributes (model-level ones, then those lower() sets); any other is refused
    // ---- The public face: ops with is_public are what Model::op builds, and so the C API's vkt_model_op, the CLI's
    // "net:" model spec and list_ops(). A public op has a one-line doc, names its inputs, and says how nodes are named.
    bool is_public = false;
    const char* doc = "";
    const char* category = "";         // "dense", "vision", "activation", "shape", "norm", "loss", ...
    std::vector<const char*> inputs;   // the data inputs' names, in order ({"x"}, {"logits", "labels"})
    const char* node_prefix = nullptr; // Model::op names nodes <prefix><n> ("conv0"); nullptr: the op's name
    bool fixed_name = false;           // the node is named node_prefix itself (a model's one loss: "loss")
    // Model::describe(): the op in the general form and in the MLP form ("784-256(relu)-10"), "{attr}" replaced by
    // that attribute's value. summary nullptr: the op's name; mlp_summary nullptr: a model with this op is not an MLP.
    const char* summary = nullptr;
    const char* mlp_summary = nullptr;
    // Model level: the per-sample output shape from the inputs' (throws vktrain::Error on bad input).
    std::function<Shape(const Node& node, const std::vector<const Node*>& inputs)> infer;
    std::function<std::vector<ParamDecl>(const Node& node, const std::vector<const Node*>& inputs)> params;
    // Lowering: extra values the op writes besides its output (e.g. saved statistics), appended to out.
    std::function<void(Ir& ir, IrNode& node)> lower;
    // Recording. `sites` only declares the GEMM sites (so paths are chosen before memory is allocated).
    std::function<void(Exec& e, const IrNode& node)> record;
    std::function<void(Exec& e, const IrNode& node)> sites;
    // The backward pass as further nodes (see Autodiff); empty for ops without one (backward-only ops).
    std::function<void(Autodiff& ad, const IrNode& node)> backward;
    bool can_accumulate = false; // record honours IrNode::accumulate
    bool view = false;           // out[0] is a reshape of in[0]: no kernel
    int inplace_input = -1;      // out[0] may reuse in[inplace_input]'s storage when that input dies here
    bool loss = false;
    bool backward_only = false;  // emitted by autodiff only
    bool inference_only = false; // no backward (e.g. a decode-time cache): models using it only run forward
};

// Throws vktrain::Error for an unknown name.
const OpDef& op_def(const std::string& name);
const OpDef* find_op(const std::string& name); // nullptr for an unknown name
std::vector<const OpDef*> registered_ops();
// The declaration of attribute `name` of `def`, or nullptr.
const AttrSpec* find_attr(const OpDef& def, const std::string& name);

// Helpers for op entries.
void register_ops(std::vector<OpDef>& table); // every family, in one place (registry.cpp)
void register_dense_ops(std::vector<OpDef>& table);
void register_elementwise_ops(std::vector<OpDef>& table);
void register_loss_ops(std::vector<OpDef>& table);
void register_vision_ops(std::vector<OpDef>& table);
void register_shape_ops(std::vector<OpDef>& table);
void register_decode_ops(std::vector<OpDef>& table); // generation
// Embeddings: token embedding, positional embedding, weight tying (after dense: linear_tied reuses linear).
void register_embedding_ops(std::vector<OpDef>& table);
// LayerNorm and RMSNorm (ops_norm.cpp)
void register_norm_ops(std::vector<OpDef>& table);
// softmax and self-attention (issue 12)
void register_attention_ops(std::vector<OpDef>& table);
// Rotary position embeddings (ops_rotary.cpp; Llama)
void register_rotary_ops(std::vector<OpDef>& table);

// Checks for shape inference.
void expect_inputs(const Node& node, const std::vector<const Node*>& inputs, size_t count);
void expect_real(const Node& node, const Node& input);
// "[1, 2147483647]", "(0, 1]", "> 0", "0 or 1": the values an attribute accepts, as messages and listings write them.
std::string range_text(const AttrSpec& a);
// Every declared attribute present and in range, no undeclared one (Model::add_node).
void check_attributes(const OpDef& def, const Node& node);

// ---- Reading attributes: the one path from a node's attributes to the values an op passes to its kernel ----
// attr<T>(node, "kernel_h") returns the attribute as T after checking that the node's op declares it with a kind T
// can hold (uint32_t / int32_t / int64_t: integer or flag within T's range; float / double: real; bool: flag). A
// backward node reads the attributes of the forward node it was derived from (IrNode::attrs_of). An undeclared name
// or a kind mismatch is an internal error naming the op and the attribute, at the first run of the op.
double attribute_value(const OpDef& def, const std::map<std::string, double>& attrs, const std::string& node,
                       const char* name, AttrKind want, double lo, double hi);
template <typename T>
T attr_as(const OpDef& def, const std::map<std::string, double>& attrs, const std::string& node, const char* name) {
    static_assert(std::is_arithmetic_v<T>, "attributes are numbers (shapes: shape_attr_of)");
    if constexpr (std::is_same_v<T, bool>) {
        return attribute_value(def, attrs, node, name, AttrKind::flag, 0.0, 1.0) != 0.0;
    } else if constexpr (std::is_floating_point_v<T>) {
        return static_cast<T>(attribute_value(def, attrs, node, name, AttrKind::real, 0.0, 0.0));
    } else {
        return static_cast<T>(attribute_value(def, attrs, node, name, AttrKind::integer,
                                              double(std::numeric_limits<T>::min()),
                                              double(std::numeric_limits<T>::max())));
    }
}
// Whether a node carries an attribute its op declares optional (cross_entropy's ignore_index); reading an
// undeclared one, or asking about a required one, is an internal error as above.
bool has_optional_attribute(const OpDef& def, const std::map<std::string, double>& attrs, const std::string& node,
                            const char* name);
template <typename T>
T attr(const IrNode& n, const char* name) {
    return attr_as<T>(n.attrs_of ? *n.attrs_of : *n.op, n.attrs, n.name, name);
}
template <typename T>
T attr(const Node& n, const char* name) {
    return attr_as<T>(op_def(n.op), n.attrs, n.name, name);
}
// An optional attribute as T (checked as attr<T>), or nothing when the node lacks it.
template <typename T>
std::optional<T> optional_attr(const IrNode& n, const char* name) {
    const OpDef& def = n.attrs_of ? *n.attrs_of : *n.op;
    if (!has_optional_attribute(def, n.attrs, n.name, name)) return std::nullopt;
    return attr<T>(n, name);
}
template <typename T>
std::optional<T> optional_attr(const Node& n, const char* name) {
    if (!has_optional_attribute(op_def(n.op), n.attrs, n.name, name)) return std::nullopt;
    return attr<T>(n, name);
}
// The shape attribute (Node::shape_attr), checked to be declared.
const std::vector<int64_t>& shape_attr_of(const Node& n);

} // namespace vktrain::graph
