// Every registered op, through the whole graph machinery: a small model that uses it is trained one step, and the
// analytic gradient of every trainable parameter (reached through the op's backward pass) is checked against
// central finite differences of the loss. The test fails for a registered op without such a model, so an op
// cannot be added without forward, backward and finite-difference coverage.
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "device/support.hpp"
#include "graph/ir.hpp"
#include "graph/registry.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

// A model exercising one op, with an upstream linear layer so the op's input gradient matters, and data for it.
struct Example {
    Model model;
    std::vector<std::vector<float>> float_inputs; // per f32 input
    std::vector<std::vector<int32_t>> int_inputs; // per i32 input
    uint32_t batch = 3;
};

std::vector<float> values(size_t n, uint32_t seed) {
    return vkt_test::random_values(n, seed, -1.0f, 1.0f);
}

std::vector<int32_t> labels(size_t n, int32_t classes, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> out(n);
    for (auto& l : out) l = int32_t(rng() % uint32_t(classes));
    return out;
}

// x [features] -> linear(features) -> [reshape to `shape`] -> op(s) -> flatten -> linear(classes) -> cross-entropy.
Example classifier(uint32_t features, const std::vector<int64_t>& shape, const std::function<int(Model&, int)>& body,
                   uint32_t classes = 3) {
    Example e;
    int x = e.model.input("x", {int64_t(features)});
    x = e.model.linear(x, features);
    if (!shape.empty()) x = e.model.reshape(x, shape);
    x = body(e.model, x);
    x = e.model.linear(e.model.flatten(x), classes);
    e.model.softmax_cross_entropy(x);
    e.float_inputs = {values(size_t(e.batch) * features, 11)};
    e.int_inputs = {labels(e.batch, int32_t(classes), 12)};
    return e;
}

