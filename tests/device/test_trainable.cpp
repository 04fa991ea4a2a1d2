// Which parameters train, changed at run time (Trainer::set_trainable) and across checkpoints: tensors that stay
// trainable keep their optimizer state bit for bit, newly trainable ones start as a fresh optimizer would, frozen ones
// stop changing and lose their gradient buffers; a checkpoint loads into a trainer that trains more or fewer tensors.
// Every update strategy (host, pipelined buckets, device) and both precisions.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "common/half.hpp"
#include "device/support.hpp"
#include "io/safetensors.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::Model;
using vktrain::OptimizerKind;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;
using vktrain::UpdateLocation;

constexpr uint32_t features = 24, classes = 5, batch = 16;

Model mlp() {
    return Model::mlp(features, {40, 32}, classes);
}

Model frozen_mlp() {
    Model m = mlp();
    m.set_trainable("linear0.", false);
    return m;
}

vkt_test::Batch make(uint32_t step) {
    return vkt_test::make_batch(batch, features, classes, 700 + step);
}

enum class Strategy { host, pipelined, device };
struct Config {
    Strategy strategy;
    Precision precision;
    OptimizerKind kind;
};

std::string config_name(const Config& c) {
    return std::string(c.strategy == Strategy::host        ? "host"
                       : c.strategy == Strategy::pipelined ? "pipelined"
                                                           : "device") +
           (c.precision == Precision::mixed ? "_mixed" : "_fp32") + (c.kind == OptimizerKind::sgd ? "_sgd" : "_adamw");
}

void PrintTo(const Config& c, std::ostream* out) {
    *out << config_name(c);
}

