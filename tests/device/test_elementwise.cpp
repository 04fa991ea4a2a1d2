// Element-wise kernels (per-channel bias add and gradient, the element-wise sum, ReLU / GELU (tanh and exact)
// / SiLU / ReLU6 / hardswish / hardsigmoid forward and backward, casts, the non-finite scan) against double-precision
// CPU references fed the same (fp16-rounded) inputs, in fp32 and fp16, on odd shapes, with every operand at a non-zero
// offset between sentinels that must survive untouched.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <tuple>

#include "device/support.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/launch.hpp"

namespace {

using vktrain::kernels::Activation;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);
using vkt_test::floor_abs;
using vkt_test::unit;
const char* name(DType d) {
    return vktrain::kernels::dtype_name(d);
}

struct Shape {
    uint32_t rows, cols;
};
std::string shape_name(Shape s) {
    return std::to_string(s.rows) + "x" + std::to_string(s.cols);
}

using Operand = vkt_test::Placed;
using vkt_test::expect_close;
using vkt_test::place;
using vkt_test::run;

// ---- bias add and bias gradient ----

class BiasTest : public testing::TestWithParam<std::tuple<DType, Shape>> {};

TEST_P(BiasTest, AddMatchesReference) {
    const DType dt = std::get<0>(GetParam());
    const Shape s = std::get<1>(GetParam());
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const auto y = vkt_test::round_through(vkt_test::random_values(size_t(s.rows) * s.cols, 11 + s.cols, -2, 2), dt);
    const auto b = vkt_test::round_through(vkt_test::random_values(s.cols, 12 + s.rows, -2, 2), dt);
    Operand yo = place(y, dt, 3), bo = place(b, dt, 5);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_bias_add(dev, seq, yo.ref(s.rows, s.cols), bo.ref(1, s.cols));
    });
    // One fp32 addition, then one rounding to the storage type.
    std::vector<double> ref(y.size()), tol(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
        ref[i] = double(y[i]) + b[i % s.cols];
        tol[i] = (k_u32 + unit(dt)) * std::fabs(ref[i]) + floor_abs(dt);
    }
    expect_close(yo.values(), ref, tol, "y");
    bo.values(); // bias sentinels intact
}

TEST_P(BiasTest, GradMatchesReference) {
    const DType dt = std::get<0>(GetParam());
    const Shape s = std::get<1>(GetParam());
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const auto dy = vkt_test::round_through(vkt_test::random_values(size_t(s.rows) * s.cols, 13 + s.cols), dt);
    Operand dyo = place(dy, dt, 7), dbo = place(std::vector<float>(s.cols, 99.0f), DType::f32, 2);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_bias_grad(dev, seq, dyo.ref(s.rows, s.cols), dbo.ref(1, s.cols));
    });
    // fp32 accumulation of `rows` exact values: at most rows * 2^-24 * sum |dy| (the kernel's split into
    // lanes only shortens the chains).
    std::vector<double> ref(s.cols, 0.0), tol(s.cols, 0.0);
    for (uint32_t r = 0; r < s.rows; ++r)
        for (uint32_t c = 0; c < s.cols; ++c) {
            ref[c] += dy[size_t(r) * s.cols + c];
            tol[c] += std::fabs(dy[size_t(r) * s.cols + c]);
        }
    for (double& t : tol) t = (s.rows + 1) * k_u32 * t + 1e-30;
    expect_close(dbo.values(), ref, tol, "db");
    dyo.values();
}

const Shape k_bias_shapes[] = {{1, 1}, {3, 7}, {37, 129}, {1000, 3}, {513, 257}, {2, 1100}};
INSTANTIATE_TEST_SUITE_P(Shapes, BiasTest,
                         testing::Combine(testing::Values(DType::f32, DType::f16), testing::ValuesIn(k_bias_shapes)),
                         [](const auto& param_info) {
                             return std::string(name(std::get<0>(param_info.param))) + "_" +
                                    shape_name(std::get<1>(param_info.param));
                         });

// ---- element-wise sum ----

struct AddCase {
    DType a, b, out;
    int alias; // 0: out is its own buffer, 1: out is a, 2: out is b
};

class AddTest : public testing::TestWithParam<AddCase> {};