std::map<std::string, std::function<Example()>> examples() {
    std::map<std::string, std::function<Example()>> m;
    m["linear"] = [] { return classifier(5, {}, [](Model& g, int x) { return g.linear(x, 4); }); };
    m["relu"] = [] { return classifier(6, {}, [](Model& g, int x) { return g.relu(x); }); };
    m["gelu_tanh"] = [] { return classifier(6, {}, [](Model& g, int x) { return g.gelu_tanh(x); }); };
    m["flatten"] = [] { return classifier(12, {3, 4}, [](Model& g, int x) { return g.flatten(x); }); };
    m["reshape"] = [] { return classifier(12, {2, 6}, [](Model& g, int x) { return g.reshape(x, {3, -1}); }); };
    m["transpose"] = [] { return classifier(24, {2, 3, 4}, [](Model& g, int x) { return g.transpose(x, 0, 2); }); };
    // The slice's input also feeds the head, so its gradient accumulates into the slice's.
    m["slice"] = [] {
        return classifier(12, {3, 4},
                          [](Model& g, int x) { return g.add(g.slice(x, 1, 1, 3), g.slice(g.gelu_tanh(x), 1, 0, 2)); });
    };
    // A small CNN (conv, batch norm, ReLU, max pool) and a residual block, end to end.
    m["cnn_block"] = [] {
        return classifier(48, {3, 4, 4}, [](Model& g, int x) {
            x = g.relu(g.batch_norm2d(g.conv2d(x, 4, vktrain::Conv2dOptions::square(3, 1, 1))));
            return g.max_pool2d(x, vktrain::Pool2dOptions::square(2));
        });
    };
    m["residual_block"] = [] {
        return classifier(48, {3, 4, 4}, [](Model& g, int x) {
            // Smooth activations: a bias moves every position at once, and ReLU kinks would blur the differences.
            const int h = g.gelu_tanh(g.conv2d(x, 3, vktrain::Conv2dOptions::square(3, 1, 1)));
            return g.gelu_tanh(g.add(x, g.conv2d(h, 3, vktrain::Conv2dOptions::square(3, 1, 1))));
        });
    };
    m["gelu"] = [] { return classifier(6, {}, [](Model& g, int x) { return g.gelu(x); }); };
    m["silu"] = [] { return classifier(6, {}, [](Model& g, int x) { return g.silu(x); }); };
    // MobileNet's activations: the upstream linear layer's outputs, scaled by 4, span the kinks at -3, 0, 3 and 6
    // (elements whose differences straddle a kink are skipped).
    const auto scaled = [](int (Model::*act)(int)) {
        return [act] {
            return classifier(6, {}, [act](Model& g, int x) { return (g.*act)(g.add(x, g.add(x, g.add(x, x)))); });
        };
    };
    m["relu6"] = scaled(&Model::relu6);
    m["hardswish"] = scaled(&Model::hardswish);
    m["hardsigmoid"] = scaled(&Model::hardsigmoid);
    // A residual connection: x feeds the add and the branch, so its gradient accumulates.
    m["add"] = [] { return classifier(6, {}, [](Model& g, int x) { return g.add(x, g.linear(g.gelu_tanh(x), 6)); }); };
    m["dropout"] = [] { return classifier(8, {}, [](Model& g, int x) { return g.dropout(x, 0.25f); }); };
    // Odd shapes: 2 channels of 5x7, a 3x2 kernel with stride (2, 1), padding (1, 1), dilation (1, 2), groups 2.
    m["conv2d"] = [] {
        return classifier(70, {2, 5, 7}, [](Model& g, int x) {
            vktrain::Conv2dOptions o;
            o.kernel_h = 3;
            o.kernel_w = 2;
            o.stride_h = 2;
            o.pad_h = o.pad_w = 1;
            o.dilation_w = 2;
            o.groups = 2;
            return g.conv2d(x, 4, o);
        });
    };
    // Depthwise (groups = channels, the depthwise kernel): MobileNet's 3x3, stride 2, on 3 channels of 5x7. (The
    // conv2d example above, groups 2 of 2 channels with 4 outputs, is depthwise with multiplier 2.)
    m["conv2d_depthwise"] = [] {
        return classifier(105, {3, 5, 7}, [](Model& g, int x) {
            vktrain::Conv2dOptions o = vktrain::Conv2dOptions::square(3, 2, 1);
            o.groups = 3;
            return g.conv2d(x, 3, o);
        });
    };
    m["max_pool2d"] = [] {
        return classifier(70, {2, 5, 7},
                          [](Model& g, int x) { return g.max_pool2d(x, vktrain::Pool2dOptions::square(3, 2, 1)); });
    };
    m["avg_pool2d"] = [] {
        return classifier(70, {2, 5, 7},
                          [](Model& g, int x) { return g.avg_pool2d(x, vktrain::Pool2dOptions::square(2)); });
    };
    // Bins that overlap (5 rows to 3, 7 columns to 2), and bins smaller than a cell (5 x 7 up to 7 x 4, then down to
    // 3 x 2); x feeds both poolings, so the second backward accumulates into its gradient.
    m["adaptive_avg_pool2d"] = [] {
        return classifier(70, {2, 5, 7}, [](Model& g, int x) {
            return g.add(g.adaptive_avg_pool2d(x, 3, 2), g.adaptive_avg_pool2d(g.adaptive_avg_pool2d(x, 7, 4), 3, 2));
        });
    };
    // A squeeze-excitation block: global average pooling (the plane reduction), a linear squeeze and hardsigmoid give
    // s [2, 1, 1], which scales x; x feeds both branches, so its two gradients add.
    m["channel_mul"] = [] {
        return classifier(30, {2, 3, 5}, [](Model& g, int x) {
            const int pooled = g.flatten(g.adaptive_avg_pool2d(x));
            const int s = g.reshape(g.hardsigmoid(g.linear(pooled, 2)), {2, 1, 1});
            return g.channel_mul(x, s);
        });
    };
    m["batch_norm2d"] = [] { return classifier(30, {3, 2, 5}, [](Model& g, int x) { return g.batch_norm2d(x); }); };
    // A regression head: MSE against a real-valued target of the prediction's shape.
    m["mse_loss"] = [] {
        Example e;
        int x = e.model.input("x", {5});
        x = e.model.linear(e.model.gelu_tanh(e.model.linear(x, 6)), 2);
        e.model.mse_loss(x, e.model.input("target", {2}));
        e.float_inputs = {values(size_t(e.batch) * 5, 31), values(size_t(e.batch) * 2, 32)};
        return e;
    };
    // Per-position cross-entropy: logits [positions, classes] against labels [positions].
    m["cross_entropy"] = [] {
        Example e;
        int x = e.model.input("x", {4, 5});
        x = e.model.linear(x, 3); // [4, 3]
        const int l = e.model.input("labels", {4}, vktrain::DataType::i32);
        e.model.cross_entropy(x, l);
        e.float_inputs = {values(size_t(e.batch) * 20, 21)};
        e.int_inputs = {labels(size_t(e.batch) * 4, 3, 22)};
        return e;
    };
    // The same with PyTorch's ignore_index (a class index here): ignored positions add nothing and
    // the mean is over the others (two of the three samples' positions are partly ignored).
    m["cross_entropy_ignore_index"] = [] {
        Example e;
        int x = e.model.input("x", {4, 5});
        x = e.model.linear(e.model.gelu_tanh(e.model.linear(x, 5)), 3); // [4, 3]
        const int l = e.model.input("labels", {4}, vktrain::DataType::i32);
        vktrain::CrossEntropyOptions ce;
        ce.ignore_index = 1;
        e.model.cross_entropy(x, l, ce);
        e.float_inputs = {values(size_t(e.batch) * 20, 23)};
        e.int_inputs = {{0, 1, 2, 1, 2, 2, 0, 1, 1, 0, 1, 2}};
        return e;
    };
    // Embeddings: i32 ids [5] over a vocabulary of 7 -> embedding(7, 4) -> body -> logits [5, 7] -> per-position
    // cross-entropy (ids, then labels).
    const auto tokens = [](const std::function<int(Model&, int)>& body) {
        Example e;
        const int ids = e.model.input("ids", {5}, vktrain::DataType::i32);
        const int logits = body(e.model, e.model.embedding(ids, 7, 4));
        e.model.cross_entropy(logits, e.model.input("labels", {5}, vktrain::DataType::i32));
        e.int_inputs = {labels(size_t(e.batch) * 5, 7, 41), labels(size_t(e.batch) * 5, 7, 42)};
        return e;
    };
    m["embedding"] = [tokens] { return tokens([](Model& g, int x) { return g.linear(g.gelu_tanh(x), 7); }); };
    // T = 5 of 8 positions; the input's gradient (dx = dy) reaches the embedding.
    m["position_embedding"] = [tokens] {
        return tokens([](Model& g, int x) { return g.linear(g.gelu_tanh(g.position_embedding(x, 8)), 7); });
    };
    // The embedding's table is also the output projection: its gradient sums both uses.
    m["linear_tied"] = [tokens] {
        return tokens([](Model& g, int x) { return g.linear_tied(g.gelu_tanh(g.linear(x, 4)), x); });
    };
    // LayerNorm and RMSNorm over the last dimension of [positions, features]: a LayerNorm without affine transform,
    // a GELU, then an affine one (its input gradient reaches the first); RMSNorm then a GELU.
    m["layer_norm"] = [] {
        return classifier(15, {3, 5},
                          [](Model& g, int x) { return g.layer_norm(g.gelu_tanh(g.layer_norm(x, 1e-5f, false))); });
    };
    m["rms_norm"] = [] { return classifier(15, {3, 5}, [](Model& g, int x) { return g.gelu_tanh(g.rms_norm(x)); }); };
    // ---- softmax and self-attention (issue 12) ----
    m["softmax"] = [] { return classifier(12, {3, 4}, [](Model& g, int x) { return g.softmax(x); }); };
    // qkv [4 positions, 3 * 6] with 2 heads of 3, causal; qkv also feeds a slice whose backward runs first, so
    // the attention's backward adds into d(qkv) (accumulate mode).
    m["self_attention"] = [] {
        return classifier(72, {4, 18}, [](Model& g, int x) {
            const int a = g.self_attention(x, 2);
            return g.add(a, g.slice(x, 1, 0, 6));
        });
    };
    m["self_attention_full"] = [] {
        return classifier(45, {3, 15}, [](Model& g, int x) { return g.self_attention(x, 5, false); });
    };
    // ---- Llama's ops (issue 23) ----
    // Rotary embeddings of [4 positions, 2 heads of 8]; x also feeds the add, so the inverse rotation accumulates
    // into x's gradient. theta 100: the angles turn far enough over 4 positions to matter.
    m["rotary"] = [] {
        return classifier(64, {4, 16}, [](Model& g, int x) { return g.add(g.rotary(x, 2, 100.0f), x); });
    };
    // x·x (both gradients land on x: the second one accumulates) times a linear branch of x.
    m["mul"] = [] { return classifier(6, {}, [](Model& g, int x) { return g.mul(g.mul(x, x), g.linear(x, 6)); }); };
    // ---- attention over separate q, k and v with grouped-query heads (issue 23) ----
    // 4 query heads of 3 over 2 key/value heads, causal, [4 positions, 6] projected to q [4, 12], k and v [4, 6].
    m["attention"] = [] {
        return classifier(24, {4, 6}, [](Model& g, int x) {
            return g.attention(g.linear(x, 12), g.linear(x, 6), g.linear(x, 6), 4, 2);
        });
    };
    // Multi-query (one key/value head), not causal; one projection is both k and v, and q also feeds a slice whose
    // backward runs first, so the gradient nodes add into d(q) and d(kv) (accumulate mode).
    m["attention_mqa_shared_kv"] = [] {
        return classifier(15, {3, 5}, [](Model& g, int x) {
            const int q = g.linear(x, 8), kv = g.linear(x, 2);
            return g.add(g.attention(q, kv, kv, 4, 1, false), g.slice(q, 1, 0, 8));
        });
    };
    return m;
}

