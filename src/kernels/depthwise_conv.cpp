#include "kernels/depthwise_conv.hpp"

#include <algorithm>

#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(DepthwisePush) == 15 * 4, "DepthwisePush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_smem_floats = 4096; // 16 KiB: every Vulkan device has at least this much shared memory
constexpr uint32_t k_max_taps = 81;      // the weight gradient keeps one fp32 partial sum per tap in registers

uint32_t pow2_at_least(uint32_t v) {
    uint32_t p = 1;
    while (p < v && p < (1u << 30)) p <<= 1;
    return p;
}

// Floats of shared memory a plan stages (mirrors the XR/XC/YR/YC constants of depthwise_conv.comp).
uint64_t staged_floats(ConvDirection d, const Conv2dShape& s, uint32_t th, uint32_t tw, uint32_t wg) {
    const uint64_t taps = uint64_t(s.kh) * s.kw, mult = s.c_out / s.c_in;
    const uint64_t xr = uint64_t(th - 1) * s.stride_h + uint64_t(s.kh - 1) * s.dil_h + 1;
    const uint64_t xc = uint64_t(tw - 1) * s.stride_w + uint64_t(s.kw - 1) * s.dil_w + 1;
    switch (d) {
    case ConvDirection::forward: return xr * xc + mult * taps;
    case ConvDirection::backward_data: {
        const uint64_t yr = (uint64_t(th - 1) + uint64_t(s.kh - 1) * s.dil_h) / s.stride_h + 2;
        const uint64_t yc = (uint64_t(tw - 1) + uint64_t(s.kw - 1) * s.dil_w) / s.stride_w + 2;
        return mult * (yr * yc + taps);
    }
    case ConvDirection::backward_weight: return std::max(xr * xc + uint64_t(th) * tw, taps * wg);
    }
    return ~uint64_t(0);
}

} // namespace

std::string DepthwisePlan::name() const {
    return detail::concat("depthwise ", tile_h, "x", tile_w, " wg", wg, " rx", rx);
}

std::optional<DepthwisePlan> plan_depthwise(const runtime::Device& device, ConvDirection d, const Conv2dShape& s) {
    if (!device.depthwise_kernel_enabled() || !is_depthwise(s) || uint64_t(s.kh) * s.kw > k_max_taps)
        return std::nullopt;
    const runtime::DeviceCaps& caps = device.caps();
    if (caps.info.max_shared_memory < k_smem_floats * 4) return std::nullopt;
    DepthwisePlan plan;
    // CPU devices (lavapipe) run a workgroup as one call on one thread with its invocations as SIMD lanes: few
    // lanes and large tiles amortise the call and the barriers; GPUs want more invocations per workgroup.
    plan.wg = std::min<uint32_t>(caps.info.type == "cpu" ? 16 : 64, caps.info.max_workgroup_invocations);
    plan.wg = uint32_t(1) << (31 - __builtin_clz(std::max(plan.wg, 1u))); // a power of two (the tree reduction)
    const uint32_t taps = s.kh * s.kw;
    while (d == ConvDirection::backward_weight && plan.wg > 1 && uint64_t(taps) * plan.wg > k_smem_floats) plan.wg /= 2;
    const bool data = d == ConvDirection::backward_data;
    const uint32_t plane_h = data ? s.h : s.out_h(), plane_w = data ? s.w : s.out_w();
    plan.tile_w = std::min(32u, pow2_at_least(plane_w));
    plan.tile_h = std::min(pow2_at_least(plane_h), std::max(1u, 256u / plan.tile_w));
    while (staged_floats(d, s, plan.tile_h, plan.tile_w, plan.wg) > k_smem_floats) {
        if (plan.tile_h == 1 && plan.tile_w == 1) return std::nullopt;
        if (plan.tile_h >= plan.tile_w)
            plan.tile_h /= 2;
        else
            plan.tile_w /= 2;
    }
    // Four adjacent outputs per invocation: register blocks cut the shared-memory loads per output from 2·taps to
    // about taps / 4 + kernel rows; in one A/B on lavapipe 25 (vktrain_bench_depthwise, fp32, a loaded machine) they
    // ran 1.2-3.4x faster than one output per invocation.
    plan.rx = std::min(4u, plan.tile_w);
    return plan;
}

