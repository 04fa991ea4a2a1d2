#include "kernels/attention_decode.hpp"

#include <cmath>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(AttnDecodePush) == 12 * 4, "AttnDecodePush layout must match shaders/push_constants.h");

void record_attention_decode(runtime::Device& device, runtime::Sequence& seq, const MatRef& qkv, const MatRef& position,
                             const MatRef& k_cache, const MatRef& v_cache, const MatRef& out, uint32_t heads,
                             uint32_t max_positions) {
    const char* op = "attention_decode";
    const uint64_t width = out.count();
    VKT_CHECK(heads > 0 && width % heads == 0, op, ": width ", width, " is not a multiple of ", heads, " heads");
    VKT_CHECK(max_positions > 0, op, ": max_positions must be positive");
    VKT_CHECK(qkv.dtype == out.dtype, op, ": qkv is ", dtype_name(qkv.dtype), " but out is ", dtype_name(out.dtype));
    VKT_CHECK(k_cache.dtype == DType::f32 && v_cache.dtype == DType::f32 && position.dtype == DType::f32, op,
              ": caches must be f32 and the position a 4-byte int32");
    check_operand(device, qkv, 3 * width, op, "qkv");
    check_operand(device, position, 1, op, "position");
    check_operand(device, k_cache, uint64_t(max_positions) * width, op, "k_cache");
    check_operand(device, v_cache, uint64_t(max_positions) * width, op, "v_cache");
    check_operand(device, out, width, op, "out");
    VKT_CHECK(!overlaps(k_cache, v_cache) && !overlaps(out, qkv), op, ": operands overlap");

    const runtime::Kernel& k = kernel(device, variant_name(op, qkv.dtype, out.dtype), 5, sizeof(AttnDecodePush));
    const Operand oq = operand(device, qkv, runtime::Access::read);
    const Operand op_ = operand(device, position, runtime::Access::read);
    const Operand ok = operand(device, k_cache, runtime::Access::read_write);
    const Operand ov = operand(device, v_cache, runtime::Access::read_write);
    const Operand oo = operand(device, out, runtime::Access::write);
    AttnDecodePush pc{};
    pc.heads = heads;
    pc.head_size = uint32_t(width / heads);
    pc.width = uint32_t(width);
    pc.max_positions = max_positions;
    pc.scale = float(1.0 / std::sqrt(double(pc.head_size)));
    pc.offset_qkv = oq.offset;
    pc.offset_pos = op_.offset;
    pc.offset_k = ok.offset;
    pc.offset_v = ov.offset;
    pc.offset_out = oo.offset;
    seq.dispatch(k, {oq.binding, op_.binding, ok.binding, ov.binding, oo.binding}, &pc, sizeof(pc), heads);
}

} // namespace vktrain::kernels
