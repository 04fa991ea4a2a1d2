// Token embedding, learned positional embedding and weight tying. The kernels against a double-precision CPU
// reference (odd vocabulary 13, dims 7, 37 and 300, repeated ids, rows no id names, accumulate mode, operands at
// offsets between sentinels) in fp32 and fp16 storage; the graph ops through a Trainer against the same reference
// (an MSE model, so the output gradient is known), the positional embedding with fewer positions than its table;
// out-of-range ids refused before anything runs; and a tied model whose shared weight's gradient is the sum of
// both uses (an untied twin with equal weights) and matches finite differences.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "device/support.hpp"
#include "kernels/embedding.hpp"
#include "vktrain/error.hpp"

namespace {

using vkt_test::floor_abs;
using vkt_test::place;
using vkt_test::Placed;
using vkt_test::run;
using vkt_test::unit;
using vktrain::DataType;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);
constexpr uint32_t k_vocab = 13;

// Ids over the vocabulary with repeats, never naming rows 4 and 9.
std::vector<int32_t> make_ids(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> ids(n);
    for (auto& id : ids) {
        do id = int32_t(rng() % k_vocab);
        while (id == 4 || id == 9);
    }
    return ids;
}

// ids at element offset 3 of a buffer, after sentinels.
struct PlacedIds {
    rt::Buffer buffer;
    MatRef ref;
};
PlacedIds place_ids(const std::vector<int32_t>& ids) {
    std::vector<uint32_t> all(3, 0xdeadbeefu);
    for (int32_t id : ids) all.push_back(uint32_t(id));
    all.push_back(0xdeadbeefu);
    PlacedIds p{vkt_test::make_buffer_u32(all), {}};
    p.ref = MatRef{&p.buffer, DType::f32, 1, uint32_t(ids.size()), 3};
    return p;
}

struct KernelCase {
    DType dtype;
    uint32_t dim;
    uint32_t positions;
};

std::string kernel_case_name(const testing::TestParamInfo<KernelCase>& i) {
    return std::string(vktrain::kernels::dtype_name(i.param.dtype)) + "_dim" + std::to_string(i.param.dim) + "_pos" +
           std::to_string(i.param.positions);
}

class EmbeddingKernel : public testing::TestWithParam<KernelCase> {};

TEST_P(EmbeddingKernel, ForwardGathersRows) {
    const KernelCase k = GetParam();
    if (k.dtype == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const auto ids = make_ids(k.positions, 41 + k.dim);
    const auto w = vkt_test::round_through(vkt_test::random_values(size_t(k_vocab) * k.dim, 42, -2, 2), k.dtype);
    PlacedIds io = place_ids(ids);
    Placed wo = place(w, k.dtype, 5), yo = place(std::vector<float>(size_t(k.positions) * k.dim, 5.0f), k.dtype, 2);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_embedding(dev, seq, io.ref, wo.ref(k_vocab, k.dim), yo.ref(k.positions, k.dim),
                                           k_vocab, k.dim);
    });
    std::vector<float> want(size_t(k.positions) * k.dim);
    for (size_t p = 0; p < k.positions; ++p)
        for (size_t c = 0; c < k.dim; ++c) want[p * k.dim + c] = w[size_t(ids[p]) * k.dim + c];
    EXPECT_EQ(yo.values(), want); // a gather is exact in either type
    EXPECT_EQ(wo.values(), w);
}