TrainerOptions options(const Config& c, uint64_t seed) {
    TrainerOptions o;
    o.precision = c.precision;
    o.batch_size = batch;
    o.seed = seed;
    o.optimizer.kind = c.kind;
    o.optimizer.learning_rate = c.kind == OptimizerKind::sgd ? 0.05f : 0.01f;
    o.optimizer.momentum = 0.9f;
    o.optimizer.weight_decay = 0.01f;
    o.update_buckets = c.strategy == Strategy::pipelined ? 3 : 1;
    o.update_location = c.strategy == Strategy::device ? UpdateLocation::device : UpdateLocation::host;
    if (c.precision == Precision::mixed) o.gemm_path = vktrain::GemmPath::tiled_fp16; // the same on every trainer
    return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool same_bits(float a, float b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

using State = std::vector<std::pair<std::string, std::vector<float>>>;

const std::vector<float>* find(const State& s, const std::string& name) {
    for (const auto& [n, v] : s)
        if (n == name) return &v;
    return nullptr;
}

void expect_same_training(Trainer& a, Trainer& b) {
    const auto pa = a.parameters(), pb = b.parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(same_bits(pa[i].data, pb[i].data)) << pa[i].name;
    const State sa = a.optimizer_state(), sb = b.optimizer_state();
    ASSERT_EQ(sa.size(), sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
        EXPECT_EQ(sa[i].first, sb[i].first);
        EXPECT_TRUE(same_bits(sa[i].second, sb[i].second)) << sa[i].first;
    }
    EXPECT_EQ(a.steps(), b.steps());
    EXPECT_TRUE(same_bits(a.loss_scale(), b.loss_scale()));
    EXPECT_TRUE(same_bits(a.learning_rate(), b.learning_rate()));
}

std::string temp_path(const std::string& name) {
    return testing::TempDir() + "vktrain_trainable_" + name + "_" + std::to_string(::getpid()) + ".safetensors";
}

class TrainableAtRunTime : public testing::TestWithParam<Config> {
protected:
    void SetUp() override {
        if (GetParam().precision == Precision::mixed) VKT_REQUIRE_FP16();
    }
    std::string name() const { return testing::UnitTest::GetInstance()->current_test_info()->name(); }
    void expect_strategy(const Trainer& t) const {
        EXPECT_EQ(t.update_location(),
                  GetParam().strategy == Strategy::device ? UpdateLocation::device : UpdateLocation::host);
        if (GetParam().strategy == Strategy::pipelined) {
            EXPECT_GT(t.update_buckets(), 1u);
        }
    }
};

// Freezing mid-run: the frozen weights stop changing bit for bit, the rest trains on with its optimizer state intact,
// exactly as a trainer made with those parameters frozen that loads the checkpoint taken at the switch.
TEST_P(TrainableAtRunTime, FreezingKeepsTheRestTrainingAsACheckpointedReference) {
    const std::string path = temp_path("freeze_" + name().substr(name().find('/') + 1));
    Trainer a(vkt_test::context(), mlp(), options(GetParam(), 3));
    expect_strategy(a);
    for (uint32_t i = 0; i < 3; ++i) a.step(make(i).x.data(), make(i).labels.data(), batch);
    a.save_checkpoint(path);
    const auto before = a.parameters();
    const State state_before = a.optimizer_state();
    const uint64_t bytes_before = a.device_bytes();

    a.set_trainable("linear0.", false);
    expect_strategy(a);
    const State state = a.optimizer_state();
    EXPECT_EQ(state.size(), state_before.size() / 3 * 2); // linear1 and linear2 of three layers
    for (const auto& [n, v] : state) {
        EXPECT_EQ(n.find("linear0."), std::string::npos) << n;
        const std::vector<float>* old = find(state_before, n);
        ASSERT_NE(old, nullptr) << n;
        EXPECT_TRUE(same_bits(*old, v)) << n << " changed when another tensor was frozen";
    }
    // No gradient (nor readback) for the frozen tensors any more.
    EXPECT_LE(a.device_bytes() + uint64_t(40 * features + 40) * 4, bytes_before);
    std::vector<std::vector<float>> grads;
    a.compute_gradients(make(9).x.data(), make(9).labels.data(), batch, grads);
    EXPECT_EQ(grads.size(), 4u);
    for (const vktrain::ParameterInfo& p : a.model().parameters())
        EXPECT_EQ(p.trainable, p.name.rfind("linear0.", 0) != 0) << p.name;

    Trainer r(vkt_test::context(), frozen_mlp(), options(GetParam(), 77));
    vktrain::OptimizerStateLoad what;
    r.load_checkpoint(path, &what);
    EXPECT_EQ(what.dropped, (std::vector<std::string>{"linear0.weight", "linear0.bias"}));
    EXPECT_TRUE(what.fresh.empty());
    EXPECT_EQ(what.restored.size(), 4u);
    for (uint32_t i = 3; i < 7; ++i) {
        const vkt_test::Batch b = make(i);
        const vktrain::StepResult ra = a.step(b.x.data(), b.labels.data(), batch);
        const vktrain::StepResult rr = r.step(b.x.data(), b.labels.data(), batch);
        EXPECT_TRUE(same_bits(ra.loss, rr.loss)) << "step " << i;
        EXPECT_EQ(ra.skipped, rr.skipped) << "step " << i;
    }
    const auto after = a.parameters();
    for (size_t i = 0; i < after.size(); ++i) {
        // A frozen tensor lives on the device alone, in the storage precision: in mixed precision its fp16 copy.
        std::vector<float> frozen = before[i].data;
        if (GetParam().precision == Precision::mixed)
            for (float& x : frozen) x = vktrain::half_to_float(vktrain::float_to_half(x));
        if (after[i].name.rfind("linear0.", 0) == 0)
            EXPECT_TRUE(same_bits(frozen, after[i].data)) << after[i].name << " changed while frozen";
        else
            EXPECT_FALSE(same_bits(before[i].data, after[i].data)) << after[i].name << " stopped training";
    }
    expect_same_training(a, r);
    std::remove(path.c_str());
}

// Unfreezing mid-run: the newly trainable tensors start as a fresh optimizer would (zero state, bias correction from
// step 1), the others keep their state; a checkpoint from before the switch loads into a trainer that trains all.
TEST_P(TrainableAtRunTime, UnfreezingStartsFreshStateAsAFreshOptimizerWould) {
    const std::string path = temp_path("unfreeze_" + name().substr(name().find('/') + 1));
    Trainer a(vkt_test::context(), frozen_mlp(), options(GetParam(), 3));
    for (uint32_t i = 0; i < 3; ++i) a.step(make(i).x.data(), make(i).labels.data(), batch);
    a.save_checkpoint(path);
    const State state_before = a.optimizer_state();

    a.set_trainable("linear0.", true);
    expect_strategy(a);
    const State state = a.optimizer_state();
    EXPECT_EQ(state.size(), state_before.size() / 2 * 3);
    for (const auto& [n, v] : state) {
        if (n.find("linear0.") != std::string::npos) {
            EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; })) << n;
        } else {
            ASSERT_NE(find(state_before, n), nullptr) << n;
            EXPECT_TRUE(same_bits(*find(state_before, n), v)) << n;
        }
    }

    // A fresh optimizer on the same weights takes the same first step for linear0.
    Trainer fresh(vkt_test::context(), mlp(), options(GetParam(), 99));
    fresh.set_parameters(a.parameters());
    const vkt_test::Batch b = make(3);
    const vktrain::StepResult ra = a.step(b.x.data(), b.labels.data(), batch);
    const vktrain::StepResult rf = fresh.step(b.x.data(), b.labels.data(), batch);
    ASSERT_FALSE(ra.skipped);
    EXPECT_TRUE(same_bits(ra.loss, rf.loss));
    for (const std::string n : {"linear0.weight", "linear0.bias"}) {
        EXPECT_TRUE(same_bits(a.parameter(n).data, fresh.parameter(n).data)) << n;
        for (const auto& [k, v] : fresh.optimizer_state())
            if (k.find(n) != std::string::npos) {
                ASSERT_NE(find(a.optimizer_state(), k), nullptr) << k;
                EXPECT_TRUE(same_bits(*find(a.optimizer_state(), k), v)) << k;
            }
    }
    // linear1 went on from its own history, not from a fresh state.
    EXPECT_FALSE(same_bits(a.parameter("linear1.weight").data, fresh.parameter("linear1.weight").data));

    // The checkpoint from before the switch, loaded into a trainer that trains everything: the same step follows.
    Trainer r(vkt_test::context(), mlp(), options(GetParam(), 5));
    vktrain::OptimizerStateLoad what;
    r.load_checkpoint(path, &what);
    EXPECT_EQ(what.fresh, (std::vector<std::string>{"linear0.weight", "linear0.bias"}));
    EXPECT_TRUE(what.dropped.empty());
    const vktrain::StepResult rr = r.step(b.x.data(), b.labels.data(), batch);
    EXPECT_TRUE(same_bits(ra.loss, rr.loss));
    expect_same_training(a, r);
    std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Strategies, TrainableAtRunTime,
                         testing::Values(Config{Strategy::host, Precision::fp32, OptimizerKind::adamw},
                                         Config{Strategy::host, Precision::mixed, OptimizerKind::adamw},
                                         Config{Strategy::host, Precision::fp32, OptimizerKind::sgd},
                                         Config{Strategy::pipelined, Precision::fp32, OptimizerKind::adamw},
                                         Config{Strategy::pipelined, Precision::mixed, OptimizerKind::sgd},
                                         Config{Strategy::device, Precision::fp32, OptimizerKind::adamw},
                                         Config{Strategy::device, Precision::mixed, OptimizerKind::adamw},
                                         Config{Strategy::device, Precision::fp32, OptimizerKind::sgd}),
                         [](const testing::TestParamInfo<Config>& i) { return config_name(i.param); });

