// Softmax and multi-head self-attention: the strided GEMM they run on (leading dimensions, two-level batch)
// against a double-precision reference on every path the device offers; softmax forward and backward (scale,
// causal mask, fp32 and fp16); attention forward and backward against a double reference on odd shapes, fp32
// and mixed on every GEMM path; path invariance; and the graph op through a Trainer.
#include <cmath>
#include <limits>
#include <map>

#include "device/support.hpp"
#include "kernels/attention.hpp"
#include "kernels/gemm.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::DType;
using vktrain::kernels::GemmDesc;
using vktrain::kernels::GemmOperand;
using vktrain::kernels::MatRef;
using vktrain::kernels::TiledLoop;

const double k_u32 = std::ldexp(1.0, -24);

std::string path_name(GemmPath p) {
    return p == GemmPath::coopmat ? "coopmat" : p == GemmPath::tiled_fp16 ? "tiled" : "fp32";
}

// Skips (or, where coopmat is expected, fails) when the device lacks the path.
#define REQUIRE_PATH(p)                                                                                                \
    do {                                                                                                               \
        if ((p) == GemmPath::coopmat) VKT_REQUIRE_COOPMAT();                                                           \
        if ((p) != GemmPath::fp32) VKT_REQUIRE_FP16();                                                                 \
    } while (0)

// ---- strided GEMM ----

enum class Form { ab, abt, atb };

struct StridedCase {
    GemmPath path;
    DType out;
    Form form;
    bool accumulate;
    bool broadcast_b; // B shared by every outer index (stride_outer 0)
    TiledLoop loop;
};

std::string strided_name(const testing::TestParamInfo<StridedCase>& i) {
    const StridedCase& c = i.param;
    const char* form = c.form == Form::ab ? "AB" : c.form == Form::abt ? "ABt" : "AtB";
    const char* loop = c.loop == TiledLoop::shared_memory ? "_smem" : c.loop == TiledLoop::registers ? "_regs" : "";
    return path_name(c.path) + "_" + vktrain::kernels::dtype_name(c.out) + "_" + form + (c.accumulate ? "_acc" : "") +
           (c.broadcast_b ? "_bcast" : "") + loop;
}

// An operand laid out as attention lays out heads: `outer` blocks of `rows` rows, each row holding `inner`
// items of `cols` columns side by side plus `pad` unused columns (leading dimension inner·cols + pad).
struct Layout {
    uint32_t rows, cols, outer, inner, pad;
    uint64_t ld() const { return uint64_t(inner) * cols + pad; }
    uint64_t stride_outer() const { return rows * ld(); }
    uint64_t size() const { return outer * stride_outer(); }
    uint64_t at(uint32_t o, uint32_t i, uint32_t r, uint32_t c) const {
        return o * stride_outer() + i * uint64_t(cols) + r * ld() + c;
    }
};

class GemmStridedTest : public testing::TestWithParam<StridedCase> {};

