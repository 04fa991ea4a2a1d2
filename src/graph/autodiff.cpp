#include "graph/autodiff.hpp"

#include "common/check.hpp"
#include "graph/registry.hpp"

namespace vktrain::graph {

Autodiff::Autodiff(Ir& ir) : m_ir(ir), m_needs(ir.values.size(), false), m_grad(ir.values.size(), -1) {
    // A value needs a gradient when it is a trainable parameter or depends on one.
    for (const IrParam& p : ir.params)
        if (p.info.trainable && !p.info.buffer && p.value >= 0) m_needs[size_t(p.value)] = true;
    for (size_t i = 0; i < ir.forward_nodes; ++i) {
        const IrNode& n = ir.nodes[i];
        bool any = false;
        for (int v : n.in) any = any || m_needs[size_t(v)];
        if (!any) continue;
        for (int v : n.out) m_needs[size_t(v)] = true;
    }
}

int Autodiff::scratch(const Shape& shape, Storage storage, const std::string& label) {
    IrValue v;
    v.shape = shape;
    v.storage = storage;
    v.role = Role::scratch;
    v.label = label;
    const int id = m_ir.add_value(v);
    m_needs.push_back(false);
    m_grad.push_back(-1);
    return id;
}

int Autodiff::grad_output(const IrNode& node) const {
    const int g = m_grad.at(size_t(node.out.at(0)));
    VKT_CHECK(g >= 0, "internal: no gradient for the output of '", node.name, "'");
    return g;
}

Autodiff::Target Autodiff::grad_input(const IrNode& node, size_t i) {
    const int v = node.in.at(i);
    if (!m_needs[size_t(v)]) return {};
    const IrValue& val = m_ir.values[size_t(v)];
    if (val.role == Role::state) return {};
    if (m_grad[size_t(v)] >= 0) return {m_grad[size_t(v)], true};
    IrValue g;
    g.shape = val.shape;
    if (val.role == Role::param) {
        IrParam& p = m_ir.params.at(size_t(val.param));
        g.storage = Storage::f32;
        g.role = Role::param_grad;
        g.param = val.param;
        g.label = p.info.name + ".grad";
        const int id = m_ir.add_value(g);
        p.grad = id;
        m_needs.push_back(false);
        m_grad.push_back(-1);
        m_grad[size_t(v)] = id;
        return {id, false};
    }
    g.storage = val.storage;
    g.role = Role::gradient;
    g.label = val.label + ".grad";
    const int id = m_ir.add_value(g);
    m_needs.push_back(false);
    m_grad.push_back(-1);
    m_grad[size_t(v)] = id;
    return {id, false};
}

void Autodiff::emit(const std::string& op, const IrNode& forward, const std::string& what, std::vector<int> in,
                    Target out, std::vector<int> extra_out, std::map<std::string, double> attrs) {
    if (!out.valid()) return;
    const OpDef& def = op_def(op);
    IrNode n;
    n.op = &def;
    n.name = forward.name;
    n.label = forward.name + "." + what;
    n.in = std::move(in);
    n.attrs = forward.attrs;
    n.attrs_of = forward.attrs_of ? forward.attrs_of : forward.op;
    for (auto& [k, v] : attrs) n.attrs[k] = v;
    n.shape_attr = forward.shape_attr;
    n.backward = true;
    if (out.accumulate && !def.can_accumulate) {
        // Into a temporary, then target += temporary in place.
        const IrValue& t = m_ir.values[size_t(out.value)];
        const int tmp = scratch(t.shape, t.storage, t.label + ".part");
        n.out = {tmp};
        for (int e : extra_out) n.out.push_back(e);
        m_ir.nodes.push_back(n);
        IrNode add;
        add.op = &op_def("add");
        add.name = forward.name;
        add.label = forward.name + "." + what + ".accumulate";
        add.in = {out.value, tmp};
        add.out = {out.value};
        add.backward = true;
        m_ir.nodes.push_back(add);
        return;
    }
    n.out = {out.value};
    for (int e : extra_out) n.out.push_back(e);
    n.accumulate = out.accumulate;
    m_ir.nodes.push_back(n);
}

void Autodiff::run() {
    VKT_CHECK(m_ir.loss_node >= 0, "the model has no loss");
    // The loss op computes its own input gradient (fused); it is the last forward node.
    for (size_t i = m_ir.forward_nodes; i-- > 0;) {
        const IrNode node = m_ir.nodes[i]; // a copy: backward appends to the node list
        if (node.op->view) {
            // A reshape passes its gradient through as a reshape of the gradient.
            const int g = m_grad[size_t(node.out[0])];
            if (g < 0 || !m_needs[size_t(node.in[0])]) continue;
            const Target t = grad_input(node, 0);
            if (!t.accumulate) {
                // The input's gradient is the output's gradient under the input's shape: alias it.
                IrValue& gv = m_ir.values[size_t(t.value)];
                gv.view_of = g;
                continue;
            }
            emit("add", node, "grad_accumulate", {t.value, g}, {t.value, false});
            continue;
        }
        if (node.op->loss) {
            node.op->backward(*this, node);
            continue;
        }
        if (node.out.empty() || m_grad[size_t(node.out[0])] < 0) continue; // does not reach the loss
        if (!node.op->backward) {
            bool any = false;
            for (size_t k = 0; k < node.in.size(); ++k) any = any || m_needs[size_t(node.in[k])];
            VKT_CHECK(!any, "op '", node.op->name, "' ('", node.name, "') has no backward pass");
            continue;
        }
        node.op->backward(*this, node);
    }
}

} // namespace vktrain::graph
