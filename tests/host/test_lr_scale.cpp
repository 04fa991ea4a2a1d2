// Per-group learning rates (Model::set_learning_rate_scale, Optimizer::set_learning_rate_scales): each tensor steps
// with the optimizer's rate times its scale, as PyTorch's param groups with their own lr do (AdamW's decoupled weight
// decay included), in step() and in the staged pipeline alike; the scales are validated, survive regrouping and the
// model's JSON, and follow the parameter patterns' rules (later calls win).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "train/optimizer.hpp"
#include "vktrain/error.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::Model;
using vktrain::OptimizerKind;
using vktrain::OptimizerOptions;
using vktrain::train::Optimizer;

const std::vector<size_t> kSizes = {7, 64, 33};
const std::vector<float> kScales = {1.0f, 0.1f, 0.5f};

std::vector<std::vector<float>> random_tensors(std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<std::vector<float>> out;
    for (size_t n : kSizes) {
        std::vector<float> t(n);
        for (float& x : t) x = dist(rng);
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<float*> pointers(std::vector<std::vector<float>>& t) {
    std::vector<float*> out;
    for (auto& x : t) out.push_back(x.data());
    return out;
}

std::vector<const float*> const_pointers(const std::vector<std::vector<float>>& t) {
    std::vector<const float*> out;
    for (const auto& x : t) out.push_back(x.data());
    return out;
}

OptimizerOptions options(OptimizerKind kind, float momentum, bool nesterov, float weight_decay) {
    OptimizerOptions o;
    o.kind = kind;
    o.learning_rate = kind == OptimizerKind::sgd ? 0.05f : 0.01f;
    o.momentum = momentum;
    o.nesterov = nesterov;
    o.weight_decay = weight_decay;
    return o;
}

// One PyTorch param group of one tensor, in double, from the documentation's pseudo-code (SGD with dampening 0;
// AdamW with its decoupled decay p *= 1 - lr * wd): `lr` is the group's own rate.
struct ReferenceTensor {
    OptimizerOptions o;
    double lr;
    std::vector<double> p, buf, m, v;
    int t = 0;

    void step(const std::vector<float>& grad) {
        ++t;
        if (buf.empty()) buf.assign(p.size(), 0.0);
        if (m.empty()) {
            m.assign(p.size(), 0.0);
            v.assign(p.size(), 0.0);
        }
        const double wd = o.weight_decay, b1 = o.beta1, b2 = o.beta2;
        for (size_t i = 0; i < p.size(); ++i) {
            const double g = grad[i];
            if (o.kind == OptimizerKind::sgd) {
                double d = g + wd * p[i];
                if (o.momentum != 0.0f) {
                    buf[i] = t == 1 ? d : o.momentum * buf[i] + d;
                    d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
                }
                p[i] -= lr * d;
            } else {
                p[i] *= 1.0 - lr * wd;
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                const double m_hat = m[i] / (1.0 - std::pow(b1, t));
                const double v_hat = v[i] / (1.0 - std::pow(b2, t));
                p[i] -= lr * m_hat / (std::sqrt(v_hat) + o.epsilon);
            }
        }
    }
};

void expect_matches_groups(const OptimizerOptions& o, const std::string& what) {
    std::mt19937 rng(77);
    auto params = random_tensors(rng, -1.0f, 1.0f);
    auto staged = params; // the same steps through begin_staged / stage / commit
    std::vector<ReferenceTensor> ref;
    for (size_t t = 0; t < kSizes.size(); ++t)
        ref.push_back(
            {o, double(o.learning_rate) * double(kScales[t]), {params[t].begin(), params[t].end()}, {}, {}, {}, 0});
    Optimizer a(o, kSizes), b(o, kSizes);
    a.set_learning_rate_scales(kScales);
    b.set_learning_rate_scales(kScales);
    for (int s = 0; s < 8; ++s) {
        const auto grads = random_tensors(rng, -2.0f, 2.0f);
        a.step(pointers(params), const_pointers(grads), 1.0f);
        auto out = staged;
        b.begin_staged(1.0f, 1.0f, b.learning_rate());
        b.stage({2, 0}, const_pointers(staged), pointers(out), const_pointers(grads));
        b.stage({1}, const_pointers(staged), pointers(out), const_pointers(grads));
        b.commit();
        staged = out;
        for (size_t t = 0; t < kSizes.size(); ++t) ref[t].step(grads[t]);
    }
    for (size_t t = 0; t < kSizes.size(); ++t) {
        double err = 0.0;
        for (size_t i = 0; i < kSizes[t]; ++i) err = std::max(err, std::fabs(double(params[t][i]) - ref[t].p[i]));
        EXPECT_LT(err, 2e-6) << what << ": tensor " << t << " (scale " << kScales[t] << ")";
        EXPECT_EQ(std::memcmp(params[t].data(), staged[t].data(), kSizes[t] * 4), 0)
            << what << ": staged, tensor " << t;
    }
}

TEST(LearningRateScale, OptimizerMatchesPerGroupReference) {
    expect_matches_groups(options(OptimizerKind::sgd, 0.0f, false, 0.0f), "sgd");
    expect_matches_groups(options(OptimizerKind::sgd, 0.9f, true, 0.01f), "sgd nesterov wd");
    expect_matches_groups(options(OptimizerKind::sgd, 0.5f, false, 0.05f), "sgd momentum wd");
    expect_matches_groups(options(OptimizerKind::adamw, 0.0f, false, 0.0f), "adamw");
    expect_matches_groups(options(OptimizerKind::adamw, 0.0f, false, 0.1f), "adamw wd");
}

// By hand: SGD lr 0.1, scales 1 and 0.25, p = 1, g = 1, wd 0.1: p = 1 - 0.1·s·1.1 = 0.89 and 0.9725. AdamW's first
// step is p·(1 - lr·s·wd) - lr·s·sign(g).
TEST(LearningRateScale, HandComputedFirstSteps) {
    Optimizer sgd(options(OptimizerKind::sgd, 0.0f, false, 0.1f), {1, 1});
    sgd.set_learning_rate(0.1f);
    sgd.set_learning_rate_scales({1.0f, 0.25f});
    float p[2] = {1.0f, 1.0f};
    const float g[2] = {1.0f, 1.0f};
    sgd.step({&p[0], &p[1]}, {&g[0], &g[1]});
    EXPECT_NEAR(p[0], 0.89f, 1e-7f);
    EXPECT_NEAR(p[1], 0.9725f, 1e-7f);

    const float lr = 1e-3f, wd = 0.5f;
    Optimizer adamw(options(OptimizerKind::adamw, 0.0f, false, wd), {1, 1});
    adamw.set_learning_rate(lr);
    adamw.set_learning_rate_scales({2.0f, 0.1f});
    float q[2] = {3.0f, 3.0f};
    const float h[2] = {-0.7f, 0.2f};
    adamw.step({&q[0], &q[1]}, {&h[0], &h[1]});
    EXPECT_NEAR(q[0], 3.0 * (1.0 - 2e-3 * wd) + 2e-3, 1e-6);
    EXPECT_NEAR(q[1], 3.0 * (1.0 - 1e-4 * wd) - 1e-4, 1e-6);
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "expected vktrain::Error containing '" << needle << "'";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(LearningRateScale, OptimizerValidatesAndRegroupingKeepsScales) {
    Optimizer o(options(OptimizerKind::adamw, 0.0f, false, 0.0f), {2, 3});
    for (float bad : {0.0f, -1.0f, NAN, INFINITY})
        expect_error([&] { o.set_learning_rate_scales({1.0f, bad}); }, "learning-rate scale must be > 0 and finite");
    expect_error([&] { o.set_learning_rate_scales({1.0f}); }, "1 learning-rate scales for 2 tensors");
    o.set_learning_rate_scales({0.5f, 2.0f});
    EXPECT_EQ(o.learning_rate_scale(1), 2.0f);
    const Optimizer r = o.regrouped({3, 4}, {1, -1}, {}, {2.0f, 0.25f});
    EXPECT_EQ(r.learning_rate_scale(0), 2.0f);
    EXPECT_EQ(r.learning_rate_scale(1), 0.25f);
    EXPECT_EQ(o.regrouped({3}, {1}, {}).learning_rate_scale(0), 1.0f); // none given: 1
}

float scale_of(const Model& m, const std::string& name) {
    for (const auto& p : m.parameters())
        if (p.name == name) return p.lr_scale;
    ADD_FAILURE() << "no parameter " << name;
    return 0.0f;
}

TEST(LearningRateScale, ModelPatternsValidationAndJson) {
    Model m = Model::mlp(4, {8, 6}, 3);
    m.set_learning_rate_scale("*", 0.5f);
    m.set_learning_rate_scale("linear2.", 2.0f);
    m.set_learning_rate_scale("linear2.bias", 3.0f); // later calls win where they overlap
    EXPECT_EQ(scale_of(m, "linear0.weight"), 0.5f);
    EXPECT_EQ(scale_of(m, "linear2.weight"), 2.0f);
    EXPECT_EQ(scale_of(m, "linear2.bias"), 3.0f);
    EXPECT_EQ(scale_of(Model::mlp(4, {8}, 3), "linear0.weight"), 1.0f); // the default

    for (float bad : {0.0f, -0.5f, NAN, INFINITY})
        expect_error([&] { m.set_learning_rate_scale("linear0.", bad); },
                     "set_learning_rate_scale: the scale for 'linear0.' must be > 0 and finite, got ");
    expect_error([&] { m.set_learning_rate_scale("linear0.", 0.0f); }, "got 0");
    expect_error([&] { m.set_learning_rate_scale("nope.", 0.5f); }, "set_learning_rate_scale: no parameter matches");

    // The model file's architecture keeps them (weights files and checkpoints carry it).
    const Model back = Model::from_json(m.to_json());
    for (const auto& p : m.parameters()) EXPECT_EQ(scale_of(back, p.name), p.lr_scale) << p.name;
    EXPECT_NE(m.to_json().find("\"lr_scale\""), std::string::npos);
}

} // namespace
