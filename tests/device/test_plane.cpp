// The per-plane kernels of ResNet's and MobileNet's heads (src/kernels/plane.hpp): adaptive average pooling forward
// and backward (PyTorch's bins, overlapping and up-sampling sizes, global pooling through the plane reduction and
// through the per-output loop), the per-plane sums, and squeeze-excitation's channel_mul, against double-precision
// CPU references in fp32 and fp16, operands between sentinels. Also the vision activations at their kinks (PyTorch's
// gradients) and the global pooling timing of a MobileNetV2 head.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>

#include "device/support.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/plane.hpp"

namespace {

using vktrain::kernels::AdaptivePool2dShape;
using vktrain::kernels::DType;
namespace rt = vktrain::runtime;
using vkt_test::expect_close;
using vkt_test::floor_abs;
using vkt_test::place;
using vkt_test::run;
using vkt_test::unit;

const double k_u32 = std::ldexp(1.0, -24);

uint32_t bin_start(uint32_t i, uint32_t size, uint32_t bins) {
    return uint32_t(uint64_t(i) * size / bins);
}
uint32_t bin_end(uint32_t i, uint32_t size, uint32_t bins) {
    return uint32_t((uint64_t(i + 1) * size + bins - 1) / bins);
}

struct PoolCase {
    AdaptivePool2dShape s;
    DType dt;
    bool accumulate;
};

std::string case_name(const PoolCase& c) {
    const auto& s = c.s;
    return std::to_string(s.n) + "x" + std::to_string(s.c) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w) +
           "_to_" + std::to_string(s.oh) + "x" + std::to_string(s.ow) + "_" + vktrain::kernels::dtype_name(c.dt) +
           (c.accumulate ? "_acc" : "");
}

class AdaptivePoolTest : public testing::TestWithParam<PoolCase> {};

TEST_P(AdaptivePoolTest, ForwardAndBackwardMatchReference) {
    const PoolCase c = GetParam();
    if (c.dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const AdaptivePool2dShape s = c.s;
    const size_t planes = size_t(s.n) * s.c, in_n = planes * s.h * s.w, out_n = planes * s.oh * s.ow;
    const auto x = vkt_test::round_through(vkt_test::random_values(in_n, 31 + s.h), c.dt);
    const auto dy = vkt_test::round_through(vkt_test::random_values(out_n, 32 + s.w), c.dt);
    const auto dx0 = vkt_test::round_through(vkt_test::random_values(in_n, 33), c.dt);
    vkt_test::Placed xo = place(x, c.dt, 3), dyo = place(dy, c.dt, 1);
    vkt_test::Placed yo = place(std::vector<float>(out_n, 5.0f), c.dt, 2),
                     y2o = place(std::vector<float>(out_n, 5.0f), c.dt, 2);
    vkt_test::Placed dxo = place(c.accumulate ? dx0 : std::vector<float>(in_n, 5.0f), c.dt, 4);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_adaptive_avg_pool2d(dev, seq, s, xo.ref(), yo.ref());
        vktrain::kernels::record_adaptive_avg_pool2d(dev, seq, s, xo.ref(), y2o.ref(), false); // per-output loop
        vktrain::kernels::record_adaptive_avg_pool2d_backward(dev, seq, s, dyo.ref(), dxo.ref(), c.accumulate);
    });
    std::vector<double> y(out_n), y_tol(out_n), dx(in_n, 0.0), dx_mag(in_n, 0.0);
    std::vector<int> dx_terms(in_n, 0);
    for (size_t p = 0; p < planes; ++p)
        for (uint32_t i = 0; i < s.oh; ++i)
            for (uint32_t j = 0; j < s.ow; ++j) {
                const uint32_t h0 = bin_start(i, s.h, s.oh), h1 = bin_end(i, s.h, s.oh);
                const uint32_t w0 = bin_start(j, s.w, s.ow), w1 = bin_end(j, s.w, s.ow);
                const double count = double(h1 - h0) * (w1 - w0);
                const size_t o = (p * s.oh + i) * s.ow + j;
                double sum = 0, mag = 0;
                for (uint32_t a = h0; a < h1; ++a)
                    for (uint32_t b = w0; b < w1; ++b) {
                        const size_t k = (p * s.h + a) * s.w + b;
                        sum += x[k];
                        mag += std::fabs(x[k]);
                        dx[k] += dy[o] / count;
                        dx_mag[k] += std::fabs(dy[o]) / count;
                        dx_terms[k]++;
                    }
                y[o] = sum / count;
                // A sum of count terms (a tree of 64 lanes or a serial loop), a multiplication or division.
                y_tol[o] = (count + 10) * k_u32 * mag / count + unit(c.dt) * std::fabs(y[o]) + floor_abs(c.dt);
            }
    std::vector<double> dx_tol(in_n);
    for (size_t k = 0; k < in_n; ++k) {
        double mag = dx_mag[k];
        if (c.accumulate) {
            dx[k] += dx0[k];
            mag += std::fabs(dx0[k]);
        }
        dx_tol[k] = (dx_terms[k] + 4) * 2 * k_u32 * mag + unit(c.dt) * std::fabs(dx[k]) + floor_abs(c.dt);
    }
    expect_close(yo.values(), y, y_tol, "y");
    expect_close(y2o.values(), y, y_tol, "y (per-output loop)");
    expect_close(dxo.values(), dx, dx_tol, "dx");
    xo.values();
    dyo.values();
}

