// Batch normalisation (training forward with the running-statistics update, evaluation, backward with
// overwrite and accumulate) against double-precision CPU references fed the same (fp16-rounded) inputs, in
// fp32 and fp16 storage, on odd shapes (hw = 1, hw = 63, several hundred values per channel), on data with a
// large common offset (1000 + noise) that a naive E[x^2] - E[x]^2 could not resolve in fp32, and with every
// operand at a non-zero offset between sentinels.
#include <cmath>
#include <string>

#include "device/support.hpp"
#include "kernels/norm.hpp"

namespace {

using vkt_test::floor_abs;
using vkt_test::place;
using vkt_test::Placed;
using vkt_test::run;
using vkt_test::unit;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);
constexpr float k_eps = 1e-5f, k_momentum = 0.1f;

struct BnCase {
    DType dtype;
    uint32_t n, c, hw;
    float offset; // added to every x: stability of the statistics away from zero
};

std::string case_name(const BnCase& k) {
    return std::string(vktrain::kernels::dtype_name(k.dtype)) + "_" + std::to_string(k.n) + "x" + std::to_string(k.c) +
           "x" + std::to_string(k.hw) + (k.offset != 0 ? "_offset" + std::to_string(int(k.offset)) : "");
}

// Element j of channel ch in [n, c, hw].
size_t at(const BnCase& k, uint32_t ch, size_t j) {
    return (j / k.hw * k.c + ch) * k.hw + j % k.hw;
}

// The rounding error, in units of 2^-24 times the sum of |terms|, of one of the kernel's per-channel sums of
// m terms (reduce.glsl): a sequential chain of ceil(m / 256) per invocation, then a tree of depth 8.
double chain(uint32_t m) {
    return double((m + 255) / 256 + 8 + 1);
}

struct Inputs {
    std::vector<float> x, gamma, beta, run_mean, run_var;
};

Inputs make_inputs(const BnCase& k) {
    const size_t count = size_t(k.n) * k.c * k.hw;
    Inputs in;
    in.x = vkt_test::random_values(count, 301 + k.hw, -1, 1);
    // Per-channel scale and shift so the channels differ.
    for (size_t i = 0; i < count; ++i) {
        const uint32_t ch = uint32_t(i / k.hw % k.c);
        in.x[i] = in.x[i] * (0.5f + 0.25f * float(ch)) + k.offset + 0.1f * float(ch);
    }
    in.x = vkt_test::round_through(in.x, k.dtype);
    in.gamma = vkt_test::round_through(vkt_test::random_values(k.c, 302, 0.5f, 1.5f), k.dtype);
    in.beta = vkt_test::round_through(vkt_test::random_values(k.c, 303, -1, 1), k.dtype);
    in.run_mean = vkt_test::random_values(k.c, 304, -1, 1);
    in.run_var = vkt_test::random_values(k.c, 305, 0.5f, 2.0f);
    return in;
}

class BatchNormTest : public testing::TestWithParam<BnCase> {};