std::vector<const void*> feed(const Example& e) {
    std::vector<const void*> in;
    size_t f = 0, i = 0;
    for (int id : e.model.inputs()) {
        if (e.model.nodes()[size_t(id)].type == vktrain::DataType::i32)
            in.push_back(e.int_inputs.at(i++).data());
        else
            in.push_back(e.float_inputs.at(f++).data());
    }
    return in;
}

TEST(GraphOps, EveryRegisteredOpHasAFiniteDifferenceExample) {
    const auto ex = examples();
    for (const auto* op : vktrain::graph::registered_ops()) {
        if (op->backward_only || op->inference_only || op->name == "input") continue; // inference ops: own tests
        EXPECT_TRUE(ex.count(op->name)) << "op '" << op->name << "' has no finite-difference example in "
                                        << "tests/device/test_graph_ops.cpp";
    }
    // Every backward-only op is reached by some example's training graph, the fused attention's with every attention
    // node fused (Ir::fused_attention_min_bytes 0).
    std::set<std::string> used;
    for (const auto& [name, make] : ex) {
        const Example e = make();
        for (bool fused : {false, true}) {
            const auto ir = vktrain::graph::build_ir(e.model, e.batch, true, 0, fused ? 0 : UINT64_MAX);
            for (const auto& n : ir.nodes) used.insert(n.op->name);
        }
    }
    for (const auto* op : vktrain::graph::registered_ops()) {
        if (op->backward_only) {
            EXPECT_TRUE(used.count(op->name)) << "backward op '" << op->name << "' is never used";
        }
    }
}

