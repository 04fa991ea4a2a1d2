#include "kernels/gemm.hpp"

#include <algorithm>

#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(GemmPush) == 12 * 4, "GemmPush layout must match shaders/push_constants.h");

namespace {

// The cooperative-matrix shape to use: from the device's list (fp16 A/B, fp32 C/result, subgroup
// scope), the one with the most work per instruction; never assumed.
const CoopMatShape& pick_coopmat_shape(const runtime::DeviceCaps& caps) {
    const auto& shapes = caps.coopmat_f16_f32_shapes;
    VKT_CHECK(!shapes.empty(), "the device lists no fp16×fp16→fp32 subgroup cooperative-matrix shape");
    return *std::max_element(shapes.begin(), shapes.end(), [](const CoopMatShape& x, const CoopMatShape& y) {
        return uint64_t(x.m) * x.n * x.k < uint64_t(y.m) * y.n * y.k;
    });
}

} // namespace

GemmConfig gemm_config(const runtime::Device& device, GemmPath path, DType c_type, uint32_t, uint32_t n, uint32_t) {
    const runtime::DeviceCaps& caps = device.caps();
    GemmConfig cfg;
    cfg.path = path;
    switch (path) {
    case GemmPath::coopmat: {
        VKT_CHECK(device.coopmat_enabled(), "the cooperative-matrix GEMM path is not available on '", caps.info.name,
                  "' (unsupported, or forbidden by the options)");
        const CoopMatShape& s = pick_coopmat_shape(caps);
        cfg.tm = s.m;
        cfg.tn = s.n;
        cfg.tk = s.k;
        cfg.bk = s.k * 2;
        const uint32_t sg = std::max(1u, caps.info.subgroup_size);
        // 2×2 subgroups, each with 2×2 tiles, shrunk to 1×1 subgroups if shared memory is short.
        for (uint32_t sg_side : {2u, 1u}) {
            cfg.sg_n = sg_side;
            cfg.bm = sg_side * 2 * cfg.tm;
            cfg.bn = sg_side * 2 * cfg.tn;
            cfg.wg = sg_side * sg_side * sg;
            const uint64_t shared = uint64_t(cfg.bm * cfg.bk + cfg.bk * cfg.bn) * 2 + uint64_t(cfg.bm) * cfg.bn * 4;
            if (shared <= caps.info.max_shared_memory && cfg.wg <= caps.info.max_workgroup_invocations) break;
            VKT_CHECK(sg_side > 1, "cooperative-matrix tiles ", s.m, "x", s.n, "x", s.k, " do not fit in ",
                      caps.info.max_shared_memory, " bytes of shared memory");
        }
        if (caps.info.subgroup_size_control && caps.info.min_subgroup_size != caps.info.max_subgroup_size)
            cfg.required_subgroup_size = sg; // the shader assumes wg / subgroup_size subgroups
        cfg.variant = c_type == DType::f16 ? "gemm_cm_f16_f16" : "gemm_cm_f16_f32";
        return cfg;
    }
    case GemmPath::tiled_fp16:
    case GemmPath::fp32: {
        VKT_CHECK(path == GemmPath::fp32 || device.fp16_enabled(), "the fp16 GEMM path is not available on '",
                  caps.info.name, "'");
        VKT_CHECK(path == GemmPath::tiled_fp16 || c_type == DType::f32, "the fp32 GEMM path writes fp32 only");
        const bool big = caps.info.max_workgroup_invocations >= 256;
        cfg.bk = 16;
        cfg.tm = 4;
        cfg.bm = big ? 64 : 32;
        if (n <= 16) { // narrow outputs (classifier heads, bias-like shapes) waste less with thin tiles
            cfg.bn = 16;
            cfg.tn = 2;
        } else {
            cfg.bn = 64;
            cfg.tn = 4;
        }
        cfg.wg = (cfg.bm / cfg.tm) * (cfg.bn / cfg.tn);
        if (path == GemmPath::fp32)
            cfg.variant = "gemm_f32";
        else
            cfg.variant = c_type == DType::f16 ? "gemm_tiled_f16_f16" : "gemm_tiled_f16_f32";
        return cfg;
    }
    case GemmPath::auto_select: break;
    }
    VKT_FAIL("gemm_config needs a concrete path, not auto");
}

void record_gemm(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const MatRef& a, bool trans_a,
                 const MatRef& b, bool trans_b, const MatRef& c, bool accumulate) {
    const uint32_t m = trans_a ? a.cols : a.rows;
    const uint32_t k = trans_a ? a.rows : a.cols;
    const uint32_t kb = trans_b ? b.cols : b.rows;
    const uint32_t n = trans_b ? b.rows : b.cols;
    VKT_CHECK(k == kb, "GEMM inner dimensions differ: ", k, " vs ", kb);
    VKT_CHECK(c.rows == m && c.cols == n, "GEMM output is ", c.rows, "x", c.cols, ", expected ", m, "x", n);
    const DType in_type = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    VKT_CHECK(a.dtype == in_type && b.dtype == in_type, "GEMM path ", to_string(path), " takes ", dtype_name(in_type),
              " inputs");
    if (m == 0 || n == 0) return;

    const GemmConfig cfg = gemm_config(device, path, c.dtype, m, n, k);
    runtime::KernelDesc desc;
    desc.variant = cfg.variant;
    desc.bindings = 3;
    desc.push_size = sizeof(GemmPush);
    desc.spec.assign(GEMM_SPEC_COUNT, 0);
    desc.spec[GEMM_SPEC_BM] = cfg.bm;
    desc.spec[GEMM_SPEC_BN] = cfg.bn;
    desc.spec[GEMM_SPEC_BK] = cfg.bk;
    desc.spec[GEMM_SPEC_WG] = cfg.wg;
    desc.spec[GEMM_SPEC_TM] = cfg.tm;
    desc.spec[GEMM_SPEC_TN] = cfg.tn;
    desc.spec[GEMM_SPEC_TK] = std::max(cfg.tk, 1u);
    desc.spec[GEMM_SPEC_SG_N] = std::max(cfg.sg_n, 1u);
    desc.required_subgroup_size = cfg.required_subgroup_size;
    const runtime::Kernel& kernel = device.pipelines().get(desc);

    const Operand oa = operand(device, a, runtime::Access::read);
    const Operand ob = operand(device, b, runtime::Access::read);
    const Operand oc = operand(device, c, accumulate ? runtime::Access::read_write : runtime::Access::write);
    GemmPush pc{};
    pc.m = m;
    pc.n = n;
    pc.k = k;
    pc.a_offset = oa.offset;
    pc.a_stride_m = trans_a ? 1 : a.cols;
    pc.a_stride_k = trans_a ? a.cols : 1;
    pc.b_offset = ob.offset;
    pc.b_stride_k = trans_b ? 1 : b.cols;
    pc.b_stride_n = trans_b ? b.cols : 1;
    pc.c_offset = oc.offset;
    pc.c_stride_m = c.cols;
    pc.accumulate = accumulate ? 1 : 0;
    seq.dispatch(kernel, {oa.binding, ob.binding, oc.binding}, &pc, sizeof(pc), (n + cfg.bn - 1) / cfg.bn,
                 (m + cfg.bm - 1) / cfg.bm);
}

} // namespace vktrain::kernels
