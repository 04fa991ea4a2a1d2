#include "kernels/dropout.hpp"

#include <array>
#include <cmath>

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(DropoutPush) == 8 * 4, "DropoutPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_per_invocation = 4; // elements per Philox block

// Element i is kept when its random word is >= floor(p·2^32): probability 1 - p up to 2^-32.
uint32_t keep_threshold(float p) {
    return uint32_t(std::floor(double(p) * 4294967296.0));
}

void record(runtime::Device& device, runtime::Sequence& seq, const char* op, float p, uint32_t seed,
            const runtime::Buffer& step_buffer, uint32_t step_offset, const MatRef& in, const MatRef& out,
            bool accumulate, const char* in_name, const char* out_name) {
    VKT_CHECK(p >= 0.0f && p < 1.0f, op, ": p = ", p, " must lie in [0, 1)");
    check_operand(device, in, op, in_name);
    check_operand(device, out, in.count(), op, out_name);
    VKT_CHECK(in.dtype == out.dtype, op, ": ", in_name, " is ", dtype_name(in.dtype), " but ", out_name, " is ",
              dtype_name(out.dtype));
    VKT_CHECK(same_view(in, out) || !overlaps(in, out), op, ": ", out_name, " overlaps ", in_name,
              " without being the same view");
    VKT_CHECK(step_buffer.valid(), op, ": the step buffer has no buffer");
    VKT_CHECK(step_offset % 4 == 0 && uint64_t(step_offset) + 4 <= step_buffer.size(), op, ": step offset ",
              step_offset, " must be a multiple of 4 inside the step buffer of ", step_buffer.size(), " bytes");
    const uint64_t n = in.count();
    if (n == 0) return;

    // The step word is bound like any operand: an aligned range and an element offset.
    const MatRef step{&step_buffer, DType::f32, 1, 1, step_offset / 4};
    const Operand oi = operand(device, in, runtime::Access::read);
    const Operand oo = operand(device, out, accumulate ? runtime::Access::read_write : runtime::Access::write);
    const Operand os = operand(device, step, runtime::Access::read);
    DropoutPush pc{};
    pc.n = uint32_t(n);
    pc.threshold = keep_threshold(p);
    pc.seed = seed;
    pc.flags = accumulate ? FLAG_ACCUMULATE : 0u;
    pc.scale = float(1.0 / (1.0 - double(p)));
    pc.offset0 = oi.offset;
    pc.offset1 = oo.offset;
    pc.offset2 = os.offset;
    const runtime::Kernel& k = kernel(device, variant_name("dropout", in.dtype, out.dtype), 3, sizeof(DropoutPush));
    seq.dispatch(k, {oi.binding, oo.binding, os.binding}, &pc, sizeof(pc),
                 element_groups(device, (n + k_per_invocation - 1) / k_per_invocation));
}

} // namespace

void record_dropout(runtime::Device& device, runtime::Sequence& seq, float p, uint32_t seed,
                    const runtime::Buffer& step_buffer, uint32_t step_offset, const MatRef& x, const MatRef& y) {
    record(device, seq, "dropout", p, seed, step_buffer, step_offset, x, y, false, "x", "y");
}

void record_dropout_backward(runtime::Device& device, runtime::Sequence& seq, float p, uint32_t seed,
                             const runtime::Buffer& step_buffer, uint32_t step_offset, const MatRef& dy,
                             const MatRef& dx, bool accumulate) {
    record(device, seq, "dropout_backward", p, seed, step_buffer, step_offset, dy, dx, accumulate, "dy", "dx");
}

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            key[0] += 0x9E3779B9u;
            key[1] += 0xBB67AE85u;
        }
        const uint64_t p0 = uint64_t(0xD2511F53u) * counter[0], p1 = uint64_t(0xCD9E8D57u) * counter[2];
        counter = {uint32_t(p1 >> 32) ^ counter[1] ^ key[0], uint32_t(p1), uint32_t(p0 >> 32) ^ counter[3] ^ key[1],
                   uint32_t(p0)};
    }
    return counter;
}

bool dropout_keep(float p, uint32_t seed, uint32_t step, uint64_t index) {
    const uint64_t block = index / 4;
    const auto bits = philox4x32_10({uint32_t(block), uint32_t(block >> 32), 0, 0}, {seed, step});
    return bits[index % 4] >= keep_threshold(p);
}

} // namespace vktrain::kernels
