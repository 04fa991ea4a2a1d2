// The host's gradient pass: the sum of squares that is both GradScaler's inf/NaN check (finite exactly when every
// unscaled gradient is) and the clipping norm, against a plain double reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "train/gradients.hpp"

namespace {

using vktrain::train::global_l2_norm;
using vktrain::train::global_sum_squares;
using vktrain::train::l2_norm_of;

struct Grads {
    std::vector<std::vector<float>> data;
    std::vector<const float*> ptrs;
    std::vector<size_t> sizes;
};

Grads make(const std::vector<size_t>& sizes, uint32_t seed) {
    Grads g;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1000.0f, 1000.0f);
    for (size_t n : sizes) {
        std::vector<float> v(n);
        for (float& x : v) x = dist(rng);
        g.data.push_back(std::move(v));
    }
    for (const auto& v : g.data) {
        g.ptrs.push_back(v.data());
        g.sizes.push_back(v.size());
    }
    return g;
}

TEST(Gradients, SumOfSquaresMatchesDoubleReference) {
    // Large enough for several threads' chunks, with an empty tensor and odd sizes.
    const Grads g = make({7, 0, 300001, 64, 1 << 20}, 3);
    const float inv = 1.0f / 1024.0f;
    double ref = 0.0;
    for (const auto& v : g.data)
        for (float x : v) {
            const double u = double(x * inv);
            ref += u * u;
        }
    const double got = global_sum_squares(g.ptrs, g.sizes, inv);
    EXPECT_NEAR(got, ref, 1e-12 * ref);
    EXPECT_FLOAT_EQ(global_l2_norm(g.ptrs, g.sizes, inv), float(std::sqrt(ref)));
    EXPECT_EQ(l2_norm_of(got), global_l2_norm(g.ptrs, g.sizes, inv));
}

TEST(Gradients, NonFiniteAnywhereMakesTheSumNonFinite) {
    for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN()})
        for (size_t tensor : {0u, 2u, 4u}) { // first, middle and last tensor (the last chunk of the last one)
            Grads g = make({5, 1000, 77, 3, 200003}, 5);
            g.data[tensor].back() = bad;
            EXPECT_FALSE(std::isfinite(global_sum_squares(g.ptrs, g.sizes, 0.5f))) << bad << " in tensor " << tensor;
            EXPECT_TRUE(std::isinf(global_l2_norm(g.ptrs, g.sizes, 0.5f)));
        }
}

TEST(Gradients, HugeFiniteGradientsAreNotOverflow) {
    // Every value near FLT_MAX: the norm does not fit in fp32, but no gradient is inf or NaN, so the step must not be
    // skipped (GradScaler checks the elements, not the norm).
    Grads g = make({1000}, 7);
    for (float& x : g.data[0]) x = 3.0e38f;
    const double s = global_sum_squares(g.ptrs, g.sizes, 1.0f);
    EXPECT_TRUE(std::isfinite(s));
    EXPECT_TRUE(std::isinf(l2_norm_of(s)));
    // An unscale that overflows a finite value (scale below 1) is overflow, as unscale_ sees it.
    g.data[0][0] = 2.0e38f;
    EXPECT_FALSE(std::isfinite(global_sum_squares(g.ptrs, g.sizes, 4.0f)));
}

} // namespace
