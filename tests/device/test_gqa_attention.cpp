// Attention over separate q, k and v with grouped-query heads (the `attention` op, issue 23): forward and backward
// against a double-precision reference with Hugging Face's repeat_kv semantics (query head h reads key/value head
// h / (heads / kv_heads)) for kv_heads = heads, heads / 2 and 1, several sequence lengths and head sizes, fp32 and
// mixed on every GEMM path; bit-for-bit equality with self_attention on the same q, k and v when kv_heads = heads;
// and the graph op through a Trainer (mixed paths against fp32, its GEMM sites, equality with self_attention).
#include <cmath>
#include <cstring>
#include <map>

#include "device/support.hpp"
#include "device/support/attention_models.hpp"
#include "kernels/attention.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::AttentionOperand;
using vktrain::kernels::AttentionPaths;
using vktrain::kernels::AttentionQkv;
using vktrain::kernels::AttentionShape;
using vktrain::kernels::DType;
using vktrain::kernels::TiledLoop;

const double k_u32 = std::ldexp(1.0, -24);

std::string path_name(GemmPath p) {
    return p == GemmPath::coopmat ? "coopmat" : p == GemmPath::tiled_fp16 ? "tiled" : "fp32";
}

#define REQUIRE_PATH(p)                                                                                                \
    do {                                                                                                               \
        if ((p) == GemmPath::coopmat) VKT_REQUIRE_COOPMAT();                                                           \
        if ((p) != GemmPath::fp32) VKT_REQUIRE_FP16();                                                                 \
    } while (0)

using Inputs = vkt_test::AttentionInputs;

Inputs make_inputs(const AttentionShape& s, DType act, uint32_t seed) {
    return vkt_test::make_attention_inputs(s, act, seed, 1.5f);
}

struct Result {
    std::vector<float> out, p, dq, dk, dv;
};

// Forward, then the backward as the graph op runs it: dS (and dP), then dQ, dK and dV from it.
Result run_gqa(const AttentionShape& s, GemmPath path, DType act, const Inputs& in, bool accumulate,
               TiledLoop loop = TiledLoop::automatic) {
    auto& dev = vkt_test::device();
    const size_t scores = s.score_elements();
    const vkt_test::Placed pq = vkt_test::place(in.q, act, 3), pk = vkt_test::place(in.k, act, 1),
                           pv = vkt_test::place(in.v, act, 5), pdo = vkt_test::place(in.dout, act, 2);
    const vkt_test::Placed po = vkt_test::place(std::vector<float>(in.dout.size(), 0), act, 4);
    const auto grad0 = [&](const std::vector<float>& v0) { return accumulate ? v0 : std::vector<float>(v0.size(), 9); };
    const vkt_test::Placed pdq = vkt_test::place(grad0(in.dq0), act, 6), pdk = vkt_test::place(grad0(in.dk0), act, 7),
                           pdv = vkt_test::place(grad0(in.dv0), act, 1);
    const vkt_test::Placed ps = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 0);
    const vkt_test::Placed pp = vkt_test::place(std::vector<float>(scores, 0), act, 6);
    const vkt_test::Placed pdp = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 7);
    const vkt_test::Placed pds = vkt_test::place(std::vector<float>(scores, 0), act, 8);
    const AttentionQkv qkv = vktrain::kernels::separate_qkv(s, pq.ref(), pk.ref(), pv.ref());
    const AttentionPaths paths = AttentionPaths::all(path);
    vkt_test::ForceTiledLoop force(loop);
    vkt_test::run([&](vktrain::runtime::Sequence& seq) {
        namespace k = vktrain::kernels;
        k::record_attention(dev, seq, s, paths, qkv, ps.ref(), pp.ref(), po.ref());
        k::record_attention_backward_scores(dev, seq, s, path, qkv, pp.ref(), pdo.ref(), pdp.ref(), pds.ref());
        k::record_attention_input_grad(dev, seq, s, path, 0, qkv, pds.ref(), {}, {pdq.ref(), 0, s.channels()},
                                       accumulate);
        k::record_attention_input_grad(dev, seq, s, path, 1, qkv, pds.ref(), {}, {pdk.ref(), 0, s.kv_channels()},
                                       accumulate);
        k::record_attention_input_grad(dev, seq, s, path, 2, qkv, pp.ref(), pdo.ref(), {pdv.ref(), 0, s.kv_channels()},
                                       accumulate);
    });
    return {po.values(), pp.values(), pdq.values(), pdk.values(), pdv.values()};
}

