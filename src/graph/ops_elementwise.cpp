// Element-wise ops: activations (forward and backward), the residual add (also how gradients accumulate when an
// op cannot accumulate itself), and dropout.
#include <cstddef>

#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/dropout.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/loss.hpp"

namespace vktrain::graph {

namespace {

kernels::Activation activation_of(const IrNode& n) {
    return kernels::Activation(attr<int>(n, "act"));
}

Shape same_shape(const Node& n, const std::vector<const Node*>& in) {
    expect_inputs(n, in, 1);
    expect_real(n, *in[0]);
    return in[0]->shape;
}

OpDef activation(const char* name, kernels::Activation act, const char* doc, const char* prefix,
                 const char* mlp_summary = nullptr) {
    OpDef d;
    d.name = name;
    d.is_public = true;
    d.doc = doc;
    d.category = "activation";
    d.inputs = {"x"};
    d.node_prefix = prefix;
    d.mlp_summary = mlp_summary;
    d.attrs = {int_attr("act", 0, 255, "the kernel's activation (kernels::Activation)").set_by_lowering()};
    d.infer = same_shape;
    d.inplace_input = 0; // only where the input dies here, i.e. not while training (the backward reads it)
    d.lower = [act](Ir&, IrNode& n) { n.attrs["act"] = double(int(act)); };
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_activation(e.device(), e.seq(), activation_of(n), e.batch(n.in[0]), e.batch(n.out[0]));
    };
    d.backward = [act](Autodiff& ad, const IrNode& n) {
        // ReLU's derivative is [y > 0] = [x > 0]: reading the output lets the input die at the forward op, which
        // then runs in place (the planner reuses the input's bytes).
        const int from = act == kernels::Activation::relu ? n.out[0] : n.in[0];
        ad.emit("activation_backward", n, "backward", {from, ad.grad_output(n)}, ad.grad_input(n, 0));
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

// add's alpha: 1 for the adds autodiff makes to accumulate gradients (they copy their forward node's attributes,
// which may be a scaled add's, and must not scale) and for graphs recorded before alpha existed.
float add_alpha(const IrNode& n) {
    const auto it = n.attrs.find("alpha");
    return n.backward || it == n.attrs.end() ? 1.0f : float(it->second);
}

// out = a + alpha·b (same shapes). Also how a gradient accumulates when the op producing a contribution cannot: then
// in = {target, part}, out = {target}.
OpDef add() {
    OpDef d;
    d.name = "add";
    d.is_public = true;
    d.doc = "a + alpha·b, element-wise, same shapes (residual connections; alpha: LoRA's scaling)";
    d.category = "elementwise";
    d.inputs = {"a", "b"};
    AttrSpec alpha = real_attr("alpha", -1e30, 1e30, false, "the factor b is multiplied by (absent: 1)");
    alpha.optional = true; // absent from the graphs of models without LoRA, which record what they did before
    d.attrs = {alpha};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 2);
        expect_real(n, *in[0]);
        expect_real(n, *in[1]);
        VKT_CHECK(in[0]->shape == in[1]->shape, "add '", n.name, "': shapes ", shape_text(in[0]->shape), " and ",
                  shape_text(in[1]->shape), " differ");
        return in[0]->shape;
    };
    d.inplace_input = 0;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_add(e.device(), e.seq(), e.batch(n.in[0]), e.batch(n.in[1]), e.batch(n.out[0]), add_alpha(n));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        // Both inputs receive the output's gradient (b's times alpha). The first one's gradient, when this is its
        // first contribution, is the output's gradient itself (an alias: no kernel, no memory); otherwise a copy or
        // an accumulation.
        const int g = ad.grad_output(n);
        const double b_scale = add_alpha(n);
        for (size_t i = 0; i < 2; ++i) {
            const Autodiff::Target t = ad.grad_input(n, i);
            if (!t.valid()) continue;
            if (i == 0 && !t.accumulate &&
                ad.ir().values[size_t(t.value)].storage == ad.ir().values[size_t(g)].storage) {
                ad.ir().values[size_t(t.value)].view_of = g;
                continue;
            }
            ad.emit("copy", n, i == 0 ? "grad_a" : "grad_b", {g}, t, {}, {{"scale", i == 0 ? 1.0 : b_scale}});
        }
    };
    return d;
}

// out (+)= scale·in: how add passes its gradient on (accumulating where the target already holds a contribution;
// scale: add's alpha for b, else 1).
OpDef copy() {
    OpDef d;
    d.name = "copy";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const auto it = n.attrs.find("scale");
        const float scale = it == n.attrs.end() ? 1.0f : float(it->second);
        if (n.accumulate)
            kernels::record_add(e.device(), e.seq(), e.batch(n.out[0]), e.batch(n.in[0]), e.batch(n.out[0]), scale);
        else
            kernels::record_cast(e.device(), e.seq(), e.batch(n.in[0]), e.batch(n.out[0]), scale);
    };
    return d;
}

