// Softmax cross-entropy (loss and gradient) against a double-precision CPU reference fed the same
// (fp16-rounded) logits: fp32 and fp16, odd shapes, padding rows, loss scales 1 and 1024, fp16 overflow of
// a huge loss scale to inf (which the non-finite scan must flag), and labels outside the class range. Mean
// squared error (row losses and gradient) likewise, with padding rows and loss scales.
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>

#include "device/support.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/loss.hpp"

namespace {

using vktrain::kernels::DType;
using vktrain::kernels::MatRef;
using vktrain::kernels::StepParams;
namespace rt = vktrain::runtime;

const double k_u32 = std::ldexp(1.0, -24);
using vkt_test::floor_abs;
using vkt_test::unit;

struct Reference {
    std::vector<double> loss, loss_tol, grad, grad_tol;
    std::vector<bool> bad_label;
};

// The exact result and a bound on the kernel's error. Per row, with m = max z and R = max (m - z_j):
// exp(z - m) carries Vulkan's 3 + 2R ulp plus R ulp from rounding z - m, the sum of `cols` terms cols ulp
// more; log is within 2^-21 absolute on [0.5, 2] and 3 ulp elsewhere; the gradient adds a reciprocal
// (2.5 ulp), the scale's division (2.5 ulp) and three products/differences, then the store rounding.
// The computed part is doubled as a safety margin.
Reference reference(const std::vector<float>& z, const std::vector<int32_t>& labels, uint32_t rows, uint32_t cols,
                    uint32_t n_valid, float loss_scale, DType out) {
    Reference r;
    r.loss.assign(rows, 0.0);
    r.loss_tol.assign(rows, 0.0);
    r.grad.assign(size_t(rows) * cols, 0.0);
    r.grad_tol.assign(size_t(rows) * cols, 0.0);
    r.bad_label.assign(rows, false);
    const double factor = double(loss_scale) / n_valid;
    for (uint32_t i = 0; i < rows && i < n_valid; ++i) {
        const float* row = &z[size_t(i) * cols];
        const int32_t label = labels[i];
        if (label < 0 || uint32_t(label) >= cols) {
            r.bad_label[i] = true;
            continue;
        }
        double m = row[0], range = 0, sum = 0;
        for (uint32_t j = 1; j < cols; ++j) m = std::max(m, double(row[j]));
        for (uint32_t j = 0; j < cols; ++j) {
            range = std::max(range, m - row[j]);
            sum += std::exp(row[j] - m);
        }
        const double rel_exp = (4 + 3 * range) * k_u32, rel_sum = rel_exp + cols * k_u32;
        r.loss[i] = std::log(sum) - (row[label] - m);
        r.loss_tol[i] = 2 * (std::ldexp(1.0, -21) + 3 * k_u32 * std::log(sum) + rel_sum + k_u32 * (m - row[label]) +
                             k_u32 * std::fabs(r.loss[i]));
        const double rel_p = rel_exp + rel_sum + 4 * k_u32;
        for (uint32_t j = 0; j < cols; ++j) {
            const double p = std::exp(row[j] - m) / sum, d = p - (int32_t(j) == label ? 1.0 : 0.0);
            const size_t k = size_t(i) * cols + j;
            r.grad[k] = factor * d;
            r.grad_tol[k] =
                2 * factor * (rel_p * p + 5 * k_u32 * std::fabs(d)) + unit(out) * std::fabs(r.grad[k]) + floor_abs(out);
        }
    }
    return r;
}

struct XentResult {
    std::vector<float> loss, dlogits;
    uint32_t nonfinite = 0;      // the scan of dlogits
    uint32_t loss_nonfinite = 0; // the scan of row_loss
};

constexpr uint32_t k_logits_offset = 3, k_dlogits_offset = 5;
constexpr float k_sentinel = -7.25f;

// Runs softmax_xent, then the non-finite scan on dlogits and on row_loss; checks the sentinels around
// the operands (which sit at non-zero offsets).
XentResult run_xent(const std::vector<float>& z, const std::vector<int32_t>& labels, uint32_t rows, uint32_t cols,
                    uint32_t n_valid, float loss_scale, DType dt, const vktrain::kernels::XentIgnore& ignore = {},
                    uint32_t loss_terms = 0) {
    auto& dev = vkt_test::device();
    const size_t n = size_t(rows) * cols;
    std::vector<float> zs(k_logits_offset, k_sentinel);
    zs.insert(zs.end(), z.begin(), z.end());
    zs.push_back(k_sentinel);
    std::vector<float> ds(k_dlogits_offset + n + 1, k_sentinel);
    std::fill(ds.begin() + k_dlogits_offset, ds.end() - 1, 5.0f);
    rt::Buffer zbuf = vkt_test::make_buffer(zs, dt), dbuf = vkt_test::make_buffer(ds, dt);
    std::vector<uint32_t> lbits(labels.size());
    std::memcpy(lbits.data(), labels.data(), labels.size() * 4);
    rt::Buffer lbuf = vkt_test::make_buffer_u32(lbits);
    uint32_t scale_bits;
    std::memcpy(&scale_bits, &loss_scale, 4);
    rt::Buffer pbuf = vkt_test::make_buffer_u32({n_valid, scale_bits, 0, loss_terms});
    rt::Buffer loss = vkt_test::make_buffer(std::vector<float>(rows, 123.0f), DType::f32);
    rt::Buffer flags = vkt_test::make_buffer_u32({0, 0});

    rt::Sequence seq(dev);
    seq.begin();
    seq.fill(flags, 0);
    const MatRef dref{&dbuf, dt, rows, cols, k_dlogits_offset};
    vktrain::kernels::record_softmax_xent(dev, seq, MatRef{&zbuf, dt, rows, cols, k_logits_offset}, lbuf, pbuf, loss,
                                          dref, 1, ignore);
    vktrain::kernels::record_nonfinite_scan(dev, seq, dref, flags);
    // A second flag word: the scan of the per-row losses (bad labels make a NaN loss).
    rt::Buffer loss_flag = vkt_test::make_buffer_u32({0});
    vktrain::kernels::record_nonfinite_scan(dev, seq, MatRef{&loss, DType::f32, 1, rows, 0}, loss_flag);
    seq.end();
    seq.submit_and_wait();

    XentResult r;
    r.loss = vkt_test::read_buffer(loss, DType::f32, rows);
    const auto all = vkt_test::read_buffer(dbuf, dt, ds.size());
    EXPECT_EQ(all.front(), k_sentinel);
    EXPECT_EQ(all.back(), k_sentinel);
    r.dlogits.assign(all.begin() + k_dlogits_offset, all.end() - 1);
    r.nonfinite = vkt_test::read_buffer_u32(flags, 1)[0];
    r.loss_nonfinite = vkt_test::read_buffer_u32(loss_flag, 1)[0];
    return r;
}

// Checks a run against the reference: valid rows within tolerance, padding rows exactly zero, rows with a
// bad label NaN loss and zero gradient. Elements whose reference rounds to inf in fp16 must be inf.
void expect_matches(const XentResult& got, const Reference& ref, uint32_t rows, uint32_t cols, uint32_t n_valid,
                    DType dt) {
    size_t bad = 0;
    for (uint32_t i = 0; i < rows; ++i) {
        const float l = got.loss[i];
        if (ref.bad_label[i]) {
            if (!std::isnan(l) && bad++ < 5) ADD_FAILURE() << "row " << i << ": bad label, loss " << l << " not NaN";
        } else if (i >= n_valid) {
            if (l != 0.0f && bad++ < 5) ADD_FAILURE() << "padding row " << i << ": loss " << l;
        } else if (!(std::fabs(l - ref.loss[i]) <= ref.loss_tol[i]) && bad++ < 5) {
            ADD_FAILURE() << "row " << i << ": loss " << l << ", reference " << ref.loss[i] << ", tolerance "
                          << ref.loss_tol[i];
        }
        for (uint32_t j = 0; j < cols; ++j) {
            const size_t k = size_t(i) * cols + j;
            const double g = got.dlogits[k], want = ref.grad[k];
            bool ok;
            if (i >= n_valid || ref.bad_label[i])
                ok = g == 0.0;
            else if (dt == DType::f16 && std::fabs(want) > 65520 * (1 + 1e-5))
                ok = std::isinf(g) && (g > 0) == (want > 0);
            else if (dt == DType::f16 && std::fabs(want) > 65520 * (1 - 1e-5))
                ok = true; // either side of the tie
            else
                ok = std::fabs(g - want) <= ref.grad_tol[k];
            if (!ok && bad++ < 5)
                ADD_FAILURE() << "dlogits[" << i << "," << j << "] = " << g << ", reference " << want << ", tolerance "
                              << ref.grad_tol[k];
        }
    }
    EXPECT_EQ(bad, 0u);
}

std::vector<float> make_logits(uint32_t rows, uint32_t cols, uint32_t seed, DType dt) {
    auto z = vkt_test::random_values(size_t(rows) * cols, seed, -4.0f, 4.0f);
    // Every fifth row sits around 100, where exp(z) overflows fp32: only the max-subtracted form survives.
    for (uint32_t i = 4; i < rows; i += 5)
        for (uint32_t j = 0; j < cols; ++j) z[size_t(i) * cols + j] += 100.0f;
    return vkt_test::round_through(z, dt);
}

std::vector<int32_t> make_labels(uint32_t rows, uint32_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> labels(rows);
    for (int32_t& l : labels) l = int32_t(rng() % cols);
    return labels;
}

struct XentCase {
    DType dtype;
    uint32_t rows, cols;
    float loss_scale;
    bool padded; // n_valid = 2/3 of the rows
};

class SoftmaxXentTest : public testing::TestWithParam<XentCase> {};

TEST_P(SoftmaxXentTest, MatchesDoubleReference) {
    const XentCase c = GetParam();
    if (c.dtype == DType::f16) VKT_REQUIRE_FP16();
    const uint32_t n_valid = c.padded ? c.rows * 2 / 3 : c.rows;
    const auto z = make_logits(c.rows, c.cols, 51 + c.cols, c.dtype);
    const auto labels = make_labels(c.rows, c.cols, 52 + c.rows);
    const XentResult got = run_xent(z, labels, c.rows, c.cols, n_valid, c.loss_scale, c.dtype);
    const Reference ref = reference(z, labels, c.rows, c.cols, n_valid, c.loss_scale, c.dtype);
    expect_matches(got, ref, c.rows, c.cols, n_valid, c.dtype);
    EXPECT_EQ(got.nonfinite, 0u);
    EXPECT_EQ(got.loss_nonfinite, 0u);
}

std::vector<XentCase> xent_cases() {
    const std::pair<uint32_t, uint32_t> shapes[] = {{1, 1}, {3, 7}, {37, 129}, {1000, 10}};
    std::vector<XentCase> out;
    for (DType d : {DType::f32, DType::f16})
        for (auto [rows, cols] : shapes)
            for (float scale : {1.0f, 1024.0f})
                for (bool padded : {false, true}) out.push_back({d, rows, cols, scale, padded});
    return out;
}

INSTANTIATE_TEST_SUITE_P(All, SoftmaxXentTest, testing::ValuesIn(xent_cases()), [](const auto& param_info) {
    const XentCase& c = param_info.param;
    return std::string(vktrain::kernels::dtype_name(c.dtype)) + "_" + std::to_string(c.rows) + "x" +
           std::to_string(c.cols) + "_scale" + std::to_string(int(c.loss_scale)) + (c.padded ? "_padded" : "");
});

// A loss scale of 2^32 overflows fp16 gradients to inf (dynamic loss scaling then backs off): the values
// that exceed fp16's range are inf with the right sign, the rest are right, and the scan flags the step.
// In fp32 the same step is finite.
TEST(SoftmaxXentOverflow, HugeLossScaleGivesInfInFp16) {
    const uint32_t rows = 6, cols = 10;
    const float scale = 65536.0f * 65536.0f;
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        const auto z = make_logits(rows, cols, 61, dt);
        const auto labels = make_labels(rows, cols, 62);
        const XentResult got = run_xent(z, labels, rows, cols, rows, scale, dt);
        expect_matches(got, reference(z, labels, rows, cols, rows, scale, dt), rows, cols, rows, dt);
        size_t infs = 0;
        for (float g : got.dlogits) infs += std::isinf(g) ? 1 : 0;
        if (dt == DType::f16) {
            EXPECT_GE(infs, size_t(rows)) << "every label entry is about -2^32 / rows";
            EXPECT_EQ(got.nonfinite, 1u) << "the non-finite scan must flag the overflow";
        } else {
            EXPECT_EQ(infs, 0u);
            EXPECT_EQ(got.nonfinite, 0u);
        }
        EXPECT_EQ(got.loss_nonfinite, 0u);
    }
}

