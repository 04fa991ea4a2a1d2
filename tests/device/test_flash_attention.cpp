// Fused (flash) attention (issue 25): the forward and backward kernels against a double-precision reference and
// against the unfused path (strided GEMMs + softmax) on several shapes (T not a multiple of the blocks, head sizes
// 16 to 128, causal and not, grouped-query heads), fp32 and fp16 storage, accumulation into existing gradients,
// determinism (two runs bit for bit); through the graph: the fused and unfused plans train alike, the fused plan
// holds no score matrix, and finite differences of the loss match the fused gradients.
#include <cmath>
#include <cstring>
#include <random>

#include "device/support.hpp"
#include "device/support/attention_models.hpp"
#include "graph/ir.hpp"
#include "graph/registry.hpp"
#include "kernels/attention.hpp"
#include "kernels/flash_attention.hpp"
#include "runtime/context_access.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::AttentionOperand;
using vktrain::kernels::AttentionPaths;
using vktrain::kernels::AttentionQkv;
using vktrain::kernels::AttentionShape;
using vktrain::kernels::DType;

using Inputs = vkt_test::AttentionInputs;

Inputs make_inputs(const AttentionShape& s, DType act, uint32_t seed) {
    return vkt_test::make_attention_inputs(s, act, seed, 2.0f);
}

struct Result {
    std::vector<float> out, lse, dq, dk, dv;
};

Result run_fused(const AttentionShape& s, DType act, const Inputs& in, bool accumulate) {
    auto& dev = vkt_test::device();
    const vkt_test::Placed pq = vkt_test::place(in.q, act, 3), pk = vkt_test::place(in.k, act, 1),
                           pv = vkt_test::place(in.v, act, 5), pdo = vkt_test::place(in.dout, act, 2);
    const vkt_test::Placed po = vkt_test::place(std::vector<float>(in.dout.size(), 0), act, 4);
    const vkt_test::Placed pl =
        vkt_test::place(std::vector<float>(size_t(s.batch) * s.heads * s.seq, 0), DType::f32, 1);
    const auto grad0 = [&](const std::vector<float>& v0) { return accumulate ? v0 : std::vector<float>(v0.size(), 9); };
    const vkt_test::Placed pdq = vkt_test::place(grad0(in.dq0), act, 6), pdk = vkt_test::place(grad0(in.dk0), act, 7),
                           pdv = vkt_test::place(grad0(in.dv0), act, 1);
    const AttentionQkv qkv = vktrain::kernels::separate_qkv(s, pq.ref(), pk.ref(), pv.ref());
    const AttentionOperand dq{pdq.ref(), 0, s.channels()}, dk{pdk.ref(), 0, s.kv_channels()},
        dv{pdv.ref(), 0, s.kv_channels()};
    vkt_test::run([&](vktrain::runtime::Sequence& seq) {
        vktrain::kernels::record_flash_attention(dev, seq, s, qkv, po.ref(), pl.ref());
        // dq alone, then dk and dv in one dispatch: the graph's two uses of the kernels.
        vktrain::kernels::record_flash_attention_backward(dev, seq, s, qkv, po.ref(), pl.ref(), pdo.ref(), &dq, nullptr,
                                                          nullptr, accumulate);
        vktrain::kernels::record_flash_attention_backward(dev, seq, s, qkv, po.ref(), pl.ref(), pdo.ref(), nullptr, &dk,
                                                          &dv, accumulate);
    });
    return {po.values(), pl.values(), pdq.values(), pdk.values(), pdv.values()};
}