TEST_P(GemmStridedTest, MatchesDoubleReference) {
    const StridedCase& c = GetParam();
    REQUIRE_PATH(c.path);
    auto& dev = vkt_test::device();
    const DType in = c.path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const uint32_t m = 7, n = 5, k = 6, outer = 3, inner = 2;
    const bool ta = c.form == Form::atb, tb = c.form == Form::abt;
    const Layout la{ta ? k : m, ta ? m : k, outer, inner, 3};
    const Layout lb{tb ? n : k, tb ? k : n, c.broadcast_b ? 1u : outer, inner, 1};
    const Layout lc{m, n, outer, inner, 2};
    const auto a = vkt_test::round_through(vkt_test::random_values(la.size(), 41), in);
    const auto b = vkt_test::round_through(vkt_test::random_values(lb.size(), 42), in);
    const auto c0 = vkt_test::round_through(vkt_test::random_values(lc.size(), 43, 2.0f, 3.0f), c.out);
    auto abuf = vkt_test::make_buffer(a, in), bbuf = vkt_test::make_buffer(b, in);
    auto cbuf = vkt_test::make_buffer(c0, c.out);

    GemmDesc d;
    d.a = GemmOperand{MatRef{&abuf, in, la.rows, la.cols}, la.ld(), la.stride_outer(), la.cols};
    d.b = GemmOperand{MatRef{&bbuf, in, lb.rows, lb.cols}, lb.ld(), c.broadcast_b ? 0 : lb.stride_outer(), lb.cols};
    d.c = GemmOperand{MatRef{&cbuf, c.out, lc.rows, lc.cols}, lc.ld(), lc.stride_outer(), lc.cols};
    d.trans_a = ta;
    d.trans_b = tb;
    d.outer = outer;
    d.inner = inner;
    d.accumulate = c.accumulate;
    vkt_test::ForceTiledLoop force(c.loop);
    vkt_test::run([&](vktrain::runtime::Sequence& seq) { vktrain::kernels::record_gemm_strided(dev, seq, c.path, d); });
    const auto got = vkt_test::read_buffer(cbuf, c.out, lc.size());

    // Every element outside the items (the padding columns) keeps its value.
    std::vector<double> ref(c0.begin(), c0.end()), tol(lc.size(), 0.0);
    const double gamma = 2 * k * k_u32;
    for (uint32_t o = 0; o < outer; ++o)
        for (uint32_t h = 0; h < inner; ++h)
            for (uint32_t i = 0; i < m; ++i)
                for (uint32_t j = 0; j < n; ++j) {
                    double sum = 0, mag = 0;
                    const uint32_t ob = c.broadcast_b ? 0 : o;
                    for (uint32_t l = 0; l < k; ++l) {
                        const double av = ta ? a[la.at(o, h, l, i)] : a[la.at(o, h, i, l)];
                        const double bv = tb ? b[lb.at(ob, h, j, l)] : b[lb.at(ob, h, l, j)];
                        sum += av * bv;
                        mag += std::fabs(av * bv);
                    }
                    const uint64_t idx = lc.at(o, h, i, j);
                    if (c.accumulate) {
                        mag += std::fabs(ref[idx]);
                        sum += ref[idx];
                    }
                    ref[idx] = sum;
                    tol[idx] = gamma * mag + vkt_test::unit(c.out) * std::fabs(sum) + vkt_test::floor_abs(c.out);
                }
    vkt_test::expect_close(got, ref, tol, "C");
}

std::vector<StridedCase> strided_cases() {
    std::vector<StridedCase> out;
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat})
        for (DType d : {DType::f32, DType::f16}) {
            if (path == GemmPath::fp32 && d == DType::f16) continue;
            for (Form f : {Form::ab, Form::abt, Form::atb})
                for (bool acc : {false, true}) {
                    if (path == GemmPath::coopmat) {
                        out.push_back({path, d, f, acc, f == Form::ab, TiledLoop::automatic});
                        continue;
                    }
                    out.push_back({path, d, f, acc, f == Form::ab, TiledLoop::shared_memory});
                    out.push_back({path, d, f, acc, f == Form::ab, TiledLoop::registers});
                }
        }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Attention, GemmStridedTest, testing::ValuesIn(strided_cases()), strided_name);

TEST(GemmStrided, RefusesBadLayouts) {
    auto& dev = vkt_test::device();
    auto buf = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    const auto base = [&] {
        GemmDesc d;
        d.a = GemmOperand{MatRef{&buf, DType::f32, 2, 3}, 8, 16, 3};
        d.b = GemmOperand{MatRef{&buf, DType::f32, 3, 2}, 0, 0, 0};
        d.c = GemmOperand{MatRef{&buf, DType::f32, 2, 2}, 4, 8, 2};
        d.outer = 2;
        d.inner = 2;
        return d;
    };
    const auto expect_refused = [&](const GemmDesc& d, const char* what) {
        vktrain::runtime::Sequence seq(dev);
        seq.begin();
        EXPECT_THROW(vktrain::kernels::record_gemm_strided(dev, seq, GemmPath::fp32, d), vktrain::Error) << what;
        seq.end();
    };
    GemmDesc d = base();
    d.c.stride_inner = 1; // the two heads' columns overlap
    expect_refused(d, "overlapping head columns");
    d = base();
    d.c.ld = 3; // rows of one item run into the next head's columns... and the next row
    expect_refused(d, "leading dimension below the row");
    d = base();
    d.c.stride_outer = 4; // the second sample's block starts inside the first
    expect_refused(d, "overlapping samples");
    d = base();
    d.a.stride_outer = uint64_t(1) << 31; // A would span 2^31 elements
    expect_refused(d, "span beyond 2^31");
    d = base();
    d.c.mat.rows = 3;
    expect_refused(d, "wrong output shape");
}

