#include "kernels/plane.hpp"

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

void AdaptivePool2dShape::validate() const {
    VKT_CHECK(h >= 1 && w >= 1, "adaptive_avg_pool2d: input ", h, "x", w, " is empty");
    VKT_CHECK(oh >= 1 && ow >= 1, "adaptive_avg_pool2d: output ", oh, "x", ow, " must be at least 1x1");
    VKT_CHECK(uint64_t(h) * oh <= 0xffffffffull && uint64_t(w) * ow <= 0xffffffffull, "adaptive_avg_pool2d: ", h, "x",
              w, " to ", oh, "x", ow, " is too large (bin bounds overflow 32 bits)");
    const uint64_t planes = uint64_t(n) * c;
    VKT_CHECK(planes * h * w <= k_max_elements && planes * oh * ow <= k_max_elements, "adaptive_avg_pool2d: ", n, "x",
              c, "x", h, "x", w, " to ", oh, "x", ow, " has more than 2^31 - 4096 elements");
}

namespace {

constexpr uint32_t k_plane_wg = 64; // RED_WG of shaders/plane_sum.comp

// Measured on lavapipe 25 (PlaneTiming.GlobalAveragePool, 2 cores): the serial schedule wins at every shape, by far
// where planes are short (40960 planes of 49: 2.3 ms against 307 ms; a workgroup's barriers cost microseconds on a
// CPU device) and still at 128 planes of 12544 (2.4 ms against 10 ms). On GPUs (unmeasured here) a plane per
// invocation only fills the device when there are many planes; few long planes get a workgroup each.
PlaneSchedule plane_schedule(const runtime::Device& device, uint32_t planes, uint32_t inner) {
    if (device.caps().info.type == "cpu") return PlaneSchedule::serial;
    return planes >= 4096 || inner <= 64 ? PlaneSchedule::serial : PlaneSchedule::workgroup;
}

void check_same_type(const MatRef& in, const MatRef& out, const char* op, const char* in_name, const char* out_name) {
    VKT_CHECK(in.dtype == out.dtype, op, ": ", in_name, " is ", dtype_name(in.dtype), " but ", out_name, " is ",
              dtype_name(out.dtype), " (one storage type per call)");
    VKT_CHECK(!overlaps(in, out), op, ": ", out_name, " overlaps ", in_name);
}

void record_adaptive(runtime::Device& device, runtime::Sequence& seq, const char* op, const AdaptivePool2dShape& s,
                     const MatRef& in, const MatRef& out, bool backward, bool accumulate) {
    s.validate();
    const uint64_t in_count = uint64_t(s.n) * s.c * s.h * s.w, out_count = uint64_t(s.n) * s.c * s.oh * s.ow;
    check_operand(device, in, backward ? out_count : in_count, op, backward ? "dy" : "x");
    check_operand(device, out, backward ? in_count : out_count, op, backward ? "dx" : "y");
    check_same_type(in, out, op, backward ? "dy" : "x", backward ? "dx" : "y");
    const uint64_t n = backward ? in_count : out_count;
    if (n == 0) return;

    const Operand oi = operand(device, in, runtime::Access::read);
    const Operand oo = operand(device, out, accumulate ? runtime::Access::read_write : runtime::Access::write);
    PoolPush pc{};
    pc.planes = s.n * s.c;
    pc.h = s.h;
    pc.w = s.w;
    pc.oh = s.oh;
    pc.ow = s.ow;
    pc.flags = (backward ? POOL_FLAG_BACKWARD : 0u) | (accumulate ? FLAG_ACCUMULATE : 0u);
    pc.offset0 = oi.offset;
    pc.offset2 = oo.offset;
    const runtime::Kernel& k = kernel(device, variant_name("adaptive_pool", out.dtype, out.dtype), 2, sizeof(PoolPush));
    seq.dispatch(k, {oi.binding, oo.binding}, &pc, sizeof(pc), element_groups(device, n));
}

} // namespace

