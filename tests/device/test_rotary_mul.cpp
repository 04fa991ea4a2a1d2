// Llama's ops (issue 23) against CPU references: rotary position embeddings (src/kernels/rotary.cpp) checked against a
// direct transcription of transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb (inv_freq = 1 / theta^(2i/D) in
// fp32, angles t·inv_freq in fp32, cos/sin of cat(freqs, freqs), q·cos + rotate_half(q)·sin), and the element-wise
// product. Kernels: forward, in place, the inverse rotation with and without accumulation, a round trip, fp32 and
// fp16 storage, several heads, D = 8 and 16, theta 10000 and 500000, and long sequences (angles in the thousands of
// radians). Then both ops through the Model API and a Trainer: predict() and the weight gradients of
// linear -> op -> MSE against the same references, in fp32 and mixed precision.
#include <cmath>
#include <string>

#include "device/support.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/rotary.hpp"
#include "vktrain/model.hpp"

namespace {

using vkt_test::floor_abs;
using vkt_test::place;
using vkt_test::Placed;
using vkt_test::run;
using vkt_test::unit;
using vktrain::kernels::DType;
using vktrain::kernels::RotaryShape;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);

// ---- the reference: transformers' formulas, literally ----

// inv_freq[i] = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), all in fp32.
std::vector<float> inv_freq(uint32_t d, float theta) {
    std::vector<float> f(d / 2);
    for (uint32_t i = 0; i < d / 2; ++i) f[i] = 1.0f / std::pow(theta, float(2 * i) / float(d));
    return f;
}

struct RotaryRef {
    std::vector<double> y;     // the rotated values
    std::vector<double> tol;   // per element: what fp32 angles and cos/sin may differ by, plus out's rounding
    std::vector<double> angle; // per element: its angle (for messages)
};

// y = x·cos + rotate_half(x)·sin per row (position t = row % positions) and head, with cos = cat(cos(freqs),
// cos(freqs)), rotate_half(x) = cat(-x2, x1); sign -1: the inverse rotation (sin negated). `base` is added (the
// accumulating backward). Tolerance: the device forms inv_freq through exp2 (shaders/rotary.comp: within a few ulp
// of pow's value on any conformant driver), so t·f may differ by up to ~8 ulp of itself, except for i = 0 (f = 1, the
// angle t is exact: this checks the shader's cos/sin to ~4 ulp even at thousands of radians); then the result is
// rounded to `out`.
RotaryRef rotary_reference(const std::vector<float>& x, const RotaryShape& s, double sign, DType out,
                           const std::vector<float>* base = nullptr) {
    const uint32_t d = s.head_size, h = d / 2, width = s.heads * d;
    const std::vector<float> f = inv_freq(d, s.theta);
    RotaryRef r;
    r.y.resize(x.size());
    r.tol.resize(x.size());
    r.angle.resize(x.size());
    for (size_t row = 0; row < x.size() / width; ++row) {
        const float t = float(row % s.positions);
        for (uint32_t head = 0; head < s.heads; ++head) {
            const float* q = x.data() + row * width + head * d;
            for (uint32_t j = 0; j < d; ++j) {
                const float a = t * f[j % h]; // emb = cat(freqs, freqs); freqs = t · inv_freq in fp32
                const double c = std::cos(double(a)), sn = sign * std::sin(double(a));
                const double rot = j < h ? -double(q[j + h]) : double(q[j - h]); // rotate_half
                const size_t e = row * width + head * d + j;
                const double b = base ? double((*base)[e]) : 0.0;
                r.y[e] = double(q[j]) * c + rot * sn + b;
                const double amp = std::fabs(q[j]) + std::fabs(rot);
                // i = 0: f = 1 exactly on both sides, so the angle is t exactly and only cos/sin may differ.
                const double angle_err = j % h == 0 ? 0.0 : 8 * k_u32 * (1 + double(a));
                r.tol[e] = amp * (angle_err + 4 * k_u32) + 2 * k_u32 * std::fabs(b) + unit(out) * std::fabs(r.y[e]) +
                           floor_abs(out);
                r.angle[e] = a;
            }
        }
    }
    return r;
}

