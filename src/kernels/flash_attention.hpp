// Fused (flash-attention style) multi-head attention: QKᵀ, scale, mask, online softmax and PV in one kernel, and a
// backward that recomputes the probabilities from the saved per-row log-sum-exp. No [batch, heads, T, T] buffer
// exists on this path: beyond q, k, v and the output it keeps only the fp32 log-sum-exp [batch, heads, T], so
// attention's memory grows linearly with the context. Same shapes and operand layouts as kernels/attention.hpp
// (GPT-2's fused qkv rows, separate q/k/v with grouped-query heads), so a caller switches path without moving data.
#pragma once

#include <cstdint>

#include "kernels/attention.hpp"

namespace vktrain::kernels {

// Head sizes the fused kernels take (the per-invocation rows live in registers).
constexpr uint32_t k_flash_max_head_size = 256;

// True when the fused kernels run this shape on this device (head size, shared memory); else use the unfused path.
bool flash_attention_supported(const runtime::Device& device, const AttentionShape& shape);

// True when the kernels run on cooperative matrices for this shape and storage type: fp16 storage, the device has
// them and ContextOptions::allow_coopmat is on, and the blocks fit in shared memory (else fp32 arithmetic).
bool flash_attention_uses_coopmat(const runtime::Device& device, const AttentionShape& shape, DType type);

// out = softmax(scale · mask(Q·Kᵀ)) · V per (sample, head), and lse (fp32, batch·heads·seq elements) the per-row
// log-sum-exp of the scaled, masked scores. out is [batch·seq, heads·head_size] in q's type.
void record_flash_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                            const AttentionQkv& in, const MatRef& out, const MatRef& lse);

// The gradients from dout (laid out like out), the forward's out and lse: each of dq, dk and dv that is not null is
// written (or, with accumulate, added to), laid out like its input. Deterministic: no atomics, fixed sum orders.
void record_flash_attention_backward(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                                     const AttentionQkv& in, const MatRef& out, const MatRef& lse, const MatRef& dout,
                                     const AttentionOperand* dq, const AttentionOperand* dk, const AttentionOperand* dv,
                                     bool accumulate);

} // namespace vktrain::kernels
