#include "graph/fusion.hpp"

#include <algorithm>
#include <vector>

#include "graph/registry.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"

namespace vktrain::graph {

namespace {

// Per value: how many node inputs read it, how many nodes write it, the last writer, and whether another value is a
// view of it (a reader that the in-lists do not show).
struct Uses {
    std::vector<int> reads, writes, writer;
    std::vector<bool> viewed;

    explicit Uses(const Ir& ir)
        : reads(ir.values.size(), 0), writes(ir.values.size(), 0), writer(ir.values.size(), -1),
          viewed(ir.values.size(), false) {
        for (size_t i = 0; i < ir.nodes.size(); ++i) {
            for (int v : ir.nodes[i].in) ++reads[size_t(v)];
            for (int v : ir.nodes[i].out) {
                ++writes[size_t(v)];
                writer[size_t(v)] = int(i);
            }
        }
        for (const IrValue& v : ir.values)
            if (v.view_of >= 0) viewed[size_t(v.view_of)] = true;
    }
};

bool is_output(const Ir& ir, int v) {
    return std::find(ir.outputs.begin(), ir.outputs.end(), v) != ir.outputs.end();
}

// A plain activation value or gradient: its own storage, nobody else's view.
bool own_storage(const Ir& ir, const Uses& u, int v) {
    return ir.values[size_t(v)].view_of < 0 && !u.viewed[size_t(v)];
}

// The GEMM epilogue's form of a GELU node's (or its backward's) activation, or none.
kernels::GemmGelu gelu_form(const IrNode& n) {
    const auto it = n.attrs.find("act");
    if (it == n.attrs.end()) return kernels::GemmGelu::none;
    const auto act = kernels::Activation(int(it->second));
    if (act == kernels::Activation::gelu) return kernels::GemmGelu::tanh;
    if (act == kernels::Activation::gelu_erf) return kernels::GemmGelu::erf;
    return kernels::GemmGelu::none;
}

void fuse_linear_gelu(Ir& ir) {
    const Uses u(ir);
    for (IrNode& f : ir.nodes) {
        if (f.op->name != "gelu" && f.op->name != "gelu_tanh") continue;
        const kernels::GemmGelu form = gelu_form(f);
        if (f.fused || form == kernels::GemmGelu::none || f.in.size() != 1 || f.out.size() != 1) continue;
        const int x = f.in[0], y = f.out[0];
        if (u.writes[size_t(x)] != 1 || u.writes[size_t(y)] != 1 || is_output(ir, x) || !own_storage(ir, u, x) ||
            !own_storage(ir, u, y) || ir.values[size_t(x)].storage != ir.values[size_t(y)].storage)
            continue;
        IrNode& linear = ir.nodes[size_t(u.writer[size_t(x)])];
        if (linear.op->name != "linear" || linear.accumulate || linear.relu_epilogue || linear.gelu_epilogue != 0 ||
            linear.out.size() != 1)
            continue;
        linear.gelu_epilogue = int(form);
        f.fused = true;
        if (u.reads[size_t(x)] == 1)
            ir.values[size_t(y)].view_of =
                x; // nothing reads the pre-activation: the GEMM writes the GELU's output there
        else
            linear.out.push_back(y); // both: the backward reads the pre-activation
    }
}

// dX = dY·act'(pre) where dY comes from a Linear's input-gradient GEMM and nothing else reads it: that GEMM writes
// dY·act'(pre) into dY's bytes, and dX becomes a view of them.
void fuse_gelu_backward(Ir& ir) {
    const Uses u(ir);
    for (IrNode& b : ir.nodes) {
        if (b.op->name != "activation_backward" || b.fused || b.accumulate || b.in.size() != 2 || b.out.size() != 1)
            continue;
        const kernels::GemmGelu form = gelu_form(b);
        if (form == kernels::GemmGelu::none) continue;
        const int pre = b.in[0], dy = b.in[1], dx = b.out[0];
        const auto storage = [&](int v) { return ir.values[size_t(v)].storage; };
        if (u.reads[size_t(dy)] != 1 || u.writes[size_t(dy)] != 1 || is_output(ir, dy) || !own_storage(ir, u, dy) ||
            !own_storage(ir, u, dx) || storage(dy) != storage(dx) || storage(pre) != storage(dx) ||
            ir.values[size_t(pre)].elements() != ir.values[size_t(dx)].elements())
            continue;
        IrNode& gemm = ir.nodes[size_t(u.writer[size_t(dy)])];
        if (gemm.op->name != "linear_input_grad" || gemm.accumulate || gemm.gelu_epilogue != 0 || gemm.in.size() != 2 ||
            gemm.out.size() != 1)
            continue;
        gemm.gelu_epilogue = int(form);
        gemm.in.push_back(pre);
        b.fused = true;
        ir.values[size_t(dx)].view_of = dy;
    }
}

float add_scale(const IrNode& n) {
    const auto it = n.attrs.find("alpha");
    return n.backward || it == n.attrs.end() ? 1.0f : float(it->second);
}

// s = a + b, then norm(s) as the next node: the norm's kernel reads a and b, and writes s besides its own outputs.
void fuse_residual_norm(Ir& ir) {
    for (size_t i = 0; i + 1 < ir.nodes.size(); ++i) {
        IrNode& add = ir.nodes[i];
        IrNode& norm = ir.nodes[i + 1];
        if (add.op->name != "add" || add.fused || add.accumulate || add_scale(add) != 1.0f || add.in.size() != 2 ||
            add.out.size() != 1)
            continue;
        if ((norm.op->name != "layer_norm" && norm.op->name != "rms_norm") || norm.fused || norm.residual_add ||
            norm.in.empty() || norm.in[0] != add.out[0])
            continue;
        // A block's last residual add feeds the next block's first norm. Folded there, the sum (the next block's
        // input) would be written inside the next block, and recomputing that block would keep both operands of the
        // add instead of the sum: twice the memory recomputation keeps per block.
        if (ir.recompute && add.block != norm.block) continue;
        const int s = add.out[0], a = add.in[0], b = add.in[1];
        const IrValue& sv = ir.values[size_t(s)];
        if (sv.view_of >= 0 || s == a || s == b || is_output(ir, s)) continue;
        const auto same = [&](int v) {
            const IrValue& w = ir.values[size_t(v)];
            return w.storage == sv.storage && w.shape == sv.shape;
        };
        if (!same(a) || !same(b)) continue;
        add.fused = true;
        norm.residual_add = true;
        norm.in.push_back(a);
        norm.in.push_back(b);
        norm.out.push_back(s);
    }
}

// The norm's input gradient dx, then a copy of it (scale 1) into another gradient: the norm's backward kernel writes
// both. (A residual add's backward: its first operand's gradient is the sum's gradient itself, the second a copy.)
void fuse_norm_backward_copy(Ir& ir) {
    const Uses u(ir);
    for (size_t i = 0; i + 1 < ir.nodes.size(); ++i) {
        IrNode& norm = ir.nodes[i];
        IrNode& copy = ir.nodes[i + 1];
        if (norm.op->name != "layer_norm_backward" || norm.fused || norm.out.size() != 1) continue;
        if (copy.op->name != "copy" || copy.fused || copy.accumulate || copy.in.size() != 1 || copy.out.size() != 1 ||
            copy.in[0] != norm.out[0])
            continue;
        const auto scale = copy.attrs.find("scale");
        if (scale != copy.attrs.end() && scale->second != 1.0) continue;
        const int dx = norm.out[0], to = copy.out[0];
        const IrValue &dv = ir.values[size_t(dx)], &tv = ir.values[size_t(to)];
        if (tv.storage != dv.storage || tv.elements() != dv.elements() || u.writes[size_t(to)] != 1 || to == dx ||
            tv.view_of >= 0)
            continue;
        copy.fused = true;
        norm.out.push_back(to);
    }
}

} // namespace

void fuse_linear_relu(Ir& ir) {
    if (!ir.fuse) return;
    std::vector<int> uses(ir.values.size(), 0);
    std::vector<int> producer(ir.values.size(), -1);
    for (size_t i = 0; i < ir.nodes.size(); ++i) {
        for (int v : ir.nodes[i].in) ++uses[size_t(v)];
        for (int v : ir.nodes[i].out) producer[size_t(v)] = int(i);
    }
    for (IrNode& r : ir.nodes) {
        if (r.op->name != "relu" || r.in.size() != 1 || r.out.size() != 1) continue;
        const int x = r.in[0];
        // An output must keep the Linear's own result, not the ReLU's.
        const bool output = std::find(ir.outputs.begin(), ir.outputs.end(), x) != ir.outputs.end();
        if (uses[size_t(x)] != 1 || producer[size_t(x)] < 0 || output) continue;
        IrNode& linear = ir.nodes[size_t(producer[size_t(x)])];
        if (linear.op->name != "linear" || linear.accumulate || linear.relu_epilogue) continue;
        linear.relu_epilogue = true;
        r.fused = true;
        ir.values[size_t(r.out[0])].view_of = x;
    }
}

void fuse_after_autodiff(Ir& ir) {
    if (!ir.fuse) return;
    fuse_linear_gelu(ir);
    fuse_gelu_backward(ir);
    fuse_residual_norm(ir);
    fuse_norm_backward_copy(ir);
}

} // namespace vktrain::graph
