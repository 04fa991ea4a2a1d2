// Convolution as implicit GEMM: forward, data gradient and weight gradient on every path, against a
// double-precision CPU reference fed the same (fp16-rounded) inputs, with a tolerance from the reduction
// length (2·γ_K·Σ|a·b| plus the output rounding), on odd shapes (stride, padding, dilation, groups,
// depthwise, 1x1, the CNN recipe's 5x5 layers), operands at non-zero offsets and accumulate mode.
#include <cmath>
#include <functional>

#include "device/support.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm_autotune.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::Conv2dShape;
using vktrain::kernels::ConvDirection;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
using vktrain::kernels::TiledLoop;

struct NamedShape {
    const char* name;
    Conv2dShape s;
};

Conv2dShape make_shape(uint32_t n, uint32_t c_in, uint32_t h, uint32_t w, uint32_t c_out, uint32_t kh, uint32_t kw,
                       uint32_t sh = 1, uint32_t sw = 1, uint32_t ph = 0, uint32_t pw = 0, uint32_t dh = 1,
                       uint32_t dw = 1, uint32_t groups = 1) {
    Conv2dShape s;
    s.n = n, s.c_in = c_in, s.h = h, s.w = w, s.c_out = c_out, s.kh = kh, s.kw = kw;
    s.stride_h = sh, s.stride_w = sw, s.pad_h = ph, s.pad_w = pw, s.dil_h = dh, s.dil_w = dw, s.groups = groups;
    return s;
}

const NamedShape k_shapes[] = {
    {"odd", make_shape(2, 3, 7, 9, 5, 3, 2, 2, 1, 1, 2, 1, 2)},
    {"groups2", make_shape(2, 4, 7, 6, 6, 3, 3, 2, 2, 1, 0, 1, 1, 2)},
    {"depthwise", make_shape(2, 4, 8, 7, 4, 3, 3, 1, 2, 1, 1, 1, 1, 4)},
    {"pointwise", make_shape(3, 5, 4, 6, 7, 1, 1)},
    {"recipe1", make_shape(2, 1, 28, 28, 32, 5, 5, 1, 1, 2, 2)},
    {"recipe2", make_shape(2, 32, 14, 14, 64, 5, 5, 1, 1, 2, 2)},
};

// Calls f(x index, w index, y index) for every multiply of the convolution (all three directions
// multiply the same pairs; they differ in which index accumulates).
void for_each_tap(const Conv2dShape& s, const std::function<void(size_t, size_t, size_t)>& f) {
    const uint32_t oh = s.out_h(), ow = s.out_w(), cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
    for (uint32_t img = 0; img < s.n; ++img)
        for (uint32_t oc = 0; oc < s.c_out; ++oc) {
            const uint32_t g = oc / cout_g;
            for (uint32_t oy = 0; oy < oh; ++oy)
                for (uint32_t ox = 0; ox < ow; ++ox) {
                    const size_t yi = ((size_t(img) * s.c_out + oc) * oh + oy) * ow + ox;
                    for (uint32_t icg = 0; icg < cin_g; ++icg)
                        for (uint32_t ky = 0; ky < s.kh; ++ky)
                            for (uint32_t kx = 0; kx < s.kw; ++kx) {
                                const int64_t iy = int64_t(oy) * s.stride_h + int64_t(ky) * s.dil_h - s.pad_h;
                                const int64_t ix = int64_t(ox) * s.stride_w + int64_t(kx) * s.dil_w - s.pad_w;
                                if (iy < 0 || ix < 0 || iy >= s.h || ix >= s.w) continue;
                                const uint32_t ic = g * cin_g + icg;
                                const size_t xi = ((size_t(img) * s.c_in + ic) * s.h + size_t(iy)) * s.w + size_t(ix);
                                const size_t wi = ((size_t(oc) * cin_g + icg) * s.kh + ky) * s.kw + kx;
                                f(xi, wi, yi);
                            }
                }
        }
}

struct Case {
    GemmPath path;
    DType out;
    ConvDirection dir;
    size_t shape;
    bool accumulate;
    TiledLoop loop;
};

std::string path_name(GemmPath p) {
    return p == GemmPath::coopmat ? "coopmat" : p == GemmPath::tiled_fp16 ? "tiled" : "fp32";
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
    const Case& c = info.param;
    const char* dir = c.dir == ConvDirection::forward         ? "fwd"
                      : c.dir == ConvDirection::backward_data ? "bwd_data"
                                                              : "bwd_weight";
    return path_name(c.path) + "_" + vktrain::kernels::dtype_name(c.out) + "_" + dir + "_" + k_shapes[c.shape].name +
           (c.accumulate ? "_acc" : "") + (c.loop == TiledLoop::shared_memory ? "_smem" : "");
}

class ConvTest : public testing::TestWithParam<Case> {};

