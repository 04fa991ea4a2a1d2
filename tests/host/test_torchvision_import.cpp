// torchvision models without a device or PyTorch (the import/export parity tests against torchvision itself are
// tests/python/check_torchvision.py): Model::resnet's and Model::mobilenet's names, shapes and sizes against
// torchvision's counts, resnet_options / mobilenet_options, resize_input, the safetensors writer's I64 tensors, and
// automatic node names next to names given by rename.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "scratch_dir.hpp"
#include "vktrain/error.hpp"
#include "vktrain/import.hpp"
#include "vktrain/model.hpp"
#include "vktrain/weights.hpp"

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

const vktrain::ParameterInfo* find(const std::vector<vktrain::ParameterInfo>& ps, const std::string& name) {
    for (const auto& p : ps)
        if (p.name == name) return &p;
    return nullptr;
}

TEST(TorchvisionResnet, HasTorchvisionsNamesShapesAndSizes) {
    // torchvision 0.14: sum(p.numel() for p in resnet18().parameters()) and len(state_dict()).
    const struct {
        uint32_t depth;
        uint64_t parameters;
        size_t tensors;
    } cases[] = {{18, 11689512, 122}, {34, 21797672, 218}, {50, 25557032, 320}};
    for (const auto& c : cases) {
        vktrain::ResnetOptions o;
        o.depth = c.depth;
        const vktrain::Model m = vktrain::Model::resnet(o);
        EXPECT_EQ(m.parameter_count(), c.parameters) << c.depth;
        EXPECT_EQ(m.parameters().size(), c.tensors) << c.depth;
        EXPECT_EQ(m.shape(m.output()), (std::vector<int64_t>{1000}));
        EXPECT_EQ(vktrain::resnet_options(m).depth, c.depth);
    }
    vktrain::ResnetOptions o;
    o.depth = 50;
    o.classes = 7;
    const std::vector<vktrain::ParameterInfo> ps = vktrain::Model::resnet(o).parameters();
    const auto* ds = find(ps, "layer2.0.downsample.0.weight");
    ASSERT_NE(ds, nullptr);
    EXPECT_EQ(ds->shape, (std::vector<int64_t>{512, 256, 1, 1}));
    const auto* counter = find(ps, "layer4.2.bn3.num_batches_tracked");
    ASSERT_NE(counter, nullptr);
    EXPECT_TRUE(counter->counter && counter->shape.empty());
    EXPECT_EQ(find(ps, "fc.weight")->shape, (std::vector<int64_t>{7, 2048}));
    EXPECT_EQ(find(ps, "conv1.bias"), nullptr);
    o.depth = 19;
    EXPECT_CONTAINS(error_of([&] { vktrain::Model::resnet(o); }), "depth 19 is not one of torchvision's");
}

TEST(TorchvisionResnet, ResizeInputKeepsTheWeightsOrSaysWhy) {
    const vktrain::Model m = vktrain::Model::resnet({});
    const vktrain::Model small = vktrain::resize_input(m, "x", {3, 96, 128});
    EXPECT_EQ(small.shape(small.inputs()[0]), (std::vector<int64_t>{3, 96, 128}));
    EXPECT_EQ(small.shape(small.output()), (std::vector<int64_t>{1000}));
    EXPECT_EQ(vktrain::resnet_options(small).width, 128u);
    EXPECT_CONTAINS(error_of([&] { vktrain::resize_input(m, "x", {96, 96}); }), "does not take [96, 96]");
    EXPECT_CONTAINS(error_of([&] {
                        vktrain::resize_input(m, "x", {4, 96, 96});
                    }),
                    "its parameter 'conv1.weight' would change shape");
    // A flattening MLP's weights fit one input size only.
    const vktrain::Model cnn = vktrain::Model::cnn(10);
    EXPECT_CONTAINS(error_of([&] {
                        vktrain::resize_input(cnn, "", {1, 32, 32});
                    }),
                    "its parameter 'linear0.weight' would change shape");
}

