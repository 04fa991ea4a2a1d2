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

// The views of member j of a query-head group, items (sample o, key/value head g): query head g·group + j.
struct Views {
    uint64_t t, d, g, c, tt, htt;
    uint32_t j;
    // q (or dq) and out (or dout): column (g·group + j)·d.
    GemmOperand q(const AttentionOperand& x) const {
        return block(x.mat, x.col0 + j * d, uint32_t(t), uint32_t(d), x.ld, t * x.ld, g * d);
    }
    // k, v (or their gradients): column g·d.
    GemmOperand kv(const AttentionOperand& x) const {
        return block(x.mat, x.col0, uint32_t(t), uint32_t(d), x.ld, t * x.ld, d);
    }
    GemmOperand o(const MatRef& out) const { return block(out, j * d, uint32_t(t), uint32_t(d), c, t * c, g * d); }
    GemmOperand scores(const MatRef& s) const { return block(s, j * tt, uint32_t(t), uint32_t(t), t, htt, g * tt); }
};
Views views(const AttentionShape& s, uint32_t j) {
    const uint64_t t = s.seq;
    return {t, s.head_size, s.group(), s.channels(), t * t, uint64_t(s.heads) * t * t, j};
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
    d.inner = s.kv();
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
    VKT_CHECK(kv() <= heads && heads % kv() == 0, "attention: ", kv(), " key/value heads do not divide ", heads,
              " heads");
    VKT_CHECK(uint64_t(batch) * seq * (channels() + 2 * kv_channels()) <= k_max_elements, "attention: q, k and v of ",
              batch, "x", seq, "x", channels() + 2 * kv_channels(), " exceed 2^31 - 4096 elements");
    VKT_CHECK(score_elements() <= k_max_elements, "attention: scores of ", batch, "x", heads, "x", seq, "x", seq,
              " exceed 2^31 - 4096 elements");
}

AttentionPaths AttentionPaths::all(GemmPath path) {
    return {path, path, path, path, path, path};
}

AttentionQkv fused_qkv(const AttentionShape& shape, const MatRef& qkv) {
    VKT_CHECK(shape.kv() == shape.heads, "attention: fused qkv rows need as many key/value heads as heads");
    const uint64_t c = shape.channels();
    return {{qkv, 0, 3 * c}, {qkv, c, 3 * c}, {qkv, 2 * c, 3 * c}};
}

AttentionQkv separate_qkv(const AttentionShape& shape, const MatRef& q, const MatRef& k, const MatRef& v) {
    return {{q, 0, shape.channels()}, {k, 0, shape.kv_channels()}, {v, 0, shape.kv_channels()}};
}

AttentionForwardGemms attention_forward_gemms(const AttentionShape& shape, const AttentionQkv& in, const MatRef& s,
                                              const MatRef& p, const MatRef& out) {
    AttentionForwardGemms g;
    for (uint32_t j = 0; j < shape.group(); ++j) {
        const Views v = views(shape, j);
        g.scores.push_back(desc(v.q(in.q), false, v.kv(in.k), true, v.scores(s), shape, false));
        g.values.push_back(desc(v.scores(p), false, v.kv(in.v), false, v.o(out), shape, false));
    }
    return g;
}

std::vector<GemmDesc> attention_dp_gemms(const AttentionShape& shape, const AttentionQkv& in, const MatRef& dout,
                                         const MatRef& dp) {
    std::vector<GemmDesc> out;
    for (uint32_t j = 0; j < shape.group(); ++j) {
        const Views v = views(shape, j);
        out.push_back(desc(v.o(dout), false, v.kv(in.v), true, v.scores(dp), shape, false));
    }
    return out;
}

