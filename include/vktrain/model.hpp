// A model is a static graph of ops on [batch, features] tensors, built through this API and compiled
// by the Trainer into one recorded command buffer. Ops so far: linear, relu, gelu, and a softmax
// cross-entropy head; conv, norms and attention are meant to slot in as further ops. For now the graph
// must be a chain: every value but the input feeds exactly one op (the Trainer refuses anything else).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vktrain {

enum class OpKind { input, linear, relu, gelu };

struct Node {
    OpKind kind = OpKind::input;
    int input = -1;        // the producing node (-1 for the input)
    uint32_t features = 0; // output features
    bool bias = false;     // linear
    std::string name;      // linear: parameter prefix ("linear0")
};

struct ParameterInfo {
    std::string name;           // e.g. "linear0.weight" (stable across runs: checkpoints use it)
    std::vector<int64_t> shape; // weight: {out, in} (PyTorch nn.Linear layout); bias: {out}
    uint32_t fan_in = 0;
};

class Model {
public:
    explicit Model(uint32_t input_features);

    int input() const { return 0; }
    int linear(int x, uint32_t out_features, bool bias = true);
    int relu(int x);
    int gelu(int x);
    // Marks `logits` as the output, trained with softmax cross-entropy against integer labels.
    void softmax_cross_entropy(int logits);

    // input -> [linear -> act] * hidden -> linear(classes) -> softmax cross-entropy
    static Model mlp(uint32_t input_features, const std::vector<uint32_t>& hidden, uint32_t classes,
                     OpKind activation = OpKind::relu);

    const std::vector<Node>& nodes() const { return m_nodes; }
    int output() const { return m_output; }
    uint32_t input_features() const { return m_nodes[0].features; }
    uint32_t classes() const;
    std::vector<ParameterInfo> parameters() const;
    uint64_t parameter_count() const;
    std::string describe() const; // "784-256(relu)-128(relu)-10"

private:
    int add(Node node);
    int elementwise(int x, OpKind kind, const char* op); // a same-shape op such as an activation
    void check_node(int x, const char* op) const;

    std::vector<Node> m_nodes;
    int m_output = -1;
    int m_linear_count = 0;
};

} // namespace vktrain