// The unfused path: scores and probabilities materialised, GEMMs on `path`.
Result run_unfused(const AttentionShape& s, GemmPath path, DType act, const Inputs& in) {
    auto& dev = vkt_test::device();
    const size_t scores = s.score_elements();
    const vkt_test::Placed pq = vkt_test::place(in.q, act, 3), pk = vkt_test::place(in.k, act, 1),
                           pv = vkt_test::place(in.v, act, 5), pdo = vkt_test::place(in.dout, act, 2);
    const vkt_test::Placed po = vkt_test::place(std::vector<float>(in.dout.size(), 0), act, 4);
    const vkt_test::Placed pdq = vkt_test::place(std::vector<float>(in.q.size(), 0), act, 6),
                           pdk = vkt_test::place(std::vector<float>(in.k.size(), 0), act, 7),
                           pdv = vkt_test::place(std::vector<float>(in.v.size(), 0), act, 1);
    const vkt_test::Placed ps = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 0);
    const vkt_test::Placed pp = vkt_test::place(std::vector<float>(scores, 0), act, 6);
    const vkt_test::Placed pdp = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 7);
    const vkt_test::Placed pds = vkt_test::place(std::vector<float>(scores, 0), act, 8);
    const AttentionQkv qkv = vktrain::kernels::separate_qkv(s, pq.ref(), pk.ref(), pv.ref());
    vkt_test::run([&](vktrain::runtime::Sequence& seq) {
        namespace k = vktrain::kernels;
        k::record_attention(dev, seq, s, AttentionPaths::all(path), qkv, ps.ref(), pp.ref(), po.ref());
        k::record_attention_backward_scores(dev, seq, s, path, qkv, pp.ref(), pdo.ref(), pdp.ref(), pds.ref());
        k::record_attention_input_grad(dev, seq, s, path, 0, qkv, pds.ref(), {}, {pdq.ref(), 0, s.channels()}, false);
        k::record_attention_input_grad(dev, seq, s, path, 1, qkv, pds.ref(), {}, {pdk.ref(), 0, s.kv_channels()},
                                       false);
        k::record_attention_input_grad(dev, seq, s, path, 2, qkv, pp.ref(), pdo.ref(), {pdv.ref(), 0, s.kv_channels()},
                                       false);
    });
    return {po.values(), {}, pdq.values(), pdk.values(), pdv.values()};
}

struct Reference {
    std::vector<double> out, out_mag, lse, dq, dq_mag, dk, dk_mag, dv, dv_mag;
};

