#include "kernels/peak.hpp"

#include <algorithm>
#include <functional>

#include "common/check.hpp"
#include "kernels/gemm.hpp"
#include "kernels/timing.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::kernels {

static_assert(sizeof(PeakPush) == 4 * 4, "PeakPush layout must match shaders/push_constants.h");

namespace {

constexpr double k_target_ms = 40.0; // each measurement runs at least this long (or as long as one pass)
constexpr uint32_t k_max_iterations = 1u << 22;

// Seconds per submission of what `record` records: the best of three timed submissions after a warm-up.
double seconds(runtime::Device& device, const std::function<void(runtime::Sequence&)>& record) {
    return time_recorded(device, {}, 1, record, 3) * 1e-6;
}

// Runs `time(iterations)` with iterations grown until one run takes k_target_ms; returns work / second as
// `work_per_iteration` · iterations / time.
double calibrated_rate(double work_per_iteration, const std::function<double(uint32_t)>& time) {
    uint32_t iterations = 16;
    for (;;) {
        const double s = time(iterations);
        if (s * 1e3 >= k_target_ms || iterations >= k_max_iterations)
            return s > 0 ? work_per_iteration * iterations / s : 0.0;
        const double grow = std::clamp(k_target_ms * 1.2 / std::max(s * 1e3, 1e-3), 2.0, 64.0);
        iterations = uint32_t(std::min<double>(k_max_iterations, iterations * grow));
    }
}

std::string text(uint32_t chains, uint32_t wg) {
    return detail::concat(chains, " chains x vec4, ", wg, " invocations per workgroup");
}

} // namespace

PeakResult measure_fma_peak(runtime::Device& device, bool f16) {
    PeakResult best;
    if (f16 && !device.caps().info.shader_float16) {
        best.unavailable = "no fp16 arithmetic (shaderFloat16)";
        return best;
    }
    const uint32_t wg = std::min(64u, device.caps().info.max_workgroup_invocations);
    const uint32_t groups = 8192; // enough invocations to fill any GPU; CPU devices spread them over their threads
    runtime::Buffer out(device, uint64_t(groups) * wg * 4, runtime::MemoryKind::device, "peak fma");
    for (uint32_t chains : {1u, 2u, 4u, 8u}) {
        runtime::KernelDesc desc;
        desc.variant = f16 ? "peak_fma_f16" : "peak_fma_f32";
        desc.bindings = 1;
        desc.push_size = sizeof(PeakPush);
        desc.spec = {wg, chains, 1, 1, 1};
        const runtime::Kernel& k = device.pipelines().get(desc);
        const double flops_per_iteration = double(groups) * wg * chains * 4 * 2;
        const double rate = calibrated_rate(flops_per_iteration, [&](uint32_t iterations) {
            const PeakPush pc{iterations, groups * wg, 0.9990234375f, 0.0009765625f};
            return seconds(device, [&](runtime::Sequence& seq) {
                seq.dispatch(k, {{&out, runtime::Access::write}}, &pc, sizeof(pc), groups);
            });
        });
        if (rate * 1e-9 > best.value) {
            best.value = rate * 1e-9;
            best.config = text(chains, wg);
        }
    }
    return best;
}

PeakResult measure_coopmat_peak(runtime::Device& device) {
    PeakResult best;
    const runtime::DeviceCaps& caps = device.caps();
    if (!device.coopmat_enabled() || caps.coopmat_f16_f32_shapes.empty()) {
        best.unavailable = "no usable fp16 x fp16 + fp32 cooperative matrix";
        return best;
    }
    const CoopMatShape& s = pick_coopmat_shape(caps); // the shape the GEMMs use
    const uint32_t sg = std::max(1u, caps.info.subgroup_size);
    const uint32_t wg = std::min(4 * sg, caps.info.max_workgroup_invocations / sg * sg);
    const uint32_t subgroups = wg / sg, groups = 2048;
    const uint64_t shared = uint64_t(s.m * s.k + s.k * s.n) * 2;
    if (shared > caps.info.max_shared_memory || wg == 0) {
        best.unavailable = "the peak kernel's tiles do not fit";
        return best;
    }
    const uint32_t slots = groups * subgroups;
    runtime::Buffer out(device, uint64_t(slots) * s.m * s.n * 4, runtime::MemoryKind::device, "peak coopmat");
    for (uint32_t chains : {2u, 4u, 8u}) {
        runtime::KernelDesc desc;
        desc.variant = "peak_coopmat";
        desc.bindings = 1;
        desc.push_size = sizeof(PeakPush);
        desc.spec = {wg, chains, s.m, s.n, s.k};
        if (caps.info.subgroup_size_control && caps.info.min_subgroup_size != caps.info.max_subgroup_size)
            desc.required_subgroup_size = sg;
        const runtime::Kernel& k = device.pipelines().get(desc);
        const double flops_per_iteration = double(slots) * chains * 2.0 * s.m * s.n * s.k;
        const double rate = calibrated_rate(flops_per_iteration, [&](uint32_t iterations) {
            const PeakPush pc{iterations, slots, 0.0f, 0.0f};
            return seconds(device, [&](runtime::Sequence& seq) {
                seq.dispatch(k, {{&out, runtime::Access::write}}, &pc, sizeof(pc), groups);
            });
        });
        if (rate * 1e-9 > best.value) {
            best.value = rate * 1e-9;
            best.config =
                detail::concat(chains, " chains of ", s.m, "x", s.n, "x", s.k, ", ", wg, " invocations per workgroup");
        }
    }
    return best;
}

PeakResult measure_copy_bandwidth(runtime::Device& device, uint64_t bytes) {
    PeakResult r;
    const uint64_t range = device.caps().max_storage_buffer_range;
    bytes = std::min(bytes, range) / 16 * 16;
    VKT_CHECK(bytes >= 16, "copy bandwidth: nothing to copy");
    runtime::Buffer src(device, bytes, runtime::MemoryKind::device, "peak copy src");
    runtime::Buffer dst(device, bytes, runtime::MemoryKind::device, "peak copy dst");
    runtime::KernelDesc desc;
    desc.variant = "peak_copy";
    desc.bindings = 2;
    desc.push_size = sizeof(PeakPush);
    const uint32_t wg = std::min(256u, device.caps().info.max_workgroup_invocations);
    desc.spec = {wg, 1, 1, 1, 1};
    const runtime::Kernel& k = device.pipelines().get(desc);
    const uint32_t vec4s = uint32_t(bytes / 16);
    const uint32_t groups = std::min<uint32_t>(65535, (vec4s + wg - 1) / wg);
    const PeakPush pc{1, vec4s, 0.0f, 0.0f};
    const double shader = seconds(device, [&](runtime::Sequence& seq) {
        seq.dispatch(k, {{&src, runtime::Access::read}, {&dst, runtime::Access::write}}, &pc, sizeof(pc), groups);
    });
    const double transfer = seconds(device, [&](runtime::Sequence& seq) { seq.copy(src, dst, bytes); });
    const bool use_shader = shader <= transfer;
    r.value = 2.0 * double(bytes) / std::min(shader, transfer) * 1e-9;
    r.config =
        detail::concat(bytes >> 20, " MiB, ", use_shader ? "vec4 shader copy" : "vkCmdCopyBuffer", " (the faster)");
    return r;
}

} // namespace vktrain::kernels
