#include "graph/fusion.hpp"

#include <algorithm>
#include <vector>

#include "graph/registry.hpp"

namespace vktrain::graph {

void fuse_linear_relu(Ir& ir) {
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

} // namespace vktrain::graph
