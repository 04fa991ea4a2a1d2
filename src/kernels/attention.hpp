// Softmax over rows (optionally scaled and causally masked) and multi-head self-attention built from it and
// strided GEMMs: no transposes or copies, every head read from and written to its columns in place.
#pragma once

#include <cstdint>

#include "kernels/gemm.hpp"
#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/context.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// p = softmax(scale · x) over each row of x (rows × cols, as the MatRef says), fp32 arithmetic. causal: row r
// sees columns j <= r % cols only (row r of each cols × cols block), the others get exactly 0. x is fp32 or
// the type of p; p may be fp16 or fp32 (an fp16 x needs an fp16 p).
void record_softmax(runtime::Device& device, runtime::Sequence& seq, const MatRef& x, const MatRef& p,
                    float scale = 1.0f, bool causal = false);

// dx (+)= scale · p ⊙ (dp − Σ_j dp ⊙ p) per row: the gradient with respect to the unscaled x of
// record_softmax's output p, given dp. dx has p's type; dp is fp32 or that type. Masked entries get 0.
void record_softmax_backward(runtime::Device& device, runtime::Sequence& seq, const MatRef& p, const MatRef& dp,
                             const MatRef& dx, float scale = 1.0f, bool causal = false, bool accumulate = false);

// Self-attention over `batch` samples of `seq` positions, GPT-2 layout: qkv per sample is [seq, 3·C] with
// q | k | v along the last dimension, each split into `heads` heads of head_size = C / heads columns; the
// output is [seq, C] with head h in columns [h·head_size, (h+1)·head_size). Scores are scaled by
// 1/sqrt(head_size).
struct AttentionShape {
    uint32_t batch = 0, seq = 0, heads = 0, head_size = 0;
    bool causal = true;

    uint64_t channels() const { return uint64_t(heads) * head_size; }
    uint64_t score_elements() const { return uint64_t(batch) * heads * seq * seq; } // [batch, heads, seq, seq]
    float scale() const;
    void validate() const; // throws with a one-line message
};

// The GEMM path of each GEMM of attention (sites of the graph op).
struct AttentionPaths {
    GemmPath scores = GemmPath::fp32; // S = Q·Kᵀ
    GemmPath values = GemmPath::fp32; // O = P·V
    GemmPath dp = GemmPath::fp32;     // dP = dO·Vᵀ
    GemmPath dq = GemmPath::fp32;     // dQ = dS·K
    GemmPath dk = GemmPath::fp32;     // dK = dSᵀ·Q
    GemmPath dv = GemmPath::fp32;     // dV = Pᵀ·dO
    static AttentionPaths all(GemmPath path);
};

// The GEMMs as strided descriptions over the given operands (buffers may be null when only the shapes
// matter, e.g. to declare GEMM sites; gemm_shape() gives their timing keys). Operands: qkv [batch·seq, 3C],
// s and dp fp32 [batch, heads, seq, seq], p and ds in the activation type like them, out and dout
// [batch·seq, C], dqkv like qkv. One item per (sample, head): outer = batch, inner = heads.
struct AttentionForwardGemms {
    GemmDesc scores, values;
};
AttentionForwardGemms attention_forward_gemms(const AttentionShape& shape, const MatRef& qkv, const MatRef& s,
                                              const MatRef& p, const MatRef& out);
struct AttentionBackwardGemms {
    GemmDesc dp, dq, dk, dv;
};
AttentionBackwardGemms attention_backward_gemms(const AttentionShape& shape, const MatRef& qkv, const MatRef& p,
                                                const MatRef& dout, const MatRef& dp, const MatRef& ds,
                                                const MatRef& dqkv, bool accumulate);

// Forward: s = Q·Kᵀ (fp32 scratch), p = softmax(scale · masked s) (kept for the backward), out = p·V.
void record_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                      const AttentionPaths& paths, const MatRef& qkv, const MatRef& s, const MatRef& p,
                      const MatRef& out);

// Backward: dp = dO·Vᵀ (fp32 scratch), ds = softmax backward (scratch in p's type), then dQ = ds·K,
// dK = dsᵀ·Q and dV = pᵀ·dO written (or, with accumulate, added) into the q, k and v columns of dqkv.
void record_attention_backward(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                               const AttentionPaths& paths, const MatRef& qkv, const MatRef& p, const MatRef& dout,
                               const MatRef& dp, const MatRef& ds, const MatRef& dqkv, bool accumulate);

} // namespace vktrain::kernels
