// LayerNorm and RMSNorm over the last dimension, with PyTorch's semantics (nn.LayerNorm: biased variance,
// y = (x - mean) / sqrt(var + eps) · weight + bias; nn.RMSNorm: y = x / sqrt(mean(x²) + eps) · weight). x is
// seen as rows × cols (every leading dimension in rows) and each row is normalised over its cols elements.
// Statistics are computed in fp32 whatever the storage type (shifted two-pass sums in a fixed order:
// deterministic, and stable for data far from zero such as 1000 + noise), and saved per row for the backward.
//
// x, y, dy, dx, weight and bias share one storage type (fp16 in mixed precision, fp32 otherwise); x, y, dy and
// dx hold rows·cols elements (any rows × cols factorisation), weight and bias cols. The per-row statistics
// (mean, rstd: rows elements) and the weight gradient (cols elements) are fp32.
#pragma once

#include <cstdint>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

enum class NormKind {
    layer, // subtract the row's mean, divide by its standard deviation (biased), then · weight + bias
    rms,   // divide by the row's root mean square, then · weight (no mean, no bias)
};

struct RowNorm {
    NormKind kind = NormKind::layer;
    uint32_t rows = 0, cols = 0; // cols >= 1
    float eps = 1e-5f;           // finite, >= 0
};

// y = norm(x), saving mean (LayerNorm only; null for RMSNorm) and rstd = 1 / sqrt(var + eps) (RMSNorm:
// 1 / sqrt(mean(x²) + eps)) per row. weight (and, for LayerNorm, bias) may be null: no affine transform.
// LayerNorm takes both or neither; RMSNorm takes no bias.
// With `residual_b` and `sum` (both or neither; graph/fusion.hpp's residual add), x is a + b: the norm reads `x` as a,
// normalises a + b rounded to the storage type (the bits the add kernel would store) and writes that to `sum` too.
void record_layer_norm(runtime::Device& device, runtime::Sequence& seq, const RowNorm& shape, const MatRef& x,
                       const MatRef* weight, const MatRef* bias, const MatRef& y, const MatRef* mean,
                       const MatRef& rstd, const MatRef* residual_b = nullptr, const MatRef* sum = nullptr);

// The input gradient from the statistics the forward pass saved, with g = dy · weight (dy when weight is null)
// and xhat = (x - mean) · rstd (RMSNorm: x · rstd):
//   LayerNorm: dx (+)= rstd · (g - mean_row(g) - xhat · mean_row(g · xhat))
//   RMSNorm:   dx (+)= rstd · (g - xhat · mean_row(g · xhat))
// With accumulate the gradient is added to what dx holds, else dx is overwritten. `dx2` (optional) receives the
// same stored values as dx (a residual add's gradient copy, fused: graph/fusion.hpp).
void record_layer_norm_backward(runtime::Device& device, runtime::Sequence& seq, const RowNorm& shape, const MatRef& x,
                                const MatRef& dy, const MatRef* weight, const MatRef* mean, const MatRef& rstd,
                                const MatRef& dx, bool accumulate = false, const MatRef* dx2 = nullptr);

// dweight[c] (+)= sum over rows of dy · xhat (fp32, a fixed-order column reduction: the same inputs give the
// same bits on every run). The bias gradient is the column sum of dy (record_channel_bias_grad).
void record_layer_norm_weight_grad(runtime::Device& device, runtime::Sequence& seq, const RowNorm& shape,
                                   const MatRef& x, const MatRef& dy, const MatRef* mean, const MatRef& rstd,
                                   const MatRef& dweight, bool accumulate = false);

} // namespace vktrain::kernels