// Double precision from the (rounded) inputs. *_mag: the sum of the absolute values of the terms each result sums
// (what its rounding errors scale with).
Reference reference(const AttentionShape& s, const Inputs& in) {
    const uint32_t B = s.batch, T = s.seq, H = s.heads, D = s.head_size, G = s.group();
    const uint64_t C = s.channels(), KC = s.kv_channels();
    const double scale = 1.0 / std::sqrt(double(D));
    Reference r;
    r.out.assign(in.q.size(), 0.0);
    r.out_mag = r.out;
    r.dq = r.out;
    r.dq_mag = r.out;
    r.lse.assign(size_t(B) * H * T, 0.0);
    r.dk.assign(in.k.size(), 0.0);
    r.dk_mag = r.dv = r.dv_mag = r.dk;
    std::vector<double> p(T), dp(T), dp_mag(T);
    for (uint32_t b = 0; b < B; ++b)
        for (uint32_t h = 0; h < H; ++h) {
            const uint32_t g = h / G;
            for (uint32_t t = 0; t < T; ++t) {
                const size_t qi = (size_t(b) * T + t) * C + size_t(h) * D;
                const uint32_t visible = s.causal ? t + 1 : T;
                double m = -1e300;
                for (uint32_t j = 0; j < visible; ++j) {
                    const size_t ki = (size_t(b) * T + j) * KC + size_t(g) * D;
                    double acc = 0;
                    for (uint32_t d = 0; d < D; ++d) acc += double(in.q[qi + d]) * in.k[ki + d];
                    p[j] = acc * scale;
                    m = std::max(m, p[j]);
                }
                double sum = 0;
                for (uint32_t j = 0; j < visible; ++j) sum += (p[j] = std::exp(p[j] - m));
                for (uint32_t j = 0; j < visible; ++j) p[j] /= sum;
                r.lse[(size_t(b) * H + h) * T + t] = m + std::log(sum);
                double delta = 0, delta_mag = 0;
                for (uint32_t j = 0; j < visible; ++j) {
                    const size_t vi = (size_t(b) * T + j) * KC + size_t(g) * D;
                    dp[j] = dp_mag[j] = 0;
                    for (uint32_t d = 0; d < D; ++d) {
                        r.out[qi + d] += p[j] * in.v[vi + d];
                        r.out_mag[qi + d] += p[j] * std::fabs(in.v[vi + d]);
                        dp[j] += double(in.dout[qi + d]) * in.v[vi + d];
                        dp_mag[j] += std::fabs(double(in.dout[qi + d]) * in.v[vi + d]);
                    }
                }
                for (uint32_t d = 0; d < D; ++d) {
                    delta += in.dout[qi + d] * r.out[qi + d];
                    delta_mag += std::fabs(in.dout[qi + d] * r.out[qi + d]);
                }
                for (uint32_t j = 0; j < visible; ++j) {
                    const size_t ki = (size_t(b) * T + j) * KC + size_t(g) * D;
                    const double ds = p[j] * (dp[j] - delta), ds_mag = p[j] * (dp_mag[j] + delta_mag);
                    for (uint32_t d = 0; d < D; ++d) {
                        r.dq[qi + d] += scale * ds * in.k[ki + d];
                        r.dq_mag[qi + d] += scale * ds_mag * std::fabs(in.k[ki + d]);
                        r.dk[ki + d] += scale * ds * in.q[qi + d];
                        r.dk_mag[ki + d] += scale * ds_mag * std::fabs(in.q[qi + d]);
                        r.dv[ki + d] += p[j] * in.dout[qi + d];
                        r.dv_mag[ki + d] += p[j] * std::fabs(in.dout[qi + d]);
                    }
                }
            }
        }
    return r;
}

// fp32 arithmetic: sums of up to T + D terms (the scores, the softmax and each product), a few ulps each, growing
// like sqrt(T + D); exp and log a few ulps of the probabilities. fp16 storage adds the output's one rounding (the
// inputs are rounded before the reference sees them) and fp16's subnormal floor; accumulating, the sum with the
// existing gradient `base` rounds once more.
std::vector<double> tolerance(const std::vector<double>& ref, const std::vector<double>& mag, const AttentionShape& s,
                              DType act, const std::vector<float>* base = nullptr) {
    const double u32 = std::ldexp(1.0, -24), growth = std::sqrt(double(s.seq + s.head_size));
    std::vector<double> tol(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
        tol[i] = 16 * u32 * growth * (mag[i] + std::fabs(ref[i])) + 1e-30;
        // Accumulating: the sum with the existing value rounds once more (in the storage type).
        const double total = std::fabs(ref[i]) + (base ? std::fabs((*base)[i]) : 0.0);
        if (base) tol[i] += u32 * total;
        // fp16: the output's rounding, and the backward's D = rowsum(dO ⊙ O) reads the stored (rounded) O: one unit of
        // the terms' magnitude.
        if (act == DType::f16) tol[i] += vkt_test::unit(act) * (total + mag[i]) + 2 * vkt_test::floor_abs(act);
    }
    return tol;
}

struct Case {
    uint32_t batch, seq, heads, kv_heads, head_size;
    bool causal;
};

std::string name(const Case& c, DType act) {
    return std::string(vktrain::kernels::dtype_name(act)) + " b" + std::to_string(c.batch) + " T" +
           std::to_string(c.seq) + " h" + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " d" +
           std::to_string(c.head_size) + (c.causal ? " causal" : " full");
}

AttentionShape shape_of(const Case& c) {
    AttentionShape s;
    s.batch = c.batch;
    s.seq = c.seq;
    s.heads = c.heads;
    s.kv_heads = c.kv_heads;
    s.head_size = c.head_size;
    s.causal = c.causal;
    return s;
}

