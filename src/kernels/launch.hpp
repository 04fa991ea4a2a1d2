// What every record_* function needs before it dispatches: operand checks with one-line messages, the
// workgroup count under the 65535 limit, and the pipeline of a variant. Internal to src/kernels.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/tensor.hpp"
#include "runtime/pipeline.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

constexpr uint32_t k_max_groups = 65535; // the guaranteed maxComputeWorkGroupCount[0]
constexpr uint32_t k_elt_wg = 128;       // ELT_WG of shaders/elementwise.glsl
// Shader indices are 32-bit: an operand's elements plus its offset inside the bound range (below 4096,
// see operand()) must stay below 2^31 so that no index or grid-stride step wraps.
constexpr uint64_t k_max_elements = (1ull << 31) - 4096;

// `m` has a buffer, at most k_max_elements elements, lies inside its buffer, and is fp16 only where the
// device stores fp16. `op` and `what` name the kernel and the operand in the message.
void check_operand(const runtime::Device& device, const MatRef& m, const char* op, const char* what);

// check_operand, and m holds exactly `count` elements (any rows × cols factorisation).
void check_operand(const runtime::Device& device, const MatRef& m, uint64_t count, const char* op, const char* what);

// Workgroups for `units` work items at `per_group` each, capped at 65535 (the shaders loop beyond).
uint32_t group_count(uint64_t units, uint32_t per_group);
// Workgroups of ELT_WG invocations for a grid-stride kernel (FOR_EACH_ELEMENT of shaders/elementwise.glsl) over
// `units` items: one invocation per item, at most the device's element_group_cap() workgroups (each then loops), but
// never more than 256 items per invocation.
uint32_t element_groups(const runtime::Device& device, uint64_t units);

// The pipeline of a variant of shaders/variants.txt with `bindings` storage buffers and `push_size` bytes of
// push constants.
const runtime::Kernel& kernel(runtime::Device& device, const std::string& variant, uint32_t bindings,
                              uint32_t push_size);

// "<op>_<in>" when both types agree, else "<op>_<in>_<out>" (the naming of shaders/variants.txt).
std::string variant_name(const char* op, DType in, DType out);

// True when the byte ranges of a and b (on one buffer) overlap.
bool overlaps(const MatRef& a, const MatRef& b);

// The same elements in the same type: an exact alias (what in-place kernels accept).
bool same_view(const MatRef& a, const MatRef& b);

using OperandList = std::vector<std::pair<const MatRef*, runtime::Access>>;

// Binds `ops` in order (binding k = ops[k]) and dispatches `groups` workgroups, with `offsets[k]` set to operand k's
// element offset in its bound range: for push structs that carry an offsets array (ChannelPush, NormPush).
void dispatch_operands(runtime::Device& device, runtime::Sequence& seq, const std::string& variant,
                       const OperandList& ops, uint32_t* offsets, const void* push, uint32_t push_size,
                       uint32_t groups);
template <typename Push>
void dispatch_operands(runtime::Device& device, runtime::Sequence& seq, const std::string& variant, Push& pc,
                       const OperandList& ops, uint32_t groups) {
    dispatch_operands(device, seq, variant, ops, pc.offsets, &pc, uint32_t(sizeof(Push)), groups);
}

} // namespace vktrain::kernels
