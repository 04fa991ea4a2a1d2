// Max and average 2-D pooling, forward and backward (overwrite and accumulate), against double-precision CPU
// references with PyTorch's semantics, fed the same (fp16-rounded) inputs, in fp32 and fp16 storage, on odd
// shapes, with windows full of ties, and every operand at a non-zero offset between sentinels.
#include <cmath>
#include <limits>
#include <string>
#include <tuple>

#include "device/support.hpp"
#include "kernels/pool.hpp"

namespace {

using vkt_test::floor_abs;
using vkt_test::place;
using vkt_test::run;
using vkt_test::unit;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
using vktrain::kernels::Pool2dShape;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);

// The CPU reference: y (forward) and the backward gather, in double, plus the sum of |terms| behind each
// value for the tolerance.
struct PoolRef {
    std::vector<double> y, y_mag, dx, dx_mag;
    std::vector<int> dx_terms; // contributions per input element
};

PoolRef reference(const Pool2dShape& s, bool is_max, const std::vector<float>& x, const std::vector<float>& dy) {
    const uint32_t oh = s.out_h(), ow = s.out_w(), planes = s.n * s.c;
    PoolRef r;
    r.y.assign(size_t(planes) * oh * ow, 0.0);
    r.y_mag = r.y;
    r.dx.assign(size_t(planes) * s.h * s.w, 0.0);
    r.dx_mag = r.dx;
    r.dx_terms.assign(r.dx.size(), 0);
    const double area = double(s.kh) * s.kw;
    for (uint32_t pl = 0; pl < planes; ++pl)
        for (uint32_t i = 0; i < oh; ++i)
            for (uint32_t j = 0; j < ow; ++j) {
                const int h0 = int(i * s.stride_h) - int(s.pad_h), w0 = int(j * s.stride_w) - int(s.pad_w);
                double best = -std::numeric_limits<double>::infinity(), sum = 0, mag = 0;
                long arg = -1;
                for (int a = std::max(h0, 0); a < std::min(h0 + int(s.kh), int(s.h)); ++a)
                    for (int b = std::max(w0, 0); b < std::min(w0 + int(s.kw), int(s.w)); ++b) {
                        const size_t k = (size_t(pl) * s.h + a) * s.w + b;
                        const double v = x[k];
                        // PyTorch: (val > maxval) || isnan(val), starting from the first real element.
                        if (arg < 0 || v > best || std::isnan(v)) {
                            best = v;
                            arg = long(k);
                        }
                        sum += v;
                        mag += std::fabs(v);
                    }
                const size_t o = (size_t(pl) * oh + i) * ow + j;
                const double g = dy[o];
                if (is_max) {
                    r.y[o] = best;
                    r.dx[size_t(arg)] += g;
                    r.dx_mag[size_t(arg)] += std::fabs(g);
                    r.dx_terms[size_t(arg)]++;
                } else {
                    r.y[o] = sum / area;
                    r.y_mag[o] = mag / area;
                    for (int a = std::max(h0, 0); a < std::min(h0 + int(s.kh), int(s.h)); ++a)
                        for (int b = std::max(w0, 0); b < std::min(w0 + int(s.kw), int(s.w)); ++b) {
                            const size_t k = (size_t(pl) * s.h + a) * s.w + b;
                            r.dx[k] += g / area;
                            r.dx_mag[k] += std::fabs(g) / area;
                            r.dx_terms[k]++;
                        }
                }
            }
    return r;
}

struct PoolCase {
    DType dtype;
    bool is_max;
    bool ties; // x drawn from a few integers: most windows hold several equal maxima
    Pool2dShape shape;
};

std::string case_name(const PoolCase& c) {
    const Pool2dShape& s = c.shape;
    return std::string(vktrain::kernels::dtype_name(c.dtype)) + (c.is_max ? "_max" : "_avg") + (c.ties ? "_ties" : "") +
           "_" + std::to_string(s.n) + "x" + std::to_string(s.c) + "x" + std::to_string(s.h) + "x" +
           std::to_string(s.w) + "_k" + std::to_string(s.kh) + "x" + std::to_string(s.kw) + "_s" +
           std::to_string(s.stride_h) + "x" + std::to_string(s.stride_w) + "_p" + std::to_string(s.pad_h) + "x" +
           std::to_string(s.pad_w);
}