struct Reference {
    std::vector<double> out, out_tol, p, p_tol, dq, dq_tol, dk, dk_tol, dv, dv_tol;
};

// Double precision from the rounded inputs, with k and v repeated per query head (repeat_kv): dK and dV are the
// sums over each group's query heads. Tolerances as test_attention.cpp's reference, plus, in mixed precision, one
// fp16 rounding per query head summed into dK and dV.
Reference reference(const AttentionShape& s, DType act, const Inputs& in, bool accumulate) {
    const uint32_t B = s.batch, T = s.seq, H = s.heads, D = s.head_size, G = s.group();
    const uint64_t C = s.channels(), KC = s.kv_channels();
    const double scale = 1.0 / std::sqrt(double(D));
    const double c = 4 * vkt_test::unit(act) + 64 * k_u32, fl = 4 * vkt_test::floor_abs(act);
    Reference r;
    r.out.assign(in.q.size(), 0.0);
    r.out_tol.assign(in.q.size(), 0.0);
    r.p.assign(s.score_elements(), 0.0);
    r.p_tol.assign(r.p.size(), 0.0);
    const auto start = [&](const std::vector<float>& v0, std::vector<double>& sum, std::vector<double>& mag) {
        sum.assign(v0.size(), 0.0);
        mag.assign(v0.size(), 0.0);
        for (size_t i = 0; i < v0.size() && accumulate; ++i) {
            sum[i] = v0[i];
            mag[i] = std::fabs(v0[i]);
        }
    };
    std::vector<double> dq_mag, dk_mag, dv_mag;
    start(in.dq0, r.dq, dq_mag);
    start(in.dk0, r.dk, dk_mag);
    start(in.dv0, r.dv, dv_mag);
    const auto qi = [&](uint32_t b, uint32_t t, uint32_t h, uint32_t d) { return size_t((b * T + t) * C + h * D + d); };
    const auto ki = [&](uint32_t b, uint32_t t, uint32_t g, uint32_t d) {
        return size_t((b * T + t) * KC + g * D + d);
    };
    for (uint32_t b = 0; b < B; ++b)
        for (uint32_t h = 0; h < H; ++h) {
            const uint32_t g = h / G; // repeat_kv
            std::vector<double> P(size_t(T) * T, 0.0), dS(size_t(T) * T, 0.0), dS_mag(size_t(T) * T, 0.0);
            for (uint32_t i = 0; i < T; ++i) {
                const uint32_t visible = s.causal ? i + 1 : T;
                std::vector<double> srow(visible), dp(visible, 0.0);
                double mx = -1e300, sum = 0;
                for (uint32_t j = 0; j < visible; ++j) {
                    double dot = 0;
                    for (uint32_t d = 0; d < D; ++d) dot += double(in.q[qi(b, i, h, d)]) * in.k[ki(b, j, g, d)];
                    srow[j] = scale * dot;
                    mx = std::max(mx, srow[j]);
                }
                for (uint32_t j = 0; j < visible; ++j) sum += std::exp(srow[j] - mx);
                double dot = 0, dot_mag = 0;
                for (uint32_t j = 0; j < visible; ++j) {
                    P[i * T + j] = std::exp(srow[j] - mx) / sum;
                    for (uint32_t d = 0; d < D; ++d) dp[j] += double(in.dout[qi(b, i, h, d)]) * in.v[ki(b, j, g, d)];
                    dot += dp[j] * P[i * T + j];
                    dot_mag += std::fabs(dp[j] * P[i * T + j]);
                }
                for (uint32_t j = 0; j < visible; ++j) {
                    dS[i * T + j] = scale * P[i * T + j] * (dp[j] - dot);
                    dS_mag[i * T + j] = scale * P[i * T + j] * (std::fabs(dp[j]) + dot_mag);
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
                        sum += P[i * T + j] * in.v[ki(b, j, g, d)];
                        mag += P[i * T + j] * std::fabs(in.v[ki(b, j, g, d)]);
                    }
                    r.out[qi(b, i, h, d)] = sum;
                    r.out_tol[qi(b, i, h, d)] = 2 * c * mag + fl;
                }
            for (uint32_t i = 0; i < T; ++i)
                for (uint32_t j = 0; j < T; ++j)
                    for (uint32_t d = 0; d < D; ++d) {
                        const double ds = dS[i * T + j], dsm = dS_mag[i * T + j], pij = P[i * T + j];
                        r.dq[qi(b, i, h, d)] += ds * in.k[ki(b, j, g, d)];
                        dq_mag[qi(b, i, h, d)] += dsm * std::fabs(in.k[ki(b, j, g, d)]);
                        r.dk[ki(b, j, g, d)] += ds * in.q[qi(b, i, h, d)];
                        dk_mag[ki(b, j, g, d)] += dsm * std::fabs(in.q[qi(b, i, h, d)]);
                        r.dv[ki(b, j, g, d)] += pij * in.dout[qi(b, i, h, d)];
                        dv_mag[ki(b, j, g, d)] += pij * std::fabs(in.dout[qi(b, i, h, d)]);
                    }
        }
    r.dq_tol.resize(r.dq.size());
    for (size_t i = 0; i < r.dq.size(); ++i) r.dq_tol[i] = 3 * c * dq_mag[i] + fl;
    const double kv_c = 3 * c + G * vkt_test::unit(act);
    r.dk_tol.resize(r.dk.size());
    r.dv_tol.resize(r.dv.size());
    for (size_t i = 0; i < r.dk.size(); ++i) r.dk_tol[i] = kv_c * dk_mag[i] + G * fl;
    for (size_t i = 0; i < r.dv.size(); ++i) r.dv_tol[i] = kv_c * dv_mag[i] + G * fl;
    return r;
}