std::vector<PoolCase> pool_cases() {
    const AdaptivePool2dShape shapes[] = {
        {2, 3, 7, 7, 1, 1},   // global average pooling (the plane reduction)
        {1, 2, 70, 90, 1, 1}, // long planes: many elements per reduction lane
        {2, 3, 5, 7, 3, 2},   // overlapping bins
        {1, 2, 4, 6, 2, 3},   // exact division: AvgPool2d's windows
        {1, 3, 3, 2, 5, 4},   // up-sampling: bins of one cell, repeated
        {2, 2, 6, 6, 6, 6},   // identity
        {1, 1, 1, 1, 1, 1},
    };
    std::vector<PoolCase> out;
    for (const auto& s : shapes)
        for (DType dt : {DType::f32, DType::f16})
            for (bool acc : {false, true}) out.push_back({s, dt, acc});
    return out;
}

INSTANTIATE_TEST_SUITE_P(All, AdaptivePoolTest, testing::ValuesIn(pool_cases()),
                         [](const auto& param_info) { return case_name(param_info.param); });

TEST(AdaptivePool, BadShapesAreOneLineErrors) {
    auto& dev = vkt_test::device();
    vkt_test::Placed xo = place(std::vector<float>(12, 1.0f), DType::f32, 0);
    vkt_test::Placed yo = place(std::vector<float>(4, 1.0f), DType::f32, 0);
    const auto fails = [&](const AdaptivePool2dShape& s, const std::string& what) {
        try {
            run([&](rt::Sequence& seq) {
                vktrain::kernels::record_adaptive_avg_pool2d(dev, seq, s, xo.ref(), yo.ref());
            });
            ADD_FAILURE() << "no error for " << what;
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    fails({1, 1, 3, 4, 0, 2}, "adaptive_avg_pool2d: output 0x2 must be at least 1x1");
    fails({1, 1, 3, 4, 2, 3}, "adaptive_avg_pool2d: y"); // 6 outputs, 4 given
    fails({1, 2, 3, 4, 2, 2}, "adaptive_avg_pool2d: x"); // 24 inputs, 12 given
}

// Per-plane sums with and without a product (global pooling's and squeeze-excitation's ds), in both schedules, and
// channel_mul.
TEST(PlaneKernels, SumAndChannelMulMatchReference) {
    auto& dev = vkt_test::device();
    using vktrain::kernels::PlaneSchedule;
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        for (uint32_t inner : {1u, 7u, 49u, 300u})
            for (PlaneSchedule schedule : {PlaneSchedule::serial, PlaneSchedule::workgroup}) {
                const uint32_t planes = 37;
                const size_t n = size_t(planes) * inner;
                const auto a = vkt_test::round_through(vkt_test::random_values(n, 41 + inner), dt);
                const auto b = vkt_test::round_through(vkt_test::random_values(n, 42 + inner), dt);
                const auto s = vkt_test::round_through(vkt_test::random_values(planes, 43 + inner, -2, 2), dt);
                vkt_test::Placed ao = place(a, dt, 1), bo = place(b, dt, 2), so = place(s, dt, 3);
                vkt_test::Placed sum = place(std::vector<float>(planes, 5.0f), dt, 2),
                                 dot = place(std::vector<float>(planes, 5.0f), dt, 1),
                                 mul = place(std::vector<float>(n, 5.0f), dt, 4);
                const vktrain::kernels::MatRef bref = bo.ref();
                run([&](rt::Sequence& seq) {
                    vktrain::kernels::record_plane_sum(dev, seq, planes, inner, ao.ref(), nullptr, sum.ref(), 0.5f,
                                                       schedule);
                    vktrain::kernels::record_plane_sum(dev, seq, planes, inner, ao.ref(), &bref, dot.ref(), 1.0f,
                                                       schedule);
                    vktrain::kernels::record_channel_mul(dev, seq, planes, inner, ao.ref(), so.ref(), mul.ref());
                });
                std::vector<double> rs(planes), ts(planes), rd(planes), td(planes), rm(n), tm(n);
                for (uint32_t q = 0; q < planes; ++q) {
                    double s1 = 0, m1 = 0, s2 = 0, m2 = 0;
                    for (uint32_t j = 0; j < inner; ++j) {
                        const size_t k = size_t(q) * inner + j;
                        s1 += a[k];
                        m1 += std::fabs(a[k]);
                        s2 += double(a[k]) * b[k];
                        m2 += std::fabs(double(a[k]) * b[k]);
                        rm[k] = double(a[k]) * s[q];
                        tm[k] = (k_u32 + unit(dt)) * std::fabs(rm[k]) + floor_abs(dt);
                    }
                    rs[q] = 0.5 * s1;
                    // Serial: a chain of `inner` additions; the tree: inner / 64 per lane, then 6 levels.
                    ts[q] = (inner + 10) * k_u32 * m1 + unit(dt) * std::fabs(rs[q]) + floor_abs(dt);
                    rd[q] = s2;
                    td[q] = (inner + 12) * k_u32 * m2 + unit(dt) * std::fabs(rd[q]) + floor_abs(dt);
                }
                const std::string what = std::string(vktrain::kernels::dtype_name(dt)) + " inner " +
                                         std::to_string(inner) +
                                         (schedule == PlaneSchedule::serial ? " serial" : " workgroup");
                expect_close(sum.values(), rs, ts, "plane sum " + what);
                expect_close(dot.values(), rd, td, "plane dot " + what);
                expect_close(mul.values(), rm, tm, "channel_mul " + what);
                ao.values();
                bo.values();
                so.values();
            }
    }
}

// ReLU6, hardswish and hardsigmoid exactly at their kinks and beyond, with PyTorch 1.13's values (its scalar CPU and
// CUDA kernels: hardswish' is -0.5 at -3 and 1.5 at 3; relu6' and hardsigmoid' are 0 at their kinks), NaN included.
TEST(ActivationSpecial, VisionKinksMatchPyTorch) {
    using vktrain::kernels::Activation;
    auto& dev = vkt_test::device();
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const std::vector<float> x = {-3.0f, 0.0f, 3.0f, 6.0f, -7.0f, 8.0f, -inf, inf, nan};
    struct Expect {
        Activation act;
        std::vector<float> y, grad;
    };
    const std::vector<Expect> expected = {
        {Activation::relu6, {0, 0, 3, 6, 0, 6, 0, 6, nan}, {0, 0, 1, 0, 0, 0, 0, 0, 1}},
        {Activation::hardswish, {-0.0f, 0, 3, 6, -0.0f, 8, nan, inf, nan}, {-0.5f, 0.5f, 1.5f, 1, 0, 1, 0, 1, 1}},
        {Activation::hardsigmoid, {0, 0.5f, 1, 1, 0, 1, 0, 1, nan}, {0, 1.0f / 6, 0, 0, 0, 0, 0, 0, 0}},
    };
    const auto n = uint32_t(x.size());
    for (const Expect& e : expected) {
        vkt_test::Placed xo = place(x, DType::f32, 1), ones = place(std::vector<float>(n, 1.0f), DType::f32, 2);
        vkt_test::Placed yo = place(std::vector<float>(n, 5.0f), DType::f32, 3),
                         dxo = place(std::vector<float>(n, 5.0f), DType::f32, 1);
        run([&](rt::Sequence& seq) {
            vktrain::kernels::record_activation(dev, seq, e.act, xo.ref(), yo.ref());
            vktrain::kernels::record_activation_backward(dev, seq, e.act, xo.ref(), ones.ref(), dxo.ref());
        });
        const auto y = yo.values(), dx = dxo.values();
        for (uint32_t i = 0; i < n; ++i) {
            const std::string at = "act " + std::to_string(int(e.act)) + " at x = " + std::to_string(x[i]);
            if (std::isnan(e.y[i]))
                EXPECT_TRUE(std::isnan(y[i])) << at << ": y = " << y[i];
            else
                EXPECT_EQ(y[i], e.y[i]) << at;
            EXPECT_FLOAT_EQ(dx[i], e.grad[i]) << at << " (gradient)";
        }
    }
}

// Global average pooling of a MobileNetV2 head, [1280, 7, 7] x 32, by the per-output loop of the adaptive kernel and
// by both schedules of the plane sums, and the plane sums of other shapes (ResNet's [512, 7, 7] x 32, early layers'
// long planes). Prints the times; checks nothing about speed (timings are not tests) but that every way agrees.
TEST(PlaneTiming, GlobalAveragePool) {
    using vktrain::kernels::PlaneSchedule;
    auto& dev = vkt_test::device();
    const auto time_ms = [&](const std::function<void(rt::Sequence&)>& once) {
        const auto record = [&](rt::Sequence& seq) {
            for (int r = 0; r < 2; ++r) once(seq);
        };
        run(record); // warm-up: pipelines compiled
        const auto t0 = std::chrono::steady_clock::now();
        run(record);
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 2;
    };
    struct Case {
        uint32_t planes, inner;
    };
    for (const Case c : {Case{32 * 1280, 49}, Case{32 * 512, 49}, Case{32 * 64, 3136}, Case{2 * 64, 12544}}) {
        const size_t in_n = size_t(c.planes) * c.inner;
        vkt_test::Placed xo = place(vkt_test::random_values(in_n, 51), DType::f32, 0);
        vkt_test::Placed y1 = place(std::vector<float>(c.planes, 0.0f), DType::f32, 0),
                         y2 = place(std::vector<float>(c.planes, 0.0f), DType::f32, 0),
                         y3 = place(std::vector<float>(c.planes, 0.0f), DType::f32, 0);
        const AdaptivePool2dShape s{1, c.planes, c.inner, 1, 1, 1};
        const float scale = 1.0f / float(c.inner);
        const double loop = time_ms([&](rt::Sequence& seq) {
            vktrain::kernels::record_adaptive_avg_pool2d(dev, seq, s, xo.ref(), y1.ref(), false);
        });
        const double serial = time_ms([&](rt::Sequence& seq) {
            vktrain::kernels::record_plane_sum(dev, seq, c.planes, c.inner, xo.ref(), nullptr, y2.ref(), scale,
                                               PlaneSchedule::serial);
        });
        const double tree = time_ms([&](rt::Sequence& seq) {
            vktrain::kernels::record_plane_sum(dev, seq, c.planes, c.inner, xo.ref(), nullptr, y3.ref(), scale,
                                               PlaneSchedule::workgroup);
        });
        const double gb = double(in_n) * 4 / 1e6;
        std::printf("global average pool of %u planes of %u: per-output loop %.3f ms (%.2f GB/s), plane sums serial "
                    "%.3f ms (%.2f GB/s), workgroup tree %.3f ms (%.2f GB/s)\n",
                    c.planes, c.inner, loop, gb / loop, serial, gb / serial, tree, gb / tree);
        const auto a = y1.values(), b = y2.values(), t = y3.values();
        for (uint32_t q = 0; q < c.planes; q += 97) {
            EXPECT_NEAR(a[q], b[q], 1e-5) << q;
            EXPECT_NEAR(a[q], t[q], 1e-5) << q;
        }
    }
}

} // namespace
