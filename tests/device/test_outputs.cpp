// Issue 22's weights, outputs and losses through the public API: the generation decoder loads the file the training
// GPT saved (caches are buffers that are not persistent), with GptOptions and metadata read back from the file;
// models without a loss predict named outputs (several, by name or all at once, against a CPU reference, with the
// early ones kept alive by the memory planner); cross-entropy's ignore_index against PyTorch's values and a CPU
// reference, forward and backward, fp32 and mixed, evaluation and micro-batches weighted by the positions they count.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "device/support.hpp"
#include "vktrain/weights.hpp"

namespace {

using vktrain::GptOptions;
using vktrain::Model;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::kernels::DType;

#define EXPECT_ERROR(statement, part)                                                                                  \
    do {                                                                                                               \
        try {                                                                                                          \
            statement;                                                                                                 \
            ADD_FAILURE() << "no error; expected one containing '" << (part) << "'";                                   \
        } catch (const vktrain::Error& e) {                                                                            \
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();                                \
        }                                                                                                              \
    } while (0)

std::string precision_name(const testing::TestParamInfo<Precision>& p) {
    return p.param == Precision::fp32 ? "fp32" : "mixed";
}

// ---- the decoder loads the training GPT's weights file ----

class DecoderWeights : public testing::TestWithParam<Precision> {};

// Trainer(ctx, Model::gpt_decoder(g), {inference_only, batch 1}).load(file of Model::gpt(g)) works (it threw "tensor
// 'transformer.h.0.attn.cache.k' is missing"), g comes back from the file's architecture, and the decoder gives the
// full forward pass's logits at every position. The decoder's own save leaves its caches out; load zeroes them.
TEST_P(DecoderWeights, LoadTheTrainingGptsFileThroughThePublicApi) {
    const Precision precision = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    GptOptions g;
    g.vocab = 7;
    g.layers = 2;
    g.heads = 2;
    g.width = 8;
    g.context = 6;
    g.mlp = 12;
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 1;
    o.inference_only = true;
    o.seed = 4;
    const std::string dir = vkt_test::temp_dir("decoder_weights");
    const std::string path = dir + "/gpt.safetensors";
    Trainer full(vkt_test::context(), Model::gpt(g), o);
    auto params = full.parameters();
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-0.4f, 0.4f);
    for (auto& p : params)
        for (float& x : p.data) x += u(rng);
    full.set_parameters(params);
    full.save(path, {{"my_vocabulary", "abcdefg"}});

    // Everything generation needs comes back through the public API.
    const vktrain::WeightsFile file = vktrain::read_weights(path);
    ASSERT_NE(file.metadata_value("my_vocabulary"), nullptr);
    EXPECT_EQ(*file.metadata_value("my_vocabulary"), "abcdefg");
    EXPECT_EQ(*file.metadata_value("vktrain_precision"), precision == Precision::fp32 ? "fp32" : "mixed");
    const GptOptions back = vktrain::gpt_options(vktrain::load_model(file));
    EXPECT_EQ(back.vocab, g.vocab);
    EXPECT_EQ(back.layers, g.layers);
    EXPECT_EQ(back.context, g.context);
    EXPECT_EQ(back.mlp, g.mlp);

    Trainer dec(vkt_test::context(), Model::gpt_decoder(back), o);
    dec.load(path);
    std::mt19937 ids_rng(3);
    std::vector<int32_t> ids(g.context);
    for (auto& t : ids) t = int32_t(ids_rng() % g.vocab);
    const std::vector<int32_t> none(g.context, 0);
    const std::vector<float> want = full.predict({ids.data(), none.data()}, 1); // [context, vocab]
    const double tol = precision == Precision::fp32 ? 2e-5 : 3e-2;
    for (uint32_t p = 0; p < g.context; ++p) {
        const int32_t id[1] = {ids[p]}, pos[1] = {int32_t(p)};
        const std::vector<float> got = dec.predict({id, pos}, 1);
        ASSERT_EQ(got.size(), g.vocab);
        EXPECT_EQ(dec.predict({id, pos}, 1, "logits"), got); // the decoder's named output is its default
        for (uint32_t v = 0; v < g.vocab; ++v)
            ASSERT_NEAR(got[v], want[p * g.vocab + v], tol) << "position " << p << " token " << v;
    }
    EXPECT_EQ(dec.output_shape(), (std::vector<int64_t>{1, int64_t(g.vocab)}));