// ---- softmax ----

struct SoftmaxCase {
    DType in, out;
    bool causal;
    float scale;
    bool accumulate; // backward
};

std::string softmax_name(const testing::TestParamInfo<SoftmaxCase>& i) {
    const SoftmaxCase& c = i.param;
    return std::string(vktrain::kernels::dtype_name(c.in)) + "_" + vktrain::kernels::dtype_name(c.out) +
           (c.causal ? "_causal" : "") + (c.scale != 1.0f ? "_scaled" : "") + (c.accumulate ? "_acc" : "");
}

class SoftmaxTest : public testing::TestWithParam<SoftmaxCase> {};

// 3 blocks of 7 × 7 rows (the causal mask repeats per block); inputs up to ±4 so rows are far from uniform.
TEST_P(SoftmaxTest, ForwardAndBackwardMatchDoubleReference) {
    const SoftmaxCase& c = GetParam();
    if (c.in == DType::f16 || c.out == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const uint32_t rows = 21, cols = 7;
    const size_t count = size_t(rows) * cols;
    const auto x = vkt_test::round_through(vkt_test::random_values(count, 51, -4.0f, 4.0f), c.in);
    const auto dp = vkt_test::round_through(vkt_test::random_values(count, 52), c.in);
    const auto dx0 = vkt_test::round_through(vkt_test::random_values(count, 53), c.out);
    const vkt_test::Placed px = vkt_test::place(x, c.in, 3),
                           pp = vkt_test::place(std::vector<float>(count, 0), c.out, 5);
    const vkt_test::Placed pdp = vkt_test::place(dp, c.in, 1), pdx = vkt_test::place(dx0, c.out, 2);
    vkt_test::run([&](vktrain::runtime::Sequence& seq) {
        vktrain::kernels::record_softmax(dev, seq, px.ref(rows, cols), pp.ref(rows, cols), c.scale, c.causal);
    });
    const auto p = pp.values();
    vkt_test::run([&](vktrain::runtime::Sequence& seq) {
        vktrain::kernels::record_softmax_backward(dev, seq, pp.ref(rows, cols), pdp.ref(rows, cols),
                                                  pdx.ref(rows, cols), c.scale, c.causal, c.accumulate);
    });
    const auto dx = pdx.values();

    std::vector<double> p_ref(count), p_tol(count), dx_ref(count), dx_tol(count);
    for (uint32_t r = 0; r < rows; ++r) {
        const uint32_t visible = c.causal ? r % cols + 1 : cols;
        double mx = -1e300, sum = 0;
        for (uint32_t j = 0; j < visible; ++j) mx = std::max(mx, double(c.scale) * x[r * cols + j]);
        for (uint32_t j = 0; j < visible; ++j) sum += std::exp(double(c.scale) * x[r * cols + j] - mx);
        // Backward from the probabilities the device stored (what it reads), exact arithmetic.
        double dot = 0, dot_mag = 0;
        for (uint32_t j = 0; j < visible; ++j) {
            dot += double(dp[r * cols + j]) * p[r * cols + j];
            dot_mag += std::fabs(double(dp[r * cols + j]) * p[r * cols + j]);
        }
        for (uint32_t j = 0; j < cols; ++j) {
            const size_t i = size_t(r) * cols + j;
            const bool vis = j < visible;
            p_ref[i] = vis ? std::exp(double(c.scale) * x[i] - mx) / sum : 0.0;
            // fp32 exp, sum and division (a few units of 2^-24, amplified by |scale · x| <= 4 in the exponent),
            // then the rounding to the output type.
            p_tol[i] = vis ? (64 * k_u32 + vkt_test::unit(c.out)) * p_ref[i] + vkt_test::floor_abs(c.out) : 0.0;
            const double base = c.accumulate ? double(dx0[i]) : 0.0;
            const double g = vis ? double(c.scale) * p[i] * (dp[i] - dot) : 0.0;
            dx_ref[i] = base + g;
            dx_tol[i] =
                vis || c.accumulate
                    ? 16 * k_u32 * (std::fabs(c.scale * p[i]) * (std::fabs(dp[i]) + cols * dot_mag) + std::fabs(base)) +
                          vkt_test::unit(c.out) * std::fabs(dx_ref[i]) + vkt_test::floor_abs(c.out)
                    : 0.0;
        }
    }
    vkt_test::expect_close(p, p_ref, p_tol, "p");
    vkt_test::expect_close(dx, dx_ref, dx_tol, "dx");
}

std::vector<SoftmaxCase> softmax_cases() {
    std::vector<SoftmaxCase> out;
    for (auto [in, o] : {std::pair{DType::f32, DType::f32}, {DType::f32, DType::f16}, {DType::f16, DType::f16}})
        for (bool causal : {false, true})
            for (float scale : {1.0f, 0.37f}) out.push_back({in, o, causal, scale, false});
    out.push_back({DType::f32, DType::f32, true, 0.5f, true});
    out.push_back({DType::f16, DType::f16, true, 0.5f, true});
    return out;
}

INSTANTIATE_TEST_SUITE_P(Attention, SoftmaxTest, testing::ValuesIn(softmax_cases()), softmax_name);

// ---- attention ----

using vktrain::kernels::AttentionPaths;
using vktrain::kernels::AttentionShape;

struct AttentionResult {
    std::vector<float> out, p, dqkv;
};

// Runs forward and backward on the device with `paths`; dqkv starts at dqkv0 (accumulate) or is overwritten.
AttentionResult run_attention(const AttentionShape& s, const AttentionPaths& paths, DType act,
                              const std::vector<float>& qkv, const std::vector<float>& dout,
                              const std::vector<float>& dqkv0, bool accumulate, TiledLoop loop = TiledLoop::automatic) {
    auto& dev = vkt_test::device();
    const size_t scores = s.score_elements();
    const vkt_test::Placed pq = vkt_test::place(qkv, act, 3), pdo = vkt_test::place(dout, act, 1);
    const vkt_test::Placed po = vkt_test::place(std::vector<float>(dout.size(), 0), act, 2);
    const vkt_test::Placed pdq = vkt_test::place(dqkv0, act, 4);
    const vkt_test::Placed ps = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 0);
    const vkt_test::Placed pp = vkt_test::place(std::vector<float>(scores, 0), act, 6);
    const vkt_test::Placed pdp = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 7);
    const vkt_test::Placed pds = vkt_test::place(std::vector<float>(scores, 0), act, 8);
    vkt_test::ForceTiledLoop force(loop);
    vkt_test::run([&](vktrain::runtime::Sequence& seq) {
        vktrain::kernels::record_attention(dev, seq, s, paths, pq.ref(), ps.ref(), pp.ref(), po.ref());
        vktrain::kernels::record_attention_backward(dev, seq, s, paths, pq.ref(), pp.ref(), pdo.ref(), pdp.ref(),
                                                    pds.ref(), pdq.ref(), accumulate);
    });
    return {po.values(), pp.values(), pdq.values()};
}

