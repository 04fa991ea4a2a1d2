#include "kernels/copy.hpp"

#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(CopyPush) == (4 + 3 * COPY_DIMS) * 4, "CopyPush layout must match shaders/push_constants.h");

std::vector<uint64_t> contiguous_strides(const std::vector<uint64_t>& shape) {
    std::vector<uint64_t> s(shape.size(), 1);
    for (size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * shape[d];
    return s;
}

namespace {
// The largest element index a view addresses over `shape` (shape has no zero dimension).
uint64_t last_index(const std::vector<uint64_t>& shape, const StridedView& v) {
    uint64_t last = v.offset;
    for (size_t d = 0; d < shape.size(); ++d) last += (shape[d] - 1) * v.stride[d];
    return last;
}
} // namespace

void record_strided_copy(runtime::Device& device, runtime::Sequence& seq, const std::vector<uint64_t>& shape,
                         const MatRef& src, const StridedView& src_view, const MatRef& dst, const StridedView& dst_view,
                         bool accumulate) {
    VKT_CHECK(!shape.empty() && shape.size() <= COPY_DIMS, "strided_copy: 1 to ", COPY_DIMS, " dimensions, got ",
              shape.size());
    VKT_CHECK(src_view.stride.size() == shape.size() && dst_view.stride.size() == shape.size(),
              "strided_copy: one stride per dimension");
    check_operand(device, src, "strided_copy", "src");
    check_operand(device, dst, "strided_copy", "dst");
    VKT_CHECK(src.dtype == dst.dtype, "strided_copy: src is ", dtype_name(src.dtype), ", dst ", dtype_name(dst.dtype));
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    if (n == 0) return;
    VKT_CHECK(last_index(shape, src_view) < src.count(), "strided_copy: the source view leaves its ", src.count(),
              " elements");
    VKT_CHECK(last_index(shape, dst_view) < dst.count(), "strided_copy: the destination view leaves its ", dst.count(),
              " elements");
    VKT_CHECK(n <= k_max_elements, "strided_copy: ", n, " elements; at most ", k_max_elements);
    const Operand os = operand(device, src, runtime::Access::read);
    const Operand od = operand(device, dst, accumulate ? runtime::Access::read_write : runtime::Access::write);
    CopyPush pc{};
    pc.n = uint32_t(n);
    pc.src_offset = uint32_t(os.offset + src_view.offset);
    pc.dst_offset = uint32_t(od.offset + dst_view.offset);
    pc.accumulate = accumulate ? 1u : 0u;
    const size_t lead = COPY_DIMS - shape.size();
    for (size_t d = 0; d < COPY_DIMS; ++d) {
        pc.size[d] = d < lead ? 1u : uint32_t(shape[d - lead]);
        pc.src_stride[d] = d < lead ? 0u : uint32_t(src_view.stride[d - lead]);
        pc.dst_stride[d] = d < lead ? 0u : uint32_t(dst_view.stride[d - lead]);
    }
    const runtime::Kernel& k = kernel(device, variant_name("strided_copy", src.dtype, src.dtype), 2, sizeof(pc));
    seq.dispatch(k, {os.binding, od.binding}, &pc, sizeof(pc), element_groups(device, n));
}

} // namespace vktrain::kernels