    const auto cache_sum = [&] {
        double s = 0;
        for (const auto& p : dec.parameters())
            if (p.name.find(".attn.cache.") != std::string::npos)
                for (float x : p.data) s += std::fabs(x);
        return s;
    };
    EXPECT_GT(cache_sum(), 0.0);
    // The decoder's own file holds the weights, not the caches, and loads into the training GPT.
    const std::string dec_path = dir + "/decoder.safetensors";
    dec.save(dec_path);
    const vktrain::WeightsFile dec_file = vktrain::read_weights(dec_path);
    EXPECT_EQ(dec_file.find("transformer.h.0.attn.cache.k"), nullptr);
    EXPECT_EQ(dec_file.tensors().size(), vktrain::read_weights(path).tensors().size());
    dec.load(dec_path);
    EXPECT_EQ(cache_sum(), 0.0); // load restarts the caches
    full.load(dec_path);
    const auto reloaded = full.parameters();
    for (size_t i = 0; i < params.size(); ++i) EXPECT_EQ(reloaded[i].data, params[i].data) << params[i].name;
    std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Precisions, DecoderWeights, testing::Values(Precision::fp32, Precision::mixed),
                         precision_name);

// ---- named outputs and models without a loss ----

// x [6] -> linear0 [5] = output "hidden" -> relu -> linear1 [3] = output "y"; no loss.
Model two_outputs() {
    Model m;
    const int h = m.linear(m.input("x", {6}), 5);
    m.output(h, "hidden");
    m.output(m.linear(m.relu(h), 3), "y");
    return m;
}

// y = W x + b for each of `count` rows (double).
std::vector<double> affine(const vktrain::Parameter& w, const vktrain::Parameter& b, const std::vector<double>& x,
                           size_t count) {
    const size_t out = size_t(w.shape[0]), in = size_t(w.shape[1]);
    std::vector<double> y(count * out);
    for (size_t r = 0; r < count; ++r)
        for (size_t o = 0; o < out; ++o) {
            double s = b.data[o];
            for (size_t i = 0; i < in; ++i) s += double(w.data[o * in + i]) * x[r * in + i];
            y[r * out + o] = s;
        }
    return y;
}

void expect_near_all(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << "[" << i << "]";
}

class Outputs : public testing::TestWithParam<Precision> {};

// Both outputs by name, in chunks of the batch size, against a CPU reference ("hidden" keeps its negative values: the
// ReLU after it is not fused into it); predict_all gives both at once; no default with two outputs and no loss; no
// training, no evaluation; the outputs survive the model's JSON.
TEST_P(Outputs, ModelWithoutALossPredictsItsNamedOutputs) {
    const Precision precision = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    const Model m = two_outputs();
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 4;
    o.inference_only = true;
    o.seed = 7;
    Trainer t(vkt_test::context(), m, o);
    const uint32_t count = 10; // chunks of 4, 4 and 2
    const auto x = vkt_test::random_values(size_t(count) * 6, 21, -2.0f, 2.0f);
    const DType dt = precision == Precision::fp32 ? DType::f32 : DType::f16;
    auto p = t.parameters();
    for (auto& q : p) q.data = vkt_test::round_through(q.data, dt); // what the device holds
    const auto xs = vkt_test::round_through(x, dt);
    const std::vector<double> hidden = affine(p[0], p[1], std::vector<double>(xs.begin(), xs.end()), count);
    // linear1 reads the hidden layer as stored (fp16 in mixed precision), after the ReLU.
    const std::vector<float> stored = vkt_test::round_through(std::vector<float>(hidden.begin(), hidden.end()), dt);
    std::vector<double> act(hidden.size());
    for (size_t i = 0; i < act.size(); ++i) act[i] = std::max(0.0, double(stored[i]));
    const std::vector<double> y = affine(p[2], p[3], act, count);
    const double tol = precision == Precision::fp32 ? 1e-5 : 2e-3;

    const std::vector<float> got_hidden = t.predict({x.data()}, count, "hidden");
    expect_near_all(got_hidden, hidden, tol, "hidden");
    EXPECT_LT(*std::min_element(got_hidden.begin(), got_hidden.end()), 0.0f) << "the ReLU must not reach the output";
    const std::vector<float> got_y = t.predict({x.data()}, count, "y");
    expect_near_all(got_y, y, tol, "y");

    const std::vector<vktrain::Prediction> all = t.predict_all({x.data()}, count);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].name, "hidden");
    EXPECT_EQ(all[0].shape, (std::vector<int64_t>{count, 5}));
    EXPECT_EQ(all[0].data, got_hidden);
    EXPECT_EQ(all[1].name, "y");
    EXPECT_EQ(all[1].shape, (std::vector<int64_t>{count, 3}));
    EXPECT_EQ(all[1].data, got_y);
    EXPECT_EQ(t.output_shape("y"), std::vector<int64_t>{3});
    EXPECT_EQ(t.output_shape("hidden"), std::vector<int64_t>{5});

    EXPECT_ERROR(t.predict({x.data()}, count), "name the one to predict");
    EXPECT_ERROR(t.predict({x.data()}, count, "z"), "no output named 'z' (outputs: hidden, y)");
    EXPECT_ERROR(t.output_shape(), "name the one to predict");
    EXPECT_ERROR(t.evaluate({x.data()}, count), "the model has no loss");
    TrainerOptions train = o;
    train.inference_only = false;
    EXPECT_ERROR(Trainer(vkt_test::context(), m, train), "the model has no loss");

    // The same model from its JSON (as a weights file records it): the same outputs.
    Trainer again(vkt_test::context(), Model::from_json(m.to_json()), o);
    again.set_parameters(t.parameters());
    EXPECT_EQ(again.predict({x.data()}, count, "y"), got_y);
}