struct GqaCase {
    GemmPath path;
    uint32_t seq, heads, kv_heads, head_size;
    bool causal, accumulate;
    TiledLoop loop;
};

std::string gqa_name(const testing::TestParamInfo<GqaCase>& i) {
    const GqaCase& c = i.param;
    const char* loop = c.loop == TiledLoop::shared_memory ? "_smem" : c.loop == TiledLoop::registers ? "_regs" : "";
    return path_name(c.path) + "_T" + std::to_string(c.seq) + "_H" + std::to_string(c.heads) + "_KV" +
           std::to_string(c.kv_heads) + "_D" + std::to_string(c.head_size) + (c.causal ? "_causal" : "_full") +
           (c.accumulate ? "_acc" : "") + loop;
}

AttentionShape shape_of(const GqaCase& c) {
    AttentionShape s;
    s.batch = 2;
    s.seq = c.seq;
    s.heads = c.heads;
    s.kv_heads = c.kv_heads;
    s.head_size = c.head_size;
    s.causal = c.causal;
    return s;
}

class GqaAttentionTest : public testing::TestWithParam<GqaCase> {};

TEST_P(GqaAttentionTest, ForwardAndBackwardMatchRepeatKvReference) {
    const GqaCase& c = GetParam();
    REQUIRE_PATH(c.path);
    const DType act = c.path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const AttentionShape s = shape_of(c);
    const Inputs in = make_inputs(s, act, 100 + c.seq * 7 + c.kv_heads);
    const Result got = run_gqa(s, c.path, act, in, c.accumulate, c.loop);
    const Reference ref = reference(s, act, in, c.accumulate);
    vkt_test::expect_close(got.out, ref.out, ref.out_tol, "out");
    vkt_test::expect_close(got.p, ref.p, ref.p_tol, "probabilities");
    vkt_test::expect_close(got.dq, ref.dq, ref.dq_tol, "dq");
    vkt_test::expect_close(got.dk, ref.dk, ref.dk_tol, "dk");
    vkt_test::expect_close(got.dv, ref.dv, ref.dv_tol, "dv");
}