TEST_P(ConvTest, MatchesDoubleReference) {
    const Case& c = GetParam();
    if (c.path == GemmPath::coopmat) VKT_REQUIRE_COOPMAT();
    if (c.path != GemmPath::fp32) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const Conv2dShape& s = k_shapes[c.shape].s;
    const DType in = c.path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const uint32_t oh = s.out_h(), ow = s.out_w(), cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
    const size_t x_size = size_t(s.n) * s.c_in * s.h * s.w, y_size = size_t(s.n) * s.c_out * oh * ow;
    const size_t w_size = size_t(s.c_out) * cin_g * s.kh * s.kw;
    const MatRef x_ref{nullptr, in, s.n, s.c_in * s.h * s.w}, y_ref{nullptr, in, s.n, s.c_out * oh * ow};
    const MatRef w_ref{nullptr, in, s.c_out, cin_g * s.kh * s.kw};

    // Operands by role (see record_conv2d): in0, in1 -> out, and the reduction length.
    MatRef refs[3] = {x_ref, w_ref, y_ref};
    size_t sizes[3] = {x_size, w_size, y_size};
    uint64_t k = uint64_t(cin_g) * s.kh * s.kw;
    if (c.dir == ConvDirection::backward_data) {
        refs[0] = y_ref, refs[2] = x_ref;
        sizes[0] = y_size, sizes[2] = x_size;
        k = uint64_t(cout_g) * s.kh * s.kw;
    } else if (c.dir == ConvDirection::backward_weight) {
        refs[0] = y_ref, refs[1] = x_ref, refs[2] = w_ref;
        sizes[0] = y_size, sizes[1] = x_size, sizes[2] = w_size;
        k = uint64_t(s.n) * oh * ow;
    }
    refs[2].dtype = c.out;
    const size_t offsets[3] = {3, 5, 7}; // elements before each view (not a multiple of any alignment)
    const float sentinel = 0.75f;
    std::vector<float> host[3];
    for (int i = 0; i < 2; ++i) {
        host[i] = vkt_test::round_through(
            vkt_test::random_values(offsets[i] + sizes[i] + 2, 100 + 10 * i + uint32_t(c.shape)), in);
    }
    host[2] = std::vector<float>(offsets[2] + sizes[2] + 2, sentinel);
    if (c.accumulate) {
        const auto init = vkt_test::round_through(vkt_test::random_values(sizes[2], 77), c.out);
        std::copy(init.begin(), init.end(), host[2].begin() + std::ptrdiff_t(offsets[2]));
    }
    auto b0 = vkt_test::make_buffer(host[0], in);
    auto b1 = vkt_test::make_buffer(host[1], in);
    auto b2 = vkt_test::make_buffer(host[2], c.out);
    refs[0].buffer = &b0, refs[1].buffer = &b1, refs[2].buffer = &b2;
    for (int i = 0; i < 3; ++i) refs[i].offset = offsets[i];

    vkt_test::ForceTiledLoop force(c.loop);
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_conv2d(dev, seq, c.path, c.dir, s, refs[0], refs[1], refs[2], c.accumulate);
    seq.end();
    seq.submit_and_wait();
    const auto got = vkt_test::read_buffer(b2, c.out, host[2].size());

    // Reference: the same pairs of (rounded) inputs, summed in double, with Σ|a·b| for the tolerance.
    std::vector<double> ref(sizes[2], 0.0), mag(sizes[2], 0.0);
    const float* xs = c.dir == ConvDirection::backward_data ? nullptr
                      : c.dir == ConvDirection::forward     ? &host[0][3]
                                                            : &host[1][5];
    const float* ws = c.dir == ConvDirection::backward_weight ? nullptr : &host[1][5];
    const float* ys = c.dir == ConvDirection::forward ? nullptr : &host[0][3];
    for_each_tap(s, [&](size_t xi, size_t wi, size_t yi) {
        double prod = 0;
        size_t out = 0;
        if (c.dir == ConvDirection::forward) {
            prod = double(xs[xi]) * ws[wi];
            out = yi;
        } else if (c.dir == ConvDirection::backward_data) {
            prod = double(ys[yi]) * ws[wi];
            out = xi;
        } else {
            prod = double(ys[yi]) * xs[xi];
            out = wi;
        }
        ref[out] += prod;
        mag[out] += std::fabs(prod);
    });
    const double u32 = vkt_test::unit(DType::f32), u_out = vkt_test::unit(c.out);
    const double kk = double(k + (c.accumulate ? 1 : 0));
    const double gamma = kk * u32 / (1 - kk * u32);
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (i < offsets[2] || i >= offsets[2] + sizes[2]) {
            if (got[i] != sentinel && bad++ < 5) ADD_FAILURE() << "element " << i << " outside the output changed";
            continue;
        }
        const size_t o = i - offsets[2];
        double r = ref[o], m = mag[o];
        if (c.accumulate) {
            r += host[2][i];
            m += std::fabs(host[2][i]);
        }
        const double tol = 2 * gamma * m + u_out * std::fabs(r) + vkt_test::floor_abs(c.out);
        const double err = std::fabs(got[i] - r);
        if (!(err <= tol) && bad++ < 5)
            ADD_FAILURE() << "output[" << o << "] = " << got[i] << ", reference " << r << ", error " << err
                          << " > tolerance " << tol;
    }
    EXPECT_EQ(bad, 0u);
}

