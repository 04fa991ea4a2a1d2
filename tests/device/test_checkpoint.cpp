// Full training checkpoints: a trainer that loads a checkpoint continues bit-identically to the one that wrote it
// (weights, optimizer state, loss scale, counters), in mixed precision with a skipped overflow step and in fp32, for
// AdamW and SGD with momentum; bad or mismatched files throw one-line errors and change nothing; load() reads the
// weights of a checkpoint.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include "device/support.hpp"
#include "io/safetensors.hpp"
#include "vktrain/trainer.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::Model;
using vktrain::OptimizerKind;
using vktrain::Precision;
using vktrain::Trainer;
using vktrain::TrainerOptions;

using vkt_test::Batch;

constexpr uint32_t features = 12, classes = 4, batch_size = 8;

Model model() {
    return Model::mlp(features, {9, 7}, classes);
}

Batch make_batch(uint32_t seed) {
    return vkt_test::make_batch(batch_size, features, classes, seed);
}

TrainerOptions options(Precision precision, OptimizerKind kind, uint64_t seed) {
    TrainerOptions o;
    o.precision = precision;
    o.batch_size = batch_size;
    o.seed = seed;
    // Auto selection measures timings, which could pick different paths for the two trainers: fix the path.
    if (precision == Precision::mixed)
        o.gemm_path = vkt_test::context().coopmat_available() ? GemmPath::coopmat : GemmPath::tiled_fp16;
    o.optimizer.kind = kind;
    if (kind == OptimizerKind::sgd) {
        o.optimizer.learning_rate = 0.05f;
        o.optimizer.momentum = 0.9f;
        o.optimizer.nesterov = true;
        o.optimizer.weight_decay = 1e-3f;
    } else {
        o.optimizer.learning_rate = 1e-2f;
        o.optimizer.weight_decay = 1e-2f;
    }
    // Short growth interval and a backoff that gives a scale with a long mantissa (65536 * 0.3), so the tracker
    // and the exact scale both matter after the checkpoint.
    o.loss_scaler.growth_interval = 3;
    o.loss_scaler.backoff_factor = 0.3f;
    return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool same_bits(float a, float b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

struct State {
    std::vector<vktrain::Parameter> params;
    std::vector<std::pair<std::string, std::vector<float>>> optimizer;
    float loss_scale = 0, learning_rate = 0;
    uint64_t steps = 0, skipped = 0;
    std::vector<float> logits; // predictions on a probe batch: the device copy of the weights
};

State capture(Trainer& t) {
    State s;
    s.params = t.parameters();
    s.optimizer = t.optimizer_state();
    s.loss_scale = t.loss_scale();
    s.learning_rate = t.learning_rate();
    s.steps = t.steps();
    s.skipped = t.skipped_steps();
    s.logits = t.predict(make_batch(999).x.data(), batch_size);
    return s;
}

void expect_identical(const State& a, const State& b) {
    ASSERT_EQ(a.params.size(), b.params.size());
    for (size_t p = 0; p < a.params.size(); ++p) {
        EXPECT_EQ(a.params[p].name, b.params[p].name);
        EXPECT_TRUE(same_bits(a.params[p].data, b.params[p].data)) << a.params[p].name;
    }
    ASSERT_EQ(a.optimizer.size(), b.optimizer.size());
    for (size_t s = 0; s < a.optimizer.size(); ++s) {
        EXPECT_EQ(a.optimizer[s].first, b.optimizer[s].first);
        EXPECT_TRUE(same_bits(a.optimizer[s].second, b.optimizer[s].second)) << a.optimizer[s].first;
    }
    EXPECT_TRUE(same_bits(a.loss_scale, b.loss_scale)) << a.loss_scale << " vs " << b.loss_scale;
    EXPECT_TRUE(same_bits(a.learning_rate, b.learning_rate)) << a.learning_rate << " vs " << b.learning_rate;
    EXPECT_EQ(a.steps, b.steps);
    EXPECT_EQ(a.skipped, b.skipped);
    EXPECT_TRUE(same_bits(a.logits, b.logits)) << "predictions differ";
}

std::string temp_path(const std::string& name) {
    return testing::TempDir() + "vktrain_checkpoint_" + name + ".safetensors";
}

// A runs N steps (in mixed precision one of them overflows and is skipped), saves, runs M more; B, initialised
// differently, loads the checkpoint and runs the same M steps: everything must match A bit for bit.
void resume_is_bit_identical(Precision precision, OptimizerKind kind) {
    const bool mixed = precision == Precision::mixed;
    const std::string path =
        temp_path(std::string(mixed ? "mixed_" : "fp32_") + (kind == OptimizerKind::sgd ? "sgd" : "adamw"));
    Trainer a(vkt_test::context(), model(), options(precision, kind, 42));
    for (uint32_t i = 0; i < 5; ++i) {
        Batch b = make_batch(100 + i);
        if (mixed && i == 2) b.x[0] = 1e6f; // beyond fp16: the step overflows and is skipped
        if (i == 3) a.set_learning_rate(a.learning_rate() * 0.5f);
        const vktrain::StepResult r = a.step(b.x.data(), b.labels.data(), batch_size);
        EXPECT_EQ(r.skipped, mixed && i == 2) << "step " << i;
    }
    if (mixed) {
        ASSERT_EQ(a.skipped_steps(), 1u);
        ASSERT_EQ(a.loss_scale(), float(65536.0 * double(0.3f)));
    }
    a.save_checkpoint(path);
    const State saved = capture(a);

    std::vector<Batch> later;
    for (uint32_t j = 0; j < 4; ++j) later.push_back(make_batch(200 + j));
    const uint32_t last_count = 5; // a partial batch at the end
    std::vector<vktrain::StepResult> results_a;
    for (size_t j = 0; j < later.size(); ++j)
        results_a.push_back(
            a.step(later[j].x.data(), later[j].labels.data(), j + 1 == later.size() ? last_count : batch_size));
    const State final_a = capture(a);
    if (mixed) {
        // The growth tracker stood at 2 of 3: the first step after the checkpoint grows the scale.
        EXPECT_EQ(results_a[1].loss_scale, 2.0f * saved.loss_scale);
    }

    Trainer b(vkt_test::context(), model(), options(precision, kind, 7));
    EXPECT_TRUE(b.load_checkpoint(path).empty());
    {
        SCOPED_TRACE("right after loading");
        expect_identical(saved, capture(b));
    }
    for (size_t j = 0; j < later.size(); ++j) {
        const vktrain::StepResult r =
            b.step(later[j].x.data(), later[j].labels.data(), j + 1 == later.size() ? last_count : batch_size);
        EXPECT_TRUE(same_bits(r.loss, results_a[j].loss)) << "step " << j;
        EXPECT_TRUE(same_bits(r.loss_scale, results_a[j].loss_scale)) << "step " << j;
        EXPECT_EQ(r.skipped, results_a[j].skipped) << "step " << j;
    }
    {
        SCOPED_TRACE("after the same steps");
        expect_identical(final_a, capture(b));
    }

    // The optimizer state is what makes the difference: weights alone do not continue the same way.
    Trainer c(vkt_test::context(), model(), options(precision, kind, 7));
    c.load(path);
    c.set_learning_rate(saved.learning_rate);
    for (size_t j = 0; j < later.size(); ++j)
        c.step(later[j].x.data(), later[j].labels.data(), j + 1 == later.size() ? last_count : batch_size);
    EXPECT_FALSE(same_bits(final_a.params[0].data, c.parameters()[0].data));
    std::remove(path.c_str());
}

TEST(Checkpoint, ResumeIsBitIdenticalMixedAdamW) {
    VKT_REQUIRE_FP16();
    resume_is_bit_identical(Precision::mixed, OptimizerKind::adamw);
}

TEST(Checkpoint, ResumeIsBitIdenticalMixedSgdMomentum) {
    VKT_REQUIRE_FP16();
    resume_is_bit_identical(Precision::mixed, OptimizerKind::sgd);
}

TEST(Checkpoint, ResumeIsBitIdenticalFp32AdamW) {
    resume_is_bit_identical(Precision::fp32, OptimizerKind::adamw);
}

TEST(Checkpoint, ResumeIsBitIdenticalFp32SgdMomentum) {
    resume_is_bit_identical(Precision::fp32, OptimizerKind::sgd);
}

TEST(Checkpoint, LoadReadsTheWeightsOfACheckpoint) {
    const Precision precision = vkt_test::context().fp16_available() ? Precision::mixed : Precision::fp32;
    Trainer a(vkt_test::context(), model(), options(precision, OptimizerKind::adamw, 42));
    for (uint32_t i = 0; i < 3; ++i) {
        const Batch b = make_batch(300 + i);
        a.step(b.x.data(), b.labels.data(), batch_size);
    }
    const std::string path = temp_path("weights");
    a.save_checkpoint(path);
    Trainer c(vkt_test::context(), model(), options(precision, OptimizerKind::adamw, 7));
    const auto state_before = c.optimizer_state();
    c.load(path);
    const auto pa = a.parameters(), pc = c.parameters();
    ASSERT_EQ(pa.size(), pc.size());
    for (size_t p = 0; p < pa.size(); ++p) EXPECT_TRUE(same_bits(pa[p].data, pc[p].data)) << pa[p].name;
    const Batch probe = make_batch(999);
    EXPECT_TRUE(same_bits(a.predict(probe.x.data(), batch_size), c.predict(probe.x.data(), batch_size)));
    EXPECT_EQ(c.steps(), 0u); // weights only: no counters, no optimizer state
    const auto state_after = c.optimizer_state();
    ASSERT_EQ(state_before.size(), state_after.size());
    for (size_t s = 0; s < state_before.size(); ++s)
        EXPECT_TRUE(same_bits(state_before[s].second, state_after[s].second));
    std::remove(path.c_str());
}

TEST(Checkpoint, ExtraMetadataRoundTripsAndReservedKeysAreRejected) {
    Trainer a(vkt_test::context(), model(), options(Precision::fp32, OptimizerKind::sgd, 42));
    const std::string path = temp_path("extra");
    const vktrain::CheckpointMetadata extra = {{"my_epoch", "3"}, {"my_note", "hello"}};
    a.save_checkpoint(path, extra);
    Trainer b(vkt_test::context(), model(), options(Precision::fp32, OptimizerKind::sgd, 7));
    EXPECT_EQ(b.load_checkpoint(path), extra);
    EXPECT_THROW(a.save_checkpoint(path, {{"vktrain_steps", "5"}}), vktrain::Error);
    std::remove(path.c_str());
}

using Tensors = std::vector<vktrain::io::NamedTensor>;
using Metadata = std::vector<std::pair<std::string, std::string>>;

// Copies a safetensors file through an edit of its tensors and metadata.
void rewrite(const std::string& from, const std::string& to, const std::function<void(Tensors&, Metadata&)>& edit) {
    Metadata metadata;
    Tensors tensors = vktrain::io::read_safetensors(from, &metadata);
    edit(tensors, metadata);
    vktrain::io::write_safetensors(to, tensors, metadata);
}

void set_metadata(Metadata& metadata, const std::string& key, const std::string& value) {
    for (auto& [k, v] : metadata)
        if (k == key) v = value;
}

// Files of format version 1 (before the state was keyed by parameter name: "optimizer.exp_avg.0", no per-tensor step
// counts) still load, into the same model and into one that trains fewer tensors.
TEST(Checkpoint, VersionOneFilesStillLoad) {
    const Precision precision = vkt_test::context().fp16_available() ? Precision::mixed : Precision::fp32;
    Trainer a(vkt_test::context(), model(), options(precision, OptimizerKind::adamw, 42));
    for (uint32_t i = 0; i < 4; ++i) {
        const Batch b = make_batch(600 + i);
        a.step(b.x.data(), b.labels.data(), batch_size);
    }
    const std::string v2 = temp_path("v2"), v1 = temp_path("v1");
    a.save_checkpoint(v2);
    std::vector<std::string> trainable;
    for (const vktrain::ParameterInfo& p : model().parameters())
        if (p.trainable && !p.buffer) trainable.push_back(p.name);
    rewrite(v2, v1, [&](Tensors& ts, Metadata& m) {
        for (auto& t : ts) {
            if (t.name.rfind("optimizer.", 0) != 0) continue;
            for (size_t i = 0; i < trainable.size(); ++i) {
                const std::string suffix = "." + trainable[i];
                if (t.name.size() > suffix.size() &&
                    t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
                    t.name = t.name.substr(0, t.name.size() - suffix.size()) + "." + std::to_string(i);
                    break;
                }
            }
        }
        set_metadata(m, "vktrain_checkpoint", "1");
        for (size_t i = 0; i < m.size(); ++i)
            if (m[i].first == "vktrain_optimizer_tensors") m.erase(m.begin() + long(i));
    });
    Trainer b(vkt_test::context(), model(), options(precision, OptimizerKind::adamw, 7));
    b.load_checkpoint(v1);
    expect_identical(capture(a), capture(b));

    Model frozen = model();
    frozen.set_trainable("linear0.", false);
    Trainer c(vkt_test::context(), frozen, options(precision, OptimizerKind::adamw, 7));
    vktrain::OptimizerStateLoad what;
    c.load_checkpoint(v1, &what);
    EXPECT_EQ(what.dropped, (std::vector<std::string>{"linear0.weight", "linear0.bias"}));
    const auto state_a = a.optimizer_state(), state_c = c.optimizer_state();
    ASSERT_EQ(state_c.size() + 4, state_a.size());
    for (size_t i = 0; i < state_c.size(); ++i) {
        EXPECT_EQ(state_c[i].first, state_a[i + 4].first);
        EXPECT_TRUE(same_bits(state_c[i].second, state_a[i + 4].second)) << state_c[i].first;
    }
    std::remove(v1.c_str());
    std::remove(v2.c_str());
}

TEST(Checkpoint, BadFilesThrowAndLeaveTheTrainerUnchanged) {
    const Precision precision = vkt_test::context().fp16_available() ? Precision::mixed : Precision::fp32;
    const auto train = [](Trainer& t, uint32_t steps, uint32_t seed) {
        for (uint32_t i = 0; i < steps; ++i) {
            const Batch b = make_batch(seed + i);
            t.step(b.x.data(), b.labels.data(), batch_size);
        }
    };
    // The source of the files: a different run, so that any accepted load would visibly change `t`.
    Trainer source(vkt_test::context(), model(), options(precision, OptimizerKind::adamw, 9));
    train(source, 4, 500);
    const std::string good = temp_path("good"), bad = temp_path("bad");
    source.save_checkpoint(good);
    const std::string last_param = source.parameters().back().name;

    Trainer t(vkt_test::context(), model(), options(precision, OptimizerKind::adamw, 42));
    train(t, 3, 400);
    const State before = capture(t);

    struct Case {
        std::string what;
        std::function<void()> make; // writes `bad`
        std::vector<std::string> needles;
    };
    const auto edit = [&](std::function<void(Tensors&, Metadata&)> fn) { return [&, fn] { rewrite(good, bad, fn); }; };
    const auto meta = [&](std::string key, std::string value) {
        return edit([key, value](Tensors&, Metadata& m) { set_metadata(m, key, value); });
    };
    const auto other_trainer = [&](Model m, OptimizerKind kind) {
        return [&, m, kind] {
            Trainer o(vkt_test::context(), m, options(precision, kind, 1));
            o.save_checkpoint(bad);
        };
    };
    const std::vector<Case> cases = {
        {"weights only", [&] { source.save(bad); }, {"not a vktrain checkpoint"}},
        {"missing file", [&] { std::remove(bad.c_str()); }, {}},
        {"truncated",
         [&] {
             std::ifstream in(good, std::ios::binary);
             const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
             std::ofstream(bad, std::ios::binary).write(bytes.data(), long(bytes.size() / 2));
         },
         {}},
        {"other model", other_trainer(Model::mlp(features, {10, 7}, classes), OptimizerKind::adamw), {"model"}},
        {"other optimizer", other_trainer(model(), OptimizerKind::sgd), {"sgd", "adamw"}},
        {"missing optimizer tensor",
         edit([](Tensors& ts, Metadata&) {
             for (size_t i = 0; i < ts.size(); ++i)
                 if (ts[i].name == "optimizer.exp_avg_sq.linear0.bias") ts.erase(ts.begin() + long(i));
         }),
         {"exp_avg_sq.linear0.bias", "missing"}},
        {"wrongly shaped optimizer tensor",
         edit([](Tensors& ts, Metadata&) {
             for (auto& x : ts)
                 if (x.name == "optimizer.exp_avg.linear0.weight") x.shape = {int64_t(x.data.size())};
         }),
         {"optimizer.exp_avg.linear0.weight", "shape"}},
        {"wrongly sized optimizer tensor",
         edit([](Tensors& ts, Metadata&) {
             for (auto& x : ts)
                 if (x.name == "optimizer.exp_avg.linear1.weight") {
                     x.shape = {1};
                     x.data.resize(1);
                 }
         }),
         {"optimizer.exp_avg.linear1.weight"}},
        {"unexpected optimizer tensor",
         edit([](Tensors& ts, Metadata&) {
             ts.push_back({"optimizer.exp_avg.77", {1}, {0.0f}});
         }),
         {"optimizer.exp_avg.77"}},
        {"missing parameter",
         edit([last_param](Tensors& ts, Metadata&) {
             for (size_t i = 0; i < ts.size(); ++i)
                 if (ts[i].name == last_param) ts.erase(ts.begin() + long(i));
         }),
         {last_param, "missing"}},
        {"NaN weight",
         edit([last_param](Tensors& ts, Metadata&) {
             for (auto& x : ts)
                 if (x.name == last_param) x.data[0] = std::nanf("");
         }),
         {last_param, "finite"}},
        {"negative second moment",
         edit([](Tensors& ts, Metadata&) {
             for (auto& x : ts)
                 if (x.name == "optimizer.exp_avg_sq.linear0.weight") x.data[1] = -1.0f;
         }),
         {"exp_avg_sq.linear0.weight", ">= 0"}},
        {"infinite first moment",
         edit([](Tensors& ts, Metadata&) {
             for (auto& x : ts)
                 if (x.name == "optimizer.exp_avg.linear0.bias") x.data[0] = INFINITY;
         }),
         {"exp_avg.linear0.bias", "finite"}},
        {"unknown tensor",
         edit([](Tensors& ts, Metadata&) {
             ts.push_back({"bogus", {1}, {0.0f}});
         }),
         {"bogus"}},
        {"format version", meta("vktrain_checkpoint", "3"), {"version"}},
        {"trainable list not an object", meta("vktrain_optimizer_tensors", "[1]"), {"vktrain_optimizer_tensors"}},
        {"trainable list not JSON", meta("vktrain_optimizer_tensors", "{"), {"vktrain_optimizer_tensors"}},
        {"negative tensor steps",
         meta("vktrain_optimizer_tensors", R"({"linear0.weight": -1})"),
         {"vktrain_optimizer_tensors", "linear0.weight"}},
        {"tensor steps beyond the optimizer's",
         meta("vktrain_optimizer_tensors", R"({"linear0.weight": 1000})"),
         {"vktrain_optimizer_tensors", "linear0.weight"}},
        {"state of a tensor the checkpoint does not list",
         meta("vktrain_optimizer_tensors", R"({"linear0.weight": 4, "linear1.weight": 4, "linear1.bias": 4,
                                               "linear2.weight": 4, "linear2.bias": 4})"),
         {"optimizer.exp_avg", "linear0.bias", "unexpected"}},
        {"a listed tensor that is no parameter",
         meta("vktrain_optimizer_tensors", R"({"linear9.weight": 4})"),
         {"linear9.weight", "not a parameter"}},
        {"missing trainable list",
         edit([](Tensors&, Metadata& m) {
             for (size_t i = 0; i < m.size(); ++i)
                 if (m[i].first == "vktrain_optimizer_tensors") m.erase(m.begin() + long(i));
         }),
         {"vktrain_optimizer_tensors"}},
        {"missing metadata",
         edit([](Tensors&, Metadata& m) {
             for (size_t i = 0; i < m.size(); ++i)
                 if (m[i].first == "vktrain_optimizer_steps") m.erase(m.begin() + long(i));
         }),
         {"vktrain_optimizer_steps"}},
        {"unparsable loss scale", meta("vktrain_loss_scale", "lots"), {"vktrain_loss_scale"}},
        {"negative loss scale", meta("vktrain_loss_scale", "-0x1p+4"), {"loss scale"}},
        {"inexact loss scale", meta("vktrain_loss_scale", "0.1"), {"vktrain_loss_scale"}},
        {"nan learning rate", meta("vktrain_learning_rate", "nan"), {"vktrain_learning_rate"}},
        {"negative steps", meta("vktrain_steps", "-1"), {"vktrain_steps"}},
        {"more skipped than steps", meta("vktrain_skipped_steps", "1000"), {"skipped"}},
        {"growth tracker too large", meta("vktrain_growth_tracker", "3"), {"growth_tracker"}},
        {"bad precision", meta("vktrain_precision", "fp8"), {"vktrain_precision"}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        c.make();
        try {
            t.load_checkpoint(bad);
            ADD_FAILURE() << "no error";
        } catch (const vktrain::Error& e) {
            const std::string message = e.what();
            EXPECT_NE(message.find(bad), std::string::npos) << message;
            for (const std::string& n : c.needles) EXPECT_NE(message.find(n), std::string::npos) << message;
            EXPECT_EQ(message.find('\n'), std::string::npos) << message;
        }
        expect_identical(before, capture(t));
    }
    // The unedited file loads.
    t.load_checkpoint(good);
    expect_identical(capture(source), capture(t));
    std::remove(good.c_str());
    std::remove(bad.c_str());
}

} // namespace
