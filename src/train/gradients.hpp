// Host passes over fp32 gradients: accumulation over micro-batches, the global L2 norm and the clipping
// coefficient (PyTorch's clip_grad_norm_).
#pragma once

#include <cstddef>
#include <vector>

namespace vktrain::train {

// sum[i] += weight * g[i] for i < n (fp32, one rounding for the product and one for the sum).
void accumulate_scaled(float* sum, const float* g, size_t n, float weight);

// sqrt(sum over tensors and elements of (g * multiplier)^2), where g * multiplier is rounded to fp32 first (the
// unscaled gradient PyTorch would hold) and the squares are summed in double. +inf if any product is not finite.
float global_l2_norm(const std::vector<const float*>& grads, const std::vector<size_t>& sizes, float multiplier);

// PyTorch's clip_grad_norm_: min(1, max_norm / (norm + 1e-6)).
float clip_coefficient(float norm, float max_norm);

} // namespace vktrain::train
