// Host optimizers: PyTorch SGD / AdamW rules against an independent double-precision reference, hand-computed
// steps, bit-identical continuation from exported state, option validation and gradient unscaling.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/half.hpp"
#include "train/optimizer.hpp"
#include "vktrain/error.hpp"

namespace {

using vktrain::OptimizerKind;
using vktrain::OptimizerOptions;
using vktrain::train::NamedTensors;
using vktrain::train::Optimizer;

using Tensors = std::vector<std::vector<float>>;
using TensorsD = std::vector<std::vector<double>>;

const std::vector<size_t> kSizes = {7, 0, 64, 1000, 33};

Tensors random_tensors(const std::vector<size_t>& sizes, std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    Tensors tensors;
    for (size_t size : sizes) {
        std::vector<float> t(size);
        for (float& x : t) x = dist(rng);
        tensors.push_back(std::move(t));
    }
    return tensors;
}

TensorsD to_double(const Tensors& tensors) {
    TensorsD out;
    for (const auto& t : tensors) out.emplace_back(t.begin(), t.end());
    return out;
}

std::vector<float*> pointers(Tensors& tensors) {
    std::vector<float*> out;
    for (auto& t : tensors) out.push_back(t.data());
    return out;
}

std::vector<const float*> const_pointers(const Tensors& tensors) {
    std::vector<const float*> out;
    for (const auto& t : tensors) out.push_back(t.data());
    return out;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Reference written directly from the PyTorch documentation's pseudo-code, in double.
class ReferenceSgd {
public:
    ReferenceSgd(double lr, double momentum, double weight_decay, bool nesterov)
        : m_lr(lr), m_momentum(momentum), m_weight_decay(weight_decay), m_nesterov(nesterov) {}

    void step(TensorsD& params, const TensorsD& grads) {
        if (m_buffers.empty()) m_buffers.resize(params.size());
        for (size_t t = 0; t < params.size(); ++t) {
            for (size_t i = 0; i < params[t].size(); ++i) {
                double g = grads[t][i] + m_weight_decay * params[t][i];
                if (m_momentum != 0.0) {
                    if (m_steps == 0) {
                        m_buffers[t].push_back(g);
                    } else {
                        m_buffers[t][i] = m_momentum * m_buffers[t][i] + g;
                    }
                    g = m_nesterov ? g + m_momentum * m_buffers[t][i] : m_buffers[t][i];
                }
                params[t][i] -= m_lr * g;
            }
        }
        ++m_steps;
    }

private:
    double m_lr, m_momentum, m_weight_decay;
    bool m_nesterov;
    int m_steps = 0;
    TensorsD m_buffers;
};

class ReferenceAdamW {
public:
    ReferenceAdamW(double lr, double beta1, double beta2, double eps, double weight_decay)
        : m_lr(lr), m_beta1(beta1), m_beta2(beta2), m_eps(eps), m_weight_decay(weight_decay) {}

    void step(TensorsD& params, const TensorsD& grads) {
        if (m_m.empty()) {
            for (const auto& p : params) {
                m_m.emplace_back(p.size(), 0.0);
                m_v.emplace_back(p.size(), 0.0);
            }
        }
        ++m_t;
        const double bias1 = 1.0 - std::pow(m_beta1, m_t);
        const double bias2 = 1.0 - std::pow(m_beta2, m_t);
        for (size_t t = 0; t < params.size(); ++t) {
            for (size_t i = 0; i < params[t].size(); ++i) {
                const double g = grads[t][i];
                double& p = params[t][i];
                p *= 1.0 - m_lr * m_weight_decay;
                m_m[t][i] = m_beta1 * m_m[t][i] + (1.0 - m_beta1) * g;
                m_v[t][i] = m_beta2 * m_v[t][i] + (1.0 - m_beta2) * g * g;
                const double m_hat = m_m[t][i] / bias1;
                const double v_hat = m_v[t][i] / bias2;
                p -= m_lr * m_hat / (std::sqrt(v_hat) + m_eps);
            }
        }
    }

private:
    double m_lr, m_beta1, m_beta2, m_eps, m_weight_decay;
    int m_t = 0;
    TensorsD m_m, m_v;
};

OptimizerOptions sgd_options(float lr, float momentum, float weight_decay, bool nesterov) {
    OptimizerOptions o;
    o.kind = OptimizerKind::sgd;
    o.learning_rate = lr;
    o.momentum = momentum;
    o.weight_decay = weight_decay;
    o.nesterov = nesterov;
    return o;
}

OptimizerOptions adamw_options(float lr, float weight_decay) {
    OptimizerOptions o;
    o.kind = OptimizerKind::adamw;
    o.learning_rate = lr;
    o.weight_decay = weight_decay;
    return o;
}

// Runs `steps` updates of the fp32 optimizer and the double reference on the same fp32 gradients and returns the
// largest |fp32 - reference| over all parameters.
template <typename Reference>
double max_error_against_reference(const OptimizerOptions& options, Reference reference, int steps) {
    std::mt19937 rng(1234);
    Tensors params = random_tensors(kSizes, rng, -1.0f, 1.0f);
    TensorsD params_ref = to_double(params);
    Optimizer optimizer(options, kSizes);
    double max_error = 0.0;
    for (int s = 0; s < steps; ++s) {
        const Tensors grads = random_tensors(kSizes, rng, -2.0f, 2.0f);
        optimizer.step(pointers(params), const_pointers(grads), 1.0f);
        reference.step(params_ref, to_double(grads));
        for (size_t t = 0; t < params.size(); ++t) {
            for (size_t i = 0; i < params[t].size(); ++i) {
                max_error = std::max(max_error, std::fabs(static_cast<double>(params[t][i]) - params_ref[t][i]));
            }
        }
    }
    EXPECT_EQ(optimizer.step_count(), steps);
    return max_error;
}

struct SgdCase {
    float momentum;
    float weight_decay;
    bool nesterov;
};

TEST(Optimizer, SgdMatchesDoubleReference) {
    const SgdCase cases[] = {{0.0f, 0.0f, false},  {0.0f, 0.01f, false}, {0.9f, 0.0f, false},
                             {0.9f, 0.05f, false}, {0.9f, 0.0f, true},   {0.5f, 0.05f, true}};
    for (const SgdCase& c : cases) {
        const float lr = 0.01f;
        const OptimizerOptions options = sgd_options(lr, c.momentum, c.weight_decay, c.nesterov);
        ReferenceSgd reference(lr, c.momentum, c.weight_decay, c.nesterov);
        const double error = max_error_against_reference(options, reference, 12);
        // A few fp32 roundings per step on values of order 1.
        EXPECT_LT(error, 2e-6) << "momentum " << c.momentum << " wd " << c.weight_decay << " nesterov " << c.nesterov;
    }
}

TEST(Optimizer, AdamWMatchesDoubleReference) {
    for (float weight_decay : {0.0f, 0.01f, 0.1f}) {
        const OptimizerOptions options = adamw_options(1e-2f, weight_decay);
        // The reference uses the fp32 hyperparameters' exact values.
        ReferenceAdamW reference(options.learning_rate, options.beta1, options.beta2, options.epsilon, weight_decay);
        const double error = max_error_against_reference(options, reference, 12);
        EXPECT_LT(error, 2e-6) << "wd " << weight_decay;
    }
}

TEST(Optimizer, AdamWFirstStepIsSignedLearningRate) {
    // At t = 1 the bias corrections make m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps).
    const float lr = 1e-3f;
    const float wd = 0.1f;
    Optimizer optimizer(adamw_options(lr, wd), {6});
    std::vector<float> p = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 0.0f};
    const std::vector<float> p0 = p;
    const std::vector<float> g = {0.3f, -1e-3f, 20.0f, -7.0f, 1e-2f, -0.5f};
    optimizer.step({p.data()}, {g.data()}, 1.0f);
    for (size_t i = 0; i < p.size(); ++i) {
        const double expected = p0[i] * (1.0 - double(lr) * wd) - lr * (g[i] > 0 ? 1.0 : -1.0);
        EXPECT_NEAR(p[i], expected, 1e-7) << i;
    }
    EXPECT_EQ(optimizer.step_count(), 1);
    const NamedTensors state = optimizer.state_tensors();
    ASSERT_EQ(state.size(), 2u);
    EXPECT_EQ(state[0].first, "exp_avg.0");
    EXPECT_EQ(state[1].first, "exp_avg_sq.0");
    // 1 - beta1 and 1 - beta2 of the fp32 hyperparameters (0.9f, 0.999f), not of the decimal 0.9 and 0.999.
    const float one_minus_beta2 = static_cast<float>(1.0 - static_cast<double>(0.999f));
    for (size_t i = 0; i < g.size(); ++i) {
        EXPECT_FLOAT_EQ(state[0].second[i], 0.1f * g[i]);
        EXPECT_FLOAT_EQ(state[1].second[i], one_minus_beta2 * g[i] * g[i]);
    }
}

TEST(Optimizer, SgdHandComputedSteps) {
    // momentum 0.5, wd 0.1, lr 0.1, p = 1, g = 1 every step:
    // step 1: d = 1 + 0.1 * 1 = 1.1, buf = 1.1, p = 1 - 0.11 = 0.89
    // step 2: d = 1 + 0.089 = 1.089, buf = 0.55 + 1.089 = 1.639, p = 0.89 - 0.1639 = 0.7261
    Optimizer optimizer(sgd_options(0.1f, 0.5f, 0.1f, false), {1});
    float p = 1.0f;
    const float g = 1.0f;
    optimizer.step({&p}, {&g}, 1.0f);
    EXPECT_NEAR(p, 0.89f, 1e-6f);
    optimizer.step({&p}, {&g}, 1.0f);
    EXPECT_NEAR(p, 0.7261f, 1e-6f);
    const NamedTensors state = optimizer.state_tensors();
    ASSERT_EQ(state.size(), 1u);
    EXPECT_EQ(state[0].first, "momentum_buffer.0");
    EXPECT_NEAR(state[0].second[0], 1.639f, 1e-6f);
    // Plain SGD has no state.
    EXPECT_TRUE(Optimizer(sgd_options(0.1f, 0.0f, 0.0f, false), {3}).state_tensors().empty());
}

void expect_bit_identical_continuation(const OptimizerOptions& options, int steps_before) {
    std::mt19937 rng(99);
    Tensors params_a = random_tensors(kSizes, rng, -1.0f, 1.0f);
    Optimizer a(options, kSizes);
    for (int s = 0; s < steps_before; ++s) {
        const Tensors grads = random_tensors(kSizes, rng, -1.0f, 1.0f);
        a.step(pointers(params_a), const_pointers(grads), 0.5f);
    }

    // B is a fresh optimizer restored from A's exported state (names matched, not positions: reverse the list).
    NamedTensors exported = a.state_tensors();
    const NamedTensors reversed(exported.rbegin(), exported.rend());
    Optimizer b(options, kSizes);
    b.load_state(a.step_count(), reversed);
    EXPECT_EQ(b.step_count(), a.step_count());
    Tensors params_b = params_a;

    for (int s = 0; s < 5; ++s) {
        const Tensors grads = random_tensors(kSizes, rng, -1.0f, 1.0f);
        a.step(pointers(params_a), const_pointers(grads), 0.5f);
        b.step(pointers(params_b), const_pointers(grads), 0.5f);
    }
    for (size_t t = 0; t < kSizes.size(); ++t) EXPECT_TRUE(bitwise_equal(params_a[t], params_b[t])) << t;
    const NamedTensors state_a = a.state_tensors();
    const NamedTensors state_b = b.state_tensors();
    ASSERT_EQ(state_a.size(), state_b.size());
    for (size_t i = 0; i < state_a.size(); ++i) {
        EXPECT_EQ(state_a[i].first, state_b[i].first);
        EXPECT_TRUE(bitwise_equal(state_a[i].second, state_b[i].second)) << state_a[i].first;
    }
    EXPECT_EQ(a.step_count(), b.step_count());
}

TEST(Optimizer, StateRoundTripContinuesBitIdentically) {
    expect_bit_identical_continuation(adamw_options(3e-3f, 0.01f), 4);
    expect_bit_identical_continuation(adamw_options(3e-3f, 0.0f), 0);
    expect_bit_identical_continuation(sgd_options(0.05f, 0.9f, 1e-4f, false), 4);
    expect_bit_identical_continuation(sgd_options(0.05f, 0.9f, 1e-4f, true), 3);
    expect_bit_identical_continuation(sgd_options(0.05f, 0.9f, 0.0f, false), 0); // buffer not yet created
    expect_bit_identical_continuation(sgd_options(0.05f, 0.0f, 0.0f, false), 2);
}

TEST(Optimizer, StateNamesCoverEveryParameter) {
    Optimizer adam(adamw_options(1e-3f, 0.0f), {2, 3});
    const NamedTensors state = adam.state_tensors();
    ASSERT_EQ(state.size(), 4u);
    EXPECT_EQ(state[0].first, "exp_avg.0");
    EXPECT_EQ(state[1].first, "exp_avg_sq.0");
    EXPECT_EQ(state[2].first, "exp_avg.1");
    EXPECT_EQ(state[3].first, "exp_avg_sq.1");
    EXPECT_EQ(state[2].second.size(), 3u);
    Optimizer sgd(sgd_options(0.1f, 0.9f, 0.0f, false), {2, 3});
    const NamedTensors sgd_state = sgd.state_tensors();
    ASSERT_EQ(sgd_state.size(), 2u);
    EXPECT_EQ(sgd_state[1].first, "momentum_buffer.1");
}

// Trainer::set_trainable regroups the optimizer: a tensor that stays keeps its state and step count and goes on
// exactly as before; a new tensor starts as a fresh optimizer would (AdamW's bias correction and SGD's first momentum
// buffer from its own first step), not at the other tensors' step count.
void expect_regrouping_keeps_and_starts_fresh(const OptimizerOptions& options) {
    std::mt19937 rng(17);
    const size_t a = 5, b = 9, c = 4;
    Tensors p = random_tensors({a, b, c}, rng, -1.0f, 1.0f);
    Optimizer before(options, {a, b});
    Optimizer alone(options, {b}); // tensor b by itself, the same steps
    for (int s = 0; s < 3; ++s) {
        const Tensors g = random_tensors({a, b}, rng, -1.0f, 1.0f);
        std::vector<float> pb = p[1];
        before.step({p[0].data(), p[1].data()}, {g[0].data(), g[1].data()});
        alone.step({pb.data()}, {g[1].data()});
        EXPECT_TRUE(bitwise_equal(pb, p[1]));
    }
    // Now b and c train, a is frozen.
    Optimizer after = before.regrouped({b, c}, {1, -1}, {options.weight_decay, options.weight_decay});
    EXPECT_EQ(after.step_count(), 3);
    EXPECT_EQ(after.tensor_steps(), (std::vector<int64_t>{3, 0}));
    const NamedTensors kept = after.state_tensors({"b", "c"}), old = alone.state_tensors({"b"});
    for (size_t i = 0; i < old.size(); ++i) {
        EXPECT_EQ(kept[i].first, old[i].first);
        EXPECT_TRUE(bitwise_equal(kept[i].second, old[i].second)) << kept[i].first;
    }
    for (size_t i = old.size(); i < kept.size(); ++i)
        for (float v : kept[i].second) EXPECT_EQ(v, 0.0f) << kept[i].first;
    Optimizer fresh(options, {c});
    std::vector<float> pb = p[1], pc = p[2];
    const Tensors g = random_tensors({b, c}, rng, -1.0f, 1.0f);
    after.step({p[1].data(), p[2].data()}, {g[0].data(), g[1].data()});
    alone.step({pb.data()}, {g[0].data()});
    fresh.step({pc.data()}, {g[1].data()});
    EXPECT_TRUE(bitwise_equal(p[1], pb)) << "the tensor that stayed trainable went on differently";
    EXPECT_TRUE(bitwise_equal(p[2], pc)) << "the new tensor did not start as a fresh optimizer";
    EXPECT_EQ(after.tensor_steps(), (std::vector<int64_t>{4, 1}));
    // The per-tensor counts go through a state round trip.
    Optimizer copy(options, {b, c});
    copy.load_state(after.step_count(), after.state_tensors({"b", "c"}), {"b", "c"}, after.tensor_steps());
    EXPECT_EQ(copy.tensor_steps(), after.tensor_steps());
    EXPECT_THROW(copy.load_state(2, after.state_tensors({"b", "c"}), {"b", "c"}, after.tensor_steps()), vktrain::Error);
}

TEST(Optimizer, RegroupedKeepsStateAndStartsNewTensorsFresh) {
    expect_regrouping_keeps_and_starts_fresh(adamw_options(3e-3f, 0.01f));
    expect_regrouping_keeps_and_starts_fresh(sgd_options(0.05f, 0.9f, 1e-4f, true));
}

void expect_load_error(Optimizer& optimizer, int64_t step_count, const NamedTensors& tensors, const char* needle) {
    try {
        optimizer.load_state(step_count, tensors);
        ADD_FAILURE() << "expected vktrain::Error containing '" << needle << "'";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(Optimizer, LoadStateValidatesAndLeavesStateOnFailure) {
    Optimizer optimizer(adamw_options(1e-3f, 0.0f), {2, 3});
    std::vector<float> p0 = {1.0f, 2.0f}, p1 = {1.0f, 2.0f, 3.0f};
    const std::vector<float> g0 = {0.5f, -0.5f}, g1 = {0.1f, 0.2f, 0.3f};
    optimizer.step({p0.data(), p1.data()}, {g0.data(), g1.data()}, 1.0f);
    const NamedTensors good = optimizer.state_tensors();

    NamedTensors missing = good;
    missing.pop_back();
    expect_load_error(optimizer, 5, missing, "missing tensor 'exp_avg_sq.1'");

    NamedTensors wrong_size = good;
    wrong_size[2].second.push_back(0.0f);
    expect_load_error(optimizer, 5, wrong_size, "'exp_avg.1' has 4 elements, expected 3");

    NamedTensors unexpected = good;
    unexpected.emplace_back("momentum_buffer.0", std::vector<float>(2));
    expect_load_error(optimizer, 5, unexpected, "unexpected tensor 'momentum_buffer.0'");

    NamedTensors out_of_range = good;
    out_of_range.emplace_back("exp_avg.2", std::vector<float>(3));
    expect_load_error(optimizer, 5, out_of_range, "unexpected tensor 'exp_avg.2'");

    NamedTensors duplicate = good;
    duplicate.push_back(good[0]);
    expect_load_error(optimizer, 5, duplicate, "'exp_avg.0' appears twice");

    expect_load_error(optimizer, -1, good, "step count");

    // Nothing changed by the failed loads (some of them were valid up to their last entry).
    EXPECT_EQ(optimizer.step_count(), 1);
    const NamedTensors after = optimizer.state_tensors();
    ASSERT_EQ(after.size(), good.size());
    for (size_t i = 0; i < good.size(); ++i) EXPECT_TRUE(bitwise_equal(after[i].second, good[i].second));

    Optimizer plain(sgd_options(0.1f, 0.0f, 0.0f, false), {2});
    plain.load_state(7, {});
    EXPECT_EQ(plain.step_count(), 7);
    expect_load_error(plain, 7, good, "unexpected tensor 'exp_avg.0'");
}

TEST(Optimizer, InvalidOptionsThrow) {
    const auto expect_throw = [](OptimizerOptions options) { EXPECT_THROW(Optimizer(options, {4}), vktrain::Error); };
    for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adamw}) {
        OptimizerOptions base;
        base.kind = kind;
        for (float lr : {0.0f, -1e-3f, INFINITY, NAN}) {
            OptimizerOptions o = base;
            o.learning_rate = lr;
            expect_throw(o);
        }
        for (float wd : {-0.1f, INFINITY, NAN}) {
            OptimizerOptions o = base;
            o.weight_decay = wd;
            expect_throw(o);
        }
    }
    for (float momentum : {-0.1f, 1.0f, 1.5f, NAN}) expect_throw(sgd_options(0.1f, momentum, 0.0f, false));
    expect_throw(sgd_options(0.1f, 0.0f, 0.0f, true)); // nesterov needs momentum
    for (float beta : {-0.1f, 1.0f, NAN}) {
        OptimizerOptions o = adamw_options(1e-3f, 0.0f);
        o.beta1 = beta;
        expect_throw(o);
        o = adamw_options(1e-3f, 0.0f);
        o.beta2 = beta;
        expect_throw(o);
    }
    for (float eps : {0.0f, -1e-8f, INFINITY, NAN}) {
        OptimizerOptions o = adamw_options(1e-3f, 0.0f);
        o.epsilon = eps;
        expect_throw(o);
    }
    // Valid edge values and fields belonging to the other optimizer are accepted.
    EXPECT_NO_THROW(Optimizer(sgd_options(0.1f, 0.0f, 0.0f, false), {4}));
    OptimizerOptions adam = adamw_options(1e-3f, 0.0f);
    adam.beta1 = 0.0f;
    adam.momentum = 5.0f;
    adam.nesterov = true;
    EXPECT_NO_THROW(Optimizer(adam, {4}));
    OptimizerOptions sgd = sgd_options(0.1f, 0.9f, 0.0f, true);
    sgd.beta2 = 2.0f;
    EXPECT_NO_THROW(Optimizer(sgd, {4}));

    Optimizer optimizer(adamw_options(1e-3f, 0.0f), {4});
    EXPECT_THROW(optimizer.set_learning_rate(-1e-3f), vktrain::Error);
    EXPECT_THROW(optimizer.set_learning_rate(NAN), vktrain::Error);
    EXPECT_THROW(optimizer.set_learning_rate(INFINITY), vktrain::Error);
    EXPECT_EQ(optimizer.learning_rate(), 1e-3f);
    optimizer.set_learning_rate(5e-4f);
    EXPECT_EQ(optimizer.learning_rate(), 5e-4f);
}

TEST(Optimizer, StepValidatesArguments) {
    Optimizer optimizer(sgd_options(0.1f, 0.9f, 0.0f, false), {2, 3});
    std::vector<float> p0(2), p1(3), g0(2), g1(3);
    EXPECT_THROW(optimizer.step({p0.data()}, {g0.data(), g1.data()}, 1.0f), vktrain::Error);
    EXPECT_THROW(optimizer.step({p0.data(), p1.data()}, {g0.data()}, 1.0f), vktrain::Error);
    EXPECT_THROW(optimizer.step({p0.data(), nullptr}, {g0.data(), g1.data()}, 1.0f), vktrain::Error);
    EXPECT_THROW(optimizer.step({p0.data(), p1.data()}, {g0.data(), g1.data()}, INFINITY), vktrain::Error);
    EXPECT_EQ(optimizer.step_count(), 0);
}

TEST(Optimizer, LearningRateChangeTakesEffect) {
    Optimizer optimizer(sgd_options(0.1f, 0.0f, 0.0f, false), {1});
    float p = 1.0f;
    const float g = 1.0f;
    optimizer.step({&p}, {&g}, 1.0f);
    EXPECT_FLOAT_EQ(p, 0.9f);
    optimizer.set_learning_rate(0.5f);
    optimizer.step({&p}, {&g}, 1.0f);
    EXPECT_FLOAT_EQ(p, 0.4f);
}

TEST(Optimizer, GradMultiplierUnscalesExactly) {
    // Scaling by 2^16 and multiplying by 2^-16 are exact in fp32, so the scaled run must match bit for bit.
    const OptimizerOptions all_options[] = {adamw_options(1e-3f, 0.01f), sgd_options(0.05f, 0.9f, 1e-3f, true),
                                            sgd_options(0.05f, 0.0f, 0.0f, false)};
    for (const OptimizerOptions& options : all_options) {
        std::mt19937 rng(7);
        Tensors params_plain = random_tensors(kSizes, rng, -1.0f, 1.0f);
        Tensors params_scaled = params_plain;
        Optimizer plain(options, kSizes);
        Optimizer scaled(options, kSizes);
        for (int s = 0; s < 6; ++s) {
            const Tensors grads = random_tensors(kSizes, rng, -1.0f, 1.0f);
            Tensors scaled_grads = grads;
            for (auto& t : scaled_grads) {
                for (float& x : t) x *= 65536.0f;
            }
            plain.step(pointers(params_plain), const_pointers(grads), 1.0f);
            scaled.step(pointers(params_scaled), const_pointers(scaled_grads), 1.0f / 65536.0f);
        }
        for (size_t t = 0; t < kSizes.size(); ++t) {
            EXPECT_TRUE(bitwise_equal(params_plain[t], params_scaled[t])) << static_cast<int>(options.kind) << " " << t;
        }
    }
}

} // namespace