TEST(TrainableAtRunTimeErrors, BadChangesThrowAndChangeNothing) {
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = batch;
    Trainer t(vkt_test::context(), mlp(), o);
    t.step(make(0).x.data(), make(0).labels.data(), batch);
    const auto params = t.parameters();
    const State state = t.optimizer_state();
    const uint64_t bytes = t.device_bytes();
    const auto expect_error = [&](const std::string& pattern, bool trainable, const std::string& needle) {
        try {
            t.set_trainable(pattern, trainable);
            ADD_FAILURE() << "no error for '" << pattern << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        }
    };
    expect_error("linear7.", false, "linear7.");        // matches nothing
    expect_error("linear0", false, "linear0");          // not a prefix without its '.'
    expect_error("*", false, "no trainable parameter"); // nothing would train
    t.set_trainable("linear1.weight", true);            // already trainable: nothing to rebuild
    EXPECT_EQ(t.device_bytes(), bytes);
    const auto after = t.parameters();
    for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(same_bits(params[i].data, after[i].data));
    const State state_after = t.optimizer_state();
    ASSERT_EQ(state.size(), state_after.size());
    for (size_t i = 0; i < state.size(); ++i) EXPECT_TRUE(same_bits(state[i].second, state_after[i].second));

    // Globs: every bias frozen at once.
    t.set_trainable("*.bias", false);
    for (const auto& [n, v] : t.optimizer_state()) EXPECT_EQ(n.find(".bias"), std::string::npos) << n;
    t.step(make(1).x.data(), make(1).labels.data(), batch);
    EXPECT_TRUE(same_bits(t.parameter("linear2.bias").data, params[5].data));

    o.inference_only = true;
    Trainer inference(vkt_test::context(), mlp(), o);
    EXPECT_THROW(inference.set_trainable("linear0.", false), vktrain::Error);
}

