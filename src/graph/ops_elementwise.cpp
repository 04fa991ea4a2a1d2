// Element-wise ops: activations (forward and backward), the residual add (also how gradients accumulate when an
// op cannot accumulate itself), and dropout.
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/elementwise.hpp"

namespace vktrain::graph {

namespace {

kernels::Activation activation_of(const IrNode& n) {
    return kernels::Activation(int(n.attr("act")));
}

Shape same_shape(const Node& n, const std::vector<const Node*>& in) {
    expect_inputs(n, in, 1);
    expect_real(n, *in[0]);
    return in[0]->shape;
}

OpDef activation(const char* name, kernels::Activation act) {
    OpDef d;
    d.name = name;
    d.infer = same_shape;
    d.inplace_input = 0; // only where the input dies here, i.e. not while training (the backward reads it)
    d.lower = [act](Ir&, IrNode& n) { n.attrs["act"] = double(int(act)); };
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_activation(e.device(), e.seq(), activation_of(n), e.batch(n.in[0]), e.batch(n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        ad.emit("activation_backward", n, "backward", {n.in[0], ad.grad_output(n)}, ad.grad_input(n, 0));
    };
    return d;
}

// dX = dY · act'(X): in = {X, dY}.
OpDef activation_backward() {
    OpDef d;
    d.name = "activation_backward";
    d.backward_only = true;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_activation_backward(e.device(), e.seq(), activation_of(n), e.batch(n.in[0]), e.batch(n.in[1]),
                                            e.batch(n.out[0]));
    };
    return d;
}

} // namespace

void register_elementwise_ops(std::vector<OpDef>& t) {
    t.push_back(activation("relu", kernels::Activation::relu));
    t.push_back(activation("gelu_tanh", kernels::Activation::gelu));
    t.push_back(activation_backward());
}

} // namespace vktrain::graph
