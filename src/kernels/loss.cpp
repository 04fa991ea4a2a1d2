#include "kernels/loss.hpp"

#include <algorithm>
#include <string>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(StepParams) == 16, "StepParams layout must match shaders/softmax_xent.comp");
static_assert(sizeof(ElementPush) == 8 * 4, "ElementPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_rows_per_group = 64; // local_size_x of shaders/softmax_xent.comp

void check_matrix(const runtime::Device& device, const MatRef& m, const char* op, const char* what) {
    check_operand(device, m, op, what);
}

void check_buffer(const runtime::Buffer& b, uint64_t bytes, const char* op, const char* what) {
    VKT_CHECK(b.valid(), op, ": ", what, " has no buffer");
    VKT_CHECK(b.size() >= bytes, op, ": ", what, " holds ", b.size(), " bytes, needs ", bytes);
}

} // namespace

void record_softmax_xent(runtime::Device& device, runtime::Sequence& seq, const MatRef& logits,
                         const runtime::Buffer& labels, const runtime::Buffer& params, const runtime::Buffer& row_loss,
                         const MatRef& dlogits, uint32_t rows_per_sample, const XentIgnore& ignore) {
    check_matrix(device, logits, "softmax_xent", "logits");
    check_matrix(device, dlogits, "softmax_xent", "dlogits");
    VKT_CHECK(dlogits.rows == logits.rows && dlogits.cols == logits.cols, "softmax_xent: dlogits is ", dlogits.rows,
              "x", dlogits.cols, " but logits is ", logits.rows, "x", logits.cols);
    VKT_CHECK(dlogits.dtype == logits.dtype, "softmax_xent: dlogits is ", dtype_name(dlogits.dtype), " but logits is ",
              dtype_name(logits.dtype));
    VKT_CHECK(logits.cols >= 1 || logits.rows == 0, "softmax_xent: logits need at least one class");
    check_buffer(labels, uint64_t(logits.rows) * 4, "softmax_xent", "labels (int32 per row)");
    check_buffer(row_loss, uint64_t(logits.rows) * 4, "softmax_xent", "row_loss (fp32 per row)");
    check_buffer(params, sizeof(StepParams), "softmax_xent", "params (StepParams)");
    if (logits.rows == 0) return;

    const runtime::Kernel& k =
        kernel(device, variant_name("softmax_xent", logits.dtype, logits.dtype), 5, sizeof(ElementPush));

    ElementPush pc{};
    pc.n = logits.rows * logits.cols;
    pc.rows = logits.rows;
    pc.cols = logits.cols;
    pc.flags = rows_per_sample;
    pc.pad0 = ignore.enabled ? 1u : 0u;
    pc.offset2 = uint32_t(ignore.index); // the shader reads it back as an int
    const Operand ol = operand(device, logits, runtime::Access::read);
    const Operand od = operand(device, dlogits, runtime::Access::write);
    pc.offset0 = ol.offset;
    pc.offset1 = od.offset;
    const uint32_t groups = std::min((logits.rows + k_rows_per_group - 1) / k_rows_per_group, k_max_groups);
    seq.dispatch(k,
                 {ol.binding,
                  {&labels, runtime::Access::read},
                  {&params, runtime::Access::read},
                  {&row_loss, runtime::Access::write},
                  od.binding},
                 &pc, sizeof(pc), groups);
}

void record_mse(runtime::Device& device, runtime::Sequence& seq, const MatRef& pred, const MatRef& target,
                const runtime::Buffer& params, const runtime::Buffer& row_loss, const MatRef& dpred) {
    check_matrix(device, pred, "mse", "pred");
    check_matrix(device, target, "mse", "target");
    check_matrix(device, dpred, "mse", "dpred");
    VKT_CHECK(target.dtype == DType::f32, "mse: target must be f32 (it is ", dtype_name(target.dtype), ")");
    VKT_CHECK(target.count() == pred.count(), "mse: target has ", target.count(), " elements (", target.rows, "x",
              target.cols, ") but pred is ", pred.rows, "x", pred.cols);
    VKT_CHECK(dpred.rows == pred.rows && dpred.cols == pred.cols, "mse: dpred is ", dpred.rows, "x", dpred.cols,
              " but pred is ", pred.rows, "x", pred.cols);
    VKT_CHECK(dpred.dtype == pred.dtype, "mse: dpred is ", dtype_name(dpred.dtype), " but pred is ",
              dtype_name(pred.dtype));
    VKT_CHECK(!overlaps(dpred, pred) && !overlaps(dpred, target), "mse: dpred overlaps pred or target");
    check_buffer(row_loss, uint64_t(pred.rows) * 4, "mse", "row_loss (fp32 per row)");
    check_buffer(params, sizeof(StepParams), "mse", "params (StepParams)");
    if (pred.rows == 0) return;

    const runtime::Kernel& k = kernel(device, variant_name("mse", pred.dtype, pred.dtype), 5, sizeof(ElementPush));
    const Operand op = operand(device, pred, runtime::Access::read);
    const Operand ot = operand(device, target, runtime::Access::read);
    const Operand od = operand(device, dpred, runtime::Access::write);
    ElementPush pc{};
    pc.n = uint32_t(pred.count());
    pc.rows = pred.rows;
    pc.cols = pred.cols;
    pc.offset0 = op.offset;
    pc.offset1 = ot.offset;
    pc.offset2 = od.offset;
    seq.dispatch(
        k, {op.binding, ot.binding, {&params, runtime::Access::read}, {&row_loss, runtime::Access::write}, od.binding},
        &pc, sizeof(pc), group_count(pred.rows, 1));
}

} // namespace vktrain::kernels
