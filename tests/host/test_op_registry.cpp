// The op registry as the one op list (issue 22): Model::op builds every public op from its declaration, the typed
// builders are that call, list_ops() publishes the declarations, describe() reads them, and attributes reach the
// ops only through accessors checked against the declarations.
#include <gtest/gtest.h>

#include <cfloat>
#include <functional>
#include <set>
#include <string>

#include "graph/registry.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"
#include "error_text.hpp"

namespace {

using vkt_test::error_of;

using vktrain::DataType;
using vktrain::Model;

#define EXPECT_ERROR(call, text)                                                                                       \
    do {                                                                                                               \
        const std::string what_ = error_of([&] { call; });                                                             \
        EXPECT_NE(what_.find(text), std::string::npos) << what_;                                                       \
    } while (0)

// Every public op declares what the C API, the CLI and bindings publish: a doc line, named inputs, and for every
// attribute a doc line and a default that is valid (a number in range, or an attribute declared before it).
TEST(OpRegistry, EveryPublicOpIsDocumentedAndItsDefaultsAreValid) {
    std::set<std::string> listed;
    for (const vktrain::OpInfo& op : vktrain::list_ops()) listed.insert(op.name);
    size_t public_ops = 0;
    for (const vktrain::graph::OpDef* d : vktrain::graph::registered_ops()) {
        SCOPED_TRACE(d->name);
        EXPECT_EQ(listed.count(d->name), d->is_public ? 1u : 0u);
        if (!d->is_public) continue;
        ++public_ops;
        EXPECT_FALSE(d->backward_only);
        EXPECT_GT(std::string(d->doc).size(), 10u);
        EXPECT_FALSE(std::string(d->category).empty());
        EXPECT_FALSE(d->inputs.empty());
        std::set<std::string> before;
        int shapes = 0;
        for (const vktrain::graph::AttrSpec& a : d->attrs) {
            SCOPED_TRACE(a.name);
            EXPECT_GT(std::string(a.doc).size(), 3u) << "every attribute has a one-line doc";
            EXPECT_EQ(before.count(a.name), 0u) << "declared twice";
            if (a.kind == vktrain::AttrKind::shape) ++shapes;
            if (a.has_default) {
                EXPECT_EQ(a.default_from, nullptr);
                const double v = a.default_value;
                EXPECT_TRUE(a.min_open ? v > a.min : v >= a.min) << v;
                EXPECT_TRUE(a.max_open ? v < a.max : v <= a.max) << v;
            }
            if (a.default_from) {
                EXPECT_EQ(before.count(a.default_from), 1u) << "copies an attribute declared before it";
            }
            before.insert(a.name);
        }
        EXPECT_LE(shapes, 1) << "Node holds one shape attribute";
    }
    EXPECT_GE(public_ops, 25u);
    EXPECT_EQ(listed.size(), public_ops);
}

// The typed builders are Model::op: the same nodes, names and attributes, whichever way a model is built.
TEST(OpRegistry, TypedBuildersAreModelOp) {
    Model a, b;
    const auto both = [&](const std::function<int(Model&)>& typed, const std::function<int(Model&)>& generic) {
        EXPECT_EQ(typed(a), generic(b));
    };
    both([](Model& m) { return m.input("img", {4, 9, 9}); }, [](Model& m) { return m.input("img", {4, 9, 9}); });
    vktrain::Conv2dOptions c;
    c.kernel_h = 3;
    c.kernel_w = 1;
    c.pad_h = 1;
    c.dilation_w = 2;
    c.groups = 2;
    c.bias = false;
    both([&](Model& m) { return m.conv2d(0, 6, c); },
         [](Model& m) {
             return m.op("conv2d", {0},
                         {{"out", 6},
                          {"kernel_w", 1},
                          {"pad_h", 1},
                          {"pad_w", 0},
                          {"dil_w", 2},
                          {"groups", 2},
                          {"bias", false}});
         });
    both([](Model& m) { return m.conv2d(1, 6, vktrain::Conv2dOptions{}); },
         [](Model& m) {
             return m.op("conv2d", {1}, {{"out", 6}});
         }); // every default is Conv2dOptions'
    both([](Model& m) { return m.batch_norm2d(2); }, [](Model& m) { return m.op("batch_norm2d", {2}); });
    both([](Model& m) { return m.max_pool2d(3, vktrain::Pool2dOptions{}); },
         [](Model& m) { return m.op("max_pool2d", {3}); });
    both([](Model& m) { return m.avg_pool2d(3, vktrain::Pool2dOptions::square(3, 1, 1)); },
         [](Model& m) {
             return m.op("avg_pool2d", {3}, {{"kernel_h", 3}, {"stride_h", 1}, {"stride_w", 1}, {"pad_h", 1}});
         });
    both([](Model& m) { return m.dropout(5, 0.25f); }, [](Model& m) { return m.op("dropout", {5}, {{"p", 0.25f}}); });
    both(
        [](Model& m) {
            return m.reshape(6, {-1, 7});
        },
        [](Model& m) {
            return m.op("reshape", {6}, {{"shape", {-1, 7}}});
        });
    both([](Model& m) { return m.transpose(7, 0, 1); },
         [](Model& m) {
             return m.op("transpose", {7}, {{"dim0", 0}, {"dim1", 1}});
         });
    both([](Model& m) { return m.slice(8, 1, 1, 3); },
         [](Model& m) {
             return m.op("slice", {8}, {{"dim", 1}, {"start", 1}, {"end", 3}});
         });
    both([](Model& m) { return m.layer_norm(9); }, [](Model& m) { return m.op("layer_norm", {9}); });
    both([](Model& m) { return m.rms_norm(10); }, [](Model& m) { return m.op("rms_norm", {10}); });
    both([](Model& m) { return m.silu(11); }, [](Model& m) { return m.op("silu", {11}); });
    both([](Model& m) { return m.gelu_tanh(12); }, [](Model& m) { return m.op("gelu_tanh", {12}); });
    both([](Model& m) { return m.add(12, 13); }, [](Model& m) { return m.op("add", {12, 13}); });
    both([](Model& m) { return m.flatten(14); }, [](Model& m) { return m.op("flatten", {14}); });
    both([](Model& m) { return m.linear(15, 5, false); },
         [](Model& m) {
             return m.op("linear", {15}, {{"out", 5}, {"bias", 0}});
         });
    both([](Model& m) { return m.softmax(16); }, [](Model& m) { return m.op("softmax", {16}); });
    both([](Model& m) { return m.input("labels", {}, DataType::i32); },
         [](Model& m) { return m.input("labels", {}, DataType::i32); });
    both([](Model& m) { return m.cross_entropy(16, 18); }, [](Model& m) { return m.op("cross_entropy", {16, 18}); });
    EXPECT_EQ(a.to_json(), b.to_json());
    EXPECT_EQ(a.nodes()[1].name, "conv0");
    EXPECT_EQ(a.nodes()[4].name, "maxpool0");
    EXPECT_EQ(a.nodes().back().name, "loss");

    Model g, h;
    const int gi = g.input("ids", {6}, DataType::i32), hi = h.input("ids", {6}, DataType::i32);
    const int ge = g.embedding(gi, 11, 6), he = h.op("embedding", {hi}, {{"num_embeddings", 11}, {"dim", 6}});
    const int gp = g.position_embedding(ge, 8), hp = h.op("position_embedding", {he}, {{"max_positions", 8}});
    const int ga = g.self_attention(g.linear(gp, 18), 2),
              ha = h.op("self_attention", {h.op("linear", {hp}, {{"out", 18}})}, {{"heads", 2}});
    g.linear_tied(ga, ge);
    h.op("linear_tied", {ha, he});
    EXPECT_EQ(g.to_json(), h.to_json());
}

// MobileNet's ops (issue 24): the typed builders are Model::op, and bad shapes are one-line errors naming the node.
TEST(OpRegistry, VisionHeadOpsBuildAndRefuse) {
    Model a, b;
    const auto both = [&](const std::function<int(Model&)>& typed, const std::function<int(Model&)>& generic) {
        EXPECT_EQ(typed(a), generic(b));
    };
    both([](Model& m) { return m.input("img", {4, 7, 5}); }, [](Model& m) { return m.input("img", {4, 7, 5}); });
    both([](Model& m) { return m.relu6(0); }, [](Model& m) { return m.op("relu6", {0}); });
    both([](Model& m) { return m.hardswish(1); }, [](Model& m) { return m.op("hardswish", {1}); });
    both([](Model& m) { return m.hardsigmoid(2); }, [](Model& m) { return m.op("hardsigmoid", {2}); });
    both([](Model& m) { return m.adaptive_avg_pool2d(3); }, [](Model& m) { return m.op("adaptive_avg_pool2d", {3}); });
    both([](Model& m) { return m.channel_mul(3, 4); }, [](Model& m) { return m.op("channel_mul", {3, 4}); });
    both([](Model& m) { return m.adaptive_avg_pool2d(5, 3, 2); },
         [](Model& m) {
             return m.op("adaptive_avg_pool2d", {5}, {{"out_h", 3}, {"out_w", 2}});
         });
    EXPECT_EQ(a.to_json(), b.to_json());
    EXPECT_EQ(a.nodes()[1].name, "relu6_0");
    EXPECT_EQ(a.nodes()[4].name, "adaptive_pool0");
    EXPECT_EQ(a.nodes()[5].name, "channel_mul0");
    EXPECT_EQ(a.nodes()[4].shape, (std::vector<int64_t>{4, 1, 1}));
    EXPECT_EQ(a.nodes()[6].shape, (std::vector<int64_t>{4, 3, 2}));
    EXPECT_EQ(Model::from_json(a.to_json()).to_json(), a.to_json()); // saved models keep the ops and attributes

    Model m;
    const int x = m.input("x", {4, 7, 5}), flat = m.input("flat", {8});
    EXPECT_ERROR(m.adaptive_avg_pool2d(flat), "adaptive_avg_pool2d 'adaptive_pool0': input 'flat' is [8]; expected");
    EXPECT_ERROR(m.adaptive_avg_pool2d(x, 0, 2), "attribute 'out_h' is 0");
    EXPECT_ERROR(m.channel_mul(x, m.input("s3", {3, 1, 1})),
                 "channel_mul 'channel_mul0': s 's3' is [3, 1, 1]; expected [4, 1, 1] or [4] for x of [4, 7, 5]");
    EXPECT_ERROR(m.channel_mul(flat, x), "channel_mul 'channel_mul0': x 'flat' is [8]; expected");
    EXPECT_EQ(m.nodes()[size_t(m.channel_mul(x, m.input("s", {4})))].shape, (std::vector<int64_t>{4, 7, 5}));
}

TEST(OpRegistry, ModelOpRefusesWithOneLineNamingTheProblem) {
    Model m;
    const int x = m.input("x", {8});
    EXPECT_ERROR(m.op("nope", {x}), "unknown op 'nope' (ops: linear, ");
    EXPECT_ERROR(m.op("linear_weight_grad", {x}), "op 'linear_weight_grad' is internal to vktrain");
    EXPECT_ERROR(m.op("input", {}), "inputs are made with Model::input");
    EXPECT_ERROR(m.op("add", {x}), "add takes 2 input(s) (a, b), got 1");
    EXPECT_ERROR(m.op("linear", {x}), "linear 'linear0': attribute 'out' is missing");
    EXPECT_ERROR(m.op("linear", {x}, {{"out", 4}, {"stride", 2}}),
                 "linear: unknown attribute 'stride' (attributes: out, bias)");
    EXPECT_ERROR(m.op("linear", {x}, {{"out", {4}}}), "attribute 'out' is a number, not a shape");
    EXPECT_ERROR(m.op("reshape", {x}, {{"shape", 8}}), "attribute 'shape' is a shape");
    EXPECT_ERROR(m.op("reshape", {x}), "attribute 'shape' (a shape) is missing");
    EXPECT_ERROR(m.op("activation", {x}), "unknown op 'activation'");
    EXPECT_ERROR(m.op("relu", {x}, {{"act", 1}}), "relu: unknown attribute 'act'"); // set by lowering, not by callers
    EXPECT_ERROR(m.op("dropout", {x}, {{"p", 1.0}}), "dropout 'dropout0': attribute 'p' is 1; expected [0, 1)");
    EXPECT_ERROR(m.op("linear", {x}, {{"out", 0}}), "attribute 'out' is 0; expected [1, 2147483647]");
    EXPECT_ERROR(m.op("linear", {x}, {{"out", 2.5}}), "attribute 'out' is 2.5; expected an integer");
    EXPECT_ERROR(m.op("layer_norm", {x}, {{"eps", 0}}), "attribute 'eps' is 0; expected > 0");
    EXPECT_ERROR(m.op("linear", {7}, {{"out", 4}}), "linear: value 7 does not exist");
    // Refused calls do not use up names: the next linear is still linear0.
    EXPECT_EQ(m.nodes()[size_t(m.op("linear", {x}, {{"out", 4}}))].name, "linear0");
}

// Defaults follow PyTorch and the typed builders' option structs; a _w attribute copies its _h one, and a pooling's
// stride is its kernel height.
TEST(OpRegistry, DefaultsCopyEarlierAttributes) {
    Model m;
    const int x = m.input("x", {3, 12, 12});
    const vktrain::Node& pool = m.nodes()[size_t(m.op("max_pool2d", {x}, {{"kernel_h", 3}, {"pad_h", 1}}))];
    EXPECT_EQ(pool.attrs.at("kernel_w"), 3);
    EXPECT_EQ(pool.attrs.at("stride_h"), 3);
    EXPECT_EQ(pool.attrs.at("stride_w"), 3);
    EXPECT_EQ(pool.attrs.at("pad_w"), 1);
    EXPECT_EQ(pool.shape, (std::vector<int64_t>{3, 4, 4}));
    vktrain::Pool2dOptions wide; // the typed builder keeps Pool2dOptions' meaning: stride 0 is that side's kernel
    wide.kernel_h = 3;
    const vktrain::Node& typed = m.nodes()[size_t(m.max_pool2d(x, wide))];
    EXPECT_EQ(typed.attrs.at("stride_h"), 3);
    EXPECT_EQ(typed.attrs.at("stride_w"), 2);
    const vktrain::Node& conv = m.nodes()[size_t(m.op("conv2d", {x}, {{"out", 4}, {"kernel_h", 5}, {"stride_h", 2}}))];
    EXPECT_EQ(conv.attrs.at("kernel_w"), 5);
    EXPECT_EQ(conv.attrs.at("stride_w"), 2);
    EXPECT_EQ(conv.attrs.at("dil_w"), 1);
    EXPECT_EQ(conv.attrs.at("bias"), 1);
    bool found = false;
    for (const vktrain::OpInfo& op : vktrain::list_ops()) {
        if (op.name != "conv2d") continue;
        found = true;
        EXPECT_EQ(op.inputs, std::vector<std::string>{"x"});
        EXPECT_EQ(op.attrs[0].name, "out");
        EXPECT_TRUE(op.attrs[0].required);
        EXPECT_FALSE(op.attrs[0].default_value.has_value());
        EXPECT_EQ(op.attrs[1].name, "kernel_h");
        EXPECT_EQ(op.attrs[1].default_value, 3.0);
        EXPECT_EQ(op.attrs[2].default_from, "kernel_h");
        for (const vktrain::OpAttrInfo& a : op.attrs) EXPECT_NE(a.name, "x_c") << "set by lowering: not listed";
    }
    EXPECT_TRUE(found);
}

// Ops read attributes through attr<T>(), checked against the declaration: an undeclared name or a type the
// declaration does not fit is an internal error naming both, not a silent 0.
TEST(OpRegistry, AttributeReadsAreCheckedAgainstTheDeclaration) {
    Model m;
    const vktrain::Node& linear = m.nodes()[size_t(m.linear(m.input("x", {8}), 4))];
    EXPECT_EQ(vktrain::graph::attr<uint32_t>(linear, "out"), 4u);
    EXPECT_TRUE(vktrain::graph::attr<bool>(linear, "bias"));
    EXPECT_ERROR((void)vktrain::graph::attr<uint32_t>(linear, "kernel_h"),
                 "op 'linear' (node 'linear0') reads attribute 'kernel_h', which it does not declare");
    EXPECT_ERROR((void)vktrain::graph::attr<float>(linear, "out"), "reads attribute 'out' as a type");
    EXPECT_ERROR((void)vktrain::graph::attr<int8_t>(linear, "out"), "reads attribute 'out' as a type");
}

// describe() reads the registry and writes what earlier versions wrote (checkpoints compare it).
TEST(OpRegistry, DescribeKeepsItsForms) {
    EXPECT_EQ(Model::mlp(784, {256, 128}, 10).describe(), "784-256(relu)-128(relu)-10");
    EXPECT_EQ(Model::mlp(20, {8}, 3, vktrain::OpKind::gelu).describe(), "20-8(gelu)-3");
    EXPECT_EQ(Model::cnn().describe(), "[1, 28, 28] conv2d32 relu max_pool2d conv2d64 relu max_pool2d flatten "
                                       "linear1024 relu linear10 cross_entropy");
    Model m;
    const int y = m.silu(m.linear(m.input("x", {4}), 2));
    m.mse_loss(y, m.input("y", {2}));
    EXPECT_EQ(m.describe(), "[4] linear2 silu [2] mse_loss");
}

// docs/model-format.md: "vktrain_graph" is the format version; a file without it is version 1, a later version is
// refused by name.
TEST(OpRegistry, ModelJsonCarriesItsFormatVersion) {
    const Model m = Model::mlp(6, {5}, 3);
    std::string json = m.to_json();
    ASSERT_EQ(json.rfind("{\"vktrain_graph\":1,", 0), 0u) << json;
    const std::string unversioned = "{" + json.substr(json.find(',') + 1);
    EXPECT_EQ(Model::from_json(unversioned).to_json(), json);
    EXPECT_ERROR(Model::from_json("{\"vktrain_graph\":2," + json.substr(json.find(',') + 1)),
                 "model format version 2 is not supported (this build reads versions 1 to 1)");
    EXPECT_ERROR(Model::from_json("{\"layers\":[]}"), "not a vktrain model description");
}

} // namespace
