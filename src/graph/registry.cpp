#include "graph/registry.hpp"

#include <memory>

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

const OpDef& op_def(const std::string& name) {
    for (const OpDef& d : table())
        if (d.name == name) return d;
    VKT_FAIL("unknown op '", name, "'");
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