void record_depthwise_conv2d(runtime::Device& device, runtime::Sequence& seq, GemmPath path, ConvDirection direction,
                             const Conv2dShape& s, const DepthwisePlan& plan, const MatRef& in0, const MatRef& in1,
                             const MatRef& out, bool accumulate) {
    const char* op = to_string(direction);
    const std::string& name = device.caps().info.name;
    VKT_CHECK(path == GemmPath::fp32 || device.fp16_enabled(), op, ": the fp16 paths are not available on '", name,
              "'");
    VKT_CHECK(path != GemmPath::coopmat || device.coopmat_enabled(), op, ": the cooperative-matrix path is not ",
              "available on '", name, "' (unsupported, or forbidden by the options)");
    const DType in_type = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const bool data = direction == ConvDirection::backward_data;
    const uint32_t plane_h = data ? s.h : s.out_h(), plane_w = data ? s.w : s.out_w();
    DepthwisePush pc{};
    const Operand o0 = operand(device, in0, runtime::Access::read);
    const Operand o1 = operand(device, in1, runtime::Access::read);
    const Operand o2 = operand(device, out, accumulate ? runtime::Access::read_write : runtime::Access::write);
    pc.in0_offset = o0.offset;
    pc.in1_offset = o1.offset;
    pc.out_offset = o2.offset;
    pc.n = s.n;
    pc.c = s.c_in;
    pc.mult = s.c_out / s.c_in;
    pc.h = s.h;
    pc.w = s.w;
    pc.oh = s.out_h();
    pc.ow = s.out_w();
    pc.pad_h = s.pad_h;
    pc.pad_w = s.pad_w;
    pc.tiles_x = (plane_w + plan.tile_w - 1) / plan.tile_w;
    pc.tiles_y = (plane_h + plan.tile_h - 1) / plan.tile_h;
    pc.accumulate = accumulate ? 1 : 0;
    // Work items: tiles of every (image, channel) plane, or (weight gradient) output channels; beyond 65535
    // workgroups the shader loops.
    const uint64_t items = direction == ConvDirection::backward_weight
                               ? uint64_t(s.c_out)
                               : uint64_t(s.n) * s.c_in * pc.tiles_x * pc.tiles_y;
    VKT_CHECK(items < (uint64_t(1) << 31), op, ": ", items, " tiles exceed 32-bit indexing");

    runtime::KernelDesc desc;
    desc.variant = variant_name("depthwise_conv", in_type, out.dtype);
    desc.bindings = 3;
    desc.push_size = sizeof(DepthwisePush);
    desc.spec.assign(DW_SPEC_COUNT, 0);
    desc.spec[DW_SPEC_DIR] = direction == ConvDirection::forward         ? CONV_DIR_FORWARD
                             : direction == ConvDirection::backward_data ? CONV_DIR_BACKWARD_DATA
                                                                         : CONV_DIR_BACKWARD_WEIGHT;
    desc.spec[DW_SPEC_WG] = plan.wg;
    desc.spec[DW_SPEC_TILE_H] = plan.tile_h;
    desc.spec[DW_SPEC_TILE_W] = plan.tile_w;
    desc.spec[DW_SPEC_KH] = s.kh;
    desc.spec[DW_SPEC_KW] = s.kw;
    desc.spec[DW_SPEC_STRIDE_H] = s.stride_h;
    desc.spec[DW_SPEC_STRIDE_W] = s.stride_w;
    desc.spec[DW_SPEC_DIL_H] = s.dil_h;
    desc.spec[DW_SPEC_DIL_W] = s.dil_w;
    desc.spec[DW_SPEC_SMEM] = k_smem_floats;
    desc.spec[DW_SPEC_RX] = plan.rx;
    const runtime::Kernel& kernel = device.pipelines().get(desc);
    seq.dispatch(kernel, {o0.binding, o1.binding, o2.binding}, &pc, sizeof(pc), group_count(items, 1), 1, 1);
}

} // namespace vktrain::kernels