std::vector<GqaCase> gqa_cases() {
    std::vector<GqaCase> out;
    // Head counts (4 of them over 4, 2 and 1 key/value heads), odd and tile-sized T and D.
    const struct {
        uint32_t seq, kv_heads, head_size;
    } shapes[] = {{7, 4, 5}, {7, 2, 5}, {7, 1, 5}, {16, 2, 8}, {5, 1, 16}};
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat}) {
        const auto loops = path == GemmPath::coopmat
                               ? std::vector<TiledLoop>{TiledLoop::automatic}
                               : std::vector<TiledLoop>{TiledLoop::shared_memory, TiledLoop::registers};
        for (TiledLoop loop : loops)
            for (const auto& sh : shapes)
                out.push_back({path, sh.seq, 4, sh.kv_heads, sh.head_size, true, false, loop});
        out.push_back({path, 6, 6, 3, 4, false, false, TiledLoop::automatic});
        out.push_back({path, 7, 4, 2, 5, true, true, TiledLoop::automatic});
        out.push_back({path, 7, 4, 1, 3, false, true, TiledLoop::automatic});
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Attention, GqaAttentionTest, testing::ValuesIn(gqa_cases()), gqa_name);

// With kv_heads = heads, attention over separate q, k, v computes exactly what self_attention computes over the same
// values packed as GPT-2's q | k | v rows: the same GEMMs over other strides, bit for bit.
TEST(GqaAttention, EqualsSelfAttentionBitForBit) {
    std::vector<GemmPath> paths{GemmPath::fp32};
    if (vkt_test::context().fp16_available()) paths.push_back(GemmPath::tiled_fp16);
    if (vkt_test::context().coopmat_available())
        paths.push_back(GemmPath::coopmat);
    else if (vkt_test::expect_coopmat())
        ADD_FAILURE() << "cooperative matrix expected but unavailable";
    for (GemmPath path : paths)
        for (bool causal : {true, false}) {
            const DType act = path == GemmPath::fp32 ? DType::f32 : DType::f16;
            AttentionShape s = shape_of({path, 7, 3, 3, 5, causal, false, TiledLoop::automatic});
            const Inputs in = make_inputs(s, act, 300);
            const Result sep = run_gqa(s, path, act, in, false);
            // Pack q | k | v and run the fused form (kv_heads 0: self_attention's shape).
            s.kv_heads = 0;
            const size_t rows = size_t(s.batch) * s.seq, C = s.channels();
            std::vector<float> qkv(rows * 3 * C);
            for (size_t r = 0; r < rows; ++r)
                for (size_t j = 0; j < C; ++j) {
                    qkv[r * 3 * C + j] = in.q[r * C + j];
                    qkv[r * 3 * C + C + j] = in.k[r * C + j];
                    qkv[r * 3 * C + 2 * C + j] = in.v[r * C + j];
                }
            auto& dev = vkt_test::device();
            const size_t scores = s.score_elements();
            const vkt_test::Placed pqkv = vkt_test::place(qkv, act, 3), pdo = vkt_test::place(in.dout, act, 2);
            const vkt_test::Placed po = vkt_test::place(std::vector<float>(in.dout.size(), 0), act, 4);
            const vkt_test::Placed pd = vkt_test::place(std::vector<float>(qkv.size(), 0), act, 6);
            const vkt_test::Placed ps = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 0);
            const vkt_test::Placed pp = vkt_test::place(std::vector<float>(scores, 0), act, 6);
            const vkt_test::Placed pdp = vkt_test::place(std::vector<float>(scores, 0), DType::f32, 7);
            const vkt_test::Placed pds = vkt_test::place(std::vector<float>(scores, 0), act, 8);
            vkt_test::run([&](vktrain::runtime::Sequence& seq) {
                vktrain::kernels::record_attention(dev, seq, s, AttentionPaths::all(path), pqkv.ref(), ps.ref(),
                                                   pp.ref(), po.ref());
                vktrain::kernels::record_attention_backward(dev, seq, s, AttentionPaths::all(path), pqkv.ref(),
                                                            pp.ref(), pdo.ref(), pdp.ref(), pds.ref(), pd.ref(), false);
            });
            const auto out = po.values(), p = pp.values(), d = pd.values();
            const std::string what = path_name(path) + (causal ? " causal" : " full");
            EXPECT_EQ(0, std::memcmp(out.data(), sep.out.data(), out.size() * sizeof(float))) << what << " out";
            EXPECT_EQ(0, std::memcmp(p.data(), sep.p.data(), p.size() * sizeof(float))) << what << " p";
            size_t differ = 0;
            for (size_t r = 0; r < rows; ++r)
                for (size_t j = 0; j < C; ++j) {
                    differ += d[r * 3 * C + j] != sep.dq[r * C + j];
                    differ += d[r * 3 * C + C + j] != sep.dk[r * C + j];
                    differ += d[r * 3 * C + 2 * C + j] != sep.dv[r * C + j];
                }
            EXPECT_EQ(differ, 0u) << what << " gradients";
        }
}

