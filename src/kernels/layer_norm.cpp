#include "kernels/layer_norm.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(NormPush) == 12 * 4, "NormPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_norm_cols = 16; // NORM_COLS of shaders/layer_norm_weight_grad.comp

// An operand and its name in messages; null operands (absent weight, bias or mean) are skipped.
using Named = std::pair<const MatRef*, const char*>;

// Checks the shape and eps, the element counts and types of every operand, and that no output overlaps another
// operand. `full` hold rows·cols elements of the storage type, `weights` cols of it, `stats` rows fp32 elements
// and `grads` cols fp32 elements; `outputs` name the operands the call writes.
void check_operands(const runtime::Device& device, const char* op, const RowNorm& s, std::initializer_list<Named> full,
                    std::initializer_list<Named> weights, std::initializer_list<Named> stats,
                    std::initializer_list<Named> grads, std::initializer_list<Named> outputs) {
    VKT_CHECK(s.cols > 0, op, ": rows of 0 elements cannot be normalised");
    const uint64_t count = uint64_t(s.rows) * s.cols;
    VKT_CHECK(count <= k_max_elements, op, ": ", s.rows, "x", s.cols, " has more than 2^31 - 4096 elements");
    VKT_CHECK(std::isfinite(s.eps) && s.eps >= 0.0f, op, ": eps ", s.eps, " must be finite and >= 0");
    const DType type = full.begin()->first->dtype;
    const auto same_type = [&](const MatRef& m, const char* what) {
        VKT_CHECK(m.dtype == type, op, ": ", what, " is ", dtype_name(m.dtype), " but ", full.begin()->second, " is ",
                  dtype_name(type), " (activations, gradients, weight and bias share one type)");
    };
    for (const auto& [m, what] : full) {
        check_operand(device, *m, count, op, what);
        same_type(*m, what);
    }
    for (const auto& [m, what] : weights) {
        if (!m) continue;
        check_operand(device, *m, s.cols, op, what);
        same_type(*m, what);
    }
    const auto fp32 = [&](const Named& named, uint64_t elements) {
        const auto& [m, what] = named;
        if (!m) return;
        check_operand(device, *m, elements, op, what);
        VKT_CHECK(m->dtype == DType::f32, op, ": ", what, " must be f32 (it is ", dtype_name(m->dtype), ")");
    };
    for (const Named& m : stats) fp32(m, s.rows);
    for (const Named& m : grads) fp32(m, s.cols);
    for (const auto& [out, out_name] : outputs)
        for (const auto& group : {full, weights, stats, grads}) {
            if (!out) break;
            for (const auto& [m, what] : group)
                VKT_CHECK(!m || m == out || !overlaps(*out, *m), op, ": ", out_name, " overlaps ", what);
        }
}

void check_kind(const char* op, const RowNorm& s, const MatRef* bias, const MatRef* mean) {
    if (s.kind == NormKind::rms) {
        VKT_CHECK(!bias, op, ": RMSNorm has no bias");
        VKT_CHECK(!mean, op, ": RMSNorm saves no mean");
    } else {
        VKT_CHECK(mean, op, ": LayerNorm needs the per-row mean");
    }
}

std::string variant(NormKind kind, const char* op, DType in, DType out) {
    return variant_name((std::string(kind == NormKind::rms ? "rms_norm" : "layer_norm") + op).c_str(), in, out);
}

// One workgroup per row on GPUs; on a CPU device at most Device::element_group_cap() workgroups, each looping over
// rows (the shaders stride rows by the workgroup count): there every workgroup is a call of the compiled shader with
// a fixed cost, which dominated the GPT recipe's 128-wide rows. Each row is computed the same way whichever
// workgroup takes it, so the results do not depend on the count.
uint32_t row_groups(const runtime::Device& device, uint32_t rows) {
    return std::min(group_count(rows, 1), device.element_group_cap());
}

NormPush norm_push(const RowNorm& s, uint32_t flags) {
    NormPush pc{};
    pc.rows = s.rows;
    pc.cols = s.cols;
    pc.flags = flags;
    pc.eps = s.eps;
    return pc;
}

} // namespace