TEST_P(AddTest, MatchesReference) {
    const AddCase c = GetParam();
    if (c.a == DType::f16 || c.b == DType::f16 || c.out == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    for (Shape s : {Shape{1, 1}, Shape{37, 129}}) {
        const size_t n = size_t(s.rows) * s.cols;
        const auto a = vkt_test::round_through(vkt_test::random_values(n, 91 + s.cols, -3, 3), c.a);
        const auto b = vkt_test::round_through(vkt_test::random_values(n, 92 + s.rows, -3, 3), c.b);
        Operand ao = place(a, c.a, 3), bo = place(b, c.b, 6), oo = place(std::vector<float>(n, 5.0f), c.out, 1);
        const Operand& out = c.alias == 1 ? ao : c.alias == 2 ? bo : oo;
        run([&](rt::Sequence& seq) {
            // a as rows×cols, b and out flattened: only the element counts must agree.
            vktrain::kernels::record_add(dev, seq, ao.ref(s.rows, s.cols), bo.ref(), out.ref(s.rows, s.cols));
        });
        // One fp32 addition (exact inputs), then the rounding to out's type.
        std::vector<double> ref(n), tol(n);
        for (size_t i = 0; i < n; ++i) {
            ref[i] = double(a[i]) + b[i];
            tol[i] = (k_u32 + unit(c.out)) * std::fabs(ref[i]) + floor_abs(c.out);
        }
        expect_close(out.values(), ref, tol, "out " + shape_name(s));
        if (c.alias != 1) {
            EXPECT_EQ(ao.values(), a);
        }
        if (c.alias != 2) {
            EXPECT_EQ(bo.values(), b);
        }
    }
}

std::vector<AddCase> add_cases() {
    std::vector<AddCase> out;
    for (DType a : {DType::f32, DType::f16}) {
        for (DType b : {DType::f32, DType::f16}) {
            for (DType o : {DType::f32, DType::f16}) {
                out.push_back({a, b, o, 0});
                if (o == a) out.push_back({a, b, o, 1}); // in place: add(d, s, d)
                if (o == b) out.push_back({a, b, o, 2});
            }
        }
    }
    return out;
}

std::string add_name(const AddCase& c) {
    const char* alias[] = {"", "_inplace_a", "_inplace_b"};
    return std::string(name(c.a)) + "_" + name(c.b) + "_" + name(c.out) + alias[c.alias];
}

INSTANTIATE_TEST_SUITE_P(All, AddTest, testing::ValuesIn(add_cases()),
                         [](const auto& param_info) { return add_name(param_info.param); });

TEST(AddChecks, RejectPartialOverlapAndCountMismatch) {
    auto& dev = vkt_test::device();
    rt::Buffer buf = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    const MatRef a{&buf, DType::f32, 4, 4, 0}, b{&buf, DType::f32, 4, 4, 32};
    const auto expect_error = [&](const MatRef& x, const MatRef& y, const MatRef& out, const char* what) {
        rt::Sequence seq(dev);
        seq.begin();
        try {
            vktrain::kernels::record_add(dev, seq, x, y, out);
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        seq.end();
    };
    expect_error(a, b, MatRef{&buf, DType::f32, 4, 4, 8}, "out overlaps a");
    expect_error(a, MatRef{&buf, DType::f32, 3, 4, 32}, MatRef{&buf, DType::f32, 4, 4, 16}, "b has 12 elements");
    expect_error(a, b, MatRef{&buf, DType::f32, 4, 4, 60}, "overruns");
}

// ---- per-channel bias over [outer, channels, inner] ----

struct ChannelCase {
    DType y, bias;
    uint32_t outer, channels, inner;
};
std::string channel_name(const ChannelCase& c) {
    return std::string(name(c.y)) + "_" + name(c.bias) + "_" + std::to_string(c.outer) + "x" +
           std::to_string(c.channels) + "x" + std::to_string(c.inner);
}

class ChannelBiasTest : public testing::TestWithParam<ChannelCase> {};

TEST_P(ChannelBiasTest, AddMatchesReference) {
    const ChannelCase c = GetParam();
    if (c.y == DType::f16 || c.bias == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const size_t n = size_t(c.outer) * c.channels * c.inner;
    const auto y = vkt_test::round_through(vkt_test::random_values(n, 101 + c.inner, -2, 2), c.y);
    const auto b = vkt_test::round_through(vkt_test::random_values(c.channels, 102 + c.outer, -2, 2), c.bias);
    Operand yo = place(y, c.y, 3), bo = place(b, c.bias, 5);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_channel_bias_add(dev, seq, yo.ref(c.outer, c.channels * c.inner), bo.ref(), c.outer,
                                                  c.channels, c.inner);
    });
    std::vector<double> ref(n), tol(n);
    for (size_t i = 0; i < n; ++i) {
        ref[i] = double(y[i]) + b[(i / c.inner) % c.channels];
        tol[i] = (k_u32 + unit(c.y)) * std::fabs(ref[i]) + floor_abs(c.y);
    }
    expect_close(yo.values(), ref, tol, "y");
    EXPECT_EQ(bo.values(), b);
}

TEST_P(ChannelBiasTest, GradMatchesReferenceAndAccumulates) {
    const ChannelCase c = GetParam();
    const DType dt = c.y; // dy has the activations' type; db is fp32
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const size_t n = size_t(c.outer) * c.channels * c.inner;
    const auto dy = vkt_test::round_through(vkt_test::random_values(n, 103 + c.channels, -1, 1), dt);
    const auto start = vkt_test::random_values(c.channels, 104, -1, 1);
    Operand dyo = place(dy, dt, 7);
    for (bool accumulate : {false, true}) {
        Operand dbo = place(start, DType::f32, 2);
        run([&](rt::Sequence& seq) {
            vktrain::kernels::record_channel_bias_grad(dev, seq, dyo.ref(), dbo.ref(), c.outer, c.channels, c.inner,
                                                       accumulate);
        });
        // fp32 accumulation of m = outer·inner exact values in any fixed order: at most (m + 1)·2^-24·Σ|dy|,
        // and one more rounding when added to db.
        std::vector<double> ref(c.channels, 0.0), tol(c.channels, 0.0);
        for (size_t i = 0; i < n; ++i) {
            const size_t ch = (i / c.inner) % c.channels;
            ref[ch] += dy[i];
            tol[ch] += std::fabs(dy[i]);
        }
        const double m = double(c.outer) * c.inner;
        for (uint32_t ch = 0; ch < c.channels; ++ch) {
            tol[ch] = (m + 1) * k_u32 * tol[ch] + 1e-30;
            if (accumulate) {
                ref[ch] += start[ch];
                tol[ch] += k_u32 * std::fabs(ref[ch]);
            }
        }
        expect_close(dbo.values(), ref, tol, accumulate ? "db (accumulate)" : "db");
    }
    dyo.values();
}

const ChannelCase k_channel_cases[] = {
    {DType::f32, DType::f32, 3, 5, 63},  {DType::f16, DType::f16, 3, 5, 63},  {DType::f16, DType::f32, 3, 5, 63},
    {DType::f32, DType::f16, 2, 7, 1},   {DType::f32, DType::f32, 1, 1, 1},   {DType::f16, DType::f16, 37, 20, 1},
    {DType::f32, DType::f32, 300, 3, 1}, {DType::f32, DType::f32, 4, 17, 81}, {DType::f16, DType::f16, 2, 3, 1000}};
INSTANTIATE_TEST_SUITE_P(Shapes, ChannelBiasTest, testing::ValuesIn(k_channel_cases),
                         [](const auto& param_info) { return channel_name(param_info.param); });

// The reductions run in a fixed order: the same input gives the same bits on every run.
TEST(ChannelBiasGrad, Deterministic) {
    auto& dev = vkt_test::device();
    const uint32_t outer = 8, channels = 6, inner = 1000;
    Operand dyo = place(vkt_test::random_values(size_t(outer) * channels * inner, 105, -1, 1), DType::f32, 0);
    std::vector<float> first;
    for (int rep = 0; rep < 3; ++rep) {
        Operand dbo = place(std::vector<float>(channels, 0.0f), DType::f32, 0);
        run([&](rt::Sequence& seq) {
            vktrain::kernels::record_channel_bias_grad(dev, seq, dyo.ref(), dbo.ref(), outer, channels, inner);
        });
        const auto got = dbo.values();
        if (rep == 0)
            first = got;
        else
            EXPECT_EQ(std::memcmp(got.data(), first.data(), got.size() * 4), 0) << "run " << rep << " differs";
    }
}

// More channels than the 65535 workgroups one dispatch may have: the per-channel kernel and the column kernel
// loop over the rest.
TEST(ChannelBiasGrad, ChannelsBeyondTheWorkgroupLimit) {
    auto& dev = vkt_test::device();
    struct Case {
        uint32_t outer, channels, inner;
    };
    for (Case c : {Case{2, 70001, 2}}) {
        const size_t n = size_t(c.outer) * c.channels * c.inner;
        std::vector<float> dy(n);
        for (size_t i = 0; i < n; ++i) dy[i] = float(i % 7) - 3.0f + float(i / c.inner % c.channels % 5); // exact sums
        Operand dyo = place(dy, DType::f32, 1), dbo = place(std::vector<float>(c.channels, 5.0f), DType::f32, 2);
        run([&](rt::Sequence& seq) {
            vktrain::kernels::record_channel_bias_grad(dev, seq, dyo.ref(), dbo.ref(), c.outer, c.channels, c.inner);
        });
        std::vector<double> ref(c.channels, 0.0);
        for (size_t i = 0; i < n; ++i) ref[i / c.inner % c.channels] += dy[i];
        expect_close(dbo.values(), ref, std::vector<double>(c.channels, 0.0), "db " + std::to_string(c.channels));
    }
}

// ---- activations ----

// GELU (tanh approximation) in double, its derivative, and the size of the kernel's fp32 error.
constexpr double k_gelu_k0 = 0.79788456080286535588, k_gelu_k1 = 0.044715;
double two_u(double x) {
    return 2 * k_gelu_k0 * (x + k_gelu_k1 * x * x * x);
}
double gelu_ref(double x) {
    return 0.5 * x * (1 + std::tanh(0.5 * two_u(x)));
}
// Returns the derivative; *magnitude gets the sum of its terms' magnitudes (they cancel near x = -0.75).
double gelu_grad_ref(double x, double* magnitude = nullptr) {
    const double t = std::tanh(0.5 * two_u(x));
    const double a = 0.5 * (1 + t), b = 0.5 * x * (1 - t * t) * k_gelu_k0 * (1 + 3 * k_gelu_k1 * x * x);
    if (magnitude) *magnitude = std::fabs(a) + std::fabs(b);
    return a + b;
}
// The kernel evaluates x / (1 + exp(-2u)) with 2u clamped to +-80: exp's Vulkan error bound is 3 + 2|arg| ulp,
// and 2u itself carries a few ulps of relative error that exp amplifies by |2u|; a handful of roundings more.
// Where 2u is clamped the error is at most |x| e^-80 absolute.
double gelu_rel_error(double x) {
    return (12 + 6 * std::min(std::fabs(two_u(x)), 80.0)) * k_u32;
}
double gelu_clamp_error(double x) {
    return std::fabs(two_u(x)) >= 80 ? std::fabs(x) * 2e-35 : 0.0;
}

// Exact GELU x Phi(x) and its derivative Phi(x) + x phi(x), in double.
double normal_cdf(double x) {
    return 0.5 * std::erfc(-x / std::sqrt(2.0));
}
double normal_pdf(double x) {
    return std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
}
// The kernel's Phi: erfc from a fit with relative error < 1.2e-7 (2 units of 2^-24), a handful of fp32
// roundings in t = 1 / (1 + z/2) and the polynomial (amplified a few times through exp), and exp(-z^2) within
// Vulkan's bound of 3 + 2 |arg| ulp (an ulp is up to 2 units of 2^-24), z^2 = x^2 / 2.
double gelu_erf_rel_error(double x) {
    return (50 + 2 * x * x) * k_u32;
}

// SiLU x sigmoid(x) and its derivative s + x s (1 - s), in double.
double sigmoid(double x) {
    return 1 / (1 + std::exp(-x));
}
// The kernel forms sigmoid from exp(-|x|) (3 + 2 |x| ulp) and a division (2.5 ulp); an ulp is up to 2 units.
double silu_rel_error(double x) {
    return (16 + 4 * std::fabs(x)) * k_u32;
}

// Reference value, derivative, the magnitude of the derivative's terms (they cancel where it crosses 0), the
// kernel's relative error and its absolute error from clamping, for any activation.
struct ActRef {
    double y, grad, grad_magnitude, rel, clamp;
};
ActRef act_reference(Activation act, double x) {
    ActRef r{};
    switch (act) {
    case Activation::relu:
        r.y = x > 0 ? x : 0;
        r.grad = x > 0 ? 1 : 0;
        r.grad_magnitude = std::fabs(r.grad);
        break;
    case Activation::gelu:
        r.y = gelu_ref(x);
        r.grad = gelu_grad_ref(x, &r.grad_magnitude);
        r.rel = gelu_rel_error(x);
        r.clamp = gelu_clamp_error(x);
        break;
    case Activation::gelu_erf:
        r.y = x * normal_cdf(x);
        r.grad = normal_cdf(x) + x * normal_pdf(x);
        r.grad_magnitude = normal_cdf(x) + std::fabs(x * normal_pdf(x));
        r.rel = gelu_erf_rel_error(x);
        break;
    case Activation::silu: {
        const double s = sigmoid(x);
        r.y = x * s;
        r.grad = s + x * s * (1 - s);
        r.grad_magnitude = s + std::fabs(x * s * (1 - s));
        r.rel = silu_rel_error(x);
        break;
    }
    // PyTorch's piecewise-linear activations (their kinks: ActivationSpecial.VisionKinksMatchPyTorch). A product
    // and a division by 6 (2.5 ulp in GLSL), or one division and one addition for hardswish's derivative.
    case Activation::relu6:
        r.y = std::min(std::max(x, 0.0), 6.0);
        r.grad = x > 0 && x < 6 ? 1 : 0;
        r.grad_magnitude = r.grad;
        break;
    case Activation::hardswish:
        r.y = x * std::min(std::max(x + 3, 0.0), 6.0) / 6;
        r.grad = x < -3 ? 0 : x <= 3 ? x / 3 + 0.5 : 1;
        r.grad_magnitude = x < -3 ? 0 : x <= 3 ? std::fabs(x / 3) + 0.5 : 1;
        r.rel = 8 * k_u32;
        break;
    case Activation::hardsigmoid:
        r.y = std::min(std::max(x + 3, 0.0), 6.0) / 6;
        r.grad = x > -3 && x < 3 ? 1.0 / 6 : 0;
        r.grad_magnitude = r.grad;
        r.rel = 8 * k_u32;
        break;
    }
    return r;
}

const char* act_name(Activation a) {
    switch (a) {
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
    case Activation::gelu_erf: return "gelu_erf";
    case Activation::silu: return "silu";
    case Activation::relu6: return "relu6";
    case Activation::hardswish: return "hardswish";
    case Activation::hardsigmoid: return "hardsigmoid";
    }
    return "?";
}

struct ActCase {
    Activation act;
    DType in, out;
    Shape shape;
};

class ActivationTest : public testing::TestWithParam<ActCase> {};

TEST_P(ActivationTest, ForwardAndBackwardMatchReference) {
    const ActCase c = GetParam();
    if (c.in == DType::f16 || c.out == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const size_t n = size_t(c.shape.rows) * c.shape.cols;
    const auto x = vkt_test::round_through(vkt_test::random_values(n, 21 + c.shape.cols, -6, 6), c.in);
    const auto dy = vkt_test::round_through(vkt_test::random_values(n, 22 + c.shape.rows, -2, 2), c.in);
    Operand xo = place(x, c.in, 1), dyo = place(dy, c.in, 4);
    Operand yo = place(std::vector<float>(n, 5.0f), c.out, 6), dxo = place(std::vector<float>(n, 5.0f), c.out, 2);
    const Shape s = c.shape;
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_activation(dev, seq, c.act, xo.ref(s.rows, s.cols), yo.ref(s.rows, s.cols));
        vktrain::kernels::record_activation_backward(dev, seq, c.act, xo.ref(s.rows, s.cols), dyo.ref(s.rows, s.cols),
                                                     dxo.ref(s.rows, s.cols));
    });
    std::vector<double> y_ref(n), y_tol(n), dx_ref(n), dx_tol(n);
    for (size_t i = 0; i < n; ++i) {
        const double xv = x[i], g = dy[i];
        const ActRef r = act_reference(c.act, xv);
        // ReLU is exact in fp32 (rel = 0): only the store may round.
        y_ref[i] = r.y;
        dx_ref[i] = g * r.grad;
        y_tol[i] = (r.rel + unit(c.out)) * std::fabs(r.y) + r.clamp + floor_abs(c.out);
        dx_tol[i] =
            (r.rel + k_u32) * std::fabs(g) * r.grad_magnitude + unit(c.out) * std::fabs(dx_ref[i]) + floor_abs(c.out);
    }
    expect_close(yo.values(), y_ref, y_tol, "y");
    expect_close(dxo.values(), dx_ref, dx_tol, "dx");
    xo.values();
    dyo.values();
}

