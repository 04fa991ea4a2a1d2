#include "kernels/loss.hpp"

#include <algorithm>
#include <string>

#include "common/check.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(StepParams) == 16, "StepParams layout must match shaders/softmax_xent.comp");
static_assert(sizeof(ElementPush) == 8 * 4, "ElementPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_rows_per_group = 64;  // local_size_x of shaders/softmax_xent.comp
constexpr uint32_t k_max_groups = 65535;   // the guaranteed maxComputeWorkGroupCount[0]
constexpr uint64_t k_max_end = 1ull << 31; // offset + count bound of every element index

void check_matrix(const runtime::Device& device, const MatRef& m, const char* what) {
    VKT_CHECK(m.buffer && m.buffer->valid(), "softmax_xent: ", what, " has no buffer");
    VKT_CHECK(m.count() + 4096 <= k_max_end, "softmax_xent: ", what, " has ", m.count(),
              " elements; at most 2^31 - 4096 are supported");
    VKT_CHECK(m.byte_offset() + m.byte_size() <= m.buffer->size(), "softmax_xent: ", what, " (", m.rows, "x", m.cols,
              " ", dtype_name(m.dtype), " from element ", m.offset, ") overruns its buffer of ", m.buffer->size(),
              " bytes");
    VKT_CHECK(m.dtype != DType::f16 || device.fp16_enabled(), "softmax_xent: ", what,
              " is fp16 but 16-bit storage is not enabled on this device");
}

void check_buffer(const runtime::Buffer& b, uint64_t bytes, const char* what) {
    VKT_CHECK(b.valid(), "softmax_xent: ", what, " has no buffer");
    VKT_CHECK(b.size() >= bytes, "softmax_xent: ", what, " holds ", b.size(), " bytes, needs ", bytes);
}

} // namespace

void record_softmax_xent(runtime::Device& device, runtime::Sequence& seq, const MatRef& logits,
                         const runtime::Buffer& labels, const runtime::Buffer& params, const runtime::Buffer& row_loss,
                         const MatRef& dlogits, uint32_t rows_per_sample) {
    check_matrix(device, logits, "logits");
    check_matrix(device, dlogits, "dlogits");
    VKT_CHECK(dlogits.rows == logits.rows && dlogits.cols == logits.cols, "softmax_xent: dlogits is ", dlogits.rows,
              "x", dlogits.cols, " but logits is ", logits.rows, "x", logits.cols);
    VKT_CHECK(dlogits.dtype == logits.dtype, "softmax_xent: dlogits is ", dtype_name(dlogits.dtype), " but logits is ",
              dtype_name(logits.dtype));
    VKT_CHECK(logits.cols >= 1 || logits.rows == 0, "softmax_xent: logits need at least one class");
    check_buffer(labels, uint64_t(logits.rows) * 4, "labels (int32 per row)");
    check_buffer(row_loss, uint64_t(logits.rows) * 4, "row_loss (fp32 per row)");
    check_buffer(params, sizeof(StepParams), "params (StepParams)");
    if (logits.rows == 0) return;

    runtime::KernelDesc desc;
    desc.variant = std::string("softmax_xent_") + dtype_name(logits.dtype);
    desc.bindings = 5;
    desc.push_size = sizeof(ElementPush);
    const runtime::Kernel& kernel = device.pipelines().get(desc);

    ElementPush pc{};
    pc.n = logits.rows * logits.cols;
    pc.rows = logits.rows;
    pc.cols = logits.cols;
    pc.flags = rows_per_sample;
    const Operand ol = operand(device, logits, runtime::Access::read);
    const Operand od = operand(device, dlogits, runtime::Access::write);
    pc.offset0 = ol.offset;
    pc.offset1 = od.offset;
    const uint32_t groups = std::min((logits.rows + k_rows_per_group - 1) / k_rows_per_group, k_max_groups);
    seq.dispatch(kernel,
                 {ol.binding,
                  {&labels, runtime::Access::read},
                  {&params, runtime::Access::read},
                  {&row_loss, runtime::Access::write},
                  od.binding},
                 &pc, sizeof(pc), groups);
}

} // namespace vktrain::kernels
