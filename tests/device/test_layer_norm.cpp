// LayerNorm and RMSNorm over the last dimension (src/kernels/layer_norm.cpp) against double-precision CPU
// references written from PyTorch's definitions (nn.LayerNorm: biased variance, y = (x - mean) / sqrt(var + eps)
// · weight + bias; nn.RMSNorm: y = x / sqrt(mean(x²) + eps) · weight), fed the same (fp16-rounded) inputs:
// forward with the saved statistics, input gradient and weight gradient with overwrite and accumulate, in fp32
// and fp16 storage, with and without the affine transform, on odd shapes (rows 13, cols 1, 7, 37, 300, rows
// beyond the 65535-workgroup limit, cols in the thousands), and on data with a large common offset
// (1000 + noise) whose fp32 statistics must keep the fp16 output within its own rounding. Every operand sits at
// a non-zero offset between sentinels. Then the ops through the Model API and a Trainer (parameters, JSON,
// argument checks, and the gradients of both precision paths).
#include <cmath>
#include <string>

#include "device/support.hpp"
#include "kernels/layer_norm.hpp"
#include "vktrain/model.hpp"

namespace {

using vkt_test::floor_abs;
using vkt_test::place;
using vkt_test::Placed;
using vkt_test::run;
using vkt_test::unit;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
using vktrain::kernels::NormKind;
using vktrain::kernels::RowNorm;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);

struct LnCase {
    DType dtype;
    NormKind kind;
    uint32_t rows, cols;
    bool affine;
    float offset = 0; // added to every x (LayerNorm: stability of the statistics away from zero)
    float noise = 1;  // x = offset + noise · U(-1, 1) · a per-row scale
};

std::string case_name(const LnCase& k) {
    return std::string(k.kind == NormKind::rms ? "rms_" : "layer_") + vktrain::kernels::dtype_name(k.dtype) + "_" +
           std::to_string(k.rows) + "x" + std::to_string(k.cols) + (k.affine ? "" : "_plain") +
           (k.offset != 0 ? "_offset" + std::to_string(int(k.offset)) : "");
}

// The rounding error, in units of 2^-24 times the sum of |terms|, of a row sum of m terms (norm_rows.glsl: a
// sequential chain of ceil(m / 64) per invocation, then a tree of depth 6), and of a column sum over m rows
// (layer_norm_weight_grad.comp: chains of ceil(m / 16), then 16 partial sums in order).
double row_chain(uint32_t m) {
    return double((m + 63) / 64 + 6 + 1);
}
double column_chain(uint32_t m) {
    return double((m + 15) / 16 + 16 + 1);
}

struct Inputs {
    std::vector<float> x, weight, bias;
};

Inputs make_inputs(const LnCase& k) {
    Inputs in;
    in.x = vkt_test::random_values(size_t(k.rows) * k.cols, 401 + k.cols, -1, 1);
    for (size_t i = 0; i < in.x.size(); ++i) {
        const size_t r = i / k.cols; // rows differ in spread and (LayerNorm) in mean
        in.x[i] = k.offset + k.noise * in.x[i] * (0.5f + 0.25f * float(r % 5)) +
                  (k.kind == NormKind::layer ? 0.3f * float(r % 3) : 0.0f);
    }
    in.x = vkt_test::round_through(in.x, k.dtype);
    in.weight = vkt_test::round_through(vkt_test::random_values(k.cols, 402, 0.5f, 1.5f), k.dtype);
    in.bias = vkt_test::round_through(vkt_test::random_values(k.cols, 403, -1, 1), k.dtype);
    return in;
}

// The exact statistics of row r: mean (0 for RMSNorm) and rstd, with the sums the tolerances need.
struct RowStats {
    double mean = 0, rstd = 0;
    double mean_tol = 0, rstd_rel = 0; // of the kernel's fp32 statistics
};

