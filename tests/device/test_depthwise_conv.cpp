// The depthwise convolution kernel (groups = c_in, c_out = groups · m; shaders/depthwise_conv.comp): forward, data
// gradient and weight gradient on every path against test_conv.cpp's double-precision reference
// (device/conv_reference.hpp: tolerance 2·γ_K·Σ|a·b| from the reduction length plus the output rounding), on
// MobileNet's shapes and odd ones (stride 2, 5x5, dilation, odd and rectangular planes, batch 3, m = 2 and 3,
// planes spanning several tiles), with accumulate; the same results as the forced per-group GEMM within both
// tolerances; bit-identical weight gradients across runs; and the selection and what reports call it.
#include <cmath>
#include <cstring>

#include "device/conv_reference.hpp"
#include "device/support.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm_autotune.hpp"
#include "runtime/context_access.hpp"
#include "vktrain/model.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::Conv2dShape;
using vktrain::kernels::ConvDirection;
using vktrain::kernels::DType;

struct NamedShape {
    const char* name;
    Conv2dShape s;
};

// conv_shape(n, c_in, h, w, c_out, kh, kw, stride h/w, pad h/w, dilation h/w, groups)
const NamedShape k_shapes[] = {
    {"k3s1p1", vkt_test::conv_shape(2, 5, 9, 11, 5, 3, 3, 1, 1, 1, 1, 1, 1, 5)},
    {"k3s2p1", vkt_test::conv_shape(2, 4, 11, 9, 4, 3, 3, 2, 2, 1, 1, 1, 1, 4)},
    {"k5s1p2", vkt_test::conv_shape(1, 3, 10, 13, 3, 5, 5, 1, 1, 2, 2, 1, 1, 3)},
    {"k3d2", vkt_test::conv_shape(2, 3, 9, 10, 3, 3, 3, 1, 1, 2, 2, 2, 2, 3)},
    // Batch 3, odd 7x5 planes, a 3x2 kernel with stride (2, 1), padding (1, 0) and dilation (1, 2).
    {"batch3_odd", vkt_test::conv_shape(3, 4, 7, 5, 4, 3, 2, 2, 1, 1, 0, 1, 2, 4)},
    {"m2", vkt_test::conv_shape(2, 3, 8, 9, 6, 3, 3, 2, 2, 1, 1, 1, 1, 3)},
    {"m3_k5s2", vkt_test::conv_shape(1, 2, 9, 12, 6, 5, 5, 2, 2, 2, 2, 1, 1, 2)},
    // Planes of several tiles in both directions (37x70 in, 19x35 out).
    {"tiles", vkt_test::conv_shape(2, 3, 37, 70, 3, 3, 3, 2, 2, 1, 1, 1, 1, 3)},
};

struct Case {
    GemmPath path;
    DType out;
    ConvDirection dir;
    size_t shape;
    bool accumulate;
};

std::string path_name(GemmPath p) {
    return p == GemmPath::coopmat ? "coopmat" : p == GemmPath::tiled_fp16 ? "tiled" : "fp32";
}

const char* dir_name(ConvDirection d) {
    return d == ConvDirection::forward ? "fwd" : d == ConvDirection::backward_data ? "bwd_data" : "bwd_weight";
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
    const Case& c = info.param;
    return path_name(c.path) + "_" + vktrain::kernels::dtype_name(c.out) + "_" + dir_name(c.dir) + "_" +
           k_shapes[c.shape].name + (c.accumulate ? "_acc" : "");
}

bool skip_path(GemmPath path) {
    if (path == GemmPath::coopmat && !vkt_test::context().coopmat_available()) {
        if (vkt_test::expect_coopmat()) ADD_FAILURE() << "cooperative matrix expected but unavailable";
        return true;
    }
    return path != GemmPath::fp32 && !vkt_test::context().fp16_available();
}

class DepthwiseConvTest : public testing::TestWithParam<Case> {};

TEST_P(DepthwiseConvTest, MatchesDoubleReference) {
    const Case& c = GetParam();
    if (skip_path(c.path)) GTEST_SKIP() << path_name(c.path) << " is not available on this device";
    const Conv2dShape& s = k_shapes[c.shape].s;
    ASSERT_TRUE(vktrain::kernels::uses_depthwise_kernel(vkt_test::device(), c.dir, s));
    vkt_test::check_conv2d(c.path, c.out, c.dir, s, c.accumulate, 300 + uint32_t(c.shape));
}