// ---- the graph op through a Trainer ----

// x [7, 6] -> q, k, v projections -> attention (4 heads of 3 over kv_heads) -> linear(4) -> flatten -> linear(3)
// -> cross-entropy.
vktrain::Model gqa_model(uint32_t kv_heads, bool causal) {
    return vkt_test::attention_classifier(7, 4, 3, kv_heads, causal);
}

double max_abs(const std::vector<float>& v) {
    double m = 0;
    for (float x : v) m = std::max(m, double(std::fabs(x)));
    return m;
}

// Mixed precision on each fp16 GEMM path trains like fp32 (loss and parameter gradients within fp16 tolerances), and
// every attention GEMM is a reported site that a forced path reaches.
TEST(GqaAttentionTrainer, MixedPathsMatchFp32AndEverySiteTakesTheForcedPath) {
    VKT_REQUIRE_FP16();
    const uint32_t batch = 3;
    const auto x = vkt_test::random_values(size_t(batch) * 7 * 6, 91);
    std::vector<int32_t> labels{2, 0, 1};
    const std::vector<const void*> in{x.data(), labels.data()};
    for (uint32_t kv_heads : {4u, 2u, 1u}) {
        const vktrain::Model model = gqa_model(kv_heads, kv_heads != 4);
        vktrain::TrainerOptions o;
        o.batch_size = batch;
        o.seed = 7;
        o.precision = vktrain::Precision::fp32;
        vktrain::Trainer t32(vkt_test::unfused_attention_context(), model, o);
        std::vector<std::vector<float>> g32;
        const float loss32 = t32.compute_gradients(in, batch, g32);
        std::vector<GemmPath> paths{GemmPath::tiled_fp16};
        if (vkt_test::context().coopmat_available())
            paths.push_back(GemmPath::coopmat);
        else if (vkt_test::expect_coopmat())
            ADD_FAILURE() << "cooperative matrix expected but unavailable";
        for (GemmPath path : paths) {
            o.precision = vktrain::Precision::mixed;
            o.gemm_path = path;
            vktrain::Trainer t(vkt_test::unfused_attention_context(), model, o);
            t.set_parameters(t32.parameters());
            std::map<std::string, GemmPath> sites;
            for (const auto& r : t.gemm_paths())
                if (r.site.find("attention0.") == 0) sites[r.site] = r.path;
            EXPECT_EQ(sites.size(), 6u);
            for (const char* site : {"attention0.forward:scores", "attention0.forward:values", "attention0.backward:dp",
                                     "attention0.q_grad:dq", "attention0.k_grad:dk", "attention0.v_grad:dv"}) {
                ASSERT_TRUE(sites.count(site)) << site;
                EXPECT_EQ(sites[site], path) << site;
            }
            std::vector<std::vector<float>> g;
            const float loss = t.compute_gradients(in, batch, g);
            const std::string what = path_name(path) + " kv_heads " + std::to_string(kv_heads);
            EXPECT_NEAR(loss, loss32, 5e-3 * (1 + std::fabs(loss32))) << what;
            ASSERT_EQ(g.size(), g32.size());
            for (size_t k = 0; k < g.size(); ++k) {
                const double scale = max_abs(g32[k]);
                for (size_t i = 0; i < g[k].size(); ++i)
                    ASSERT_NEAR(g[k][i], g32[k][i], 2e-2 * scale + 1e-4)
                        << what << " gradient " << k << "[" << i << "]";
            }
        }
    }
}