struct AttentionReference {
    std::vector<double> out, out_tol, p, p_tol, dqkv, dqkv_tol;
};

// Double-precision attention from the rounded inputs. Tolerances: fp32 arithmetic (a few units of 2^-24 per
// term) plus, in mixed precision, the fp16 rounding of P, dS and of every result (c · 2^-11 of the magnitudes
// that enter each value).
AttentionReference reference(const AttentionShape& s, DType act, const std::vector<float>& qkv,
                             const std::vector<float>& dout, const std::vector<float>& dqkv0, bool accumulate) {
    const uint32_t B = s.batch, T = s.seq, H = s.heads, D = s.head_size;
    const uint64_t C = s.channels();
    const double scale = 1.0 / std::sqrt(double(D));
    const double c = 4 * vkt_test::unit(act) + 64 * k_u32, fl = 4 * vkt_test::floor_abs(act);
    AttentionReference r;
    r.out.assign(size_t(B) * T * C, 0.0);
    r.out_tol.assign(r.out.size(), 0.0);
    r.p.assign(s.score_elements(), 0.0);
    r.p_tol.assign(r.p.size(), 0.0);
    r.dqkv.assign(qkv.size(), 0.0);
    r.dqkv_tol.assign(qkv.size(), 0.0);
    std::vector<double> dqkv_mag(qkv.size(), 0.0);
    for (size_t i = 0; i < qkv.size(); ++i) {
        r.dqkv[i] = accumulate ? double(dqkv0[i]) : 0.0;
        dqkv_mag[i] = std::fabs(r.dqkv[i]);
    }
    const auto q = [&](uint32_t b, uint32_t t, uint32_t h, uint32_t d, uint32_t which) {
        return size_t((uint64_t(b) * T + t) * 3 * C + which * C + h * D + d);
    };
    const auto o = [&](uint32_t b, uint32_t t, uint32_t h, uint32_t d) {
        return size_t((uint64_t(b) * T + t) * C + h * D + d);
    };
    for (uint32_t b = 0; b < B; ++b)
        for (uint32_t h = 0; h < H; ++h) {
            std::vector<double> P(size_t(T) * T, 0.0), dP(size_t(T) * T, 0.0), dS(size_t(T) * T, 0.0),
                dS_mag(size_t(T) * T, 0.0);
            for (uint32_t i = 0; i < T; ++i) {
                const uint32_t visible = s.causal ? i + 1 : T;
                std::vector<double> srow(visible);
                double mx = -1e300, sum = 0;
                for (uint32_t j = 0; j < visible; ++j) {
                    double dot = 0;
                    for (uint32_t d = 0; d < D; ++d) dot += double(qkv[q(b, i, h, d, 0)]) * qkv[q(b, j, h, d, 1)];
                    srow[j] = scale * dot;
                    mx = std::max(mx, srow[j]);
                }
                for (uint32_t j = 0; j < visible; ++j) sum += std::exp(srow[j] - mx);
                for (uint32_t j = 0; j < visible; ++j) P[i * T + j] = std::exp(srow[j] - mx) / sum;
                double dot = 0, dot_mag = 0;
                for (uint32_t j = 0; j < visible; ++j) {
                    for (uint32_t d = 0; d < D; ++d)
                        dP[i * T + j] += double(dout[o(b, i, h, d)]) * qkv[q(b, j, h, d, 2)];
                    dot += dP[i * T + j] * P[i * T + j];
                    dot_mag += std::fabs(dP[i * T + j] * P[i * T + j]);
                }
                for (uint32_t j = 0; j < visible; ++j) {
                    dS[i * T + j] = scale * P[i * T + j] * (dP[i * T + j] - dot);
                    dS_mag[i * T + j] = scale * P[i * T + j] * (std::fabs(dP[i * T + j]) + dot_mag);
                }
                for (uint32_t j = 0; j < T; ++j) {
                    const size_t pi = ((size_t(b) * H + h) * T + i) * T + j;
                    r.p[pi] = P[i * T + j];
                    r.p_tol[pi] = c * P[i * T + j] + fl;
                }
            }
            for (uint32_t i = 0; i < T; ++i)
                for (uint32_t d = 0; d < D; ++d) {
                    double sum = 0, mag = 0;
                    for (uint32_t j = 0; j < T; ++j) {
                        sum += P[i * T + j] * qkv[q(b, j, h, d, 2)];
                        mag += P[i * T + j] * std::fabs(qkv[q(b, j, h, d, 2)]);
                    }
                    r.out[o(b, i, h, d)] = sum;
                    r.out_tol[o(b, i, h, d)] = 2 * c * mag + fl;
                }
            // dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO.
            for (uint32_t i = 0; i < T; ++i)
                for (uint32_t j = 0; j < T; ++j)
                    for (uint32_t d = 0; d < D; ++d) {
                        const double ds = dS[i * T + j], dsm = dS_mag[i * T + j], pij = P[i * T + j];
                        r.dqkv[q(b, i, h, d, 0)] += ds * qkv[q(b, j, h, d, 1)];
                        dqkv_mag[q(b, i, h, d, 0)] += dsm * std::fabs(qkv[q(b, j, h, d, 1)]);
                        r.dqkv[q(b, j, h, d, 1)] += ds * qkv[q(b, i, h, d, 0)];
                        dqkv_mag[q(b, j, h, d, 1)] += dsm * std::fabs(qkv[q(b, i, h, d, 0)]);
                        r.dqkv[q(b, j, h, d, 2)] += pij * dout[o(b, i, h, d)];
                        dqkv_mag[q(b, j, h, d, 2)] += pij * std::fabs(dout[o(b, i, h, d)]);
                    }
        }
    for (size_t i = 0; i < qkv.size(); ++i) r.dqkv_tol[i] = 3 * c * dqkv_mag[i] + fl;
    return r;
}