// T below, at and above the 64-row workgroups and across key blocks of every head size (28 rows at 64, 14 at 128).
const Case k_cases[] = {
    {2, 37, 2, 2, 16, true},  {1, 70, 4, 2, 32, false}, {2, 65, 2, 1, 64, true},
    {1, 29, 2, 2, 128, true}, {1, 19, 3, 3, 24, false}, {1, 1, 2, 2, 8, true},
};

std::vector<DType> types() {
    std::vector<DType> t{DType::f32};
    if (vkt_test::context().fp16_available()) t.push_back(DType::f16);
    return t;
}

TEST(FlashAttention, ForwardAndBackwardMatchDoublePrecision) {
    for (DType act : types())
        for (const Case& c : k_cases)
            for (bool accumulate : {false, true}) {
                const AttentionShape s = shape_of(c);
                const Inputs in = make_inputs(s, act, 11 + c.seq);
                const Result got = run_fused(s, act, in, accumulate);
                Reference r = reference(s, in);
                const std::string what = name(c, act) + (accumulate ? " accumulate" : "");
                vkt_test::expect_close(got.out, r.out, tolerance(r.out, r.out_mag, s, act), what + " out");
                std::vector<double> lse_mag(r.lse.size()), lse_tol(r.lse.size());
                for (size_t i = 0; i < r.lse.size(); ++i)
                    lse_tol[i] = 16 * std::ldexp(1.0, -24) * std::sqrt(double(s.seq + s.head_size)) *
                                 (std::fabs(r.lse[i]) + 4.0 * std::sqrt(double(s.head_size)));
                vkt_test::expect_close(got.lse, r.lse, lse_tol, what + " lse");
                const auto add = [&](std::vector<double>& ref, const std::vector<float>& v0) {
                    if (accumulate)
                        for (size_t i = 0; i < ref.size(); ++i) ref[i] += v0[i];
                };
                const std::vector<double> dq_tol = tolerance(r.dq, r.dq_mag, s, act, accumulate ? &in.dq0 : nullptr);
                const std::vector<double> dk_tol = tolerance(r.dk, r.dk_mag, s, act, accumulate ? &in.dk0 : nullptr);
                const std::vector<double> dv_tol = tolerance(r.dv, r.dv_mag, s, act, accumulate ? &in.dv0 : nullptr);
                add(r.dq, in.dq0);
                add(r.dk, in.dk0);
                add(r.dv, in.dv0);
                vkt_test::expect_close(got.dq, r.dq, dq_tol, what + " dq");
                vkt_test::expect_close(got.dk, r.dk, dk_tol, what + " dk");
                vkt_test::expect_close(got.dv, r.dv, dv_tol, what + " dv");
            }
}

// Fused against the unfused path on the same inputs: both within their error bounds of the exact result, so within
// the sum of the bounds of each other (the unfused fp16 path also rounds P and dS to fp16: one more unit each).
TEST(FlashAttention, MatchesUnfusedPath) {
    for (DType act : types())
        for (const Case& c : k_cases) {
            const AttentionShape s = shape_of(c);
            const Inputs in = make_inputs(s, act, 23 + c.head_size);
            const GemmPath path = act == DType::f16 ? GemmPath::tiled_fp16 : GemmPath::fp32;
            const Result fused = run_fused(s, act, in, false), unfused = run_unfused(s, path, act, in);
            const Reference r = reference(s, in);
            const std::string what = name(c, act);
            const auto both = [&](const std::vector<double>& ref, const std::vector<double>& mag) {
                std::vector<double> tol = tolerance(ref, mag, s, act);
                const double extra = act == DType::f16 ? 4 * vkt_test::unit(act) * std::sqrt(double(s.seq)) : 0.0;
                for (size_t i = 0; i < tol.size(); ++i) tol[i] = 2 * tol[i] + extra * mag[i];
                return tol;
            };
            const auto as_double = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
            vkt_test::expect_close(fused.out, as_double(unfused.out), both(r.out, r.out_mag), what + " out");
            vkt_test::expect_close(fused.dq, as_double(unfused.dq), both(r.dq, r.dq_mag), what + " dq");
            vkt_test::expect_close(fused.dk, as_double(unfused.dk), both(r.dk, r.dk_mag), what + " dk");
            vkt_test::expect_close(fused.dv, as_double(unfused.dv), both(r.dv, r.dv_mag), what + " dv");
        }
}