class PoolTest : public testing::TestWithParam<PoolCase> {};

TEST_P(PoolTest, ForwardAndBackwardMatchReference) {
    const PoolCase c = GetParam();
    const DType dt = c.dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const Pool2dShape& s = c.shape;
    const size_t in_n = size_t(s.n) * s.c * s.h * s.w, out_n = size_t(s.n) * s.c * s.out_h() * s.out_w();
    auto x = vkt_test::random_values(in_n, 7 + s.h * s.w, -4, 4);
    if (c.ties)
        for (float& v : x) v = std::round(v / 2); // -2 .. 2
    x = vkt_test::round_through(x, dt);
    const auto dy = vkt_test::round_through(vkt_test::random_values(out_n, 8 + s.kh, -1, 1), dt);
    const auto start = vkt_test::round_through(vkt_test::random_values(in_n, 9, -1, 1), dt);

    auto xo = place(x, dt, 3), dyo = place(dy, dt, 2);
    auto yo = place(std::vector<float>(out_n, 5.0f), dt, 1);
    auto dxo = place(std::vector<float>(in_n, 5.0f), dt, 4), dxa = place(start, dt, 5);
    run([&](rt::Sequence& seq) {
        // x and dx as N × CHW, y and dy flattened: only the element counts matter.
        const MatRef xr = xo.ref(s.n, s.c * s.h * s.w);
        if (c.is_max) {
            vktrain::kernels::record_max_pool2d(dev, seq, s, xr, yo.ref());
            vktrain::kernels::record_max_pool2d_backward(dev, seq, s, xr, dyo.ref(), dxo.ref(s.n, s.c * s.h * s.w));
            vktrain::kernels::record_max_pool2d_backward(dev, seq, s, xr, dyo.ref(), dxa.ref(), true);
        } else {
            vktrain::kernels::record_avg_pool2d(dev, seq, s, xr, yo.ref());
            vktrain::kernels::record_avg_pool2d_backward(dev, seq, s, dyo.ref(), dxo.ref(s.n, s.c * s.h * s.w));
            vktrain::kernels::record_avg_pool2d_backward(dev, seq, s, dyo.ref(), dxa.ref(), true);
        }
    });
    const PoolRef r = reference(s, c.is_max, x, dy);

    // Max: a selection, exact. Average: a sum of kh·kw terms and a division in fp32, then the store.
    std::vector<double> y_tol(out_n), dx_tol(in_n), dxa_ref(in_n), dxa_tol(in_n);
    const double area = double(s.kh) * s.kw;
    for (size_t o = 0; o < out_n; ++o)
        y_tol[o] = c.is_max ? 0.0 : (area + 2) * k_u32 * r.y_mag[o] + unit(dt) * std::fabs(r.y[o]) + floor_abs(dt);
    // Backward: a sum of dx_terms values (each divided by kh·kw for the average) in fp32, then the store.
    for (size_t i = 0; i < in_n; ++i) {
        const double sum_err = (r.dx_terms[i] + 2) * k_u32 * r.dx_mag[i];
        dx_tol[i] = sum_err + unit(dt) * std::fabs(r.dx[i]) + (r.dx_terms[i] ? floor_abs(dt) : 0.0);
        dxa_ref[i] = r.dx[i] + start[i];
        dxa_tol[i] = sum_err + k_u32 * std::fabs(dxa_ref[i]) + unit(dt) * std::fabs(dxa_ref[i]) + floor_abs(dt);
    }
    vkt_test::expect_close(yo.values(), r.y, y_tol, "y");
    vkt_test::expect_close(dxo.values(), r.dx, dx_tol, "dx");
    vkt_test::expect_close(dxa.values(), dxa_ref, dxa_tol, "dx (accumulate)");
    EXPECT_EQ(xo.values(), x);
    EXPECT_EQ(dyo.values(), dy);
}

