// Model::freeze_batch_norm without a device: the node-name patterns (exact, prefix ending in '.', '*'), the one-line
// errors naming the pattern, the frozen_stats attribute through to_json / from_json and describe(), unfreezing back to
// the original file, and torchvision's architecture checks still recognising a model with frozen BatchNorm.
// (The numerics: tests/device/test_frozen_batchnorm.cpp and tests/python/check_torchvision.py.)
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const vktrain::Error& e) {
        return e.what();
    }
    return "(no error)";
}

#define EXPECT_CONTAINS(haystack, needle)                                                                              \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos)                                                   \
        << "\"" << (haystack) << "\" lacks \"" << (needle) << "\""

std::vector<std::string> frozen_nodes(const vktrain::Model& m) {
    std::vector<std::string> out;
    for (const vktrain::Node& n : m.nodes()) {
        const auto it = n.attrs.find("frozen_stats");
        if (it != n.attrs.end() && it->second != 0) out.push_back(n.name);
    }
    return out;
}

vktrain::Model small_resnet() {
    vktrain::ResnetOptions o;
    o.depth = 18;
    o.classes = 4;
    o.height = o.width = 32;
    return vktrain::Model::resnet(o);
}

TEST(FreezeBatchNorm, PatternsChooseBatchNormNodesByName) {
    vktrain::Model m = small_resnet();
    m.freeze_batch_norm("layer4.");
    EXPECT_EQ(frozen_nodes(m), (std::vector<std::string>{"layer4.0.bn1", "layer4.0.bn2", "layer4.0.downsample.1",
                                                         "layer4.1.bn1", "layer4.1.bn2"}));
    m.freeze_batch_norm("bn1"); // an exact name: the stem's, not "layer1.0.bn1"
    EXPECT_EQ(frozen_nodes(m).size(), 6u);
    EXPECT_EQ(frozen_nodes(m).front(), "bn1");
    m.freeze_batch_norm("layer4.*", false);
    EXPECT_EQ(frozen_nodes(m), std::vector<std::string>{"bn1"});
    m.freeze_batch_norm();
    EXPECT_EQ(frozen_nodes(m).size(), 20u); // every BatchNorm of a ResNet-18
}

TEST(FreezeBatchNorm, ErrorsNameThePattern) {
    vktrain::Model m = small_resnet();
    const std::string before = m.to_json();
    std::string e = error_of([&] { m.freeze_batch_norm("layer9."); });
    EXPECT_CONTAINS(e, "freeze_batch_norm: no batch_norm2d node matches 'layer9.'");
    EXPECT_CONTAINS(e, "a prefix ending in '.'");
    e = error_of([&] { m.freeze_batch_norm("conv1"); }); // a node, but no BatchNorm
    EXPECT_CONTAINS(e, "no batch_norm2d node matches 'conv1'");
    e = error_of([&] { m.freeze_batch_norm("bn1.weight"); }); // a parameter's name, not a node's
    EXPECT_CONTAINS(e, "no batch_norm2d node matches 'bn1.weight'");
    EXPECT_EQ(m.to_json(), before) << "a failed call changes nothing";

    vktrain::Model mlp = vktrain::Model::mlp(4, {8}, 2);
    e = error_of([&] { mlp.freeze_batch_norm(); });
    EXPECT_CONTAINS(e, "no batch_norm2d node matches '*'");
    EXPECT_CONTAINS(e, "the model has no batch_norm2d node");
}

TEST(FreezeBatchNorm, SurvivesTheModelFileAndShowsInDescribe) {
    vktrain::Model m = small_resnet();
    const std::string plain_json = m.to_json(), plain_describe = m.describe();
    EXPECT_EQ(plain_describe.find("(frozen)"), std::string::npos);
    m.freeze_batch_norm("layer3.");
    const vktrain::Model back = vktrain::Model::from_json(m.to_json());
    EXPECT_EQ(frozen_nodes(back), frozen_nodes(m));
    EXPECT_EQ(back.to_json(), m.to_json());
    EXPECT_CONTAINS(back.describe(), "batch_norm2d(frozen)");
    EXPECT_NE(back.describe(), plain_describe);
    // Still torchvision's ResNet-18 (export, --classes and load_model's checks use this).
    EXPECT_EQ(vktrain::resnet_options(back).depth, 18u);
    // Unfreezing leaves no trace: the file of a never-frozen model.
    m.freeze_batch_norm("*", false);
    EXPECT_EQ(m.to_json(), plain_json);
    EXPECT_EQ(m.describe(), plain_describe);
}

TEST(FreezeBatchNorm, MobilenetStaysRecognised) {
    vktrain::MobilenetOptions o;
    o.classes = 3;
    o.height = o.width = 32;
    vktrain::Model m = vktrain::Model::mobilenet(o);
    m.freeze_batch_norm();
    EXPECT_FALSE(frozen_nodes(m).empty());
    EXPECT_NO_THROW((void)vktrain::mobilenet_options(vktrain::Model::from_json(m.to_json())));
}

TEST(FreezeBatchNorm, AttributeIsAFlag) {
    vktrain::Model m = small_resnet();
    m.freeze_batch_norm("bn1");
    std::string json = m.to_json();
    const size_t key = json.find("\"frozen_stats\"");
    ASSERT_NE(key, std::string::npos);
    const size_t one = json.find('1', key);
    ASSERT_NE(one, std::string::npos);
    json[one] = '2';
    EXPECT_CONTAINS(error_of([&] { (void)vktrain::Model::from_json(json); }), "frozen_stats");
}

} // namespace
