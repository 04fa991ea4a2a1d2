// GCC 12 reports a false -Wnonnull inside std::vector<int64_t> copy assignment at -O3 (GCC bug 107138).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnonnull"
#endif
#include "graph/ir.hpp"

#include <cmath>

#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/fusion.hpp"
#include "graph/recompute.hpp"
#include "graph/registry.hpp"

namespace vktrain::graph {

uint64_t element_count(const Shape& shape) {
    uint64_t n = 1;
    for (int64_t d : shape) n *= uint64_t(d);
    return n;
}

std::string shape_text(const Shape& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

int Ir::add_value(IrValue v) {
    values.push_back(std::move(v));
    return int(values.size() - 1);
}

Ir build_ir(const Model& model, uint32_t batch, bool training, uint64_t seed, uint64_t fused_attention_min_bytes,
            bool recompute, bool fuse) {
    VKT_CHECK(batch > 0, "batch size must be positive");
    VKT_CHECK(model.loss() >= 0 || !training,
              "the model has no loss (call cross_entropy or mse_loss); without one it can only predict "
              "(TrainerOptions::inference_only)");
    Ir ir;
    ir.training = training;
    ir.batch = batch;
    ir.seed = seed;
    ir.fused_attention_min_bytes = fused_attention_min_bytes;
    ir.fuse = fuse;
    ir.recompute = training && recompute;
    const auto& nodes = model.nodes();
    const std::vector<ParameterInfo> infos = model.parameters();
    size_t next_param = 0;
    std::vector<int> vmap(nodes.size(), -1);

    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& mn = nodes[i];
        const OpDef& def = op_def(mn.op);
        Shape shape{int64_t(batch)};
        shape.insert(shape.end(), mn.shape.begin(), mn.shape.end());

        if (mn.op == "input") {
            IrValue in;
            in.shape = shape;
            in.role = Role::input;
            in.storage = mn.type == DataType::i32 ? Storage::i32 : Storage::f32;
            in.label = mn.name;
            const int staged = ir.add_value(in);
            ir.inputs.push_back(staged);
            if (mn.type == DataType::i32) {
                vmap[i] = staged;
                continue;
            }
            // Real inputs are cast from their fp32 upload buffer into the activation type.
            IrValue v;
            v.shape = shape;
            v.label = mn.name;
            const int id = ir.add_value(v);
            IrNode cast;
            cast.op = &op_def("cast");
            cast.name = mn.name;
            cast.label = mn.name + ".cast";
            cast.in = {staged};
            cast.out = {id};
            ir.nodes.push_back(cast);
            vmap[i] = id;
            continue;
        }

        IrNode n;
        n.op = &def;
        n.name = mn.name;
        n.label = mn.name + (def.loss ? "" : ".forward");
        n.attrs = mn.attrs;
        n.shape_attr = mn.shape_attr;
        n.block = mn.block;
        for (int x : mn.inputs) n.in.push_back(vmap[size_t(x)]);
        std::vector<const Node*> ins;
        for (int x : mn.inputs) ins.push_back(&nodes[size_t(x)]);
        if (def.params)
            for (const ParamDecl& d : def.params(mn, ins)) {
                VKT_CHECK(next_param < infos.size() && infos[next_param].name == mn.name + "." + d.suffix,
                          "internal: parameter order of '", mn.name, "'");
                IrParam p;
                p.info = infos[next_param++];
                if (d.counter) { // counted on the host; no device value
                    ir.params.push_back(p);
                    continue;
                }
                IrValue pv;
                pv.shape = d.shape;
                pv.role = d.buffer ? Role::state : Role::param;
                pv.storage = d.buffer ? Storage::f32 : Storage::act;
                pv.param = int(ir.params.size());
                pv.label = p.info.name;
                p.value = ir.add_value(pv);
                n.in.push_back(p.value);
                ir.params.push_back(p);
            }

        IrValue out;
        out.shape = shape;
        out.storage = mn.type == DataType::i32 ? Storage::i32 : Storage::act;
        out.label = mn.name;
        if (def.view) out.view_of = n.in[0];
        if (def.loss) {
            // out[0]: the per-row losses the host reads; out[1]: the prediction's gradient (scaled by the loss
            // scale), which the loss kernel writes in the same pass.
            const IrValue& pred = ir.values[size_t(n.in[0])];
            uint64_t rows = 1;
            for (size_t d = 0; d + 1 < pred.shape.size(); ++d) rows *= uint64_t(pred.shape[d]);
            if (mn.op == "mse_loss") rows = batch;
            ir.loss_rows_per_sample = uint32_t(rows / batch);
            ir.loss_terms_per_sample =
                mn.op == "mse_loss" ? uint32_t(pred.elements() / batch) : ir.loss_rows_per_sample;
            out.shape = {int64_t(rows)};
            out.storage = Storage::f32;
            out.role = Role::host_out;
            out.label = mn.name + ".rows";
        }
        const int id = ir.add_value(out);
        n.out = {id};
        vmap[i] = id;
        if (def.loss) {
            IrValue g;
            g.shape = ir.values[size_t(n.in[0])].shape;
            g.storage = Storage::act;
            g.role = training ? Role::gradient : Role::scratch;
            g.label = ir.values[size_t(n.in[0])].label + ".grad";
            n.out.push_back(ir.add_value(g));
            ir.row_loss = id;
            ir.loss_node = int(ir.nodes.size());
        }
        if (def.lower) def.lower(ir, n);
        ir.nodes.push_back(n);
        // The loss is the last node that matters: what follows it cannot influence the result.
        if (def.loss) break;
    }
    ir.forward_nodes = ir.nodes.size();
    // Model::output(): the loss's prediction operand, else the only output (several: predict() needs a name).
    const bool has_default = model.loss() >= 0 || model.outputs().size() == 1;
    const int default_output = has_default ? vmap[size_t(model.output())] : -1;
    VKT_CHECK(model.loss() >= 0 || !model.outputs().empty(), "the model has no loss and no output: nothing to compute "
                                                             "(mark an output with Model::output, or add a loss)");
    ir.prediction = default_output;
    ir.outputs.push_back(default_output);
    for (const auto& [name, value] : model.outputs()) ir.outputs.push_back(vmap[size_t(value)]);
    fuse_linear_relu(ir);
    if (training) Autodiff(ir).run();
    fuse_after_autodiff(ir);
    // After the fusions: a recomputed block re-runs its nodes as fused (the same kernels, the same bits).
    if (ir.recompute) recompute_blocks(ir);
    return ir;
}

} // namespace vktrain::graph
