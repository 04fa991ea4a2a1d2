// The bucketed update pipeline (train/pipelined_update.hpp) on host data: bit-identical to the plain optimizer step,
// and an overflow injected into any bucket, the last included, leaves every master weight, optimizer state value, fp16
// copy and the learning rate exactly as they were.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/half.hpp"
#include "train/gradients.hpp"
#include "train/optimizer.hpp"
#include "train/pipelined_update.hpp"
#include "vktrain/error.hpp"

namespace {

using vktrain::OptimizerKind;
using vktrain::OptimizerOptions;
using vktrain::train::Optimizer;
using vktrain::train::PipelinedStep;
using vktrain::train::PipelineTensors;

// Five trainable tensors (one empty, one over several 65536-element chunks) between frozen values in the master
// vector, and the gradient buffer laid out in another order.
const std::vector<size_t> kSizes = {7, 0, 64, 70000, 33};
const std::vector<std::vector<size_t>> kBuckets = {{4, 3}, {2}, {0, 1}}; // the order a backward pass finishes them
constexpr float kScale = 1024.0f;

struct World {
    PipelineTensors offsets;
    std::vector<float> master, master_next;
    std::vector<uint16_t> halves_storage;
    std::vector<uint16_t*> halves;
    size_t grad_count = 0;

    World() {
        size_t m = 5; // frozen values first and between tensors
        for (size_t s : kSizes) {
            offsets.master_offsets.push_back(m);
            m += s + 3;
        }
        size_t g = 0;
        offsets.grad_offsets.resize(kSizes.size());
        for (size_t i = kSizes.size(); i-- > 0;) {
            offsets.grad_offsets[i] = g;
            g += kSizes[i];
        }
        grad_count = g;
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> d(-1.0f, 1.0f);
        master.resize(m);
        for (float& x : master) x = d(rng);
        master_next = master;
        size_t h = 0;
        for (size_t s : kSizes) h += s;
        halves_storage.assign(h, 0);
        h = 0;
        for (size_t s : kSizes) {
            halves.push_back(halves_storage.data() + h);
            h += s;
        }
        for (size_t t = 0; t < kSizes.size(); ++t)
            vktrain::floats_to_halves(master.data() + offsets.master_offsets[t], halves[t], kSizes[t]);
    }
    std::vector<float*> params() {
        std::vector<float*> p;
        for (size_t t = 0; t < kSizes.size(); ++t) p.push_back(master.data() + offsets.master_offsets[t]);
        return p;
    }
    std::vector<const float*> grad_ptrs(const std::vector<float>& grads) const {
        std::vector<const float*> p;
        for (size_t t = 0; t < kSizes.size(); ++t) p.push_back(grads.data() + offsets.grad_offsets[t]);
        return p;
    }
    PipelinedStep step(Optimizer& o, const std::vector<float>& grads, float lr,
                       const std::function<void(size_t)>& on_wait = {}) {
        return vktrain::train::pipelined_step(
            o, kBuckets,
            [&](size_t b) {
                if (on_wait) on_wait(b);
                return grads.data();
            },
            offsets, master, master_next, 1.0f / kScale, lr, halves);
    }
};

std::vector<float> scaled_grads(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> g(n);
    for (float& x : g) x = d(rng) * kScale;
    return g;
}

OptimizerOptions options_for(int kind) {
    OptimizerOptions o;
    o.learning_rate = 0.01f;
    o.weight_decay = 0.05f;
    if (kind == 0) {
        o.kind = OptimizerKind::adamw;
    } else {
        o.kind = OptimizerKind::sgd;
        o.momentum = kind == 1 ? 0.9f : 0.0f;
        o.nesterov = kind == 1;
    }
    return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void expect_same_state(const Optimizer& a, const Optimizer& b) {
    EXPECT_EQ(a.step_count(), b.step_count());
    EXPECT_EQ(a.learning_rate(), b.learning_rate());
    const auto sa = a.state_tensors(), sb = b.state_tensors();
    ASSERT_EQ(sa.size(), sb.size());
    for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(same_bits(sa[i].second, sb[i].second)) << sa[i].first;
}

class PipelinedStepTest : public testing::TestWithParam<int> {}; // 0 AdamW, 1 SGD nesterov momentum, 2 plain SGD

TEST_P(PipelinedStepTest, MatchesThePlainStepBitForBit) {
    World plain, piped;
    Optimizer a(options_for(GetParam()), kSizes), b(options_for(GetParam()), kSizes);
    for (uint32_t step = 0; step < 3; ++step) {
        const auto grads = scaled_grads(plain.grad_count, 10 + step);
        const float lr = 0.01f / float(step + 1); // a schedule: set per step
        a.set_learning_rate(lr);
        a.step(plain.params(), plain.grad_ptrs(grads), 1.0f / kScale, 1.0f, plain.halves);
        std::vector<size_t> order;
        const PipelinedStep r = piped.step(b, grads, lr, [&](size_t k) { order.push_back(k); });
        EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2})) << "every bucket waited for once, in order";
        ASSERT_TRUE(r.committed);
        EXPECT_EQ(r.sum_squares, vktrain::train::global_sum_squares(plain.grad_ptrs(grads), kSizes, 1.0f / kScale));
        EXPECT_TRUE(same_bits(plain.master, piped.master)) << "step " << step;
        EXPECT_EQ(plain.halves_storage, piped.halves_storage) << "step " << step;
        expect_same_state(a, b);
        EXPECT_GE(r.host_seconds, r.overlapped_seconds);
    }
    // The frozen values never moved, in either bank.
    World fresh;
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(piped.master[i], fresh.master[i]);
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(piped.master_next[i], fresh.master[i]);
}

