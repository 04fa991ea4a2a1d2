#include "kernels/pool.hpp"

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(PoolPush) == 16 * 4, "PoolPush layout must match shaders/push_constants.h");

uint32_t Pool2dShape::out_h() const {
    VKT_CHECK(stride_h >= 1 && h + 2ull * pad_h >= kh, "pool2d: no output rows (h ", h, ", pad ", pad_h, ", kernel ",
              kh, ", stride ", stride_h, ")");
    return uint32_t((h + 2ull * pad_h - kh) / stride_h + 1);
}

uint32_t Pool2dShape::out_w() const {
    VKT_CHECK(stride_w >= 1 && w + 2ull * pad_w >= kw, "pool2d: no output columns (w ", w, ", pad ", pad_w, ", kernel ",
              kw, ", stride ", stride_w, ")");
    return uint32_t((w + 2ull * pad_w - kw) / stride_w + 1);
}

void Pool2dShape::validate() const {
    VKT_CHECK(kh >= 1 && kw >= 1, "pool2d: kernel ", kh, "x", kw, " must be at least 1x1");
    VKT_CHECK(stride_h >= 1 && stride_w >= 1, "pool2d: stride ", stride_h, "x", stride_w, " must be at least 1x1");
    VKT_CHECK(pad_h <= kh / 2 && pad_w <= kw / 2, "pool2d: padding ", pad_h, "x", pad_w, " exceeds half the kernel ",
              kh, "x", kw);
    VKT_CHECK(h >= 1 && w >= 1, "pool2d: input ", h, "x", w, " is empty");
    VKT_CHECK(h + 2ull * pad_h >= kh && w + 2ull * pad_w >= kw, "pool2d: the padded input ", h + 2ull * pad_h, "x",
              w + 2ull * pad_w, " is smaller than the kernel ", kh, "x", kw);
    const uint64_t planes = uint64_t(n) * c;
    VKT_CHECK(planes * h * w <= k_max_elements && planes * out_h() * out_w() <= k_max_elements, "pool2d: ", n, "x", c,
              "x", h, "x", w, " has more than 2^31 - 4096 elements");
}

namespace {

// Checks the operands of one pooling call and dispatches pool2d.comp. `x` stands in for dy in the forward
// pass and dy for x in average backward (the shader does not read them there).
void record_pool(runtime::Device& device, runtime::Sequence& seq, const char* op, const Pool2dShape& s, uint32_t flags,
                 const MatRef* x, const MatRef* dy, const MatRef& out, bool accumulate) {
    s.validate();
    const uint64_t in_count = uint64_t(s.n) * s.c * s.h * s.w;
    const uint64_t out_count = uint64_t(s.n) * s.c * s.out_h() * s.out_w();
    const bool backward = (flags & POOL_FLAG_BACKWARD) != 0;
    if (x) check_operand(device, *x, in_count, op, "x");
    if (dy) check_operand(device, *dy, out_count, op, "dy");
    check_operand(device, out, backward ? in_count : out_count, op, backward ? "dx" : "y");
    for (const MatRef* in : {x, dy}) {
        if (!in) continue;
        VKT_CHECK(in->dtype == out.dtype, op, ": ", in == x ? "x" : "dy", " is ", dtype_name(in->dtype), " but ",
                  backward ? "dx" : "y", " is ", dtype_name(out.dtype), " (one storage type per call)");
        VKT_CHECK(!overlaps(*in, out), op, ": ", backward ? "dx" : "y", " overlaps ", in == x ? "x" : "dy");
    }
    const uint64_t n = backward ? in_count : out_count;
    if (n == 0) return;

    const MatRef& first = x ? *x : *dy;
    const MatRef& second = dy ? *dy : *x;
    const Operand o0 = operand(device, first, runtime::Access::read);
    const Operand o1 = operand(device, second, runtime::Access::read);
    const Operand o2 = operand(device, out, accumulate ? runtime::Access::read_write : runtime::Access::write);
    PoolPush pc{};
    pc.planes = s.n * s.c;
    pc.h = s.h;
    pc.w = s.w;
    pc.oh = s.out_h();
    pc.ow = s.out_w();
    pc.kh = s.kh;
    pc.kw = s.kw;
    pc.stride_h = s.stride_h;
    pc.stride_w = s.stride_w;
    pc.pad_h = s.pad_h;
    pc.pad_w = s.pad_w;
    pc.flags = flags | (accumulate ? FLAG_ACCUMULATE : 0u);
    pc.offset0 = o0.offset;
    pc.offset1 = o1.offset;
    pc.offset2 = o2.offset;
    const runtime::Kernel& k = kernel(device, variant_name("pool2d", out.dtype, out.dtype), 3, sizeof(PoolPush));
    seq.dispatch(k, {o0.binding, o1.binding, o2.binding}, &pc, sizeof(pc), element_groups(device, n));
}

} // namespace

void record_max_pool2d(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape, const MatRef& x,
                       const MatRef& y) {
    record_pool(device, seq, "max_pool2d", shape, POOL_FLAG_MAX, &x, nullptr, y, false);
}

void record_max_pool2d_backward(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape,
                                const MatRef& x, const MatRef& dy, const MatRef& dx, bool accumulate) {
    record_pool(device, seq, "max_pool2d_backward", shape, POOL_FLAG_MAX | POOL_FLAG_BACKWARD, &x, &dy, dx, accumulate);
}

void record_avg_pool2d(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape, const MatRef& x,
                       const MatRef& y) {
    record_pool(device, seq, "avg_pool2d", shape, 0u, &x, nullptr, y, false);
}

void record_avg_pool2d_backward(runtime::Device& device, runtime::Sequence& seq, const Pool2dShape& shape,
                                const MatRef& dy, const MatRef& dx, bool accumulate) {
    record_pool(device, seq, "avg_pool2d_backward", shape, POOL_FLAG_BACKWARD, nullptr, &dy, dx, accumulate);
}

} // namespace vktrain::kernels