std::vector<GemmDesc> attention_grad_gemms(const AttentionShape& shape, int which, const AttentionQkv& in,
                                           const MatRef& p_or_ds, const MatRef& dout, const AttentionOperand& grad,
                                           bool accumulate) {
    VKT_CHECK(which >= 0 && which <= 2, "internal: attention input ", which);
    std::vector<GemmDesc> out;
    for (uint32_t j = 0; j < shape.group(); ++j) {
        const Views v = views(shape, j);
        // dK and dV sum over the group's query heads: the first member writes, the others add.
        const bool acc = accumulate || (which != 0 && j > 0);
        if (which == 0)
            out.push_back(desc(v.scores(p_or_ds), false, v.kv(in.k), false, v.q(grad), shape, acc));
        else if (which == 1)
            out.push_back(desc(v.scores(p_or_ds), true, v.q(in.q), false, v.kv(grad), shape, acc));
        else
            out.push_back(desc(v.scores(p_or_ds), true, v.o(dout), false, v.kv(grad), shape, acc));
    }
    return out;
}

AttentionBackwardGemms attention_backward_gemms(const AttentionShape& shape, const MatRef& qkv, const MatRef& p,
                                                const MatRef& dout, const MatRef& dp, const MatRef& ds,
                                                const MatRef& dqkv, bool accumulate) {
    const AttentionQkv in = fused_qkv(shape, qkv), d = fused_qkv(shape, dqkv);
    return {attention_dp_gemms(shape, in, dout, dp), attention_grad_gemms(shape, 0, in, ds, dout, d.q, accumulate),
            attention_grad_gemms(shape, 1, in, ds, dout, d.k, accumulate),
            attention_grad_gemms(shape, 2, in, p, dout, d.v, accumulate)};
}

namespace {

const char* input_name(int which) {
    return which == 0 ? "q" : which == 1 ? "k" : "v";
}

// Each of q, k and v holds batch·seq rows of its heads' columns within its leading dimension.
void check_inputs(const runtime::Device& device, const AttentionShape& shape, const AttentionQkv& in, const char* op,
                  const char* prefix) {
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    int which = 0;
    for (const AttentionOperand* x : {&in.q, &in.k, &in.v}) {
        const std::string what = prefix + std::string(input_name(which));
        const uint64_t width = which == 0 ? shape.channels() : shape.kv_channels();
        check_operand(device, x->mat, op, what.c_str());
        VKT_CHECK(x->col0 + width <= x->ld && x->mat.count() >= rows * x->ld, op, ": ", what, " holds ", x->mat.count(),
                  " elements; ", rows, " rows of ", x->ld, " with ", width, " columns from ", x->col0, " do not fit");
        ++which;
    }
}

void record_all(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const std::vector<GemmDesc>& g) {
    for (const GemmDesc& d : g) record_gemm_strided(device, seq, path, d);
}

MatRef score_rows(const AttentionShape& shape, const MatRef& m) {
    return MatRef{m.buffer, m.dtype, uint32_t(shape.score_elements() / shape.seq), shape.seq, m.offset};
}

} // namespace

void record_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                      const AttentionPaths& paths, const AttentionQkv& in, const MatRef& s, const MatRef& p,
                      const MatRef& out) {
    const char* op = "attention";
    shape.validate();
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    check_inputs(device, shape, in, op, "");
    check_operand(device, out, rows * shape.channels(), op, "out");
    check_operand(device, s, shape.score_elements(), op, "scores");
    check_operand(device, p, shape.score_elements(), op, "probabilities");
    VKT_CHECK(s.dtype == DType::f32, op, ": scores must be f32");
    const DType act = in.q.mat.dtype;
    for (const auto& [m, what] : {std::pair{&in.k.mat, "k"}, {&in.v.mat, "v"}, {&p, "probabilities"}, {&out, "out"}})
        check_same_type(op, *m, what, act, "q");
    for (const auto& [m, what] : {std::pair{&s, "scores"}, {&p, "probabilities"}, {&out, "out"}})
        for (const MatRef* other : {&in.q.mat, &in.k.mat, &in.v.mat, &s, &p, &out})
            VKT_CHECK(m == other || !overlaps(*m, *other), op, ": ", what, " overlaps another operand");
    if (rows == 0) return;
    const AttentionForwardGemms g = attention_forward_gemms(shape, in, s, p, out);
    record_all(device, seq, paths.scores, g.scores);
    record_softmax(device, seq, score_rows(shape, s), score_rows(shape, p), shape.scale(), shape.causal);
    record_all(device, seq, paths.values, g.values);
}

