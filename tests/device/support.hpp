// Shared set-up for device tests: one context per test binary (device chosen by VKTRAIN_TEST_DEVICE),
// validation on when VKTRAIN_TEST_VALIDATION=1 (every validation message fails the running test), staging copies
// forced on unified-memory devices when VKTRAIN_TEST_STAGED=1 (the path of discrete GPUs),
// and helpers to move data in and out of host-visible test buffers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/half.hpp"
#include "kernels/gemm.hpp"
#include "kernels/tensor.hpp"
#include "runtime/device.hpp"
#include "runtime/memory.hpp"
#include "runtime/sequence.hpp"
#include "vktrain/context.hpp"
#include "vktrain/trainer.hpp"

namespace vkt_test {

using vktrain::kernels::DType;

vktrain::ContextOptions context_options();
vktrain::Context& context();
// context() with ContextOptions::allow_fused_attention off: the unfused attention graph path (its GEMM sites).
vktrain::Context& unfused_attention_context();
// context() with every attention node fused (ContextOptions::fused_attention_min_score_bytes 0): by default only
// large score matrices run fused, so the small shapes of the tests need this to reach the fused graph path.
vktrain::Context& fused_attention_context();
// context() with ContextOptions::allow_fusion off: every op on its own kernel (graph/fusion.hpp's passes off).
vktrain::Context& unfused_context();
vktrain::runtime::Device& device();
bool expect_coopmat();     // VKTRAIN_TEST_EXPECT_COOPMAT=1: coopmat tests must run, not skip
int validation_messages(); // seen so far in this process

// Skips (or, where coopmat is expected, fails) when the device lacks cooperative matrix.
#define VKT_REQUIRE_COOPMAT()                                                                                          \
    do {                                                                                                               \
        if (!::vkt_test::context().coopmat_available()) {                                                              \
            if (::vkt_test::expect_coopmat()) FAIL() << "cooperative matrix expected but unavailable";                 \
            GTEST_SKIP() << "device '" << ::vkt_test::context().device_info().name                                     \
                         << "' has no usable VK_KHR_cooperative_matrix";                                               \
        }                                                                                                              \
    } while (0)

#define VKT_REQUIRE_FP16()                                                                                             \
    do {                                                                                                               \
        if (!::vkt_test::context().fp16_available())                                                                   \
            GTEST_SKIP() << "device '" << ::vkt_test::context().device_info().name << "' has no 16-bit storage";       \
    } while (0)

// A host-visible buffer holding `values` in the given precision (fp16 values are rounded first).
vktrain::runtime::Buffer make_buffer(const std::vector<float>& values, DType dtype);
vktrain::runtime::Buffer make_buffer_u32(const std::vector<uint32_t>& values);
std::vector<float> read_buffer(const vktrain::runtime::Buffer& buffer, DType dtype, size_t count);
std::vector<uint32_t> read_buffer_u32(const vktrain::runtime::Buffer& buffer, size_t count);

std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// A training batch of n random samples in [-1, 1) with random labels in [0, classes).
struct Batch {
    std::vector<float> x;
    std::vector<int32_t> labels;
};
Batch make_batch(uint32_t n, uint32_t features, uint32_t classes, uint32_t seed);
std::vector<float> round_through(const std::vector<float>& v, DType dtype); // what the device sees
// An empty directory of its own under the test temp directory ("vktrain_<name>_<pid>"), made anew.
std::string temp_dir(const std::string& name);

// Forces the loop of the tiled GEMM paths (register blocks or shared-memory tiles) for one scope.
class ForceTiledLoop {
public:
    explicit ForceTiledLoop(vktrain::kernels::TiledLoop loop) : m_saved(vktrain::kernels::forced_tiled_loop()) {
        vktrain::kernels::force_tiled_loop(loop);
    }
    ~ForceTiledLoop() { vktrain::kernels::force_tiled_loop(m_saved); }
    ForceTiledLoop(const ForceTiledLoop&) = delete;
    ForceTiledLoop& operator=(const ForceTiledLoop&) = delete;

private:
    vktrain::kernels::TiledLoop m_saved;
};

// Unit roundoff of a storage type, and the absolute error of rounding a result into it near zero: half
// the fp16 subnormal spacing (the conversion is exact round-to-nearest), or the fp32 subnormal range
// (drivers may flush fp32 denormals).
// Share of samples whose largest predicted logit is the label (evaluation mode).
double accuracy(vktrain::Trainer& trainer, const float* x, const int32_t* labels, size_t count);

double unit(DType d);
double floor_abs(DType d);

// An operand `offset` elements into its buffer, between sentinels that kernels must leave untouched.
constexpr float k_sentinel = -7.25f; // exact in fp16
constexpr uint32_t k_sentinel_tail = 5;
struct Placed {
    vktrain::runtime::Buffer buffer;
    DType dtype;
    uint32_t offset;
    size_t count;

    vktrain::kernels::MatRef ref(uint32_t rows, uint32_t cols) const;
    vktrain::kernels::MatRef ref() const; // 1 × count
    // The operand's values; fails the test if a sentinel before or after it changed.
    std::vector<float> values() const;
};
Placed place(const std::vector<float>& v, DType dtype, uint32_t offset);

// Records with `record` into a fresh sequence, submits it and waits.
void run(const std::function<void(vktrain::runtime::Sequence&)>& record);

// Compares got[i] with ref[i] within tol[i]; reports the first few misses.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& tol,
                  const std::string& what);

} // namespace vkt_test