TEST_P(BatchNormTest, TrainForwardMatchesReference) {
    const BnCase k = GetParam();
    const DType dt = k.dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const Inputs in = make_inputs(k);
    const size_t count = in.x.size();
    const uint32_t m = k.n * k.hw;

    Placed xo = place(in.x, dt, 3), go = place(in.gamma, dt, 1), bo = place(in.beta, dt, 2);
    Placed yo = place(std::vector<float>(count, 5.0f), dt, 4);
    Placed mo = place(std::vector<float>(k.c, 5.0f), DType::f32, 5),
           io = place(std::vector<float>(k.c, 5.0f), DType::f32, 6);
    Placed rmo = place(in.run_mean, DType::f32, 7), rvo = place(in.run_var, DType::f32, 1);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_batch_norm_train(dev, seq, k.n, k.c, k.hw, k_eps, k_momentum, xo.ref(k.n, k.c * k.hw),
                                                  go.ref(), bo.ref(), yo.ref(), mo.ref(), io.ref(), rmo.ref(),
                                                  rvo.ref());
    });

    std::vector<double> mean(k.c), mean_tol(k.c), invstd(k.c), inv_rel(k.c), rm(k.c), rm_tol(k.c), rv(k.c), rv_tol(k.c);
    std::vector<double> y(count), y_tol(count);
    for (uint32_t ch = 0; ch < k.c; ++ch) {
        double sum = 0, spread = 0;
        const double pivot = in.x[at(k, ch, 0)];
        for (size_t j = 0; j < m; ++j) {
            sum += in.x[at(k, ch, j)];
            spread += std::fabs(in.x[at(k, ch, j)] - pivot);
        }
        mean[ch] = sum / m;
        double sq = 0, cross = 0;
        for (size_t j = 0; j < m; ++j) {
            const double d = in.x[at(k, ch, j)] - mean[ch];
            sq += d * d;
            cross += std::fabs(d) * std::fabs(in.x[at(k, ch, j)] - pivot);
        }
        const double var = sq / m;
        // The kernel sums x - pivot (each difference rounded once), divides by m and adds the pivot back.
        const double shift_err = (chain(m) + 1) * k_u32 * spread / m;
        mean_tol[ch] = shift_err + k_u32 * std::fabs(mean[ch]);
        // Squares of ((x - pivot) - shift), each off by about 2^-24 (|x - pivot| + |d|) + shift_err.
        const double var_err = (chain(m) + 4) * k_u32 * var + 4 * k_u32 * cross / m + shift_err * shift_err;
        invstd[ch] = 1 / std::sqrt(var + k_eps);
        inv_rel[ch] = 0.5 * var_err / (var + k_eps) + 6 * k_u32; // + inversesqrt's 2 ulp
        const double unbiased = var * m / (m - 1);
        rm[ch] = (1 - double(k_momentum)) * in.run_mean[ch] + k_momentum * mean[ch];
        rm_tol[ch] = 3 * k_u32 * std::fabs(in.run_mean[ch]) +
                     k_momentum * (mean_tol[ch] + 3 * k_u32 * std::fabs(mean[ch])) + k_u32 * std::fabs(rm[ch]);
        rv[ch] = (1 - double(k_momentum)) * in.run_var[ch] + k_momentum * unbiased;
        rv_tol[ch] = 3 * k_u32 * std::fabs(in.run_var[ch]) + k_momentum * (var_err + 5 * k_u32 * var) * m / (m - 1) +
                     k_u32 * std::fabs(rv[ch]);
        for (size_t j = 0; j < m; ++j) {
            const size_t i = at(k, ch, j);
            const double xc = in.x[i] - mean[ch], g = in.gamma[ch];
            y[i] = xc * invstd[ch] * g + in.beta[ch];
            // x - mean (the mean off by mean_tol, the difference rounded), times invstd and gamma, plus beta.
            y_tol[i] = std::fabs(g) * invstd[ch] * (mean_tol[ch] + k_u32 * std::fabs(xc)) +
                       std::fabs(xc * invstd[ch] * g) * (inv_rel[ch] + 3 * k_u32) +
                       k_u32 * (std::fabs(y[i]) + std::fabs(in.beta[ch])) + unit(dt) * std::fabs(y[i]) + floor_abs(dt);
        }
    }
    std::vector<double> invstd_tol(k.c);
    for (uint32_t ch = 0; ch < k.c; ++ch) invstd_tol[ch] = inv_rel[ch] * invstd[ch];
    vkt_test::expect_close(mo.values(), mean, mean_tol, "save_mean");
    vkt_test::expect_close(io.values(), invstd, invstd_tol, "save_invstd");
    vkt_test::expect_close(rmo.values(), rm, rm_tol, "running_mean");
    vkt_test::expect_close(rvo.values(), rv, rv_tol, "running_var");
    vkt_test::expect_close(yo.values(), y, y_tol, "y");
    EXPECT_EQ(xo.values(), in.x);
    EXPECT_EQ(go.values(), in.gamma);
    EXPECT_EQ(bo.values(), in.beta);
}

