#include "kernels/gemm.hpp"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <utility>

#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(GemmPush) == 23 * 4, "GemmPush layout must match shaders/push_constants.h");

namespace {

std::atomic<TiledLoop> g_tiled_loop{TiledLoop::automatic};

// An operand's row stride as the shader uses it (a single row never steps to a next one).
uint64_t effective_ld(const GemmOperand& o) {
    return o.mat.rows > 1 ? o.row_stride() : o.mat.cols;
}

// The bound range of every item of `o` (outer × inner of them), as one row: what operand() binds.
MatRef batch_span(const GemmOperand& o, uint32_t outer, uint32_t inner, const char* what) {
    const MatRef& item = o.mat;
    VKT_CHECK(item.rows <= 1 || o.row_stride() >= item.cols, "GEMM: ", what, "'s leading dimension ", o.row_stride(),
              " is below its row of ", item.cols, " elements");
    const uint64_t extent = item.count() == 0 ? 0 : uint64_t(item.rows - 1) * effective_ld(o) + item.cols;
    const uint64_t span = uint64_t(outer - 1) * (outer > 1 ? o.stride_outer : 0) +
                          uint64_t(inner - 1) * (inner > 1 ? o.stride_inner : 0) + extent;
    VKT_CHECK(span < k_max_kernel_elements, "GEMM: ", what, " spans ", span, " elements (", outer, "x", inner,
              " items of ", item.rows, "x", item.cols, ", leading dimension ", effective_ld(o), ", strides ",
              o.stride_outer, "/", o.stride_inner, "); at most 2^31 are supported");
    MatRef m = item;
    m.rows = 1;
    m.cols = uint32_t(span);
    return m;
}

// True when no two elements of the output (rows × cols per item, every item) share an address. The index
// map (o, i, r, j) -> o·so + i·si + r·ld + j is injective when, taking the dimensions of size > 1 by
// increasing stride, each stride exceeds the farthest offset the smaller ones reach (PyTorch's overlap
// rule): exact for the layouts GEMMs write (contiguous items, head column blocks), conservative otherwise.
bool output_items_disjoint(const GemmOperand& c, uint32_t outer, uint32_t inner) {
    std::pair<uint64_t, uint64_t> dims[4] = {
        {1, c.mat.cols}, {effective_ld(c), c.mat.rows}, {c.stride_inner, inner}, {c.stride_outer, outer}};
    std::sort(std::begin(dims), std::end(dims));
    uint64_t reach = 1; // one past the largest offset the dimensions so far reach
    for (const auto& [stride, size] : dims) {
        if (size <= 1) continue;
        if (stride < reach) return false;
        reach += (size - 1) * stride;
    }
    return true;
}

uint32_t stride_u32(uint64_t stride, uint32_t count) {
    return count > 1 ? uint32_t(stride) : 0; // below the checked span, so it fits; unused for one item
}

} // namespace

// (gemm.hpp) From the device's list (fp16 A/B, fp32 C/result, subgroup
// scope), the one with the most work per instruction; never assumed.
const CoopMatShape& pick_coopmat_shape(const runtime::DeviceCaps& caps) {
    const auto& shapes = caps.coopmat_f16_f32_shapes;
    VKT_CHECK(!shapes.empty(), "the device lists no fp16×fp16→fp32 subgroup cooperative-matrix shape");
    return *std::max_element(shapes.begin(), shapes.end(), [](const CoopMatShape& x, const CoopMatShape& y) {
        return uint64_t(x.m) * x.n * x.k < uint64_t(y.m) * y.n * y.k;
    });
}

void force_tiled_loop(TiledLoop loop) {
    g_tiled_loop = loop;
}

TiledLoop forced_tiled_loop() {
    return g_tiled_loop;
}

