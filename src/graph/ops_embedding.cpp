// Token embedding, learned positional embedding and weight tying (an output projection that uses an embedding's
// table as its weight, so the table's gradient sums both uses).
#include <cmath>
#include <utility>

#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/embedding.hpp"

namespace vktrain::graph {

namespace {

// PyTorch's nn.Embedding initialisation: N(0, 1).
ParamDecl normal_weight(int64_t rows, int64_t cols) {
    ParamDecl p{"weight", {rows, cols}, uint32_t(cols), InitKind::normal};
    p.init_b = 1.0f;
    return p;
}

// ids (an i32 model input, any per-sample shape S) -> S + [dim]; parameter weight [num_embeddings, dim].
OpDef embedding() {
    OpDef d;
    d.name = "embedding";
    d.is_public = true;
    d.doc = "rows of a table [num_embeddings, dim] looked up by i32 ids of any shape S -> S + [dim] (PyTorch "
            "nn.Embedding)";
    d.category = "embedding";
    d.inputs = {"ids"};
    d.attrs = {size_attr("num_embeddings", "rows of the table (ids are in [0, num_embeddings))"),
               size_attr("dim", "the embedding width")};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        const auto dim = attr<int64_t>(n, "dim");
        VKT_CHECK(in[0]->type == DataType::i32 && in[0]->op == "input", "embedding '", n.name, "': ids '", in[0]->name,
                  "' must be an integer (i32) model input");
        VKT_CHECK(in[0]->shape.size() <= 4, "embedding '", n.name, "': ids ", shape_text(in[0]->shape),
                  " have more than 4 dimensions per sample");
        Shape s = in[0]->shape;
        s.push_back(dim);
        return s;
    };
    d.params = [](const Node& n, const std::vector<const Node*>&) {
        return std::vector<ParamDecl>{normal_weight(attr<int64_t>(n, "num_embeddings"), attr<int64_t>(n, "dim"))};
    };
    d.record = [](Exec& e, const IrNode& n) {
        const uint32_t rows = attr<uint32_t>(n, "num_embeddings"), dim = attr<uint32_t>(n, "dim");
        const kernels::MatRef ids = e.mat(n.in[0], 1, e.value(n.in[0]).elements());
        kernels::record_embedding(e.device(), e.seq(), ids, e.mat(n.in[1], rows, dim), e.mat(n.out[0], ids.cols, dim),
                                  rows, dim);
    };
    d.backward = [](Autodiff& ad, const IrNode& n) { // no gradient flows to the ids
        ad.emit("embedding_backward", n, "weight_grad", {n.in[0], ad.grad_output(n)}, ad.grad_input(n, 1));
    };
    return d;
}

// dW (+)= the dy rows summed per id: in = {ids, dY}, out = {dW} (fp32).
OpDef embedding_backward() {
    OpDef d;
    d.name = "embedding_backward";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const uint32_t rows = attr<uint32_t>(n, "num_embeddings"), dim = attr<uint32_t>(n, "dim");
        const kernels::MatRef ids = e.mat(n.in[0], 1, e.value(n.in[0]).elements());
        kernels::record_embedding_backward(e.device(), e.seq(), ids, e.mat(n.in[1], ids.cols, dim),
                                           e.mat(n.out[0], rows, dim), rows, dim, n.accumulate);
    };
    return d;
}

// x [T, C] -> y[t] = x[t] + weight[t]; parameter weight [max_positions, C], T <= max_positions. The rows t < T of
// the weight are a bias over y seen as [batch, T·C], so the channel-bias kernels do the work.
OpDef position_embedding() {
    OpDef d;
    d.name = "position_embedding";
    d.is_public = true;
    d.doc = "x [T, C] + a learned row per position (T <= max_positions; GPT-2's wpe)";
    d.category = "embedding";
    d.inputs = {"x"};
    d.attrs = {size_attr("max_positions", "rows of the table [max_positions, C]")};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 1);
        expect_real(n, *in[0]);
        const auto max_positions = attr<int64_t>(n, "max_positions");
        const Shape& s = in[0]->shape;
        VKT_CHECK(s.size() == 2, "position_embedding '", n.name, "': input '", in[0]->name, "' is ", shape_text(s),
                  "; expected [positions, channels]");
        VKT_CHECK(s[0] <= max_positions, "position_embedding '", n.name, "': input '", in[0]->name, "' has ", s[0],
                  " positions; max_positions is ", max_positions);
        return s;
    };
    d.params = [](const Node& n, const std::vector<const Node*>& in) {
        return std::vector<ParamDecl>{normal_weight(attr<int64_t>(n, "max_positions"), in[0]->shape[1])};
    };
    d.inplace_input = 0; // y = x + weight may overwrite x where x dies here (the backward does not read x)
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::MatRef x = e.batch(n.in[0]), y = e.batch(n.out[0]);
        const Shape& s = e.value(n.in[0]).shape; // [batch, T, C]
        kernels::MatRef w = e.mat(n.in[1], attr<uint32_t>(n, "max_positions"), uint64_t(s[2]));
        w.rows = uint32_t(s[1]); // rows [0, T)
        if (x.buffer != y.buffer || x.offset != y.offset) kernels::record_cast(e.device(), e.seq(), x, y);
        kernels::record_channel_bias_add(e.device(), e.seq(), y, w, y.rows, y.cols, 1);
    };
    d.backward = [](Autodiff& ad, const IrNode& n) {
        const int g = ad.grad_output(n);
        ad.emit("position_embedding_weight_grad", n, "weight_grad", {g}, ad.grad_input(n, 1));
        // dx = dy: an alias of the output's gradient when this is x's first contribution (as add does).
        const Autodiff::Target t = ad.grad_input(n, 0);
        if (!t.valid()) return;
        if (!t.accumulate && ad.ir().values[size_t(t.value)].storage == ad.ir().values[size_t(g)].storage) {
            ad.ir().values[size_t(t.value)].view_of = g;
            return;
        }
        ad.emit("copy", n, "input_grad", {g}, t);
    };
    return d;
}