RowStats row_stats(const LnCase& k, const std::vector<float>& x, uint32_t r, float eps) {
    const float* row = x.data() + size_t(r) * k.cols;
    const uint32_t c = k.cols;
    RowStats s;
    if (k.kind == NormKind::rms) {
        double sq = 0;
        for (uint32_t j = 0; j < c; ++j) sq += double(row[j]) * row[j];
        const double ms = sq / c;
        s.rstd = 1 / std::sqrt(ms + eps);
        // Squares (1 rounding), the row sum, the division, + eps, inversesqrt (2 ulp).
        s.rstd_rel = 0.5 * (row_chain(c) + 4) * k_u32 * ms / (ms + eps) + 6 * k_u32;
        return s;
    }
    const double pivot = row[0];
    double sum = 0, spread = 0;
    for (uint32_t j = 0; j < c; ++j) {
        sum += row[j];
        spread += std::fabs(row[j] - pivot);
    }
    s.mean = sum / c;
    double sq = 0, cross = 0;
    for (uint32_t j = 0; j < c; ++j) {
        const double d = row[j] - s.mean;
        sq += d * d;
        cross += std::fabs(d) * std::fabs(row[j] - pivot);
    }
    const double var = sq / c;
    // The kernel sums x - pivot (each difference rounded once), divides by cols and adds the pivot back.
    const double shift_err = (row_chain(c) + 2) * k_u32 * spread / c;
    s.mean_tol = shift_err + k_u32 * std::fabs(s.mean);
    // Squares of ((x - pivot) - shift), each off by about 2^-24 (|x - pivot| + |d|) + shift_err.
    const double var_err = (row_chain(c) + 4) * k_u32 * var + 4 * k_u32 * cross / c + shift_err * shift_err;
    s.rstd = 1 / std::sqrt(var + eps);
    s.rstd_rel = 0.5 * var_err / (var + eps) + 6 * k_u32;
    return s;
}

float eps_of(const LnCase& k) {
    return k.kind == NormKind::rms ? 1e-6f : 1e-5f;
}

class LayerNormKernel : public testing::TestWithParam<LnCase> {};

TEST_P(LayerNormKernel, ForwardMatchesReference) {
    const LnCase k = GetParam();
    const DType dt = k.dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    const bool layer = k.kind == NormKind::layer;
    const Inputs in = make_inputs(k);
    const size_t count = in.x.size();
    const RowNorm shape{k.kind, k.rows, k.cols, eps_of(k)};

    Placed xo = place(in.x, dt, 3), wo = place(in.weight, dt, 1), bo = place(in.bias, dt, 2);
    Placed yo = place(std::vector<float>(count, 5.0f), dt, 4);
    Placed mo = place(std::vector<float>(k.rows, 5.0f), DType::f32, 5),
           ro = place(std::vector<float>(k.rows, 5.0f), DType::f32, 6);
    const MatRef w = wo.ref(), b = bo.ref(), m = mo.ref();
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_layer_norm(vkt_test::device(), seq, shape, xo.ref(k.rows, k.cols),
                                            k.affine ? &w : nullptr, k.affine && layer ? &b : nullptr, yo.ref(),
                                            layer ? &m : nullptr, ro.ref());
    });

    std::vector<double> mean(k.rows), mean_tol(k.rows), rstd(k.rows), rstd_tol(k.rows), y(count), y_tol(count);
    for (uint32_t r = 0; r < k.rows; ++r) {
        const RowStats s = row_stats(k, in.x, r, shape.eps);
        mean[r] = s.mean;
        mean_tol[r] = s.mean_tol;
        rstd[r] = s.rstd;
        rstd_tol[r] = s.rstd_rel * s.rstd;
        for (uint32_t j = 0; j < k.cols; ++j) {
            const size_t i = size_t(r) * k.cols + j;
            const double g = k.affine ? in.weight[j] : 1.0, beta = k.affine && layer ? in.bias[j] : 0.0;
            const double xc = in.x[i] - s.mean;
            y[i] = xc * s.rstd * g + beta;
            // x - mean (the mean off by mean_tol, the difference rounded), times rstd and the weight, plus the bias,
            // then one rounding into the storage type: with fp32 statistics the fp16 output is off by little more
            // than its own rounding, even for x = 1000 + noise.
            y_tol[i] = std::fabs(g) * s.rstd * (s.mean_tol + k_u32 * std::fabs(xc)) +
                       std::fabs(xc * s.rstd * g) * (s.rstd_rel + 3 * k_u32) +
                       k_u32 * (std::fabs(y[i]) + std::fabs(beta)) + unit(dt) * std::fabs(y[i]) + floor_abs(dt);
        }
    }
    if (layer) vkt_test::expect_close(mo.values(), mean, mean_tol, "mean");
    vkt_test::expect_close(ro.values(), rstd, rstd_tol, "rstd");
    vkt_test::expect_close(yo.values(), y, y_tol, "y");
    EXPECT_EQ(xo.values(), in.x);
    if (!layer) {
        EXPECT_EQ(mo.values(), std::vector<float>(k.rows, 5.0f)); // RMSNorm saves no mean
    }
}

