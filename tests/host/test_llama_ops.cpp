// The ops Llama adds to the graph (issue 23): rotary position embeddings and the element-wise product. Here: what
// needs no device, i.e. their builders, shape inference, attribute defaults and the one-line errors for bad input
// (tests/device/test_rotary_mul.cpp checks the kernels against CPU references).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "vktrain/error.hpp"
#include "vktrain/model.hpp"
#include "error_text.hpp"

namespace {

using vkt_test::error_of;

using vktrain::Model;

#define EXPECT_ERROR(call, text)                                                                                       \
    do {                                                                                                               \
        const std::string what_ = error_of([&] { call; });                                                             \
        EXPECT_NE(what_.find(text), std::string::npos) << what_;                                                       \
        EXPECT_EQ(what_.find('\n'), std::string::npos) << what_;                                                       \
    } while (0)

TEST(LlamaOps, RotaryKeepsTheShapeAndDefaultsThetaTo10000) {
    Model m;
    const int x = m.input("x", {7, 24});
    const int y = m.rotary(x, 3);
    EXPECT_EQ(m.shape(y), (std::vector<int64_t>{7, 24}));
    EXPECT_EQ(m.nodes()[size_t(y)].name, "rotary0");
    EXPECT_EQ(m.nodes()[size_t(y)].attrs.at("heads"), 3.0);
    EXPECT_EQ(m.nodes()[size_t(y)].attrs.at("theta"), 10000.0);
    const int z = m.rotary(y, 2, 500000.0f);
    EXPECT_EQ(m.nodes()[size_t(z)].attrs.at("theta"), 500000.0);
    EXPECT_EQ(m.nodes()[size_t(z)].name, "rotary1");
    // The generic builder gives the same node.
    Model g;
    const int gx = g.input("x", {7, 24});
    g.op("rotary", {g.op("rotary", {gx}, {{"heads", 3}})}, {{"heads", 2}, {"theta", 500000.0}});
    EXPECT_EQ(m.to_json(), g.to_json());
}

TEST(LlamaOps, MulTakesTwoValuesOfOneShape) {
    Model m;
    const int a = m.input("a", {3, 10}), b = m.input("b", {3, 10});
    const int y = m.mul(a, b);
    EXPECT_EQ(m.shape(y), (std::vector<int64_t>{3, 10}));
    EXPECT_EQ(m.nodes()[size_t(y)].name, "mul0");
    Model g;
    const int ga = g.input("a", {3, 10});
    g.op("mul", {ga, g.input("b", {3, 10})});
    EXPECT_EQ(m.to_json(), g.to_json());
    // A model with both survives its JSON form (how weights files record architectures).
    m.rotary(m.mul(y, a), 5, 500000.0f);
    EXPECT_EQ(Model::from_json(m.to_json()).to_json(), m.to_json());
}

TEST(LlamaOps, BadInputIsOneLineNamingTheNode) {
    Model m;
    const int x = m.input("x", {4, 12});
    const int ids = m.input("ids", {4}, vktrain::DataType::i32);
    const int flat = m.input("flat", {12}), other = m.input("y", {4, 6});
    const size_t nodes = m.nodes().size();
    EXPECT_ERROR(m.rotary(x, 5), "rotary 'rotary0': 5 heads do not divide the last dimension 12");
    EXPECT_ERROR(m.rotary(x, 4), "rotary 'rotary0': the head size 3 (12 / 4 heads) is odd");
    EXPECT_ERROR(m.rotary(x, 0), "rotary 'rotary0': attribute 'heads' is 0");
    EXPECT_ERROR(m.rotary(x, 2, 0.0f), "rotary 'rotary0': attribute 'theta' is 0; expected > 0");
    EXPECT_ERROR(m.rotary(flat, 2), "rotary 'rotary0': input 'flat' is [12]; expected [positions");
    EXPECT_ERROR(m.rotary(ids, 1), "input 'ids' holds integers");
    EXPECT_ERROR(m.op("rotary", {x}), "rotary 'rotary0': attribute 'heads' is missing");
    EXPECT_ERROR(m.mul(x, other), "mul 'mul0': shapes [4, 12] and [4, 6] differ");
    EXPECT_ERROR(m.op("mul", {x}), "mul takes 2 input(s) (a, b), got 1");
    EXPECT_ERROR(m.op("rotary_backward", {x}), "op 'rotary_backward' is internal to vktrain");
    // Nothing was added by the refused calls, and the next node takes the first name.
    EXPECT_EQ(m.nodes().size(), nodes);
    EXPECT_EQ(m.rotary(x, 2), int(nodes));
    EXPECT_EQ(m.nodes().back().name, "rotary0");
}

} // namespace