// Element e's rotation partner (i <-> i + D/2 within its head) in rows of heads·D.
size_t partner(size_t e, uint32_t head_size) {
    const size_t j = e % head_size, h = head_size / 2;
    return j < h ? e + h : e - h;
}

struct RotaryCase {
    DType dtype;
    uint32_t batch, positions, heads, head_size;
    float theta;
};

std::string case_name(const RotaryCase& k) {
    return std::string(vktrain::kernels::dtype_name(k.dtype)) + "_b" + std::to_string(k.batch) + "_t" +
           std::to_string(k.positions) + "_h" + std::to_string(k.heads) + "_d" + std::to_string(k.head_size) +
           "_theta" + std::to_string(int64_t(k.theta));
}

class RotaryKernel : public testing::TestWithParam<RotaryCase> {
protected:
    RotaryShape shape() const {
        const RotaryCase& k = GetParam();
        return RotaryShape{k.positions, k.heads, k.head_size, k.theta};
    }
    uint32_t rows() const { return GetParam().batch * GetParam().positions; }
    uint32_t width() const { return GetParam().heads * GetParam().head_size; }
    std::vector<float> input(uint32_t seed) const {
        return vkt_test::round_through(vkt_test::random_values(size_t(rows()) * width(), seed, -2, 2),
                                       GetParam().dtype);
    }
};

TEST_P(RotaryKernel, ForwardMatchesTransformers) {
    const DType dt = GetParam().dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    const auto x = input(601);
    Placed xo = place(x, dt, 3), yo = place(std::vector<float>(x.size(), 5.0f), dt, 7);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_rotary(vkt_test::device(), seq, shape(), xo.ref(rows(), width()),
                                        yo.ref(rows(), width()));
    });
    const RotaryRef ref = rotary_reference(x, shape(), 1.0, dt);
    vkt_test::expect_close(yo.values(), ref.y, ref.tol, "y");
    vkt_test::expect_close(xo.values(), std::vector<double>(x.begin(), x.end()), std::vector<double>(x.size(), 0.0),
                           "x (unchanged)");
}

// In place: out is x's own view (the planner reuses a dying input's bytes).
TEST_P(RotaryKernel, InPlace) {
    const DType dt = GetParam().dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    const auto x = input(602);
    Placed xo = place(x, dt, 5);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_rotary(vkt_test::device(), seq, shape(), xo.ref(rows(), width()),
                                        xo.ref(rows(), width()));
    });
    const RotaryRef ref = rotary_reference(x, shape(), 1.0, dt);
    vkt_test::expect_close(xo.values(), ref.y, ref.tol, "y (in place)");
}

// The backward: dx = the inverse rotation of dy, overwritten, then accumulated onto what dx holds.
TEST_P(RotaryKernel, InverseOverwritesAndAccumulates) {
    const DType dt = GetParam().dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    const auto dy = input(603), held = input(604);
    Placed dyo = place(dy, dt, 1), dxo = place(std::vector<float>(dy.size(), 5.0f), dt, 2), acc = place(held, dt, 6);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_rotary(vkt_test::device(), seq, shape(), dyo.ref(rows(), width()),
                                        dxo.ref(rows(), width()), true, false);
        vktrain::kernels::record_rotary(vkt_test::device(), seq, shape(), dyo.ref(rows(), width()),
                                        acc.ref(rows(), width()), true, true);
    });
    const RotaryRef ref = rotary_reference(dy, shape(), -1.0, dt);
    vkt_test::expect_close(dxo.values(), ref.y, ref.tol, "dx");
    const RotaryRef acc_ref = rotary_reference(dy, shape(), -1.0, dt, &held);
    vkt_test::expect_close(acc.values(), acc_ref.y, acc_ref.tol, "dx (accumulated)");
}

// Forward then inverse gives x back (to the rounding of two rotations).
TEST_P(RotaryKernel, InverseUndoesForward) {
    const DType dt = GetParam().dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    const auto x = input(605);
    Placed xo = place(x, dt, 0), yo = place(std::vector<float>(x.size(), 0.0f), dt, 0);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_rotary(vkt_test::device(), seq, shape(), xo.ref(rows(), width()),
                                        yo.ref(rows(), width()));
        vktrain::kernels::record_rotary(vkt_test::device(), seq, shape(), yo.ref(rows(), width()),
                                        yo.ref(rows(), width()), true);
    });
    std::vector<double> tol(x.size());
    for (size_t i = 0; i < x.size(); ++i) tol[i] = 4 * (unit(dt) + 8 * k_u32) * 2.0 + 2 * floor_abs(dt);
    vkt_test::expect_close(yo.values(), std::vector<double>(x.begin(), x.end()), tol, "x after both rotations");
}

