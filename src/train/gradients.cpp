#include "train/gradients.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.hpp"
#include "common/parallel.hpp"

namespace vktrain::train {

void accumulate_scaled(float* __restrict sum, const float* __restrict g, size_t n, float weight) {
    for (size_t i = 0; i < n; ++i) sum[i] += weight * g[i];
}

namespace {

// Sum of squares of g[i] * multiplier (each product rounded to fp32 as it is used, then squared in double) with four
// interleaved double accumulators: independent chains the compiler can vectorise, in an order fixed by the data
// alone.
double sum_squares(const float* __restrict g, size_t n, float multiplier) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const double v0 = double(g[i] * multiplier), v1 = double(g[i + 1] * multiplier);
        const double v2 = double(g[i + 2] * multiplier), v3 = double(g[i + 3] * multiplier);
        a0 += v0 * v0;
        a1 += v1 * v1;
        a2 += v2 * v2;
        a3 += v3 * v3;
    }
    for (; i < n; ++i) {
        const double v = double(g[i] * multiplier);
        a0 += v * v;
    }
    return (a0 + a1) + (a2 + a3);
}

} // namespace

double global_sum_squares(const std::vector<const float*>& grads, const std::vector<size_t>& sizes, float multiplier) {
    VKT_CHECK(grads.size() == sizes.size(), "gradient norm: ", grads.size(), " tensors, ", sizes.size(), " sizes");
    // Chunks summed on several threads for large models, then in tensor and chunk order: the same result
    // whatever the thread count.
    const std::vector<TensorChunk> chunks = tensor_chunks(sizes);
    std::vector<size_t> all(chunks.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    std::vector<double> sums(chunks.size());
    chunk_sum_squares(grads, chunks, all, multiplier, sums);
    double sum = 0.0;
    for (double part : sums) sum += part;
    return sum;
}

void chunk_sum_squares(const std::vector<const float*>& grads, const std::vector<TensorChunk>& chunks,
                       const std::vector<size_t>& which, float multiplier, std::vector<double>& sums) {
    VKT_CHECK(sums.size() == chunks.size(), "gradient norm: ", sums.size(), " sums for ", chunks.size(), " chunks");
    size_t total = 0;
    for (size_t i : which) total += chunks.at(i).count;
    parallel_for(which.size(), threads_for(total), [&](size_t j) {
        const TensorChunk& c = chunks[which[j]];
        sums[which[j]] = sum_squares(grads[c.tensor] + c.begin, c.count, multiplier);
    });
}

float l2_norm_of(double sum_squares) {
    if (!std::isfinite(sum_squares)) return std::numeric_limits<float>::infinity();
    return float(std::sqrt(sum_squares));
}

float global_l2_norm(const std::vector<const float*>& grads, const std::vector<size_t>& sizes, float multiplier) {
    return l2_norm_of(global_sum_squares(grads, sizes, multiplier));
}

float clip_coefficient(float norm, float max_norm) {
    VKT_CHECK(max_norm > 0.0f && std::isfinite(max_norm), "gradient clipping: max norm must be positive, got ",
              max_norm);
    if (!std::isfinite(norm)) return 1.0f;
    const float coef = float(double(max_norm) / (double(norm) + 1e-6));
    return std::min(coef, 1.0f);
}

} // namespace vktrain::train