// Beside a loss the default output stays the loss's prediction operand, bit for bit what the model without named
// outputs predicts; predict_all lists it first under "" and the named ones after; training is unaffected.
TEST_P(Outputs, BesideALossTheDefaultIsUnchanged) {
    const Precision precision = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    const Model plain = Model::mlp(6, {5}, 3);
    Model m = plain;
    m.output(1, "hidden"); // linear0, before its ReLU
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 4;
    o.seed = 8;
    Trainer a(vkt_test::context(), plain, o), b(vkt_test::context(), m, o);
    const vkt_test::Batch batch = vkt_test::make_batch(7, 6, 3, 31);
    const std::vector<float> want = a.predict(batch.x.data(), 7);
    EXPECT_EQ(b.predict(batch.x.data(), 7), want);
    EXPECT_EQ(b.predict({batch.x.data(), nullptr}, 7, ""), want);
    const auto all = b.predict_all({batch.x.data(), nullptr}, 7);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].name, "");
    EXPECT_EQ(all[0].data, want);
    EXPECT_EQ(all[1].name, "hidden");
    EXPECT_EQ(all[1].shape, (std::vector<int64_t>{7, 5}));
    EXPECT_EQ(b.output_shape(), std::vector<int64_t>{3});
    const auto ra = a.step(batch.x.data(), batch.labels.data(), 4), rb = b.step(batch.x.data(), batch.labels.data(), 4);
    EXPECT_EQ(ra.loss, rb.loss);
    EXPECT_EQ(a.predict(batch.x.data(), 7), b.predict(batch.x.data(), 7));
}

// An output early in a long chain keeps its bytes to the end of the forward pass: in evaluation activations run in
// place and the arena is reused, which would overwrite it.
TEST_P(Outputs, AnEarlyOutputIsNotOverwritten) {
    const Precision precision = GetParam();
    if (precision == Precision::mixed) VKT_REQUIRE_FP16();
    Model m;
    int x = m.input("x", {16});
    const int early = m.linear(x, 16);
    m.output(early, "early");
    x = m.relu(early);
    for (int i = 0; i < 5; ++i) x = m.gelu(m.linear(x, 16));
    m.output(m.linear(x, 4), "last");
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = 3;
    o.inference_only = true;
    o.seed = 2;
    Trainer t(vkt_test::context(), m, o);
    const auto in = vkt_test::random_values(3 * 16, 44);
    const DType dt = precision == Precision::fp32 ? DType::f32 : DType::f16;
    auto p = t.parameters();
    for (auto& q : p) q.data = vkt_test::round_through(q.data, dt);
    const auto xs = vkt_test::round_through(in, dt);
    expect_near_all(t.predict({in.data()}, 3, "early"),
                    affine(p[0], p[1], std::vector<double>(xs.begin(), xs.end()), 3),
                    precision == Precision::fp32 ? 1e-5 : 2e-3, "early");
}

INSTANTIATE_TEST_SUITE_P(Precisions, Outputs, testing::Values(Precision::fp32, Precision::mixed), precision_name);

// ---- cross-entropy with ignore_index ----

