// BatchNorm with frozen running statistics inside training (Model::freeze_batch_norm; PyTorch's bn.eval() while the
// model trains), through the graph: conv -> batch_norm2d (frozen) -> relu -> avg pool -> linear -> cross-entropy with
// non-trivial running statistics. One step's loss and every parameter gradient against a float64 CPU reference of
// the frozen formulas (dx = dy·γ·invstd_running reaches the convolution's weight gradient), in fp32 (1e-4 relative)
// and mixed precision (1e-2); the running statistics and num_batches_tracked stay as they were over steps on the host
// and the device update paths, while an unfrozen node still updates them; partial batches are accepted. (ResNet-18 and
// MobileNetV2 gradients against PyTorch's bn.eval(): tests/python/check_torchvision.py.)
#include <cmath>
#include <map>
#include <stdexcept>

#include "device/support.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"
#include "vktrain/trainer.hpp"

namespace {

constexpr uint32_t k_batch = 3, k_in = 2, k_ch = 3, k_hw = 4, k_classes = 3;
constexpr float k_eps = 1e-5f;

vktrain::Model small_cnn(bool frozen) {
    using vktrain::Conv2dOptions;
    vktrain::Model m;
    const int x = m.input("x", {k_in, k_hw, k_hw});
    Conv2dOptions c = Conv2dOptions::square(3, 1, 1);
    c.bias = false;
    const int conv = m.conv2d(x, k_ch, c);
    m.rename(conv, "conv");
    const int bn = m.batch_norm2d(conv, k_eps, 0.1f);
    m.rename(bn, "bn");
    const int pooled = m.avg_pool2d(m.relu(bn), vktrain::Pool2dOptions::square(2, 2));
    const int fc = m.linear(m.flatten(pooled), k_classes);
    m.rename(fc, "fc");
    m.softmax_cross_entropy(fc);
    if (frozen) m.freeze_batch_norm("bn");
    return m;
}

struct Data {
    std::vector<float> x = vkt_test::random_values(size_t(k_batch) * k_in * k_hw * k_hw, 77, -2, 2);
    std::vector<int32_t> labels{0, 2, 1};
};

// Weights, and running statistics far from the batch's (mean 0.3.., var 0.5..2.5), so that batch statistics would
// give visibly different numbers.
std::vector<vktrain::Parameter> weights() {
    std::vector<vktrain::Parameter> p;
    p.push_back({"conv.weight", {k_ch, k_in, 3, 3}, vkt_test::random_values(size_t(k_ch) * k_in * 9, 11, -0.4f, 0.4f)});
    p.push_back({"bn.weight", {k_ch}, {1.5f, -0.75f, 0.5f}});
    p.push_back({"bn.bias", {k_ch}, {0.25f, 0.5f, -0.125f}});
    p.push_back({"bn.running_mean", {k_ch}, {0.3f, -0.6f, 0.9f}});
    p.push_back({"bn.running_var", {k_ch}, {0.5f, 2.5f, 1.25f}});
    p.push_back({"bn.num_batches_tracked", {}, {17.0f}});
    p.push_back({"fc.weight", {k_classes, k_ch * 4}, vkt_test::random_values(size_t(k_classes) * k_ch * 4, 12)});
    p.push_back({"fc.bias", {k_classes}, {0.1f, -0.2f, 0.05f}});
    return p;
}

const std::vector<float>& find(const std::vector<vktrain::Parameter>& ps, const std::string& name) {
    for (const auto& p : ps)
        if (p.name == name) return p.data;
    throw std::runtime_error("no parameter " + name);
}

struct Reference {
    double loss = 0;
    std::map<std::string, std::vector<double>> grads;
};

// The frozen layer in float64: y = (h - running_mean)·invstd·γ + β with invstd = 1/sqrt(running_var + eps), and its
// backward with mean and variance as constants.
Reference reference(const std::vector<vktrain::Parameter>& w, const Data& d) {
    const auto& cw = find(w, "conv.weight");
    const auto &g = find(w, "bn.weight"), &b = find(w, "bn.bias");
    const auto &rm = find(w, "bn.running_mean"), &rv = find(w, "bn.running_var");
    const auto &fw = find(w, "fc.weight"), &fb = find(w, "fc.bias");
    const uint32_t hw = k_hw * k_hw, feat = k_ch * 4;
    Reference r;
    std::vector<double> dcw(cw.size()), dg(k_ch), db(k_ch), dfw(fw.size()), dfb(k_classes);
    for (uint32_t n = 0; n < k_batch; ++n) {
        const float* x = d.x.data() + size_t(n) * k_in * hw;
        std::vector<double> h(size_t(k_ch) * hw), xhat(h.size()), a(h.size()), p(feat);
        for (uint32_t o = 0; o < k_ch; ++o)
            for (uint32_t yy = 0; yy < k_hw; ++yy)
                for (uint32_t xx = 0; xx < k_hw; ++xx) {
                    double s = 0;
                    for (uint32_t i = 0; i < k_in; ++i)
                        for (int ky = 0; ky < 3; ++ky)
                            for (int kx = 0; kx < 3; ++kx) {
                                const int sy = int(yy) + ky - 1, sx = int(xx) + kx - 1;
                                if (sy < 0 || sx < 0 || sy >= int(k_hw) || sx >= int(k_hw)) continue;
                                s += double(cw[((o * k_in + i) * 3 + uint32_t(ky)) * 3 + uint32_t(kx)]) *
                                     x[(i * k_hw + uint32_t(sy)) * k_hw + uint32_t(sx)];
                            }
                    const size_t e = (o * k_hw + yy) * k_hw + xx;
                    h[e] = s;
                    xhat[e] = (s - rm[o]) / std::sqrt(double(rv[o]) + double(k_eps));
                    a[e] = std::max(0.0, xhat[e] * g[o] + b[o]);
                    p[(o * 2 + yy / 2) * 2 + xx / 2] += a[e] / 4;
                }
        std::vector<double> z(k_classes), dz(k_classes);
        double mx = -1e300, sum = 0;
        for (uint32_t k = 0; k < k_classes; ++k) {
            z[k] = fb[k];
            for (uint32_t f = 0; f < feat; ++f) z[k] += double(fw[k * feat + f]) * p[f];
            mx = std::max(mx, z[k]);
        }
        for (double v : z) sum += std::exp(v - mx);
        r.loss += (mx + std::log(sum) - z[size_t(d.labels[n])]) / k_batch;
        for (uint32_t k = 0; k < k_classes; ++k)
            dz[k] = (std::exp(z[k] - mx) / sum - (int32_t(k) == d.labels[n] ? 1.0 : 0.0)) / k_batch;
        std::vector<double> dp(feat);
        for (uint32_t k = 0; k < k_classes; ++k) {
            dfb[k] += dz[k];
            for (uint32_t f = 0; f < feat; ++f) {
                dfw[k * feat + f] += dz[k] * p[f];
                dp[f] += dz[k] * fw[k * feat + f];
            }
        }
        for (uint32_t o = 0; o < k_ch; ++o) {
            const double invstd = 1 / std::sqrt(double(rv[o]) + double(k_eps));
            for (uint32_t yy = 0; yy < k_hw; ++yy)
                for (uint32_t xx = 0; xx < k_hw; ++xx) {
                    const size_t e = (o * k_hw + yy) * k_hw + xx;
                    const double dy = a[e] > 0 ? dp[(o * 2 + yy / 2) * 2 + xx / 2] / 4 : 0.0;
                    dg[o] += dy * xhat[e];
                    db[o] += dy;
                    const double dh = dy * g[o] * invstd; // the frozen formula: no term through the statistics
                    for (uint32_t i = 0; i < k_in; ++i)
                        for (int ky = 0; ky < 3; ++ky)
                            for (int kx = 0; kx < 3; ++kx) {
                                const int sy = int(yy) + ky - 1, sx = int(xx) + kx - 1;
                                if (sy < 0 || sx < 0 || sy >= int(k_hw) || sx >= int(k_hw)) continue;
                                dcw[((o * k_in + i) * 3 + uint32_t(ky)) * 3 + uint32_t(kx)] +=
                                    dh * x[(i * k_hw + uint32_t(sy)) * k_hw + uint32_t(sx)];
                            }
                }
        }
    }
    r.grads = {{"conv.weight", dcw}, {"bn.weight", dg}, {"bn.bias", db}, {"fc.weight", dfw}, {"fc.bias", dfb}};
    return r;
}

vktrain::TrainerOptions options(vktrain::Precision precision) {
    vktrain::TrainerOptions o;
    o.precision = precision;
    o.batch_size = k_batch;
    o.seed = 3;
    o.optimizer.learning_rate = 0.05f;
    return o;
}

std::string precision_name(vktrain::Precision p) {
    return p == vktrain::Precision::mixed ? "mixed" : "fp32";
}

class FrozenBatchNorm : public testing::TestWithParam<vktrain::Precision> {};

TEST_P(FrozenBatchNorm, GradientsMatchTheFrozenFormulas) {
    if (GetParam() == vktrain::Precision::mixed) VKT_REQUIRE_FP16();
    const Data d;
    const vktrain::Model m = small_cnn(true);
    vktrain::Trainer t(vkt_test::context(), m, options(GetParam()));
    t.set_parameters(weights());
    const Reference want = reference(t.parameters(), d); // mixed: fp16 weights and inputs on the device, hence 1e-2
    std::vector<std::vector<float>> grads;
    const float loss = t.compute_gradients({d.x.data(), d.labels.data()}, k_batch, grads);
    const bool mixed = GetParam() == vktrain::Precision::mixed;
    const double tol = mixed ? 1e-2 : 1e-4;
    EXPECT_NEAR(loss, want.loss, tol * std::fabs(want.loss));
    std::vector<std::string> names;
    for (const auto& p : m.parameters())
        if (p.trainable && !p.buffer) names.push_back(p.name);
    ASSERT_EQ(names.size(), grads.size());
    for (size_t p = 0; p < names.size(); ++p) {
        const std::vector<double>& ref = want.grads.at(names[p]);
        ASSERT_EQ(ref.size(), grads[p].size()) << names[p];
        double diff = 0, norm = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
            diff += std::pow(double(grads[p][i]) - ref[i], 2);
            norm += ref[i] * ref[i];
        }
        EXPECT_GT(norm, 0.0) << names[p];
        EXPECT_LE(std::sqrt(diff), tol * std::sqrt(norm))
            << names[p] << " gradient (" << precision_name(GetParam()) << ") against the frozen formulas";
    }
}

