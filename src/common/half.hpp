// IEEE 754 binary16 <-> binary32 conversion by bit manipulation (no _Float16, no F16C), so host results match
// the device's fp16 storage bit for bit on every compiler and CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vktrain {

namespace detail {

inline uint32_t float_bits(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline float bits_float(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

} // namespace detail

// Round to nearest, ties to even (the IEEE default and what GPUs do for fp32->fp16 stores). Magnitudes that
// round above 65504 become inf; NaN stays NaN with the quiet bit set (a signalling NaN whose payload sits only
// in the low 13 bits would otherwise turn into inf); fp16 subnormals are produced exactly.
inline uint16_t float_to_half(float value) {
    const uint32_t bits = detail::float_bits(value);
    const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7fffffffu;

    if (magnitude >= 0x7f800000u) { // inf or NaN
        if (magnitude == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);
        return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
    }
    // 65520 (0x477ff000) is exactly half-way between 65504 (odd mantissa 0x3ff) and 2^16, so ties-to-even
    // sends it, and everything above, to inf.
    if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);

    if (magnitude >= 0x38800000u) { // |x| >= 2^-14: normal fp16
        // Rebias the exponent (127 -> 15) in place, then round the 13 dropped mantissa bits: adding 0xfff plus
        // the lowest kept bit carries exactly when the dropped part is above half, or equal to half with an odd
        // kept part. A carry out of the mantissa correctly bumps the exponent.
        const uint32_t rebiased = magnitude - 0x38000000u;
        const uint32_t rounded = rebiased + 0xfffu + ((rebiased >> 13) & 1u);
        return static_cast<uint16_t>(sign | (rounded >> 13));
    }

    // fp16 subnormal range: the result is the significand in units of 2^-24. With the implicit bit restored the
    // float is mantissa * 2^(exponent - 150), i.e. mantissa >> (126 - exponent) units of 2^-24.
    const uint32_t exponent = magnitude >> 23;
    const uint32_t shift = 126u - exponent; // >= 14 here
    if (shift > 24u) return sign;           // < 2^-25 (2^-25 itself is the tie with the shift of 24 below)
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    uint32_t result = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (result & 1u))) ++result; // may carry into 2^-14: fine
    return static_cast<uint16_t>(sign | result);
}

// Exact (every fp16 value is an fp32 value). NaNs come back quiet with their payload, as hardware converts them.
inline float half_to_float(uint16_t half) {
    const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
    const uint32_t exponent = (half >> 10) & 0x1fu;
    const uint32_t mantissa = half & 0x3ffu;

    if (exponent == 0x1fu) {
        if (mantissa == 0) return detail::bits_float(sign | 0x7f800000u);
        return detail::bits_float(sign | 0x7fc00000u | (mantissa << 13));
    }
    if (exponent == 0) {
        // Subnormal (or zero): mantissa * 2^-24 is exact in fp32 (10 significant bits, normal fp32 range), and the
        // sign is applied by bits so -0 survives.
        const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
        return detail::bits_float(sign | detail::float_bits(magnitude));
    }
    return detail::bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// float_to_half without branches, so that a loop of it vectorises (floats_to_halves): bit-identical to it for
// every input (tests/host/test_half.cpp compares them).
inline uint16_t float_to_half_branchless(float value) {
    const uint32_t bits = detail::float_bits(value);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    const uint32_t magnitude = bits & 0x7fffffffu;
    // Normal: rebias and round the 13 dropped bits to nearest even, as in float_to_half (the subtraction wraps
    // for small magnitudes, whose result is not selected).
    const uint32_t rebiased = magnitude - 0x38000000u;
    const uint32_t normal = (rebiased + 0xfffu + ((rebiased >> 13) & 1u)) >> 13;
    // Subnormal or zero (|x| < 2^-14): 0.5 has an ulp of 2^-24, so the fp32 adder rounds |x| to a multiple of 2^-24
    // (nearest even) and leaves that multiple in the low bits; 2^-14 itself comes out as 0x400, its fp16 encoding.
    const uint32_t subnormal = detail::float_bits(detail::bits_float(magnitude) + 0.5f) - 0x3f000000u;
    // Selections by masks (all ones or zero), which compilers turn into vector blends.
    const auto all = [](bool c) { return 0u - static_cast<uint32_t>(c); };
    const uint32_t is_sub = all(magnitude < 0x38800000u), is_inf = all(magnitude >= 0x477ff000u);
    const uint32_t is_nan = all(magnitude > 0x7f800000u);
    uint32_t r = (subnormal & is_sub) | (normal & ~is_sub);
    r = (0x7c00u & is_inf) | (r & ~is_inf);                                  // rounds above 65504: inf
    r = ((0x7e00u | ((magnitude >> 13) & 0x3ffu)) & is_nan) | (r & ~is_nan); // NaN: quiet, payload kept
    return static_cast<uint16_t>(sign | r);
}

// The value an fp32 number has after a round trip through fp16 storage.
inline float round_to_half(float value) {
    return half_to_float(float_to_half(value));
}

// Vectorised; large n is split over the cores (floats_to_halves_serial stays on the caller's thread).
void floats_to_halves(const float* src, uint16_t* dst, size_t n);
void floats_to_halves_serial(const float* src, uint16_t* dst, size_t n);
void halves_to_floats(const uint16_t* src, float* dst, size_t n);

} // namespace vktrain