struct AttentionCase {
    GemmPath path;
    bool causal;
    bool accumulate;
    TiledLoop loop;
};

std::string attention_name(const testing::TestParamInfo<AttentionCase>& i) {
    const AttentionCase& c = i.param;
    const char* loop = c.loop == TiledLoop::shared_memory ? "_smem" : c.loop == TiledLoop::registers ? "_regs" : "";
    return path_name(c.path) + (c.causal ? "_causal" : "_full") + (c.accumulate ? "_acc" : "") + loop;
}

class AttentionTest : public testing::TestWithParam<AttentionCase> {};

// B 3, T 7, 3 heads of 5: no size is a tile multiple.
AttentionShape odd_shape(bool causal) {
    AttentionShape s;
    s.batch = 3;
    s.seq = 7;
    s.heads = 3;
    s.head_size = 5;
    s.causal = causal;
    return s;
}

TEST_P(AttentionTest, ForwardAndBackwardMatchDoubleReference) {
    const AttentionCase& c = GetParam();
    REQUIRE_PATH(c.path);
    const DType act = c.path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const AttentionShape s = odd_shape(c.causal);
    const size_t rows = size_t(s.batch) * s.seq;
    const auto qkv = vkt_test::round_through(vkt_test::random_values(rows * 3 * s.channels(), 61, -1.5f, 1.5f), act);
    const auto dout = vkt_test::round_through(vkt_test::random_values(rows * s.channels(), 62), act);
    const auto dqkv0 = vkt_test::round_through(vkt_test::random_values(qkv.size(), 63), act);
    const AttentionResult got =
        run_attention(s, AttentionPaths::all(c.path), act, qkv, dout, dqkv0, c.accumulate, c.loop);
    const AttentionReference ref = reference(s, act, qkv, dout, dqkv0, c.accumulate);
    vkt_test::expect_close(got.out, ref.out, ref.out_tol, "out");
    vkt_test::expect_close(got.p, ref.p, ref.p_tol, "probabilities");
    vkt_test::expect_close(got.dqkv, ref.dqkv, ref.dqkv_tol, "dqkv");
    if (c.causal) { // masked probabilities are exactly 0
        for (uint32_t z = 0; z < s.batch * s.heads; ++z)
            for (uint32_t i = 0; i < s.seq; ++i)
                for (uint32_t j = i + 1; j < s.seq; ++j)
                    ASSERT_EQ(got.p[(size_t(z) * s.seq + i) * s.seq + j], 0.0f) << z << "," << i << "," << j;
    }
}