std::vector<ActCase> activation_cases() {
    const Shape shapes[] = {{1, 1}, {3, 7}, {37, 129}, {300, 301}};
    std::vector<ActCase> out;
    for (Activation a : {Activation::relu, Activation::gelu, Activation::gelu_erf, Activation::silu, Activation::relu6,
                         Activation::hardswish, Activation::hardsigmoid})
        for (auto [in, o] : {std::pair{DType::f32, DType::f32}, std::pair{DType::f16, DType::f16},
                             std::pair{DType::f16, DType::f32}, std::pair{DType::f32, DType::f16}})
            for (Shape s : shapes) out.push_back({a, in, o, s});
    return out;
}

INSTANTIATE_TEST_SUITE_P(All, ActivationTest, testing::ValuesIn(activation_cases()), [](const auto& param_info) {
    const ActCase& c = param_info.param;
    return std::string(act_name(c.act)) + "_" + name(c.in) + "_" + name(c.out) + "_" + shape_name(c.shape);
});

// The derivatives of the smooth activations (reference and kernel) against a central difference of the
// forward reference in double.
TEST(ActivationBackward, MatchesFiniteDifference) {
    auto& dev = vkt_test::device();
    for (Activation act : {Activation::gelu, Activation::gelu_erf, Activation::silu})
        for (DType dt : {DType::f32, DType::f16}) {
            if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
            std::vector<float> x;
            for (int i = -1000; i <= 1000; ++i) x.push_back(float(i) * 0.009f); // [-9, 9], through the kink
            x = vkt_test::round_through(x, dt);
            Operand xo = place(x, dt, 0), ones = place(std::vector<float>(x.size(), 1.0f), dt, 0);
            Operand dxo = place(std::vector<float>(x.size(), 0.0f), dt, 0);
            const auto n = uint32_t(x.size());
            run([&](rt::Sequence& seq) {
                vktrain::kernels::record_activation_backward(dev, seq, act, xo.ref(1, n), ones.ref(1, n),
                                                             dxo.ref(1, n));
            });
            const auto got = dxo.values();
            const double h = 1e-4; // truncation h^2/6 |f'''| < 1e-8, cancellation 1e-16 / h = 1e-12
            for (size_t i = 0; i < x.size(); ++i) {
                const double xv = x[i];
                const double fd = (act_reference(act, xv + h).y - act_reference(act, xv - h).y) / (2 * h);
                const ActRef r = act_reference(act, xv);
                ASSERT_NEAR(r.grad, fd, 1e-8) << act_name(act) << " reference derivative at x = " << xv;
                const double tol = (r.rel + unit(dt)) * r.grad_magnitude + floor_abs(dt) + 1e-8;
                ASSERT_NEAR(got[i], fd, tol) << act_name(act) << " " << name(dt) << " kernel derivative at x = " << xv;
            }
        }
}