// The cooperative-matrix kernels (fp16 storage where the device lists fp16 × fp16 -> fp32 shapes; the shape taken
// from that list) against the fp32 kernels and the unfused path on its cooperative-matrix GEMMs, on the same
// fp16-rounded inputs, within the bounds of MatchesUnfusedPath; ContextOptions::allow_coopmat off forces the
// fp32-arithmetic kernels.
TEST(FlashAttention, CoopmatMatchesFp32AndUnfused) {
    VKT_REQUIRE_COOPMAT();
    auto& dev = vkt_test::device();
    for (const Case& c : k_cases) {
        const AttentionShape s = shape_of(c);
        const std::string what = name(c, DType::f16);
        EXPECT_TRUE(vktrain::kernels::flash_attention_uses_coopmat(dev, s, DType::f16)) << what;
        EXPECT_FALSE(vktrain::kernels::flash_attention_uses_coopmat(dev, s, DType::f32)) << what;
        const Inputs in = make_inputs(s, DType::f16, 29 + c.seq);
        const Result cm = run_fused(s, DType::f16, in, false), fp32 = run_fused(s, DType::f32, in, false),
                     unfused = run_unfused(s, GemmPath::coopmat, DType::f16, in);
        const Reference r = reference(s, in);
        const auto both = [&](const std::vector<double>& ref, const std::vector<double>& mag) {
            std::vector<double> tol = tolerance(ref, mag, s, DType::f16);
            const double extra = 4 * vkt_test::unit(DType::f16) * std::sqrt(double(s.seq));
            for (size_t i = 0; i < tol.size(); ++i) tol[i] = 2 * tol[i] + extra * mag[i];
            return tol;
        };
        const auto as_double = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
        for (const auto& [other, against] : {std::pair{&fp32, " vs fp32"}, {&unfused, " vs unfused"}}) {
            vkt_test::expect_close(cm.out, as_double(other->out), both(r.out, r.out_mag), what + against + " out");
            vkt_test::expect_close(cm.dq, as_double(other->dq), both(r.dq, r.dq_mag), what + against + " dq");
            vkt_test::expect_close(cm.dk, as_double(other->dk), both(r.dk, r.dk_mag), what + against + " dk");
            vkt_test::expect_close(cm.dv, as_double(other->dv), both(r.dv, r.dv_mag), what + against + " dv");
        }
    }
    vktrain::ContextOptions o = vkt_test::context_options();
    o.allow_coopmat = false;
    vktrain::Context off(o);
    EXPECT_FALSE(vktrain::kernels::flash_attention_uses_coopmat(vktrain::detail::ContextAccess::device(off),
                                                                shape_of(k_cases[0]), DType::f16));
}

TEST(FlashAttention, TwoRunsAreBitIdentical) {
    for (DType act : types()) {
        const Case c{2, 100, 4, 2, 32, true};
        const AttentionShape s = shape_of(c);
        const Inputs in = make_inputs(s, act, 5);
        const Result a = run_fused(s, act, in, false), b = run_fused(s, act, in, false);
        const std::string what = name(c, act);
        EXPECT_EQ(a.out, b.out) << what;
        EXPECT_EQ(a.lse, b.lse) << what;
        EXPECT_EQ(a.dq, b.dq) << what;
        EXPECT_EQ(a.dk, b.dk) << what;
        EXPECT_EQ(a.dv, b.dv) << what;
    }
}

