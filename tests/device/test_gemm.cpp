// GEMM in its three forms (A·B, A·Bᵀ, Aᵀ·B), single and batched, on every path the device offers, against a
// double-precision CPU reference fed the same (fp16-rounded) inputs, on shapes that are not tile multiples;
// and the exact fp16 rounding of results (overflow gives inf).
#include <cmath>
#include <limits>
#include <tuple>

#include "device/support.hpp"
#include "kernels/gemm.hpp"

namespace {

using vktrain::GemmPath;
using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
using vktrain::kernels::TiledLoop;

enum class Form { ab, abt, atb };
const char* form_name(Form f) {
    return f == Form::ab ? "AB" : f == Form::abt ? "ABt" : "AtB";
}

std::string path_name(GemmPath p) {
    return p == GemmPath::coopmat ? "coopmat" : p == GemmPath::tiled_fp16 ? "tiled" : "fp32";
}

// Skips the test (a macro: GTEST_SKIP returns from the test body) when the device lacks the path.
#define REQUIRE_PATH(p)                                                                                                \
    do {                                                                                                               \
        if ((p) == GemmPath::coopmat) VKT_REQUIRE_COOPMAT();                                                           \
        if ((p) != GemmPath::fp32) VKT_REQUIRE_FP16();                                                                 \
    } while (0)

struct Case {
    GemmPath path;
    DType out;
    Form form;
    uint32_t m, n, k;
    TiledLoop loop;
};

const char* loop_name(TiledLoop l) {
    return l == TiledLoop::shared_memory ? "_smem" : l == TiledLoop::registers ? "_regs" : "";
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
    const Case& c = info.param;
    return path_name(c.path) + "_" + vktrain::kernels::dtype_name(c.out) + "_" + form_name(c.form) + "_" +
           std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) + loop_name(c.loop);
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

    vkt_test::ForceTiledLoop force(c.loop);
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
    // n a multiple of 4 (with B not transposed) takes the vec4 register blocks on CPU devices: {37, 132, 29} has
    // a partial block in both directions and a partial vec4-column group of 128 + 4.
    const std::tuple<uint32_t, uint32_t, uint32_t> shapes[] = {
        {1, 1, 1}, {3, 5, 7}, {17, 10, 33}, {64, 64, 64}, {65, 31, 129}, {130, 70, 20}, {37, 132, 29}, {20, 36, 5}};
    std::vector<Case> out;
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat})
        for (DType d : {DType::f32, DType::f16}) {
            if (path == GemmPath::fp32 && d == DType::f16) continue;
            for (Form f : {Form::ab, Form::abt, Form::atb})
                for (auto [m, n, k] : shapes) {
                    if (path == GemmPath::coopmat) {
                        out.push_back({path, d, f, m, n, k, TiledLoop::automatic});
                        continue;
                    }
                    // Both loops of the tiled paths, whatever this device would choose.
                    out.push_back({path, d, f, m, n, k, TiledLoop::shared_memory});
                    out.push_back({path, d, f, m, n, k, TiledLoop::registers});
                }
        }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Gemm, GemmTest, testing::ValuesIn(all_cases()), case_name);

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

