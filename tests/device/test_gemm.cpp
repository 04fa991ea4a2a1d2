// GEMM in its three forms (A·B, A·Bᵀ, Aᵀ·B) on every path the device offers, against a double-precision
// CPU reference fed the same (fp16-rounded) inputs, on shapes that are not tile multiples.
#include <cmath>
#include <tuple>

#include "device/support.hpp"
#include "kernels/gemm.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;

enum class Form { ab, abt, atb };
const char* form_name(Form f) {
    return f == Form::ab ? "AB" : f == Form::abt ? "ABt" : "AtB";
}

struct Case {
    GemmPath path;
    DType out;
    Form form;
    uint32_t m, n, k;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
    const Case& c = info.param;
    std::string p = c.path == GemmPath::coopmat ? "coopmat" : c.path == GemmPath::tiled_fp16 ? "tiled" : "fp32";
    return p + "_" + vktrain::kernels::dtype_name(c.out) + "_" + form_name(c.form) + "_" + std::to_string(c.m) + "x" +
           std::to_string(c.n) + "x" + std::to_string(c.k);
}

class GemmTest : public testing::TestWithParam<Case> {};

TEST_P(GemmTest, MatchesDoubleReference) {
    const Case& c = GetParam();
    if (c.path == GemmPath::coopmat) VKT_REQUIRE_COOPMAT();
    if (c.path != GemmPath::fp32) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const DType in = c.path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const bool ta = c.form == Form::atb, tb = c.form == Form::abt;
    // Stored shapes: A is m×k (k×m when transposed), B is k×n (n×k when transposed).
    const uint32_t a_rows = ta ? c.k : c.m, a_cols = ta ? c.m : c.k;
    const uint32_t b_rows = tb ? c.n : c.k, b_cols = tb ? c.k : c.n;
    const auto a = vkt_test::round_through(vkt_test::random_values(size_t(a_rows) * a_cols, 1 + c.m), in);
    const auto b = vkt_test::round_through(vkt_test::random_values(size_t(b_rows) * b_cols, 2 + c.n), in);
    auto abuf = vkt_test::make_buffer(a, in);
    auto bbuf = vkt_test::make_buffer(b, in);
    auto cbuf = vkt_test::make_buffer(std::vector<float>(size_t(c.m) * c.n, 123.0f), c.out);

    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_gemm(dev, seq, c.path, MatRef{&abuf, in, a_rows, a_cols}, ta,
                                  MatRef{&bbuf, in, b_rows, b_cols}, tb, MatRef{&cbuf, c.out, c.m, c.n});
    seq.end();
    seq.submit_and_wait();
    const auto got = vkt_test::read_buffer(cbuf, c.out, size_t(c.m) * c.n);

    // Error bound for fp32 accumulation of k products: gamma_k * sum|a||b| (u = 2^-24), plus the final
    // rounding of the result to the output type (u = 2^-11 for fp16).
    const double u32 = std::ldexp(1.0, -24), u_out = c.out == DType::f16 ? std::ldexp(1.0, -11) : u32;
    const double gamma = (c.k * u32) / (1 - c.k * u32);
    size_t bad = 0;
    for (uint32_t i = 0; i < c.m; ++i)
        for (uint32_t j = 0; j < c.n; ++j) {
            double ref = 0, mag = 0;
            for (uint32_t l = 0; l < c.k; ++l) {
                const double av = ta ? a[size_t(l) * a_cols + i] : a[size_t(i) * a_cols + l];
                const double bv = tb ? b[size_t(j) * b_cols + l] : b[size_t(l) * b_cols + j];
                ref += av * bv;
                mag += std::fabs(av * bv);
            }
            const double tol = 2 * gamma * mag + u_out * std::fabs(ref) + 1e-30;
            const double err = std::fabs(got[size_t(i) * c.n + j] - ref);
            if (!(err <= tol) && bad++ < 5)
                ADD_FAILURE() << "C[" << i << "," << j << "] = " << got[size_t(i) * c.n + j] << ", reference " << ref
                              << ", error " << err << " > tolerance " << tol;
        }
    EXPECT_EQ(bad, 0u);
}

std::vector<Case> all_cases() {
    const std::tuple<uint32_t, uint32_t, uint32_t> shapes[] = {{1, 1, 1},    {3, 5, 7},     {17, 10, 33},
                                                               {64, 64, 64}, {65, 31, 129}, {130, 70, 20}};
    std::vector<Case> out;
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat})
        for (DType d : {DType::f32, DType::f16}) {
            if (path == GemmPath::fp32 && d == DType::f16) continue;
            for (Form f : {Form::ab, Form::abt, Form::atb})
                for (auto [m, n, k] : shapes) out.push_back({path, d, f, m, n, k});
        }
    return out;
}

INSTANTIATE_TEST_SUITE_P(AllPaths, GemmTest, testing::ValuesIn(all_cases()), case_name);

// Accumulate mode adds to what C holds (used for gradient accumulation).
TEST(GemmAccumulate, AddsToExistingOutput) {
    auto& dev = vkt_test::device();
    const auto a = vkt_test::random_values(6 * 4, 7), b = vkt_test::random_values(4 * 5, 8);
    auto abuf = vkt_test::make_buffer(a, DType::f32), bbuf = vkt_test::make_buffer(b, DType::f32);
    auto cbuf = vkt_test::make_buffer(std::vector<float>(30, 1.5f), DType::f32);
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_gemm(dev, seq, GemmPath::fp32, MatRef{&abuf, DType::f32, 6, 4}, false,
                                  MatRef{&bbuf, DType::f32, 4, 5}, false, MatRef{&cbuf, DType::f32, 6, 5}, true);
    seq.end();
    seq.submit_and_wait();
    const auto got = vkt_test::read_buffer(cbuf, DType::f32, 30);
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 5; ++j) {
            double ref = 1.5;
            for (int l = 0; l < 4; ++l) ref += double(a[i * 4 + l]) * b[l * 5 + j];
            EXPECT_NEAR(got[i * 5 + j], ref, 1e-5);
        }
}

} // namespace