// Exact GELU and SiLU far out in both tails (and through the range where exp(-x^2 / 2) or exp(-|x|)
// underflows): finite, and equal to the reference within the error model; the tails are exact zeros or
// values of subnormal size, never NaN.
TEST(ActivationSpecial, GeluErfAndSiluLargeInputs) {
    auto& dev = vkt_test::device();
    const std::vector<float> x = {-1e20f, -65504.0f, -1000.0f, -100.0f, -30.0f,  -14.5f,   -13.0f, -10.0f, -8.0f,
                                  -5.0f,  -3.0f,     -1e-3f,   0.0f,    1e-3f,   3.0f,     5.0f,   8.0f,   10.0f,
                                  13.0f,  14.5f,     30.0f,    100.0f,  1000.0f, 65504.0f, 1e20f};
    const auto n = uint32_t(x.size());
    for (Activation act : {Activation::gelu_erf, Activation::silu}) {
        Operand xo = place(x, DType::f32, 2), ones = place(std::vector<float>(n, 1.0f), DType::f32, 1);
        Operand yo = place(std::vector<float>(n, 5.0f), DType::f32, 3);
        Operand dxo = place(std::vector<float>(n, 5.0f), DType::f32, 4);
        run([&](rt::Sequence& seq) {
            vktrain::kernels::record_activation(dev, seq, act, xo.ref(), yo.ref());
            vktrain::kernels::record_activation_backward(dev, seq, act, xo.ref(), ones.ref(), dxo.ref());
        });
        const auto y = yo.values(), dx = dxo.values();
        for (uint32_t i = 0; i < n; ++i) {
            const double xv = x[i];
            const ActRef r = act_reference(act, xv);
            ASSERT_TRUE(std::isfinite(y[i]) && std::isfinite(dx[i]))
                << act_name(act) << "(" << xv << ") = " << y[i] << ", derivative " << dx[i];
            // The relative model where it is meaningful; beyond, values of fp32-subnormal size or exact zeros.
            const double rel = std::min(r.rel, 1e-4), tail = std::ldexp(1.0, -100);
            EXPECT_NEAR(y[i], r.y, rel * std::fabs(r.y) + tail) << act_name(act) << "(" << xv << ")";
            EXPECT_NEAR(dx[i], r.grad, rel * r.grad_magnitude + tail) << act_name(act) << "'(" << xv << ")";
        }
    }
}

