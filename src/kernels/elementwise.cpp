#include "kernels/elementwise.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(ElementPush) == 8 * 4, "ElementPush layout must match shaders/push_constants.h");
static_assert(sizeof(ChannelPush) == 16 * 4, "ChannelPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_bias_cols = 16; // BIAS_COLS of shaders/bias_grad.comp

uint64_t element_count(const MatRef& m) {
    return m.count();
}

void check_same_shape(const MatRef& a, const MatRef& b, const char* op, const char* a_name, const char* b_name) {
    VKT_CHECK(a.rows == b.rows && a.cols == b.cols, op, ": ", b_name, " is ", b.rows, "x", b.cols, " but ", a_name,
              " is ", a.rows, "x", a.cols);
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
    return kernel(device, variant, bindings, sizeof(ElementPush));
}

uint32_t activation_flags(Activation act) {
    switch (act) {
    case Activation::relu: return 0u;
    case Activation::gelu: return ACT_FLAG_GELU;
    case Activation::gelu_erf: return ACT_FLAG_GELU_ERF;
    case Activation::silu: return ACT_FLAG_SILU;
    }
    VKT_FAIL("activation: unknown activation ", int(act));
}

// outer·channels·inner as a checked element count.
uint64_t channel_count(uint32_t outer, uint32_t channels, uint32_t inner) {
    return uint64_t(outer) * channels * inner;
}

} // namespace

void record_channel_bias_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& y, const MatRef& bias,
                             uint32_t outer, uint32_t channels, uint32_t inner) {
    const uint64_t n = channel_count(outer, channels, inner);
    check_operand(device, y, n, "channel_bias_add", "y");
    check_operand(device, bias, channels, "channel_bias_add", "bias");
    VKT_CHECK(!overlaps(y, bias), "channel_bias_add: bias overlaps y");
    if (n == 0) return;

    const runtime::Kernel& k = kernel(device, variant_name("bias_add", bias.dtype, y.dtype), 2, sizeof(ChannelPush));
    const Operand oy = operand(device, y, runtime::Access::read_write);
    const Operand ob = operand(device, bias, runtime::Access::read);
    ChannelPush pc{};
    pc.outer = outer;
    pc.channels = channels;
    pc.inner = inner;
    pc.offsets[0] = oy.offset;
    pc.offsets[1] = ob.offset;
    seq.dispatch(k, {oy.binding, ob.binding}, &pc, sizeof(pc), element_groups(device, n));
}

void record_channel_bias_grad(runtime::Device& device, runtime::Sequence& seq, const MatRef& dy, const MatRef& db,
                              uint32_t outer, uint32_t channels, uint32_t inner, bool accumulate) {
    VKT_CHECK(db.dtype == DType::f32, "channel_bias_grad: db must be f32 (it is ", dtype_name(db.dtype), ")");
    check_operand(device, dy, channel_count(outer, channels, inner), "channel_bias_grad", "dy");
    check_operand(device, db, channels, "channel_bias_grad", "db");
    VKT_CHECK(!overlaps(dy, db), "channel_bias_grad: db overlaps dy");
    if (channels == 0) return;
    // outer·inner == 0 still runs: the sums over no elements are 0 and db is overwritten with them.
    const runtime::Access db_access = accumulate ? runtime::Access::read_write : runtime::Access::write;
    const Operand ody = operand(device, dy, runtime::Access::read);
    const Operand odb = operand(device, db, db_access);
    const uint32_t flags = accumulate ? FLAG_ACCUMULATE : 0u;

    if (inner == 1 && channels >= k_bias_cols) {
        // A matrix with enough columns: the column kernel reads whole rows, BIAS_COLS columns at a time.
        const runtime::Kernel& k = element_kernel(device, variant_name("bias_grad", dy.dtype, dy.dtype), 2);
        ElementPush pc{};
        pc.rows = outer;
        pc.cols = channels;
        pc.flags = flags;
        pc.offset0 = ody.offset;
        pc.offset1 = odb.offset;
        seq.dispatch(k, {ody.binding, odb.binding}, &pc, sizeof(pc), group_count(channels, k_bias_cols));
        return;
    }
    // Convolution-shaped (or few columns): one workgroup per channel reduces its outer·inner elements.
    const runtime::Kernel& k = kernel(device, variant_name("channel_sum", dy.dtype, dy.dtype), 2, sizeof(ChannelPush));
    ChannelPush pc{};
    pc.outer = outer;
    pc.channels = channels;
    pc.inner = inner;
    pc.flags = flags;
    pc.offsets[0] = ody.offset;
    pc.offsets[1] = odb.offset;
    seq.dispatch(k, {ody.binding, odb.binding}, &pc, sizeof(pc), group_count(channels, 1));
}

void record_bias_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& y, const MatRef& bias) {
    VKT_CHECK(bias.rows == 1 && bias.cols == y.cols, "bias_add: bias is ", bias.rows, "x", bias.cols, ", expected 1x",
              y.cols, " for y of ", y.rows, "x", y.cols);
    record_channel_bias_add(device, seq, y, bias, y.rows, y.cols, 1);
}

void record_bias_grad(runtime::Device& device, runtime::Sequence& seq, const MatRef& dy, const MatRef& db) {
    VKT_CHECK(db.rows == 1 && db.cols == dy.cols, "bias_grad: db is ", db.rows, "x", db.cols, ", expected 1x", dy.cols,
              " for dy of ", dy.rows, "x", dy.cols);
    record_channel_bias_grad(device, seq, dy, db, dy.rows, dy.cols, 1);
}

