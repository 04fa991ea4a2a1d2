// Named outputs and models without a loss at the model and IR level: the builder's checks, which output predict()
// reads by default, the JSON round trip (outputs and cross-entropy's ignore_index), and the memory planner keeping
// every output's bytes to the end of the forward pass (nothing may be placed over them, and no ReLU fused into them).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "graph/ir.hpp"
#include "graph/planner.hpp"
#include "graph/registry.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::DataType;
using vktrain::Model;
using vktrain::graph::build_ir;
using vktrain::graph::Ir;

#define EXPECT_ERROR(statement, part)                                                                                  \
    do {                                                                                                               \
        try {                                                                                                          \
            statement;                                                                                                 \
            ADD_FAILURE() << "no error; expected one containing '" << (part) << "'";                                   \
        } catch (const vktrain::Error& e) {                                                                            \
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();                                \
        }                                                                                                              \
    } while (0)

// x [6] -> linear0 [5] ("hidden") -> relu -> linear1 [3] ("y"); no loss.
Model two_outputs(int* hidden = nullptr, int* y = nullptr) {
    Model m;
    const int x = m.input("x", {6});
    const int h = m.linear(x, 5);
    const int out = m.linear(m.relu(h), 3);
    m.output(h, "hidden");
    m.output(out, "y");
    if (hidden) *hidden = h;
    if (y) *y = out;
    return m;
}

TEST(ModelOutputs, NamedOutputsAndTheDefault) {
    int h = -1, y = -1;
    Model m = two_outputs(&h, &y);
    EXPECT_EQ(m.loss(), -1);
    ASSERT_EQ(m.outputs().size(), 2u);
    EXPECT_EQ(m.outputs()[0], (std::pair<std::string, int>{"hidden", h}));
    EXPECT_EQ(m.output("y"), y);
    EXPECT_EQ(m.shape(y), (std::vector<int64_t>{3}));
    EXPECT_EQ(m.shape(h), (std::vector<int64_t>{5}));
    // Two outputs and no loss: no default.
    EXPECT_ERROR(m.output(), "no loss and 2 outputs (hidden, y): name the one to predict");
    EXPECT_ERROR(m.output(""), "name the one to predict");
    EXPECT_ERROR(m.output("z"), "no output named 'z' (outputs: hidden, y)");
    // One output: it is the default.
    Model one;
    const int x = one.input("x", {4});
    const int l = one.linear(x, 2);
    one.output(l, "logits");
    EXPECT_EQ(one.output(), l);
    EXPECT_EQ(one.output(""), l);
    // None at all.
    Model none;
    none.linear(none.input("x", {4}), 2);
    EXPECT_ERROR(none.output(), "no loss and no output");
    // With a loss, the default is its prediction operand, whatever else is marked.
    Model mlp = Model::mlp(4, {3}, 2);
    mlp.output(2, "hidden"); // x, linear0, relu0, ...
    EXPECT_EQ(mlp.output(), mlp.nodes()[size_t(mlp.loss())].inputs[0]);
}

TEST(ModelOutputs, BuilderRefusesBadOutputs) {
    Model m = two_outputs();
    EXPECT_ERROR(m.output(1, "hidden"), "an output named 'hidden' exists already");
    EXPECT_ERROR(m.output(42, "z"), "output: value 42 does not exist");
    EXPECT_ERROR(m.output(1, "bad name"), "is not a valid output name");
    EXPECT_ERROR(m.output(1, ""), "is not a valid output name");
    const int ids = m.input("ids", {2}, DataType::i32);
    EXPECT_ERROR(m.output(ids, "ids"), "holds integers");
    Model mlp = Model::mlp(4, {3}, 2);
    EXPECT_ERROR(mlp.output(mlp.loss(), "loss"), "is the loss");
}