// Non-finite inputs and huge magnitudes: no NaN from tanh-style overflow, ReLU propagates NaN.
TEST(ActivationSpecial, LargeAndNonFiniteInputs) {
    auto& dev = vkt_test::device();
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> x = {30.0f,    -30.0f,    1000.0f, -1000.0f, 1e20f, -1e20f,
                                  65504.0f, -65504.0f, inf,     -inf,     nan,   -0.0f};
    const auto n = uint32_t(x.size());
    Operand xo = place(x, DType::f32, 0), ones = place(std::vector<float>(n, 1.0f), DType::f32, 0);
    Operand gy = place(std::vector<float>(n, 0.0f), DType::f32, 0),
            gd = place(std::vector<float>(n, 0.0f), DType::f32, 0);
    Operand ry = place(std::vector<float>(n, 0.0f), DType::f32, 0),
            rd = place(std::vector<float>(n, 0.0f), DType::f32, 0);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_activation(dev, seq, Activation::gelu, xo.ref(1, n), gy.ref(1, n));
        vktrain::kernels::record_activation_backward(dev, seq, Activation::gelu, xo.ref(1, n), ones.ref(1, n),
                                                     gd.ref(1, n));
        vktrain::kernels::record_activation(dev, seq, Activation::relu, xo.ref(1, n), ry.ref(1, n));
        vktrain::kernels::record_activation_backward(dev, seq, Activation::relu, xo.ref(1, n), ones.ref(1, n),
                                                     rd.ref(1, n));
    });
    const auto g = gy.values(), dg = gd.values(), r = ry.values(), dr = rd.values();
    // Finite inputs: GELU(x) = max(x, 0) and GELU'(x) = [x > 0] to fp32 precision (up to the clamp's
    // |x| e^-80 for negative x).
    for (size_t i = 0; i < 8; ++i) {
        EXPECT_NEAR(g[i], x[i] > 0 ? x[i] : 0.0f, gelu_clamp_error(x[i])) << "gelu(" << x[i] << ")";
        EXPECT_NEAR(dg[i], x[i] > 0 ? 1.0f : 0.0f, 1e-30) << "gelu'(" << x[i] << ")";
    }
    EXPECT_EQ(g[8], inf);
    EXPECT_EQ(r[8], inf);
    EXPECT_EQ(r[9], 0.0f);
    EXPECT_TRUE(std::isnan(r[10])) << "relu(NaN) = " << r[10];
    EXPECT_EQ(dr[10], 0.0f);
    EXPECT_FALSE(std::signbit(r[11])) << "relu(-0) is +0";
    EXPECT_EQ(dr[11], 0.0f);
}