// Labels outside [0, classes) give a NaN row loss (so the step is reported non-finite) and zero gradient;
// the other rows are unaffected.
TEST(SoftmaxXentLabels, OutOfRangeLabelGivesNaNLoss) {
    const uint32_t rows = 5, cols = 7;
    const std::vector<int32_t> labels = {0, -1, 7, 6, 1000};
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        const auto z = make_logits(rows, cols, 71, dt);
        const XentResult got = run_xent(z, labels, rows, cols, rows, 1.0f, dt);
        const Reference ref = reference(z, labels, rows, cols, rows, 1.0f, dt);
        EXPECT_TRUE(ref.bad_label[1] && ref.bad_label[2] && ref.bad_label[4] && !ref.bad_label[3]);
        expect_matches(got, ref, rows, cols, rows, dt);
        EXPECT_EQ(got.loss_nonfinite, 1u);
        EXPECT_EQ(got.nonfinite, 0u);
    }
}

// All rows padding (n_valid = 0): nothing divides by zero, everything is zero.
TEST(SoftmaxXentLabels, NoValidRows) {
    const auto z = make_logits(4, 3, 81, DType::f32);
    const XentResult got = run_xent(z, make_labels(4, 3, 82), 4, 3, 0, 1.0f, DType::f32);
    for (float l : got.loss) EXPECT_EQ(l, 0.0f);
    for (float g : got.dlogits) EXPECT_EQ(g, 0.0f);
}

