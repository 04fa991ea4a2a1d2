// Losses. Each is fused with its gradient: the kernel that computes the per-row losses also writes the
// prediction's gradient, scaled by the loss scale and divided by the number of valid rows.
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/loss.hpp"

namespace vktrain::graph {

namespace {

OpDef cross_entropy() {
    OpDef d;
    d.name = "cross_entropy";
    d.loss = true;
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
                                     e.ir().loss_rows_per_sample);
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        if (ad.needs_grad(n.in[0])) ad.set_grad(n.in[0], n.out[1]);
    };
    return d;
}

} // namespace

void register_loss_ops(std::vector<OpDef>& t) {
    t.push_back(cross_entropy());
}

} // namespace vktrain::graph