// dW[t] (+)= sum over the batch of dY[b, t] for t < T; rows t >= T are 0 (kept with accumulate): in = {dY},
// out = {dW} (fp32).
OpDef position_embedding_weight_grad() {
    OpDef d;
    d.name = "position_embedding_weight_grad";
    d.backward_only = true;
    d.can_accumulate = true;
    d.record = [](Exec& e, const IrNode& n) {
        const kernels::MatRef dy = e.batch(n.in[0]);
        const Shape& s = e.value(n.in[0]).shape; // [batch, T, C]
        const uint32_t positions = attr<uint32_t>(n, "max_positions"), t = uint32_t(s[1]);
        kernels::MatRef dw = e.mat(n.out[0], positions, uint64_t(s[2]));
        if (!n.accumulate && t < positions)
            e.seq().fill(*dw.buffer, 0, uint64_t(positions - t) * dw.cols * 4, (dw.offset + uint64_t(t) * dw.cols) * 4);
        dw.rows = t;
        kernels::record_channel_bias_grad(e.device(), e.seq(), dy, dw, dy.rows, dy.cols, 1, n.accumulate);
    };
    return d;
}

// logits = x · Eᵀ with E the weight [V, C] of the embedding node in[1] (no bias). At the model level in[1] is the
// embedding node (so the dependency is explicit and saved with the graph); lowering replaces it by that node's
// weight, so the weight's gradient gets this node's contribution and the embedding's (Autodiff accumulates the
// second). Recording and backward are linear's.
OpDef linear_tied(const OpDef& linear) {
    OpDef d = linear;
    d.name = "linear_tied";
    d.doc =
        "x · Eᵀ with E the weight of an embedding node (weight tying; no bias): [..., dim] -> [..., num_embeddings]";
    d.category = "embedding";
    d.inputs = {"x", "embedding"};
    d.summary = nullptr;
    d.mlp_summary = nullptr;
    d.params = nullptr;
    // "out" comes from the tied embedding when lowered.
    d.attrs = {size_attr("out", "the tied embedding's num_embeddings").set_by_lowering()};
    d.infer = [](const Node& n, const std::vector<const Node*>& in) {
        expect_inputs(n, in, 2);
        expect_real(n, *in[0]);
        VKT_CHECK(in[1]->op == "embedding", "linear_tied '", n.name, "': node '", in[1]->name,
                  "' is not an embedding (its weight is the one tied)");
        const int64_t dim = attr<int64_t>(*in[1], "dim"), rows = attr<int64_t>(*in[1], "num_embeddings");
        Shape s = in[0]->shape;
        VKT_CHECK(!s.empty() && s.back() == dim, "linear_tied '", n.name, "': input '", in[0]->name, "' ",
                  shape_text(s), " must end in the embedding's dim ", dim);
        s.back() = rows;
        return s;
    };
    d.lower = [](Ir& ir, IrNode& n) {
        for (const IrNode& m : ir.nodes)
            if (m.op->name == "embedding" && m.out.at(0) == n.in.at(1)) {
                n.in[1] = m.in.at(1);
                n.attrs["out"] = double(attr<int64_t>(m, "num_embeddings"));
                return;
            }
        VKT_FAIL("internal: linear_tied '", n.name, "' finds no embedding");
    };
    return d;
}

} // namespace

void register_embedding_ops(std::vector<OpDef>& t) {
    t.push_back(embedding());
    t.push_back(embedding_backward());
    t.push_back(position_embedding());
    t.push_back(position_embedding_weight_grad());
    const OpDef* linear = nullptr;
    for (const OpDef& d : t)
        if (d.name == "linear") linear = &d;
    VKT_CHECK(linear != nullptr, "internal: linear_tied needs linear registered first");
    OpDef tied = linear_tied(*linear);
    t.push_back(std::move(tied));
}

} // namespace vktrain::graph
