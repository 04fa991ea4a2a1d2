// Model architectures read back from JSON (weights files record them): damaged ones are one-line vktrain::Error
// messages, never another exception (cases found by tests/fuzz/fuzz_model).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "io/safetensors.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

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
    expect_error(replaced(k_mlp, R"("bias":1,"out":16)", R"("bias":1)"),
                 "linear 'linear1': attribute 'out' is missing");
    expect_error(replaced(k_mlp, R"("bias":1,"out":16)", R"("out":16)"),
                 "linear 'linear1': attribute 'bias' is missing");
}

// Found by fuzz_model in CI: "out":1.24e118 reached a double-to-int64 conversion (undefined behaviour). Every op
// declares its attributes with kinds and ranges, checked before any op reads them.
TEST(ModelJson, AttributesOutsideTheirDeclaredRangeAreRefused) {
    const std::string out = R"("bias":1,"out":16)";
    expect_error(replaced(k_mlp, out, R"("bias":1,"out":1.24e118)"), "attribute 'out' is 1.24e+118; expected [1, ");
    expect_error(replaced(k_mlp, out, R"("bias":1,"out":2.5)"), "attribute 'out' is 2.5; expected an integer");
    expect_error(replaced(k_mlp, out, R"("bias":1,"out":-3)"), "attribute 'out' is -3; expected [1, ");
    expect_error(replaced(k_mlp, out, R"("bias":2,"out":16)"), "attribute 'bias' is 2; expected 0 or 1");
    expect_error(replaced(k_mlp, out, R"("bias":1,"out":16,"stride":2)"), "unknown attribute 'stride'");
    // Values the builder API refuses are refused from a file too (dropout's p in [0, 1)).
    expect_error(replaced(k_mlp, R"({"op":"relu","name":"relu0","inputs":[1]})",
                          R"({"op":"dropout","name":"relu0","inputs":[1],"attrs":{"p":1}})"),
                 "attribute 'p' is 1; expected [0, 1)");
}

TEST(ModelJson, AReshapeTargetCannotWrapAround) {
    // 2^32 * 2^32 wraps to 0 in 64 bits; with the other factor the product "matches" 16 only by wrapping.
    expect_error(replaced(k_mlp, R"({"op":"relu","name":"relu0","inputs":[1]})",
                          R"({"op":"reshape","name":"relu0","inputs":[1],"target_shape":[4294967296,4294967296,16]})"),
                 "fewer than");
}

TEST(ModelJson, AnInternalOpIsRefused) {
    expect_error(replaced(k_mlp, R"("op":"relu")", R"("op":"linear_weight_grad")"), "is internal to vktrain");
}

TEST(ModelJson, AHugeNumberInANodeNameIsNotAnOverflow) {
    const vktrain::Model m = vktrain::Model::from_json(replaced(k_mlp, R"("relu0")", R"("relu99999999999999999999")"));
    EXPECT_EQ(m.nodes()[2].name, "relu99999999999999999999");
}

// A file's names obey the builder's rule (Model::rename, Model::input): a newline, a space, a quote or a stray dot
// would reach parameter names, safetensors keys and one-line messages.
TEST(ModelJson, NodeNamesFollowTheBuildersRule) {
    for (const char* bad : {"relu\\n0", "relu 0", "relu\\t0", ".relu0", "relu0.", "re..lu0", "relu\\\"0", ""})
        expect_error(replaced(k_mlp, R"("relu0")", std::string("\"") + bad + "\""), "is not a valid node name");
    expect_error(replaced(k_mlp, R"("name":"x")", R"("name":"x\ny")"), "node 0: 'x\\ny' is not a valid node name");
    expect_error(replaced(k_mlp, R"("name":"loss")", R"("name":"lo ss")"), "node 4: 'lo ss'");
    // The builder refuses the same names for inputs, so whatever it writes reads back.
    vktrain::Model m;
    EXPECT_THROW(m.input("a\nb", {2}), vktrain::Error);
    EXPECT_THROW(m.input("a b", {2}), vktrain::Error);
    EXPECT_EQ(vktrain::Model::from_json(replaced(k_mlp, R"("relu0")", R"("block.relu_0")")).nodes()[2].name,
              "block.relu_0");
}

// An architecture without nodes is refused where it is read, and load_model names the file.
TEST(ModelJson, AnArchitectureWithoutNodesIsRefusedNamingTheFile) {
    expect_error(R"({"vktrain_graph":1,"nodes":[],"parameter_groups":[]})", "\"nodes\" must be a non-empty array");
    const std::string path =
        (std::filesystem::temp_directory_path() / ("vktrain-model-json-" + std::to_string(::getpid()) + ".safetensors"))
            .string();
    vktrain::io::write_safetensors(path, {}, {{"vktrain_graph", R"({"vktrain_graph":1,"nodes":[]})"}});
    try {
        (void)vktrain::load_model(path);
        ADD_FAILURE() << "an architecture without nodes was loaded";
    } catch (const vktrain::Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
        EXPECT_NE(std::string(e.what()).find("nodes"), std::string::npos) << e.what();
    }
    std::filesystem::remove(path);
}

} // namespace
