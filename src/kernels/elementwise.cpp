#include "kernels/elementwise.hpp"

#include <algorithm>
#include <string>

#include "common/check.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(ElementPush) == 8 * 4, "ElementPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_elt_wg = 128;         // ELT_WG of shaders/elementwise.glsl
constexpr uint32_t k_bias_cols = 16;       // BIAS_COLS of shaders/bias_grad.comp
constexpr uint32_t k_max_groups = 65535;   // the guaranteed maxComputeWorkGroupCount[0]
constexpr uint64_t k_max_end = 1ull << 31; // offset + count bound: the grid-stride index never wraps

uint64_t element_count(const MatRef& m) {
    return uint64_t(m.rows) * m.cols;
}

// `m` must name rows × cols elements that lie inside its buffer, in a precision the device can store.
void check_operand(const runtime::Device& device, const MatRef& m, const char* op, const char* what) {
    VKT_CHECK(m.buffer && m.buffer->valid(), op, ": ", what, " has no buffer");
    // Shader indices are 32-bit: the element count plus the operand's offset inside its bound range.
    VKT_CHECK(element_count(m) + 4096 <= k_max_end, op, ": ", what, " has ", element_count(m),
              " elements; at most 2^31 - 4096 are supported");
    VKT_CHECK(m.byte_offset() + m.byte_size() <= m.buffer->size(), op, ": ", what, " (", m.rows, "x", m.cols, " ",
              dtype_name(m.dtype), " from element ", m.offset, ") overruns its buffer of ", m.buffer->size(), " bytes");
    VKT_CHECK(m.dtype != DType::f16 || device.fp16_enabled(), op, ": ", what,
              " is fp16 but 16-bit storage is not enabled on this device");
}

void check_same_shape(const MatRef& a, const MatRef& b, const char* op, const char* a_name, const char* b_name) {
    VKT_CHECK(a.rows == b.rows && a.cols == b.cols, op, ": ", b_name, " is ", b.rows, "x", b.cols, " but ", a_name,
              " is ", a.rows, "x", a.cols);
}

// Workgroups for `units` work items at `per_group` each; beyond the 65535 limit the shaders loop.
uint32_t group_count(uint64_t units, uint32_t per_group) {
    return uint32_t(std::min<uint64_t>((units + per_group - 1) / per_group, k_max_groups));
}

// Push constants for an op over `shape` (rows × cols elements); the operands start at offset0..2 of their
// bound ranges (Operand::offset).
ElementPush element_push(const MatRef& shape, uint32_t offset0, uint32_t offset1 = 0, uint32_t offset2 = 0,
                         uint32_t flags = 0) {
    ElementPush pc{};
    pc.n = uint32_t(element_count(shape));
    pc.rows = shape.rows;
    pc.cols = shape.cols;
    pc.flags = flags;
    pc.offset0 = offset0;
    pc.offset1 = offset1;
    pc.offset2 = offset2;
    return pc;
}

const runtime::Kernel& element_kernel(runtime::Device& device, const std::string& variant, uint32_t bindings) {
    runtime::KernelDesc desc;
    desc.variant = variant;
    desc.bindings = bindings;
    desc.push_size = sizeof(ElementPush);
    return device.pipelines().get(desc);
}

// "<op>_<in>" when both types agree, else "<op>_<in>_<out>" (see shaders/variants.txt).
std::string variant_name(const char* op, DType in, DType out) {
    std::string name = std::string(op) + "_" + dtype_name(in);
    if (out != in) name += std::string("_") + dtype_name(out);
    return name;
}

} // namespace

void record_bias_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& y, const MatRef& bias) {
    check_operand(device, y, "bias_add", "y");
    check_operand(device, bias, "bias_add", "bias");
    VKT_CHECK(bias.rows == 1 && bias.cols == y.cols, "bias_add: bias is ", bias.rows, "x", bias.cols, ", expected 1x",
              y.cols, " for y of ", y.rows, "x", y.cols);
    VKT_CHECK(bias.dtype == y.dtype, "bias_add: bias is ", dtype_name(bias.dtype), " but y is ", dtype_name(y.dtype));
    const uint64_t n = element_count(y);
    if (n == 0) return;

    const runtime::Kernel& kernel = element_kernel(device, variant_name("bias_add", y.dtype, y.dtype), 2);
    const Operand oy = operand(device, y, runtime::Access::read_write);
    const Operand ob = operand(device, bias, runtime::Access::read);
    const ElementPush pc = element_push(y, oy.offset, ob.offset);
    seq.dispatch(kernel, {oy.binding, ob.binding}, &pc, sizeof(pc), group_count(n, k_elt_wg));
}