void record_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                      const AttentionPaths& paths, const MatRef& qkv, const MatRef& s, const MatRef& p,
                      const MatRef& out) {
    shape.validate();
    check_operand(device, qkv, uint64_t(shape.batch) * shape.seq * 3 * shape.channels(), "attention", "qkv");
    record_attention(device, seq, shape, paths, fused_qkv(shape, qkv), s, p, out);
}

void record_attention_backward_scores(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                                      GemmPath dp_path, const AttentionQkv& in, const MatRef& p, const MatRef& dout,
                                      const MatRef& dp, const MatRef& ds) {
    const char* op = "attention_backward";
    shape.validate();
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    check_inputs(device, shape, in, op, "");
    check_operand(device, dout, rows * shape.channels(), op, "dout");
    check_operand(device, p, shape.score_elements(), op, "probabilities");
    check_operand(device, dp, shape.score_elements(), op, "dp");
    check_operand(device, ds, shape.score_elements(), op, "ds");
    VKT_CHECK(dp.dtype == DType::f32, op, ": dp must be f32");
    for (const auto& [m, what] : {std::pair{&p, "probabilities"}, {&dout, "dout"}, {&ds, "ds"}})
        check_same_type(op, *m, what, in.v.mat.dtype, "v");
    for (const auto& [m, what] : {std::pair{&dp, "dp"}, {&ds, "ds"}})
        for (const MatRef* other : {&in.v.mat, &p, &dout, &dp, &ds})
            VKT_CHECK(m == other || !overlaps(*m, *other), op, ": ", what, " overlaps another operand");
    if (rows == 0) return;
    record_all(device, seq, dp_path, attention_dp_gemms(shape, in, dout, dp));
    record_softmax_backward(device, seq, score_rows(shape, p), score_rows(shape, dp), score_rows(shape, ds),
                            shape.scale(), shape.causal, false);
}

void record_attention_input_grad(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                                 GemmPath path, int which, const AttentionQkv& in, const MatRef& p_or_ds,
                                 const MatRef& dout, const AttentionOperand& grad, bool accumulate) {
    const char* op = "attention_backward";
    shape.validate();
    VKT_CHECK(which >= 0 && which <= 2, "internal: attention input ", which);
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    check_inputs(device, shape, in, op, "");
    AttentionQkv g = in;
    (which == 0 ? g.q : which == 1 ? g.k : g.v) = grad;
    check_inputs(device, shape, g, op, "d");
    check_operand(device, p_or_ds, shape.score_elements(), op, which == 2 ? "probabilities" : "ds");
    if (which == 2) check_operand(device, dout, rows * shape.channels(), op, "dout");
    check_same_type(op, grad.mat, "the gradient", p_or_ds.dtype, which == 2 ? "probabilities" : "ds");
    for (const MatRef* other : {&in.q.mat, &in.k.mat, &in.v.mat, &p_or_ds, &dout})
        VKT_CHECK(!overlaps(grad.mat, *other), op, ": d", input_name(which), " overlaps another operand");
    if (rows == 0) return;
    record_all(device, seq, path, attention_grad_gemms(shape, which, in, p_or_ds, dout, grad, accumulate));
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
    record_all(device, seq, paths.dp, g.dp);
    record_softmax_backward(device, seq, score_rows(shape, p), score_rows(shape, dp), score_rows(shape, ds),
                            shape.scale(), shape.causal, false);
    record_all(device, seq, paths.dq, g.dq);
    record_all(device, seq, paths.dk, g.dk);
    record_all(device, seq, paths.dv, g.dv);
}

} // namespace vktrain::kernels
