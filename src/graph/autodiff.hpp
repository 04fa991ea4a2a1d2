// Reverse-mode autodiff as a graph transform: the forward nodes of an Ir are walked in reverse and each op's
// registry entry appends the nodes of its backward pass. A value's gradient is created by the first
// contribution (which writes it) and later contributions accumulate into it (accumulate mode where the op
// has one, else into a temporary plus an in-place add), so values with several consumers are handled.
#pragma once

#include "graph/ir.hpp"

namespace vktrain::graph {

class Autodiff {
public:
    struct Target {
        int value = -1;
        bool accumulate = false;
        bool valid() const { return value >= 0; }
    };

    explicit Autodiff(Ir& ir);
    void run(); // appends the backward pass after the forward nodes

    Ir& ir() { return m_ir; }
    // The gradient of a forward node's output (exists when its backward runs).
    int grad_output(const IrNode& node) const;
    // Where the gradient of node.in[i] goes: invalid when it needs none (data inputs, frozen parameters, values
    // that depend on no trainable parameter, state). Parameters' gradients are fp32 Role::param_grad values.
    Target grad_input(const IrNode& node, size_t i);
    bool needs_grad(int value) const { return m_needs[size_t(value)]; }
    // Appends a backward node; `out` receives the result (accumulating where the target says so).
    void emit(const std::string& op, const IrNode& forward, const std::string& what, std::vector<int> in, Target out,
              std::vector<int> extra_out = {}, std::map<std::string, double> attrs = {});
    int scratch(const Shape& shape, Storage storage, const std::string& label);
    // A fused loss writes its input's gradient itself: `grad` becomes the gradient of `value`.
    void set_grad(int value, int grad) { m_grad.at(size_t(value)) = grad; }

private:
    Ir& m_ir;
    std::vector<bool> m_needs;
    std::vector<int> m_grad; // per value: its gradient value or -1
};

} // namespace vktrain::graph
