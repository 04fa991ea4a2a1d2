// Model architectures read back from JSON (weights files record them): damaged ones are one-line vktrain::Error
// messages, never another exception (cases found by tests/fuzz/fuzz_model).
#include <gtest/gtest.h>

#include <string>

#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

const std::string k_mlp =
    R"({"vktrain_graph":1,"nodes":[{"op":"input","name":"x","inputs":[],"shape":[8],"type":"f32"},)"
    R"({"op":"linear","name":"linear1","inputs":[0],"attrs":{"bias":1,"out":16}},)"
    R"({"op":"relu","name":"relu0","inputs":[1]},{"op":"input","name":"labels","inputs":[],"shape":[],"type":"i32"},)"
    R"({"op":"cross_entropy","name":"loss","inputs":[2,3]}],"parameter_groups":[]})";

std::string replaced(std::string s, const std::string& from, const std::string& to) {
    s.replace(s.find(from), from.size(), to);
    return s;
}

void expect_error(const std::string& json, const std::string& needle) {
    try {
        (void)vktrain::Model::from_json(json);
        ADD_FAILURE() << "accepted: " << json;
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a vktrain::Error: " << e.what();
    }
}

TEST(ModelJson, ReadsBackWhatItWrote) {
    const vktrain::Model m = vktrain::Model::from_json(k_mlp);
    EXPECT_EQ(m.parameter_count(), 8u * 16 + 16);
    EXPECT_EQ(vktrain::Model::from_json(m.to_json()).to_json(), m.to_json());
}

TEST(ModelJson, AMissingAttributeIsAnErrorNamingTheNode) {
    expect_error(replaced(k_mlp, R"("bias":1,"out":16)", R"("bias":1)"), "linear 'linear1': a required attribute");
    expect_error(replaced(k_mlp, R"("bias":1,"out":16)", R"("out":16)"), "linear 'linear1': a required attribute");
}

TEST(ModelJson, AnInternalOpIsRefused) {
    expect_error(replaced(k_mlp, R"("op":"relu")", R"("op":"linear_weight_grad")"), "is internal to vktrain");
}

TEST(ModelJson, AHugeNumberInANodeNameIsNotAnOverflow) {
    const vktrain::Model m = vktrain::Model::from_json(replaced(k_mlp, R"("relu0")", R"("relu99999999999999999999")"));
    EXPECT_EQ(m.nodes()[2].name, "relu99999999999999999999");
}

} // namespace
