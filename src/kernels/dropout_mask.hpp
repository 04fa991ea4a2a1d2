// The dropout mask on the host, bit for bit what shaders/dropout.comp draws (no Vulkan here, so host-only
// code and tests can reproduce a mask).
#pragma once

#include <array>
#include <cstdint>

namespace vktrain::kernels {

// True when element `index` is kept for (p, seed, step): when word index % 4 of
// philox4x32_10({index / 4 (low word, high word), 0, 0}, {seed, step}) is >= floor(p·2^32).
bool dropout_keep(float p, uint32_t seed, uint32_t step, uint64_t index);

// The Philox4x32-10 block function (Salmon et al., SC 2011; Random123's philox4x32_10).
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

} // namespace vktrain::kernels