TEST_P(BatchNormTest, EvalMatchesReference) {
    const BnCase k = GetParam();
    const DType dt = k.dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    Inputs in = make_inputs(k);
    for (float& v : in.run_mean) v += k.offset; // running statistics that match the data's offset
    const size_t count = in.x.size();
    Placed xo = place(in.x, dt, 1), go = place(in.gamma, dt, 2), bo = place(in.beta, dt, 3);
    Placed rmo = place(in.run_mean, DType::f32, 4), rvo = place(in.run_var, DType::f32, 5);
    Placed yo = place(std::vector<float>(count, 5.0f), dt, 6);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_batch_norm_eval(dev, seq, k.n, k.c, k.hw, k_eps, xo.ref(), go.ref(), bo.ref(),
                                                 rmo.ref(), rvo.ref(), yo.ref(k.n, k.c * k.hw));
    });
    std::vector<double> y(count), y_tol(count);
    for (size_t i = 0; i < count; ++i) {
        const uint32_t ch = uint32_t(i / k.hw % k.c);
        const double xc = double(in.x[i]) - in.run_mean[ch], inv = 1 / std::sqrt(double(in.run_var[ch]) + k_eps);
        y[i] = xc * inv * in.gamma[ch] + in.beta[ch];
        // var + eps and inversesqrt (2 ulp), x - mean, two products and a sum in fp32, then the store.
        y_tol[i] = std::fabs(xc * inv * in.gamma[ch]) * 10 * k_u32 +
                   k_u32 * (std::fabs(y[i]) + std::fabs(in.beta[ch])) + unit(dt) * std::fabs(y[i]) + floor_abs(dt);
    }
    vkt_test::expect_close(yo.values(), y, y_tol, "y");
    EXPECT_EQ(rmo.values(), in.run_mean);
    EXPECT_EQ(rvo.values(), in.run_var);
}

TEST_P(BatchNormTest, BackwardMatchesReference) {
    const BnCase k = GetParam();
    const DType dt = k.dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const Inputs in = make_inputs(k);
    const size_t count = in.x.size();
    const uint32_t m = k.n * k.hw;
    const auto dy = vkt_test::round_through(vkt_test::random_values(count, 306 + k.c, -1, 1), dt);
    const auto start = vkt_test::round_through(vkt_test::random_values(count, 307, -1, 1), dt);
    // The saved statistics as the forward pass would leave them: the exact batch statistics rounded to fp32.
    std::vector<float> mean(k.c), invstd(k.c);
    for (uint32_t ch = 0; ch < k.c; ++ch) {
        double sum = 0, sq = 0;
        for (size_t j = 0; j < m; ++j) sum += in.x[at(k, ch, j)];
        for (size_t j = 0; j < m; ++j) sq += std::pow(in.x[at(k, ch, j)] - sum / m, 2);
        mean[ch] = float(sum / m);
        invstd[ch] = float(1 / std::sqrt(sq / m + k_eps));
    }
    Placed xo = place(in.x, dt, 1), dyo = place(dy, dt, 2), go = place(in.gamma, dt, 3);
    Placed mo = place(mean, DType::f32, 4), io = place(invstd, DType::f32, 5);
    Placed dxo = place(std::vector<float>(count, 5.0f), dt, 6), dxa = place(start, dt, 7);
    Placed dgo = place(std::vector<float>(k.c, 5.0f), DType::f32, 1),
           dbo = place(std::vector<float>(k.c, 5.0f), DType::f32, 2);
    Placed dga = place(std::vector<float>(k.c, 5.0f), DType::f32, 3),
           dba = place(std::vector<float>(k.c, 5.0f), DType::f32, 4);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_batch_norm_backward(dev, seq, k.n, k.c, k.hw, xo.ref(), dyo.ref(), go.ref(), mo.ref(),
                                                     io.ref(), dxo.ref(), dgo.ref(), dbo.ref());
        vktrain::kernels::record_batch_norm_backward(dev, seq, k.n, k.c, k.hw, xo.ref(), dyo.ref(), go.ref(), mo.ref(),
                                                     io.ref(), dxa.ref(), dga.ref(), dba.ref(), true);
    });

    std::vector<double> dg(k.c), dg_tol(k.c), db(k.c), db_tol(k.c), dx(count), dx_tol(count), dxa_ref(count),
        dxa_tol(count);
    for (uint32_t ch = 0; ch < k.c; ++ch) {
        double s_dy = 0, s_dyx = 0, a_dy = 0, a_dyx = 0;
        for (size_t j = 0; j < m; ++j) {
            const size_t i = at(k, ch, j);
            const double xc = double(in.x[i]) - mean[ch];
            s_dy += dy[i];
            s_dyx += dy[i] * xc;
            a_dy += std::fabs(dy[i]);
            a_dyx += std::fabs(dy[i] * xc);
        }
        db[ch] = s_dy;
        db_tol[ch] = chain(m) * k_u32 * a_dy + 1e-30;
        dg[ch] = s_dyx * invstd[ch];
        dg_tol[ch] = (chain(m) + 3) * k_u32 * a_dyx * invstd[ch] + 1e-30;
        const double gi = double(in.gamma[ch]) * invstd[ch];
        for (size_t j = 0; j < m; ++j) {
            const size_t i = at(k, ch, j);
            const double xhat = (double(in.x[i]) - mean[ch]) * invstd[ch];
            const double inner = dy[i] - db[ch] / m - xhat * dg[ch] / m;
            dx[i] = gi * inner;
            const double terms = std::fabs(dy[i]) + std::fabs(db[ch] / m) + std::fabs(xhat * dg[ch] / m);
            const double err = std::fabs(gi) * (5 * k_u32 * terms + db_tol[ch] / m + std::fabs(xhat) * dg_tol[ch] / m) +
                               3 * k_u32 * std::fabs(dx[i]);
            dx_tol[i] = err + unit(dt) * std::fabs(dx[i]) + floor_abs(dt);
            dxa_ref[i] = dx[i] + start[i];
            dxa_tol[i] = err + k_u32 * std::fabs(dxa_ref[i]) + unit(dt) * std::fabs(dxa_ref[i]) + floor_abs(dt);
        }
    }
    vkt_test::expect_close(dbo.values(), db, db_tol, "dbeta");
    vkt_test::expect_close(dgo.values(), dg, dg_tol, "dgamma");
    vkt_test::expect_close(dba.values(), db, db_tol, "dbeta (accumulate call)");
    vkt_test::expect_close(dga.values(), dg, dg_tol, "dgamma (accumulate call)");
    vkt_test::expect_close(dxo.values(), dx, dx_tol, "dx");
    vkt_test::expect_close(dxa.values(), dxa_ref, dxa_tol, "dx (accumulate)");
    EXPECT_EQ(xo.values(), in.x);
    EXPECT_EQ(dyo.values(), dy);
}

