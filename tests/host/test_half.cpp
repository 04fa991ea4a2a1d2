// fp16 <-> fp32 conversion: exhaustive over fp16, every rounding boundary between adjacent fp16 values, and an
// independent nearest-value reference over a spread of fp32 inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/half.hpp"

namespace {

using vktrain::float_to_half;
using vktrain::half_to_float;

uint32_t bits_of(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

float float_of(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

bool is_half_nan(uint16_t h) {
    return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
}

// The value of an fp16 pattern from the definition, in double (independent of the bit tricks under test).
double half_value(uint16_t h) {
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    const double sign = (h & 0x8000u) ? -1.0 : 1.0;
    if (exponent == 0) return sign * std::ldexp(mantissa, -24);
    if (exponent == 31) return mantissa ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
    return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

// Reference fp32 -> fp16 for finite inputs: nearest of the non-negative finite fp16 values, ties to the even
// pattern, and inf from 65520 on (where rounding with an unbounded exponent would give 2^16).
uint16_t reference_float_to_half(float value) {
    const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
    const double magnitude = std::fabs(static_cast<double>(value));
    if (magnitude >= 65520.0) return static_cast<uint16_t>(sign | 0x7c00u);
    // Non-negative finite fp16 patterns 0..0x7bff are ordered by value, so a binary search on the value works.
    uint16_t lo = 0;
    uint16_t hi = 0x7bff;
    while (hi - lo > 1) {
        const auto mid = static_cast<uint16_t>((lo + hi) / 2);
        if (half_value(mid) <= magnitude) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if (half_value(hi) <= magnitude) lo = hi; // magnitude at or above 65504
    uint16_t result = lo;
    if (lo < 0x7bff) {
        const double below = magnitude - half_value(lo);
        const double above = half_value(static_cast<uint16_t>(lo + 1)) - magnitude;
        if (above < below || (above == below && (lo & 1u))) result = static_cast<uint16_t>(lo + 1);
    }
    return static_cast<uint16_t>(sign | result);
}

TEST(Half, AllHalfPatternsRoundTrip) {
    for (uint32_t pattern = 0; pattern <= 0xffffu; ++pattern) {
        const auto h = static_cast<uint16_t>(pattern);
        const float f = half_to_float(h);
        const uint16_t back = float_to_half(f);
        if (is_half_nan(h)) {
            ASSERT_TRUE(std::isnan(f)) << std::hex << pattern;
            ASSERT_TRUE(is_half_nan(back)) << std::hex << pattern;
            ASSERT_EQ(back & 0x8000u, h & 0x8000u) << std::hex << pattern;
            ASSERT_NE(back & 0x200u, 0u) << "NaN must come back quiet: " << std::hex << pattern;
            if (h & 0x200u) {
                ASSERT_EQ(back, h) << "quiet NaN payload lost: " << std::hex << pattern;
            }
        } else {
            ASSERT_EQ(back, h) << std::hex << pattern;
            const double expected = half_value(h);
            ASSERT_EQ(static_cast<double>(f), expected) << std::hex << pattern;
            ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << pattern;
        }
    }
}

// For every pair of adjacent fp16 values (both signs), the midpoint (exact in fp32) must round to the even one and
// its fp32 neighbours to the nearer one.
TEST(Half, EveryMidpointTiesToEvenAndNeighboursRoundToNearest) {
    for (uint16_t sign : {uint16_t{0}, uint16_t{0x8000}}) {
        for (uint32_t lo = 0; lo < 0x7bff; ++lo) {
            const auto a = static_cast<uint16_t>(sign | lo);
            const auto b = static_cast<uint16_t>(sign | (lo + 1));
            const double mid = (half_value(a) + half_value(b)) / 2.0;
            const auto mid_f = static_cast<float>(mid);
            ASSERT_EQ(static_cast<double>(mid_f), mid);
            const uint16_t even = (lo & 1u) ? b : a;
            ASSERT_EQ(float_to_half(mid_f), even) << std::hex << lo;
            const float toward_a = std::nextafter(mid_f, sign ? INFINITY : -INFINITY);
            const float toward_b = std::nextafter(mid_f, sign ? -INFINITY : INFINITY);
            ASSERT_EQ(float_to_half(toward_a), a) << std::hex << lo;
            ASSERT_EQ(float_to_half(toward_b), b) << std::hex << lo;
        }
    }
}

TEST(Half, MatchesNearestValueReferenceAcrossFloatRange) {
    // A prime stride visits every exponent with varied mantissas (about 1.05 million finite inputs).
    size_t checked = 0;
    for (uint64_t pattern = 0; pattern <= 0xffffffffu; pattern += 4093) {
        const float f = float_of(static_cast<uint32_t>(pattern));
        if (!std::isfinite(f)) continue;
        ASSERT_EQ(float_to_half(f), reference_float_to_half(f)) << std::hex << pattern;
        ++checked;
    }
    EXPECT_GT(checked, 1000000u);
}

TEST(Half, TiesToEvenAtChosenPoints) {
    EXPECT_EQ(float_to_half(1.0f + 0x1p-11f), 0x3c00);     // halfway 1 .. 1+2^-10 -> 1 (even)
    EXPECT_EQ(float_to_half(1.0f + 3 * 0x1p-11f), 0x3c02); // halfway 1+2^-10 .. 1+2^-9 -> 1+2^-9 (even)
    EXPECT_EQ(float_to_half(1.0f + 0x1p-11f + 0x1p-23f), 0x3c01);
    EXPECT_EQ(float_to_half(2049.0f), 0x6800); // spacing 2 in [2048, 4096): 2049 -> 2048
    EXPECT_EQ(float_to_half(2051.0f), 0x6802); // 2051 -> 2052
    EXPECT_EQ(float_to_half(-2049.0f), 0xe800);
    EXPECT_EQ(float_to_half(2047.5f), 0x6800);             // spacing 1 below 2048: 2047.5 -> 2048 (carry)
    EXPECT_EQ(float_to_half(3 * 0x1p-25f), 0x0002);        // subnormal tie 1.5 * 2^-24 -> 2 * 2^-24
    EXPECT_EQ(float_to_half(5 * 0x1p-25f), 0x0002);        // 2.5 * 2^-24 -> 2 * 2^-24
    EXPECT_EQ(float_to_half(0x1p-14f - 0x1p-25f), 0x0400); // halfway largest subnormal .. 2^-14 -> 2^-14
}

TEST(Half, OverflowAndLimits) {
    EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
    EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
    EXPECT_EQ(float_to_half(std::nextafter(65520.0f, 0.0f)), 0x7bff);
    EXPECT_EQ(float_to_half(65520.0f), 0x7c00);
    EXPECT_EQ(float_to_half(-65520.0f), 0xfc00);
    EXPECT_EQ(float_to_half(1e10f), 0x7c00);
    EXPECT_EQ(float_to_half(std::numeric_limits<float>::max()), 0x7c00);
    EXPECT_EQ(float_to_half(INFINITY), 0x7c00);
    EXPECT_EQ(float_to_half(-INFINITY), 0xfc00);
    EXPECT_EQ(half_to_float(0x7c00), INFINITY);
    EXPECT_EQ(half_to_float(0xfc00), -INFINITY);
}

TEST(Half, SubnormalsAndUnderflow) {
    EXPECT_EQ(float_to_half(0x1p-24f), 0x0001);
    EXPECT_EQ(half_to_float(0x0001), 0x1p-24f);
    EXPECT_EQ(half_to_float(0x03ff), 1023 * 0x1p-24f);
    EXPECT_EQ(float_to_half(1023 * 0x1p-24f), 0x03ff);
    EXPECT_EQ(float_to_half(0x1p-14f), 0x0400);
    EXPECT_EQ(float_to_half(0x1p-25f), 0x0000); // the tie goes to even (zero)
    EXPECT_EQ(float_to_half(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
    EXPECT_EQ(float_to_half(std::nextafter(0x1p-25f, 0.0f)), 0x0000);
    EXPECT_EQ(float_to_half(0x1p-26f), 0x0000);
    EXPECT_EQ(float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
    EXPECT_EQ(float_to_half(std::numeric_limits<float>::min()), 0x0000);
    EXPECT_EQ(float_to_half(-0x1p-26f), 0x8000); // underflow keeps the sign
    EXPECT_EQ(float_to_half(-0x1p-24f), 0x8001);
}

TEST(Half, NegativeZero) {
    EXPECT_EQ(float_to_half(-0.0f), 0x8000);
    EXPECT_EQ(float_to_half(0.0f), 0x0000);
    const float z = half_to_float(0x8000);
    EXPECT_EQ(z, 0.0f);
    EXPECT_TRUE(std::signbit(z));
    EXPECT_FALSE(std::signbit(half_to_float(0x0000)));
}

TEST(Half, NaNsStayNaN) {
    const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7f801fffu, 0x7fa00000u, 0xff800001u, 0x7fffffffu};
    for (uint32_t bits : nans) {
        const uint16_t h = float_to_half(float_of(bits));
        EXPECT_TRUE(is_half_nan(h)) << std::hex << bits << " -> " << h;
        EXPECT_NE(h & 0x200u, 0u) << std::hex << bits; // quiet
        EXPECT_EQ(h & 0x8000u, (bits >> 16) & 0x8000u) << std::hex << bits;
        EXPECT_TRUE(std::isnan(vktrain::round_to_half(float_of(bits))));
    }
    // A signalling fp16 NaN converts to a quiet fp32 NaN keeping its payload.
    EXPECT_EQ(bits_of(half_to_float(0x7c01)), 0x7fc02000u);
    EXPECT_EQ(bits_of(half_to_float(0xfe00)), 0xffc00000u);
}

TEST(Half, BulkHelpersMatchScalar) {
    std::vector<uint16_t> all(65536);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
    std::vector<float> floats(all.size());
    vktrain::halves_to_floats(all.data(), floats.data(), all.size());
    std::vector<uint16_t> back(all.size());
    vktrain::floats_to_halves(floats.data(), back.data(), floats.size());
    for (size_t i = 0; i < all.size(); ++i) {
        ASSERT_EQ(bits_of(floats[i]), bits_of(half_to_float(all[i]))) << i;
        ASSERT_EQ(back[i], float_to_half(floats[i])) << i;
    }
    vktrain::halves_to_floats(nullptr, nullptr, 0); // n == 0 touches nothing
    vktrain::floats_to_halves(nullptr, nullptr, 0);
}

TEST(Half, RoundToHalf) {
    EXPECT_EQ(vktrain::round_to_half(1.0f), 1.0f);
    EXPECT_EQ(vktrain::round_to_half(0.1f), 0.0999755859375f);
    EXPECT_EQ(vktrain::round_to_half(1.0f + 0x1p-11f), 1.0f);
    EXPECT_EQ(vktrain::round_to_half(70000.0f), INFINITY);
    EXPECT_EQ(vktrain::round_to_half(-3e-8f), -0x1p-24f);
}

} // namespace

// The vectorised conversion (floats_to_halves) against the reference one, over a stride through every fp32 bit
// pattern (all exponents, both signs) and every pattern near each boundary where the result changes form.
TEST(Half, BranchlessConversionIsBitIdentical) {
    size_t bad = 0;
    const auto check = [&](uint32_t bits) {
        const float f = vktrain::detail::bits_float(bits);
        const uint16_t want = vktrain::float_to_half(f), got = vktrain::float_to_half_branchless(f);
        if (want != got && bad++ < 5)
            ADD_FAILURE() << std::hex << "bits 0x" << bits << ": 0x" << got << " != 0x" << want;
    };
    for (uint64_t bits = 0; bits <= 0xffffffffull; bits += 4093) check(uint32_t(bits));
    for (uint32_t edge :
         {0x00000000u, 0x33000000u, 0x387fe000u, 0x38800000u, 0x477fe000u, 0x477ff000u, 0x7f800000u, 0x7fc00000u})
        for (uint32_t d = 0; d < 65536; ++d)
            for (uint32_t sign : {0u, 0x80000000u}) {
                check(sign | (edge + d));
                if (edge >= d) check(sign | (edge - d));
            }
    EXPECT_EQ(bad, 0u);
    // The bulk helper uses it.
    const std::vector<float> xs = {0.0f, -0.0f, 1e-8f, 6.1e-5f, 65519.0f, 65520.0f, 1e9f, -3.5f, std::nanf("")};
    std::vector<uint16_t> hs(xs.size());
    vktrain::floats_to_halves(xs.data(), hs.data(), xs.size());
    for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(hs[i], vktrain::float_to_half(xs[i])) << xs[i];
}
