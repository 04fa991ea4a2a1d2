// Activation recomputation as an IR pass (graph/recompute.hpp): which nodes are copied into the backward pass, what
// the backward pass reads, and the planned peak memory it saves (the planner's own numbers, no device).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "graph/ir.hpp"
#include "graph/planner.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::GptOptions;
using vktrain::Model;
using vktrain::graph::build_ir;
using vktrain::graph::Ir;
using vktrain::graph::IrNode;
using vktrain::graph::plan_memory;

constexpr uint32_t k_batch = 4;
constexpr uint64_t k_alignment = 256;

GptOptions gpt(uint32_t layers) {
    GptOptions g;
    g.vocab = 64;
    g.layers = layers;
    g.heads = 2;
    g.width = 32;
    g.context = 16;
    g.mlp = 128;
    return g;
}

Ir training_ir(const Model& m, bool recompute) {
    return build_ir(m, k_batch, true, 1, UINT64_MAX, recompute);
}

uint64_t peak(const Model& m, bool recompute, bool fp16) {
    return plan_memory(training_ir(m, recompute), fp16, k_alignment).arena_bytes;
}

TEST(Recompute, BlockNodesAreCopiedIntoTheBackwardPassAndReadThere) {
    const Model m = Model::gpt(gpt(3));
    const Ir plain = training_ir(m, false);
    const Ir ir = training_ir(m, true);
    EXPECT_EQ(plain.recomputed_blocks, 0u);
    EXPECT_EQ(ir.recomputed_blocks, 3u);
    EXPECT_EQ(ir.nodes.size(), plain.nodes.size() + ir.recomputed_nodes);
    EXPECT_EQ(ir.forward_nodes, plain.forward_nodes);
    // The forward pass is unchanged; every copy lies in the backward pass, after the loss, and is a block's node.
    for (size_t i = 0; i < ir.forward_nodes; ++i) EXPECT_EQ(ir.nodes[i].label, plain.nodes[i].label);
    std::set<int> produced_in_forward;
    for (size_t i = 0; i < ir.forward_nodes; ++i)
        for (int v : ir.nodes[i].out) produced_in_forward.insert(v);
    std::set<int> recomputed_values;
    int last_block = 1 << 30;
    for (size_t i = ir.forward_nodes; i < ir.nodes.size(); ++i) {
        const IrNode& n = ir.nodes[i];
        if (n.recomputed) {
            EXPECT_FALSE(n.backward) << n.label;
            EXPECT_GE(n.block, 0) << n.label;
            // Blocks are recomputed in reverse order, each just before its backward pass.
            EXPECT_LE(n.block, last_block) << n.label;
            last_block = n.block;
            for (int v : n.out) recomputed_values.insert(v);
            continue;
        }
        // A backward node reads no value of a block's interior from the forward pass: only block inputs (the
        // residual stream between layers) and values outside the blocks.
        for (int v : n.in) {
            if (!produced_in_forward.count(v)) continue;
            const std::string& label = ir.values[size_t(v)].label;
            EXPECT_TRUE(label.rfind("transformer.h.", 0) != 0 || label.find(".recomputed") != std::string::npos)
                << n.label << " reads " << label;
        }
    }
    EXPECT_FALSE(recomputed_values.empty());
    // The copies are the forward nodes themselves (label, attributes): same kernels and GEMM sites.
    const IrNode* copy = nullptr;
    for (const IrNode& n : ir.nodes)
        if (n.recomputed && n.label == "transformer.h.1.mlp.c_fc.forward") copy = &n;
    ASSERT_NE(copy, nullptr);
    for (const IrNode& n : plain.nodes)
        if (n.label == copy->label) {
            EXPECT_EQ(copy->attrs, n.attrs);
            EXPECT_EQ(copy->op, n.op);
            EXPECT_EQ(copy->name, n.name);
        }
}

// Peak activation memory: with recomputation each layer beyond the first adds about one block input (batch · context
// · width values) to the plan; without it, a whole block's saved activations.
TEST(Recompute, PlannedPeakGrowsByOneBlockInputPerLayer) {
    for (bool fp16 : {false, true}) {
        const uint64_t value = fp16 ? 2 : 4;
        const uint64_t input_bytes = uint64_t(k_batch) * 16 * 32 * value; // one block input
        const uint64_t none1 = peak(Model::gpt(gpt(1)), false, fp16), none6 = peak(Model::gpt(gpt(6)), false, fp16);
        const uint64_t blocks1 = peak(Model::gpt(gpt(1)), true, fp16), blocks6 = peak(Model::gpt(gpt(6)), true, fp16);
        const uint64_t block_bytes = (none6 - none1) / 5; // one block's saved activations
        SCOPED_TRACE("fp16 " + std::to_string(fp16) + ": none " + std::to_string(none1) + " / " +
                     std::to_string(none6) + ", blocks " + std::to_string(blocks1) + " / " + std::to_string(blocks6));
        EXPECT_GT(block_bytes, 4 * input_bytes); // the activations a layer keeps: far more than its input
        EXPECT_LT(blocks6, none6);
        // At most one block's activations (the 1-layer plan) plus the other layers' inputs, with one alignment unit of
        // slack per layer.
        EXPECT_LE(blocks6, none1 + 5 * (input_bytes + k_alignment));
        EXPECT_LE(blocks6 - blocks1, 5 * (input_bytes + k_alignment));
    }
}

TEST(Recompute, ModelsWithoutBlocksAreUnchanged) {
    const Model m = Model::mlp(12, {8, 6}, 3);
    const Ir plain = training_ir(m, false), ir = training_ir(m, true);
    EXPECT_EQ(ir.recomputed_blocks, 0u);
    EXPECT_EQ(ir.nodes.size(), plain.nodes.size());
}

TEST(Recompute, BlockNodesSurviveJsonAndLora) {
    Model m = Model::gpt(gpt(2));
    Model back = Model::from_json(m.to_json());
    ASSERT_EQ(back.nodes().size(), m.nodes().size());
    for (size_t i = 0; i < m.nodes().size(); ++i) EXPECT_EQ(back.nodes()[i].block, m.nodes()[i].block) << i;
    EXPECT_EQ(training_ir(back, true).recomputed_blocks, 2u);
    m.add_lora("*.c_attn", vktrain::LoraOptions{4, 8.0f, 0.1f});
    int adapters = 0;
    for (const auto& n : m.nodes())
        if (n.name.find(".lora") != std::string::npos) {
            EXPECT_GE(n.block, 0) << n.name;
            ++adapters;
        }
    EXPECT_EQ(adapters, 2 * 4); // dropout, A, B and the sum per layer
    EXPECT_THROW(Model::from_json(R"({"nodes":[{"op":"input","name":"x","inputs":[],"shape":[2],"type":"f32"},)"
                                  R"({"op":"relu","name":"r","inputs":[0],"block":-2}]})"),
                 vktrain::Error);
}

TEST(Recompute, BatchNormInsideABlockIsRefused) {
    Model m;
    const int x = m.input("x", {3, 4, 4});
    m.set_block(0);
    const int c = m.conv2d(x, 4, vktrain::Conv2dOptions{});
    const int b = m.batch_norm2d(c);
    m.set_block(-1);
    m.cross_entropy(m.linear(m.flatten(m.relu(b)), 5), m.input("labels", {}, vktrain::DataType::i32));
    try {
        training_ir(m, true);
        FAIL() << "no error";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("running statistics"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(training_ir(m, false));
}

} // namespace