// ---- casts ----

uint32_t float_bits(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}

TEST(Cast, F32ToF16MatchesHostRoundingBitExactly) {
    VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> v = {0.0f,
                            -0.0f,
                            1.0f,
                            65504.0f,
                            65519.99f,
                            65520.0f,
                            -65520.0f,
                            1e6f,
                            -3.4e38f,
                            inf,
                            -inf,
                            std::ldexp(1.0f, -14),
                            std::ldexp(1.0f, -24),
                            std::ldexp(1.0f, -25),
                            std::ldexp(3.0f, -25),
                            std::ldexp(1.0f, -25) * 1.0001f,
                            std::ldexp(1023.5f, -24),
                            std::ldexp(2047.5f, -24),
                            1.0f + std::ldexp(1.0f, -11),
                            1.0f + std::ldexp(3.0f, -11),
                            1e-40f,
                            -1e-45f,
                            std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN()};
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> exponent(-30.0f, 17.0f);
    for (int i = 0; i < 200000; ++i) v.push_back((i & 1 ? -1.0f : 1.0f) * std::exp2(exponent(rng)));
    const auto n = uint32_t(v.size());
    Operand src = place(v, DType::f32, 3), dst = place(std::vector<float>(n, 0.0f), DType::f16, 5);
    run([&](rt::Sequence& seq) { vktrain::kernels::record_cast(dev, seq, src.ref(1, n), dst.ref(n, 1)); });
    dst.values(); // sentinels
    std::vector<uint16_t> got(n);
    dst.buffer.read(got.data(), size_t(n) * 2, 5 * 2);
    size_t bad = 0;
    for (uint32_t i = 0; i < n; ++i)
        if (got[i] != vktrain::float_to_half(v[i]) && bad++ < 5)
            ADD_FAILURE() << "cast(" << v[i] << " = 0x" << std::hex << float_bits(v[i]) << ") = 0x" << got[i]
                          << ", host 0x" << vktrain::float_to_half(v[i]) << std::dec;
    EXPECT_EQ(bad, 0u);
}