TEST(FlashAttention, RefusesBadOperandsWithOneLine) {
    auto& dev = vkt_test::device();
    AttentionShape s = shape_of({1, 8, 2, 2, 300, true});
    EXPECT_FALSE(vktrain::kernels::flash_attention_supported(dev, s));
    s.head_size = 8;
    EXPECT_TRUE(vktrain::kernels::flash_attention_supported(dev, s));
    const vkt_test::Placed q = vkt_test::place(std::vector<float>(8 * 16, 0), DType::f32, 0);
    const vkt_test::Placed lse = vkt_test::place(std::vector<float>(2 * 8, 0), DType::f32, 0);
    const vkt_test::Placed small = vkt_test::place(std::vector<float>(8 * 16 - 1, 0), DType::f32, 0);
    const AttentionQkv qkv = vktrain::kernels::separate_qkv(s, q.ref(), q.ref(), q.ref());
    vkt_test::run([&](vktrain::runtime::Sequence& seq) {
        EXPECT_THROW(vktrain::kernels::record_flash_attention(dev, seq, s, qkv, small.ref(), lse.ref()),
                     vktrain::Error);
        EXPECT_THROW(vktrain::kernels::record_flash_attention(dev, seq, s, qkv, q.ref(), lse.ref()), vktrain::Error);
    });
}

// ---- through the graph ----

// 4 heads of 4 over kv_heads (0: GPT-2's fused qkv with self_attention).
vktrain::Model attention_model(uint32_t seq, uint32_t kv_heads, bool causal) {
    return vkt_test::attention_classifier(seq, 4, 4, kv_heads, causal);
}

struct GraphRun {
    float loss = 0;
    std::vector<std::vector<float>> grads;
    std::vector<vktrain::Parameter> params;
};

TEST(FlashAttentionGraph, FusedTrainsLikeUnfused) {
    const uint32_t batch = 3, seq = 70;
    const auto x = vkt_test::random_values(size_t(batch) * seq * 6, 31);
    std::vector<int32_t> labels{2, 0, 1};
    const std::vector<const void*> in{x.data(), labels.data()};
    std::vector<vktrain::Precision> precisions{vktrain::Precision::fp32};
    if (vkt_test::context().fp16_available()) precisions.push_back(vktrain::Precision::mixed);
    for (vktrain::Precision precision : precisions)
        for (uint32_t kv_heads : {0u, 4u, 2u}) {
            const bool causal = kv_heads != 4;
            const vktrain::Model model = attention_model(seq, kv_heads, causal);
            vktrain::TrainerOptions o;
            o.batch_size = batch;
            o.seed = 3;
            o.precision = precision;
            if (precision == vktrain::Precision::mixed) o.gemm_path = GemmPath::tiled_fp16;
            vktrain::Trainer tu(vkt_test::unfused_attention_context(), model, o);
            vktrain::Trainer tf(vkt_test::fused_attention_context(), model, o);
            tf.set_parameters(tu.parameters());
            std::vector<std::vector<float>> gu, gf;
            const float lu = tu.compute_gradients(in, batch, gu), lf = tf.compute_gradients(in, batch, gf);
            const std::string what = std::string(precision == vktrain::Precision::fp32 ? "fp32" : "mixed") +
                                     " kv_heads " + std::to_string(kv_heads);
            const double rel = precision == vktrain::Precision::fp32 ? 1e-5 : 1e-2;
            EXPECT_NEAR(lf, lu, rel * (1 + std::fabs(lu))) << what;
            ASSERT_EQ(gf.size(), gu.size());
            // Each tensor's scale, but at least 1% of the largest: the key projection's bias gradient is exactly 0 in
            // exact arithmetic (softmax ignores a per-row shift), rounding noise in both paths.
            double largest = 0;
            for (const auto& gk : gu)
                for (float v : gk) largest = std::max(largest, double(std::fabs(v)));
            for (size_t k = 0; k < gf.size(); ++k) {
                double scale = 0.01 * largest;
                for (float v : gu[k]) scale = std::max(scale, double(std::fabs(v)));
                for (size_t i = 0; i < gf[k].size(); ++i)
                    ASSERT_NEAR(gf[k][i], gu[k][i], rel * scale + 1e-7) << what << " gradient " << k << "[" << i << "]";
            }
        }
}