TEST_P(LayerNormKernel, BackwardMatchesReference) {
    const LnCase k = GetParam();
    const DType dt = k.dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    const bool layer = k.kind == NormKind::layer;
    const Inputs in = make_inputs(k);
    const size_t count = in.x.size();
    const RowNorm shape{k.kind, k.rows, k.cols, eps_of(k)};
    const auto dy = vkt_test::round_through(vkt_test::random_values(count, 406 + k.cols, -1, 1), dt);
    const auto start = vkt_test::round_through(vkt_test::random_values(count, 407, -1, 1), dt);
    const auto dw_start = vkt_test::random_values(k.cols, 408, -1, 1);
    // The saved statistics as the forward pass would leave them: the exact row statistics rounded to fp32.
    std::vector<float> mean(k.rows), rstd(k.rows);
    for (uint32_t r = 0; r < k.rows; ++r) {
        const RowStats s = row_stats(k, in.x, r, shape.eps);
        mean[r] = float(s.mean);
        rstd[r] = float(s.rstd);
    }
    Placed xo = place(in.x, dt, 1), dyo = place(dy, dt, 2), wo = place(in.weight, dt, 3);
    Placed mo = place(mean, DType::f32, 4), ro = place(rstd, DType::f32, 5);
    Placed dxo = place(std::vector<float>(count, 5.0f), dt, 6), dxa = place(start, dt, 7);
    Placed dwo = place(std::vector<float>(k.cols, 5.0f), DType::f32, 1), dwa = place(dw_start, DType::f32, 2);
    const MatRef w = wo.ref(), m = mo.ref();
    const MatRef* weight = k.affine ? &w : nullptr;
    const MatRef* saved_mean = layer ? &m : nullptr;
    auto& dev = vkt_test::device();
    run([&](rt::Sequence& seq) {
        const MatRef x = xo.ref(k.rows, k.cols);
        vktrain::kernels::record_layer_norm_backward(dev, seq, shape, x, dyo.ref(), weight, saved_mean, ro.ref(),
                                                     dxo.ref());
        vktrain::kernels::record_layer_norm_backward(dev, seq, shape, x, dyo.ref(), weight, saved_mean, ro.ref(),
                                                     dxa.ref(), true);
        vktrain::kernels::record_layer_norm_weight_grad(dev, seq, shape, x, dyo.ref(), saved_mean, ro.ref(), dwo.ref());
        vktrain::kernels::record_layer_norm_weight_grad(dev, seq, shape, x, dyo.ref(), saved_mean, ro.ref(), dwa.ref(),
                                                        true);
    });

    std::vector<double> dx(count), dx_tol(count), dxa_ref(count), dxa_tol(count);
    std::vector<double> dw(k.cols, 0.0), dw_abs(k.cols, 0.0);
    for (uint32_t r = 0; r < k.rows; ++r) {
        const double mu = layer ? mean[r] : 0.0, rs = rstd[r];
        std::vector<double> g(k.cols), xhat(k.cols);
        double s_g = 0, s_gx = 0, a_g = 0, a_gx = 0;
        for (uint32_t j = 0; j < k.cols; ++j) {
            const size_t i = size_t(r) * k.cols + j;
            g[j] = double(dy[i]) * (k.affine ? in.weight[j] : 1.0);
            xhat[j] = (double(in.x[i]) - mu) * rs;
            s_g += g[j];
            s_gx += g[j] * xhat[j];
            a_g += std::fabs(g[j]);
            a_gx += std::fabs(g[j] * xhat[j]);
            dw[j] += dy[i] * xhat[j];
            dw_abs[j] += std::fabs(dy[i] * xhat[j]);
        }
        const double mg = layer ? s_g / k.cols : 0.0, mgx = s_gx / k.cols;
        const double mg_tol = layer ? (row_chain(k.cols) + 2) * k_u32 * a_g / k.cols : 0.0;
        const double mgx_tol = (row_chain(k.cols) + 5) * k_u32 * a_gx / k.cols;
        for (uint32_t j = 0; j < k.cols; ++j) {
            const size_t i = size_t(r) * k.cols + j;
            dx[i] = rs * (g[j] - mg - xhat[j] * mgx);
            const double terms = std::fabs(g[j]) + std::fabs(mg) + std::fabs(xhat[j] * mgx);
            const double err =
                rs * (5 * k_u32 * terms + mg_tol + std::fabs(xhat[j]) * mgx_tol) + 3 * k_u32 * std::fabs(dx[i]);
            dx_tol[i] = err + unit(dt) * std::fabs(dx[i]) + floor_abs(dt);
            dxa_ref[i] = dx[i] + start[i];
            dxa_tol[i] = err + k_u32 * std::fabs(dxa_ref[i]) + unit(dt) * std::fabs(dxa_ref[i]) + floor_abs(dt);
        }
    }
    std::vector<double> dw_tol(k.cols), dwa_ref(k.cols), dwa_tol(k.cols);
    for (uint32_t j = 0; j < k.cols; ++j) {
        dw_tol[j] = (column_chain(k.rows) + 4) * k_u32 * dw_abs[j] + 1e-30;
        dwa_ref[j] = dw[j] + dw_start[j];
        dwa_tol[j] = dw_tol[j] + k_u32 * std::fabs(dwa_ref[j]);
    }
    vkt_test::expect_close(dxo.values(), dx, dx_tol, "dx");
    vkt_test::expect_close(dxa.values(), dxa_ref, dxa_tol, "dx (accumulate)");
    vkt_test::expect_close(dwo.values(), dw, dw_tol, "dweight");
    vkt_test::expect_close(dwa.values(), dwa_ref, dwa_tol, "dweight (accumulate)");
    EXPECT_EQ(xo.values(), in.x);
    EXPECT_EQ(dyo.values(), dy);
}