TEST_P(EmbeddingKernel, BackwardSumsRowsPerIdDeterministically) {
    const KernelCase k = GetParam();
    if (k.dtype == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const auto ids = make_ids(k.positions, 43 + k.dim);
    const auto dy = vkt_test::round_through(vkt_test::random_values(size_t(k.positions) * k.dim, 44, -1, 1), k.dtype);
    const auto start = vkt_test::random_values(size_t(k_vocab) * k.dim, 45, -1, 1);
    PlacedIds io = place_ids(ids);
    Placed dyo = place(dy, k.dtype, 1);
    Placed dwo = place(std::vector<float>(size_t(k_vocab) * k.dim, 5.0f), DType::f32, 4);
    Placed dwa = place(start, DType::f32, 2);
    Placed dw2 = place(std::vector<float>(size_t(k_vocab) * k.dim, -3.0f), DType::f32, 6);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_embedding_backward(dev, seq, io.ref, dyo.ref(k.positions, k.dim),
                                                    dwo.ref(k_vocab, k.dim), k_vocab, k.dim, false);
        vktrain::kernels::record_embedding_backward(dev, seq, io.ref, dyo.ref(k.positions, k.dim),
                                                    dwa.ref(k_vocab, k.dim), k_vocab, k.dim, true);
        vktrain::kernels::record_embedding_backward(dev, seq, io.ref, dyo.ref(k.positions, k.dim),
                                                    dw2.ref(k_vocab, k.dim), k_vocab, k.dim, false);
    });
    std::vector<double> sum(size_t(k_vocab) * k.dim, 0.0), mag(sum.size(), 0.0);
    std::vector<uint32_t> hits(k_vocab, 0);
    for (size_t p = 0; p < k.positions; ++p) {
        ++hits[size_t(ids[p])];
        for (size_t c = 0; c < k.dim; ++c) {
            sum[size_t(ids[p]) * k.dim + c] += dy[p * k.dim + c];
            mag[size_t(ids[p]) * k.dim + c] += std::fabs(dy[p * k.dim + c]);
        }
    }
    std::vector<double> tol(sum.size()), acc(sum.size()), acc_tol(sum.size());
    for (size_t i = 0; i < sum.size(); ++i) {
        // A sequential fp32 sum of hits terms (exact inputs), then the accumulate's one more addition.
        tol[i] = double(hits[i / k.dim]) * k_u32 * mag[i];
        acc[i] = double(start[i]) + sum[i];
        acc_tol[i] = tol[i] + k_u32 * (std::fabs(start[i]) + mag[i]);
    }
    const auto got = dwo.values();
    vkt_test::expect_close(got, sum, tol, "dweight");
    vkt_test::expect_close(dwa.values(), acc, acc_tol, "dweight (accumulate)");
    for (uint32_t row : {4u, 9u})
        for (size_t c = 0; c < k.dim; ++c) {
            EXPECT_EQ(got[row * k.dim + c], 0.0f) << "untouched row " << row;
            EXPECT_EQ(dwa.values()[row * k.dim + c], start[row * k.dim + c]) << "untouched row " << row;
        }
    // The same bits from a second run (into a buffer that held something else).
    const auto again = dw2.values();
    EXPECT_EQ(std::memcmp(got.data(), again.data(), got.size() * 4), 0) << "not deterministic";
}

INSTANTIATE_TEST_SUITE_P(Shapes, EmbeddingKernel,
                         testing::Values(KernelCase{DType::f32, 7, 33}, KernelCase{DType::f32, 37, 150},
                                         KernelCase{DType::f32, 300, 71}, KernelCase{DType::f16, 7, 33},
                                         KernelCase{DType::f16, 37, 150}, KernelCase{DType::f16, 300, 71}),
                         kernel_case_name);

// ---- The graph ops through a Trainer ----

constexpr uint32_t k_positions = 5, k_max_positions = 8, k_batch = 3;

// ids [5] -> embedding(13, dim) -> position_embedding(8) -> MSE against a target [5, dim]: the output gradient is
// 2 (y - target) / (batch · 5 · dim), so the weight gradients have a closed form.
Model mse_model(uint32_t dim) {
    Model m;
    const int ids = m.input("ids", {k_positions}, DataType::i32);
    const int x = m.embedding(ids, k_vocab, dim);
    m.mse_loss(m.position_embedding(x, k_max_positions), m.input("target", {k_positions, int64_t(dim)}));
    return m;
}

TrainerOptions options(Precision precision) {
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = k_batch;
    o.seed = 5;
    return o;
}

class EmbeddingGraph : public testing::TestWithParam<std::tuple<Precision, uint32_t>> {};

