#include "kernels/flash_attention.hpp"

#include <algorithm>
#include <string>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(FlashAttentionPush) == 24 * 4, "FlashAttentionPush layout must match shaders/push_constants.h");

namespace {

// Floats per shared-memory block array: two of them plus two KB-float rows fit the 16 KiB every device has.
constexpr uint32_t k_block_floats = 1792;

uint32_t block_rows(uint32_t head_size) {
    return std::clamp(k_block_floats / head_size, 1u, 64u);
}

uint64_t shared_bytes(uint32_t head_size) {
    const uint64_t kb = block_rows(head_size);
    return (2 * kb * head_size + 2 * kb) * 4;
}

const char* input_name(int which) {
    return which == 0 ? "q" : which == 1 ? "k" : "v";
}

// Each of q, k and v (or their gradients) holds batch·seq rows of its heads' columns within its leading dimension.
void check_operands(const runtime::Device& device, const AttentionShape& shape, const AttentionOperand* const ops[3],
                    const char* op, const char* prefix) {
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    for (int which = 0; which < 3; ++which) {
        const AttentionOperand* x = ops[which];
        if (x == nullptr) continue;
        const std::string what = prefix + std::string(input_name(which));
        const uint64_t width = which == 0 ? shape.channels() : shape.kv_channels();
        check_operand(device, x->mat, op, what.c_str());
        VKT_CHECK(x->col0 + width <= x->ld && x->mat.count() >= rows * x->ld, op, ": ", what, " holds ", x->mat.count(),
                  " elements; ", rows, " rows of ", x->ld, " with ", width, " columns from ", x->col0, " do not fit");
        VKT_CHECK(x->ld <= k_max_elements, op, ": ", what, "'s rows of ", x->ld, " elements are too long");
    }
}

void check_common(const runtime::Device& device, const AttentionShape& shape, const AttentionQkv& in, const MatRef& out,
                  const MatRef& lse, const char* op) {
    shape.validate();
    VKT_CHECK(flash_attention_supported(device, shape), op, ": head size ", shape.head_size,
              " is not supported by the fused kernels (at most ", k_flash_max_head_size, ")");
    const AttentionOperand* ops[3] = {&in.q, &in.k, &in.v};
    check_operands(device, shape, ops, op, "");
    const uint64_t rows = uint64_t(shape.batch) * shape.seq;
    check_operand(device, out, rows * shape.channels(), op, "out");
    check_operand(device, lse, uint64_t(shape.batch) * shape.heads * shape.seq, op, "lse");
    VKT_CHECK(lse.dtype == DType::f32, op, ": lse must be f32");
    const DType act = in.q.mat.dtype;
    for (const auto& [m, what] : {std::pair{&in.k.mat, "k"}, {&in.v.mat, "v"}, {&out, "out"}})
        VKT_CHECK(m->dtype == act, op, ": ", what, " is ", dtype_name(m->dtype), " but q is ", dtype_name(act));
    VKT_CHECK(uint64_t(shape.seq) <= uint64_t(k_max_groups) * FLASH_WG, op, ": ", shape.seq, " positions exceed ",
              uint64_t(k_max_groups) * FLASH_WG);
}

FlashAttentionPush push(const AttentionShape& shape, uint32_t flags) {
    FlashAttentionPush pc{};
    pc.batch = shape.batch;
    pc.seq = shape.seq;
    pc.heads = shape.heads;
    pc.kv_heads = shape.kv();
    pc.flags = flags | (shape.causal ? FLASH_FLAG_CAUSAL : 0u);
    pc.scale = shape.scale();
    return pc;
}

const runtime::Kernel& flash_kernel(runtime::Device& device, const char* op, DType type, uint32_t bindings,
                                    uint32_t head_size) {
    runtime::KernelDesc desc;
    desc.variant = variant_name(op, type, type);
    desc.bindings = bindings;
    desc.push_size = sizeof(FlashAttentionPush);
    desc.spec = {head_size, block_rows(head_size)};
    return device.pipelines().get(desc);
}

// Binds `ops` in order, offsets[k] = the operand's first element (plus its first column) in the bound range.
void dispatch(runtime::Device& device, runtime::Sequence& seq, const runtime::Kernel& k, FlashAttentionPush& pc,
              const std::vector<std::tuple<const MatRef*, uint64_t, runtime::Access>>& ops, uint32_t groups_x,
              uint64_t items) {
    std::vector<runtime::Binding> bindings;
    uint32_t i = 0;
    for (const auto& [m, col0, access] : ops) {
        const Operand o = operand(device, *m, access);
        bindings.push_back(o.binding);
        pc.offsets[i++] = uint32_t(o.offset + col0);
    }
    seq.dispatch(k, bindings, &pc, sizeof(pc), groups_x, uint32_t(std::min<uint64_t>(items, k_max_groups)));
}

} // namespace

bool flash_attention_supported(const runtime::Device& device, const AttentionShape& shape) {
    return shape.head_size > 0 && shape.head_size <= k_flash_max_head_size &&
           shared_bytes(shape.head_size) <= device.caps().info.max_shared_memory;
}