const RotaryCase k_rotary_cases[] = {
    {DType::f32, 2, 5, 3, 8, 10000.0f},     {DType::f32, 2, 7, 2, 16, 500000.0f},  {DType::f32, 3, 6, 4, 16, 10000.0f},
    {DType::f32, 1, 9, 1, 8, 500000.0f},    {DType::f16, 2, 5, 3, 8, 10000.0f},    {DType::f16, 3, 6, 4, 16, 500000.0f},
    {DType::f32, 2, 3000, 1, 16, 10000.0f},                                        // angles up to 2999 rad
    {DType::f16, 1, 2500, 2, 8, 500000.0f}, {DType::f32, 2, 33, 2, 64, 500000.0f}, // Llama's head sizes
    {DType::f16, 1, 17, 3, 128, 10000.0f},
};
INSTANTIATE_TEST_SUITE_P(All, RotaryKernel, testing::ValuesIn(k_rotary_cases),
                         [](const testing::TestParamInfo<RotaryCase>& i) { return case_name(i.param); });

TEST(RotaryChecks, RejectBadOperands) {
    const auto x = vkt_test::random_values(48, 606);
    Placed xo = place(x, DType::f32, 0), yo = place(x, DType::f32, 0);
    const auto error_of = [&](const RotaryShape& s) {
        try {
            run([&](rt::Sequence& seq) {
                vktrain::kernels::record_rotary(vkt_test::device(), seq, s, xo.ref(4, 12), yo.ref(4, 12));
            });
        } catch (const vktrain::Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(error_of({4, 4, 3, 1e4f}).find("head size 3 is not a positive even number"), std::string::npos);
    EXPECT_NE(error_of({4, 2, 6, 0.0f}).find("theta 0 is not a positive number"), std::string::npos);
    EXPECT_NE(error_of({5, 2, 6, 1e4f}).find("not whole samples of 5 rows of 12"), std::string::npos);
    EXPECT_NE(error_of({4, 2, 8, 1e4f}).find("not whole samples"), std::string::npos);
}

// ---- mul ----

TEST(MulKernel, ProductInEveryStorageType) {
    const auto a = vkt_test::random_values(301, 607, -3, 3), b = vkt_test::random_values(301, 608, -3, 3);
    for (DType in : {DType::f32, DType::f16}) {
        if (in == DType::f16 && !vkt_test::context().fp16_available()) continue;
        for (DType out : {DType::f32, DType::f16}) {
            if (out == DType::f16 && !vkt_test::context().fp16_available()) continue;
            const auto ar = vkt_test::round_through(a, in), br = vkt_test::round_through(b, in);
            Placed ao = place(ar, in, 1), bo = place(br, in, 2), yo = place(std::vector<float>(a.size(), 5), out, 3);
            Placed io = place(ar, in, 4); // in place: out = a's view
            run([&](rt::Sequence& seq) {
                vktrain::kernels::record_mul(vkt_test::device(), seq, ao.ref(), bo.ref(), yo.ref());
                if (in == out) vktrain::kernels::record_mul(vkt_test::device(), seq, io.ref(), bo.ref(), io.ref());
            });
            std::vector<double> ref(a.size()), tol(a.size());
            for (size_t i = 0; i < a.size(); ++i) {
                ref[i] = double(ar[i]) * double(br[i]);
                tol[i] = (unit(out) + k_u32) * std::fabs(ref[i]) + floor_abs(out);
            }
            const std::string what = std::string("mul ") + dtype_name(in) + " -> " + dtype_name(out);
            vkt_test::expect_close(yo.values(), ref, tol, what);
            if (in == out) vkt_test::expect_close(io.values(), ref, tol, what + " (in place)");
        }
    }
}

// ---- through a Trainer ----

// x [T, C] -> linear(C, no bias) -> rotary(heads, theta) -> MSE against a target: predict() gives the rotated z and
// the weight gradient is dz^T·x summed over rows, with dz the inverse rotation of dy = 2 (y - target) / elements.
struct TrainerCase {
    vktrain::Precision precision;
    uint32_t heads, head_size;
    float theta;
};

void check_rotary_trainer(const TrainerCase& k) {
    constexpr uint32_t n = 3, positions = 6;
    const uint32_t c = k.heads * k.head_size;
    vktrain::Model m;
    const int x = m.input("x", {positions, c});
    m.mse_loss(m.rotary(m.linear(x, c, false), k.heads, k.theta), m.input("target", {positions, c}));
    vktrain::TrainerOptions o;
    o.precision = k.precision;
    o.batch_size = n;
    vktrain::Trainer t(vkt_test::context(), m, o);
    const DType dt = k.precision == vktrain::Precision::mixed ? DType::f16 : DType::f32;
    auto params = t.parameters();
    params[0].data = vkt_test::random_values(size_t(c) * c, 611, -0.5f, 0.5f);
    t.set_parameters(params);

    const uint32_t rows = n * positions;
    const auto xs = vkt_test::random_values(size_t(rows) * c, 612, -1, 1);
    const auto target = vkt_test::random_values(size_t(rows) * c, 613, -1, 1);
    const auto got_y = t.predict({xs.data(), target.data()}, n);
    std::vector<std::vector<float>> grads;
    t.compute_gradients({xs.data(), target.data()}, n, grads);
    ASSERT_EQ(grads.size(), 1u);

    const auto xr = vkt_test::round_through(xs, dt), tr = vkt_test::round_through(target, dt);
    const auto w = vkt_test::round_through(params[0].data, dt);
    // z = x·Wᵀ as the device stores it (rounded to the storage type), then the reference rotation of it.
    std::vector<float> z(size_t(rows) * c);
    std::vector<double> z_abs(z.size());
    for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t o2 = 0; o2 < c; ++o2) {
            double s = 0, sa = 0;
            for (uint32_t i = 0; i < c; ++i) {
                s += double(xr[r * c + i]) * w[o2 * c + i];
                sa += std::fabs(double(xr[r * c + i]) * w[o2 * c + i]);
            }
            z[r * c + o2] = dt == DType::f16 ? vktrain::round_to_half(float(s)) : float(s);
            z_abs[r * c + o2] = sa;
        }
    const RotaryShape shape{positions, k.heads, k.head_size, k.theta};
    RotaryRef y = rotary_reference(z, shape, 1.0, dt);
    // z itself may differ: the GEMM's fp32 sums, and (fp16) a rounding on the other side of a boundary.
    for (size_t i = 0; i < z.size(); ++i)
        y.tol[i] += 2 * (unit(dt) + (c + 2) * k_u32) * (z_abs[i] + z_abs[partner(i, k.head_size)]);
    vkt_test::expect_close(got_y, y.y, y.tol, "y (predict)");

    const double elements = double(rows) * c;
    std::vector<float> dy(z.size());
    for (size_t i = 0; i < z.size(); ++i) dy[i] = float(2 * (y.y[i] - tr[i]) / elements);
    const RotaryRef dz = rotary_reference(dy, shape, -1.0, DType::f32);
    std::vector<double> dw(size_t(c) * c, 0.0), dw_tol(dw.size(), 0.0);
    for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t o2 = 0; o2 < c; ++o2) {
            // dy's error: y's (its tolerance) and the loss gradient's rounding into the storage type.
            const size_t e = size_t(r) * c + o2;
            const double dz_err =
                2 * (y.tol[e] + y.tol[partner(e, k.head_size)]) / elements +
                (2 * unit(dt) + 8 * k_u32) * (std::fabs(dy[e]) + std::fabs(dy[partner(e, k.head_size)]) + 1e-6);
            for (uint32_t i = 0; i < c; ++i) {
                dw[o2 * c + i] += dz.y[r * c + o2] * xr[r * c + i];
                dw_tol[o2 * c + i] += dz_err * std::fabs(xr[r * c + i]) + 32 * k_u32 * std::fabs(dz.y[r * c + o2]);
            }
        }
    vkt_test::expect_close(grads[0], dw, dw_tol, params[0].name + " gradient");
}