TEST_P(EmbeddingGraph, GradientsMatchReference) {
    const auto [precision, dim] = GetParam();
    const DType dt = precision == Precision::mixed ? DType::f16 : DType::f32;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    const Model m = mse_model(dim);
    Trainer t(vkt_test::context(), m, options(precision));
    auto params = t.parameters();
    ASSERT_EQ(params.size(), 2u);
    EXPECT_EQ(params[0].name, "embedding0.weight");
    EXPECT_EQ(params[0].shape, (std::vector<int64_t>{k_vocab, int64_t(dim)}));
    EXPECT_EQ(params[1].name, "position_embedding0.weight");
    EXPECT_EQ(params[1].shape, (std::vector<int64_t>{k_max_positions, int64_t(dim)}));
    // N(0, 1) by default: the sample moments of 13·dim values.
    double mean = 0, sq = 0;
    for (float v : params[0].data) mean += v;
    mean /= double(params[0].data.size());
    for (float v : params[0].data) sq += (v - mean) * (v - mean);
    EXPECT_NEAR(mean, 0.0, 0.3);
    EXPECT_NEAR(std::sqrt(sq / double(params[0].data.size())), 1.0, 0.3);

    const auto ids = make_ids(size_t(k_batch) * k_positions, 51);
    const auto target = vkt_test::random_values(size_t(k_batch) * k_positions * dim, 52, -1, 1);
    std::vector<std::vector<float>> grads;
    t.compute_gradients({ids.data(), target.data()}, k_batch, grads);
    ASSERT_EQ(grads.size(), 2u);

    // What the device holds: the weights in its storage type, y = x + p rounded once.
    const auto e = vkt_test::round_through(params[0].data, dt), pw = vkt_test::round_through(params[1].data, dt);
    const double n = double(k_batch) * k_positions * dim;
    std::vector<double> de(e.size(), 0), de_mag(e.size(), 0), dp(pw.size(), 0), dp_mag(pw.size(), 0);
    for (size_t b = 0; b < k_batch; ++b)
        for (size_t p = 0; p < k_positions; ++p)
            for (size_t c = 0; c < dim; ++c) {
                const size_t id = size_t(ids[b * k_positions + p]);
                const float y = vkt_test::round_through({e[id * dim + c] + pw[p * dim + c]}, dt)[0];
                const double dy = 2.0 * (double(y) - target[(b * k_positions + p) * dim + c]) / n;
                de[id * dim + c] += dy;
                de_mag[id * dim + c] += std::fabs(dy);
                dp[p * dim + c] += dy;
                dp_mag[p * dim + c] += std::fabs(dy);
            }
    // dy is rounded once into the storage type (scaled, in mixed precision), then summed in fp32.
    const auto tolerance = [&](const std::vector<double>& mag) {
        std::vector<double> tol(mag.size());
        for (size_t i = 0; i < mag.size(); ++i) tol[i] = (unit(dt) + 16 * k_u32) * mag[i] + 1e-9;
        return tol;
    };
    vkt_test::expect_close(grads[0], de, tolerance(de_mag), "embedding0.weight.grad");
    vkt_test::expect_close(grads[1], dp, tolerance(dp_mag), "position_embedding0.weight.grad");
    for (size_t c = 0; c < dim; ++c) {
        EXPECT_EQ(grads[0][4 * dim + c], 0.0f) << "embedding row 4 (no id) must be exactly 0";
        for (size_t p = k_positions; p < k_max_positions; ++p)
            EXPECT_EQ(grads[1][p * dim + c], 0.0f) << "position row " << p << " (beyond T) must be exactly 0";
    }
    // Deterministic: the same bits again.
    std::vector<std::vector<float>> again;
    t.compute_gradients({ids.data(), target.data()}, k_batch, again);
    EXPECT_EQ(again, grads);

    // The forward pass: predict returns y = E[id] + P[t].
    const auto y = t.predict({ids.data(), nullptr}, k_batch);
    std::vector<double> y_ref(y.size()), y_tol(y.size());
    for (size_t b = 0; b < k_batch; ++b)
        for (size_t p = 0; p < k_positions; ++p)
            for (size_t c = 0; c < dim; ++c) {
                const size_t i = (b * k_positions + p) * dim + c, id = size_t(ids[b * k_positions + p]);
                y_ref[i] = double(e[id * dim + c]) + pw[p * dim + c];
                y_tol[i] = (unit(dt) + k_u32) * std::fabs(y_ref[i]) + floor_abs(dt);
            }
    vkt_test::expect_close(y, y_ref, y_tol, "y");
}

INSTANTIATE_TEST_SUITE_P(Precisions, EmbeddingGraph,
                         testing::Combine(testing::Values(Precision::fp32, Precision::mixed), testing::Values(7u, 37u)),
                         [](const testing::TestParamInfo<std::tuple<Precision, uint32_t>>& i) {
                             return std::string(std::get<0>(i.param) == Precision::mixed ? "mixed" : "fp32") + "_dim" +
                                    std::to_string(std::get<1>(i.param));
                         });