runtime::KernelDesc GemmConfig::kernel_desc(const std::string& variant_name, uint32_t push_size,
                                            uint32_t spec_count) const {
    runtime::KernelDesc desc;
    desc.variant = variant_name;
    desc.bindings = 3;
    desc.push_size = push_size;
    desc.spec.assign(std::max<uint32_t>(spec_count, GEMM_SPEC_COUNT), 0);
    desc.spec[GEMM_SPEC_BM] = bm;
    desc.spec[GEMM_SPEC_BN] = bn;
    desc.spec[GEMM_SPEC_BK] = bk;
    desc.spec[GEMM_SPEC_WG] = wg;
    desc.spec[GEMM_SPEC_TM] = tm;
    desc.spec[GEMM_SPEC_TN] = tn;
    desc.spec[GEMM_SPEC_TK] = std::max(tk, 1u);
    desc.spec[GEMM_SPEC_SG_N] = std::max(sg_n, 1u);
    desc.spec[GEMM_SPEC_REGS] = regs;
    desc.spec[GEMM_SPEC_VEC_B] = vec_b;
    desc.required_subgroup_size = required_subgroup_size;
    return desc;
}

std::string GemmConfig::tile_name() const {
    if (path == GemmPath::coopmat) return detail::concat("coopmat ", sg_n, "x", sg_n, " sg ", bm, "x", bn);
    if (regs != 0) return detail::concat("regs ", tm, "x", tn, " wg", wg, vec_b != 0 ? " vec4" : "");
    return detail::concat("smem ", bm, "x", bn, " ", tm, "x", tn);
}

std::vector<GemmConfig> gemm_configs(const runtime::Device& device, GemmPath path, DType c_type, uint32_t, uint32_t n,
                                     uint32_t, bool vec4_b) {
    const runtime::DeviceCaps& caps = device.caps();
    GemmConfig base;
    base.path = path;
    std::vector<GemmConfig> out;
    switch (path) {
    case GemmPath::coopmat: {
        VKT_CHECK(device.coopmat_enabled(), "the cooperative-matrix GEMM path is not available on '", caps.info.name,
                  "' (unsupported, or forbidden by the options)");
        const CoopMatShape& s = pick_coopmat_shape(caps);
        base.tm = s.m;
        base.tn = s.n;
        base.tk = s.k;
        base.bk = s.k * 2;
        const uint32_t sg = std::max(1u, caps.info.subgroup_size);
        if (caps.info.subgroup_size_control && caps.info.min_subgroup_size != caps.info.max_subgroup_size)
            base.required_subgroup_size = sg; // the shader assumes wg / subgroup_size subgroups
        base.suffix = c_type == DType::f16 ? "cm_f16_f16" : "cm_f16_f32";
        // 2×2 subgroups, each with 2×2 tiles (the default), and 1×1 subgroups, where they fit.
        for (uint32_t sg_side : {2u, 1u}) {
            GemmConfig cfg = base;
            cfg.sg_n = sg_side;
            cfg.bm = sg_side * 2 * cfg.tm;
            cfg.bn = sg_side * 2 * cfg.tn;
            cfg.wg = sg_side * sg_side * sg;
            const uint64_t shared = uint64_t(cfg.bm * cfg.bk + cfg.bk * cfg.bn) * 2 + uint64_t(cfg.bm) * cfg.bn * 4;
            if (shared <= caps.info.max_shared_memory && cfg.wg <= caps.info.max_workgroup_invocations)
                out.push_back(cfg);
        }
        VKT_CHECK(!out.empty(), "cooperative-matrix tiles ", s.m, "x", s.n, "x", s.k, " do not fit in ",
                  caps.info.max_shared_memory, " bytes of shared memory");
        break;
    }
    case GemmPath::tiled_fp16:
    case GemmPath::fp32: {
        VKT_CHECK(path == GemmPath::fp32 || device.fp16_enabled(), "the fp16 GEMM path is not available on '",
                  caps.info.name, "'");
        VKT_CHECK(path == GemmPath::tiled_fp16 || c_type == DType::f32, "the fp32 GEMM path writes fp32 only");
        if (path == GemmPath::fp32)
            base.suffix = "f32";
        else
            base.suffix = c_type == DType::f16 ? "tiled_f16_f16" : "tiled_f16_f32";
        const TiledLoop loop = forced_tiled_loop();
        if (loop == TiledLoop::registers || (loop == TiledLoop::automatic && caps.info.type == "cpu")) {
            // CPU devices (lavapipe): one workgroup per thread, invocations as SIMD lanes, costly barriers.
            // Register blocks (TM x TN per invocation, the invocations along N) with no shared memory measured
            // 2-10x faster there than the shared-memory tiles (GEMMs and convolutions, vktrain_bench_gemm).
            // Every buffer load costs about a gather there while A's (uniform across the workgroup) are
            // cheap, and accumulators beyond the vector registers spill, so the best block depends on the
            // shape; lavapipe 25 measured (interleaved runs, vktrain_bench_gemm --tiles): with B read four
            // columns per load, 16x16 on 8 invocations 1.7-1.9x the scalar 8x8 at 1024^3; with scalar B
            // (A·Bᵀ), 8x16 or 16x16 on 8 invocations about 1.2x the 8x8 on 16 at the MLP's 128x256x784.
            const auto regs = [&](uint32_t tm, uint32_t tn, uint32_t wg, bool vec) {
                GemmConfig cfg = base;
                cfg.regs = 1;
                cfg.bk = 1; // no shared-memory tiles
                cfg.tm = tm;
                cfg.tn = tn;
                cfg.wg = wg;
                cfg.vec_b = vec ? 1 : 0;
                cfg.bm = tm;
                cfg.bn = wg * tn;
                out.push_back(cfg);
            };
            if (vec4_b) {
                // Narrower outputs default to 16x8 so that fewer columns are computed past the edge.
                regs(16, n >= 128 ? 16 : 8, 8, true);
                regs(16, n >= 128 ? 8 : 16, 8, true);
                regs(8, 16, 8, true);
                regs(8, 8, 16, true);
            } else {
                regs(8, 8, 16, false);
                regs(16, 16, 8, false);
                regs(8, 16, 8, false);
                regs(8, 8, n <= 16 ? 2 : 8, false); // narrow outputs (classifier heads): one block across
            }
            break;
        }
        // Shared-memory tiles (GPUs): each invocation a TM x TN register tile of a BM x BN block.
        const bool big = caps.info.max_workgroup_invocations >= 256;
        const auto smem = [&](uint32_t bm, uint32_t bn, uint32_t tm, uint32_t tn) {
            GemmConfig cfg = base;
            cfg.bk = 16;
            cfg.bm = bm;
            cfg.bn = bn;
            cfg.tm = tm;
            cfg.tn = tn;
            cfg.wg = (bm / tm) * (bn / tn);
            if (cfg.wg <= caps.info.max_workgroup_invocations &&
                uint64_t(bm + bn) * cfg.bk * 4 <= caps.info.max_shared_memory)
                out.push_back(cfg);
        };
        if (n <= 16) // narrow outputs (classifier heads, bias-like shapes) waste less with thin tiles
            smem(big ? 64 : 32, 16, 4, 2);
        else
            smem(big ? 64 : 32, 64, 4, 4);
        smem(128, 64, 8, 4);
        smem(64, 128, 4, 8);
        smem(32, 32, 2, 2);
        break;
    }
    case GemmPath::auto_select: VKT_FAIL("gemm_configs needs a concrete path, not auto");
    }
    VKT_CHECK(!out.empty(), "no GEMM tile configuration fits '", caps.info.name, "'");
    for (GemmConfig& cfg : out) cfg.variant = "gemm_" + cfg.suffix;
    return out;
}