TEST(ModelOutputs, OutputsAndIgnoreIndexSurviveJson) {
    Model m = two_outputs();
    const Model back = Model::from_json(m.to_json());
    EXPECT_EQ(back.outputs(), m.outputs());
    EXPECT_EQ(back.to_json(), m.to_json());
    // Without outputs the JSON has no "outputs" key (files of earlier versions read the same).
    EXPECT_EQ(Model::mlp(4, {3}, 2).to_json().find("outputs"), std::string::npos);

    Model ce;
    const int logits = ce.linear(ce.input("x", {3, 4}), 5);
    const int labels = ce.input("labels", {3}, DataType::i32);
    ce.output(logits, "logits");
    vktrain::CrossEntropyOptions o;
    o.ignore_index = -100;
    ce.cross_entropy(logits, labels, o);
    const Model ce_back = Model::from_json(ce.to_json());
    EXPECT_EQ(ce_back.nodes().back().attrs.at("ignore_index"), -100.0);
    EXPECT_EQ(ce_back.outputs(), ce.outputs());
    // Absent: no ignore index (today's behaviour).
    Model plain = Model::mlp(4, {3}, 2);
    EXPECT_EQ(Model::from_json(plain.to_json()).nodes().back().attrs.count("ignore_index"), 0u);
    // A file's bad values are refused naming the problem.
    std::string bad = ce.to_json();
    bad.replace(bad.find("-100"), 4, "1e10");
    EXPECT_ERROR(Model::from_json(bad), "attribute 'ignore_index' is 1e+10");
    std::string frac = ce.to_json();
    frac.replace(frac.find("-100"), 4, "-1.5");
    EXPECT_ERROR(Model::from_json(frac), "expected an integer");
    std::string dangling = m.to_json();
    dangling.replace(dangling.find("\"value\":1"), 9, "\"value\":99");
    EXPECT_ERROR(Model::from_json(dangling), "output 'hidden' is value 99, which is not a node");
}

TEST(ModelOutputs, WithoutALossOnlyInference) {
    const Model m = two_outputs();
    EXPECT_ERROR(build_ir(m, 2, true), "the model has no loss");
    const Ir ir = build_ir(m, 2, false);
    EXPECT_EQ(ir.row_loss, -1);
    EXPECT_EQ(ir.loss_node, -1);
    ASSERT_EQ(ir.outputs.size(), 3u);
    EXPECT_EQ(ir.outputs[0], -1); // no default output
    Model none;
    none.linear(none.input("x", {4}), 2);
    EXPECT_ERROR(build_ir(none, 2, false), "no loss and no output");
}

// An output is alive until the end of the forward pass: no other value shares its bytes after it is written, and a
// ReLU after an output Linear is not fused into it (that would overwrite the output with the activation).
TEST(ModelOutputs, PlannerKeepsOutputsToTheEnd) {
    Model m;
    int x = m.input("x", {16});
    const int early = m.linear(x, 16);
    x = m.relu(early);
    for (int i = 0; i < 5; ++i) x = m.gelu(m.linear(x, 16));
    m.output(early, "early");
    m.output(m.linear(x, 4), "last");
    const Ir ir = build_ir(m, 3, false);
    for (const auto& n : ir.nodes) EXPECT_FALSE(n.relu_epilogue) << n.label;
    const vktrain::graph::MemoryPlan plan = vktrain::graph::plan_memory(ir, true, 64);
    const int v = vktrain::graph::storage_root(ir, ir.outputs[1]);
    ASSERT_GE(plan.offset[size_t(v)], 0);
    EXPECT_EQ(plan.last[size_t(v)], int(ir.nodes.size() - 1));
    const auto lo = uint64_t(plan.offset[size_t(v)]),
               hi = lo + vktrain::graph::storage_bytes(ir.values[size_t(v)], true);
    for (size_t u = 0; u < ir.values.size(); ++u) {
        if (int(u) == v || plan.offset[u] < 0 || plan.last[u] < plan.first[size_t(v)]) continue;
        const auto ulo = uint64_t(plan.offset[u]), uhi = ulo + vktrain::graph::storage_bytes(ir.values[u], true);
        EXPECT_FALSE(ulo < hi && lo < uhi) << ir.values[u].label << " shares the bytes of the output";
    }
    // Without the output, the same chain reuses its bytes: the check above is not vacuous.
    Model plain;
    x = plain.input("x", {16});
    const int e2 = plain.linear(x, 16);
    x = plain.relu(e2);
    for (int i = 0; i < 5; ++i) x = plain.gelu(plain.linear(x, 16));
    plain.output(plain.linear(x, 4), "last");
    const Ir ir2 = build_ir(plain, 3, false);
    const vktrain::graph::MemoryPlan plan2 = vktrain::graph::plan_memory(ir2, true, 64);
    EXPECT_LT(plan2.arena_bytes, plan.arena_bytes);
}

} // namespace