std::vector<AttentionCase> attention_cases() {
    std::vector<AttentionCase> out;
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat})
        for (bool causal : {true, false}) {
            const auto loops = path == GemmPath::coopmat
                                   ? std::vector<TiledLoop>{TiledLoop::automatic}
                                   : std::vector<TiledLoop>{TiledLoop::shared_memory, TiledLoop::registers};
            for (TiledLoop loop : loops) out.push_back({path, causal, false, loop});
        }
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat})
        out.push_back({path, true, true, TiledLoop::automatic});
    return out;
}

INSTANTIATE_TEST_SUITE_P(Attention, AttentionTest, testing::ValuesIn(attention_cases()), attention_name);

// The cooperative-matrix and tiled fp16 paths (both tiled loops) agree within fp16 tolerances, and each
// mixed path agrees with fp32.
TEST(AttentionPaths, CoopmatTiledAndFp32Agree) {
    VKT_REQUIRE_FP16();
    const AttentionShape s = odd_shape(true);
    const size_t rows = size_t(s.batch) * s.seq;
    const auto qkv =
        vkt_test::round_through(vkt_test::random_values(rows * 3 * s.channels(), 71, -1.5f, 1.5f), DType::f16);
    const auto dout = vkt_test::round_through(vkt_test::random_values(rows * s.channels(), 72), DType::f16);
    const std::vector<float> zeros(qkv.size(), 0.0f);
    const AttentionResult f32 =
        run_attention(s, AttentionPaths::all(GemmPath::fp32), DType::f32, qkv, dout, zeros, false);
    std::vector<std::pair<std::string, AttentionResult>> mixed;
    mixed.emplace_back("tiled_smem", run_attention(s, AttentionPaths::all(GemmPath::tiled_fp16), DType::f16, qkv, dout,
                                                   zeros, false, TiledLoop::shared_memory));
    mixed.emplace_back("tiled_regs", run_attention(s, AttentionPaths::all(GemmPath::tiled_fp16), DType::f16, qkv, dout,
                                                   zeros, false, TiledLoop::registers));
    if (vkt_test::context().coopmat_available())
        mixed.emplace_back(
            "coopmat", run_attention(s, AttentionPaths::all(GemmPath::coopmat), DType::f16, qkv, dout, zeros, false));
    else if (vkt_test::expect_coopmat())
        ADD_FAILURE() << "cooperative matrix expected but unavailable";
    // Mixed paths: one fp16 rounding of P, dS and of the result apart from fp32 (and so from each other).
    const AttentionReference mag = reference(s, DType::f16, qkv, dout, zeros, false);
    const auto compare = [](const std::vector<float>& got, const std::vector<float>& want,
                            const std::vector<double>& tol, const std::string& what) {
        std::vector<double> w(want.begin(), want.end()), t(tol.size());
        for (size_t i = 0; i < tol.size(); ++i) t[i] = 2 * tol[i];
        vkt_test::expect_close(got, w, t, what);
    };
    for (const auto& [name, r] : mixed) {
        compare(r.out, f32.out, mag.out_tol, name + " out vs fp32");
        compare(r.dqkv, f32.dqkv, mag.dqkv_tol, name + " dqkv vs fp32");
        compare(r.out, mixed[0].second.out, mag.out_tol, name + " out vs tiled");
        compare(r.dqkv, mixed[0].second.dqkv, mag.dqkv_tol, name + " dqkv vs tiled");
    }
}

