#include "kernels/tensor.hpp"

#include <algorithm>

#include "runtime/device.hpp"

namespace vktrain::kernels {

// The view's bytes are bound from the nearest offset below them that the device accepts for a storage
// buffer descriptor; the shader adds the few elements in between. Bound ranges cover only what the view
// touches, so per-range hazard tracking in Sequence sees disjoint views of one arena as independent, and
// no descriptor exceeds maxStorageBufferRange unless the view itself does (which Sequence reports).
Operand operand(const runtime::Device& device, const MatRef& m, runtime::Access access) {
    VKT_CHECK(m.buffer && m.buffer->valid(), "kernel operand has no buffer");
    const uint64_t lo = m.byte_offset(), size = m.byte_size();
    VKT_CHECK(lo + size <= m.buffer->size(), "a ", m.rows, "x", m.cols, " ", dtype_name(m.dtype), " view from element ",
              m.offset, " overruns its buffer of ", m.buffer->size(), " bytes");
    Operand op;
    op.binding.buffer = m.buffer;
    op.binding.access = access;
    if (size == 0) { // empty views are never dispatched; bind something valid
        op.binding.offset = 0;
        op.binding.range = VK_WHOLE_SIZE;
        return op;
    }
    const uint64_t align = std::max<uint64_t>(device.caps().min_storage_buffer_offset_alignment, 1);
    const uint64_t base = lo / align * align;
    op.binding.offset = base;
    op.binding.range = lo + size - base;
    op.offset = uint32_t((lo - base) / dtype_size(m.dtype));
    return op;
}

} // namespace vktrain::kernels
