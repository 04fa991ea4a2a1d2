#include "common/half.hpp"

#include <algorithm>

#include "common/parallel.hpp"

namespace vktrain {

namespace {

// Branch-free, so the compiler vectorises it; on x86-64 also built for AVX2 (chosen at load time where the CPU has
// it): the baseline's SSE2 lacks the 32-to-16-bit packs. vktrain_bench_host measures it.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
__attribute__((target_clones("avx2", "default")))
#endif
void pack_range(const float* src, uint16_t* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = float_to_half_branchless(src[i]);
}

} // namespace

void floats_to_halves_serial(const float* src, uint16_t* dst, size_t n) {
    pack_range(src, dst, n);
}

void floats_to_halves(const float* src, uint16_t* dst, size_t n) {
    // Large tensors (a model's weights every step) are split over the cores.
    parallel_chunks(tensor_chunks({n}),
                    [&](size_t, const TensorChunk& c) { pack_range(src + c.begin, dst + c.begin, c.count); });
}

void halves_to_floats(const uint16_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

} // namespace vktrain