namespace {

// add.comp: out = a + b_scale·b, or a·b (FLAG_MUL). `op` names the kernel in messages.
void record_binary(runtime::Device& device, runtime::Sequence& seq, const char* op, const MatRef& a, const MatRef& b,
                   const MatRef& out, uint32_t flags, float b_scale) {
    check_operand(device, a, op, "a");
    check_operand(device, b, op, "b");
    check_operand(device, out, a.count(), op, "out");
    VKT_CHECK(b.count() == a.count(), op, ": b has ", b.count(), " elements (", b.rows, "x", b.cols, ") but a has ",
              a.count(), " (", a.rows, "x", a.cols, ")");
    VKT_CHECK(same_view(out, a) || !overlaps(out, a), op, ": out overlaps a without being the same view");
    VKT_CHECK(same_view(out, b) || !overlaps(out, b), op, ": out overlaps b without being the same view");
    const uint64_t n = a.count();
    if (n == 0) return;

    const std::string variant =
        std::string("add_") + dtype_name(a.dtype) + "_" + dtype_name(b.dtype) + "_" + dtype_name(out.dtype);
    const runtime::Kernel& k = element_kernel(device, variant, 3);
    const Operand oa = operand(device, a, runtime::Access::read);
    const Operand ob = operand(device, b, runtime::Access::read);
    const Operand oo = operand(device, out, runtime::Access::write);
    ElementPush pc = element_push(a, oa.offset, ob.offset, oo.offset, flags);
    std::memcpy(&pc.pad0, &b_scale, 4);
    seq.dispatch(k, {oa.binding, ob.binding, oo.binding}, &pc, sizeof(pc), element_groups(device, n));
}

} // namespace

void record_add(runtime::Device& device, runtime::Sequence& seq, const MatRef& a, const MatRef& b, const MatRef& out,
                float b_scale) {
    record_binary(device, seq, "add", a, b, out, b_scale != 1.0f ? FLAG_SCALE : 0u, b_scale);
}

void record_mul(runtime::Device& device, runtime::Sequence& seq, const MatRef& a, const MatRef& b, const MatRef& out) {
    record_binary(device, seq, "mul", a, b, out, FLAG_MUL, 1.0f);
}

void record_activation(runtime::Device& device, runtime::Sequence& seq, Activation act, const MatRef& x,
                       const MatRef& y) {
    check_operand(device, x, "activation", "x");
    check_operand(device, y, "activation", "y");
    check_same_shape(x, y, "activation", "x", "y");
    const uint64_t n = element_count(x);
    if (n == 0) return;

    const runtime::Kernel& k = element_kernel(device, variant_name("activation", x.dtype, y.dtype), 3);
    // Binding 1 (dy) is unused in the forward pass: x stands in for it.
    const Operand ox = operand(device, x, runtime::Access::read);
    const Operand oy = operand(device, y, runtime::Access::write);
    const ElementPush pc = element_push(x, ox.offset, ox.offset, oy.offset, activation_flags(act));
    seq.dispatch(k, {ox.binding, ox.binding, oy.binding}, &pc, sizeof(pc), element_groups(device, n));
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

    const runtime::Kernel& k = element_kernel(device, variant_name("activation", x.dtype, dx.dtype), 3);
    const Operand ox = operand(device, x, runtime::Access::read);
    const Operand ody = operand(device, dy, runtime::Access::read);
    const Operand odx = operand(device, dx, runtime::Access::write);
    const ElementPush pc =
        element_push(x, ox.offset, ody.offset, odx.offset, ACT_FLAG_BACKWARD | activation_flags(act));
    seq.dispatch(k, {ox.binding, ody.binding, odx.binding}, &pc, sizeof(pc), element_groups(device, n));
}

void record_cast(runtime::Device& device, runtime::Sequence& seq, const MatRef& src, const MatRef& dst, float scale) {
    check_operand(device, src, "cast", "src");
    check_operand(device, dst, "cast", "dst");
    const uint64_t n = element_count(src);
    VKT_CHECK(element_count(dst) == n, "cast: src has ", n, " elements (", src.rows, "x", src.cols, ") but dst has ",
              element_count(dst), " (", dst.rows, "x", dst.cols, ")");
    if (n == 0) return;

    const std::string variant = std::string("cast_") + dtype_name(src.dtype) + "_" + dtype_name(dst.dtype);
    const runtime::Kernel& k = element_kernel(device, variant, 2);
    const Operand os = operand(device, src, runtime::Access::read);
    const Operand od = operand(device, dst, runtime::Access::write);
    ElementPush pc = element_push(src, os.offset, od.offset, 0, scale != 1.0f ? FLAG_SCALE : 0u);
    std::memcpy(&pc.pad0, &scale, 4);
    seq.dispatch(k, {os.binding, od.binding}, &pc, sizeof(pc), element_groups(device, n));
}

void record_nonfinite_scan(runtime::Device& device, runtime::Sequence& seq, const MatRef& x,
                           const runtime::Buffer& flag) {
    check_operand(device, x, "nonfinite_scan", "x");
    VKT_CHECK(flag.valid() && flag.size() >= 4, "nonfinite_scan: the flag buffer must hold at least one uint32");
    const uint64_t n = element_count(x);
    if (n == 0) return;

    const runtime::Kernel& k = element_kernel(device, variant_name("nonfinite", x.dtype, x.dtype), 2);
    const Operand ox = operand(device, x, runtime::Access::read);
    const ElementPush pc = element_push(x, ox.offset);
    // read_write: the flag keeps what it held unless something non-finite is found.
    seq.dispatch(k, {ox.binding, {&flag, runtime::Access::read_write}}, &pc, sizeof(pc), element_groups(device, n));
}

} // namespace vktrain::kernels