void record_layer_norm(runtime::Device& device, runtime::Sequence& seq, const RowNorm& s, const MatRef& x,
                       const MatRef* weight, const MatRef* bias, const MatRef& y, const MatRef* mean,
                       const MatRef& rstd, const MatRef* residual_b, const MatRef* sum) {
    const char* op = s.kind == NormKind::rms ? "rms_norm" : "layer_norm";
    check_kind(op, s, bias, mean);
    VKT_CHECK(s.kind == NormKind::rms || !weight == !bias, op, ": weight and bias go together (affine or not)");
    VKT_CHECK(!residual_b == !sum, op, ": the residual add's b and sum go together");
    check_operands(device, op, s, {{&x, "x"}, {&y, "y"}}, {{weight, "weight"}, {bias, "bias"}},
                   {{mean, "mean"}, {&rstd, "rstd"}}, {}, {{&y, "y"}, {mean, "mean"}, {&rstd, "rstd"}});
    if (sum)
        check_operands(device, op, s, {{&x, "x"}, {residual_b, "residual b"}, {sum, "sum"}, {&y, "y"}}, {}, {}, {},
                       {{sum, "sum"}});
    if (s.rows == 0) return;

    const DType t = x.dtype;
    NormPush pc = norm_push(s, (weight ? NORM_FLAG_AFFINE : 0u) | (sum ? NORM_FLAG_RESIDUAL : 0u));
    // Without an affine transform the weight and bias bindings are never read: x stands in for them.
    OperandList ops{{&x, runtime::Access::read},
                    {weight ? weight : &x, runtime::Access::read},
                    {&y, runtime::Access::write},
                    {&rstd, runtime::Access::write}};
    if (s.kind == NormKind::layer) {
        ops.push_back({mean, runtime::Access::write});
        ops.push_back({bias ? bias : &x, runtime::Access::read});
    }
    // Without the residual add its bindings are never touched: x and y stand in.
    ops.push_back({sum ? residual_b : &x, runtime::Access::read});
    ops.push_back({sum ? sum : &y, runtime::Access::write});
    dispatch_operands(device, seq, variant(s.kind, "", t, t), pc, ops, row_groups(device, s.rows));
}

void record_layer_norm_backward(runtime::Device& device, runtime::Sequence& seq, const RowNorm& s, const MatRef& x,
                                const MatRef& dy, const MatRef* weight, const MatRef* mean, const MatRef& rstd,
                                const MatRef& dx, bool accumulate, const MatRef* dx2) {
    const char* op = s.kind == NormKind::rms ? "rms_norm_backward" : "layer_norm_backward";
    check_kind(op, s, nullptr, mean);
    check_operands(device, op, s, {{&x, "x"}, {&dy, "dy"}, {&dx, "dx"}}, {{weight, "weight"}},
                   {{mean, "mean"}, {&rstd, "rstd"}}, {}, {{&dx, "dx"}});
    if (dx2)
        check_operands(device, op, s, {{&x, "x"}, {&dy, "dy"}, {&dx, "dx"}, {dx2, "dx2"}}, {{weight, "weight"}},
                       {{mean, "mean"}, {&rstd, "rstd"}}, {}, {{dx2, "dx2"}});
    if (s.rows == 0) return;

    const DType t = x.dtype;
    NormPush pc = norm_push(s, (weight ? NORM_FLAG_AFFINE : 0u) | (accumulate ? FLAG_ACCUMULATE : 0u) |
                                   (dx2 ? NORM_FLAG_SECOND_DX : 0u));
    OperandList ops{{&x, runtime::Access::read},
                    {&dy, runtime::Access::read},
                    {weight ? weight : &x, runtime::Access::read}, // unread without weight
                    {&rstd, runtime::Access::read},
                    {&dx, accumulate ? runtime::Access::read_write : runtime::Access::write}};
    if (s.kind == NormKind::layer) ops.push_back({mean, runtime::Access::read});
    ops.push_back({dx2 ? dx2 : &dx, dx2 ? runtime::Access::write : ops[4].second}); // unwritten without dx2
    dispatch_operands(device, seq, variant(s.kind, "_backward", t, t), pc, ops, row_groups(device, s.rows));
}

void record_layer_norm_weight_grad(runtime::Device& device, runtime::Sequence& seq, const RowNorm& s, const MatRef& x,
                                   const MatRef& dy, const MatRef* mean, const MatRef& rstd, const MatRef& dweight,
                                   bool accumulate) {
    const char* op = s.kind == NormKind::rms ? "rms_norm_weight_grad" : "layer_norm_weight_grad";
    check_kind(op, s, nullptr, mean);
    check_operands(device, op, s, {{&x, "x"}, {&dy, "dy"}}, {}, {{mean, "mean"}, {&rstd, "rstd"}},
                   {{&dweight, "dweight"}}, {{&dweight, "dweight"}});
    // rows == 0 still runs: the sums over no rows are 0 and dweight is overwritten with them.

    const DType t = x.dtype;
    NormPush pc = norm_push(s, accumulate ? FLAG_ACCUMULATE : 0u);
    OperandList ops{{&x, runtime::Access::read},
                    {&dy, runtime::Access::read},
                    {&rstd, runtime::Access::read},
                    {&dweight, accumulate ? runtime::Access::read_write : runtime::Access::write}};
    if (s.kind == NormKind::layer) ops.push_back({mean, runtime::Access::read});
    dispatch_operands(device, seq, variant(s.kind, "_weight_grad", t, t), pc, ops, group_count(s.cols, k_norm_cols));
}

} // namespace vktrain::kernels
