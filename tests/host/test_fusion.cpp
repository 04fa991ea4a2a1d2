// Forward fusions in the IR (graph/fusion.hpp): which nodes are fused, and that the values the backward pass reads
// are still there (a fused ReLU's output is a view of the Linear's, which now holds the activation).
#include <gtest/gtest.h>

#include <string>

#include "graph/ir.hpp"
#include "graph/planner.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::Model;
using vktrain::graph::build_ir;
using vktrain::graph::Ir;
using vktrain::graph::IrNode;

const IrNode& node(const Ir& ir, const std::string& label) {
    for (const IrNode& n : ir.nodes)
        if (n.label == label) return n;
    ADD_FAILURE() << "no node " << label;
    static const IrNode none;
    return none;
}

TEST(Fusion, ReluAfterLinearRunsInTheGemmEpilogue) {
    for (bool training : {true, false}) {
        const Ir ir = build_ir(Model::mlp(12, {8, 6}, 3), 4, training, 1);
        for (const char* layer : {"linear0", "linear1"}) {
            EXPECT_TRUE(node(ir, std::string(layer) + ".forward").relu_epilogue) << layer;
        }
        EXPECT_FALSE(node(ir, "linear2.forward").relu_epilogue); // followed by the loss
        for (const char* relu : {"relu0", "relu1"}) {
            const IrNode& r = node(ir, std::string(relu) + ".forward");
            EXPECT_TRUE(r.fused) << relu;
            // Its output is the Linear's output itself, which the backward pass then reads as y.
            EXPECT_EQ(vktrain::graph::storage_root(ir, r.out[0]), r.in[0]) << relu;
        }
        if (training) {
            // The backward nodes derived from a fused node are not fused themselves.
            const IrNode& back = node(ir, "relu1.backward");
            EXPECT_FALSE(back.fused);
            EXPECT_FALSE(node(ir, "linear1.weight_grad").relu_epilogue);
        }
    }
}

TEST(Fusion, NotWhenTheLinearOutputHasOtherReaders) {
    // y = linear(x); out = relu(y) + y: y is read twice, so it must keep the pre-activation.
    Model m;
    const int x = m.input("x", {6});
    const int y = m.linear(x, 6);
    m.softmax_cross_entropy(m.linear(m.add(m.relu(y), y), 3));
    const Ir ir = build_ir(m, 2, true, 1);
    EXPECT_FALSE(node(ir, "linear0.forward").relu_epilogue);
    EXPECT_FALSE(node(ir, "relu0.forward").fused);
    // A ReLU after something other than a Linear stays a kernel of its own.
    Model g;
    const int in = g.input("x", {6});
    g.softmax_cross_entropy(g.linear(g.relu(g.add(in, in)), 3));
    const Ir gir = build_ir(g, 2, true, 1);
    EXPECT_FALSE(node(gir, "relu0.forward").fused);
}

} // namespace