// The fused bias (a Linear layer's y = x·Wᵀ + b) and ReLU: the bias added to every row of every item in fp32, then
// max(0, ·), before the one rounding to C's type (and before accumulate adds C's old value; a ReLU cannot
// accumulate); on every path, with the bias at an offset inside its buffer (as in the weights buffer).
TEST(GemmBias, AddedInTheEpilogueBeforeTheOneRounding) {
    auto& dev = vkt_test::device();
    const uint32_t m = 37, n = 21, k = 29, items = 2;
    size_t checked = 0;
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat}) {
        if (path == GemmPath::coopmat && !dev.coopmat_enabled()) continue;
        if (path != GemmPath::fp32 && !dev.fp16_enabled()) continue;
        const DType in = path == GemmPath::fp32 ? DType::f32 : DType::f16;
        for (DType out : {DType::f32, DType::f16})
            for (int mode = 0; mode < 3; ++mode) {
                const bool accumulate = mode == 1, relu = mode == 2;
                if (path == GemmPath::fp32 && out == DType::f16) continue;
                SCOPED_TRACE(std::string(vktrain::to_string(path)) + " out " + vktrain::kernels::dtype_name(out) +
                             (accumulate ? " accumulate" : "") + (relu ? " relu" : ""));
                const auto a = vkt_test::round_through(vkt_test::random_values(size_t(items) * m * k, 31), in);
                const auto b = vkt_test::round_through(vkt_test::random_values(size_t(n) * k, 32), in);
                // Three values before the bias in its buffer; biases up to 8 so that they dominate some outputs.
                auto bias = vkt_test::round_through(vkt_test::random_values(n + 3, 33, -8.0f, 8.0f), in);
                const auto c0 = vkt_test::round_through(vkt_test::random_values(size_t(items) * m * n, 34), out);
                auto abuf = vkt_test::make_buffer(a, in), bbuf = vkt_test::make_buffer(b, in);
                auto biasbuf = vkt_test::make_buffer(bias, in), cbuf = vkt_test::make_buffer(c0, out);
                vktrain::kernels::GemmDesc d;
                d.a = {MatRef{&abuf, in, m, k}, 0, uint64_t(m) * k, 0};
                d.b = {MatRef{&bbuf, in, n, k}, 0, 0, 0}; // broadcast to both items
                d.c = {MatRef{&cbuf, out, m, n}, 0, uint64_t(m) * n, 0};
                d.trans_b = true;
                d.outer = items;
                d.accumulate = accumulate;
                d.bias = MatRef{&biasbuf, in, 1, n, 3};
                d.relu = relu;
                vktrain::runtime::Sequence seq(dev);
                seq.begin();
                if (relu) { // not with accumulate
                    d.accumulate = true;
                    EXPECT_THROW(vktrain::kernels::record_gemm_strided(dev, seq, path, d), vktrain::Error);
                    d.accumulate = false;
                }
                vktrain::kernels::record_gemm_strided(dev, seq, path, d);
                seq.end();
                seq.submit_and_wait();
                const auto got = vkt_test::read_buffer(cbuf, out, size_t(items) * m * n);
                const double u32 = std::ldexp(1.0, -24), u_out = out == DType::f16 ? std::ldexp(1.0, -11) : u32;
                size_t bad = 0;
                for (uint32_t z = 0; z < items; ++z)
                    for (uint32_t i = 0; i < m; ++i)
                        for (uint32_t j = 0; j < n; ++j) {
                            double ref = bias[3 + j], mag = std::fabs(bias[3 + j]);
                            for (uint32_t l = 0; l < k; ++l) {
                                const double p = double(a[(size_t(z) * m + i) * k + l]) * b[size_t(j) * k + l];
                                ref += p;
                                mag += std::fabs(p);
                            }
                            const size_t at = (size_t(z) * m + i) * n + j;
                            if (accumulate) {
                                ref += c0[at];
                                mag += std::fabs(c0[at]);
                            }
                            if (relu) ref = std::max(ref, 0.0);
                            // fp32 sums (k + 2 roundings), then one rounding to the output type.
                            const double tol = 2 * (k + 2) * u32 * mag + u_out * std::fabs(ref) + 1e-30;
                            if (!(std::fabs(got[at] - ref) <= tol) && bad++ < 3)
                                ADD_FAILURE()
                                    << "C" << z << "[" << i << "," << j << "] = " << got[at] << ", reference " << ref;
                            ++checked;
                        }
                EXPECT_EQ(bad, 0u);
            }
    }
    EXPECT_GT(checked, 0u);
}

TEST(GemmBias, RefusesABiasOfTheWrongShapeOrType) {
    auto& dev = vkt_test::device();
    auto abuf = vkt_test::make_buffer(std::vector<float>(12), DType::f32);
    auto cbuf = vkt_test::make_buffer(std::vector<float>(9), DType::f32);
    vktrain::kernels::GemmDesc d;
    d.a.mat = MatRef{&abuf, DType::f32, 3, 4};
    d.b.mat = MatRef{&abuf, DType::f32, 3, 4};
    d.c.mat = MatRef{&cbuf, DType::f32, 3, 3};
    d.trans_b = true;
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    d.bias = MatRef{&abuf, DType::f32, 1, 4};
    EXPECT_THROW(vktrain::kernels::record_gemm_strided(dev, seq, GemmPath::fp32, d), vktrain::Error);
    if (dev.fp16_enabled()) {
        d.bias = MatRef{&abuf, DType::f16, 1, 3};
        EXPECT_THROW(vktrain::kernels::record_gemm_strided(dev, seq, GemmPath::fp32, d), vktrain::Error);
    }
    seq.end();
}

