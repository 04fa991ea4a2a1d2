#include "vktrain/model.hpp"

#include "common/check.hpp"

namespace vktrain {

Model::Model(uint32_t input_features) {
    VKT_CHECK(input_features > 0, "a model needs at least one input feature");
    Node in;
    in.kind = OpKind::input;
    in.features = input_features;
    in.name = "input";
    m_nodes.push_back(in);
}

void Model::check_node(int x, const char* op) const {
    VKT_CHECK(x >= 0 && size_t(x) < m_nodes.size(), op, ": node ", x, " does not exist");
    VKT_CHECK(m_output < 0, op, ": the model's output is already set; add ops before softmax_cross_entropy");
}

int Model::add(Node node) {
    m_nodes.push_back(std::move(node));
    return int(m_nodes.size() - 1);
}

int Model::linear(int x, uint32_t out_features, bool bias) {
    check_node(x, "linear");
    VKT_CHECK(out_features > 0, "linear: out_features must be positive");
    Node n;
    n.kind = OpKind::linear;
    n.input = x;
    n.features = out_features;
    n.bias = bias;
    n.name = "linear" + std::to_string(m_linear_count++);
    return add(n);
}

int Model::elementwise(int x, OpKind kind, const char* op) {
    check_node(x, op);
    Node n;
    n.kind = kind;
    n.input = x;
    n.features = m_nodes[x].features;
    return add(n);
}

int Model::relu(int x) {
    return elementwise(x, OpKind::relu, "relu");
}
int Model::gelu(int x) {
    return elementwise(x, OpKind::gelu, "gelu");
}

void Model::softmax_cross_entropy(int logits) {
    check_node(logits, "softmax_cross_entropy");
    VKT_CHECK(m_nodes[logits].features >= 2, "softmax_cross_entropy needs at least 2 classes");
    VKT_CHECK(logits == int(m_nodes.size()) - 1, "softmax_cross_entropy must take the last node");
    m_output = logits;
}

uint32_t Model::classes() const {
    VKT_CHECK(m_output >= 0, "the model has no output (call softmax_cross_entropy)");
    return m_nodes[m_output].features;
}

Model Model::mlp(uint32_t input_features, const std::vector<uint32_t>& hidden, uint32_t classes, OpKind activation) {
    VKT_CHECK(activation == OpKind::relu || activation == OpKind::gelu, "mlp activation must be relu or gelu");
    Model m(input_features);
    int x = m.input();
    for (uint32_t h : hidden) {
        x = m.linear(x, h);
        x = activation == OpKind::relu ? m.relu(x) : m.gelu(x);
    }
    x = m.linear(x, classes);
    m.softmax_cross_entropy(x);
    return m;
}

std::vector<ParameterInfo> Model::parameters() const {
    std::vector<ParameterInfo> out;
    for (const Node& n : m_nodes) {
        if (n.kind != OpKind::linear) continue;
        const uint32_t in = m_nodes[n.input].features;
        out.push_back({n.name + ".weight", {int64_t(n.features), int64_t(in)}, in});
        if (n.bias) out.push_back({n.name + ".bias", {int64_t(n.features)}, in});
    }
    return out;
}

uint64_t Model::parameter_count() const {
    uint64_t total = 0;
    for (const auto& p : parameters()) {
        uint64_t e = 1;
        for (int64_t d : p.shape) e *= uint64_t(d);
        total += e;
    }
    return total;
}

std::string Model::describe() const {
    std::string s = std::to_string(m_nodes[0].features);
    for (size_t i = 1; i < m_nodes.size(); ++i) {
        const Node& n = m_nodes[i];
        if (n.kind == OpKind::linear) s += "-" + std::to_string(n.features);
        if (n.kind == OpKind::relu) s += "(relu)";
        if (n.kind == OpKind::gelu) s += "(gelu)";
    }
    return s;
}

} // namespace vktrain