TEST(EmbeddingGraph, OutOfRangeIdsAreRefusedBeforeAnythingRuns) {
    const Model m = mse_model(7);
    Trainer t(vkt_test::context(), m, options(Precision::fp32));
    auto ids = make_ids(size_t(k_batch) * k_positions, 53);
    const auto target = vkt_test::random_values(size_t(k_batch) * k_positions * 7, 54, -1, 1);
    const auto message = [&](const std::function<void()>& f) {
        try {
            f();
        } catch (const vktrain::Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    std::vector<std::vector<float>> grads;
    ids[7] = 13;
    EXPECT_NE(message([&] {
                  t.step({ids.data(), target.data()}, k_batch);
              }).find("input 'ids': id 13 at index 7 is outside [0, 13) (embedding 'embedding0')"),
              std::string::npos)
        << message([&] {
               t.step({ids.data(), target.data()}, k_batch);
           });
    ids[7] = -1;
    EXPECT_NE(message([&] {
                  t.predict({ids.data(), nullptr}, k_batch);
              }).find("id -1 at index 7 is outside [0, 13)"),
              std::string::npos);
    EXPECT_EQ(t.steps(), 0u);
    // Beyond `count` samples nothing is read.
    ids[7] = 2;
    ids[size_t(k_batch - 1) * k_positions] = 99;
    EXPECT_NO_THROW(t.compute_gradients({ids.data(), target.data()}, k_batch - 1, grads));

    // Cross-entropy labels go through the same check.
    Model c;
    const int emb = c.embedding(c.input("ids", {k_positions}, DataType::i32), k_vocab, 4);
    c.cross_entropy(c.linear_tied(emb, emb), c.input("labels", {k_positions}, DataType::i32));
    Trainer tc(vkt_test::context(), c, options(Precision::fp32));
    auto labels = make_ids(size_t(k_batch) * k_positions, 55);
    ids[size_t(k_batch - 1) * k_positions] = 0;
    labels[3] = 13;
    EXPECT_NE(message([&] {
                  tc.step({ids.data(), labels.data()}, k_batch);
              }).find("input 'labels': label 13 at index 3 is outside [0, 13)"),
              std::string::npos);
}

TEST(EmbeddingGraph, BuilderChecksArguments) {
    const auto fails = [](const std::function<void(Model&)>& f, const std::string& text) {
        Model m;
        try {
            f(m);
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
            return;
        }
        ADD_FAILURE() << "no error for: " << text;
    };
    fails([](Model& m) { m.embedding(m.input("x", {4}), 5, 3); }, "must be an integer (i32) model input");
    fails([](Model& m) { m.embedding(m.input("ids", {4}, DataType::i32), 0, 3); },
          "attribute 'num_embeddings' is 0; expected [1, 2147483647]");
    fails([](Model& m) { m.position_embedding(m.embedding(m.input("ids", {9}, DataType::i32), 5, 3), 8); },
          "has 9 positions; max_positions is 8");
    fails([](Model& m) { m.position_embedding(m.input("x", {4, 3, 2}), 8); }, "expected [positions, channels]");
    fails([](Model& m) { m.linear_tied(m.input("x", {4}), 0); }, "is not an embedding");
    fails(
        [](Model& m) {
            const int e = m.embedding(m.input("ids", {4}, DataType::i32), 5, 3);
            m.linear_tied(m.linear(e, 4), e);
        },
        "must end in the embedding's dim 3");
}

// ---- Weight tying ----

constexpr uint32_t k_dim = 7;

// ids [5] -> embedding(13, 7) -> position_embedding(8) -> GELU -> logits [5, 13] -> per-position cross-entropy. Tied:
// the logits use the embedding's table; untied: a bias-free linear layer with its own [13, 7] weight.
Model lm(bool tied) {
    Model m;
    const int ids = m.input("ids", {k_positions}, DataType::i32);
    const int e = m.embedding(ids, k_vocab, k_dim);
    const int h = m.gelu_tanh(m.position_embedding(e, k_max_positions));
    const int logits = tied ? m.linear_tied(h, e) : m.linear(h, k_vocab, false);
    m.cross_entropy(logits, m.input("labels", {k_positions}, DataType::i32));
    return m;
}

TEST(WeightTying, TheTiedWeightIsOneParameterWhoseGradientSumsBothUses) {
    const Model tied = lm(true), untied = lm(false);
    ASSERT_EQ(tied.parameters().size(), 2u);
    EXPECT_EQ(untied.parameters().size(), 3u);
    Trainer t(vkt_test::context(), tied, options(Precision::fp32));
    Trainer u(vkt_test::context(), untied, options(Precision::fp32));
    auto params = t.parameters();
    for (float& v : params[0].data) v *= 0.5f; // logits of a moderate size
    t.set_parameters(params);
    auto up = u.parameters();
    up[0].data = params[0].data;
    up[1].data = params[1].data;
    up[2].data = params[0].data; // linear0.weight [13, 7] = the embedding table
    u.set_parameters(up);

    const auto ids = make_ids(size_t(k_batch) * k_positions, 61);
    const auto labels = make_ids(size_t(k_batch) * k_positions, 62);
    std::vector<std::vector<float>> gt, gu;
    const float lt = t.compute_gradients({ids.data(), labels.data()}, k_batch, gt);
    const float lu = u.compute_gradients({ids.data(), labels.data()}, k_batch, gu);
    EXPECT_NEAR(lt, lu, 1e-6 * std::fabs(lu));
    ASSERT_EQ(gt.size(), 2u);
    ASSERT_EQ(gu.size(), 3u);
    std::vector<double> sum(gt[0].size()), tol(sum.size());
    for (size_t i = 0; i < sum.size(); ++i) {
        sum[i] = double(gu[0][i]) + gu[2][i];
        tol[i] = 1e-6 + 1e-5 * (std::fabs(gu[0][i]) + std::fabs(gu[2][i]));
    }
    vkt_test::expect_close(gt[0], sum, tol, "tied weight gradient vs embedding + projection");
    std::vector<double> pos(gu[1].begin(), gu[1].end()), pos_tol(pos.size());
    for (size_t i = 0; i < pos.size(); ++i) pos_tol[i] = 1e-6 + 1e-5 * std::fabs(pos[i]);
    vkt_test::expect_close(gt[1], pos, pos_tol, "position weight gradient");

    // Central differences of the loss on the tied weight (every element of rows 0, 4 and 12: 4 is named by no id,
    // so only the projection reaches it).
    std::vector<std::vector<float>> unused;
    const auto loss_at = [&](size_t i, float delta) {
        auto p = params;
        p[0].data[i] += delta;
        t.set_parameters(p);
        return double(t.compute_gradients({ids.data(), labels.data()}, k_batch, unused));
    };
    for (size_t row : {size_t(0), size_t(4), size_t(12)})
        for (size_t c = 0; c < k_dim; ++c) {
            const size_t i = row * k_dim + c;
            const float eps = 1e-2f;
            const double fd = (loss_at(i, eps) - loss_at(i, -eps)) / (2.0 * eps);
            EXPECT_NEAR(gt[0][i], fd, 2e-3 + 2e-2 * std::fabs(fd)) << "embedding0.weight[" << i << "]";
        }
    t.set_parameters(params);
}

TEST(WeightTying, SavesTheTiedWeightOnceAndRoundTrips) {
    const Model tied = lm(true);
    const Model back = Model::from_json(tied.to_json());
    EXPECT_EQ(back.to_json(), tied.to_json());
    EXPECT_EQ(back.describe(), tied.describe());

    Trainer t(vkt_test::context(), tied, options(Precision::fp32));
    const auto ids = make_ids(size_t(k_batch) * k_positions, 71);
    const auto labels = make_ids(size_t(k_batch) * k_positions, 72);
    t.step({ids.data(), labels.data()}, k_batch);
    const std::string path = testing::TempDir() + "vktrain_tied_weights.safetensors";
    t.save(path);
    const Model loaded = vktrain::load_model(path);
    EXPECT_EQ(loaded.to_json(), tied.to_json());
    Trainer l(vkt_test::context(), loaded, options(Precision::fp32));
    l.load(path);
    const auto pt = t.parameters(), pl = l.parameters();
    ASSERT_EQ(pl.size(), 2u);
    for (size_t i = 0; i < pt.size(); ++i) {
        EXPECT_EQ(pl[i].name, pt[i].name);
        EXPECT_EQ(pl[i].data, pt[i].data);
    }
    EXPECT_EQ(l.predict({ids.data(), nullptr}, k_batch), t.predict({ids.data(), nullptr}, k_batch));
    std::remove(path.c_str());
}

} // namespace
