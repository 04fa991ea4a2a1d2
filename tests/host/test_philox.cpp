// The host twin of the dropout generator: Philox4x32-10 against Random123's known-answer vectors, and the
// mapping from (seed, step, index) to a kept element.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "kernels/dropout_mask.hpp"

namespace {

using vktrain::kernels::dropout_keep;
using vktrain::kernels::philox4x32_10;

TEST(Philox, MatchesRandom123KnownAnswers) {
    using W = std::array<uint32_t, 4>;
    EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (W{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
    EXPECT_EQ(philox4x32_10({~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}), (W{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
    EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
              (W{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

// Element i is decided by word i % 4 of block i / 4 with key (seed, step): with seed = step = 0, elements 0..3
// read the first known answer above; an element is kept when its word is >= floor(p·2^32).
TEST(Philox, DropoutKeepReadsTheBlockWords) {
    const uint32_t words[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    for (uint64_t i = 0; i < 4; ++i) {
        const double u = words[i] / 4294967296.0;
        EXPECT_TRUE(dropout_keep(float(u * (1 - 1e-6)), 0, 0, i)) << i; // threshold just below the word
        EXPECT_FALSE(dropout_keep(float(u * (1 + 1e-6)), 0, 0, i)) << i;
    }
    EXPECT_TRUE(dropout_keep(0.0f, 1, 2, 12345)) << "p = 0 keeps everything";
    // The 64-bit index: its high word enters the counter.
    bool differs = false;
    for (uint64_t i = 0; i < 64; ++i)
        differs |= dropout_keep(0.5f, 3, 4, i) != dropout_keep(0.5f, 3, 4, i + (1ull << 34));
    EXPECT_TRUE(differs);
}

} // namespace
