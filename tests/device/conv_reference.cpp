#include "device/conv_reference.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "runtime/context_access.hpp"

namespace vkt_test {

using vktrain::GemmPath;
using vktrain::kernels::Conv2dShape;
using vktrain::kernels::ConvDirection;
using vktrain::kernels::MatRef;

namespace {

std::unique_ptr<vktrain::Context> g_gemm_conv_context;

// Destroyed when the tests end, before static destruction (as support.cpp does for the shared context).
class GemmConvContextEnvironment : public testing::Environment {
public:
    void TearDown() override { g_gemm_conv_context.reset(); }
};
testing::Environment* const g_environment = testing::AddGlobalTestEnvironment(new GemmConvContextEnvironment);

// make_buffer on a given device (the operands must live on the device that runs the convolution).
vktrain::runtime::Buffer device_buffer(vktrain::runtime::Device& dev, const std::vector<float>& values, DType dtype) {
    const size_t n = std::max<size_t>(values.size(), 1);
    vktrain::runtime::Buffer buf(dev, n * vktrain::kernels::dtype_size(dtype), vktrain::runtime::MemoryKind::readback,
                                 "test");
    if (dtype == DType::f16) {
        std::vector<uint16_t> h(n, 0);
        vktrain::floats_to_halves(values.data(), h.data(), values.size());
        buf.write(h.data(), h.size() * 2);
    } else {
        std::vector<float> f(n, 0.0f);
        std::copy(values.begin(), values.end(), f.begin());
        buf.write(f.data(), f.size() * 4);
    }
    return buf;
}

} // namespace

vktrain::Context& gemm_conv_context() {
    if (!g_gemm_conv_context) {
        vktrain::ContextOptions o = context_options();
        o.allow_depthwise_kernel = false;
        g_gemm_conv_context = std::make_unique<vktrain::Context>(o);
    }
    return *g_gemm_conv_context;
}

Conv2dShape conv_shape(uint32_t n, uint32_t c_in, uint32_t h, uint32_t w, uint32_t c_out, uint32_t kh, uint32_t kw,
                       uint32_t sh, uint32_t sw, uint32_t ph, uint32_t pw, uint32_t dh, uint32_t dw, uint32_t groups) {
    Conv2dShape s;
    s.n = n, s.c_in = c_in, s.h = h, s.w = w, s.c_out = c_out, s.kh = kh, s.kw = kw;
    s.stride_h = sh, s.stride_w = sw, s.pad_h = ph, s.pad_w = pw, s.dil_h = dh, s.dil_w = dw, s.groups = groups;
    return s;
}

void for_each_conv_tap(const Conv2dShape& s, const std::function<void(size_t, size_t, size_t)>& f) {
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

ConvCheck check_conv2d(GemmPath path, DType out, ConvDirection dir, const Conv2dShape& s, bool accumulate,
                       uint32_t seed, uint32_t tile, vktrain::Context* on, bool stride_phases) {
    auto& dev = on ? vktrain::detail::ContextAccess::device(*on) : device();
    const DType in = path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const uint32_t oh = s.out_h(), ow = s.out_w(), cin_g = s.c_in / s.groups, cout_g = s.c_out / s.groups;
    const size_t x_size = size_t(s.n) * s.c_in * s.h * s.w, y_size = size_t(s.n) * s.c_out * oh * ow;
    const size_t w_size = size_t(s.c_out) * cin_g * s.kh * s.kw;
    const MatRef x_ref{nullptr, in, s.n, s.c_in * s.h * s.w}, y_ref{nullptr, in, s.n, s.c_out * oh * ow};
    const MatRef w_ref{nullptr, in, s.c_out, cin_g * s.kh * s.kw};

    // Operands by role (see record_conv2d): in0, in1 -> out, and the reduction length.
    MatRef refs[3] = {x_ref, w_ref, y_ref};
    size_t sizes[3] = {x_size, w_size, y_size};
    uint64_t k = uint64_t(cin_g) * s.kh * s.kw;
    if (dir == ConvDirection::backward_data) {
        refs[0] = y_ref, refs[2] = x_ref;
        sizes[0] = y_size, sizes[2] = x_size;
        k = uint64_t(cout_g) * s.kh * s.kw;
    } else if (dir == ConvDirection::backward_weight) {
        refs[0] = y_ref, refs[1] = x_ref, refs[2] = w_ref;
        sizes[0] = y_size, sizes[1] = x_size, sizes[2] = w_size;
        k = uint64_t(s.n) * oh * ow;
    }
    refs[2].dtype = out;
    const size_t offsets[3] = {3, 5, 7}; // elements before each view (not a multiple of any alignment)
    const float sentinel = 0.75f;
    std::vector<float> host[3];
    for (int i = 0; i < 2; ++i) {
        host[i] = round_through(random_values(offsets[i] + sizes[i] + 2, seed + 10 * uint32_t(i)), in);
    }
    host[2] = std::vector<float>(offsets[2] + sizes[2] + 2, sentinel);
    if (accumulate) {
        const auto init = round_through(random_values(sizes[2], seed + 77), out);
        std::copy(init.begin(), init.end(), host[2].begin() + std::ptrdiff_t(offsets[2]));
    }
    auto b0 = device_buffer(dev, host[0], in);
    auto b1 = device_buffer(dev, host[1], in);
    auto b2 = device_buffer(dev, host[2], out);
    refs[0].buffer = &b0, refs[1].buffer = &b1, refs[2].buffer = &b2;
    for (int i = 0; i < 3; ++i) refs[i].offset = offsets[i];

    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_conv2d(dev, seq, path, dir, s, refs[0], refs[1], refs[2], accumulate, tile, stride_phases);
    seq.end();
    seq.submit_and_wait();
    const auto got = read_buffer(b2, out, host[2].size());

    // Reference: the same pairs of (rounded) inputs, summed in double, with Σ|a·b| for the tolerance.
    std::vector<double> ref(sizes[2], 0.0), mag(sizes[2], 0.0);
    const float* xs = dir == ConvDirection::backward_data ? nullptr
                      : dir == ConvDirection::forward     ? &host[0][3]
                                                          : &host[1][5];
    const float* ws = dir == ConvDirection::backward_weight ? nullptr : &host[1][5];
    const float* ys = dir == ConvDirection::forward ? nullptr : &host[0][3];
    for_each_conv_tap(s, [&](size_t xi, size_t wi, size_t yi) {
        double prod = 0;
        size_t at = 0;
        if (dir == ConvDirection::forward) {
            prod = double(xs[xi]) * ws[wi];
            at = yi;
        } else if (dir == ConvDirection::backward_data) {
            prod = double(ys[yi]) * ws[wi];
            at = xi;
        } else {
            prod = double(ys[yi]) * xs[xi];
            at = wi;
        }
        ref[at] += prod;
        mag[at] += std::fabs(prod);
    });
    const double u32 = unit(DType::f32), u_out = unit(out);
    const double kk = double(k + (accumulate ? 1 : 0));
    const double gamma = kk * u32 / (1 - kk * u32);
    size_t bad = 0;
    ConvCheck result;
    result.tolerance.resize(sizes[2]);
    for (size_t i = 0; i < got.size(); ++i) {
        if (i < offsets[2] || i >= offsets[2] + sizes[2]) {
            if (got[i] != sentinel && bad++ < 5) ADD_FAILURE() << "element " << i << " outside the output changed";
            continue;
        }
        const size_t o = i - offsets[2];
        double r = ref[o], m = mag[o];
        if (accumulate) {
            r += host[2][i];
            m += std::fabs(host[2][i]);
        }
        const double tol = 2 * gamma * m + u_out * std::fabs(r) + floor_abs(out);
        result.tolerance[o] = tol;
        const double err = std::fabs(got[i] - r);
        if (!(err <= tol) && bad++ < 5)
            ADD_FAILURE() << "output[" << o << "] = " << got[i] << ", reference " << r << ", error " << err
                          << " > tolerance " << tol;
    }
    EXPECT_EQ(bad, 0u);
    result.got.assign(got.begin() + std::ptrdiff_t(offsets[2]), got.begin() + std::ptrdiff_t(offsets[2] + sizes[2]));
    return result;
}

} // namespace vkt_test
