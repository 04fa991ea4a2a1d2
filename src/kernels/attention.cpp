#include "kernels/attention.hpp"

#include <cmath>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(SoftmaxPush) == 8 * 4, "SoftmaxPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_softmax_wg = 64; // local_size_x of shaders/softmax.comp

void check_scale(const char* op, float scale) {
    VKT_CHECK(std::isfinite(scale), op, ": scale ", scale, " must be finite");
}

// One dispatch of softmax.comp over rows × cols; binding k is ops[k].
void dispatch_softmax(runtime::Device& device, runtime::Sequence& seq, const char* op, DType in, DType out,
                      uint32_t rows, uint32_t cols, uint32_t flags, float scale, const MatRef& b0, runtime::Access a0,
                      const MatRef& b1, const MatRef& b2, runtime::Access a2) {
    VKT_CHECK(!(in == DType::f16 && out == DType::f32), op, ": an fp16 input needs an fp16 output");
    const runtime::Kernel& k = kernel(device, variant_name("softmax", in, out), 3, sizeof(SoftmaxPush));
    const Operand o0 = operand(device, b0, a0);
    const Operand o1 = operand(device, b1, runtime::Access::read);
    const Operand o2 = operand(device, b2, a2);
    SoftmaxPush pc{};
    pc.rows = rows;
    pc.cols = cols;
    pc.flags = flags;
    pc.scale = scale;
    pc.offset0 = o0.offset;
    pc.offset1 = o1.offset;
    pc.offset2 = o2.offset;
    seq.dispatch(k, {o0.binding, o1.binding, o2.binding}, &pc, sizeof(pc), group_count(rows, k_softmax_wg));
}

// rows × cols of `m`'s elements starting at `col0` of its first row, rows `ld` apart, items `outer` and
// `inner` apart.
GemmOperand block(const MatRef& m, uint64_t col0, uint32_t rows, uint32_t cols, uint64_t ld, uint64_t outer,
                  uint64_t inner) {
    MatRef r = m;
    r.rows = rows;
    r.cols = cols;
    r.offset = m.offset + col0;
    return GemmOperand{r, ld, outer, inner};
}

// The per-(sample, head) views of attention's operands.
struct Views {
    uint64_t t, c, hs, tt, htt;
    GemmOperand q(const MatRef& qkv) const { return block(qkv, 0, uint32_t(t), uint32_t(hs), 3 * c, t * 3 * c, hs); }
    GemmOperand k(const MatRef& qkv) const { return block(qkv, c, uint32_t(t), uint32_t(hs), 3 * c, t * 3 * c, hs); }
    GemmOperand v(const MatRef& qkv) const {
        return block(qkv, 2 * c, uint32_t(t), uint32_t(hs), 3 * c, t * 3 * c, hs);
    }
    GemmOperand o(const MatRef& out) const { return block(out, 0, uint32_t(t), uint32_t(hs), c, t * c, hs); }
    GemmOperand scores(const MatRef& s) const { return block(s, 0, uint32_t(t), uint32_t(t), t, htt, tt); }
};
Views views(const AttentionShape& s) {
    const uint64_t t = s.seq;
    return {t, s.channels(), s.head_size, t * t, uint64_t(s.heads) * t * t};
}

GemmDesc desc(const GemmOperand& a, bool trans_a, const GemmOperand& b, bool trans_b, const GemmOperand& c,
              const AttentionShape& s, bool accumulate) {
    GemmDesc d;
    d.a = a;
    d.b = b;
    d.c = c;
    d.trans_a = trans_a;
    d.trans_b = trans_b;
    d.outer = s.batch;
    d.inner = s.heads;
    d.accumulate = accumulate;
    return d;
}

void check_same_type(const char* op, const MatRef& m, const char* what, DType t, const char* like) {
    VKT_CHECK(m.dtype == t, op, ": ", what, " is ", dtype_name(m.dtype), " but ", like, " is ", dtype_name(t));
}

} // namespace