// The pipelined update writes a second bank of master weights and swaps it in: frozen weights the host writes between
// steps (set_parameter) must be in both banks, or the swap after the next step would bring the old values back.
TEST(TrainableAtRunTimeErrors, FrozenWeightsWrittenBetweenPipelinedStepsStay) {
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = batch;
    o.update_buckets = 3;
    o.update_location = UpdateLocation::host;
    Trainer t(vkt_test::context(), frozen_mlp(), o);
    ASSERT_GT(t.update_buckets(), 1u);
    t.step(make(0).x.data(), make(0).labels.data(), batch);
    std::vector<float> w(40 * features, 0.125f);
    t.set_parameter("linear0.weight", w);
    for (uint32_t i = 1; i < 4; ++i) {
        t.step(make(i).x.data(), make(i).labels.data(), batch);
        EXPECT_TRUE(same_bits(t.parameter("linear0.weight").data, w)) << "after step " << i;
    }
}

// Model::set_trainable on the model a trainer was made from changes nothing in the trainer (it compiled a copy).
TEST(TrainableAtRunTimeErrors, TheModelATrainerWasMadeFromIsNotItsModel) {
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = batch;
    Model m = mlp();
    Trainer t(vkt_test::context(), m, o);
    m.set_trainable("linear0.", false);
    const auto before = t.parameter("linear0.weight");
    t.step(make(0).x.data(), make(0).labels.data(), batch);
    EXPECT_FALSE(same_bits(before.data, t.parameter("linear0.weight").data));
    EXPECT_TRUE(t.model().parameters()[0].trainable);
}

// parameter(name) and set_parameter(name): one tensor in or out, the others untouched; set_parameters takes a subset.
class ParametersOneAtATime : public testing::TestWithParam<UpdateLocation> {};