const LnCase k_cases[] = {
    {DType::f32, NormKind::layer, 13, 1, true},
    {DType::f32, NormKind::layer, 13, 7, true},
    {DType::f32, NormKind::layer, 13, 37, true},
    {DType::f32, NormKind::layer, 13, 300, true},
    {DType::f32, NormKind::layer, 13, 37, false},
    {DType::f16, NormKind::layer, 13, 1, true},
    {DType::f16, NormKind::layer, 13, 7, true},
    {DType::f16, NormKind::layer, 13, 37, false},
    {DType::f16, NormKind::layer, 13, 300, true},
    // x = 1000 + noise: the fp16 grid there is 0.5, so the noise is wide; fp32 resolves a narrower spread.
    {DType::f32, NormKind::layer, 13, 300, true, 1000, 1},
    {DType::f16, NormKind::layer, 13, 300, true, 1000, 8},
    {DType::f16, NormKind::layer, 13, 37, false, 1000, 8},
    // More rows than workgroups (65535) and rows longer than the workgroup's 64 lanes many times over.
    {DType::f16, NormKind::layer, 70001, 3, true},
    {DType::f32, NormKind::layer, 3, 4099, true},
    {DType::f32, NormKind::rms, 13, 1, true},
    {DType::f32, NormKind::rms, 13, 7, true},
    {DType::f32, NormKind::rms, 13, 300, true},
    {DType::f32, NormKind::rms, 13, 37, false},
    {DType::f16, NormKind::rms, 13, 7, true},
    {DType::f16, NormKind::rms, 13, 300, true},
    {DType::f16, NormKind::rms, 70001, 3, true},
    {DType::f32, NormKind::rms, 3, 4099, true},
    // Rows the forward and backward keep in registers (up to 16 invocations x 16 elements) and the next longer,
    // read from memory again; a width of 768 (GPT-2 124M) in fp16; 1000 + noise across that boundary.
    {DType::f32, NormKind::layer, 5, 256, true},
    {DType::f32, NormKind::layer, 5, 257, true},
    {DType::f32, NormKind::layer, 13, 17, false},
    {DType::f16, NormKind::layer, 5, 768, true},
    {DType::f16, NormKind::rms, 5, 256, true},
    {DType::f32, NormKind::rms, 5, 257, true},
    {DType::f32, NormKind::layer, 5, 256, true, 1000, 1},
    {DType::f32, NormKind::layer, 5, 257, true, 1000, 1},
};
INSTANTIATE_TEST_SUITE_P(All, LayerNormKernel, testing::ValuesIn(k_cases),
                         [](const auto& param_info) { return case_name(param_info.param); });