// The same model built with self_attention over the fused projection and with attention over slices of it (q, k and
// v columns) computes the same loss, gradients and predictions, bit for bit, in fp32 and in mixed precision.
TEST(GqaAttentionTrainer, EqualsSelfAttentionModelBitForBit) {
    const uint32_t batch = 2;
    const auto x = vkt_test::random_values(size_t(batch) * 5 * 6, 92);
    std::vector<int32_t> labels{1, 2};
    const std::vector<const void*> in{x.data(), labels.data()};
    const auto build = [](bool separate) {
        vktrain::Model m;
        const int xi = m.input("x", {5, 6});
        const int qkv = m.linear(xi, 3 * 12);
        const int a = separate
                          ? m.attention(m.slice(qkv, 1, 0, 12), m.slice(qkv, 1, 12, 24), m.slice(qkv, 1, 24, 36), 3, 3)
                          : m.self_attention(qkv, 3);
        m.softmax_cross_entropy(m.linear(m.flatten(m.linear(a, 4)), 3));
        return m;
    };
    std::vector<vktrain::Precision> precisions{vktrain::Precision::fp32};
    if (vkt_test::context().fp16_available()) precisions.push_back(vktrain::Precision::mixed);
    // On both attention paths (the fused kernels, the default, and the unfused GEMMs).
    for (vktrain::Context* ctx : {&vkt_test::context(), &vkt_test::unfused_attention_context()})
        for (vktrain::Precision precision : precisions) {
            vktrain::TrainerOptions o;
            o.batch_size = batch;
            o.seed = 8;
            o.precision = precision;
            if (precision == vktrain::Precision::mixed) o.gemm_path = GemmPath::tiled_fp16;
            vktrain::Trainer fused(*ctx, build(false), o), sep(*ctx, build(true), o);
            sep.set_parameters(fused.parameters());
            std::vector<std::vector<float>> gf, gs;
            const float lf = fused.compute_gradients(in, batch, gf), ls = sep.compute_gradients(in, batch, gs);
            const std::string what = std::string(precision == vktrain::Precision::fp32 ? "fp32" : "mixed") +
                                     (ctx == &vkt_test::context() ? " fused attention" : " unfused attention");
            EXPECT_EQ(lf, ls) << what;
            ASSERT_EQ(gf.size(), gs.size());
            for (size_t k = 0; k < gf.size(); ++k) EXPECT_EQ(gf[k], gs[k]) << what << " gradient " << k;
            EXPECT_EQ(fused.predict({x.data(), nullptr}, batch), sep.predict({x.data(), nullptr}, batch)) << what;
        }
}

} // namespace