// Batched GEMM: items at strides larger than their size (gaps must stay untouched), the first at a
// non-zero offset, B optionally broadcast (stride 0).
struct BatchCase {
    GemmPath path;
    DType out;
    Form form;
    uint32_t m, n, k, count;
    bool broadcast_b;
};

std::string batch_case_name(const testing::TestParamInfo<BatchCase>& info) {
    const BatchCase& c = info.param;
    return path_name(c.path) + "_" + vktrain::kernels::dtype_name(c.out) + "_" + form_name(c.form) + "_" +
           std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) + "_b" +
           std::to_string(c.count) + (c.broadcast_b ? "_bcastB" : "");
}

class GemmBatchedTest : public testing::TestWithParam<BatchCase> {};

TEST_P(GemmBatchedTest, MatchesDoubleReference) {
    const BatchCase& c = GetParam();
    REQUIRE_PATH(c.path);
    auto& dev = vkt_test::device();
    const DType in = c.path == GemmPath::fp32 ? DType::f32 : DType::f16;
    const bool ta = c.form == Form::atb, tb = c.form == Form::abt;
    const uint32_t a_rows = ta ? c.k : c.m, a_cols = ta ? c.m : c.k;
    const uint32_t b_rows = tb ? c.n : c.k, b_cols = tb ? c.k : c.n;
    const size_t a_size = size_t(a_rows) * a_cols, b_size = size_t(b_rows) * b_cols, c_size = size_t(c.m) * c.n;
    vktrain::kernels::GemmBatch batch;
    batch.count = c.count;
    batch.a_stride = a_size + 3;
    // n a multiple of 8: B offsets that allow vec4 reads of B (the register blocks of CPU devices); else odd ones.
    const bool aligned_b = c.n % 8 == 0;
    batch.b_stride = c.broadcast_b ? 0 : b_size + (aligned_b ? 8 : 5);
    batch.c_stride = c_size + 2;
    const size_t a_off = 7, b_off = aligned_b ? 4 : 1, c_off = 5;
    const size_t a_total = a_off + (c.count - 1) * batch.a_stride + a_size;
    const size_t b_total = b_off + (c.count - 1) * batch.b_stride + b_size;
    const size_t c_total = c_off + (c.count - 1) * batch.c_stride + c_size + 4;
    const auto a = vkt_test::round_through(vkt_test::random_values(a_total, 11 + c.m), in);
    const auto b = vkt_test::round_through(vkt_test::random_values(b_total, 12 + c.n), in);
    auto abuf = vkt_test::make_buffer(a, in);
    auto bbuf = vkt_test::make_buffer(b, in);
    const float sentinel = 123.0f;
    auto cbuf = vkt_test::make_buffer(std::vector<float>(c_total, sentinel), c.out);

    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_gemm_batched(dev, seq, c.path, batch, MatRef{&abuf, in, a_rows, a_cols, a_off}, ta,
                                          MatRef{&bbuf, in, b_rows, b_cols, b_off}, tb,
                                          MatRef{&cbuf, c.out, c.m, c.n, c_off});
    seq.end();
    seq.submit_and_wait();
    const auto got = vkt_test::read_buffer(cbuf, c.out, c_total);

    std::vector<bool> written(c_total, false);
    const double u32 = vkt_test::unit(DType::f32), u_out = vkt_test::unit(c.out);
    const double gamma = (c.k * u32) / (1 - c.k * u32);
    size_t bad = 0;
    for (uint32_t z = 0; z < c.count; ++z) {
        const size_t ab = a_off + z * batch.a_stride, bb = b_off + z * batch.b_stride, cb = c_off + z * batch.c_stride;
        for (uint32_t i = 0; i < c.m; ++i)
            for (uint32_t j = 0; j < c.n; ++j) {
                double ref = 0, mag = 0;
                for (uint32_t l = 0; l < c.k; ++l) {
                    const double av = ta ? a[ab + size_t(l) * a_cols + i] : a[ab + size_t(i) * a_cols + l];
                    const double bv = tb ? b[bb + size_t(j) * b_cols + l] : b[bb + size_t(l) * b_cols + j];
                    ref += av * bv;
                    mag += std::fabs(av * bv);
                }
                const size_t idx = cb + size_t(i) * c.n + j;
                written[idx] = true;
                const double tol = 2 * gamma * mag + u_out * std::fabs(ref) + vkt_test::floor_abs(c.out);
                const double err = std::fabs(got[idx] - ref);
                if (!(err <= tol) && bad++ < 5)
                    ADD_FAILURE() << "C_" << z << "[" << i << "," << j << "] = " << got[idx] << ", reference " << ref
                                  << ", error " << err << " > tolerance " << tol;
            }
    }
    for (size_t i = 0; i < c_total; ++i)
        if (!written[i] && got[i] != sentinel && bad++ < 5)
            ADD_FAILURE() << "element " << i << " outside every C item changed to " << got[i];
    EXPECT_EQ(bad, 0u);
}