const BnCase k_cases[] = {
    {DType::f32, 3, 5, 63, 0},  {DType::f16, 3, 5, 63, 0},     {DType::f32, 3, 5, 1, 0},
    {DType::f16, 3, 5, 1, 0},   {DType::f32, 3, 5, 63, 1000},  {DType::f16, 3, 5, 63, 1000},
    {DType::f32, 2, 3, 700, 0}, {DType::f32, 2, 3, 700, 1000}, {DType::f32, 2, 1, 1, 0},
};
INSTANTIATE_TEST_SUITE_P(All, BatchNormTest, testing::ValuesIn(k_cases),
                         [](const auto& param_info) { return case_name(param_info.param); });

TEST(BatchNormChecks, RejectBadOperands) {
    auto& dev = vkt_test::device();
    rt::Buffer a = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    rt::Buffer b = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    rt::Buffer s = vkt_test::make_buffer(std::vector<float>(64, 1.0f), DType::f32);
    const auto stat = [&](uint64_t offset) { return MatRef{&s, DType::f32, 1, 4, offset}; };
    const MatRef x{&a, DType::f32, 2, 64, 0}, y{&b, DType::f32, 2, 64, 0};
    const auto expect_error = [&](uint32_t n, uint32_t hw, const MatRef& xx, const MatRef& yy, const MatRef& mean,
                                  float momentum, const char* what) {
        rt::Sequence seq(dev);
        seq.begin();
        try {
            vktrain::kernels::record_batch_norm_train(dev, seq, n, 4, hw, 1e-5f, momentum, xx, stat(0), stat(4), yy,
                                                      mean, stat(12), stat(16), stat(20));
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        seq.end();
    };
    expect_error(2, 15, x, y, stat(8), 0.1f, "x has 128 elements");
    expect_error(1, 1, MatRef{&a, DType::f32, 1, 4, 0}, MatRef{&b, DType::f32, 1, 4, 0}, stat(8), 0.1f,
                 "training needs at least 2");
    expect_error(2, 16, x, y, stat(10), 0.1f, "save_mean overlaps save_invstd");
    expect_error(2, 16, x, y, stat(8), 1.5f, "momentum");
    expect_error(2, 16, x, MatRef{&a, DType::f32, 2, 64, 0}, stat(8), 0.1f, "y overlaps x");
}

} // namespace