TEST(TorchvisionResnet, WriterStoresI64Tensors) {
    vkt_test::ScratchDir dir("tv-writer");
    const std::string path = dir.path() + "/w.safetensors";
    {
        vktrain::io::SafetensorsWriter w(path, {{"a", {2}}, {"n", {}, true}, {"b", {3}}});
        const float v[] = {1.5f, -2.0f, 1234.0f, 3.0f, 4.0f, 5.0f};
        w.write(v, 6);
        w.commit();
    }
    const vktrain::WeightsFile f = vktrain::read_weights(path);
    EXPECT_EQ(f.tensor("n").type, vktrain::ElementType::i64);
    EXPECT_EQ(f.tensor("n").to_f32(), (std::vector<float>{1234.0f}));
    EXPECT_EQ(f.tensor("b").to_f32(), (std::vector<float>{3.0f, 4.0f, 5.0f}));
    vktrain::io::SafetensorsWriter bad(dir.path() + "/x.safetensors", {{"n", {}, true}});
    const float half = 0.5f;
    EXPECT_CONTAINS(error_of([&] { bad.write(&half, 1); }), "tensor \"n\" is I64, got the value 0.5");
}

} // namespace

namespace {

TEST(ModelNames, AutomaticNamesSkipNamesGivenByRename) {
    // torchvision names its first convolution "conv1"; the builder's own "conv1" for a later node must not clash.
    vktrain::Model m;
    int x = m.input("x", {3, 8, 8});
    x = m.conv2d(x, 4, vktrain::Conv2dOptions::square(3, 1, 1));
    m.rename(x, "conv1");
    x = m.conv2d(x, 4, vktrain::Conv2dOptions::square(3, 1, 1));
    x = m.conv2d(x, 4, vktrain::Conv2dOptions::square(3, 1, 1));
    EXPECT_EQ(m.nodes()[2].name, "conv2");
    EXPECT_EQ(m.nodes()[3].name, "conv3");
    EXPECT_EQ(vktrain::Model::from_json(m.to_json()).nodes()[3].name, "conv3");
}

} // namespace

namespace {

TEST(TorchvisionMobilenet, HasTorchvisionsSizesAndOptionsComeBack) {
    // torchvision 0.14: sum(p.numel() for p in model.parameters()) and len(state_dict()).
    const struct {
        vktrain::MobilenetVariant variant;
        uint64_t parameters;
        size_t tensors;
    } cases[] = {{vktrain::MobilenetVariant::v2, 3504872, 314},
                 {vktrain::MobilenetVariant::v3_small, 2542856, 244},
                 {vktrain::MobilenetVariant::v3_large, 5483032, 312}};
    for (const auto& c : cases) {
        vktrain::MobilenetOptions o;
        o.variant = c.variant;
        o.classes = 10;
        o.height = 96;
        const vktrain::Model m = vktrain::Model::mobilenet(o);
        const uint64_t head = c.variant == vktrain::MobilenetVariant::v2         ? 1280
                              : c.variant == vktrain::MobilenetVariant::v3_small ? 1024
                                                                                 : 1280;
        EXPECT_EQ(m.parameter_count(), c.parameters - 990 * (head + 1)) << int(c.variant); // 10 classes, not 1000
        EXPECT_EQ(m.parameters().size(), c.tensors) << int(c.variant);
        const vktrain::MobilenetOptions back = vktrain::mobilenet_options(m);
        EXPECT_TRUE(back.variant == c.variant && back.classes == 10 && back.height == 96 && back.width == 224);
        EXPECT_CONTAINS(error_of([&] { vktrain::resnet_options(m); }), "not a ResNet of Model::resnet's shape");
    }
    const std::vector<vktrain::ParameterInfo> ps = vktrain::Model::mobilenet({}).parameters();
    EXPECT_EQ(find(ps, "features.2.conv.1.0.weight")->shape, (std::vector<int64_t>{96, 1, 3, 3})); // depthwise
}

} // namespace