std::vector<Case> all_cases() {
    std::vector<Case> out;
    const std::pair<GemmPath, DType> paths[] = {{GemmPath::fp32, DType::f32},
                                                {GemmPath::tiled_fp16, DType::f16},
                                                {GemmPath::tiled_fp16, DType::f32},
                                                {GemmPath::coopmat, DType::f16},
                                                {GemmPath::coopmat, DType::f32}};
    for (auto [path, d] : paths)
        for (ConvDirection dir : {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight})
            for (size_t shape = 0; shape < std::size(k_shapes); ++shape) {
                out.push_back({path, d, dir, shape, false, TiledLoop::automatic});
                if (shape < 2) out.push_back({path, d, dir, shape, true, TiledLoop::automatic});
                // The other loop of the tiled paths (CPU devices choose register blocks, GPUs shared memory).
                if (path != GemmPath::coopmat && (shape == 0 || shape == 2))
                    out.push_back({path, d, dir, shape, false, TiledLoop::shared_memory});
            }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Conv, ConvTest, testing::ValuesIn(all_cases()), case_name);

TEST(ConvShape, OutputSizeAndValidation) {
    Conv2dShape s = make_shape(2, 3, 7, 9, 5, 3, 2, 2, 1, 1, 2, 1, 2);
    EXPECT_EQ(s.out_h(), 4u);  // (7 + 2 - 2 - 1) / 2 + 1
    EXPECT_EQ(s.out_w(), 11u); // (9 + 4 - 2 - 1) / 1 + 1
    EXPECT_NO_THROW(s.validate());
    auto bad = [](Conv2dShape t) {
        try {
            t.validate();
        } catch (const vktrain::Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    Conv2dShape t = s;
    t.groups = 2; // does not divide c_in = 3
    EXPECT_NE(bad(t).find("groups (2) must divide c_in (3)"), std::string::npos) << bad(t);
    t = s;
    t.stride_w = 0;
    EXPECT_NE(bad(t).find("stride_w must be positive"), std::string::npos) << bad(t);
    t = s;
    t.kh = 12; // 12 > 7 + 2
    EXPECT_NE(bad(t).find("more than the 9x13 padded input"), std::string::npos) << bad(t);
    t = s;
    t.n = 1u << 20, t.c_in = 1u << 10; // x would have 2^30 · 63 elements
    EXPECT_NE(bad(t).find("at most 2^31 - 1"), std::string::npos) << bad(t);
}

TEST(ConvShape, RecordRefusesMismatchedOperands) {
    auto& dev = vkt_test::device();
    const Conv2dShape s = make_shape(1, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1);
    auto buf = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    const MatRef x{&buf, DType::f32, 1, 32}, w{&buf, DType::f32, 3, 18}, y{&buf, DType::f32, 1, 48};
    EXPECT_NO_THROW(vktrain::kernels::record_conv2d_forward(dev, seq, GemmPath::fp32, s, x, w, y));
    try {
        vktrain::kernels::record_conv2d_forward(dev, seq, GemmPath::fp32, s, x, MatRef{&buf, DType::f32, 3, 9}, y);
        ADD_FAILURE() << "a wrong weight shape was accepted";
    } catch (const vktrain::Error& e) {
        EXPECT_NE(std::string(e.what()).find("conv_fwd: w is 3x9, expected 3x18"), std::string::npos) << e.what();
    }
    EXPECT_THROW(vktrain::kernels::record_conv2d_backward_weight(dev, seq, GemmPath::tiled_fp16, s, y, x, w),
                 vktrain::Error); // fp32 operands on an fp16 path
    seq.end();
}

// Path choice for convolutions: keyed like GEMM shapes; forced paths pass through, auto measures both
// fp16 paths where cooperative matrix is usable and otherwise takes the tiled path.
TEST(ConvAutotune, ChoosesAndTimesPaths) {
    auto& dev = vkt_test::device();
    vktrain::kernels::ConvProblem p;
    p.direction = ConvDirection::backward_weight;
    p.shape = make_shape(2, 3, 7, 9, 5, 3, 2, 2, 1, 1, 2, 1, 2);
    p.out = DType::f32;
    EXPECT_EQ(p.key(), "conv_bwd_weight:n=2,c=3,h=7,w=9,oc=5,k=3x2,s=2x1,p=1x2,d=1x2,g=1,out=f32");
    const auto forced = vktrain::kernels::choose_conv_path(dev, GemmPath::fp32, p);
    EXPECT_EQ(forced.path, GemmPath::fp32);
    EXPECT_GT(vktrain::kernels::time_conv(dev, GemmPath::fp32, p, 1), 0.0);
    if (!vkt_test::context().fp16_available()) return;
    const auto chosen = vktrain::kernels::choose_conv_path(dev, GemmPath::auto_select, p);
    if (vkt_test::context().coopmat_available()) {
        EXPECT_GT(chosen.coopmat_us, 0.0);
        EXPECT_GT(chosen.tiled_us, 0.0);
        EXPECT_TRUE(chosen.path == GemmPath::coopmat || chosen.path == GemmPath::tiled_fp16);
    } else {
        EXPECT_EQ(chosen.path, GemmPath::tiled_fp16);
    }
}

} // namespace
