// Dropout with a counter-based generator: the mask is a pure function of (seed, step, element index)
// (Philox4x32-10, shaders/dropout.comp), so it needs no state buffer, is reproducible from the seed, and the
// backward pass redraws exactly the forward mask. The step is read on the device from a small buffer the
// host rewrites every step, so a pre-recorded command buffer gets a new mask on every replay.
#pragma once

#include <cstdint>

#include "kernels/dropout_mask.hpp" // dropout_keep, the host twin of the mask
#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// y = x·mask/(1-p) with mask ~ Bernoulli(1-p) (p in [0, 1); p == 0 copies x). `step_buffer` holds the step as
// one uint32 at byte `step_offset` (a multiple of 4), e.g. the StepParams buffer of kernels/loss.hpp with
// step_offset = offsetof(StepParams, step). x and y have the same element count and the same type
// (fp16 or fp32); the product is formed in fp32 and rounded once.
void record_dropout(runtime::Device& device, runtime::Sequence& seq, float p, uint32_t seed,
                    const runtime::Buffer& step_buffer, uint32_t step_offset, const MatRef& x, const MatRef& y);

// dx (+)= dy·mask/(1-p) with the mask of the forward pass of the same seed and step.
void record_dropout_backward(runtime::Device& device, runtime::Sequence& seq, float p, uint32_t seed,
                             const runtime::Buffer& step_buffer, uint32_t step_offset, const MatRef& dy,
                             const MatRef& dx, bool accumulate = false);

} // namespace vktrain::kernels
