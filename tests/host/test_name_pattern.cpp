// Parameter-name patterns (graph/name_pattern.hpp), one syntax for Model and Trainer: exact names, prefixes ending in
// '.', '*' globs; and the parameter flags Model reports (a counter buffer is not trainable).
#include <gtest/gtest.h>

#include <string>

#include "graph/name_pattern.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::graph::matches_pattern;

TEST(NamePattern, ExactPrefixAndGlob) {
    EXPECT_TRUE(matches_pattern("linear0.weight", "linear0.weight"));
    EXPECT_FALSE(matches_pattern("linear0.weight", "linear0.weight2"));
    EXPECT_FALSE(matches_pattern("linear0", "linear0.weight")); // a prefix ends in '.'
    EXPECT_TRUE(matches_pattern("linear0.", "linear0.weight"));
    EXPECT_FALSE(matches_pattern("linear0.", "linear01.weight"));
    EXPECT_TRUE(matches_pattern("*.bias", "transformer.h.0.attn.c_attn.bias"));
    EXPECT_FALSE(matches_pattern("*.bias", "linear0.weight"));
    EXPECT_TRUE(matches_pattern("transformer.h.*.attn.", "transformer.h.11.attn.c_proj.weight"));
    EXPECT_FALSE(matches_pattern("transformer.h.*.attn.", "transformer.h.11.mlp.c_fc.weight"));
    EXPECT_TRUE(matches_pattern("*", "anything.at.all"));
    EXPECT_TRUE(matches_pattern("l*0.*", "linear0.bias"));
    EXPECT_TRUE(matches_pattern("a*b*c", "axxbyybzzc"));
    EXPECT_FALSE(matches_pattern("a*b*c", "axxbyybzz"));
    EXPECT_FALSE(matches_pattern("", "linear0.weight"));
}

TEST(NamePattern, ModelParameterGroupsTakeGlobs) {
    vktrain::Model m = vktrain::Model::mlp(6, {5, 4}, 3);
    m.set_trainable("*.bias", false);
    m.set_weight_decay("linear*.weight", 0.5f);
    for (const vktrain::ParameterInfo& p : m.parameters()) {
        const bool bias = p.name.find(".bias") != std::string::npos;
        EXPECT_EQ(p.trainable, !bias) << p.name;
        EXPECT_EQ(p.weight_decay, bias ? -1.0f : 0.5f) << p.name;
    }
    // The groups survive the JSON a weights file records.
    const vktrain::Model back = vktrain::Model::from_json(m.to_json());
    for (const vktrain::ParameterInfo& p : back.parameters())
        EXPECT_EQ(p.trainable, p.name.find(".bias") == std::string::npos) << p.name;
    try {
        m.set_trainable("conv*.", false);
        ADD_FAILURE() << "a pattern that matches nothing was accepted";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("conv*."), std::string::npos) << e.what();
    }
}

TEST(NamePattern, CountersAreNotTrainable) {
    vktrain::Model m;
    int x = m.input("x", {2, 4, 4});
    x = m.batch_norm2d(m.conv2d(x, 3, vktrain::Conv2dOptions::square(3, 1, 1)));
    m.softmax_cross_entropy(m.linear(m.flatten(x), 2));
    bool seen = false;
    for (const vktrain::ParameterInfo& p : m.parameters()) {
        if (p.counter) {
            seen = true;
            EXPECT_FALSE(p.trainable) << p.name << " reports trainable";
            EXPECT_TRUE(p.buffer) << p.name;
        }
        if (p.buffer) {
            EXPECT_FALSE(p.trainable) << p.name;
        }
    }
    EXPECT_TRUE(seen) << "no num_batches_tracked counter";
}

} // namespace
