// The `attention` op's model-level face (issue 23): shape inference for separate q, k and v with grouped-query heads,
// its attributes and defaults through Model::op, the JSON round trip, and one-line errors naming the node for bad
// input (key/value heads that do not divide the heads, widths that are not heads · head_size, row counts that differ).
#include <gtest/gtest.h>

#include <string>

#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::Model;

// The message of the error `build` throws (fails the test when it throws none).
template <typename F>
std::string error_of(F build) {
    try {
        build();
    } catch (const vktrain::Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no error";
    return "";
}

TEST(AttentionOp, InfersShapesForGroupedQueryHeads) {
    Model m;
    const int q = m.input("q", {7, 32}), k = m.input("k", {7, 16}), v = m.input("v", {7, 16});
    const int a = m.attention(q, k, v, 8, 4); // 8 query heads of 4 over 4 key/value heads
    EXPECT_EQ(m.nodes()[size_t(a)].shape, (std::vector<int64_t>{7, 32}));
    EXPECT_EQ(m.nodes()[size_t(a)].name, "attention0");
    const int mqa = m.attention(q, m.input("k1", {7, 4}), m.input("v1", {7, 4}), 8, 1, false);
    EXPECT_EQ(m.nodes()[size_t(mqa)].shape, (std::vector<int64_t>{7, 32}));
    // The generic builder: kv_heads defaults to heads (plain multi-head attention), causal to 1.
    const int mha = m.op("attention", {q, m.input("k2", {7, 32}), m.input("v2", {7, 32})}, {{"heads", 8}});
    EXPECT_EQ(m.nodes()[size_t(mha)].attrs.at("kv_heads"), 8);
    EXPECT_EQ(m.nodes()[size_t(mha)].attrs.at("causal"), 1);
    const int gqa = m.op("attention", {q, m.input("k3", {7, 8}), m.input("v3", {7, 8})},
                         {{"heads", 8}, {"kv_heads", 2}, {"causal", 0}});
    EXPECT_EQ(m.nodes()[size_t(gqa)].shape, (std::vector<int64_t>{7, 32}));
}

TEST(AttentionOp, RoundTripsThroughJson) {
    Model m;
    const int x = m.input("x", {5, 12});
    m.attention(m.linear(x, 12), m.linear(x, 6), m.linear(x, 6), 4, 2, false);
    const Model back = Model::from_json(m.to_json());
    EXPECT_EQ(back.to_json(), m.to_json());
}

TEST(AttentionOp, RefusesBadInputWithOneLineNamingTheNode) {
    const auto check = [](const std::string& message, const std::string& expect) {
        EXPECT_NE(message.find("attention0"), std::string::npos) << message;
        EXPECT_NE(message.find(expect), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    };
    const auto build = [](std::vector<int64_t> qs, std::vector<int64_t> ks, std::vector<int64_t> vs, uint32_t heads,
                          uint32_t kv_heads) {
        return error_of([&] {
            Model m;
            m.attention(m.input("q", qs), m.input("k", ks), m.input("v", vs), heads, kv_heads);
        });
    };
    check(build({7, 24}, {7, 9}, {7, 9}, 8, 3), "3 key/value heads do not divide 8 heads");
    check(build({7, 24}, {7, 12}, {7, 12}, 8, 16), "key/value heads do not divide");
    check(build({7, 25}, {7, 10}, {7, 10}, 6, 2), "6 heads do not divide q's 25 columns");
    check(build({7, 30}, {7, 20}, {7, 10}, 6, 2), "k 'k' has 20 columns; expected 2 key/value heads * 5");
    check(build({7, 30}, {7, 10}, {7, 14}, 6, 2), "v 'v' has 14 columns");
    check(build({7, 30}, {6, 6}, {7, 6}, 5, 1), "q, k and v have 7, 6 and 7 positions");
    check(build({7, 30}, {7, 6}, {8, 6}, 5, 1), "q, k and v have 7, 7 and 8 positions");
    check(build({210}, {7, 12}, {7, 12}, 5, 1), "expected [positions, heads * head_size] per sample");
    check(build({7, 30}, {7, 2, 6}, {7, 12}, 5, 1), "k 'k' is [7, 2, 6]");
    check(error_of([] {
              Model m;
              m.attention(m.input("q", {7, 30}), m.input("ids", {7, 6}, vktrain::DataType::i32), m.input("v", {7, 6}),
                          5, 1);
          }),
          "ids");
    // A node read from a file is checked the same way.
    Model good;
    good.attention(good.input("q", {7, 24}), good.input("k", {7, 12}), good.input("v", {7, 12}), 8, 4);
    std::string json = good.to_json();
    const std::string from = "\"kv_heads\":4", to = "\"kv_heads\":3";
    const size_t at = json.find(from);
    ASSERT_NE(at, std::string::npos) << json;
    json.replace(at, from.size(), to);
    check(error_of([&] { Model::from_json(json); }), "3 key/value heads do not divide 8 heads");
}

} // namespace
