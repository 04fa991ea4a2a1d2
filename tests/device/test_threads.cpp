// Thread rules: a Trainer is used from one thread at a time, and a second thread calling into it while a call runs
// gets an error (not silently shared staging buffers); separate Trainers on one Context train on separate threads.
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

#include "device/support.hpp"

namespace {

using vktrain::Model;
using vktrain::Trainer;
using vktrain::TrainerOptions;

TrainerOptions options() {
    TrainerOptions o;
    o.precision = vktrain::Precision::fp32;
    o.batch_size = 32;
    o.seed = 4;
    return o;
}

TEST(Threads, ASecondThreadInsideOneTrainerIsReported) {
    Trainer t(vkt_test::context(), Model::mlp(64, {64}, 4), options());
    const vkt_test::Batch b = vkt_test::make_batch(32, 64, 4, 1);
    std::atomic<int> errors{0};
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::string message;
    const auto worker = [&](bool train) {
        for (int i = 0; i < 2000 && !stop; ++i) {
            try {
                if (train)
                    t.step(b.x.data(), b.labels.data(), 32);
                else
                    t.predict(b.x.data(), 32);
            } catch (const vktrain::Error& e) {
                ++errors;
                std::lock_guard<std::mutex> lock(mu);
                message = e.what();
                stop = true;
            }
        }
    };
    std::thread a(worker, true), c(worker, false);
    a.join();
    c.join();
    EXPECT_GT(errors.load(), 0) << "two threads ran inside one Trainer without an error";
    EXPECT_NE(message.find("in use by another thread"), std::string::npos) << message;
    // The trainer is intact and usable from one thread afterwards.
    const vktrain::StepResult r = t.step(b.x.data(), b.labels.data(), 32);
    EXPECT_TRUE(std::isfinite(r.loss));
}

TEST(Threads, TrainersOnOneContextTrainOnTheirOwnThreads) {
    const vkt_test::Batch b = vkt_test::make_batch(32, 64, 4, 2);
    Trainer solo(vkt_test::context(), Model::mlp(64, {64}, 4), options());
    for (int i = 0; i < 20; ++i) solo.step(b.x.data(), b.labels.data(), 32);
    const auto want = solo.parameters();
    std::vector<std::vector<vktrain::Parameter>> got(2);
    std::vector<std::thread> threads;
    for (int k = 0; k < 2; ++k)
        threads.emplace_back([&, k] {
            Trainer t(vkt_test::context(), Model::mlp(64, {64}, 4), options());
            for (int i = 0; i < 20; ++i) t.step(b.x.data(), b.labels.data(), 32);
            got[size_t(k)] = t.parameters();
        });
    for (auto& th : threads) th.join();
    for (const auto& g : got)
        for (size_t p = 0; p < want.size(); ++p) EXPECT_EQ(g[p].data, want[p].data) << want[p].name;
}

} // namespace
