#include "kernels/attention_decode.hpp"

#include <cmath>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(AttnDecodePush) == 16 * 4, "AttnDecodePush layout must match shaders/push_constants.h");

void record_attention_decode(runtime::Device& device, runtime::Sequence& seq, const MatRef& q, const MatRef& k,
                             const MatRef& v, const MatRef& position, const MatRef& k_cache, const MatRef& v_cache,
                             const MatRef& out, const AttentionDecodeShape& s) {
    const char* op = "attention_decode";
    VKT_CHECK(s.heads > 0 && s.kv_heads > 0 && s.heads % s.kv_heads == 0, op, ": kv_heads ", s.kv_heads,
              " does not divide heads ", s.heads);
    VKT_CHECK(s.head_size > 0 && s.head_size <= attention_decode_max_head, op, ": head size ", s.head_size,
              " is outside 1..", attention_decode_max_head);
    VKT_CHECK(s.rope_theta <= 0.0f || s.head_size % 2 == 0, op, ": rotary embeddings need an even head size, got ",
              s.head_size);
    VKT_CHECK(s.max_positions > 0, op, ": max_positions must be positive");
    VKT_CHECK(q.dtype == out.dtype && k.dtype == out.dtype && v.dtype == out.dtype, op, ": q is ", dtype_name(q.dtype),
              " but out is ", dtype_name(out.dtype));
    VKT_CHECK(k_cache.dtype == DType::f32 && v_cache.dtype == DType::f32 && position.dtype == DType::f32, op,
              ": caches must be f32 and the position a 4-byte int32");
    const uint64_t width = uint64_t(s.heads) * s.head_size, kv_width = uint64_t(s.kv_heads) * s.head_size;
    check_operand(device, q, width, op, "q");
    check_operand(device, k, kv_width, op, "k");
    check_operand(device, v, kv_width, op, "v");
    check_operand(device, position, 1, op, "position");
    check_operand(device, k_cache, uint64_t(s.max_positions) * kv_width, op, "k_cache");
    check_operand(device, v_cache, uint64_t(s.max_positions) * kv_width, op, "v_cache");
    check_operand(device, out, width, op, "out");
    VKT_CHECK(!overlaps(k_cache, v_cache) && !overlaps(out, q) && !overlaps(out, k) && !overlaps(out, v), op,
              ": operands overlap");

    const runtime::Kernel& kern = kernel(device, variant_name(op, q.dtype, out.dtype), 7, sizeof(AttnDecodePush));
    const Operand oq = operand(device, q, runtime::Access::read);
    const Operand ok = operand(device, k, runtime::Access::read);
    const Operand ov = operand(device, v, runtime::Access::read);
    const Operand op_ = operand(device, position, runtime::Access::read);
    const Operand okc = operand(device, k_cache, runtime::Access::read_write);
    const Operand ovc = operand(device, v_cache, runtime::Access::read_write);
    const Operand oo = operand(device, out, runtime::Access::write);
    AttnDecodePush pc{};
    pc.heads = s.heads;
    pc.kv_heads = s.kv_heads;
    pc.head_size = s.head_size;
    pc.max_positions = s.max_positions;
    pc.scale = float(1.0 / std::sqrt(double(s.head_size)));
    if (s.rope_theta > 0.0f) { // as kernels::record_rotary forms it, so both paths turn by the same angles
        const double log2_theta = std::log2(double(s.rope_theta));
        pc.log2_theta = float(log2_theta);
        pc.log2_theta_lo = float(log2_theta - double(pc.log2_theta));
        pc.flags = ATTN_DECODE_FLAG_ROTARY;
    }
    pc.offset_q = oq.offset;
    pc.offset_k = ok.offset;
    pc.offset_v = ov.offset;
    pc.offset_pos = op_.offset;
    pc.offset_kc = okc.offset;
    pc.offset_vc = ovc.offset;
    pc.offset_out = oo.offset;
    seq.dispatch(kern, {oq.binding, ok.binding, ov.binding, op_.binding, okc.binding, ovc.binding, oo.binding}, &pc,
                 sizeof(pc), s.heads);
}

} // namespace vktrain::kernels