bool gemm_vec4_b(const GemmDesc& d, uint64_t b_offset) {
    // Adjacent columns contiguous (not transposed), and every row of every item starting on a multiple of 4 elements,
    // n included (so a clamped vec4 never straddles the edge).
    const uint32_t k = d.trans_b ? d.b.mat.cols : d.b.mat.rows, n = d.trans_b ? d.b.mat.rows : d.b.mat.cols;
    const auto four = [](uint64_t v) { return v % 4 == 0; };
    return !d.trans_b && four(n) && four(b_offset) && (k <= 1 || four(effective_ld(d.b))) &&
           (d.outer <= 1 || four(d.b.stride_outer)) && (d.inner <= 1 || four(d.b.stride_inner));
}

GemmConfig gemm_config(const runtime::Device& device, GemmPath path, DType c_type, uint32_t m, uint32_t n, uint32_t k,
                       bool vec4_b, uint32_t tile) {
    std::vector<GemmConfig> all = gemm_configs(device, path, c_type, m, n, k, vec4_b);
    return std::move(all[tile < all.size() ? tile : 0]);
}

GemmGrid gemm_grid(const runtime::Device& device, const GemmConfig& cfg, uint32_t m, uint32_t n, uint32_t items) {
    const uint32_t* limit = device.caps().max_workgroup_count;
    GemmGrid g;
    const uint64_t blocks_n = (uint64_t(n) + cfg.bn - 1) / cfg.bn, blocks_m = (uint64_t(m) + cfg.bm - 1) / cfg.bm;
    // Register blocks with vec4 B put M along x (see gemm_all_blocks).
    const bool m_along_x = cfg.regs != 0 && cfg.vec_b != 0;
    const uint64_t along_x = m_along_x ? blocks_m : blocks_n, along_y = m_along_x ? blocks_n : blocks_m;
    g.x = uint32_t(std::min<uint64_t>(along_x, std::max(limit[0], 1u)));
    g.y = uint32_t(std::min<uint64_t>(along_y, std::max(limit[1], 1u)));
    g.z = std::max(1u, std::min(items, limit[2]));
    return g;
}

