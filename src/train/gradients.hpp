// Host passes over fp32 gradients: accumulation over micro-batches, the global L2 norm and the clipping
// coefficient (PyTorch's clip_grad_norm_).
#pragma once

#include <cstddef>
#include <vector>

#include "common/parallel.hpp"

namespace vktrain::train {

// sum[i] += weight * g[i] for i < n (fp32, one rounding for the product and one for the sum).
void accumulate_scaled(float* sum, const float* g, size_t n, float weight);

// sqrt(sum over tensors and elements of (g * multiplier)^2), where g * multiplier is rounded to fp32 first (the
// unscaled gradient PyTorch would hold) and the squares are summed in double. +inf if any product is not finite.
float global_l2_norm(const std::vector<const float*>& grads, const std::vector<size_t>& sizes, float multiplier);
// The sum of squares global_l2_norm takes the root of. It is finite exactly when every product g * multiplier is
// (each square is at most FLT_MAX^2 ~ 1.2e77 and there are fewer than 2^64 of them, so a double cannot overflow):
// the trainer's inf/NaN check, on the unscaled values as GradScaler's unscale_ checks them.
double global_sum_squares(const std::vector<const float*>& grads, const std::vector<size_t>& sizes, float multiplier);
// global_sum_squares in parts: sums[i] = the sum of squares of chunks[i] (tensor_chunks(sizes)) for every i in
// `which`; adding all sums in chunk order then gives global_sum_squares bit for bit.
void chunk_sum_squares(const std::vector<const float*>& grads, const std::vector<TensorChunk>& chunks,
                       const std::vector<size_t>& which, float multiplier, std::vector<double>& sums);
// sqrt(sum_squares) as fp32, +inf when it is not finite.
float l2_norm_of(double sum_squares);

// PyTorch's clip_grad_norm_: min(1, max_norm / (norm + 1e-6)).
float clip_coefficient(float norm, float max_norm);

} // namespace vktrain::train