// The unfused plan holds P (saved for the backward) and dP, each batch·heads·T·T elements; the fused plan none of
// them: on fresh contexts, peak device memory drops by at least two fp32 score matrices.
TEST(FlashAttentionGraph, FusedPlanHoldsNoScoreMatrix) {
    const uint32_t batch = 2, seq = 96;
    vktrain::TrainerOptions o;
    o.batch_size = batch;
    o.precision = vktrain::Precision::fp32;
    const auto peak = [&](bool fused, uint64_t min_score_bytes) {
        vktrain::ContextOptions co = vkt_test::context_options();
        co.allow_fused_attention = fused;
        co.fused_attention_min_score_bytes = min_score_bytes;
        vktrain::Context ctx(co);
        vktrain::Trainer t(ctx, attention_model(seq, 0, true), o);
        return ctx.peak_allocated_bytes();
    };
    const uint64_t fused = peak(true, 0), unfused = peak(false, 0);
    const uint64_t score_bytes = uint64_t(batch) * 4 * seq * seq * 4;
    EXPECT_GE(unfused, fused + 2 * score_bytes) << "fused " << fused << " bytes, unfused " << unfused;

    // The automatic choice (ContextOptions::fused_attention_min_score_bytes): a node runs fused exactly when its
    // unfused score matrix (batch · heads · T² fp32) reaches the threshold; the default (64 MiB) keeps this small
    // one unfused, where the strided GEMMs are faster.
    EXPECT_EQ(peak(true, score_bytes), fused) << "a score matrix of exactly the threshold runs fused";
    EXPECT_EQ(peak(true, score_bytes + 1), unfused) << "a score matrix below the threshold runs unfused";
    EXPECT_EQ(peak(true, vktrain::ContextOptions{}.fused_attention_min_score_bytes), unfused) << "the default";
}

