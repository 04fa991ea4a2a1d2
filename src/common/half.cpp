#include "common/half.hpp"

#include <algorithm>
#include <thread>
#include <vector>

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

void floats_to_halves(const float* src, uint16_t* dst, size_t n) {
    // Large tensors (a model's weights every step) are split over the cores; a thread costs tens of microseconds,
    // so small ones stay on the caller's.
    constexpr size_t k_per_thread = size_t(1) << 20;
    const size_t threads = std::min<size_t>({std::max(1u, std::thread::hardware_concurrency()), 8, n / k_per_thread});
    if (threads <= 1) return pack_range(src, dst, n);
    std::vector<std::thread> pool;
    const size_t chunk = (n + threads - 1) / threads;
    for (size_t t = 1; t < threads; ++t) {
        const size_t begin = t * chunk, count = std::min(chunk, n - std::min(n, begin));
        if (count > 0) pool.emplace_back(pack_range, src + begin, dst + begin, count);
    }
    pack_range(src, dst, std::min(chunk, n));
    for (std::thread& t : pool) t.join();
}

void halves_to_floats(const uint16_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

} // namespace vktrain