TEST(LayerNormChecks, RejectBadOperands) {
    auto& dev = vkt_test::device();
    rt::Buffer a = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    rt::Buffer b = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    rt::Buffer s = vkt_test::make_buffer(std::vector<float>(128, 1.0f), DType::f32);
    const auto vec = [&](uint64_t offset, uint32_t n) { return MatRef{&s, DType::f32, 1, n, offset}; };
    const MatRef x{&a, DType::f32, 4, 32, 0}, y{&b, DType::f32, 4, 32, 0};
    const auto expect_error = [&](const RowNorm& shape, const MatRef& yy, const MatRef* mean, const MatRef* bias,
                                  const char* what) {
        rt::Sequence seq(dev);
        seq.begin();
        try {
            const MatRef w = vec(40, 32);
            vktrain::kernels::record_layer_norm(dev, seq, shape, x, &w, bias, yy, mean, vec(8, 4));
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        seq.end();
    };
    const MatRef mean = vec(0, 4), bias = vec(12, 32), overlapping = vec(6, 4);
    expect_error({NormKind::layer, 4, 31, 1e-5f}, y, &mean, &bias, "x has 128 elements");
    expect_error({NormKind::layer, 4, 32, -1.0f}, y, &mean, &bias, "eps");
    expect_error({NormKind::layer, 4, 32, 1e-5f}, y, &overlapping, &bias, "mean overlaps rstd");
    expect_error({NormKind::layer, 4, 32, 1e-5f}, MatRef{&a, DType::f32, 4, 32, 0}, &mean, &bias, "y overlaps x");
    expect_error({NormKind::layer, 4, 32, 1e-5f}, y, nullptr, &bias, "needs the per-row mean");
    expect_error({NormKind::layer, 4, 32, 1e-5f}, y, &mean, nullptr, "weight and bias go together");
    expect_error({NormKind::rms, 4, 32, 1e-5f}, y, nullptr, &bias, "RMSNorm has no bias");
    expect_error({NormKind::layer, 0, 0, 1e-5f}, MatRef{&b, DType::f32, 0, 0, 0}, &mean, &bias, "rows of 0");
}

// ---- through the Model API ----

TEST(LayerNormModel, ParametersNamesAndChecks) {
    vktrain::Model m;
    const int x = m.input("x", {3, 5});
    const int a = m.layer_norm(x);
    const int b = m.layer_norm(a, 1e-3f, false);
    const int c = m.rms_norm(b);
    EXPECT_EQ(m.nodes()[size_t(a)].name, "ln0");
    EXPECT_EQ(m.nodes()[size_t(b)].name, "ln1");
    EXPECT_EQ(m.nodes()[size_t(c)].name, "rms0");
    EXPECT_EQ(m.nodes()[size_t(c)].shape, (std::vector<int64_t>{3, 5}));
    const auto params = m.parameters();
    ASSERT_EQ(params.size(), 3u);
    EXPECT_EQ(params[0].name, "ln0.weight");
    EXPECT_EQ(params[0].init.kind, vktrain::InitKind::ones);
    EXPECT_EQ(params[1].name, "ln0.bias");
    EXPECT_EQ(params[1].init.kind, vktrain::InitKind::zeros);
    EXPECT_EQ(params[2].name, "rms0.weight");
    EXPECT_EQ(params[2].init.kind, vktrain::InitKind::ones);
    for (const auto& p : params) EXPECT_EQ(p.shape, (std::vector<int64_t>{5}));

    // JSON round trip: the same nodes, attributes and parameters; later builder calls continue the numbering.
    m.mse_loss(c, m.input("target", {3, 5}));
    vktrain::Model back = vktrain::Model::from_json(m.to_json());
    ASSERT_EQ(back.nodes().size(), m.nodes().size());
    for (size_t i = 0; i < m.nodes().size(); ++i) {
        EXPECT_EQ(back.nodes()[i].op, m.nodes()[i].op);
        EXPECT_EQ(back.nodes()[i].name, m.nodes()[i].name);
        EXPECT_EQ(back.nodes()[i].attrs, m.nodes()[i].attrs);
    }
    EXPECT_EQ(float(back.nodes()[size_t(b)].attrs.at("eps")), 1e-3f);
    EXPECT_EQ(back.parameters().size(), 3u);
    EXPECT_EQ(back.to_json(), m.to_json());

    const auto expect_error = [](const std::function<void()>& f, const char* what) {
        try {
            f();
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    vktrain::Model g;
    const int v = g.input("v", {4});
    const int s = g.input("s", {});
    const int l = g.input("labels", {4}, vktrain::DataType::i32);
    expect_error([&] { g.layer_norm(v, 0.0f); }, "layer_norm 'ln0': attribute 'eps' is 0; expected > 0");
    expect_error([&] { g.layer_norm(v, -1e-5f); }, "layer_norm 'ln0': attribute 'eps' is -1e-05; expected > 0");
    expect_error([&] { g.rms_norm(v, std::nanf("")); }, "rms_norm 'rms0': attribute 'eps' is not finite");
    expect_error([&] { g.rms_norm(v, INFINITY); }, "rms_norm 'rms0': attribute 'eps' is not finite");
    expect_error([&] { g.layer_norm(s); }, "is a scalar per sample");
    expect_error([&] { g.rms_norm(l); }, "holds integers");
    expect_error([&] { g.layer_norm(99); }, "does not exist");
    // A file with a bad attribute is refused by the same checks.
    std::string json = m.to_json();
    const std::string eps = "\"eps\":";
    const size_t at = json.find(eps);
    ASSERT_NE(at, std::string::npos);
    json.insert(at + eps.size(), "-");
    expect_error([&] { vktrain::Model::from_json(json); }, "attribute 'eps' is -");
}

// x [3 positions, C] -> layer_norm or rms_norm (random weight and bias) -> MSE against a target, through a
// Trainer: predict() returns the normalised values, and the weight and bias gradients are the column sums of
// dy · xhat and dy with dy = 2 (y - target) / (elements), in both precision paths.
void check_trainer(vktrain::Precision precision, bool rms) {
    constexpr uint32_t n = 5, positions = 3, c = 37;
    vktrain::Model m;
    const int x = m.input("x", {positions, c});
    const int y = rms ? m.rms_norm(x) : m.layer_norm(x);
    m.mse_loss(y, m.input("target", {positions, c}));
    vktrain::TrainerOptions o;
    o.precision = precision;
    o.batch_size = n;
    vktrain::Trainer t(vkt_test::context(), m, o);
    const DType dt = precision == vktrain::Precision::mixed ? DType::f16 : DType::f32;
    auto params = t.parameters();
    params[0].data = vkt_test::random_values(c, 501, 0.5f, 1.5f);
    if (!rms) params[1].data = vkt_test::random_values(c, 502, -1, 1);
    t.set_parameters(params);

    const uint32_t rows = n * positions;
    const auto xs = vkt_test::random_values(size_t(rows) * c, 503, -2, 2);
    const auto target = vkt_test::random_values(size_t(rows) * c, 504, -1, 1);
    const auto got_y = t.predict({xs.data(), target.data()}, n);
    std::vector<std::vector<float>> grads;
    t.compute_gradients({xs.data(), target.data()}, n, grads);
    ASSERT_EQ(grads.size(), rms ? 1u : 2u);

    // What the device sees: inputs and parameters in the storage type.
    const auto xr = vkt_test::round_through(xs, dt), tr = vkt_test::round_through(target, dt);
    const auto w = vkt_test::round_through(params[0].data, dt);
    const auto b = rms ? std::vector<float>(c, 0.0f) : vkt_test::round_through(params[1].data, dt);
    const double elements = double(rows) * c, eps = rms ? 1e-6 : 1e-5;
    std::vector<double> y_ref(xr.size()), y_tol(xr.size()), dw(c, 0.0), db(c, 0.0), dw_tol(c, 0.0), db_tol(c, 0.0);
    for (uint32_t r = 0; r < rows; ++r) {
        double mean = 0, sq = 0;
        for (uint32_t j = 0; j < c; ++j) mean += rms ? 0.0 : xr[r * c + j] / double(c);
        for (uint32_t j = 0; j < c; ++j) sq += std::pow(xr[r * c + j] - mean, 2) / c;
        const double rstd = 1 / std::sqrt(sq + eps);
        for (uint32_t j = 0; j < c; ++j) {
            const size_t i = size_t(r) * c + j;
            const double xhat = (xr[i] - mean) * rstd;
            y_ref[i] = xhat * w[j] + b[j];
            y_tol[i] = (unit(dt) + 64 * k_u32) * (std::fabs(y_ref[i]) + std::fabs(b[j])) + floor_abs(dt);
            // The loss gradient reads y as stored and is stored itself (in fp16: scaled by the loss scale).
            const double dy = 2 * (y_ref[i] - tr[i]) / elements;
            const double dy_err = (2 * unit(dt) + 8 * k_u32) * (std::fabs(dy) + 2 * std::fabs(y_ref[i]) / elements);
            dw[j] += dy * xhat;
            db[j] += dy;
            dw_tol[j] += dy_err * (std::fabs(xhat) + 1e-3) + 64 * k_u32 * std::fabs(dy * xhat);
            db_tol[j] += dy_err + 64 * k_u32 * std::fabs(dy);
        }
    }
    vkt_test::expect_close(got_y, y_ref, y_tol, "y (predict)");
    vkt_test::expect_close(grads[0], dw, dw_tol, params[0].name + " gradient");
    if (!rms) vkt_test::expect_close(grads[1], db, db_tol, params[1].name + " gradient");
}

TEST(LayerNormTrainer, LayerNormFp32) {
    check_trainer(vktrain::Precision::fp32, false);
}
TEST(LayerNormTrainer, LayerNormMixed) {
    VKT_REQUIRE_FP16();
    check_trainer(vktrain::Precision::mixed, false);
}
TEST(LayerNormTrainer, RmsNormFp32) {
    check_trainer(vktrain::Precision::fp32, true);
}
TEST(LayerNormTrainer, RmsNormMixed) {
    VKT_REQUIRE_FP16();
    check_trainer(vktrain::Precision::mixed, true);
}

} // namespace
