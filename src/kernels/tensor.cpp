#include "kernels/tensor.hpp"

#include <algorithm>

#include "runtime/device.hpp"

namespace vktrain::kernels {

// Descriptors cover wide windows of a buffer rather than exactly the bytes a view touches, so the dispatches of a
// recording bind few distinct ranges and share few descriptor sets (Sequence keeps one per distinct layout and ranges):
// some drivers map memory for every set, and a process may hold only so many maps (issue 21: a set per dispatch
// crashed lavapipe at about 25,000 ops). A buffer that fits one window is bound whole; a larger one in windows of
// k_window bytes (at most maxStorageBufferRange) starting every half window, so every view of up to half a window
// lies inside one of them; a larger view is bound from the nearest offset below it that the device accepts, as
// before. The shader adds the view's element offset inside the window (below 2^28 bytes, so every index it forms
// stays far inside 32 bits). Hazards are tracked on the bytes the view touches (Binding::used_lo/used_hi), so two ops
// on disjoint parts of one arena still need no barrier between them, and no descriptor exceeds
// maxStorageBufferRange unless the view itself does (which Sequence reports).
namespace {
constexpr uint64_t k_window = uint64_t(1) << 28;
} // namespace

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
    const uint64_t hi = lo + size, buffer_size = m.buffer->size();
    // Offsets a multiple of the device's alignment and of 16 bytes (so the element offset inside is whole).
    const uint64_t align = std::max<uint64_t>(device.caps().min_storage_buffer_offset_alignment, 16);
    const uint64_t max_range = device.caps().max_storage_buffer_range;
    const uint64_t window = std::min(max_range == 0 ? k_window : max_range, k_window) / align * align;
    uint64_t base = 0, range = 0;
    if (buffer_size <= window) {
        range = buffer_size;
    } else if (const uint64_t step = std::max(window / 2 / align * align, align); hi - lo / step * step <= window) {
        base = lo / step * step;
        range = std::min(window, buffer_size - base);
    } else {
        const uint64_t exact = std::max<uint64_t>(device.caps().min_storage_buffer_offset_alignment, 1);
        base = lo / exact * exact;
        range = hi - base;
    }
    op.binding.offset = base;
    op.binding.range = range;
    op.binding.used_lo = lo;
    op.binding.used_hi = hi;
    op.offset = uint32_t((lo - base) / dtype_size(m.dtype));
    return op;
}

} // namespace vktrain::kernels
