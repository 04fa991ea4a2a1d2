#include "kernels/flash_attention.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include "common/check.hpp"
#include "kernels/gemm.hpp"
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

// The cooperative-matrix kernels' blocks: B query and B key rows (a multiple of each of the device's TM, TN and
// TK, at least 16 where it fits), head columns padded to HDP (a multiple of TN and TK), a few subgroups.
struct CoopConfig {
    uint32_t rows = 0, hdp = 0, tm = 0, tn = 0, tk = 0, wg = 0, required_subgroup_size = 0;
};

// What flash_attention_cm.comp's dk/dv kernel (the largest of the three) declares, in bytes.
uint64_t coop_shared_bytes(uint64_t b, uint64_t hdp) {
    return 4 * b * hdp * 2 + 2 * b * b * 2 + 2 * b * b * 4 + 2 * b * hdp * 4 + 3 * b * 4;
}

uint32_t round_up(uint32_t x, uint32_t m) {
    return (x + m - 1) / m * m;
}

// The configuration for fp16 storage on a device with cooperative matrix enabled (ContextOptions::allow_coopmat),
// or none (rows 0): the fp32-arithmetic kernels run instead.
CoopConfig coop_config(const runtime::Device& device, const AttentionShape& shape, DType type) {
    const runtime::DeviceCaps& caps = device.caps();
    if (!device.coopmat_enabled() || type != DType::f16 || caps.coopmat_f16_f32_shapes.empty()) return {};
    const CoopMatShape& s = pick_coopmat_shape(caps);
    CoopConfig c;
    c.tm = s.m;
    c.tn = s.n;
    c.tk = s.k;
    const uint32_t lcm_nk = std::lcm(s.n, s.k), lcm_all = std::lcm(lcm_nk, s.m);
    c.hdp = round_up(shape.head_size, lcm_nk);
    const uint32_t sg = std::max(1u, caps.info.subgroup_size);
    if (caps.info.subgroup_size_control && caps.info.min_subgroup_size != caps.info.max_subgroup_size)
        c.required_subgroup_size = sg; // the shader deals tiles to gl_NumSubgroups subgroups of this size
    for (uint32_t rows : {round_up(16, lcm_all), lcm_all}) {
        const uint32_t tiles = (rows / s.m) * (rows / s.n);
        c.rows = rows;
        c.wg = sg * std::clamp(tiles, 1u, 4u);
        if (coop_shared_bytes(rows, c.hdp) <= caps.info.max_shared_memory &&
            c.wg <= caps.info.max_workgroup_invocations)
            return c;
    }
    return {};
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
    const CoopConfig coop = coop_config(device, shape, act);
    const uint64_t block = coop.rows != 0 ? coop.rows : FLASH_WG; // rows per workgroup
    VKT_CHECK(uint64_t(shape.seq) <= uint64_t(k_max_groups) * block, op, ": ", shape.seq, " positions exceed ",
              uint64_t(k_max_groups) * block);
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

const runtime::Kernel& coop_kernel(runtime::Device& device, const char* op, const CoopConfig& c, uint32_t bindings,
                                   uint32_t head_size) {
    runtime::KernelDesc desc;
    desc.variant = std::string(op) + "_cm_f16";
    desc.bindings = bindings;
    desc.push_size = sizeof(FlashAttentionPush);
    desc.spec.assign(7, 0);
    desc.spec[FLASH_SPEC_HD] = head_size;
    desc.spec[FLASH_SPEC_KB] = c.rows;
    desc.spec[FLASH_SPEC_HDP] = c.hdp;
    desc.spec[FLASH_SPEC_TM] = c.tm;
    desc.spec[FLASH_SPEC_TN] = c.tn;
    desc.spec[FLASH_SPEC_TK] = c.tk;
    desc.spec[FLASH_SPEC_WG] = c.wg;
    desc.required_subgroup_size = c.required_subgroup_size;
    return device.pipelines().get(desc);
}

// The kernel for `op` ("flash_attention", "flash_attention_dq", "flash_attention_dkv") and its rows per workgroup.
std::pair<const runtime::Kernel*, uint32_t> pick_kernel(runtime::Device& device, const char* op,
                                                        const AttentionShape& shape, DType type, uint32_t bindings) {
    const CoopConfig c = coop_config(device, shape, type);
    if (c.rows != 0) return {&coop_kernel(device, op, c, bindings, shape.head_size), c.rows};
    return {&flash_kernel(device, op, type, bindings, shape.head_size), FLASH_WG};
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

bool flash_attention_uses_coopmat(const runtime::Device& device, const AttentionShape& shape, DType type) {
    return flash_attention_supported(device, shape) && coop_config(device, shape, type).rows != 0;
}

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
    const auto [kernel, rows] = pick_kernel(device, "flash_attention", shape, in.q.mat.dtype, 5);
    dispatch(device, seq, *kernel, pc,
             {{&in.q.mat, in.q.col0, Access::read},
              {&in.k.mat, in.k.col0, Access::read},
              {&in.v.mat, in.v.col0, Access::read},
              {&out, 0, Access::write},
              {&lse, 0, Access::write}},
             (shape.seq + rows - 1) / rows, uint64_t(shape.batch) * shape.heads);
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
        const auto [kernel, rows] = pick_kernel(device, "flash_attention_dq", shape, type, 8);
        dispatch(device, seq, *kernel, pc,
                 {{&in.q.mat, in.q.col0, Access::read},
                  {&in.k.mat, in.k.col0, Access::read},
                  {&in.v.mat, in.v.col0, Access::read},
                  {&out, 0, Access::read},
                  {&lse, 0, Access::read},
                  {&dout, 0, Access::read},
                  {&dq->mat, dq->col0, gacc},
                  {&dq->mat, dq->col0, gacc}},
                 (shape.seq + rows - 1) / rows, uint64_t(shape.batch) * shape.heads);
    }
    if (dk != nullptr || dv != nullptr) {
        FlashAttentionPush pc = push(shape, acc | (dk ? FLASH_FLAG_DK : 0u) | (dv ? FLASH_FLAG_DV : 0u));
        lds(pc);
        const AttentionOperand& g0 = dk ? *dk : *dv;
        const AttentionOperand& g1 = dv ? *dv : *dk;
        pc.ld[4] = uint32_t(g0.ld);
        pc.ld[5] = uint32_t(g1.ld);
        const auto [kernel, rows] = pick_kernel(device, "flash_attention_dkv", shape, type, 8);
        dispatch(device, seq, *kernel, pc,
                 {{&in.q.mat, in.q.col0, Access::read},
                  {&in.k.mat, in.k.col0, Access::read},
                  {&in.v.mat, in.v.col0, Access::read},
                  {&out, 0, Access::read},
                  {&lse, 0, Access::read},
                  {&dout, 0, Access::read},
                  {&g0.mat, g0.col0, gacc},
                  {&g1.mat, g1.col0, gacc}},
                 (shape.seq + rows - 1) / rows, uint64_t(shape.batch) * shape.kv());
    }
}

} // namespace vktrain::kernels
