// Dropout: the device mask equals the host twin (dropout_keep) element for element, the kept fraction is
// within statistical bounds, a new step (rewritten in the step buffer, the recorded sequence replayed
// unchanged) gives a new mask while the same seed and step give the same one, backward applies the forward
// mask (overwrite and accumulate), in fp32 and fp16, with operands at non-zero offsets between sentinels.
#include <cmath>
#include <cstring>
#include <string>

#include "device/support.hpp"
#include "kernels/dropout.hpp"

namespace {

using vkt_test::floor_abs;
using vkt_test::place;
using vkt_test::Placed;
using vkt_test::unit;
using vktrain::kernels::dropout_keep;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);
constexpr uint32_t k_step_offset = 12; // bytes: the step word sits inside a small parameter buffer

// Values in ±[0.5, 1.5): never zero, so a zero output means a dropped element.
std::vector<float> nonzero_values(size_t n, uint32_t seed, DType dt) {
    auto v = vkt_test::random_values(n, seed, 0.5f, 1.5f);
    for (size_t i = 0; i < n; i += 2) v[i] = -v[i];
    return vkt_test::round_through(v, dt);
}

rt::Buffer step_buffer(uint32_t step) {
    std::vector<uint32_t> words(8, 0xdeadbeefu);
    words[k_step_offset / 4] = step;
    return vkt_test::make_buffer_u32(words);
}

void set_step(rt::Buffer& buf, uint32_t step) {
    buf.write(&step, 4, k_step_offset);
}

// Checks out against in·keep/(1-p) (plus `start` when accumulating): the mask exactly (a kept element is never
// zero), the value within one fp32 product with the rounded scale and the store.
void expect_dropout(const std::vector<float>& got, const std::vector<float>& in, const std::vector<float>* start,
                    float p, uint32_t seed, uint32_t step, DType dt, const std::string& what) {
    size_t mask_bad = 0;
    std::vector<double> ref(in.size()), tol(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        const bool keep = dropout_keep(p, seed, step, i);
        const double v = keep ? double(in[i]) / (1.0 - double(p)) : 0.0;
        ref[i] = v + (start ? (*start)[i] : 0.0);
        tol[i] = 3 * k_u32 * std::fabs(v) + k_u32 * std::fabs(ref[i]) + unit(dt) * std::fabs(ref[i]) + floor_abs(dt);
        if (!start && (got[i] != 0.0f) != keep && mask_bad++ < 5)
            ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", host mask says "
                          << (keep ? "kept" : "dropped");
    }
    EXPECT_EQ(mask_bad, 0u) << what;
    vkt_test::expect_close(got, ref, tol, what);
}

class DropoutTest : public testing::TestWithParam<DType> {};

TEST_P(DropoutTest, MaskMatchesHostTwinAndBackwardReusesIt) {
    const DType dt = GetParam();
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const uint32_t n = 10007; // not a multiple of the 4 elements one Philox block decides
    const float p = 0.3f;
    const uint32_t seed = 1234, step = 7;
    const auto x = nonzero_values(n, 401, dt), dy = nonzero_values(n, 402, dt);
    const auto start = vkt_test::round_through(vkt_test::random_values(n, 403), dt);
    rt::Buffer sb = step_buffer(step);
    Placed xo = place(x, dt, 3), yo = place(std::vector<float>(n, 5.0f), dt, 1);
    Placed dyo = place(dy, dt, 2), dxo = place(std::vector<float>(n, 5.0f), dt, 5), dxa = place(start, dt, 6);
    vkt_test::run([&](rt::Sequence& seq) {
        vktrain::kernels::record_dropout(dev, seq, p, seed, sb, k_step_offset, xo.ref(), yo.ref());
        vktrain::kernels::record_dropout_backward(dev, seq, p, seed, sb, k_step_offset, dyo.ref(), dxo.ref());
        vktrain::kernels::record_dropout_backward(dev, seq, p, seed, sb, k_step_offset, dyo.ref(), dxa.ref(), true);
    });
    expect_dropout(yo.values(), x, nullptr, p, seed, step, dt, "y");
    expect_dropout(dxo.values(), dy, nullptr, p, seed, step, dt, "dx");
    expect_dropout(dxa.values(), dy, &start, p, seed, step, dt, "dx (accumulate)");
    EXPECT_EQ(xo.values(), x);
    EXPECT_EQ(dyo.values(), dy);
    EXPECT_EQ(vkt_test::read_buffer_u32(sb, 8)[0], 0xdeadbeefu) << "the step buffer is only read";
}