class RotaryTrainer : public testing::TestWithParam<TrainerCase> {};

TEST_P(RotaryTrainer, PredictAndGradientMatchReference) {
    if (GetParam().precision == vktrain::Precision::mixed) VKT_REQUIRE_FP16();
    check_rotary_trainer(GetParam());
}

const TrainerCase k_trainer_cases[] = {
    {vktrain::Precision::fp32, 2, 8, 10000.0f},
    {vktrain::Precision::fp32, 3, 16, 500000.0f},
    {vktrain::Precision::mixed, 2, 8, 10000.0f},
    {vktrain::Precision::mixed, 3, 16, 500000.0f},
};
INSTANTIATE_TEST_SUITE_P(All, RotaryTrainer, testing::ValuesIn(k_trainer_cases),
                         [](const testing::TestParamInfo<TrainerCase>& i) {
                             return std::string(i.param.precision == vktrain::Precision::mixed ? "mixed" : "fp32") +
                                    "_h" + std::to_string(i.param.heads) + "_d" + std::to_string(i.param.head_size) +
                                    "_theta" + std::to_string(int64_t(i.param.theta));
                         });

// SwiGLU's shape: x -> a = linear(x), b = linear(x) -> a·b -> MSE: dW_a = (dy·b)ᵀ·x and dW_b = (dy·a)ᵀ·x.
void check_mul_trainer(vktrain::Precision precision) {
    constexpr uint32_t n = 4, c = 6, h = 10;
    vktrain::Model m;
    const int x = m.input("x", {c});
    m.mse_loss(m.mul(m.linear(x, h, false), m.linear(x, h, false)), m.input("target", {h}));
    vktrain::TrainerOptions o;
    o.precision = precision;
    o.batch_size = n;
    vktrain::Trainer t(vkt_test::context(), m, o);
    const DType dt = precision == vktrain::Precision::mixed ? DType::f16 : DType::f32;
    auto params = t.parameters();
    params[0].data = vkt_test::random_values(size_t(h) * c, 621, -0.8f, 0.8f);
    params[1].data = vkt_test::random_values(size_t(h) * c, 622, -0.8f, 0.8f);
    t.set_parameters(params);
    const auto xs = vkt_test::random_values(size_t(n) * c, 623, -1, 1);
    const auto target = vkt_test::random_values(size_t(n) * h, 624, -0.5f, 0.5f);
    const auto got_y = t.predict({xs.data(), target.data()}, n);
    std::vector<std::vector<float>> grads;
    t.compute_gradients({xs.data(), target.data()}, n, grads);
    ASSERT_EQ(grads.size(), 2u);

    const auto xr = vkt_test::round_through(xs, dt), tr = vkt_test::round_through(target, dt);
    const auto wa = vkt_test::round_through(params[0].data, dt), wb = vkt_test::round_through(params[1].data, dt);
    const double elements = double(n) * h, tol_u = 4 * unit(dt) + 32 * k_u32;
    std::vector<double> y(size_t(n) * h), y_tol(y.size()), dwa(size_t(h) * c, 0), dwb(dwa.size(), 0),
        dwa_tol(dwa.size(), 0), dwb_tol(dwa.size(), 0);
    for (uint32_t r = 0; r < n; ++r)
        for (uint32_t o2 = 0; o2 < h; ++o2) {
            double a = 0, b = 0, aa = 0, ba = 0;
            for (uint32_t i = 0; i < c; ++i) {
                a += double(xr[r * c + i]) * wa[o2 * c + i];
                b += double(xr[r * c + i]) * wb[o2 * c + i];
                aa += std::fabs(double(xr[r * c + i]) * wa[o2 * c + i]);
                ba += std::fabs(double(xr[r * c + i]) * wb[o2 * c + i]);
            }
            const size_t e = size_t(r) * h + o2;
            y[e] = a * b;
            y_tol[e] = tol_u * (aa * std::fabs(b) + ba * std::fabs(a) + std::fabs(a * b)) + floor_abs(dt);
            const double dy = 2 * (y[e] - tr[e]) / elements;
            const double dy_err = 2 * y_tol[e] / elements + tol_u * (std::fabs(dy) + 1e-6);
            for (uint32_t i = 0; i < c; ++i) {
                dwa[o2 * c + i] += dy * b * xr[r * c + i];
                dwb[o2 * c + i] += dy * a * xr[r * c + i];
                dwa_tol[o2 * c + i] += (dy_err * std::fabs(b) + tol_u * ba * std::fabs(dy)) * std::fabs(xr[r * c + i]);
                dwb_tol[o2 * c + i] += (dy_err * std::fabs(a) + tol_u * aa * std::fabs(dy)) * std::fabs(xr[r * c + i]);
            }
        }
    vkt_test::expect_close(got_y, y, y_tol, "y (predict)");
    vkt_test::expect_close(grads[0], dwa, dwa_tol, params[0].name + " gradient");
    vkt_test::expect_close(grads[1], dwb, dwb_tol, params[1].name + " gradient");
}