// The Llama layout (separate q, k, v) needs dq, dk and dv: its fused backward runs two nodes (dq, then dk and dv
// from one dispatch that recomputes P once), not one per gradient. Where k and v are one value (its gradient
// written by one node and added to by the next) it keeps one node each, and matches the unfused gradients.
TEST(FlashAttentionGraph, SeparateQkvBackwardRunsOneDkDvNode) {
    const auto fused_nodes = [](const vktrain::Model& m, uint64_t min_bytes = 0) {
        const vktrain::graph::Ir ir = vktrain::graph::build_ir(m, 2, true, 1, min_bytes);
        std::vector<std::string> names;
        for (const auto& n : ir.nodes)
            if (n.backward && n.op->name.find("attention") != std::string::npos) names.push_back(n.op->name);
        return names;
    };
    const std::vector<std::string> llama{"attention_fused_q_grad", "attention_fused_kv_grad"};
    EXPECT_EQ(fused_nodes(attention_model(12, 2, true)), llama);
    EXPECT_EQ(fused_nodes(attention_model(12, 4, false)), llama);
    // Ir::fused_attention_min_bytes: UINT64_MAX (the default) fuses none.
    EXPECT_EQ(
        fused_nodes(attention_model(12, 2, true), UINT64_MAX),
        (std::vector<std::string>{"attention_backward", "attention_q_grad", "attention_k_grad", "attention_v_grad"}));

    // k == v: one projection feeds both.
    vktrain::Model shared;
    const int x = shared.input("x", {12, 6});
    const int kv = shared.linear(x, 8);
    shared.softmax_cross_entropy(
        shared.linear(shared.flatten(shared.linear(shared.attention(shared.linear(x, 16), kv, kv, 4, 2, true), 4)), 3));
    const std::vector<std::string> separate{"attention_fused_q_grad", "attention_fused_k_grad",
                                            "attention_fused_v_grad"};
    EXPECT_EQ(fused_nodes(shared), separate);
    const uint32_t batch = 2;
    const auto xs = vkt_test::random_values(size_t(batch) * 12 * 6, 51);
    std::vector<int32_t> labels{1, 0};
    const std::vector<const void*> in{xs.data(), labels.data()};
    vktrain::TrainerOptions o;
    o.batch_size = batch;
    o.seed = 5;
    o.precision = vktrain::Precision::fp32;
    vktrain::Trainer tu(vkt_test::unfused_attention_context(), shared, o);
    vktrain::Trainer tf(vkt_test::fused_attention_context(), shared, o);
    tf.set_parameters(tu.parameters());
    std::vector<std::vector<float>> gu, gf;
    EXPECT_NEAR(tf.compute_gradients(in, batch, gf), tu.compute_gradients(in, batch, gu), 1e-5);
    ASSERT_EQ(gf.size(), gu.size());
    for (size_t k = 0; k < gf.size(); ++k)
        for (size_t i = 0; i < gf[k].size(); ++i)
            ASSERT_NEAR(gf[k][i], gu[k][i], 1e-5 * (1 + std::fabs(gu[k][i]))) << "gradient " << k << "[" << i << "]";
}

// Central differences of the loss (fp32, fused path) against the fused gradients of the attention inputs'
// projection weights.
TEST(FlashAttentionGraph, FiniteDifferencesMatchFusedGradients) {
    const uint32_t batch = 2, seq = 9;
    const auto x = vkt_test::random_values(size_t(batch) * seq * 6, 41, -2.0f, 2.0f);
    std::vector<int32_t> labels{1, 2};
    const std::vector<const void*> in{x.data(), labels.data()};
    for (uint32_t kv_heads : {0u, 2u}) {
        vktrain::TrainerOptions o;
        o.batch_size = batch;
        o.seed = 4;
        o.precision = vktrain::Precision::fp32;
        vktrain::Trainer t(vkt_test::fused_attention_context(), attention_model(seq, kv_heads, true), o);
        // Larger weights than the init so that the attention is far from uniform.
        std::vector<vktrain::Parameter> p = t.parameters();
        for (auto& param : p)
            for (float& v : param.data) v *= 4.0f;
        t.set_parameters(p);
        std::vector<std::vector<float>> g;
        t.compute_gradients(in, batch, g);
        std::mt19937 rng(kv_heads + 1);
        // The q / k / v projections: parameters 0 .. (fused qkv: 0, 1; separate: 0 .. 5).
        const size_t projections = kv_heads == 0 ? 2 : 6;
        for (size_t k = 0; k < projections; ++k)
            for (int trial = 0; trial < 3; ++trial) {
                const size_t i = rng() % p[k].data.size();
                const float h = 1e-2f, keep = p[k].data[i];
                std::vector<std::vector<float>> unused;
                p[k].data[i] = keep + h;
                t.set_parameters(p);
                const double up = t.compute_gradients(in, batch, unused);
                p[k].data[i] = keep - h;
                t.set_parameters(p);
                const double down = t.compute_gradients(in, batch, unused);
                p[k].data[i] = keep;
                const double fd = (up - down) / (2.0 * h);
                // Central differences: O(h²) truncation plus fp32 loss rounding / h.
                EXPECT_NEAR(g[k][i], fd, 2e-3 + 2e-2 * std::fabs(fd))
                    << "kv_heads " << kv_heads << " " << p[k].name << "[" << i << "]";
            }
        t.set_parameters(p);
    }
}

} // namespace