// PyTorch's ignore_index: valid rows labelled with it get loss 0 and gradient 0 (an index inside the class range or
// outside it), the other valid rows are the reference's with the gradient divided by the rows counted (loss_terms,
// which the host supplies) instead of all valid rows; padding stays zero; every row ignored gives zeros, no NaN.
TEST(SoftmaxXentIgnore, IgnoredRowsAddNothingAndTheOthersDivideByTheirCount) {
    const uint32_t rows = 37, cols = 9, n_valid = 30;
    for (DType dt : {DType::f32, DType::f16}) {
        if (dt == DType::f16 && !vkt_test::context().fp16_available()) continue;
        for (const int32_t index : {-100, 4}) {
            SCOPED_TRACE(std::string(vktrain::kernels::dtype_name(dt)) + " ignore_index " + std::to_string(index));
            const auto z = make_logits(rows, cols, 91, dt);
            std::vector<int32_t> labels = make_labels(rows, cols, 92);
            for (uint32_t r = 0; r < rows; r += 3) labels[r] = index; // including padding rows
            std::vector<int32_t> kept = labels;
            uint32_t terms = 0;
            for (uint32_t r = 0; r < n_valid; ++r) terms += labels[r] != index ? 1 : 0;
            vktrain::kernels::XentIgnore ignore;
            ignore.enabled = true;
            ignore.index = index;
            const XentResult got = run_xent(z, labels, rows, cols, n_valid, 256.0f, dt, ignore, terms);
            // The reference: valid rows not ignored, scaled by 1 / terms (its factor is scale / n_valid).
            for (int32_t& l : kept)
                if (l == index) l = 0;
            Reference ref = reference(z, kept, rows, cols, n_valid, 256.0f * float(n_valid) / float(terms), dt);
            for (uint32_t r = 0; r < rows; ++r) {
                if (labels[r] != index) continue;
                ref.loss[r] = 0.0;
                for (uint32_t j = 0; j < cols; ++j) ref.grad[size_t(r) * cols + j] = 0.0;
            }
            for (uint32_t r = 0; r < n_valid; ++r) {
                if (labels[r] != index) continue;
                EXPECT_EQ(got.loss[r], 0.0f) << "ignored row " << r;
                for (uint32_t j = 0; j < cols; ++j) EXPECT_EQ(got.dlogits[size_t(r) * cols + j], 0.0f) << r;
            }
            expect_matches(got, ref, rows, cols, n_valid, dt);
            EXPECT_EQ(got.nonfinite, 0u);
            EXPECT_EQ(got.loss_nonfinite, 0u);
            // Every row ignored: loss_terms 0, and no row divides by it.
            const XentResult none =
                run_xent(z, std::vector<int32_t>(rows, index), rows, cols, n_valid, 256.0f, dt, ignore, 0);
            for (float l : none.loss) EXPECT_EQ(l, 0.0f);
            for (float g : none.dlogits) EXPECT_EQ(g, 0.0f);
        }
    }
}

