// Batch normalisation (BatchNorm2d; BatchNorm1d with hw = 1) over x seen as [n, c, hw], with PyTorch's
// semantics: the biased batch variance normalises, the unbiased one enters running_var, and
// running = (1 - momentum)·running + momentum·batch statistic. Statistics are computed in fp32 (shifted
// two-pass sums in a fixed order: deterministic, and stable for data far from zero such as 1000 + noise).
//
// x, y, dy, dx, gamma and beta share one storage type (fp16 in mixed precision, fp32 otherwise); x, y, dy and
// dx hold n·c·hw elements (any rows × cols factorisation), gamma and beta c. Statistics and parameter
// gradients (save_mean, save_invstd, running_mean, running_var, dgamma, dbeta) are fp32 with c elements.
#pragma once

#include <cstdint>

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// Training mode: y = (x - mean)·invstd·gamma + beta with the batch's mean and invstd = 1/sqrt(var + eps),
// both saved for backward, and the running statistics updated in place. Needs n·hw >= 2 (as PyTorch).
void record_batch_norm_train(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c, uint32_t hw,
                             float eps, float momentum, const MatRef& x, const MatRef& gamma, const MatRef& beta,
                             const MatRef& y, const MatRef& save_mean, const MatRef& save_invstd,
                             const MatRef& running_mean, const MatRef& running_var);

// Evaluation mode: y = (x - running_mean)·rsqrt(running_var + eps)·gamma + beta.
void record_batch_norm_eval(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c, uint32_t hw,
                            float eps, const MatRef& x, const MatRef& gamma, const MatRef& beta,
                            const MatRef& running_mean, const MatRef& running_var, const MatRef& y);

// Backward of training mode: dbeta = Σ dy and dgamma = Σ dy·xhat are written (fp32), and
// dx (+)= gamma·invstd·(dy - dbeta/m - xhat·dgamma/m), m = n·hw, with the statistics saved by the forward pass.
// With accumulate_dx the gradient is added to what dx holds, else dx is overwritten.
void record_batch_norm_backward(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c, uint32_t hw,
                                const MatRef& x, const MatRef& dy, const MatRef& gamma, const MatRef& save_mean,
                                const MatRef& save_invstd, const MatRef& dx, const MatRef& dgamma, const MatRef& dbeta,
                                bool accumulate_dx = false);

// Backward of frozen statistics (a training forward that ran record_batch_norm_eval, PyTorch's bn.eval() inside
// training): the mean and variance are constants, so with invstd = 1/sqrt(running_var + eps) computed as the
// evaluation forward does, dbeta = Σ dy, dgamma = invstd·Σ dy·(x - running_mean) (fp32) and dx (+)= gamma·invstd·dy.
void record_batch_norm_frozen_backward(runtime::Device& device, runtime::Sequence& seq, uint32_t n, uint32_t c,
                                       uint32_t hw, float eps, const MatRef& x, const MatRef& dy, const MatRef& gamma,
                                       const MatRef& running_mean, const MatRef& running_var, const MatRef& dx,
                                       const MatRef& dgamma, const MatRef& dbeta, bool accumulate_dx = false);

} // namespace vktrain::kernels
