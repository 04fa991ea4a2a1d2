// Losses. Each is fused with its gradient: the kernel that computes the per-row losses also writes the
// prediction's gradient, scaled by the loss scale and divided by the number of valid rows.
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/loss.hpp"

namespace vktrain::graph {

namespace {

kernels::XentIgnore xent_ignore(const IrNode& n) {
    kernels::XentIgnore ignore;
    const std::optional<int32_t> index = optional_attr<int32_t>(n, "ignore_index");
    ignore.enabled = index.has_value();
    if (index) ignore.index = *index;
    return ignore;
}

OpDef cross_entropy() {
    OpDef d;
    d.name = "cross_entropy";
    d.is_public = true;
    d.doc = "mean softmax cross-entropy of logits [..., classes] against i32 labels [...] (PyTorch CrossEntropyLoss)";
    d.category = "loss";
    d.inputs = {"logits", "labels"};
    d.node_prefix = "loss";
    d.fixed_name = true;
    d.mlp_summary = "";
    d.loss = true;
    AttrSpec ignore = int_attr("ignore_index", -2147483648.0, 2147483647.0,
                               "a label that adds no loss and no gradient, e.g. padding (PyTorch's ignore_index); "
                               "absent: every label must be a class");
    ignore.optional = true;
    d.attrs = {ignore};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 2);
        expect_real(n, *in[0]);
        const Shape& logits = in[0]->shape;
        VKT_CHECK(!logits.empty() && logits.back() >= 2, "cross_entropy '", n.name, "': logits ", shape_text(logits),
                  " need a last dimension of at least 2 classes");
        VKT_CHECK(in[1]->type == DataType::i32, "cross_entropy '", n.name, "': labels '", in[1]->name,
                  "' must be an integer (i32) value");
        const Shape want(logits.begin(), logits.end() - 1);
        VKT_CHECK(in[1]->shape == want, "cross_entropy '", n.name, "': labels ", shape_text(in[1]->shape),
                  " must be shaped like the logits ", shape_text(logits), " without the class dimension");
        return Shape{};
    };
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::MatRef logits = e.rows(n.in[0]);
        kernels::record_softmax_xent(e.device(), e.seq(), logits, *e.batch(n.in[1]).buffer, e.step_params(),
                                     *e.batch(n.out[0]).buffer, e.mat(n.out[1], logits.rows, logits.cols),
                                     e.ir().loss_rows_per_sample, xent_ignore(n));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        if (ad.needs_grad(n.in[0])) ad.set_grad(n.in[0], n.out[1]);
    };
    return d;
}

// Mean squared error over all elements (PyTorch MSELoss(reduction='mean')): pred and a real target of one shape.
OpDef mse_loss() {
    OpDef d;
    d.name = "mse_loss";
    d.is_public = true;
    d.doc = "mean squared error of a prediction against a real-valued model input of the same shape (PyTorch MSELoss)";
    d.category = "loss";
    d.inputs = {"prediction", "target"};
    d.node_prefix = "loss";
    d.fixed_name = true;
    d.attrs = {count_attr("target_staged", "the target's fp32 upload value").set_by_lowering()};
    d.loss = true;
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 2);
        expect_real(n, *in[0]);
        VKT_CHECK(in[1]->type == DataType::f32 && in[1]->op == "input", "mse_loss '", n.name, "': the target '",
                  in[1]->name, "' must be a real-valued input");
        VKT_CHECK(in[0]->shape == in[1]->shape, "mse_loss '", n.name, "': prediction ", shape_text(in[0]->shape),
                  " and target ", shape_text(in[1]->shape), " differ");
        return Shape{};
    };
    d.record = [](Exec& e, const IrNode& n) {
        // The target is read from its fp32 upload (the f32 input value before its cast).
        const kernels::MatRef pred = e.batch(n.in[0]);
        kernels::record_mse(e.device(), e.seq(), pred, e.batch(attr<int>(n, "target_staged")), e.step_params(),
                            *e.batch(n.out[0]).buffer, e.mat(n.out[1], pred.rows, pred.cols));
    };
    d.lower = [](Ir& ir, IrNode& n) {
        // The target's fp32 upload: the cast node that produced in[1] reads it.
        for (const IrNode& c : ir.nodes)
            if (!c.out.empty() && c.out[0] == n.in[1] && c.op->name == "cast") n.attrs["target_staged"] = c.in[0];
        VKT_CHECK(n.attrs.count("target_staged"), "internal: mse_loss target is not an input");
        n.in.push_back(int(n.attrs["target_staged"]));
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        if (ad.needs_grad(n.in[0])) ad.set_grad(n.in[0], n.out[1]);
    };
    return d;
}

} // namespace

void register_loss_ops(std::vector<OpDef>& t) {
    t.push_back(cross_entropy());
    t.push_back(mse_loss());
}

} // namespace vktrain::graph
