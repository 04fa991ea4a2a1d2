#include "kernels/conv.hpp"

#include <algorithm>

#include "kernels/depthwise_conv.hpp"
#include "kernels/gemm.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(ConvPush) == 32 * 4, "ConvPush layout must match shaders/push_constants.h");

namespace {

int64_t out_extent(uint32_t in, uint32_t pad, uint32_t dil, uint32_t k, uint32_t stride) {
    const int64_t span = int64_t(in) + 2 * int64_t(pad) - int64_t(dil) * (int64_t(k) - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

void check_tensor(const MatRef& t, DType dtype, uint64_t rows, uint64_t cols, const char* op, const char* what,
                  const char* layout) {
    VKT_CHECK(t.buffer && t.buffer->valid(), op, ": ", what, " has no buffer");
    VKT_CHECK(t.rows == rows && t.cols == cols, op, ": ", what, " is ", t.rows, "x", t.cols, ", expected ", rows, "x",
              cols, " (", layout, ")");
    VKT_CHECK(t.dtype == dtype, op, ": ", what, " is ", dtype_name(t.dtype), " but this path takes ",
              dtype_name(dtype));
}

// The multiplier with which conv.comp's div_by divides x < 2^31 by d exactly: ceil(2^(31 + l) / d) with
// l = ceil(log2 d), below 2^32 for every d >= 2; 0 stands for d = 1.
uint32_t conv_division_magic(uint64_t d) {
    VKT_CHECK(d >= 1 && d < k_max_kernel_elements, "conv2d: divisor ", d, " out of range");
    if (d == 1) return 0;
    uint32_t l = 0;
    while ((uint64_t(1) << l) < d) ++l;
    return uint32_t(((uint64_t(1) << (31 + l)) + d - 1) / d);
}

uint32_t ceil_div(uint32_t a, uint32_t b) {
    return (a + b - 1) / b;
}

// The per-group GEMM of a direction: C (m × n) = A (m × k) · B (k × n); see ConvPush. A data gradient split by
// stride phase gives the GEMM bounding every phase (ceil(h/s) pixels and ceil(k/s) taps along each axis), which
// picks the tiles all its phases run with.
struct ConvGemm {
    uint32_t m, n, k;
};
ConvGemm conv_gemm(ConvDirection direction, const Conv2dShape& s, bool stride_phases) {
    const uint32_t cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups, khw = s.kh * s.kw;
    switch (direction) {
    case ConvDirection::forward: return {cout_g, s.n * s.out_h() * s.out_w(), cin_g * khw};
    case ConvDirection::backward_data:
        if (stride_phases && uses_stride_phases(direction, s))
            return {cin_g, s.n * ceil_div(s.h, s.stride_h) * ceil_div(s.w, s.stride_w),
                    cout_g * ceil_div(s.kh, s.stride_h) * ceil_div(s.kw, s.stride_w)};
        return {cin_g, s.n * s.h * s.w, cout_g * khw};
    case ConvDirection::backward_weight: return {cout_g, cin_g * khw, s.n * s.out_h() * s.out_w()};
    }
    return {0, 0, 0};
}

} // namespace

std::vector<GemmConfig> conv_configs(const runtime::Device& device, GemmPath path, ConvDirection direction,
                                     const Conv2dShape& shape, DType out, bool stride_phases) {
    shape.validate();
    const ConvGemm g = conv_gemm(direction, shape, stride_phases);
    return gemm_configs(device, path, path == GemmPath::fp32 ? DType::f32 : out, g.m, g.n, g.k);
}

uint32_t Conv2dShape::out_h() const {
    return uint32_t(out_extent(h, pad_h, dil_h, kh, stride_h));
}
uint32_t Conv2dShape::out_w() const {
    return uint32_t(out_extent(w, pad_w, dil_w, kw, stride_w));
}

void Conv2dShape::validate() const {
    const struct {
        const char* name;
        uint32_t value;
    } positive[] = {{"n", n},         {"c_in", c_in},         {"h", h},
                    {"w", w},         {"c_out", c_out},       {"kh", kh},
                    {"kw", kw},       {"stride_h", stride_h}, {"stride_w", stride_w},
                    {"dil_h", dil_h}, {"dil_w", dil_w},       {"groups", groups}};
    for (const auto& p : positive) VKT_CHECK(p.value > 0, "conv2d: ", p.name, " must be positive, got 0");
    VKT_CHECK(c_in % groups == 0 && c_out % groups == 0, "conv2d: groups (", groups, ") must divide c_in (", c_in,
              ") and c_out (", c_out, ")");
    constexpr int64_t limit = int64_t(1) << 30; // int arithmetic on padded coordinates in the shader
    VKT_CHECK(int64_t(h) + 2 * int64_t(pad_h) < limit && int64_t(w) + 2 * int64_t(pad_w) < limit &&
                  int64_t(dil_h) * kh < limit && int64_t(dil_w) * kw < limit && int64_t(stride_h) < limit &&
                  int64_t(stride_w) < limit,
              "conv2d: spatial sizes, padding, dilation and strides must stay below 2^30");
    VKT_CHECK(out_extent(h, pad_h, dil_h, kh, stride_h) > 0 && out_extent(w, pad_w, dil_w, kw, stride_w) > 0,
              "conv2d: the ", kh, "x", kw, " kernel with dilation ", dil_h, "x", dil_w, " spans ",
              int64_t(dil_h) * (kh - 1) + 1, "x", int64_t(dil_w) * (kw - 1) + 1, " pixels, more than the ",
              int64_t(h) + 2 * pad_h, "x", int64_t(w) + 2 * pad_w, " padded input");
    const uint64_t oh = out_h(), ow = out_w();
    const struct {
        const char* name;
        uint64_t count;
    } tensors[] = {{"x", uint64_t(n) * c_in * h * w},
                   {"y", uint64_t(n) * c_out * oh * ow},
                   {"w", uint64_t(c_out) * (c_in / groups) * kh * kw}};
    for (const auto& t : tensors)
        VKT_CHECK(t.count < k_max_kernel_elements, "conv2d: ", t.name, " would have ", t.count,
                  " elements; at most 2^31 - 1 are supported (32-bit shader indexing)");
}

bool is_depthwise(const Conv2dShape& s) {
    return s.groups > 1 && s.groups == s.c_in && s.c_out % s.groups == 0;
}

bool uses_depthwise_kernel(const runtime::Device& device, ConvDirection d, const Conv2dShape& s) {
    return plan_depthwise(device, d, s).has_value();
}

bool uses_stride_phases(ConvDirection d, const Conv2dShape& s) {
    return d == ConvDirection::backward_data && (s.stride_h > 1 || s.stride_w > 1) && s.dil_h == 1 && s.dil_w == 1 &&
           s.stride_h * s.stride_w <= k_max_stride_phases;
}

const char* to_string(ConvDirection d) {
    switch (d) {
    case ConvDirection::forward: return "conv_fwd";
    case ConvDirection::backward_data: return "conv_bwd_data";
    case ConvDirection::backward_weight: return "conv_bwd_weight";
    }
    return "conv";
}

void record_conv2d(runtime::Device& device, runtime::Sequence& seq, GemmPath path, ConvDirection direction,
                   const Conv2dShape& s, const MatRef& in0, const MatRef& in1, const MatRef& out, bool accumulate,
                   uint32_t tile, bool stride_phases) {
    const char* op = to_string(direction);
    s.validate();
    VKT_CHECK(path != GemmPath::auto_select, op, ": needs a concrete path, not auto (see choose_conv_path)");
    const DType in_type = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    VKT_CHECK(path != GemmPath::fp32 || out.dtype == DType::f32, op, ": the fp32 path writes fp32 only");
    const uint32_t oh = s.out_h(), ow = s.out_w(), g = s.groups;
    const uint32_t cin_g = s.c_in / g, cout_g = s.c_out / g;
    const uint64_t x_cols = uint64_t(s.c_in) * s.h * s.w, y_cols = uint64_t(s.c_out) * oh * ow;
    const uint64_t w_cols = uint64_t(cin_g) * s.kh * s.kw;
    const char* x_layout = "n x c_in*h*w";
    const char* y_layout = "n x c_out*oh*ow";
    const char* w_layout = "c_out x (c_in/groups)*kh*kw";

    // GEMM per group, and which tensor is A, B and C (binding 0, 1, 2); see ConvPush.
    const MatRef *a = nullptr, *b = nullptr;
    uint32_t m = 0, n = 0, k = 0, dir = 0;
    switch (direction) {
    case ConvDirection::forward: // in0 = x, in1 = w, out = y
        check_tensor(in0, in_type, s.n, x_cols, op, "x", x_layout);
        check_tensor(in1, in_type, s.c_out, w_cols, op, "w", w_layout);
        check_tensor(out, out.dtype, s.n, y_cols, op, "y", y_layout);
        a = &in1;
        b = &in0;
        m = cout_g;
        n = s.n * oh * ow;
        k = cin_g * s.kh * s.kw;
        dir = CONV_DIR_FORWARD;
        break;
    case ConvDirection::backward_data: // in0 = dy, in1 = w, out = dx
        check_tensor(in0, in_type, s.n, y_cols, op, "dy", y_layout);
        check_tensor(in1, in_type, s.c_out, w_cols, op, "w", w_layout);
        check_tensor(out, out.dtype, s.n, x_cols, op, "dx", x_layout);
        a = &in1;
        b = &in0;
        m = cin_g;
        n = s.n * s.h * s.w;
        k = cout_g * s.kh * s.kw;
        dir = CONV_DIR_BACKWARD_DATA;
        break;
    case ConvDirection::backward_weight: // in0 = dy, in1 = x, out = dw
        check_tensor(in0, in_type, s.n, y_cols, op, "dy", y_layout);
        check_tensor(in1, in_type, s.n, x_cols, op, "x", x_layout);
        check_tensor(out, out.dtype, s.c_out, w_cols, op, "dw", w_layout);
        a = &in0;
        b = &in1;
        m = cout_g;
        n = cin_g * s.kh * s.kw;
        k = s.n * oh * ow;
        dir = CONV_DIR_BACKWARD_WEIGHT;
        break;
    }

    if (const auto plan = plan_depthwise(device, direction, s)) {
        record_depthwise_conv2d(device, seq, path, direction, s, *plan, in0, in1, out, accumulate);
        return;
    }
    const bool phases = stride_phases && uses_stride_phases(direction, s);
    if (phases) {
        const ConvGemm pg = conv_gemm(direction, s, true);
        n = pg.n;
        k = pg.k;
        dir = CONV_DIR_BACKWARD_DATA_PHASE;
    }
    const GemmConfig cfg = gemm_config(device, path, out.dtype, m, n, k, false, tile);
    runtime::KernelDesc desc = cfg.kernel_desc("conv_" + cfg.suffix, sizeof(ConvPush), CONV_SPEC_COUNT);
    desc.spec[CONV_SPEC_DIR] = dir;
    const runtime::Kernel& kernel = device.pipelines().get(desc);
    const Operand oa = operand(device, *a, runtime::Access::read);
    const Operand ob = operand(device, *b, runtime::Access::read);
    const Operand oc = operand(device, out, accumulate ? runtime::Access::read_write : runtime::Access::write);
    // validate() bounded every tensor below 2^31 elements and bound-range offsets are below the descriptor
    // alignment, so the shader's 32-bit indices cannot wrap.
    ConvPush pc{};
    pc.m = m;
    pc.n = n;
    pc.k = k;
    pc.a_offset = oa.offset;
    pc.b_offset = ob.offset;
    pc.c_offset = oc.offset;
    pc.c_in_g = cin_g;
    pc.c_out_g = cout_g;
    pc.groups = g;
    pc.h = s.h;
    pc.w = s.w;
    pc.oh = oh;
    pc.ow = ow;
    pc.kh = s.kh;
    pc.kw = s.kw;
    pc.stride_h = s.stride_h;
    pc.stride_w = s.stride_w;
    pc.pad_h = s.pad_h;
    pc.pad_w = s.pad_w;
    pc.dil_h = s.dil_h;
    pc.dil_w = s.dil_w;
    pc.accumulate = accumulate ? 1 : 0;
    pc.div_khw = conv_division_magic(uint64_t(s.kh) * s.kw);
    pc.div_kw = conv_division_magic(s.kw);
    pc.div_ohw = conv_division_magic(uint64_t(oh) * ow);
    pc.div_ow = conv_division_magic(ow);
    pc.div_hw = conv_division_magic(uint64_t(s.h) * s.w);
    pc.div_w = conv_division_magic(s.w);
    pc.div_stride_h = conv_division_magic(s.stride_h);
    pc.div_stride_w = conv_division_magic(s.stride_w);
    if (!phases) {
        const GemmGrid grid = gemm_grid(device, cfg, m, n, g);
        seq.dispatch(kernel, {oa.binding, ob.binding, oc.binding}, &pc, sizeof(pc), grid.x, grid.y, grid.z);
        return;
    }
    // One dispatch per stride phase (ky0, kx0): the dx pixels with (iy + pad_h) mod stride_h = ky0 (and likewise
    // along x) receive exactly the taps ky = ky0 + i·stride_h (kx = kx0 + j·stride_w); see ConvPush. The phases
    // write disjoint pixels, so they need no barrier between them.
    for (uint32_t ky0 = 0; ky0 < s.stride_h; ++ky0)
        for (uint32_t kx0 = 0; kx0 < s.stride_w; ++kx0) {
            const uint32_t iy0 = (ky0 + s.stride_h - s.pad_h % s.stride_h) % s.stride_h;
            const uint32_t ix0 = (kx0 + s.stride_w - s.pad_w % s.stride_w) % s.stride_w;
            if (iy0 >= s.h || ix0 >= s.w) continue; // no dx pixel in this phase
            const uint32_t hp = ceil_div(s.h - iy0, s.stride_h), wp = ceil_div(s.w - ix0, s.stride_w);
            const uint32_t khp = ky0 < s.kh ? ceil_div(s.kh - ky0, s.stride_h) : 0;
            const uint32_t kwp = kx0 < s.kw ? ceil_div(s.kw - kx0, s.stride_w) : 0;
            if ((khp == 0 || kwp == 0) && accumulate) continue; // no tap reaches these pixels: dx keeps its values
            ConvPush pp = pc;
            pp.n = s.n * hp * wp;
            pp.k = cout_g * khp * kwp;
            pp.pad_h = (iy0 + s.pad_h - ky0) / s.stride_h; // cy: exact, and >= 0 since iy0 + pad_h ≡ ky0
            pp.pad_w = (ix0 + s.pad_w - kx0) / s.stride_w;
            pp.dil_h = hp;
            pp.dil_w = wp;
            pp.div_ohw = khp;
            pp.div_ow = kwp;
            pp.div_stride_h = iy0;
            pp.div_stride_w = ix0;
            pp.phase_y = ky0;
            pp.phase_x = kx0;
            pp.div_hw = conv_division_magic(uint64_t(hp) * wp);
            pp.div_w = conv_division_magic(wp);
            pp.div_khw = conv_division_magic(std::max<uint64_t>(uint64_t(khp) * kwp, 1));
            pp.div_kw = conv_division_magic(std::max<uint32_t>(kwp, 1));
            const GemmGrid grid = gemm_grid(device, cfg, m, pp.n, g);
            seq.dispatch(kernel, {oa.binding, ob.binding, oc.binding}, &pp, sizeof(pp), grid.x, grid.y, grid.z);
        }
}

void record_conv2d_forward(runtime::Device& device, runtime::Sequence& seq, GemmPath path, const Conv2dShape& shape,
                           const MatRef& x, const MatRef& w, const MatRef& y, bool accumulate) {
    record_conv2d(device, seq, path, ConvDirection::forward, shape, x, w, y, accumulate);
}

void record_conv2d_backward_data(runtime::Device& device, runtime::Sequence& seq, GemmPath path,
                                 const Conv2dShape& shape, const MatRef& dy, const MatRef& w, const MatRef& dx,
                                 bool accumulate) {
    record_conv2d(device, seq, path, ConvDirection::backward_data, shape, dy, w, dx, accumulate);
}

void record_conv2d_backward_weight(runtime::Device& device, runtime::Sequence& seq, GemmPath path,
                                   const Conv2dShape& shape, const MatRef& dy, const MatRef& x, const MatRef& dw,
                                   bool accumulate) {
    record_conv2d(device, seq, path, ConvDirection::backward_weight, shape, dy, x, dw, accumulate);
}

} // namespace vktrain::kernels