TEST(SoftmaxXentChecks, RejectMismatchedOperands) {
    auto& dev = vkt_test::device();
    rt::Buffer a = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer b = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer labels = vkt_test::make_buffer_u32(std::vector<uint32_t>(4, 0));
    rt::Buffer params = vkt_test::make_buffer_u32({4, 0x3f800000u, 0, 0});
    rt::Buffer loss = vkt_test::make_buffer(std::vector<float>(8, 0.0f), DType::f32);
    const MatRef z{&a, DType::f32, 4, 8, 0};
    const auto expect_error = [&](const MatRef& logits, const rt::Buffer& lab, const MatRef& dz, const char* what) {
        rt::Sequence seq(dev);
        seq.begin();
        try {
            vktrain::kernels::record_softmax_xent(dev, seq, logits, lab, params, loss, dz);
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        seq.end();
    };
    expect_error(z, labels, MatRef{&b, DType::f32, 8, 4, 0}, "dlogits is 8x4");
    expect_error(MatRef{&a, DType::f32, 8, 8, 0}, labels, MatRef{&b, DType::f32, 8, 8, 0}, "labels");
    expect_error(z, labels, MatRef{&b, DType::f32, 4, 8, 40}, "overruns");
    if (vkt_test::context().fp16_available())
        expect_error(z, labels, MatRef{&b, DType::f16, 4, 8, 0}, "dlogits is f16");
}

// ---- mean squared error ----

struct MseCase {
    DType dtype;
    uint32_t rows, cols;
    float loss_scale;
    uint32_t n_valid;
};

class MseTest : public testing::TestWithParam<MseCase> {};

TEST_P(MseTest, MatchesDoubleReference) {
    const MseCase c = GetParam();
    const DType dt = c.dtype;
    if (dt == DType::f16) VKT_REQUIRE_FP16();
    auto& dev = vkt_test::device();
    const size_t n = size_t(c.rows) * c.cols;
    const auto pred = vkt_test::round_through(vkt_test::random_values(n, 501 + c.cols, -2, 2), dt);
    const auto target = vkt_test::random_values(n, 502 + c.rows, -2, 2); // fp32 targets
    vkt_test::Placed po = vkt_test::place(pred, dt, 3), to = vkt_test::place(target, DType::f32, 2);
    vkt_test::Placed dpo = vkt_test::place(std::vector<float>(n, 5.0f), dt, 5);
    uint32_t scale_bits;
    std::memcpy(&scale_bits, &c.loss_scale, 4);
    rt::Buffer params = vkt_test::make_buffer_u32({c.n_valid, scale_bits, 0, 0});
    rt::Buffer loss = vkt_test::make_buffer(std::vector<float>(c.rows, 123.0f), DType::f32);
    vkt_test::run([&](rt::Sequence& seq) {
        vktrain::kernels::record_mse(dev, seq, po.ref(c.rows, c.cols), to.ref(), params, loss, dpo.ref(c.rows, c.cols));
    });
    const auto got_loss = vkt_test::read_buffer(loss, DType::f32, c.rows);
    const auto got_grad = dpo.values();
    // The scale 2·loss_scale/(n_valid·cols) is formed in fp32 (three roundings), each difference is rounded
    // once; the row sum is a fixed-order fp32 reduction of cols squares (reduce.glsl).
    const double chain = double((c.cols + 255) / 256 + 8 + 1);
    std::vector<double> loss_ref(c.rows, 0.0), loss_tol(c.rows, 0.0), grad_ref(n, 0.0), grad_tol(n, 0.0);
    for (uint32_t r = 0; r < c.rows; ++r) {
        if (r >= c.n_valid) continue; // padding: exactly zero
        for (uint32_t j = 0; j < c.cols; ++j) {
            const size_t k = size_t(r) * c.cols + j;
            const double d = double(pred[k]) - target[k];
            loss_ref[r] += d * d;
            grad_ref[k] = d * 2.0 * c.loss_scale / (double(c.n_valid) * c.cols);
            grad_tol[k] = 5 * k_u32 * std::fabs(grad_ref[k]) + unit(dt) * std::fabs(grad_ref[k]) + floor_abs(dt);
        }
        loss_tol[r] = (chain + 3) * k_u32 * loss_ref[r];
    }
    vkt_test::expect_close(got_loss, loss_ref, loss_tol, "row_loss");
    vkt_test::expect_close(got_grad, grad_ref, grad_tol, "dpred");
    EXPECT_EQ(po.values(), pred);
    EXPECT_EQ(to.values(), target);
}

std::vector<MseCase> mse_cases() {
    std::vector<MseCase> out;
    for (DType d : {DType::f32, DType::f16}) {
        out.push_back({d, 1, 1, 1.0f, 1});
        out.push_back({d, 7, 3, 1.0f, 7});
        out.push_back({d, 7, 3, 1024.0f, 5}); // two padding rows
        out.push_back({d, 37, 129, 1.0f, 30});
        out.push_back({d, 3, 1000, 256.0f, 3}); // rows longer than a workgroup
        out.push_back({d, 4, 5, 1.0f, 0});      // all padding: zeros, no division by zero
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(All, MseTest, testing::ValuesIn(mse_cases()), [](const auto& param_info) {
    const MseCase& c = param_info.param;
    return std::string(vktrain::kernels::dtype_name(c.dtype)) + "_" + std::to_string(c.rows) + "x" +
           std::to_string(c.cols) + "_scale" + std::to_string(int(c.loss_scale)) + "_valid" + std::to_string(c.n_valid);
});

TEST(MseChecks, RejectMismatchedOperands) {
    auto& dev = vkt_test::device();
    rt::Buffer a = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer b = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer t = vkt_test::make_buffer(std::vector<float>(64, 0.0f), DType::f32);
    rt::Buffer params = vkt_test::make_buffer_u32({4, 0x3f800000u, 0, 0});
    rt::Buffer loss = vkt_test::make_buffer(std::vector<float>(4, 0.0f), DType::f32);
    const MatRef pred{&a, DType::f32, 4, 8, 0}, target{&t, DType::f32, 4, 8, 0}, dpred{&b, DType::f32, 4, 8, 0};
    const auto expect_error = [&](const MatRef& p, const MatRef& tt, const MatRef& d, const rt::Buffer& l,
                                  const char* what) {
        rt::Sequence seq(dev);
        seq.begin();
        try {
            vktrain::kernels::record_mse(dev, seq, p, tt, params, l, d);
            ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
        } catch (const vktrain::Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        seq.end();
    };
    expect_error(pred, MatRef{&t, DType::f32, 4, 7, 0}, dpred, loss, "target has 28 elements");
    expect_error(pred, target, MatRef{&b, DType::f32, 8, 4, 0}, loss, "dpred is 8x4");
    expect_error(MatRef{&a, DType::f32, 8, 8, 0}, MatRef{&t, DType::f32, 8, 8, 0}, MatRef{&b, DType::f32, 8, 8, 0},
                 loss, "row_loss");
    expect_error(pred, target, MatRef{&a, DType::f32, 4, 8, 16}, loss, "dpred overlaps");
    if (vkt_test::context().fp16_available())
        expect_error(pred, MatRef{&t, DType::f16, 4, 8, 0}, dpred, loss, "target must be f32");
}

} // namespace