std::vector<BatchCase> batch_cases() {
    std::vector<BatchCase> out;
    for (GemmPath path : {GemmPath::fp32, GemmPath::tiled_fp16, GemmPath::coopmat})
        for (DType d : {DType::f32, DType::f16}) {
            if (path == GemmPath::fp32 && d == DType::f16) continue;
            for (Form f : {Form::ab, Form::abt, Form::atb}) {
                out.push_back({path, d, f, 3, 5, 7, 4, false});
                out.push_back({path, d, f, 17, 10, 33, 3, true});
                out.push_back({path, d, f, 65, 31, 20, 2, false});
                out.push_back({path, d, f, 19, 136, 9, 3, false}); // vec4 B where the offsets allow it
            }
        }
    // More items than the guaranteed maxComputeWorkGroupCount[2] (65535): the shader loops over the rest.
    out.push_back({GemmPath::fp32, DType::f32, Form::ab, 1, 2, 3, 70000, false});
    return out;
}

INSTANTIATE_TEST_SUITE_P(Gemm, GemmBatchedTest, testing::ValuesIn(batch_cases()), batch_case_name);

TEST(GemmBatched, RefusesOverlappingOutputs) {
    auto& dev = vkt_test::device();
    auto abuf = vkt_test::make_buffer(std::vector<float>(64, 1.0f), DType::f32);
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::GemmBatch batch{2, 0, 0, 3}; // C items are 2x2 = 4 elements, 3 apart
    EXPECT_THROW(vktrain::kernels::record_gemm_batched(dev, seq, GemmPath::fp32, batch, MatRef{&abuf, DType::f32, 2, 2},
                                                       false, MatRef{&abuf, DType::f32, 2, 2}, false,
                                                       MatRef{&abuf, DType::f32, 2, 2, 16}),
                 vktrain::Error);
}

// fp16 results are rounded to nearest even with overflow to inf, whatever the driver's own float16_t
// conversion does (round toward zero would saturate at 65504 and hide overflow from the loss scaler).
// A is 2x2 ([1 1; -1 -1]), B is 2x6 holding pairs whose exact sums straddle the fp16 limits.
class GemmFp16Overflow : public testing::TestWithParam<GemmPath> {};