void record_adaptive_avg_pool2d(runtime::Device& device, runtime::Sequence& seq, const AdaptivePool2dShape& shape,
                                const MatRef& x, const MatRef& y, bool plane_reduction) {
    if (plane_reduction && shape.oh == 1 && shape.ow == 1) {
        // Global average pooling: the plane sums (their schedule measured against the per-output loop in
        // tests/device/test_plane.cpp's PlaneTiming.GlobalAveragePool).
        shape.validate();
        check_operand(device, x, uint64_t(shape.n) * shape.c * shape.h * shape.w, "adaptive_avg_pool2d", "x");
        record_plane_sum(device, seq, shape.n * shape.c, shape.h * shape.w, x, nullptr, y,
                         1.0f / float(uint64_t(shape.h) * shape.w));
        return;
    }
    record_adaptive(device, seq, "adaptive_avg_pool2d", shape, x, y, false, false);
}

void record_adaptive_avg_pool2d_backward(runtime::Device& device, runtime::Sequence& seq,
                                         const AdaptivePool2dShape& shape, const MatRef& dy, const MatRef& dx,
                                         bool accumulate) {
    record_adaptive(device, seq, "adaptive_avg_pool2d_backward", shape, dy, dx, true, accumulate);
}

void record_plane_sum(runtime::Device& device, runtime::Sequence& seq, uint32_t planes, uint32_t inner, const MatRef& a,
                      const MatRef* b, const MatRef& out, float scale, PlaneSchedule schedule) {
    const uint64_t count = uint64_t(planes) * inner;
    check_operand(device, a, count, "plane_sum", "a");
    if (b) check_operand(device, *b, count, "plane_sum", "b");
    check_operand(device, out, planes, "plane_sum", "out");
    check_same_type(a, out, "plane_sum", "a", "out");
    if (b) check_same_type(*b, out, "plane_sum", "b", "out");
    if (planes == 0) return;

    const Operand oa = operand(device, a, runtime::Access::read);
    const Operand ob = operand(device, b ? *b : a, runtime::Access::read);
    const Operand oo = operand(device, out, runtime::Access::write);
    ChannelPush pc{};
    pc.outer = planes;
    pc.channels = 1;
    pc.inner = inner;
    if (schedule == PlaneSchedule::automatic) schedule = plane_schedule(device, planes, inner);
    const bool serial = schedule == PlaneSchedule::serial;
    pc.flags = (b ? PLANE_FLAG_PRODUCT : 0u) | (serial ? PLANE_FLAG_SERIAL : 0u);
    pc.eps = scale;
    pc.offsets[0] = oa.offset;
    pc.offsets[1] = ob.offset;
    pc.offsets[2] = oo.offset;
    const runtime::Kernel& k = kernel(device, variant_name("plane_sum", out.dtype, out.dtype), 3, sizeof(ChannelPush));
    seq.dispatch(k, {oa.binding, ob.binding, oo.binding}, &pc, sizeof(pc),
                 group_count(planes, serial ? k_plane_wg : 1));
}

void record_channel_mul(runtime::Device& device, runtime::Sequence& seq, uint32_t planes, uint32_t inner,
                        const MatRef& x, const MatRef& s, const MatRef& out) {
    const uint64_t count = uint64_t(planes) * inner;
    check_operand(device, x, count, "channel_mul", "x");
    check_operand(device, s, planes, "channel_mul", "s");
    check_operand(device, out, count, "channel_mul", "out");
    check_same_type(x, out, "channel_mul", "x", "out");
    check_same_type(s, out, "channel_mul", "s", "out");
    if (count == 0) return;

    const Operand ox = operand(device, x, runtime::Access::read);
    const Operand os = operand(device, s, runtime::Access::read);
    const Operand oo = operand(device, out, runtime::Access::write);
    ElementPush pc{};
    pc.n = uint32_t(count);
    pc.rows = planes;
    pc.cols = inner;
    pc.offset0 = ox.offset;
    pc.offset1 = os.offset;
    pc.offset2 = oo.offset;
    const runtime::Kernel& k =
        kernel(device, variant_name("channel_mul", out.dtype, out.dtype), 3, sizeof(ElementPush));
    seq.dispatch(k, {ox.binding, os.binding, oo.binding}, &pc, sizeof(pc), element_groups(device, count));
}

} // namespace vktrain::kernels