// out = a·b (same shapes: SwiGLU's gate). Its backward is two more of it, dA = dY·b and dB = dY·a; where a gradient
// already holds a contribution, autodiff writes the product to a temporary and adds it (mul does not accumulate).
OpDef mul() {
    OpDef d;
    d.name = "mul";
    d.is_public = true;
    d.doc = "a·b, element-wise, same shapes (SwiGLU's gating: silu(gate)·up)";
    d.category = "elementwise";
    d.inputs = {"a", "b"};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 2);
        expect_real(n, *in[0]);
        expect_real(n, *in[1]);
        VKT_CHECK(in[0]->shape == in[1]->shape, "mul '", n.name, "': shapes ", shape_text(in[0]->shape), " and ",
                  shape_text(in[1]->shape), " differ");
        return in[0]->shape;
    };
    d.inplace_input = 0;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_mul(e.device(), e.seq(), e.batch(n.in[0]), e.batch(n.in[1]), e.batch(n.out[0]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        const int g = ad.grad_output(n);
        ad.emit("mul", n, "grad_a", {g, n.in[1]}, ad.grad_input(n, 0));
        ad.emit("mul", n, "grad_b", {g, n.in[0]}, ad.grad_input(n, 1));
    };
    return d;
}

// The step counter the dropout masks depend on: StepParams::step, a uint32 at this byte offset.
constexpr uint32_t k_step_offset = offsetof(kernels::StepParams, step);

uint32_t dropout_seed(const IrNode& n) {
    uint32_t h = 2166136261u; // FNV-1a of the node name: each dropout layer draws its own masks
    for (char c : n.name) h = (h ^ uint8_t(c)) * 16777619u;
    return h;
}

OpDef dropout() {
    OpDef d;
    d.name = "dropout";
    d.is_public = true;
    d.doc = "zeroes each element with probability p in training and scales the rest by 1/(1-p); identity in evaluation";
    d.category = "elementwise";
    d.inputs = {"x"};
    d.attrs = {real_attr("p", 0.0, 1.0, true, "the probability of zeroing an element"),
               int_attr("seed", 0, 4294967295.0, "the trainer's seed (masks depend on it)").set_by_lowering()};
    d.infer = same_shape;
    d.record = [](Exec& e, const IrNode& n) {
        // Evaluation: the identity (a copy, which the planner may turn in-place in later versions).
        const float p = e.ir().training ? attr<float>(n, "p") : 0.0f;
        kernels::record_dropout(e.device(), e.seq(), p, dropout_seed(n) ^ attr<uint32_t>(n, "seed"), e.step_params(),
                                k_step_offset, e.batch(n.in[0]), e.batch(n.out[0]));
    };
    d.lower = [](Ir& ir, IrNode& n) { n.attrs["seed"] = double(ir.seed & 0xffffffffu); };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        ad.emit("dropout_backward", n, "backward", {ad.grad_output(n)}, ad.grad_input(n, 0));
    };
    return d;
}

OpDef dropout_backward() {
    OpDef d;
    d.name = "dropout_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_dropout_backward(e.device(), e.seq(), attr<float>(n, "p"),
                                         dropout_seed(n) ^ attr<uint32_t>(n, "seed"), e.step_params(), k_step_offset,
                                         e.batch(n.in[0]), e.batch(n.out[0]), n.accumulate);
    };
    return d;
}

} // namespace

void register_elementwise_ops(std::vector<OpDef>& t) {
    t.push_back(activation("relu", kernels::Activation::relu, "max(0, x) (PyTorch nn.ReLU)", "relu", "(relu)"));
    t.push_back(activation("gelu", kernels::Activation::gelu_erf, "x·Φ(x), exact (PyTorch nn.GELU())", "gelu"));
    // describe() writes "(gelu)" for it in an MLP: the form earlier versions used, which checkpoints still compare.
    t.push_back(activation("gelu_tanh", kernels::Activation::gelu,
                           "GELU's tanh approximation (PyTorch nn.GELU(approximate=\"tanh\"))", "gelu", "(gelu)"));
    t.push_back(activation("silu", kernels::Activation::silu, "x·sigmoid(x) (PyTorch nn.SiLU)", "silu"));
    t.push_back(activation_backward());
    t.push_back(add());
    t.push_back(copy());
    t.push_back(mul());
    t.push_back(dropout());
    t.push_back(dropout_backward());
}

} // namespace vktrain::graph
