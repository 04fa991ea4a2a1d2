// Element-wise kernels (bias add and gradient, ReLU/GELU forward and backward, casts, the non-finite scan)
// against double-precision CPU references fed the same (fp16-rounded) inputs, in fp32 and fp16, on odd
// shapes, with every operand at a non-zero offset between sentinels that must survive untouched.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <tuple>

#include "device/support.hpp"
#include "kernels/elementwise.hpp"

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

// An operand `offset` elements into its buffer, with sentinels before and after it.
constexpr float k_sentinel = -7.25f; // exact in fp16
constexpr uint32_t k_tail = 5;
struct Operand {
    rt::Buffer buffer;
    DType dtype;
    uint32_t offset;
    size_t count;

    MatRef ref(uint32_t rows, uint32_t cols) const { return MatRef{&buffer, dtype, rows, cols, offset}; }
    std::vector<float> values() const {
        const auto all = vkt_test::read_buffer(buffer, dtype, offset + count + k_tail);
        for (size_t i = 0; i < all.size(); ++i)
            if (i < offset || i >= offset + count) {
                EXPECT_EQ(all[i], k_sentinel) << "sentinel " << i << " overwritten";
            }
        return std::vector<float>(all.begin() + offset, all.begin() + long(offset + count));
    }
};

Operand place(const std::vector<float>& v, DType dtype, uint32_t offset) {
    std::vector<float> all(offset, k_sentinel);
    all.insert(all.end(), v.begin(), v.end());
    all.insert(all.end(), k_tail, k_sentinel);
    return Operand{vkt_test::make_buffer(all, dtype), dtype, offset, v.size()};
}

void run(const std::function<void(rt::Sequence&)>& record) {
    rt::Sequence seq(vkt_test::device());
    seq.begin();
    record(seq);
    seq.end();
    seq.submit_and_wait();
}

// Compares got[i] with ref[i] within tol[i]; reports the first few misses.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& tol,
                  const std::string& what) {
    size_t bad = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double err = std::fabs(double(got[i]) - ref[i]);
        if (!(err <= tol[i]) && bad++ < 5)
            ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", reference " << ref[i] << ", error " << err
                          << " > tolerance " << tol[i];
    }
    EXPECT_EQ(bad, 0u) << what;
}

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
        if (c.act == Activation::relu) { // exact in fp32: only the store may round
            y_ref[i] = xv > 0 ? xv : 0;
            dx_ref[i] = xv > 0 ? g : 0;
            y_tol[i] = unit(c.out) * std::fabs(y_ref[i]);
            dx_tol[i] = unit(c.out) * std::fabs(dx_ref[i]);
        } else {
            double mag = 0;
            y_ref[i] = gelu_ref(xv);
            dx_ref[i] = g * gelu_grad_ref(xv, &mag);
            const double rel = gelu_rel_error(xv);
            y_tol[i] = (rel + unit(c.out)) * std::fabs(y_ref[i]) + gelu_clamp_error(xv) + floor_abs(c.out);
            dx_tol[i] = (rel + k_u32) * std::fabs(g) * mag + unit(c.out) * std::fabs(dx_ref[i]) + floor_abs(c.out);
        }
    }
    expect_close(yo.values(), y_ref, y_tol, "y");
    expect_close(dxo.values(), dx_ref, dx_tol, "dx");
    xo.values();
    dyo.values();
}

std::vector<ActCase> activation_cases() {
    const Shape shapes[] = {{1, 1}, {3, 7}, {37, 129}, {300, 301}};
    std::vector<ActCase> out;
    for (Activation a : {Activation::relu, Activation::gelu})
        for (auto [in, o] : {std::pair{DType::f32, DType::f32}, std::pair{DType::f16, DType::f16},
                             std::pair{DType::f16, DType::f32}, std::pair{DType::f32, DType::f16}})
            for (Shape s : shapes) out.push_back({a, in, o, s});
    return out;
}

INSTANTIATE_TEST_SUITE_P(All, ActivationTest, testing::ValuesIn(activation_cases()), [](const auto& param_info) {
    const ActCase& c = param_info.param;
    return std::string(c.act == Activation::relu ? "relu_" : "gelu_") + name(c.in) + "_" + name(c.out) + "_" +
           shape_name(c.shape);
});

// The GELU derivative (reference and kernel) against a central difference of the forward in double.
TEST(GeluBackward, MatchesFiniteDifference) {
    auto& dev = vkt_test::device();
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        std::vector<float> x;
        for (int i = -1000; i <= 1000; ++i) x.push_back(float(i) * 0.009f); // [-9, 9], through the kink region
        x = vkt_test::round_through(x, dt);
        Operand xo = place(x, dt, 0), ones = place(std::vector<float>(x.size(), 1.0f), dt, 0);
        Operand dxo = place(std::vector<float>(x.size(), 0.0f), dt, 0);
        const auto n = uint32_t(x.size());
        run([&](rt::Sequence& seq) {
            vktrain::kernels::record_activation_backward(dev, seq, Activation::gelu, xo.ref(1, n), ones.ref(1, n),
                                                         dxo.ref(1, n));
        });
        const auto got = dxo.values();
        const double h = 1e-4; // truncation h^2/6 |gelu'''| < 1e-8, cancellation 1e-16 / h = 1e-12
        for (size_t i = 0; i < x.size(); ++i) {
            const double xv = x[i], fd = (gelu_ref(xv + h) - gelu_ref(xv - h)) / (2 * h);
            double mag = 0;
            const double analytic = gelu_grad_ref(xv, &mag);
            ASSERT_NEAR(analytic, fd, 1e-8) << "reference derivative at x = " << xv;
            const double tol = (gelu_rel_error(xv) + unit(dt)) * mag + floor_abs(dt) + 1e-8;
            ASSERT_NEAR(got[i], fd, tol) << name(dt) << " kernel derivative at x = " << xv;
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
    if (vkt_test::context().fp16_available()) {
        expect_error([&](rt::Sequence& s) { record_bias_add(dev, s, m, MatRef{&b, DType::f16, 1, 8, 0}); }, "f16");
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
