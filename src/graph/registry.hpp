// The op registry: one entry per op with everything the graph needs to know about it. Adding an op means its
// shader(s) and variant rows, its kernel function, one entry here (in the family file ops_<family>.cpp), and
// its tests (tests/device/test_graph_ops.cpp fails for a registered op without forward, backward and
// finite-difference coverage).
#pragma once

#include <functional>
#include <string>
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

// A model-level attribute an op reads (Node::attrs): checked once in Model::add_node, so every op may convert it
// without further checks. Model::from_json replays nodes from files, so a value may be missing, fractional, huge
// or negative; such a node is refused with one line naming it.
enum class AttrKind { integer, real, flag };
struct AttrSpec {
    const char* name;
    AttrKind kind;
    double min = 0.0, max = 0.0; // integer and real; flags are 0 or 1
    bool min_open = false, max_open = false;
    bool optional = false; // may be absent (the op then behaves as before the attribute existed)
};
// Common ranges: a size (1 .. 2^31 - 1), a non-negative count, a yes/no.
AttrSpec size_attr(const char* name);
AttrSpec count_attr(const char* name);
AttrSpec flag_attr(const char* name);
AttrSpec positive_real_attr(const char* name); // (0, FLT_MAX]

struct OpDef {
    std::string name;
    std::vector<AttrSpec> attrs; // the model-level attributes; any other key is refused
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
std::vector<const OpDef*> registered_ops();

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

// Checks for shape inference.
void expect_inputs(const Node& node, const std::vector<const Node*>& inputs, size_t count);
void expect_real(const Node& node, const Node& input);
// Every declared attribute present and in range, no undeclared one (Model::add_node).
void check_attributes(const OpDef& def, const Node& node);

} // namespace vktrain::graph