void record_bias_grad(runtime::Device& device, runtime::Sequence& seq, const MatRef& dy, const MatRef& db) {
    VKT_CHECK(db.dtype == DType::f32, "bias_grad: db must be f32 (it is ", dtype_name(db.dtype), ")");
    check_operand(device, dy, "bias_grad", "dy");
    check_operand(device, db, "bias_grad", "db");
    VKT_CHECK(db.rows == 1 && db.cols == dy.cols, "bias_grad: db is ", db.rows, "x", db.cols, ", expected 1x", dy.cols,
              " for dy of ", dy.rows, "x", dy.cols);
    if (dy.cols == 0) return;
    // rows == 0 still runs: the column sums of an empty matrix are 0 and db is overwritten with them.

    const runtime::Kernel& kernel = element_kernel(device, variant_name("bias_grad", dy.dtype, dy.dtype), 2);
    const Operand ody = operand(device, dy, runtime::Access::read);
    const Operand odb = operand(device, db, runtime::Access::write);
    const ElementPush pc = element_push(dy, ody.offset, odb.offset);
    seq.dispatch(kernel, {ody.binding, odb.binding}, &pc, sizeof(pc), group_count(dy.cols, k_bias_cols));
}

void record_activation(runtime::Device& device, runtime::Sequence& seq, Activation act, const MatRef& x,
                       const MatRef& y) {
    check_operand(device, x, "activation", "x");
    check_operand(device, y, "activation", "y");
    check_same_shape(x, y, "activation", "x", "y");
    const uint64_t n = element_count(x);
    if (n == 0) return;

    const runtime::Kernel& kernel = element_kernel(device, variant_name("activation", x.dtype, y.dtype), 3);
    // Binding 1 (dy) is unused in the forward pass: x stands in for it.
    const Operand ox = operand(device, x, runtime::Access::read);
    const Operand oy = operand(device, y, runtime::Access::write);
    const ElementPush pc =
        element_push(x, ox.offset, ox.offset, oy.offset, act == Activation::gelu ? ACT_FLAG_GELU : 0u);
    seq.dispatch(kernel, {ox.binding, ox.binding, oy.binding}, &pc, sizeof(pc), group_count(n, k_elt_wg));
}

void record_activation_backward(runtime::Device& device, runtime::Sequence& seq, Activation act, const MatRef& x,
                                const MatRef& dy, const MatRef& dx) {
    check_operand(device, x, "activation_backward", "x");
    check_operand(device, dy, "activation_backward", "dy");
    check_operand(device, dx, "activation_backward", "dx");
    check_same_shape(x, dy, "activation_backward", "x", "dy");
    check_same_shape(x, dx, "activation_backward", "x", "dx");
    VKT_CHECK(dy.dtype == x.dtype, "activation_backward: dy is ", dtype_name(dy.dtype), " but x is ",
              dtype_name(x.dtype), " (x and dy must share a type; dx may differ)");
    const uint64_t n = element_count(x);
    if (n == 0) return;

    const runtime::Kernel& kernel = element_kernel(device, variant_name("activation", x.dtype, dx.dtype), 3);
    const Operand ox = operand(device, x, runtime::Access::read);
    const Operand ody = operand(device, dy, runtime::Access::read);
    const Operand odx = operand(device, dx, runtime::Access::write);
    const ElementPush pc = element_push(x, ox.offset, ody.offset, odx.offset,
                                        ACT_FLAG_BACKWARD | (act == Activation::gelu ? ACT_FLAG_GELU : 0u));
    seq.dispatch(kernel, {ox.binding, ody.binding, odx.binding}, &pc, sizeof(pc), group_count(n, k_elt_wg));
}

void record_cast(runtime::Device& device, runtime::Sequence& seq, const MatRef& src, const MatRef& dst) {
    check_operand(device, src, "cast", "src");
    check_operand(device, dst, "cast", "dst");
    const uint64_t n = element_count(src);
    VKT_CHECK(element_count(dst) == n, "cast: src has ", n, " elements (", src.rows, "x", src.cols, ") but dst has ",
              element_count(dst), " (", dst.rows, "x", dst.cols, ")");
    if (n == 0) return;

    const std::string variant = std::string("cast_") + dtype_name(src.dtype) + "_" + dtype_name(dst.dtype);
    const runtime::Kernel& kernel = element_kernel(device, variant, 2);
    const Operand os = operand(device, src, runtime::Access::read);
    const Operand od = operand(device, dst, runtime::Access::write);
    const ElementPush pc = element_push(src, os.offset, od.offset);
    seq.dispatch(kernel, {os.binding, od.binding}, &pc, sizeof(pc), group_count(n, k_elt_wg));
}

void record_nonfinite_scan(runtime::Device& device, runtime::Sequence& seq, const MatRef& x,
                           const runtime::Buffer& flag) {
    check_operand(device, x, "nonfinite_scan", "x");
    VKT_CHECK(flag.valid() && flag.size() >= 4, "nonfinite_scan: the flag buffer must hold at least one uint32");
    const uint64_t n = element_count(x);
    if (n == 0) return;

    const runtime::Kernel& kernel = element_kernel(device, variant_name("nonfinite", x.dtype, x.dtype), 2);
    const Operand ox = operand(device, x, runtime::Access::read);
    const ElementPush pc = element_push(x, ox.offset);
    // read_write: the flag keeps what it held unless something non-finite is found.
    seq.dispatch(kernel, {ox.binding, {&flag, runtime::Access::read_write}}, &pc, sizeof(pc), group_count(n, k_elt_wg));
}

} // namespace vktrain::kernels