TEST(MulTrainer, PredictAndGradientsFp32) {
    check_mul_trainer(vktrain::Precision::fp32);
}
TEST(MulTrainer, PredictAndGradientsMixed) {
    VKT_REQUIRE_FP16();
    check_mul_trainer(vktrain::Precision::mixed);
}

} // namespace

// ---- mixed precision through the graph, accumulation paths included ----

// The finite-difference examples of test_graph_ops.cpp (fp32 only) in both precisions: x -> linear -> [4, 16] ->
// add(rotary(x), x) (rotary's inverse accumulates into x's gradient, in fp16 storage in mixed precision), and
// mul(mul(x, x), linear(x)) (mul's second gradient onto the same value: a product into a temporary, then an add).
// Every parameter gradient of mixed precision is within fp16's reach of fp32's (relative L2).
void expect_mixed_matches_fp32(const vktrain::Model& m, uint32_t features, uint32_t classes) {
    constexpr uint32_t n = 4;
    const auto xs = vkt_test::random_values(size_t(n) * features, 631, -1, 1);
    std::vector<int32_t> labels(n);
    for (uint32_t i = 0; i < n; ++i) labels[i] = int32_t(i % classes);
    std::vector<std::vector<float>> grads[2];
    std::vector<vktrain::Parameter> params;
    for (int k = 0; k < 2; ++k) {
        vktrain::TrainerOptions o;
        o.precision = k == 0 ? vktrain::Precision::fp32 : vktrain::Precision::mixed;
        o.batch_size = n;
        o.seed = 5;
        vktrain::Trainer t(vkt_test::context(), m, o);
        if (k == 0) params = t.parameters();
        t.set_parameters(params); // the same weights in both (mixed rounds its device copies to fp16)
        t.compute_gradients({xs.data(), labels.data()}, n, grads[k]);
    }
    ASSERT_EQ(grads[0].size(), grads[1].size());
    for (size_t p = 0; p < grads[0].size(); ++p) {
        double diff = 0, norm = 0;
        for (size_t i = 0; i < grads[0][p].size(); ++i) {
            diff += std::pow(double(grads[1][p][i]) - grads[0][p][i], 2);
            norm += std::pow(double(grads[0][p][i]), 2);
        }
        EXPECT_GT(norm, 0.0) << params[p].name;
        EXPECT_LE(std::sqrt(diff), 1e-2 * std::sqrt(norm)) << params[p].name << " gradient, mixed against fp32";
    }
}

TEST(LlamaOpsMixed, RotaryAccumulatingBackwardMatchesFp32) {
    VKT_REQUIRE_FP16();
    vktrain::Model m;
    int x = m.linear(m.input("x", {64}), 64);
    x = m.reshape(x, {4, 16});
    x = m.add(m.rotary(x, 2, 100.0f), x);
    m.softmax_cross_entropy(m.linear(m.flatten(x), 3));
    expect_mixed_matches_fp32(m, 64, 3);
}

TEST(LlamaOpsMixed, MulAccumulatingBackwardMatchesFp32) {
    VKT_REQUIRE_FP16();
    vktrain::Model m;
    const int x = m.linear(m.input("x", {6}), 6);
    m.softmax_cross_entropy(m.linear(m.mul(m.mul(x, x), m.linear(x, 6)), 3));
    expect_mixed_matches_fp32(m, 6, 3);
}
