// LoRA on the device (Model::add_lora): a fresh adapter (B = 0) leaves the base's predictions as they were; with A and
// B set, the forward pass is base(x) + (alpha / r)·B·A·x against a CPU reference; a step trains A and B only (B leaves
// zero, the frozen base stays bit-identical) and the gradients match finite differences. fp32 and mixed precision.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "device/support.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::LoraOptions;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

constexpr uint32_t features = 6, hidden = 5, classes = 3, batch = 8, rank = 2;
constexpr float alpha = 3.0f;

TrainerOptions options(Precision p) {
    TrainerOptions o;
    o.precision = p;
    o.batch_size = batch;
    o.seed = 9;
    o.optimizer.learning_rate = 0.05f;
    return o;
}

Model lora_mlp() {
    Model m = Model::mlp(features, {hidden}, classes);
    LoraOptions o;
    o.r = rank;
    o.alpha = alpha;
    m.add_lora("linear0", o);
    return m;
}

std::vector<float> random(size_t n, uint32_t seed, float scale = 0.5f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
}

// logits = W1·relu(W0·x + b0 + (alpha / r)·B·A·x) + b1, in double.
std::vector<double> reference(const Trainer& t, const std::vector<float>& x) {
    const auto w0 = t.parameter("linear0.weight").data, b0 = t.parameter("linear0.bias").data;
    const auto a = t.parameter("linear0.lora_A.weight").data, b = t.parameter("linear0.lora_B.weight").data;
    const auto w1 = t.parameter("linear1.weight").data, b1 = t.parameter("linear1.bias").data;
    std::vector<double> out;
    for (uint32_t s = 0; s < batch; ++s) {
        const float* xs = x.data() + s * features;
        std::vector<double> ax(rank, 0.0), h(hidden, 0.0);
        for (uint32_t r = 0; r < rank; ++r)
            for (uint32_t i = 0; i < features; ++i) ax[r] += double(a[r * features + i]) * xs[i];
        for (uint32_t o = 0; o < hidden; ++o) {
            double v = b0[o], lora = 0.0;
            for (uint32_t i = 0; i < features; ++i) v += double(w0[o * features + i]) * xs[i];
            for (uint32_t r = 0; r < rank; ++r) lora += double(b[o * rank + r]) * ax[r];
            h[o] = std::max(0.0, v + double(alpha) / rank * lora);
        }
        for (uint32_t c = 0; c < classes; ++c) {
            double v = b1[c];
            for (uint32_t o = 0; o < hidden; ++o) v += double(w1[c * hidden + o]) * h[o];
            out.push_back(v);
        }
    }
    return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class Lora : public testing::TestWithParam<Precision> {
protected:
    void SetUp() override {
        if (GetParam() == Precision::mixed) VKT_REQUIRE_FP16();
    }
};

TEST_P(Lora, ForwardIsBasePlusScaledBA) {
    const Precision p = GetParam();
    const double tol = p == Precision::mixed ? 2e-2 : 1e-5;
    const vkt_test::Batch data = vkt_test::make_batch(batch, features, classes, 3);
    Trainer base(vkt_test::context(), Model::mlp(features, {hidden}, classes), options(p));
    Trainer t(vkt_test::context(), lora_mlp(), options(p));
    for (const auto& w : base.parameters()) t.set_parameter(w.name, w.data);
    // A fresh adapter: B is zero, A is U(+-1/sqrt(in)) (PEFT), and the model predicts what the base does.
    EXPECT_TRUE(same_bits(t.parameter("linear0.lora_B.weight").data, std::vector<float>(hidden * rank, 0.0f)));
    const auto a0 = t.parameter("linear0.lora_A.weight").data;
    float largest = 0.0f;
    for (float v : a0) largest = std::max(largest, std::fabs(v));
    EXPECT_GT(largest, 0.0f);
    EXPECT_LE(largest, 1.0f / std::sqrt(float(features)));
    const std::vector<float> plain = base.predict(data.x.data(), batch);
    const std::vector<float> adapted = t.predict(data.x.data(), batch);
    ASSERT_EQ(plain.size(), adapted.size());
    for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(adapted[i], plain[i], tol) << i;

    t.set_parameter("linear0.lora_A.weight", random(rank * features, 1));
    t.set_parameter("linear0.lora_B.weight", random(hidden * rank, 2));
    const std::vector<float> got = t.predict(data.x.data(), batch);
    const std::vector<double> want = reference(t, data.x);
    ASSERT_EQ(got.size(), want.size());
    double differs = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_NEAR(got[i], want[i], tol * (1.0 + std::fabs(want[i]))) << i;
        differs = std::max(differs, std::fabs(double(got[i]) - plain[i]));
    }
    EXPECT_GT(differs, 0.05); // the adapter changes the prediction
}