void record_flash_attention(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                            const AttentionQkv& in, const MatRef& out, const MatRef& lse) {
    const char* op = "flash_attention";
    check_common(device, shape, in, out, lse, op);
    for (const auto& [m, what] : {std::pair{&out, "out"}, {&lse, "lse"}})
        for (const MatRef* other : {&in.q.mat, &in.k.mat, &in.v.mat, &out, &lse})
            VKT_CHECK(m == other || !overlaps(*m, *other), op, ": ", what, " overlaps another operand");
    if (uint64_t(shape.batch) * shape.seq == 0) return;
    FlashAttentionPush pc = push(shape, 0);
    pc.ld[0] = uint32_t(in.q.ld);
    pc.ld[1] = uint32_t(in.k.ld);
    pc.ld[2] = uint32_t(in.v.ld);
    pc.ld[3] = uint32_t(shape.channels());
    using runtime::Access;
    dispatch(device, seq, flash_kernel(device, "flash_attention", in.q.mat.dtype, 5, shape.head_size), pc,
             {{&in.q.mat, in.q.col0, Access::read},
              {&in.k.mat, in.k.col0, Access::read},
              {&in.v.mat, in.v.col0, Access::read},
              {&out, 0, Access::write},
              {&lse, 0, Access::write}},
             (shape.seq + FLASH_WG - 1) / FLASH_WG, uint64_t(shape.batch) * shape.heads);
}

void record_flash_attention_backward(runtime::Device& device, runtime::Sequence& seq, const AttentionShape& shape,
                                     const AttentionQkv& in, const MatRef& out, const MatRef& lse, const MatRef& dout,
                                     const AttentionOperand* dq, const AttentionOperand* dk, const AttentionOperand* dv,
                                     bool accumulate) {
    const char* op = "flash_attention_backward";
    check_common(device, shape, in, out, lse, op);
    check_operand(device, dout, uint64_t(shape.batch) * shape.seq * shape.channels(), op, "dout");
    VKT_CHECK(dout.dtype == in.q.mat.dtype, op, ": dout is ", dtype_name(dout.dtype), " but q is ",
              dtype_name(in.q.mat.dtype));
    const AttentionOperand* grads[3] = {dq, dk, dv};
    check_operands(device, shape, grads, op, "d");
    for (int which = 0; which < 3; ++which) {
        if (grads[which] == nullptr) continue;
        const MatRef& g = grads[which]->mat;
        VKT_CHECK(g.dtype == in.q.mat.dtype, op, ": d", input_name(which), " is ", dtype_name(g.dtype), " but q is ",
                  dtype_name(in.q.mat.dtype));
        for (const MatRef* other : {&in.q.mat, &in.k.mat, &in.v.mat, &out, &lse, &dout})
            VKT_CHECK(!overlaps(g, *other), op, ": d", input_name(which), " overlaps another operand");
    }
    if (uint64_t(shape.batch) * shape.seq == 0) return;
    using runtime::Access;
    const Access gacc = accumulate ? Access::read_write : Access::write;
    const uint32_t groups_x = (shape.seq + FLASH_WG - 1) / FLASH_WG;
    const DType type = in.q.mat.dtype;
    const auto lds = [&](FlashAttentionPush& pc) {
        pc.ld[0] = uint32_t(in.q.ld);
        pc.ld[1] = uint32_t(in.k.ld);
        pc.ld[2] = uint32_t(in.v.ld);
        pc.ld[3] = uint32_t(shape.channels());
    };
    const uint32_t acc = accumulate ? FLAG_ACCUMULATE : 0u;
    if (dq != nullptr) {
        FlashAttentionPush pc = push(shape, acc);
        lds(pc);
        pc.ld[4] = uint32_t(dq->ld);
        // Binding 7 is unused by the dq kernel: bound to dq again.
        dispatch(device, seq, flash_kernel(device, "flash_attention_dq", type, 8, shape.head_size), pc,
                 {{&in.q.mat, in.q.col0, Access::read},
                  {&in.k.mat, in.k.col0, Access::read},
                  {&in.v.mat, in.v.col0, Access::read},
                  {&out, 0, Access::read},
                  {&lse, 0, Access::read},
                  {&dout, 0, Access::read},
                  {&dq->mat, dq->col0, gacc},
                  {&dq->mat, dq->col0, gacc}},
                 groups_x, uint64_t(shape.batch) * shape.heads);
    }
    if (dk != nullptr || dv != nullptr) {
        FlashAttentionPush pc = push(shape, acc | (dk ? FLASH_FLAG_DK : 0u) | (dv ? FLASH_FLAG_DV : 0u));
        lds(pc);
        const AttentionOperand& g0 = dk ? *dk : *dv;
        const AttentionOperand& g1 = dv ? *dv : *dk;
        pc.ld[4] = uint32_t(g0.ld);
        pc.ld[5] = uint32_t(g1.ld);
        dispatch(device, seq, flash_kernel(device, "flash_attention_dkv", type, 8, shape.head_size), pc,
                 {{&in.q.mat, in.q.col0, Access::read},
                  {&in.k.mat, in.k.col0, Access::read},
                  {&in.v.mat, in.v.col0, Access::read},
                  {&out, 0, Access::read},
                  {&lse, 0, Access::read},
                  {&dout, 0, Access::read},
                  {&g0.mat, g0.col0, gacc},
                  {&g1.mat, g1.col0, gacc}},
                 groups_x, uint64_t(shape.batch) * shape.kv());
    }
}

} // namespace vktrain::kernels