TEST_P(GemmFp16Overflow, RoundsToNearestWithInf) {
    const GemmPath path = GetParam();
    REQUIRE_PATH(path);
    auto& dev = vkt_test::device();
    const float inf = std::numeric_limits<float>::infinity();
    // Column sums: 70000 -> inf, 65520 (the tie) -> inf, 65519 -> 65504, 65504 -> 65504, 65512 (tie to
    // even 65504) -> 65504, 2 -> 2.
    const std::vector<float> sums_top = {65504, 65504, 65504, 65504, 65504, 1};
    const std::vector<float> sums_bottom = {4496, 16, 15, 0, 8, 1};
    const std::vector<float> expect = {inf, inf, 65504, 65504, 65504, 2};
    const uint32_t n = uint32_t(expect.size());
    std::vector<float> b(sums_top);
    b.insert(b.end(), sums_bottom.begin(), sums_bottom.end());
    auto abuf = vkt_test::make_buffer({1, 1, -1, -1}, DType::f16);
    auto bbuf = vkt_test::make_buffer(b, DType::f16);
    auto cbuf = vkt_test::make_buffer(std::vector<float>(2 * n, 0.0f), DType::f16);
    // Accumulate: 65504 + 16 = 65520 -> inf; 65504 + 8 -> 65504; -65504 - 16 -> -inf.
    auto acc_a = vkt_test::make_buffer({1, 1}, DType::f16);
    auto acc_b = vkt_test::make_buffer({16, 8, -16}, DType::f16);
    auto acc_c = vkt_test::make_buffer({65504, 65504, -65504}, DType::f16);

    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_gemm(dev, seq, path, MatRef{&abuf, DType::f16, 2, 2}, false,
                                  MatRef{&bbuf, DType::f16, 2, n}, false, MatRef{&cbuf, DType::f16, 2, n});
    vktrain::kernels::record_gemm(dev, seq, path, MatRef{&acc_a, DType::f16, 1, 1}, false,
                                  MatRef{&acc_b, DType::f16, 1, 3}, false, MatRef{&acc_c, DType::f16, 1, 3}, true);
    seq.end();
    seq.submit_and_wait();
    const auto got = vkt_test::read_buffer(cbuf, DType::f16, 2 * n);
    for (uint32_t j = 0; j < n; ++j) {
        EXPECT_EQ(got[j], expect[j]) << "column " << j;
        EXPECT_EQ(got[n + j], -expect[j]) << "negated column " << j;
    }
    const auto acc = vkt_test::read_buffer(acc_c, DType::f16, 3);
    EXPECT_EQ(acc[0], inf);
    EXPECT_EQ(acc[1], 65504.0f);
    EXPECT_EQ(acc[2], -inf);
}

INSTANTIATE_TEST_SUITE_P(Gemm, GemmFp16Overflow, testing::Values(GemmPath::tiled_fp16, GemmPath::coopmat),
                         [](const testing::TestParamInfo<GemmPath>& p) { return path_name(p.param); });

// More row blocks than maxComputeWorkGroupCount[1] (65535 on lavapipe): the shader's grid-stride loop
// covers the rest. Register blocks are 8 rows high, so 600000 rows need 75000.
TEST(GemmGrid, OutputLargerThanTheWorkgroupGrid) {
    auto& dev = vkt_test::device();
    const uint32_t m = 600000;
    vkt_test::ForceTiledLoop force(TiledLoop::registers);
    std::vector<float> a(size_t(m) * 2);
    for (uint32_t i = 0; i < m; ++i) a[2 * i] = float(i % 1000), a[2 * i + 1] = 1.0f;
    auto abuf = vkt_test::make_buffer(a, DType::f32);
    auto bbuf = vkt_test::make_buffer({2.0f, 0.5f}, DType::f32);
    auto cbuf = vkt_test::make_buffer(std::vector<float>(m, -1.0f), DType::f32);
    vktrain::runtime::Sequence seq(dev);
    seq.begin();
    vktrain::kernels::record_gemm(dev, seq, GemmPath::fp32, MatRef{&abuf, DType::f32, m, 2}, false,
                                  MatRef{&bbuf, DType::f32, 2, 1}, false, MatRef{&cbuf, DType::f32, m, 1});
    seq.end();
    seq.submit_and_wait();
    const auto got = vkt_test::read_buffer(cbuf, DType::f32, m);
    size_t bad = 0;
    for (uint32_t i = 0; i < m; ++i)
        if (got[i] != 2.0f * float(i % 1000) + 0.5f && bad++ < 5) ADD_FAILURE() << "C[" << i << "] = " << got[i];
    EXPECT_EQ(bad, 0u);
}

} // namespace