TEST(AttentionShapeChecks, RefusesBadShapes) {
    vktrain::Model m;
    const int x = m.input("x", {7, 15});
    EXPECT_THROW(m.self_attention(x, 2), vktrain::Error);                     // 5 channels, 2 heads
    EXPECT_THROW(m.self_attention(m.input("y", {7, 14}), 1), vktrain::Error); // 14 is not 3·C
    EXPECT_THROW(m.self_attention(m.input("z", {105}), 1), vktrain::Error);   // not [T, 3C]
    EXPECT_THROW(m.self_attention(x, 0), vktrain::Error);
    EXPECT_NO_THROW(m.self_attention(x, 5));
}

// ---- the graph op through a Trainer ----

// x [T, 6] -> linear(3C) -> self_attention -> linear(4) -> flatten -> linear(3) -> cross-entropy.
vktrain::Model attention_model(bool causal) {
    vktrain::Model m;
    int x = m.input("x", {7, 6});
    x = m.self_attention(m.linear(x, 3 * 15), 3, causal);
    x = m.linear(m.flatten(m.linear(x, 4)), 3);
    m.softmax_cross_entropy(x);
    return m;
}

// Mixed precision on each fp16 GEMM path trains like fp32: same loss and parameter gradients within fp16
// tolerances, and every attention GEMM is a reported site.
TEST(AttentionTrainer, MixedPathsMatchFp32) {
    VKT_REQUIRE_FP16();
    const uint32_t batch = 3;
    const auto x = vkt_test::random_values(size_t(batch) * 7 * 6, 81);
    std::vector<int32_t> labels{0, 2, 1};
    const std::vector<const void*> in{x.data(), labels.data()};
    for (bool causal : {true, false}) {
        const vktrain::Model model = attention_model(causal);
        vktrain::TrainerOptions o;
        o.batch_size = batch;
        o.seed = 5;
        o.precision = vktrain::Precision::fp32;
        vktrain::Trainer t32(vkt_test::unfused_attention_context(), model, o);
        std::vector<std::vector<float>> g32;
        const float loss32 = t32.compute_gradients(in, batch, g32);
        std::vector<GemmPath> paths{GemmPath::tiled_fp16};
        if (vkt_test::context().coopmat_available()) paths.push_back(GemmPath::coopmat);
        for (GemmPath path : paths) {
            o.precision = vktrain::Precision::mixed;
            o.gemm_path = path;
            vktrain::Trainer t(vkt_test::unfused_attention_context(), model, o);
            t.set_parameters(t32.parameters());
            int sites = 0;
            for (const auto& r : t.gemm_paths())
                if (r.site.find("attn0.") == 0) {
                    ++sites;
                    EXPECT_EQ(r.path, path) << r.site;
                }
            EXPECT_EQ(sites, 6) << "scores, values, dp, dq, dk, dv";
            std::vector<std::vector<float>> g;
            const float loss = t.compute_gradients(in, batch, g);
            EXPECT_NEAR(loss, loss32, 5e-3 * (1 + std::fabs(loss32))) << path_name(path);
            ASSERT_EQ(g.size(), g32.size());
            for (size_t k = 0; k < g.size(); ++k) {
                double scale = 0;
                for (float v : g32[k]) scale = std::max(scale, double(std::fabs(v)));
                for (size_t i = 0; i < g[k].size(); ++i)
                    ASSERT_NEAR(g[k][i], g32[k][i], 2e-2 * scale + 1e-4)
                        << path_name(path) << (causal ? " causal" : " full") << " gradient " << k << "[" << i << "]";
            }
        }
    }
}