namespace {

// A step over tensors large enough to be split into chunks and threads, against the same step tensor by tensor on
// slices small enough to stay whole and on one thread (elementwise updates: splitting must not change one bit), with
// the fp16 copy written in the same pass equal to the reference conversion of the new weights.
void expect_split_and_fused_identical(OptimizerKind kind) {
    const std::vector<size_t> sizes = {(size_t(1) << 21) + 77, 5, (size_t(1) << 16) + 1};
    std::mt19937 rng(7);
    OptimizerOptions o;
    o.kind = kind;
    o.learning_rate = 0.01f;
    o.weight_decay = 0.1f;
    o.momentum = 0.9f;
    Tensors params = random_tensors(sizes, rng, -1.0f, 1.0f);
    Tensors reference = params;
    Optimizer whole(o, sizes);
    // The reference: one optimizer per 1000-element slice (never chunked, never threaded).
    std::vector<std::vector<Optimizer>> slices(sizes.size());
    for (int step = 0; step < 3; ++step) {
        const Tensors grads = random_tensors(sizes, rng, -100.0f, 100.0f);
        std::vector<std::vector<uint16_t>> halves(sizes.size());
        std::vector<uint16_t*> half_ptrs;
        std::vector<float*> ptrs;
        std::vector<const float*> gptrs;
        for (size_t t = 0; t < sizes.size(); ++t) {
            halves[t].assign(sizes[t], 0);
            half_ptrs.push_back(halves[t].data());
            ptrs.push_back(params[t].data());
            gptrs.push_back(grads[t].data());
        }
        whole.step(ptrs, gptrs, 0.5f, 0.75f, half_ptrs);
        for (size_t t = 0; t < sizes.size(); ++t) {
            for (size_t b = 0, k = 0; b < sizes[t]; b += 1000, ++k) {
                const size_t n = std::min<size_t>(1000, sizes[t] - b);
                if (slices[t].size() <= k) slices[t].emplace_back(o, std::vector<size_t>{n});
                slices[t][k].step({reference[t].data() + b}, {grads[t].data() + b}, 0.5f, 0.75f);
            }
            ASSERT_EQ(std::memcmp(params[t].data(), reference[t].data(), sizes[t] * 4), 0) << "tensor " << t;
            for (size_t i = 0; i < sizes[t]; ++i)
                ASSERT_EQ(halves[t][i], vktrain::float_to_half(params[t][i])) << "tensor " << t << " element " << i;
        }
    }
}

} // namespace

TEST(Optimizer, AdamWSplitOverThreadsAndFusedPackAreBitIdentical) {
    expect_split_and_fused_identical(OptimizerKind::adamw);
}

TEST(Optimizer, SgdSplitOverThreadsAndFusedPackAreBitIdentical) {
    expect_split_and_fused_identical(OptimizerKind::sgd);
}
