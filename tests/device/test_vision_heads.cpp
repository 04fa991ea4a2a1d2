// MobileNet's ops (issue 24) together, through the graph in both precisions: a MobileNetV3-style block (conv, batch
// norm, hardswish, a squeeze-excitation branch of global average pooling, 1x1 convolutions, ReLU, hardsigmoid and
// channel_mul, then ReLU6 and adaptive average pooling to 2x3 before the classifier). The block's input feeds both
// channel_mul and the squeeze branch, so its gradient accumulates (in fp16 storage in mixed precision). Every
// parameter gradient of mixed precision must be within fp16's reach of fp32's (relative L2), and a few steps of
// training must lower the loss in both. (Finite differences per op: test_graph_ops.cpp; PyTorch:
// tests/python/torch_vision_ops.py.)
#include <cmath>

#include "device/support.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

namespace {

vktrain::Model mobile_block() {
    using vktrain::Conv2dOptions;
    vktrain::Model m;
    int h = m.input("x", {3, 9, 7});
    Conv2dOptions stem = Conv2dOptions::square(3, 1, 1);
    stem.bias = false; // as torchvision's: batch norm follows (a bias there has a zero gradient, fp16 noise in mixed)
    h = m.hardswish(m.batch_norm2d(m.conv2d(h, 8, stem)));
    const int squeezed = m.relu(m.conv2d(m.adaptive_avg_pool2d(h), 4, Conv2dOptions::square(1)));
    const int s = m.hardsigmoid(m.conv2d(squeezed, 8, Conv2dOptions::square(1)));
    h = m.relu6(m.conv2d(m.channel_mul(h, s), 8, Conv2dOptions::square(1)));
    m.softmax_cross_entropy(m.linear(m.flatten(m.adaptive_avg_pool2d(h, 2, 3)), 3));
    return m;
}

constexpr uint32_t k_batch = 4;

struct Data {
    std::vector<float> x = vkt_test::random_values(size_t(k_batch) * 3 * 9 * 7, 241, -2, 2);
    std::vector<int32_t> labels{0, 1, 2, 1};
};

TEST(VisionHeadsMixed, BlockGradientsMatchFp32) {
    VKT_REQUIRE_FP16();
    const vktrain::Model m = mobile_block();
    const Data d;
    std::vector<std::vector<float>> grads[2];
    std::vector<vktrain::Parameter> params;
    for (int k = 0; k < 2; ++k) {
        vktrain::TrainerOptions o;
        o.precision = k == 0 ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
        o.batch_size = k_batch;
        o.seed = 7;
        vktrain::Trainer t(vkt_test::context(), m, o);
        if (k == 0) params = t.parameters();
        t.set_parameters(params); // the same weights in both (mixed rounds its device copies to fp16)
        t.compute_gradients({d.x.data(), d.labels.data()}, k_batch, grads[k]);
    }
    ASSERT_EQ(grads[0].size(), grads[1].size());
    std::vector<std::string> names;
    for (const auto& p : m.parameters())
        if (p.trainable && !p.buffer) names.push_back(p.name);
    ASSERT_EQ(names.size(), grads[0].size());
    for (size_t p = 0; p < grads[0].size(); ++p) {
        double diff = 0, norm = 0;
        for (size_t i = 0; i < grads[0][p].size(); ++i) {
            diff += std::pow(double(grads[1][p][i]) - grads[0][p][i], 2);
            norm += std::pow(double(grads[0][p][i]), 2);
        }
        EXPECT_GT(norm, 0.0) << names[p];
        EXPECT_LE(std::sqrt(diff), 1e-2 * std::sqrt(norm)) << names[p] << " gradient, mixed against fp32";
    }
}

class VisionHeadsTraining : public testing::TestWithParam<vktrain::Precision> {};

TEST_P(VisionHeadsTraining, LossFalls) {
    if (GetParam() == vktrain::Precision::mixed) VKT_REQUIRE_FP16();
    const Data d;
    vktrain::TrainerOptions o;
    o.precision = GetParam();
    o.batch_size = k_batch;
    o.seed = 7;
    o.optimizer.learning_rate = 1e-2f;
    vktrain::Trainer t(vkt_test::context(), mobile_block(), o);
    std::vector<float> losses;
    for (int step = 0; step < 30; ++step) losses.push_back(t.step({d.x.data(), d.labels.data()}, k_batch).loss);
    EXPECT_TRUE(std::isfinite(losses.back()));
    EXPECT_LT(losses.back(), 0.5f * losses.front()) << "from " << losses.front() << " to " << losses.back();
}

INSTANTIATE_TEST_SUITE_P(Both, VisionHeadsTraining,
                         testing::Values(vktrain::Precision::fp32, vktrain::Precision::mixed),
                         [](const auto& param_info) {
                             return std::string(param_info.param == vktrain::Precision::mixed ? "mixed" : "fp32");
                         });

} // namespace
