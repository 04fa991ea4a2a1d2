// Softmax over rows (optionally scaled and causally masked) and multi-head self-attention built from it and
// strided GEMMs: no transposes or copies, every head read from and written to its columns in place.
#pragma once

#include <cstdint>
#include <vector>

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

// Multi-head attention over `batch` samples of `seq` positions: `heads` query heads of head_size columns and
// kv_heads key/value heads (grouped-query attention: query head h reads key/value head h / (heads / kv_heads);
// kv_heads == heads is ordinary multi-head attention). The output is [seq, heads·head_size] with head h in
// columns [h·head_size, (h+1)·head_size). Scores are scaled by 1/sqrt(head_size).
struct AttentionShape {
    uint32_t batch = 0, seq = 0, heads = 0, head_size = 0;
    uint32_t kv_heads = 0; // 0: heads
    bool causal = true;

    uint32_t kv() const { return kv_heads != 0 ? kv_heads : heads; }
    uint32_t group() const { return heads / kv(); } // query heads per key/value head
    uint64_t channels() const { return uint64_t(heads) * head_size; }
    uint64_t kv_channels() const { return uint64_t(kv()) * head_size; }
    uint64_t score_elements() const { return uint64_t(batch) * heads * seq * seq; } // [batch, heads, seq, seq]
    float scale() const;
    void validate() const; // throws with a one-line message
};

// Where one of q, k and v (or its gradient) lies: per sample `seq` rows `ld` elements apart, the heads side by
// side from column `col0` of each row (q: heads of them, k and v: kv_heads). `mat` gives the buffer, the type
// and the first element; its rows × cols are the whole operand (batch·seq × ld for the checks).
struct AttentionOperand {
    MatRef mat;
    uint64_t col0 = 0, ld = 0;
};
struct AttentionQkv {
    AttentionOperand q, k, v;
};
// GPT-2's fused rows qkv [batch·seq, 3C]: q | k | v along the last dimension (needs kv_heads == heads).
AttentionQkv fused_qkv(const AttentionShape& shape, const MatRef& qkv);
// Separate q [batch·seq, heads·head_size], k and v [batch·seq, kv_heads·head_size].
AttentionQkv separate_qkv(const AttentionShape& shape, const MatRef& q, const MatRef& k, const MatRef& v);

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
// matter, e.g. to declare GEMM sites; gemm_shape() gives their timing keys). Operands: q, k, v as above, s and
// dp fp32 [batch, heads, seq, seq], p and ds in the activation type like them, out and dout
// [batch·seq, heads·head_size]. Each GEMM is a list with one description per member j of a query-head group
// (one item for plain multi-head attention): item (sample o, key/value head g) of member j is query head
// g·group + j. dK and dV sum over the group: member 0 writes (or accumulates), the others accumulate.
struct AttentionForwardGemms {
    std::vector<GemmDesc> scores, values;
};
AttentionForwardGemms attention_forward_gemms(const AttentionShape& shape, const AttentionQkv& in, const MatRef& s,
                                              const MatRef& p, const MatRef& out);
struct AttentionBackwardGemms {
    std::vector<GemmDesc> dp, dq, dk, dv;
};
// dP = dO·Vᵀ.
std::vector<GemmDesc> attention_dp_gemms(const AttentionShape& shape, const AttentionQkv& in, const MatRef& dout,
                                         const MatRef& dp);
// One input's gradient, `which` 0, 1 or 2: dQ = ds·K, dK = dsᵀ·Q or dV = pᵀ·dO (p_or_ds is ds for q and k, p for
// v; dout is read for v only), into `grad`, laid out like that input.
std::vector<GemmDesc> attention_grad_gemms(const AttentionShape& shape, int which, const AttentionQkv& in,
                                           const MatRef& p_or_ds, const MatRef& dout, const AttentionOperand& grad,
                                           bool accumulate);
// All four for GPT-2's fused qkv (dqkv like qkv).
AttentionBackwardGemms attention_backward_gemms(const AttentionShape& shape, const MatRef& qkv, const MatRef& p,
                                                const MatRef& dout, const MatRef& dp, const MatRef& ds,
                                                const MatRef& dqkv, bool accumulate);

// Forward: s = Q·Kᵀ (fp32 scratch), p = softmax(scale · masked s) (kept for the backward), out = p·V.
void record_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                      const AttentionPaths& paths, const AttentionQkv& in, const MatRef& s, const MatRef& p,
                      const MatRef& out);
// GPT-2's fused qkv.
void record_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                      const AttentionPaths& paths, const MatRef& qkv, const MatRef& s, const MatRef& p,
                      const MatRef& out);

// The backward's first half: dp = dO·Vᵀ (fp32 scratch), then ds = softmax backward (scratch in p's type).
void record_attention_backward_scores(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                                      GemmPath dp_path, const AttentionQkv& in, const MatRef& p, const MatRef& dout,
                                      const MatRef& dp, const MatRef& ds);
// One gradient from ds (dQ = ds·K, dK = dsᵀ·Q) or p (dV = pᵀ·dO): `which` 0, 1 or 2 for q, k or v. Written, or
// with `accumulate` added, into grad (laid out like the input it is the gradient of).
void record_attention_input_grad(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                                 GemmPath path, int which, const AttentionQkv& in, const MatRef& p_or_ds,
                                 const MatRef& dout, const AttentionOperand& grad, bool accumulate);

// The whole backward for GPT-2's fused qkv: dQ, dK and dV written (or, with accumulate, added) into the q, k and v
// columns of dqkv.
void record_attention_backward(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                               const AttentionPaths& paths, const MatRef& qkv, const MatRef& p, const MatRef& dout,
                               const MatRef& dp, const MatRef& ds, const MatRef& dqkv, bool accumulate);

} // namespace vktrain::kernels