// Steps on both update paths: the weights train, the running statistics and the counter do not move; the same model
// unfrozen moves them (the guard that freezing is what keeps them).
TEST_P(FrozenBatchNorm, StatisticsStayWhileWeightsTrain) {
    if (GetParam() == vktrain::Precision::mixed) VKT_REQUIRE_FP16();
    const Data d;
    for (const auto where : {vktrain::UpdateLocation::host, vktrain::UpdateLocation::device}) {
        for (const bool frozen : {true, false}) {
            vktrain::TrainerOptions o = options(GetParam());
            o.update_location = where;
            vktrain::Trainer t(vkt_test::context(), small_cnn(frozen), o);
            t.set_parameters(weights());
            const std::vector<float> w0 = t.parameter("bn.weight").data;
            std::vector<float> losses;
            for (int step = 0; step < 4; ++step) losses.push_back(t.step({d.x.data(), d.labels.data()}, k_batch).loss);
            const std::string what = std::string(frozen ? "frozen" : "unfrozen") + ", " +
                                     (where == vktrain::UpdateLocation::host ? "host" : "device") + " update, " +
                                     precision_name(GetParam());
            EXPECT_NE(t.parameter("bn.weight").data, w0) << what;
            EXPECT_LT(losses.back(), losses.front()) << what;
            const std::vector<vktrain::Parameter> w = weights();
            const auto &rm = find(w, "bn.running_mean"), &rv = find(w, "bn.running_var");
            if (frozen) {
                EXPECT_EQ(t.parameter("bn.running_mean").data, rm) << what;
                EXPECT_EQ(t.parameter("bn.running_var").data, rv) << what;
                EXPECT_EQ(t.parameter("bn.num_batches_tracked").data, std::vector<float>{17.0f}) << what;
            } else {
                EXPECT_NE(t.parameter("bn.running_mean").data, rm) << what;
                EXPECT_NE(t.parameter("bn.running_var").data, rv) << what;
                EXPECT_EQ(t.parameter("bn.num_batches_tracked").data, std::vector<float>{21.0f}) << what;
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Both, FrozenBatchNorm, testing::Values(vktrain::Precision::fp32, vktrain::Precision::mixed),
                         [](const auto& param_info) { return precision_name(param_info.param); });

// Frozen statistics normalise each sample alone, so a partial batch trains (batch statistics refuse one), and the
// training forward equals evaluation's.
TEST(FrozenBatchNormBatches, PartialBatchesTrainAndMatchEvaluation) {
    const Data d;
    vktrain::Trainer t(vkt_test::context(), small_cnn(true), options(vktrain::Precision::fp32));
    t.set_parameters(weights());
    const Reference want = reference(t.parameters(), d);
    const double eval_loss = t.evaluate({d.x.data(), d.labels.data()}, k_batch).loss;
    EXPECT_NEAR(eval_loss, want.loss, 1e-5 * std::fabs(want.loss));
    std::vector<std::vector<float>> grads;
    EXPECT_NEAR(t.compute_gradients({d.x.data(), d.labels.data()}, k_batch, grads), eval_loss,
                1e-6 * std::fabs(eval_loss));
    EXPECT_NO_THROW(t.step({d.x.data(), d.labels.data()}, 2));

    vktrain::Trainer unfrozen(vkt_test::context(), small_cnn(false), options(vktrain::Precision::fp32));
    EXPECT_THROW(unfrozen.step({d.x.data(), d.labels.data()}, 2), vktrain::Error);
}

} // namespace
