// Normalisation over the last dimension: LayerNorm and RMSNorm (PyTorch nn.LayerNorm / nn.RMSNorm over
// normalized_shape = the last dimension), any leading dimensions, fp32 statistics saved per row for the backward.
#include <limits>

#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/layer_norm.hpp"

namespace vktrain::graph {

namespace {

bool affine_of(const Node& n) {
    return n.op == "rms_norm" || attr<bool>(n, "affine");
}

// The node's normalisation over x = in[0] (rows: every dimension but the last, the batch included).
kernels::RowNorm row_norm(const Exec& e, const IrNode& n) {
    const kernels::MatRef x = e.rows(n.in[0]);
    kernels::RowNorm s;
    s.kind = attr<bool>(n, "rms") ? kernels::NormKind::rms : kernels::NormKind::layer;
    s.rows = x.rows;
    s.cols = x.cols;
    s.eps = attr<float>(n, "eps");
    return s;
}

// in = {x, weight, bias} (the parameters when affine; RMSNorm has no bias). lower() appends the saved
// statistics: out = {y, mean, rstd} (LayerNorm) or {y, rstd} (RMSNorm), fp32 with one value per row.
OpDef norm(const char* name, bool rms) {
    OpDef d;
    d.name = name;
    d.is_public = true;
    d.doc = rms ? "x / sqrt(mean(x²) + eps) · weight over the last dimension (PyTorch nn.RMSNorm)"
                : "(x - mean) / sqrt(var + eps) · weight + bias over the last dimension (PyTorch nn.LayerNorm)";
    d.category = "norm";
    d.inputs = {"x"};
    d.node_prefix = rms ? "rms" : "ln";
    d.attrs = {positive_real_attr("eps", "added to the variance").or_default(double(rms ? 1e-6f : 1e-5f))};
    if (!rms) d.attrs.push_back(flag_attr("affine", "learn weight and bias").or_default(1));
    if (rms) d.attrs.push_back(flag_attr("affine", "1: RMSNorm always has a weight").set_by_lowering());
    d.attrs.push_back(flag_attr("rms", "which of the two the kernel computes").set_by_lowering());
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        VKT_CHECK(!in[0]->shape.empty(), n.op, " '", n.name, "': input '", in[0]->name,
                  "' is a scalar per sample; the last dimension is normalised");
        return in[0]->shape;
    };
    d.params = [rms](const Node& n, const std::vector<const Node*>& in) {
        const int64_t c = in[0]->shape.back();
        std::vector<ParamDecl> p;
        if (!affine_of(n)) return p;
        p.push_back({"weight", {c}, 0, InitKind::ones});
        if (!rms) p.push_back({"bias", {c}, 0, InitKind::zeros});
        return p;
    };
    d.lower = [rms](Ir& ir, IrNode& n) {
        n.attrs["rms"] = rms ? 1.0 : 0.0;
        n.attrs["affine"] = n.in.size() > 1 ? 1.0 : 0.0;
        const Shape x = ir.values[size_t(n.in[0])].shape; // a copy: add_value may reallocate values
        const auto saved = [&](const char* what) {
            IrValue v;
            v.shape = Shape(x.begin(), x.end() - 1); // one per row
            v.storage = Storage::f32;
            v.role = Role::scratch;
            v.label = n.name + what;
            n.out.push_back(ir.add_value(v));
        };
        if (!rms) saved(".save_mean");
        saved(".save_rstd");
    };
    d.record = [rms](Exec& e, const IrNode& n) {
        const kernels::RowNorm s = row_norm(e, n);
        const auto vec = [&](int v) { return e.mat(v, 1, s.cols); };
        const auto stat = [&](int v) { return e.mat(v, 1, s.rows); };
        // A fused residual add (graph/fusion.hpp) appends its operands a, b to `in` and its sum to `out`.
        const size_t extra = n.residual_add ? 2 : 0;
        const bool affine = n.in.size() - extra > 1;
        const kernels::MatRef weight = affine ? vec(n.in[1]) : kernels::MatRef{};
        const kernels::MatRef bias = affine && !rms ? vec(n.in[2]) : kernels::MatRef{};
        const kernels::MatRef mean = rms ? kernels::MatRef{} : stat(n.out[1]);
        const kernels::MatRef rstd = stat(n.out[rms ? 1 : 2]);
        if (n.residual_add) {
            const kernels::MatRef b = e.rows(n.in[n.in.size() - 1]), sum = e.rows(n.out.back());
            kernels::record_layer_norm(e.device(), e.seq(), s, e.rows(n.in[n.in.size() - 2]),
                                       affine ? &weight : nullptr, affine && !rms ? &bias : nullptr, e.rows(n.out[0]),
                                       rms ? nullptr : &mean, rstd, &b, &sum);
            return;
        }
        kernels::record_layer_norm(e.device(), e.seq(), s, e.rows(n.in[0]), affine ? &weight : nullptr,
                                   affine && !rms ? &bias : nullptr, e.rows(n.out[0]), rms ? nullptr : &mean, rstd);
    };
    d.backward = [rms](Autodiff& ad, const IrNode& n) {
        // Backward nodes read {x, dy, rstd[, mean]}; the input gradient also reads the weight (last).
        const int g = ad.grad_output(n);
        std::vector<int> in{n.in[0], g, n.out.back()};
        if (!rms) in.push_back(n.out[1]);
        if (n.in.size() > 1) {
            ad.emit("layer_norm_weight_grad", n, "weight_grad", in, ad.grad_input(n, 1));
            if (!rms) ad.emit("bias_grad", n, "bias_grad", {g}, ad.grad_input(n, 2));
            in.push_back(n.in[1]);
        }
        ad.emit("layer_norm_backward", n, "backward", in, ad.grad_input(n, 0));
    };
    return d;
}

// dx (+)= from x, dy and the saved statistics: in = {x, dy, rstd[, mean][, weight]}, out = {dx}.
OpDef norm_backward() {
    OpDef d;
    d.name = "layer_norm_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::RowNorm s = row_norm(e, n);
        const bool layer = s.kind == kernels::NormKind::layer, affine = attr<bool>(n, "affine");
        const kernels::MatRef mean = layer ? e.mat(n.in[3], 1, s.rows) : kernels::MatRef{};
        const kernels::MatRef weight = affine ? e.mat(n.in.back(), 1, s.cols) : kernels::MatRef{};
        // out[1]: a copy of dx that the kernel writes too (graph/fusion.hpp).
        const kernels::MatRef dx2 = n.out.size() > 1 ? e.rows(n.out[1]) : kernels::MatRef{};
        kernels::record_layer_norm_backward(e.device(), e.seq(), s, e.rows(n.in[0]), e.rows(n.in[1]),
                                            affine ? &weight : nullptr, layer ? &mean : nullptr,
                                            e.mat(n.in[2], 1, s.rows), e.rows(n.out[0]), n.accumulate,
                                            n.out.size() > 1 ? &dx2 : nullptr);
    };
    return d;
}

// dweight (+)= column sums of dy · xhat: in = {x, dy, rstd[, mean]}, out = {dweight} (fp32).
OpDef norm_weight_grad() {
    OpDef d;
    d.name = "layer_norm_weight_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::RowNorm s = row_norm(e, n);
        const bool layer = s.kind == kernels::NormKind::layer;
        const kernels::MatRef mean = layer ? e.mat(n.in[3], 1, s.rows) : kernels::MatRef{};
        kernels::record_layer_norm_weight_grad(e.device(), e.seq(), s, e.rows(n.in[0]), e.rows(n.in[1]),
                                               layer ? &mean : nullptr, e.mat(n.in[2], 1, s.rows),
                                               e.mat(n.out[0], 1, s.cols), n.accumulate);
    };
    return d;
}

} // namespace

void register_norm_ops(std::vector<OpDef>& t) {
    t.push_back(norm("layer_norm", false));
    t.push_back(norm("rms_norm", true));
    t.push_back(norm_backward());
    t.push_back(norm_weight_grad());
}

} // namespace vktrain::graph