// Overflow in bucket `bucket` (the last one is the case the pipeline must undo most of): nothing current changes, and
// the next finite step continues exactly as if the overflowing one had never been taken.
void check_overflow_changes_nothing(int kind, size_t bucket, float bad) {
    World piped, plain;
    Optimizer b(options_for(kind), kSizes), a(options_for(kind), kSizes);
    for (uint32_t step = 0; step < 2; ++step) {
        const auto grads = scaled_grads(plain.grad_count, 20 + step);
        a.step(plain.params(), plain.grad_ptrs(grads), 1.0f / kScale, 1.0f, plain.halves);
        ASSERT_TRUE(piped.step(b, grads, 0.01f).committed);
    }
    const std::vector<float> master = piped.master;
    const std::vector<uint16_t> halves = piped.halves_storage;
    const auto state = b.state_tensors();
    const int64_t steps = b.step_count();

    auto grads = scaled_grads(piped.grad_count, 30);
    // In the bucket's largest tensor, at its last element (the last chunk of the last tensor to be summed).
    size_t victim = kBuckets[bucket].front();
    for (size_t t : kBuckets[bucket])
        if (kSizes[t] > kSizes[victim]) victim = t;
    grads[piped.offsets.grad_offsets[victim] + kSizes[victim] - 1] = bad;
    bool staged_before_last = false; // the earlier buckets' fp16 copies were written, and must be undone
    const PipelinedStep r = piped.step(b, grads, 0.5f, [&](size_t k) {
        if (k + 1 == kBuckets.size()) staged_before_last = piped.halves_storage != halves;
    });
    EXPECT_FALSE(r.committed);
    EXPECT_FALSE(std::isfinite(r.sum_squares));
    EXPECT_EQ(staged_before_last, bucket > 0); // buckets before the overflowing one were staged
    EXPECT_TRUE(same_bits(piped.master, master));
    EXPECT_EQ(piped.halves_storage, halves);
    EXPECT_EQ(b.step_count(), steps);
    EXPECT_EQ(b.learning_rate(), 0.01f);
    const auto after = b.state_tensors();
    ASSERT_EQ(after.size(), state.size());
    for (size_t i = 0; i < state.size(); ++i)
        EXPECT_TRUE(same_bits(after[i].second, state[i].second)) << state[i].first;

    const auto next = scaled_grads(plain.grad_count, 40);
    a.step(plain.params(), plain.grad_ptrs(next), 1.0f / kScale, 1.0f, plain.halves);
    ASSERT_TRUE(piped.step(b, next, 0.01f).committed);
    EXPECT_TRUE(same_bits(plain.master, piped.master));
    EXPECT_EQ(plain.halves_storage, piped.halves_storage);
    expect_same_state(a, b);
}

TEST_P(PipelinedStepTest, OverflowInTheLastBucketChangesNothing) {
    check_overflow_changes_nothing(GetParam(), kBuckets.size() - 1, std::numeric_limits<float>::infinity());
    check_overflow_changes_nothing(GetParam(), kBuckets.size() - 1, std::numeric_limits<float>::quiet_NaN());
}

TEST_P(PipelinedStepTest, OverflowInAnEarlierBucketChangesNothing) {
    check_overflow_changes_nothing(GetParam(), 0, -std::numeric_limits<float>::infinity());
    check_overflow_changes_nothing(GetParam(), 1, std::numeric_limits<float>::quiet_NaN());
}

INSTANTIATE_TEST_SUITE_P(Optimizers, PipelinedStepTest, testing::Values(0, 1, 2),
                         [](const testing::TestParamInfo<int>& i) {
                             return std::string(i.param == 0 ? "adamw" : i.param == 1 ? "sgd_nesterov" : "sgd");
                         });

TEST(PipelinedStep, RefusesBucketsThatDoNotCoverEveryTensorOnce) {
    World w;
    Optimizer o(options_for(0), kSizes);
    const auto grads = scaled_grads(w.grad_count, 3);
    const std::vector<float> before = w.master;
    for (const std::vector<std::vector<size_t>>& bad :
         {std::vector<std::vector<size_t>>{{0, 1, 2, 3}}, {{0, 1, 2, 3, 4}, {4}}, {{0, 1, 2, 3, 4, 5}}}) {
        EXPECT_THROW(vktrain::train::pipelined_step(
                         o, bad, [&](size_t) { return grads.data(); }, w.offsets, w.master, w.master_next, 1.0f, 0.01f,
                         w.halves),
                     vktrain::Error);
    }
    EXPECT_TRUE(same_bits(w.master, before));
    EXPECT_EQ(o.step_count(), 0);
}

TEST(OptimizerStaged, CommitNeedsEveryTensorAndStageRefusesItself) {
    Optimizer o(options_for(0), {4, 4});
    std::vector<float> p(8, 1.0f), q(8, 0.0f), g(8, 0.5f);
    const std::vector<const float*> in = {p.data(), p.data() + 4};
    const std::vector<float*> out = {q.data(), q.data() + 4}, same = {p.data(), p.data() + 4};
    const std::vector<const float*> grads = {g.data(), g.data() + 4};
    o.begin_staged(1.0f, 1.0f, 0.1f);
    EXPECT_THROW(o.stage({0}, in, same, grads), vktrain::Error); // onto itself
    o.stage({0}, in, out, grads);
    EXPECT_THROW(o.stage({0}, in, out, grads), vktrain::Error); // twice
    EXPECT_THROW(o.commit(), vktrain::Error);                   // tensor 1 missing
    o.stage({1}, in, out, grads);
    o.commit();
    EXPECT_EQ(o.step_count(), 1);
    EXPECT_EQ(o.learning_rate(), 0.1f);
    EXPECT_THROW(o.stage({0}, in, out, grads), vktrain::Error); // no step begun
}

} // namespace