TEST(Cast, F16ToF32IsExactForEveryPattern) {
    VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
    rt::Buffer src(dev, all.size() * 2, rt::MemoryKind::readback, "test");
    src.write(all.data(), all.size() * 2);
    Operand dst = place(std::vector<float>(all.size(), 0.0f), DType::f32, 1);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_cast(dev, seq, MatRef{&src, DType::f16, 256, 256, 0}, dst.ref(1, 65536));
    });
    const auto got = dst.values();
    size_t bad = 0;
    for (uint32_t i = 0; i < 65536; ++i)
        if (float_bits(got[i]) != float_bits(vktrain::half_to_float(all[i])) && bad++ < 5)
            ADD_FAILURE() << "half 0x" << std::hex << i << " -> 0x" << float_bits(got[i]) << ", host 0x"
                          << float_bits(vktrain::half_to_float(all[i])) << std::dec;
    EXPECT_EQ(bad, 0u);
}

TEST(Cast, SameTypeIsACopy) {
    auto& dev = vkt_test::device();
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        const auto v = vkt_test::round_through(vkt_test::random_values(37 * 129, 31, -100, 100), dt);
        Operand src = place(v, dt, 2), dst = place(std::vector<float>(v.size(), 0.0f), dt, 9);
        run([&](rt::Sequence& seq) { vktrain::kernels::record_cast(dev, seq, src.ref(37, 129), dst.ref(129, 37)); });
        EXPECT_EQ(dst.values(), v) << name(dt);
    }
}

// ---- non-finite scan ----

// Scans `v` (at `offset`, `count` elements) and returns the flag, which starts at `initial`.
uint32_t scan(const std::vector<float>& v, DType dt, uint32_t offset, uint32_t count, uint32_t initial = 0) {
    auto& dev = vkt_test::device();
    rt::Buffer buf = vkt_test::make_buffer(v, dt);
    rt::Buffer flag = vkt_test::make_buffer_u32({initial});
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_nonfinite_scan(dev, seq, MatRef{&buf, dt, 1, count, offset}, flag);
    });
    return vkt_test::read_buffer_u32(flag, 1)[0];
}

TEST(NonfiniteScan, FindsInfAndNaNAnywhere) {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        const uint32_t n = (1u << 20) + 3; // ~1M elements: many workgroups, an odd tail
        auto v = vkt_test::random_values(n, 41, -65504.0f, 65504.0f);
        v[17] = 65504.0f; // the largest finite fp16 is not "non-finite"
        EXPECT_EQ(scan(v, dt, 0, n), 0u) << name(dt) << " clean";
        EXPECT_EQ(scan(v, dt, 0, n, 1), 1u) << name(dt) << ": the flag is never cleared";
        auto w = v;
        w[n - 1] = inf;
        EXPECT_EQ(scan(w, dt, 0, n), 1u) << name(dt) << " inf at the last element";
        EXPECT_EQ(scan(w, dt, 0, n - 1), 0u) << name(dt) << " inf just past the scanned range";
        w = v;
        w[n / 2] = nan;
        EXPECT_EQ(scan(w, dt, 0, n), 1u) << name(dt) << " NaN in the middle";
        w = v;
        w[0] = -inf;
        EXPECT_EQ(scan(w, dt, 0, n), 1u) << name(dt) << " -inf at the first element";
        EXPECT_EQ(scan(w, dt, 1, n - 1), 0u) << name(dt) << " -inf just before the offset";
        if (dt == DType::f16) { // 70000 is finite in fp32 but rounds to inf in fp16 storage
            w = v;
            w[1234] = 70000.0f;
            EXPECT_EQ(scan(w, dt, 0, n), 1u) << "fp16 inf from overflow";
        }
    }
}