const std::pair<GemmPath, DType> k_paths[] = {{GemmPath::fp32, DType::f32},
                                              {GemmPath::tiled_fp16, DType::f16},
                                              {GemmPath::tiled_fp16, DType::f32},
                                              {GemmPath::coopmat, DType::f16},
                                              {GemmPath::coopmat, DType::f32}};
const ConvDirection k_dirs[] = {ConvDirection::forward, ConvDirection::backward_data, ConvDirection::backward_weight};

std::vector<Case> all_cases() {
    std::vector<Case> out;
    for (auto [path, d] : k_paths)
        for (ConvDirection dir : k_dirs)
            for (size_t shape = 0; shape < std::size(k_shapes); ++shape) {
                // fp16 in, fp32 out (the weight gradients of mixed precision) on fewer shapes: each shape and
                // direction is a pipeline of its own to compile.
                if (d == DType::f32 && path != GemmPath::fp32 && shape != 1 && shape != 4 && shape != 5) continue;
                out.push_back({path, d, dir, shape, false});
                if (shape == 1 || shape == 5) out.push_back({path, d, dir, shape, true});
            }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Depthwise, DepthwiseConvTest, testing::ValuesIn(all_cases()), case_name);

// Path invariance: the depthwise kernel and the forced per-group GEMM on the same operands agree within the sum of
// their tolerances against the exact result (each is checked against it too).
TEST(DepthwiseConv, MatchesForcedGemmPath) {
    for (auto [path, d] : k_paths) {
        if (skip_path(path)) continue;
        for (ConvDirection dir : k_dirs)
            for (size_t shape : {size_t(1), size_t(4), size_t(5)}) {
                const Conv2dShape& s = k_shapes[shape].s;
                SCOPED_TRACE(path_name(path) + " " + vktrain::kernels::dtype_name(d) + " " + dir_name(dir) + " " +
                             k_shapes[shape].name);
                vkt_test::ConvCheck kernel, gemm;
                kernel = vkt_test::check_conv2d(path, d, dir, s, true, 500 + uint32_t(shape));
                vktrain::Context& gemm_context = vkt_test::gemm_conv_context();
                ASSERT_FALSE(vktrain::kernels::uses_depthwise_kernel(
                    vktrain::detail::ContextAccess::device(gemm_context), dir, s));
                gemm = vkt_test::check_conv2d(path, d, dir, s, true, 500 + uint32_t(shape), 0, &gemm_context);
                ASSERT_EQ(kernel.got.size(), gemm.got.size());
                size_t bad = 0;
                for (size_t i = 0; i < kernel.got.size(); ++i) {
                    const double diff = std::fabs(double(kernel.got[i]) - double(gemm.got[i]));
                    if (!(diff <= kernel.tolerance[i] + gemm.tolerance[i]) && bad++ < 5)
                        ADD_FAILURE() << "element " << i << ": depthwise " << kernel.got[i] << ", gemm " << gemm.got[i];
                }
                EXPECT_EQ(bad, 0u);
            }
    }
}

// The weight gradient reduces over the batch and positions in a fixed order: the same bits on every run.
TEST(DepthwiseConv, WeightGradientIsDeterministic) {
    for (size_t shape : {size_t(0), size_t(7)}) {
        const Conv2dShape& s = k_shapes[shape].s;
        const auto a = vkt_test::check_conv2d(GemmPath::fp32, DType::f32, ConvDirection::backward_weight, s, false, 9);
        const auto b = vkt_test::check_conv2d(GemmPath::fp32, DType::f32, ConvDirection::backward_weight, s, false, 9);
        ASSERT_EQ(a.got.size(), b.got.size());
        EXPECT_EQ(std::memcmp(a.got.data(), b.got.data(), a.got.size() * sizeof(float)), 0) << k_shapes[shape].name;
    }
}