TEST_P(ParametersOneAtATime, ReadAndWriteOneTensor) {
    Model cnn;
    int x = cnn.input("x", {2, 4, 4});
    x = cnn.batch_norm2d(cnn.conv2d(x, 3, vktrain::Conv2dOptions::square(3, 1, 1)));
    cnn.softmax_cross_entropy(cnn.linear(cnn.flatten(cnn.relu(x)), classes));
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = batch;
    o.update_location = GetParam();
    Trainer t(vkt_test::context(), cnn, o);
    for (uint32_t i = 0; i < 2; ++i) {
        const vkt_test::Batch b = vkt_test::make_batch(batch, 32, classes, 40 + i);
        t.step(b.x.data(), b.labels.data(), batch);
    }
    const auto all = t.parameters();
    for (const vktrain::Parameter& p : all) { // weights, running statistics (device state) and the counter
        const vktrain::Parameter one = t.parameter(p.name);
        EXPECT_EQ(one.name, p.name);
        EXPECT_EQ(one.shape, p.shape);
        EXPECT_TRUE(same_bits(one.data, p.data)) << p.name;
    }
    EXPECT_EQ(t.parameter("bn0.num_batches_tracked").data, std::vector<float>{2.0f});

    // One weight and one running statistic written; nothing else moves.
    std::vector<float> w(all[0].data.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * float(i % 7) - 0.03f;
    t.set_parameter(all[0].name, w);
    const std::vector<float> mean(3, 0.25f);
    t.set_parameter("bn0.running_mean", mean);
    const auto now = t.parameters();
    for (size_t i = 0; i < now.size(); ++i) {
        if (now[i].name == all[0].name)
            EXPECT_TRUE(same_bits(now[i].data, w));
        else if (now[i].name == "bn0.running_mean")
            EXPECT_TRUE(same_bits(now[i].data, mean));
        else
            EXPECT_TRUE(same_bits(now[i].data, all[i].data)) << now[i].name;
    }
    // The next step starts from the written weight (as a trainer given all the parameters would).
    Trainer u(vkt_test::context(), cnn, o);
    u.load_checkpoint([&] {
        const std::string path = temp_path(std::string("one_") + (GetParam() == UpdateLocation::device ? "d" : "h"));
        t.save_checkpoint(path);
        return path;
    }());
    const vkt_test::Batch b = vkt_test::make_batch(batch, 32, classes, 50);
    EXPECT_TRUE(
        same_bits(t.step(b.x.data(), b.labels.data(), batch).loss, u.step(b.x.data(), b.labels.data(), batch).loss));
    expect_same_training(t, u);

    const auto before_errors = t.parameters();
    const auto error = [&](const std::function<void()>& f, const std::vector<std::string>& needles) {
        try {
            f();
            ADD_FAILURE() << "no error";
        } catch (const vktrain::Error& e) {
            for (const std::string& n : needles)
                EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
        }
    };
    error([&] { t.parameter("conv2d9.weight"); }, {"conv2d9.weight"});
    error([&] { t.set_parameter("conv2d9.weight", w); }, {"conv2d9.weight"});
    error([&] { t.set_parameter(all[0].name, std::vector<float>(w.size() + 1)); }, {all[0].name, "elements"});
    error([&] { t.set_parameter(all[0].name, std::vector<float>(w.size(), NAN)); }, {all[0].name, "finite"});
    error([&] { t.set_parameters({now[1], now[1]}); }, {now[1].name, "twice"});
    vktrain::Parameter misshaped = now[1], changed = now[2];
    misshaped.shape = {int64_t(misshaped.data.size()), 1};
    for (float& v : changed.data) v += 1.0f;
    error([&] { t.set_parameters({changed, misshaped}); }, {now[1].name, "shape"});
    const auto after_errors = t.parameters(); // the refused calls wrote nothing, not even their valid tensors
    for (size_t i = 0; i < after_errors.size(); ++i)
        EXPECT_TRUE(same_bits(after_errors[i].data, before_errors[i].data)) << after_errors[i].name;
}

INSTANTIATE_TEST_SUITE_P(Locations, ParametersOneAtATime, testing::Values(UpdateLocation::host, UpdateLocation::device),
                         [](const testing::TestParamInfo<UpdateLocation>& i) {
                             return std::string(i.param == UpdateLocation::device ? "device" : "host");
                         });

// set_parameters with some of the tensors changes those and keeps the others; load() of a weights file still needs
// every tensor.
TEST(ParametersSubset, SetParametersTakesSomeTensorsAndLoadStaysStrict) {
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = batch;
    Trainer t(vkt_test::context(), mlp(), o);
    t.step(make(0).x.data(), make(0).labels.data(), batch);
    const auto all = t.parameters();
    vktrain::Parameter half = all[2];
    for (float& v : half.data) v *= 0.5f;
    t.set_parameters({half});
    const auto now = t.parameters();
    for (size_t i = 0; i < now.size(); ++i)
        EXPECT_TRUE(same_bits(now[i].data, i == 2 ? half.data : all[i].data)) << now[i].name;
    // The device's copy has it too: a trainer given every tensor predicts the same.
    Trainer u(vkt_test::context(), mlp(), o);
    u.set_parameters(now);
    const vkt_test::Batch probe = make(5);
    EXPECT_TRUE(same_bits(t.predict(probe.x.data(), batch), u.predict(probe.x.data(), batch)));

    const std::string path = temp_path("subset");
    t.save(path);
    std::vector<std::pair<std::string, std::string>> metadata;
    auto tensors = vktrain::io::read_safetensors(path, &metadata);
    tensors.pop_back();
    vktrain::io::write_safetensors(path, tensors, metadata);
    try {
        u.load(path);
        ADD_FAILURE() << "a weights file without " << all.back().name << " loaded";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find(all.back().name), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
    }
    std::remove(path.c_str());
}

// A checkpoint loads into a trainer that trains fewer tensors (their state is dropped) or more (fresh state), with the
// state of the tensors trained by both restored.
TEST(CheckpointAcrossTrainability, LoadsIntoATrainerThatTrainsFewerOrMore) {
    TrainerOptions o;
    o.precision = Precision::fp32;
    o.batch_size = batch;
    const std::string path = temp_path("across");
    const auto train = [&](Trainer& t) {
        for (uint32_t i = 0; i < 3; ++i) t.step(make(i).x.data(), make(i).labels.data(), batch);
        t.save_checkpoint(path);
    };
    // AdamW keeps two tensors of state per parameter; linear0's two parameters come first.
    {
        Trainer all(vkt_test::context(), mlp(), o);
        train(all);
        Trainer fewer(vkt_test::context(), frozen_mlp(), o);
        fewer.load_checkpoint(path);
        const auto pa = all.parameters(), pf = fewer.parameters();
        for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(same_bits(pa[i].data, pf[i].data)) << pa[i].name;
        const State sa = all.optimizer_state(), sf = fewer.optimizer_state();
        ASSERT_EQ(sf.size() + 4, sa.size());
        for (size_t i = 0; i < sf.size(); ++i) EXPECT_TRUE(same_bits(sf[i].second, sa[i + 4].second)) << sf[i].first;
        EXPECT_EQ(fewer.steps(), 3u);
    }
    {
        Trainer some(vkt_test::context(), frozen_mlp(), o);
        train(some);
        Trainer more(vkt_test::context(), mlp(), o);
        more.load_checkpoint(path);
        const State ss = some.optimizer_state(), sm = more.optimizer_state();
        ASSERT_EQ(ss.size() + 4, sm.size());
        for (size_t i = 0; i < 4; ++i)
            EXPECT_TRUE(std::all_of(sm[i].second.begin(), sm[i].second.end(), [](float v) { return v == 0.0f; }))
                << sm[i].first;
        for (size_t i = 0; i < ss.size(); ++i) EXPECT_TRUE(same_bits(ss[i].second, sm[i + 4].second)) << ss[i].first;
        more.step(make(3).x.data(), make(3).labels.data(), batch); // and trains on
    }
    std::remove(path.c_str());
}

} // namespace