// One recorded sequence, replayed with the step rewritten in between: a new step draws a new mask, the same
// seed and step the same mask, another seed another mask.
TEST_P(DropoutTest, StepBufferDrawsANewMaskPerReplay) {
    const DType dt = GetParam();
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const uint32_t n = 4099;
    const float p = 0.5f;
    const auto x = nonzero_values(n, 404, dt);
    rt::Buffer sb = step_buffer(0);
    Placed xo = place(x, dt, 1), yo = place(std::vector<float>(n, 5.0f), dt, 2),
           zo = place(std::vector<float>(n, 5.0f), dt, 3);
    rt::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_dropout(dev, seq, p, 99, sb, k_step_offset, xo.ref(), yo.ref());
    vktrain::kernels::record_dropout(dev, seq, p, 100, sb, k_step_offset, xo.ref(), zo.ref());
    seq.end();
    std::vector<std::vector<float>> masks;
    for (uint32_t step : {5u, 6u, 5u}) {
        set_step(sb, step);
        seq.submit_and_wait();
        const auto y = yo.values();
        expect_dropout(y, x, nullptr, p, 99, step, dt, "y at step " + std::to_string(step));
        expect_dropout(zo.values(), x, nullptr, p, 100, step, dt, "y with seed 100 at step " + std::to_string(step));
        masks.push_back(y);
    }
    // Two independent masks with p = 1/2 disagree on about half the elements (n/2 ± 6 sigma, sigma = sqrt(n)/2).
    size_t differ = 0;
    for (uint32_t i = 0; i < n; ++i) differ += (masks[0][i] != 0) != (masks[1][i] != 0);
    EXPECT_NEAR(double(differ), n / 2.0, 6 * std::sqrt(double(n)) / 2) << "steps 5 and 6";
    EXPECT_EQ(masks[0], masks[2]) << "step 5 replayed";
    size_t seed_differ = 0;
    const auto z = zo.values(); // seed 100 at step 5
    for (uint32_t i = 0; i < n; ++i) seed_differ += (masks[2][i] != 0) != (z[i] != 0);
    EXPECT_NEAR(double(seed_differ), n / 2.0, 6 * std::sqrt(double(n)) / 2) << "seeds 99 and 100";
}

INSTANTIATE_TEST_SUITE_P(All, DropoutTest, testing::Values(DType::f32, DType::f16), [](const auto& param_info) {
    return std::string(vktrain::kernels::dtype_name(param_info.param));
});

// The kept fraction of a large tensor is 1 - p within 6 standard deviations, on the device and on the host.
TEST(Dropout, KeptFractionWithinStatisticalBounds) {
    auto& dev = vkt_test::device();
    const uint32_t n = 1u << 18;
    const std::vector<float> x(n, 1.0f);
    rt::Buffer sb = step_buffer(3);
    Placed xo = place(x, DType::f32, 0);
    for (float p : {0.1f, 0.5f, 0.9f}) {
        Placed yo = place(std::vector<float>(n, 5.0f), DType::f32, 0);
        vkt_test::run([&](rt::Sequence& seq) {
            vktrain::kernels::record_dropout(dev, seq, p, 2024, sb, k_step_offset, xo.ref(), yo.ref());
        });
        const auto y = yo.values();
        size_t kept = 0, host_kept = 0;
        for (uint32_t i = 0; i < n; ++i) {
            kept += y[i] != 0.0f;
            host_kept += dropout_keep(p, 2024, 3, i);
        }
        const double mean = n * (1.0 - p), sigma = std::sqrt(n * double(p) * (1.0 - p));
        EXPECT_NEAR(double(kept), mean, 6 * sigma) << "p = " << p;
        EXPECT_EQ(kept, host_kept) << "p = " << p;
        // Kept elements are scaled by 1/(1 - p): the expectation of y is x.
        const float scale = float(1.0 / (1.0 - double(p)));
        for (uint32_t i = 0; i < n; i += 997) EXPECT_TRUE(y[i] == 0.0f || y[i] == scale) << y[i];
    }
}

// p = 0 is a copy (bit for bit), also in place.
TEST(Dropout, ZeroProbabilityCopies) {
    auto& dev = vkt_test::device();
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        const auto x = vkt_test::round_through(vkt_test::random_values(333, 405, -100, 100), dt);
        rt::Buffer sb = step_buffer(1);
        Placed xo = place(x, dt, 1), yo = place(std::vector<float>(x.size(), 5.0f), dt, 4), io = place(x, dt, 2);
        vkt_test::run([&](rt::Sequence& seq) {
            vktrain::kernels::record_dropout(dev, seq, 0.0f, 7, sb, k_step_offset, xo.ref(), yo.ref());
            vktrain::kernels::record_dropout(dev, seq, 0.0f, 7, sb, k_step_offset, io.ref(), io.ref());
        });
        EXPECT_EQ(yo.values(), x);
        EXPECT_EQ(io.values(), x);
    }
}

TEST(DropoutChecks, RejectBadArguments) {
    auto& dev = vkt_test::device();
    rt::Buffer a = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer b = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer sb = step_buffer(0); // 32 bytes
    const MatRef x{&a, DType::f32, 4, 4, 0}, y{&b, DType::f32, 4, 4, 0};
    const auto expect_error = [&](float p, uint32_t step_offset, const MatRef& yy, const char* what) {
        rt::Sequence seq(dev);
        seq.begin();
        try {
            vktrain::kernels::record_dropout(dev, seq, p, 0, sb, step_offset, x, yy);
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        seq.end();
    };
    expect_error(1.0f, 0, y, "must lie in [0, 1)");
    expect_error(-0.1f, 0, y, "must lie in [0, 1)");
    expect_error(0.5f, 2, y, "multiple of 4");
    expect_error(0.5f, 32, y, "inside the step buffer");
    expect_error(0.5f, 0, MatRef{&b, DType::f32, 4, 3, 0}, "y has 12 elements");
    expect_error(0.5f, 0, MatRef{&a, DType::f32, 4, 4, 8}, "y overlaps x");
}

} // namespace