// PyTorch: F.cross_entropy(torch.zeros(3, 2), torch.tensor([0, -100, 1])) is ln 2 (the mean over the two positions
// not ignored) and its gradient [[-0.25, 0.25], [0, 0], [0.25, -0.25]]. Logits [3, 2] = x · Wᵀ + b with W and b zero
// and x the 3x3 identity, so the weight gradient is that gradient transposed.
TEST(CrossEntropyIgnoreIndex, GivesPyTorchsValues) {
    Model m;
    const int logits = m.linear(m.input("x", {3, 3}), 2);
    vktrain::CrossEntropyOptions ce;
    ce.ignore_index = -100;
    m.cross_entropy(logits, m.input("labels", {3}, vktrain::DataType::i32), ce);
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = 1;
    Trainer t(vkt_test::context(), m, o);
    auto p = t.parameters();
    for (auto& q : p) std::fill(q.data.begin(), q.data.end(), 0.0f);
    t.set_parameters(p);
    const float x[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const int32_t labels[3] = {0, -100, 1};
    std::vector<std::vector<float>> grads;
    EXPECT_NEAR(t.compute_gradients({x, labels}, 1, grads), std::log(2.0), 1e-6);
    ASSERT_EQ(grads.size(), 2u);
    const std::vector<float> dw = {-0.25f, 0.0f, 0.25f, 0.25f, 0.0f, -0.25f}; // [2, 3]
    for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(grads[0][i], dw[i], 1e-7) << i;
    for (float g : grads[1]) EXPECT_NEAR(g, 0.0f, 1e-7);
    EXPECT_NEAR(t.evaluate({x, labels}, 1).loss, std::log(2.0), 1e-6);
}

// A per-position classifier: x [T, 5] -> linear -> logits [T, C] against labels [T].
Model position_classifier(uint32_t positions, uint32_t classes, std::optional<int32_t> ignore) {
    Model m;
    const int logits = m.linear(m.input("x", {int64_t(positions), 5}), classes);
    vktrain::CrossEntropyOptions ce;
    ce.ignore_index = ignore;
    m.cross_entropy(logits, m.input("labels", {int64_t(positions)}, vktrain::DataType::i32), ce);
    return m;
}

struct IgnoreCase {
    Precision precision;
    int32_t ignore; // in the class range or not
};

class CrossEntropyIgnore : public testing::TestWithParam<IgnoreCase> {};

// Loss and gradients of a batch with ignored positions (one sample entirely) against a double reference computed
// from the device's own logits (predict): ignored positions add nothing, the mean is over the others. Evaluation
// gives the same loss; a batch with every position ignored gives loss 0 and zero gradients, and its step is not
// skipped.
TEST_P(CrossEntropyIgnore, MatchesTheReferenceForwardAndBackward) {
    const IgnoreCase c = GetParam();
    if (c.precision == Precision::mixed) VKT_REQUIRE_FP16();
    const uint32_t T = 4, C = 6, B = 3;
    const Model m = position_classifier(T, C, c.ignore);
    TrainerOptions o;
    o.precision = c.precision;
    o.batch_size = B;
    o.seed = 5;
    o.loss_scaler.init_scale = 1024.0f;
    Trainer t(vkt_test::context(), m, o);
    const auto x = vkt_test::random_values(size_t(B) * T * 5, 61, -2.0f, 2.0f);
    std::vector<int32_t> labels = {1, c.ignore, 5, 0, c.ignore, c.ignore, c.ignore, c.ignore, 3, 4, c.ignore, 2};
    if (c.ignore >= 0) labels[8] = c.ignore == 3 ? 1 : 3; // keep one real 3 apart from the ignored index
    const std::vector<float> logits = t.predict({x.data(), labels.data()}, B);
    std::vector<double> dlogits(logits.size(), 0.0);
    double loss = 0.0;
    size_t counted = 0;
    for (size_t r = 0; r < size_t(B) * T; ++r) counted += labels[r] != c.ignore ? 1 : 0;
    ASSERT_EQ(counted, 6u);
    for (size_t r = 0; r < size_t(B) * T; ++r) {
        if (labels[r] == c.ignore) continue;
        const float* z = &logits[r * C];
        double mx = z[0], sum = 0.0;
        for (uint32_t j = 1; j < C; ++j) mx = std::max(mx, double(z[j]));
        for (uint32_t j = 0; j < C; ++j) sum += std::exp(z[j] - mx);
        loss += (std::log(sum) + mx - z[labels[r]]) / double(counted);
        for (uint32_t j = 0; j < C; ++j)
            dlogits[r * C + j] = (std::exp(z[j] - mx) / sum - (int32_t(j) == labels[r] ? 1.0 : 0.0)) / double(counted);
    }
    // dW[c][f] = sum_r dlogits[r][c] x[r][f], db[c] = sum_r dlogits[r][c], with x as the device holds it.
    const auto xs = vkt_test::round_through(x, c.precision == Precision::fp32 ? DType::f32 : DType::f16);
    std::vector<double> dw(size_t(C) * 5, 0.0), db(C, 0.0);
    for (size_t r = 0; r < size_t(B) * T; ++r)
        for (uint32_t j = 0; j < C; ++j) {
            db[j] += dlogits[r * C + j];
            for (uint32_t f = 0; f < 5; ++f) dw[j * 5 + f] += dlogits[r * C + j] * xs[r * 5 + f];
        }
    std::vector<std::vector<float>> grads;
    const float got = t.compute_gradients({x.data(), labels.data()}, B, grads);
    const double tol = c.precision == Precision::fp32 ? 1e-5 : 2e-3;
    EXPECT_NEAR(got, loss, tol * loss);
    ASSERT_EQ(grads.size(), 2u);
    expect_near_all(grads[0], dw, tol, "weight gradient");
    expect_near_all(grads[1], db, tol, "bias gradient");
    EXPECT_NEAR(t.evaluate({x.data(), labels.data()}, B).loss, loss, tol * loss);

    // Every position ignored: nothing to learn, nothing non-finite.
    const std::vector<int32_t> ignored(size_t(B) * T, c.ignore);
    EXPECT_EQ(t.compute_gradients({x.data(), ignored.data()}, B, grads), 0.0f);
    for (const auto& g : grads)
        for (float v : g) EXPECT_EQ(v, 0.0f);
    EXPECT_EQ(t.evaluate({x.data(), ignored.data()}, B).loss, 0.0);
    const vktrain::StepResult r = t.step({x.data(), ignored.data()}, B);
    EXPECT_FALSE(r.skipped);
    EXPECT_EQ(r.loss, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(All, CrossEntropyIgnore,
                         testing::Values(IgnoreCase{Precision::fp32, -100}, IgnoreCase{Precision::fp32, 3},
                                         IgnoreCase{Precision::mixed, -100}, IgnoreCase{Precision::mixed, 3}),
                         [](const testing::TestParamInfo<IgnoreCase>& p) {
                             return std::string(p.param.precision == Precision::fp32 ? "fp32" : "mixed") +
                                    (p.param.ignore < 0 ? "_outside" : "_in_range");
                         });

// The label check allows the ignore index and nothing else outside the classes; without an ignore_index -100 is
// refused as before.
TEST(CrossEntropyIgnoreIndex, LabelRangeCheckAllowsTheIgnoreIndex) {
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = 1;
    Trainer with(vkt_test::context(), position_classifier(2, 3, -100), o);
    Trainer without(vkt_test::context(), position_classifier(2, 3, std::nullopt), o);
    const auto x = vkt_test::random_values(10, 71);
    const int32_t ok[2] = {-100, 2}, bad[2] = {-100, 3};
    EXPECT_NO_THROW(with.step({x.data(), ok}, 1));
    EXPECT_ERROR(with.step({x.data(), bad}, 1), "label 3 at index 1 is outside [0, 3) and is not the ignore_index");
    EXPECT_ERROR(without.step({x.data(), ok}, 1), "label -100 at index 0 is outside [0, 3)");
}

// Micro-batches with different numbers of positions counted are weighted by those counts, so the step equals one
// batch of them all (PyTorch's mean over every position not ignored); weighting by samples would not.
TEST(CrossEntropyIgnoreIndex, MicroBatchesWeighByThePositionsTheyCount) {
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.optimizer.kind = vktrain::OptimizerKind::sgd;
    o.optimizer.learning_rate = 0.5f;
    o.optimizer.momentum = 0.0f;
    o.seed = 12;
    o.batch_size = 4;
    Trainer whole(vkt_test::context(), position_classifier(4, 3, -1), o);
    o.batch_size = 2;
    Trainer parts(vkt_test::context(), position_classifier(4, 3, -1), o);
    const auto x = vkt_test::random_values(4 * 4 * 5, 81);
    // The first two samples count 7 positions, the last two 1.
    const std::vector<int32_t> labels = {0, 1, 2, 0, 1, 2, 0, -1, -1, -1, -1, 2, -1, -1, -1, -1};
    const vktrain::StepResult a = whole.step({x.data(), labels.data()}, 4);
    const vktrain::StepResult b = parts.step(std::vector<vktrain::MicroBatch>{
        {{x.data(), labels.data()}, 2}, {{x.data() + 2 * 4 * 5, labels.data() + 2 * 4}, 2}});
    EXPECT_NEAR(a.loss, b.loss, 1e-6);
    const auto pa = whole.parameters(), pb = parts.parameters();
    for (size_t i = 0; i < pa.size(); ++i)
        for (size_t k = 0; k < pa[i].data.size(); ++k) EXPECT_NEAR(pa[i].data[k], pb[i].data[k], 1e-6) << pa[i].name;
}

} // namespace
