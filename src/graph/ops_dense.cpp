// Dense ops: linear (GEMM + bias) and its backward nodes, and the input cast.
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/elementwise.hpp"

namespace vktrain::graph {

namespace {

using kernels::GemmShape;

// A linear node's dimensions: rows (all leading dimensions, batch included), in and out features.
struct LinearDims {
    uint64_t rows, in, out;
};
LinearDims linear_dims(const Exec& e, const IrNode& n) {
    const IrValue& x = e.value(n.in[0]);
    const uint64_t in = uint64_t(x.shape.back());
    return {x.elements() / in, in, attr<uint64_t>(n, "out")};
}

uint32_t u32(uint64_t v) {
    VKT_CHECK(v < (1ull << 32), "a dimension of ", v, " exceeds 2^32");
    return uint32_t(v);
}

OpDef linear() {
    OpDef d;
    d.name = "linear";
    d.is_public = true;
    d.doc = "y = x·Wᵀ + b over the last dimension: [..., in] -> [..., out] (PyTorch nn.Linear)";
    d.category = "dense";
    d.inputs = {"x"};
    d.summary = "linear{out}";
    d.mlp_summary = "-{out}";
    d.attrs = {size_attr("out", "output features"), flag_attr("bias", "add a bias").or_default(1)};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        VKT_CHECK(!in[0]->shape.empty(), "linear '", n.name, "': input '", in[0]->name, "' is a scalar per sample");
        Shape s = in[0]->shape;
        s.back() = attr<int64_t>(n, "out");
        return s;
    };
    d.params = [](const Node& n, const std::vector<const Node*>& in) {
        const auto features = in[0]->shape.back(), out = attr<int64_t>(n, "out");
        std::vector<ParamDecl> p{{"weight", {out, features}, uint32_t(features)}};
        if (attr<bool>(n, "bias")) p.push_back({"bias", {out}, uint32_t(features)});
        return p;
    };
    d.sites = [](Exec& e, const IrNode& n) {
        const LinearDims k = linear_dims(e, n);
        e.declare_gemm(n.label, GemmShape{false, true, u32(k.rows), u32(k.out), u32(k.in), e.dtype(n.out[0])});
    };
    d.record = [](Exec& e, const IrNode& n) {
        const LinearDims k = linear_dims(e, n);
        // y = x·Wᵀ (+ bias, added in the GEMM's epilogue before the one rounding to y's type)
        kernels::GemmDesc g;
        g.a.mat = e.mat(n.in[0], k.rows, k.in);
        g.b.mat = e.mat(n.in[1], k.out, k.in);
        g.c.mat = e.mat(n.out[0], k.rows, k.out);
        g.trans_b = true;
        if (n.in.size() > 2) g.bias = e.mat(n.in[2], 1, k.out);
        g.relu = n.relu_epilogue;                       // a following ReLU, fused (graph/fusion.hpp)
        g.gelu = kernels::GemmGelu(n.gelu_epilogue);    // a following GELU, fused
        if (n.gelu_epilogue != 0 && n.out.size() > 1) { // the GELU's output, and the pre-activation its backward reads
            g.aux = g.c.mat;
            g.c.mat = e.mat(n.out[1], k.rows, k.out);
        }
        e.gemm(n.label, g);
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        const int g = ad.grad_output(n);
        ad.emit("linear_weight_grad", n, "weight_grad", {g, n.in[0]}, ad.grad_input(n, 1));
        if (n.in.size() > 2) ad.emit("bias_grad", n, "bias_grad", {g}, ad.grad_input(n, 2));
        ad.emit("linear_input_grad", n, "input_grad", {g, n.in[1]}, ad.grad_input(n, 0));
    };
    return d;
}

// dW (+)= dYᵀ·X: in = {dY, X}, out = {dW} (fp32).
OpDef linear_weight_grad() {
    OpDef d;
    d.name = "linear_weight_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    const auto dims = [](const Exec& e, const IrNode& n) {
        const IrValue& x = e.value(n.in[1]);
        const uint64_t in = uint64_t(x.shape.back());
        return LinearDims{x.elements() / in, in, attr<uint64_t>(n, "out")};
    };
    d.sites = [dims](Exec& e, const IrNode& n) {
        const LinearDims k = dims(e, n);
        e.declare_gemm(n.label, GemmShape{true, false, u32(k.out), u32(k.in), u32(k.rows), e.dtype(n.out[0])});
    };
    d.record = [dims](Exec& e, const IrNode& n) {
        const LinearDims k = dims(e, n);
        e.gemm(n.label, e.mat(n.in[0], k.rows, k.out), true, e.mat(n.in[1], k.rows, k.in), false,
               e.mat(n.out[0], k.out, k.in), n.accumulate);
    };
    return d;
}

// dX (+)= dY·W: in = {dY, W}, out = {dX}.
OpDef linear_input_grad() {
    OpDef d;
    d.name = "linear_input_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    const auto dims = [](const Exec& e, const IrNode& n) {
        const IrValue& dx = e.value(n.out[0]);
        const uint64_t in = uint64_t(dx.shape.back());
        return LinearDims{dx.elements() / in, in, attr<uint64_t>(n, "out")};
    };
    d.sites = [dims](Exec& e, const IrNode& n) {
        const LinearDims k = dims(e, n);
        e.declare_gemm(n.label, GemmShape{false, false, u32(k.rows), u32(k.in), u32(k.out), e.dtype(n.out[0])});
    };
    d.record = [dims](Exec& e, const IrNode& n) {
        const LinearDims k = dims(e, n);
        if (n.gelu_epilogue != 0) { // the backward of the GELU before this layer, fused (graph/fusion.hpp)
            kernels::GemmDesc g;
            g.a.mat = e.mat(n.in[0], k.rows, k.out);
            g.b.mat = e.mat(n.in[1], k.out, k.in);
            g.c.mat = e.mat(n.out[0], k.rows, k.in);
            g.gelu = kernels::GemmGelu(n.gelu_epilogue);
            g.gelu_grad = true;
            g.aux = e.mat(n.in[2], k.rows, k.in);
            e.gemm(n.label, g);
            return;
        }
        e.gemm(n.label, e.mat(n.in[0], k.rows, k.out), false, e.mat(n.in[1], k.out, k.in), false,
               e.mat(n.out[0], k.rows, k.in), n.accumulate);
    };
    return d;
}

// db (+)= column sums of dY over all leading dimensions: in = {dY}, out = {db} (fp32).
OpDef bias_grad() {
    OpDef d;
    d.name = "bias_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::MatRef dy = e.rows(n.in[0]);
        kernels::record_channel_bias_grad(e.device(), e.seq(), dy, e.mat(n.out[0], 1, dy.cols), dy.rows, dy.cols, 1,
                                          n.accumulate);
    };
    return d;
}

// A real input's fp32 upload into the activation type.
OpDef cast() {
    OpDef d;
    d.name = "cast";
    d.backward_only = true;
    d.record = [](Exec& e, const IrNode& n) {
        kernels::record_cast(e.device(), e.seq(), e.batch(n.in[0]), e.batch(n.out[0]));
    };
    return d;
}

} // namespace

void register_dense_ops(std::vector<OpDef>& t) {
    t.push_back(linear());
    t.push_back(linear_weight_grad());
    t.push_back(linear_input_grad());
    t.push_back(bias_grad());
    t.push_back(cast());
}

} // namespace vktrain::graph