void record_softmax(runtime::Device& device, runtime::Sequence& seq, const MatRef& x, const MatRef& p, float scale,
                    bool causal) {
    const char* op = "softmax";
    check_operand(device, x, op, "x");
    check_operand(device, p, x.count(), op, "p");
    VKT_CHECK(p.rows == x.rows && p.cols == x.cols, op, ": p is ", p.rows, "x", p.cols, " but x is ", x.rows, "x",
              x.cols);
    VKT_CHECK(!overlaps(x, p), op, ": p overlaps x");
    check_scale(op, scale);
    if (x.count() == 0) return;
    dispatch_softmax(device, seq, op, x.dtype, p.dtype, x.rows, x.cols, causal ? SOFTMAX_FLAG_CAUSAL : 0u, scale, x,
                     runtime::Access::read, x, p, runtime::Access::write);
}

void record_softmax_backward(runtime::Device& device, runtime::Sequence& seq, const MatRef& p, const MatRef& dp,
                             const MatRef& dx, float scale, bool causal, bool accumulate) {
    const char* op = "softmax_backward";
    check_operand(device, p, op, "p");
    check_operand(device, dp, p.count(), op, "dp");
    check_operand(device, dx, p.count(), op, "dx");
    VKT_CHECK(dp.cols == p.cols && dx.cols == p.cols, op, ": rows of p, dp and dx differ (", p.cols, ", ", dp.cols,
              ", ", dx.cols, " elements)");
    check_same_type(op, dx, "dx", p.dtype, "p");
    VKT_CHECK(!overlaps(dx, p) && !overlaps(dx, dp), op, ": dx overlaps p or dp");
    check_scale(op, scale);
    if (p.count() == 0) return;
    uint32_t flags = SOFTMAX_FLAG_BACKWARD;
    if (causal) flags |= SOFTMAX_FLAG_CAUSAL;
    if (accumulate) flags |= FLAG_ACCUMULATE;
    dispatch_softmax(device, seq, op, dp.dtype, p.dtype, p.rows, p.cols, flags, scale, dp, runtime::Access::read, p, dx,
                     accumulate ? runtime::Access::read_write : runtime::Access::write);
}

float AttentionShape::scale() const {
    return float(1.0 / std::sqrt(double(head_size)));
}

void AttentionShape::validate() const {
    VKT_CHECK(heads > 0 && head_size > 0, "attention: ", heads, " heads of ", head_size,
              " columns; both must be positive");
    VKT_CHECK(uint64_t(batch) * seq * 3 * channels() <= k_max_elements, "attention: qkv of ", batch, "x", seq, "x",
              3 * channels(), " exceeds 2^31 - 4096 elements");
    VKT_CHECK(score_elements() <= k_max_elements, "attention: scores of ", batch, "x", heads, "x", seq, "x", seq,
              " exceed 2^31 - 4096 elements");
}

AttentionPaths AttentionPaths::all(GemmPath path) {
    return {path, path, path, path, path, path};
}

AttentionForwardGemms attention_forward_gemms(const AttentionShape& shape, const MatRef& qkv, const MatRef& s,
                                              const MatRef& p, const MatRef& out) {
    const Views v = views(shape);
    return {desc(v.q(qkv), false, v.k(qkv), true, v.scores(s), shape, false),
            desc(v.scores(p), false, v.v(qkv), false, v.o(out), shape, false)};
}

AttentionBackwardGemms attention_backward_gemms(const AttentionShape& shape, const MatRef& qkv, const MatRef& p,
                                                const MatRef& dout, const MatRef& dp, const MatRef& ds,
                                                const MatRef& dqkv, bool accumulate) {
    const Views v = views(shape);
    return {desc(v.o(dout), false, v.v(qkv), true, v.scores(dp), shape, false),
            desc(v.scores(ds), false, v.k(qkv), false, v.q(dqkv), shape, accumulate),
            desc(v.scores(ds), true, v.q(qkv), false, v.k(dqkv), shape, accumulate),
            desc(v.scores(p), true, v.o(dout), false, v.v(dqkv), shape, accumulate)};
}

