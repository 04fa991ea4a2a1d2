#include "kernels/rotary.hpp"

#include <cmath>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(RotaryPush) == 9 * 4, "RotaryPush layout must match shaders/push_constants.h");

void record_rotary(runtime::Device& device, runtime::Sequence& seq, const RotaryShape& shape, const MatRef& x,
                   const MatRef& out, bool inverse, bool accumulate) {
    VKT_CHECK(shape.positions > 0 && shape.heads > 0, "rotary: positions and heads must be positive");
    VKT_CHECK(shape.head_size > 0 && shape.head_size % 2 == 0, "rotary: the head size ", shape.head_size,
              " is not a positive even number");
    VKT_CHECK(std::isfinite(shape.theta) && shape.theta > 0.0f, "rotary: theta ", shape.theta,
              " is not a positive number");
    check_operand(device, x, "rotary", "x");
    check_operand(device, out, x.count(), "rotary", "out");
    VKT_CHECK(x.dtype == out.dtype, "rotary: x is ", dtype_name(x.dtype), " but out is ", dtype_name(out.dtype),
              " (one storage type per call)");
    const uint64_t row = uint64_t(shape.heads) * shape.head_size;
    VKT_CHECK(x.count() % (row * shape.positions) == 0, "rotary: ", x.count(), " elements are not whole samples of ",
              shape.positions, " rows of ", row);
    VKT_CHECK(accumulate ? !overlaps(x, out) : same_view(x, out) || !overlaps(x, out),
              "rotary: out overlaps x without being the same view (or while accumulating)");
    const uint64_t pairs = x.count() / 2;
    if (pairs == 0) return;

    const Operand ox = operand(device, x, runtime::Access::read);
    const Operand oo = operand(device, out, accumulate ? runtime::Access::read_write : runtime::Access::write);
    RotaryPush pc{};
    pc.pairs = uint32_t(pairs);
    pc.positions = shape.positions;
    pc.heads = shape.heads;
    pc.half_size = shape.head_size / 2;
    const double log2_theta = std::log2(double(shape.theta));
    pc.log2_theta = float(log2_theta);
    pc.log2_theta_lo = float(log2_theta - double(pc.log2_theta));
    pc.flags = (inverse ? ROTARY_FLAG_INVERSE : 0u) | (accumulate ? FLAG_ACCUMULATE : 0u);
    pc.offset0 = ox.offset;
    pc.offset1 = oo.offset;
    const runtime::Kernel& k = kernel(device, variant_name("rotary", x.dtype, out.dtype), 2, sizeof(RotaryPush));
    seq.dispatch(k, {ox.binding, oo.binding}, &pc, sizeof(pc), element_groups(device, pairs));
}

} // namespace vktrain::kernels