std::vector<PoolCase> pool_cases() {
    const Pool2dShape shapes[] = {
        {3, 5, 7, 9, 3, 3, 2, 2, 1, 1}, // kernel 3, stride 2, pad 1
        {3, 5, 7, 9, 2, 2, 2, 2, 0, 0}, // kernel 2, stride 2 (the odd last row and column are dropped)
        {2, 3, 6, 5, 3, 3, 1, 1, 1, 1}, // overlapping windows
        {1, 2, 8, 7, 3, 2, 1, 2, 1, 0}, // asymmetric kernel, stride and padding
        {2, 2, 7, 7, 2, 2, 3, 3, 1, 0}, // stride > kernel: some inputs are in no window
        {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, // a single element
    };
    std::vector<PoolCase> out;
    for (DType d : {DType::f32, DType::f16})
        for (const auto& s : shapes) {
            out.push_back({d, true, false, s});
            out.push_back({d, true, true, s});
            out.push_back({d, false, false, s});
        }
    return out;
}

INSTANTIATE_TEST_SUITE_P(All, PoolTest, testing::ValuesIn(pool_cases()),
                         [](const auto& param_info) { return case_name(param_info.param); });

// Ties resolve to the first maximum in row-major window order, as PyTorch: a plane of equal values sends
// each window's gradient to its top-left real element.
TEST(MaxPool, TiesGoToTheFirstMaximum) {
    auto& dev = vkt_test::device();
    const Pool2dShape s{1, 1, 4, 4, 2, 2, 2, 2, 0, 0};
    auto xo = place(std::vector<float>(16, 1.5f), DType::f32, 0);
    auto dyo = place({1, 2, 3, 4}, DType::f32, 0);
    auto dxo = place(std::vector<float>(16, 9.0f), DType::f32, 0);
    run([&](rt::Sequence& seq) {
        vktrain::kernels::record_max_pool2d_backward(dev, seq, s, xo.ref(), dyo.ref(), dxo.ref());
    });
    const std::vector<float> want = {1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
    EXPECT_EQ(dxo.values(), want);
}

TEST(PoolChecks, RejectBadShapesAndOperands) {
    auto& dev = vkt_test::device();
    rt::Buffer a = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    rt::Buffer b = vkt_test::make_buffer(std::vector<float>(256, 0.0f), DType::f32);
    const auto expect_error = [&](const Pool2dShape& s, const MatRef& x, const MatRef& y, const char* what) {
        rt::Sequence seq(dev);
        seq.begin();
        try {
            vktrain::kernels::record_max_pool2d(dev, seq, s, x, y);
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        seq.end();
    };
    const Pool2dShape ok{1, 2, 8, 8, 2, 2, 2, 2, 0, 0};
    const MatRef x{&a, DType::f32, 1, 128, 0}, y{&b, DType::f32, 1, 32, 0};
    expect_error({1, 2, 8, 8, 2, 2, 2, 2, 2, 0}, x, y, "exceeds half the kernel");
    expect_error({1, 2, 8, 8, 0, 2, 2, 2, 0, 0}, x, y, "kernel 0x2");
    expect_error({1, 2, 8, 8, 2, 2, 0, 2, 0, 0}, x, y, "stride 0x2");
    expect_error({1, 2, 1, 8, 4, 4, 1, 1, 1, 1}, x, y, "smaller than the kernel");
    expect_error(ok, MatRef{&a, DType::f32, 1, 127, 0}, y, "x has 127 elements");
    expect_error(ok, x, MatRef{&b, DType::f32, 1, 33, 0}, "y has 33 elements");
    expect_error(ok, x, MatRef{&a, DType::f32, 1, 32, 100}, "y overlaps x");
    expect_error(ok, x, MatRef{&b, DType::f32, 1, 32, 240}, "overruns");
}

} // namespace