// Auto path choice covers the attention GEMMs as sites keyed by their batch and leading dimensions, and
// evaluation mode (no backward, nothing saved) predicts what training's forward computes.
TEST(AttentionTrainer, AutoPathSitesAndPredict) {
    VKT_REQUIRE_FP16();
    const uint32_t batch = 3;
    const auto x = vkt_test::random_values(size_t(batch) * 7 * 6, 82);
    const vktrain::Model model = attention_model(true);
    vktrain::TrainerOptions o;
    o.batch_size = batch;
    o.seed = 6;
    o.precision = vktrain::Precision::mixed;
    vktrain::Trainer t(vkt_test::unfused_attention_context(), model, o);
    std::map<std::string, std::string> keys;
    for (const auto& r : t.gemm_paths()) keys[r.site] = r.shape;
    EXPECT_EQ(keys["attn0.forward:scores"], "ABt:m=7,n=7,k=5,out=f32,batch=9,ld=45/45/0");
    EXPECT_EQ(keys["attn0.forward:values"], "AB:m=7,n=5,k=7,out=f16,batch=9,ld=0/45/15");
    EXPECT_EQ(keys["attn0.backward:dk"], "AtB:m=7,n=5,k=7,out=f16,batch=9,ld=0/45/45");
    o.precision = vktrain::Precision::fp32;
    vktrain::Trainer t32(vkt_test::unfused_attention_context(), model, o);
    t32.set_parameters(t.parameters());
    const auto p16 = t.predict({x.data(), nullptr}, batch), p32 = t32.predict({x.data(), nullptr}, batch);
    ASSERT_EQ(p16.size(), size_t(batch) * 3);
    for (size_t i = 0; i < p16.size(); ++i) EXPECT_NEAR(p16[i], p32[i], 1e-2 * (1 + std::fabs(p32[i]))) << i;
}

} // namespace