TEST_P(Lora, AStepTrainsTheAdapterOnly) {
    const Precision p = GetParam();
    Trainer t(vkt_test::context(), lora_mlp(), options(p));
    const auto before = t.parameters();
    EXPECT_EQ(t.memory().trainable_parameters, uint64_t(rank * (features + hidden)));
    for (uint32_t s = 0; s < 3; ++s) {
        const vkt_test::Batch b = vkt_test::make_batch(batch, features, classes, 10 + s);
        t.step(b.x.data(), b.labels.data(), batch);
    }
    const auto after = t.parameters();
    for (size_t i = 0; i < before.size(); ++i) {
        if (before[i].name.find(".lora_") != std::string::npos) {
            EXPECT_FALSE(same_bits(before[i].data, after[i].data)) << before[i].name << " did not train";
        } else {
            EXPECT_TRUE(same_bits(before[i].data, after[i].data)) << before[i].name << " changed (frozen)";
        }
    }
    EXPECT_EQ(t.optimizer_state().size(), 4u); // exp_avg and exp_avg_sq of A and B
}

// The adapter's gradients (fp32) against central differences of the loss.
TEST(LoraGradients, MatchFiniteDifferences) {
    Trainer t(vkt_test::context(), lora_mlp(), options(Precision::fp32));
    t.set_parameter("linear0.lora_A.weight", random(rank * features, 4));
    t.set_parameter("linear0.lora_B.weight", random(hidden * rank, 5));
    const vkt_test::Batch b = vkt_test::make_batch(batch, features, classes, 6);
    std::vector<std::vector<float>> grads, unused;
    t.compute_gradients(b.x.data(), b.labels.data(), batch, grads);
    ASSERT_EQ(grads.size(), 2u); // A and B, in parameter order
    const std::vector<std::string> names{"linear0.lora_A.weight", "linear0.lora_B.weight"};
    for (size_t k = 0; k < names.size(); ++k) {
        const std::vector<float> w = t.parameter(names[k]).data;
        for (size_t i = 0; i < w.size(); ++i) {
            const float eps = 1e-2f;
            auto q = w;
            q[i] = w[i] + eps;
            t.set_parameter(names[k], q);
            const double up = t.compute_gradients(b.x.data(), b.labels.data(), batch, unused);
            q[i] = w[i] - eps;
            t.set_parameter(names[k], q);
            const double down = t.compute_gradients(b.x.data(), b.labels.data(), batch, unused);
            const double fd = (up - down) / (2.0 * eps);
            EXPECT_NEAR(grads[k][i], fd, 2e-3 + 2e-2 * std::fabs(fd)) << names[k] << "[" << i << "]";
        }
        t.set_parameter(names[k], w);
    }
}

INSTANTIATE_TEST_SUITE_P(Precisions, Lora, testing::Values(Precision::fp32, Precision::mixed),
                         [](const testing::TestParamInfo<Precision>& i) {
                             return i.param == Precision::mixed ? std::string("mixed") : std::string("fp32");
                         });

} // namespace
