#include "kernels/launch.hpp"

#include <algorithm>

#include "common/check.hpp"
#include "runtime/device.hpp"

namespace vktrain::kernels {

void check_operand(const runtime::Device& device, const MatRef& m, const char* op, const char* what) {
    VKT_CHECK(m.buffer && m.buffer->valid(), op, ": ", what, " has no buffer");
    VKT_CHECK(m.count() <= k_max_elements, op, ": ", what, " has ", m.count(), " elements; at most 2^31 - 4096 are ",
              "supported");
    VKT_CHECK(m.byte_offset() + m.byte_size() <= m.buffer->size(), op, ": ", what, " (", m.rows, "x", m.cols, " ",
              dtype_name(m.dtype), " from element ", m.offset, ") overruns its buffer of ", m.buffer->size(), " bytes");
    VKT_CHECK(m.dtype != DType::f16 || device.fp16_enabled(), op, ": ", what,
              " is fp16 but 16-bit storage is not enabled on this device");
}

void check_operand(const runtime::Device& device, const MatRef& m, uint64_t count, const char* op, const char* what) {
    check_operand(device, m, op, what);
    VKT_CHECK(m.count() == count, op, ": ", what, " has ", m.count(), " elements (", m.rows, "x", m.cols,
              "), expected ", count);
}

uint32_t group_count(uint64_t units, uint32_t per_group) {
    return uint32_t(std::min<uint64_t>((units + per_group - 1) / per_group, k_max_groups));
}

uint32_t element_groups(const runtime::Device& device, uint64_t units) {
    // At most 256 items per invocation: on lavapipe 26 the scan and the fp32 -> fp16 cast over 4M elements ran 2x
    // slower on 16 workgroups than on 128 or more (bench/elementwise_bench.cpp --caps).
    const uint64_t longest = (units + uint64_t(k_elt_wg) * 256 - 1) / (uint64_t(k_elt_wg) * 256);
    const uint64_t cap = std::max<uint64_t>(device.element_group_cap(), longest);
    return uint32_t(std::min<uint64_t>(group_count(units, k_elt_wg), cap));
}

const runtime::Kernel& kernel(runtime::Device& device, const std::string& variant, uint32_t bindings,
                              uint32_t push_size) {
    runtime::KernelDesc desc;
    desc.variant = variant;
    desc.bindings = bindings;
    desc.push_size = push_size;
    return device.pipelines().get(desc);
}

std::string variant_name(const char* op, DType in, DType out) {
    std::string name = std::string(op) + "_" + dtype_name(in);
    if (out != in) name += std::string("_") + dtype_name(out);
    return name;
}

bool overlaps(const MatRef& a, const MatRef& b) {
    if (a.buffer != b.buffer || a.count() == 0 || b.count() == 0) return false;
    return a.byte_offset() < b.byte_offset() + b.byte_size() && b.byte_offset() < a.byte_offset() + a.byte_size();
}

bool same_view(const MatRef& a, const MatRef& b) {
    return a.buffer == b.buffer && a.dtype == b.dtype && a.offset == b.offset && a.count() == b.count();
}

void dispatch_operands(runtime::Device& device, runtime::Sequence& seq, const std::string& variant,
                       const OperandList& ops, uint32_t* offsets, const void* push, uint32_t push_size,
                       uint32_t groups) {
    std::vector<runtime::Binding> bindings;
    uint32_t k = 0;
    for (const auto& [m, access] : ops) {
        const Operand o = operand(device, *m, access);
        bindings.push_back(o.binding);
        offsets[k++] = o.offset; // written before the dispatch copies the push constants
    }
    seq.dispatch(kernel(device, variant, uint32_t(bindings.size()), push_size), bindings, push, push_size, groups);
}

} // namespace vktrain::kernels