class GraphOpGradient : public testing::TestWithParam<std::string> {};

// Central differences in fp32 device arithmetic. Near a kink (ReLU at 0, a max-pool tie) a difference is not a
// derivative: elements whose differences at eps and eps/2 disagree are skipped, and only a few may be.
TEST_P(GraphOpGradient, MatchesFiniteDifferences) {
    const Example e = examples().at(GetParam())();
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = e.batch;
    o.seed = 3;
    Trainer t(vkt_test::context(), e.model, o);
    const auto in = feed(e);
    std::vector<std::vector<float>> grads, unused;
    t.compute_gradients(in, e.batch, grads);
    const auto all = t.parameters();
    std::vector<size_t> trainable;
    for (size_t p = 0; p < all.size(); ++p) {
        const auto info = e.model.parameters()[p];
        if (info.trainable && !info.buffer) trainable.push_back(p);
    }
    ASSERT_EQ(grads.size(), trainable.size());
    const auto loss_at = [&](size_t p, size_t i, float delta) {
        auto perturbed = all;
        perturbed[p].data[i] += delta;
        t.set_parameters(perturbed);
        return double(t.compute_gradients(in, e.batch, unused));
    };
    size_t checked = 0, skipped = 0;
    for (size_t k = 0; k < trainable.size(); ++k) {
        const size_t p = trainable[k];
        // Up to 12 elements per tensor, spread over it (every element of small tensors).
        const size_t count = all[p].data.size(), stride = std::max<size_t>(1, count / 12);
        for (size_t i = (k * 7) % stride; i < count; i += stride) {
            const float eps = 1e-2f;
            const double fd = (loss_at(p, i, eps) - loss_at(p, i, -eps)) / (2.0 * eps);
            const double fd2 = (loss_at(p, i, eps / 2) - loss_at(p, i, -eps / 2)) / double(eps);
            if (std::fabs(fd - fd2) > 1e-3 + 0.05 * std::fabs(fd2)) {
                ++skipped;
                continue;
            }
            EXPECT_NEAR(grads[k][i], fd2, 2e-3 + 2e-2 * std::fabs(fd2)) << all[p].name << "[" << i << "]";
            ++checked;
        }
    }
    t.set_parameters(all);
    EXPECT_LE(skipped, 2 + (checked + skipped) / 10) << skipped << " of " << checked + skipped << " elements skipped";
    EXPECT_GT(checked, 0u);
}

std::vector<std::string> example_names() {
    std::vector<std::string> out;
    for (const auto& [name, make] : examples()) out.push_back(name);
    return out;
}

INSTANTIATE_TEST_SUITE_P(Registry, GraphOpGradient, testing::ValuesIn(example_names()),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

} // namespace
