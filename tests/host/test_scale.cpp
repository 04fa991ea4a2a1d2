// Deep models on the host side: building a model, reloading its architecture, lowering it and planning its memory
// take time about linear in depth (issue 21: gpt:layers=400 took 85 s before the first step, from per-parameter
// rescans of every parameter group, name checks against every node and view chains walked value by value).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "graph/ir.hpp"
#include "graph/planner.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::GptOptions;
using vktrain::Model;

// Seconds for what the host does with a GPT of `layers` layers before a device is involved (the best of a
// few runs: a shared machine's noise only ever adds time).
double host_set_up_seconds(uint32_t layers) {
    GptOptions g;
    g.vocab = 16;
    g.layers = layers;
    g.heads = 2;
    g.width = 8;
    g.context = 8;
    double best = 1e30;
    for (int run = 0; run < 5; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        const Model built = Model::gpt(g);
        const Model m = Model::from_json(built.to_json()); // as `vktrain eval` loads a weights file
        const vktrain::graph::Ir ir = vktrain::graph::build_ir(m, 2, true, 1);
        const vktrain::graph::MemoryPlan plan = vktrain::graph::plan_memory(ir, true, 64);
        EXPECT_GT(plan.arena_bytes, 0u);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

// Eight times the depth may take at most 24 times as long (linear: eight; quadratic: 64, so the bound is far from both
// and timing noise on a loaded machine does not decide it; the code this replaced took about 60 times as long for
// four times the depth at these sizes, and far more beyond).
TEST(Scale, HostSetUpGrowsLinearlyWithDepth) {
    const uint32_t n = 40;
    const double t1 = host_set_up_seconds(n), t8 = host_set_up_seconds(8 * n);
    std::printf("host set-up: %u layers %.1f ms, %u layers %.1f ms\n", n, t1 * 1e3, 8 * n, t8 * 1e3);
    EXPECT_LT(t8, 24 * t1) << n << " layers: " << t1 * 1e3 << " ms, " << 8 * n << " layers: " << t8 * 1e3 << " ms";
}

// Parameter groups by exact name and by prefix, applied in the order they were set (the index that replaced the
// rescans must keep these semantics).
TEST(Scale, ParameterGroupsApplyInOrderByNameAndPrefix) {
    Model m(4);
    int x = m.linear(m.input(), 3);
    m.rename(x, "a.b");
    x = m.linear(x, 2);
    m.rename(x, "a.c");
    m.softmax_cross_entropy(x);
    m.set_weight_decay("a.", 0.5f);
    m.set_weight_decay("a.b.weight", 0.25f);
    m.set_trainable("a.c.", false);
    m.set_trainable("a.c.bias", true);
    m.set_weight_decay("a.", 0.125f); // later: wins over the exact name set before it
    for (const auto& p : m.parameters()) {
        EXPECT_FLOAT_EQ(p.weight_decay, 0.125f) << p.name;
        EXPECT_EQ(p.trainable, p.name != "a.c.weight") << p.name;
    }
    EXPECT_THROW(m.set_init("a.d.", {}), vktrain::Error);    // no parameter under that prefix
    EXPECT_THROW(m.set_init("a.b.wei", {}), vktrain::Error); // a prefix of a name is not a name
    EXPECT_THROW(m.set_init("a.b.weight.", {}), vktrain::Error);
    EXPECT_NO_THROW(m.set_init("a.b.", {}));
}

} // namespace