// Which convolutions take the kernel: depthwise ones of any multiplier; not dense or grouped ones, not when forced
// onto the GEMM by ContextOptions::allow_depthwise_kernel (a per-context switch: both contexts coexist), and not a
// kernel too large to stage (which still runs, on the GEMM).
TEST(DepthwiseConv, Selection) {
    auto& dev = vkt_test::device();
    using vktrain::kernels::is_depthwise;
    using vktrain::kernels::uses_depthwise_kernel;
    EXPECT_TRUE(vktrain::ContextOptions{}.allow_depthwise_kernel);
    EXPECT_TRUE(vkt_test::context().depthwise_kernel_available());
    const Conv2dShape dw = k_shapes[0].s;
    EXPECT_TRUE(is_depthwise(dw));
    EXPECT_TRUE(is_depthwise(k_shapes[5].s));                                                   // m = 2
    EXPECT_FALSE(is_depthwise(vkt_test::conv_shape(2, 4, 8, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2))); // groups 2 of 2
    EXPECT_FALSE(is_depthwise(vkt_test::conv_shape(2, 1, 8, 8, 4, 3, 3)));                      // dense, c_in = 1
    for (ConvDirection dir : k_dirs) EXPECT_TRUE(uses_depthwise_kernel(dev, dir, dw));
    vktrain::Context& gemm_context = vkt_test::gemm_conv_context();
    EXPECT_FALSE(gemm_context.depthwise_kernel_available());
    for (ConvDirection dir : k_dirs)
        EXPECT_FALSE(uses_depthwise_kernel(vktrain::detail::ContextAccess::device(gemm_context), dir, dw));
    EXPECT_TRUE(uses_depthwise_kernel(dev, ConvDirection::forward, dw)); // the shared context is unaffected
    // An 11x11 kernel (121 taps) stays on the GEMM, and still computes the right thing there.
    const Conv2dShape big = vkt_test::conv_shape(1, 2, 12, 12, 2, 11, 11, 1, 1, 5, 5, 1, 1, 2);
    EXPECT_FALSE(uses_depthwise_kernel(dev, ConvDirection::forward, big));
    vkt_test::check_conv2d(GemmPath::fp32, DType::f32, ConvDirection::forward, big, false, 4);
}

// In a model: the path report and the profile name depthwise convolution sites "depthwise", and forcing the GEMM
// path (ContextOptions::allow_depthwise_kernel false) gives the same loss.
TEST(DepthwiseConv, ModelReportsAndProfileNameTheKernel) {
    vktrain::Model m;
    int x = m.input("x", {126});
    x = m.reshape(m.linear(x, 126), {3, 6, 7}); // so that the convolution's input gradient is computed too
    vktrain::Conv2dOptions o = vktrain::Conv2dOptions::square(3, 1, 1);
    o.groups = 3;
    x = m.relu(m.conv2d(x, 3, o));
    x = m.linear(m.flatten(x), 4);
    m.softmax_cross_entropy(x);
    const uint32_t batch = 2;
    const auto xs = vkt_test::random_values(size_t(batch) * 126, 21);
    const std::vector<int32_t> labels = {1, 3};
    vktrain::TrainerOptions to;
    to.precision = vktrain::Precision::fp32;
    to.batch_size = batch;
    to.seed = 5;
    std::vector<std::vector<float>> grads_kernel, grads_gemm;
    float loss_kernel = 0, loss_gemm = 0;
    {
        vktrain::Trainer t(vkt_test::context(), m, to);
        size_t depthwise_sites = 0;
        for (const auto& r : t.gemm_paths())
            if (r.tiles.rfind("depthwise", 0) == 0) ++depthwise_sites;
        EXPECT_EQ(depthwise_sites, 3u); // forward, weight gradient, input gradient
        const auto p = t.profile_step(xs.data(), labels.data(), batch);
        size_t named = 0;
        for (const auto& op : p.ops) named += op.name.find(" (depthwise fp32)") != std::string::npos ? 1 : 0;
        EXPECT_EQ(named, 3u);
        loss_kernel = t.compute_gradients(xs.data(), labels.data(), batch, grads_kernel);
    }
    {
        vktrain::Trainer t(vkt_test::gemm_conv_context(), m, to);
        for (const auto& r : t.gemm_paths()) EXPECT_EQ(r.tiles.rfind("depthwise", 0), std::string::npos) << r.site;
        loss_gemm = t.compute_gradients(xs.data(), labels.data(), batch, grads_gemm);
    }
    EXPECT_NEAR(loss_kernel, loss_gemm, 1e-5f * std::fabs(loss_gemm) + 1e-6f);
    ASSERT_EQ(grads_kernel.size(), grads_gemm.size());
    for (size_t k = 0; k < grads_kernel.size(); ++k) {
        ASSERT_EQ(grads_kernel[k].size(), grads_gemm[k].size());
        for (size_t i = 0; i < grads_kernel[k].size(); ++i)
            EXPECT_NEAR(grads_kernel[k][i], grads_gemm[k][i], 1e-4f * (1.0f + std::fabs(grads_gemm[k][i])))
                << "gradient " << k << "[" << i << "]";
    }
}

} // namespace