void record_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                      const AttentionPaths& paths, const MatRef& qkv, const MatRef& s, const MatRef& p,
                      const MatRef& out) {
    const char* op = "attention";
    shape.validate();
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    check_operand(device, qkv, rows * 3 * shape.channels(), op, "qkv");
    check_operand(device, out, rows * shape.channels(), op, "out");
    check_operand(device, s, shape.score_elements(), op, "scores");
    check_operand(device, p, shape.score_elements(), op, "probabilities");
    VKT_CHECK(s.dtype == DType::f32, op, ": scores must be f32");
    check_same_type(op, p, "probabilities", qkv.dtype, "qkv");
    check_same_type(op, out, "out", qkv.dtype, "qkv");
    for (const auto& [m, what] : {std::pair{&s, "scores"}, {&p, "probabilities"}, {&out, "out"}})
        for (const MatRef* other : {&qkv, &s, &p, &out})
            VKT_CHECK(m == other || !overlaps(*m, *other), op, ": ", what, " overlaps another operand");
    if (rows == 0) return;
    const AttentionForwardGemms g = attention_forward_gemms(shape, qkv, s, p, out);
    record_gemm_strided(device, seq, paths.scores, g.scores);
    record_softmax(device, seq,
                   MatRef{s.buffer, s.dtype, uint32_t(shape.score_elements() / shape.seq), shape.seq, s.offset},
                   MatRef{p.buffer, p.dtype, uint32_t(shape.score_elements() / shape.seq), shape.seq, p.offset},
                   shape.scale(), shape.causal);
    record_gemm_strided(device, seq, paths.values, g.values);
}

void record_attention_backward(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                               const AttentionPaths& paths, const MatRef& qkv, const MatRef& p, const MatRef& dout,
                               const MatRef& dp, const MatRef& ds, const MatRef& dqkv, bool accumulate) {
    const char* op = "attention_backward";
    shape.validate();
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    check_operand(device, qkv, rows * 3 * shape.channels(), op, "qkv");
    check_operand(device, dqkv, rows * 3 * shape.channels(), op, "dqkv");
    check_operand(device, dout, rows * shape.channels(), op, "dout");
    check_operand(device, p, shape.score_elements(), op, "probabilities");
    check_operand(device, dp, shape.score_elements(), op, "dp");
    check_operand(device, ds, shape.score_elements(), op, "ds");
    VKT_CHECK(dp.dtype == DType::f32, op, ": dp must be f32");
    for (const auto& [m, what] : {std::pair{&p, "probabilities"}, {&dout, "dout"}, {&ds, "ds"}, {&dqkv, "dqkv"}})
        check_same_type(op, *m, what, qkv.dtype, "qkv");
    for (const auto& [m, what] : {std::pair{&dp, "dp"}, {&ds, "ds"}, {&dqkv, "dqkv"}})
        for (const MatRef* other : {&qkv, &p, &dout, &dp, &ds, &dqkv})
            VKT_CHECK(m == other || !overlaps(*m, *other), op, ": ", what, " overlaps another operand");
    if (rows == 0) return;
    const AttentionBackwardGemms g = attention_backward_gemms(shape, qkv, p, dout, dp, ds, dqkv, accumulate);
    const uint32_t score_rows = uint32_t(shape.score_elements() / shape.seq);
    record_gemm_strided(device, seq, paths.dp, g.dp);
    record_softmax_backward(device, seq, MatRef{p.buffer, p.dtype, score_rows, shape.seq, p.offset},
                            MatRef{dp.buffer, dp.dtype, score_rows, shape.seq, dp.offset},
                            MatRef{ds.buffer, ds.dtype, score_rows, shape.seq, ds.offset}, shape.scale(), shape.causal,
                            false);
    record_gemm_strided(device, seq, paths.dq, g.dq);
    record_gemm_strided(device, seq, paths.dk, g.dk);
    record_gemm_strided(device, seq, paths.dv, g.dv);
}

} // namespace vktrain::kernels
