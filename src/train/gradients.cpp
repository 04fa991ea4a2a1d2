#include "train/gradients.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.hpp"

namespace vktrain::train {

void accumulate_scaled(float* __restrict sum, const float* __restrict g, size_t n, float weight) {
    for (size_t i = 0; i < n; ++i) sum[i] += weight * g[i];
}

float global_l2_norm(const std::vector<const float*>& grads, const std::vector<size_t>& sizes, float multiplier) {
    VKT_CHECK(grads.size() == sizes.size(), "gradient norm: ", grads.size(), " tensors, ", sizes.size(), " sizes");
    double total = 0.0;
    for (size_t t = 0; t < grads.size(); ++t) {
        const float* g = grads[t];
        double part = 0.0; // per tensor, then summed: a little closer to PyTorch's norm of per-tensor norms
        for (size_t i = 0; i < sizes[t]; ++i) {
            const double v = double(g[i] * multiplier);
            part += v * v;
        }
        total += part;
    }
    if (!std::isfinite(total)) return std::numeric_limits<float>::infinity();
    return float(std::sqrt(total));
}

float clip_coefficient(float norm, float max_norm) {
    VKT_CHECK(max_norm > 0.0f && std::isfinite(max_norm), "gradient clipping: max norm must be positive, got ",
              max_norm);
    if (!std::isfinite(norm)) return 1.0f;
    const float coef = float(double(max_norm) / (double(norm) + 1e-6));
    return std::min(coef, 1.0f);
}

} // namespace vktrain::train