void record_gemm(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const MatRef& a, bool trans_a,
                 const MatRef& b, bool trans_b, const MatRef& c, bool accumulate, uint32_t tile) {
    GemmDesc d;
    d.a = {a, 0, 0, 0};
    d.b = {b, 0, 0, 0};
    d.c = {c, 0, 0, 0};
    d.trans_a = trans_a;
    d.trans_b = trans_b;
    d.accumulate = accumulate;
    record_gemm_strided(device, seq, path, d, tile);
}

void record_gemm_batched(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const GemmBatch& batch,
                         const MatRef& a, bool trans_a, const MatRef& b, bool trans_b, const MatRef& c,
                         bool accumulate) {
    GemmDesc d;
    d.a = {a, 0, batch.a_stride, 0};
    d.b = {b, 0, batch.b_stride, 0};
    d.c = {c, 0, batch.c_stride, 0};
    d.trans_a = trans_a;
    d.trans_b = trans_b;
    d.outer = batch.count;
    d.accumulate = accumulate;
    record_gemm_strided(device, seq, path, d);
}

void record_gemm_strided(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const GemmDesc& d,
                         uint32_t tile) {
    const MatRef &a = d.a.mat, &b = d.b.mat, &c = d.c.mat;
    const uint32_t m = d.trans_a ? a.cols : a.rows;
    const uint32_t k = d.trans_a ? a.rows : a.cols;
    const uint32_t kb = d.trans_b ? b.cols : b.rows;
    const uint32_t n = d.trans_b ? b.rows : b.cols;
    VKT_CHECK(k == kb, "GEMM inner dimensions differ: ", k, " vs ", kb);
    VKT_CHECK(c.rows == m && c.cols == n, "GEMM output is ", c.rows, "x", c.cols, ", expected ", m, "x", n);
    const DType in_type = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    VKT_CHECK(a.dtype == in_type && b.dtype == in_type, "GEMM path ", to_string(path), " takes ", dtype_name(in_type),
              " inputs");
    const uint64_t count = uint64_t(d.outer) * d.inner;
    VKT_CHECK(count < (1ull << 32), "GEMM: ", d.outer, "x", d.inner, " items exceed 2^32");
    VKT_CHECK(output_items_disjoint(d.c, d.outer, d.inner), "GEMM: output elements overlap (", d.outer, "x", d.inner,
              " items of ", c.rows, "x", c.cols, ", leading dimension ", effective_ld(d.c), ", strides ",
              d.c.stride_outer, "/", d.c.stride_inner, "); each output element needs its own address");
    const bool has_bias = d.bias.buffer != nullptr;
    if (has_bias)
        VKT_CHECK(d.bias.rows == 1 && d.bias.cols == n && d.bias.dtype == in_type, "GEMM bias is ", d.bias.rows, "x",
                  d.bias.cols, " ", dtype_name(d.bias.dtype), ", expected 1x", n, " ", dtype_name(in_type));
    VKT_CHECK(!(d.relu && d.accumulate), "GEMM: a ReLU epilogue cannot accumulate");
    const bool gelu = d.gelu != GemmGelu::none;
    const bool has_aux = d.aux.buffer != nullptr;
    if (gelu) {
        VKT_CHECK(!d.accumulate && !d.relu && count == 1,
                  "GEMM: a GELU epilogue takes one item, no ReLU, no accumulate");
        VKT_CHECK(effective_ld(d.c) == n, "GEMM: a GELU epilogue needs C's rows contiguous");
        VKT_CHECK(!d.gelu_grad || has_aux, "GEMM: a GELU gradient epilogue needs the pre-activation (aux)");
    }
    VKT_CHECK(!has_aux || (gelu && d.aux.rows == m && d.aux.cols == n && d.aux.dtype == c.dtype), "GEMM: aux is ",
              d.aux.rows, "x", d.aux.cols, " ", dtype_name(d.aux.dtype), ", expected ", m, "x", n, " ",
              dtype_name(c.dtype), " with a GELU epilogue");
    if (m == 0 || n == 0 || count == 0) return;

    const Operand oa = operand(device, batch_span(d.a, d.outer, d.inner, "A"), runtime::Access::read);
    const Operand ob = operand(device, batch_span(d.b, d.outer, d.inner, "B"), runtime::Access::read);
    const Operand oc = operand(device, batch_span(d.c, d.outer, d.inner, "C"),
                               d.accumulate ? runtime::Access::read_write : runtime::Access::write);
    const uint32_t ldb = uint32_t(effective_ld(d.b));
    const GemmConfig cfg = gemm_config(device, path, c.dtype, m, n, k, gemm_vec4_b(d, ob.offset), tile);
    runtime::KernelDesc kd = cfg.kernel_desc(cfg.variant, sizeof(GemmPush), GEMM_SPEC_COUNT);
    kd.bindings = 5;
    const runtime::Kernel& kernel = device.pipelines().get(kd);
    const Operand obias = has_bias ? operand(device, d.bias, runtime::Access::read) : ob;
    const Operand oaux =
        has_aux ? operand(device, d.aux, d.gelu_grad ? runtime::Access::read : runtime::Access::write) : oc;
    // Spans are below 2^31 elements and bound-range offsets below 2^28 bytes (operand()), so every index the shader
    // forms fits in 32 bits.
    const uint32_t lda = uint32_t(effective_ld(d.a));
    GemmPush pc{};
    pc.m = m;
    pc.n = n;
    pc.k = k;
    pc.a_offset = oa.offset;
    pc.a_stride_m = d.trans_a ? 1 : lda;
    pc.a_stride_k = d.trans_a ? lda : 1;
    pc.b_offset = ob.offset;
    pc.b_stride_k = d.trans_b ? 1 : ldb;
    pc.b_stride_n = d.trans_b ? ldb : 1;
    pc.c_offset = oc.offset;
    pc.c_stride_m = uint32_t(effective_ld(d.c));
    pc.accumulate = d.accumulate ? 1 : 0;
    pc.batch = uint32_t(count);
    pc.inner = std::max(d.inner, 1u);
    pc.a_outer = stride_u32(d.a.stride_outer, d.outer);
    pc.a_inner = stride_u32(d.a.stride_inner, d.inner);
    pc.b_outer = stride_u32(d.b.stride_outer, d.outer);
    pc.b_inner = stride_u32(d.b.stride_inner, d.inner);
    pc.c_outer = stride_u32(d.c.stride_outer, d.outer);
    pc.c_inner = stride_u32(d.c.stride_inner, d.inner);
    const GemmGrid g = gemm_grid(device, cfg, m, n, pc.batch);
    pc.epilogue = (has_bias ? GEMM_EPILOGUE_BIAS : 0u) | (d.relu ? GEMM_EPILOGUE_RELU : 0u);
    if (gelu) {
        const bool erf = d.gelu == GemmGelu::erf;
        if (d.gelu_grad)
            pc.epilogue |= erf ? GEMM_EPILOGUE_DGELU_ERF : GEMM_EPILOGUE_DGELU;
        else
            pc.epilogue |=
                (erf ? GEMM_EPILOGUE_GELU_ERF : GEMM_EPILOGUE_GELU) | (has_aux ? GEMM_EPILOGUE_SAVE_PRE : 0u);
    }
    pc.bias_offset = has_bias ? obias.offset : 0;
    pc.aux_offset = has_aux ? oaux.offset : 0;
    seq.dispatch(kernel, {oa.binding, ob.binding, oc.binding, obias.binding, oaux.binding}, &pc, sizeof(pc), g.x, g.y,
                 g.z);
}

} // namespace vktrain::kernels