// Grid-stride kernels get at most Device::element_group_cap() workgroups (a few per thread on CPU devices, 65535 on
// GPUs) but at most 256 elements per invocation, each invocation looping: with any cap, down to one workgroup, every
// element is visited exactly once.
TEST(ElementGroups, EveryCapVisitsEveryElementOnce) {
    auto& dev = vkt_test::device();
    const uint32_t saved = dev.element_group_cap();
    // 30001: one workgroup of 128 invocations can cover it (235 elements each); 100003: 782 workgroups without a cap,
    // at least 4 with one. Both with odd tails.
    for (uint32_t n : {30001u, 100003u}) {
        const auto v = vkt_test::random_values(n, 7, -100.0f, 100.0f);
        for (uint32_t cap : {1u, 3u, 16u, 65535u}) {
            dev.set_element_group_cap(cap);
            EXPECT_EQ(dev.element_group_cap(), cap);
            EXPECT_EQ(vktrain::kernels::element_groups(dev, n),
                      std::min<uint32_t>((n + 127) / 128, std::max<uint32_t>(cap, (n + 32767) / 32768)));
            auto w = v;
            w[n - 1] = std::numeric_limits<float>::infinity();
            EXPECT_EQ(scan(w, DType::f32, 0, n), 1u) << "cap " << cap << ": inf at the last element";
            EXPECT_EQ(scan(w, DType::f32, 0, n - 1), 0u) << "cap " << cap;
            // add(x, x, x) doubles each element: a second visit would quadruple it.
            Operand x = place(v, DType::f32, 2);
            run([&](rt::Sequence& seq) {
                vktrain::kernels::record_add(dev, seq, x.ref(1, n), x.ref(1, n), x.ref(1, n));
            });
            const auto got = x.values();
            size_t bad = 0;
            for (uint32_t i = 0; i < n; ++i) bad += got[i] != 2.0f * v[i];
            EXPECT_EQ(bad, 0u) << "n " << n << ", cap " << cap;
        }
    }
    dev.set_element_group_cap(saved);
}

// ---- argument checks ----

void expect_error(const std::function<void(rt::Sequence&)>& record, const std::string& fragment) {
    rt::Sequence seq(vkt_test::device());
    seq.begin();
    try {
        record(seq);
        ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    seq.end();
}

TEST(ElementwiseChecks, RejectMismatchedOperands) {
    auto& dev = vkt_test::device();
    rt::Buffer a = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer b = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    const MatRef m{&a, DType::f32, 4, 8, 0}, row{&b, DType::f32, 1, 8, 0};
    using namespace vktrain::kernels;
    expect_error([&](rt::Sequence& s) { record_bias_add(dev, s, m, MatRef{&b, DType::f32, 1, 7, 0}); }, "bias is 1x7");
    expect_error([&](rt::Sequence& s) { record_bias_add(dev, s, m, MatRef{&b, DType::f32, 8, 1, 0}); }, "expected 1x8");
    expect_error([&](rt::Sequence& s) { record_bias_grad(dev, s, m, MatRef{&b, DType::f16, 1, 8, 0}); }, "must be f32");
    expect_error(
        [&](rt::Sequence& s) {
            record_activation(dev, s, Activation::relu, m, MatRef{&b, DType::f32, 8, 4, 0});
        },
        "y is 8x4");
    expect_error([&](rt::Sequence& s) { record_cast(dev, s, m, MatRef{&b, DType::f32, 5, 8, 0}); }, "40");
    expect_error([&](rt::Sequence& s) { record_cast(dev, s, m, MatRef{&b, DType::f32, 4, 8, 40}); }, "overruns");
    expect_error(
        [&](rt::Sequence& s) {
            record_bias_add(dev, s, MatRef{nullptr, DType::f32, 4, 8, 0}, row);
        },
        "no buffer");
    expect_error(
        [&](rt::Sequence& s) {
            record_channel_bias_add(dev, s, m, MatRef{&b, DType::f32, 1, 7, 0}, 4, 8, 1);
        },
        "bias has 7 elements");
    expect_error([&](rt::Sequence& s) { record_channel_bias_grad(dev, s, m, row, 2, 8, 3); }, "dy has 32 elements");
    expect_error(
        [&](rt::Sequence& s) {
            record_channel_bias_add(dev, s, m, MatRef{&a, DType::f32, 1, 8, 8}, 4, 8, 1);
        },
        "bias overlaps y");
    if (vkt_test::context().fp16_available()) {
        expect_error(
            [&](rt::Sequence& s) {
                record_activation_backward(dev, s, Activation::gelu, m, MatRef{&b, DType::f16, 4, 8, 0}, m);
            },
            "share a type");
    }
    // Empty problems record nothing and are not errors.
    rt::Sequence seq(dev);
    seq.begin();
    record_activation(dev, seq, Activation::gelu, MatRef{&a, DType::f32, 0, 8, 0}, MatRef{&b, DType::f32, 0, 8, 0});
    record_nonfinite_scan(dev, seq, MatRef{&a, DType::f32, 0, 0, 0}, b);
    seq.end();
    EXPECT_EQ(seq.dispatch_count(), 0u);
}

} // namespace
