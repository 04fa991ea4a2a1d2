// Shared by the element-wise, reduction, loss and scan kernels: bit-exact fp16 loads and stores, and the
// grid-stride loop. Include after dtypes.glsl.
//
// fp16 buffers are declared as uint16_t and converted here by integer arithmetic rather than by
// float16_t conversions: Vulkan leaves the rounding direction of fp32 -> fp16 conversions to the
// implementation (round-to-nearest-even or toward zero) and lets fp16 denormals be flushed. Toward zero
// would saturate overflow at 65504 instead of inf, and dynamic loss scaling relies on overflow giving inf.
// These helpers mirror vktrain::float_to_half / half_to_float (src/common/half.hpp) bit for bit.
#include "push_constants.h"

// fp32 -> binary16 bits: round to nearest, ties to even; overflow -> inf; NaN stays NaN (quiet); subnormals
// produced exactly.
uint float_to_half_bits(float value) {
    const uint bits = floatBitsToUint(value);
    const uint sign = (bits >> 16) & 0x8000u;
    const uint magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) // inf or NaN
        return magnitude == 0x7f800000u ? (sign | 0x7c00u) : (sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
    // 65520 is the tie between 65504 (odd mantissa) and 2^16: ties-to-even sends it, and above, to inf.
    if (magnitude >= 0x477ff000u) return sign | 0x7c00u;
    if (magnitude >= 0x38800000u) { // normal fp16: rebias 127 -> 15, round the 13 dropped bits
        const uint rebiased = magnitude - 0x38000000u;
        return sign | ((rebiased + 0xfffu + ((rebiased >> 13) & 1u)) >> 13); // a carry bumps the exponent
    }
    // Subnormal fp16: the significand (implicit bit restored) in units of 2^-24.
    const uint shift = 126u - (magnitude >> 23); // >= 14 here
    if (shift > 24u) return sign;                // below 2^-25 (fp32 subnormals included): rounds to zero
    const uint mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    uint result = mantissa >> shift;
    const uint remainder = mantissa & ((1u << shift) - 1u);
    const uint halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (result & 1u) != 0u)) ++result; // may carry to 2^-14
    return sign | result;
}

// binary16 bits -> fp32, exact (every fp16 value is an fp32 value); NaNs come back quiet with their payload.
float half_bits_to_float(uint half_bits) {
    const uint sign = (half_bits & 0x8000u) << 16;
    const uint exponent = (half_bits >> 10) & 0x1fu;
    const uint mantissa = half_bits & 0x3ffu;
    if (exponent == 0x1fu)
        return uintBitsToFloat(sign | 0x7f800000u | (mantissa << 13) | (mantissa != 0u ? 0x400000u : 0u));
    if (exponent == 0u) // subnormal or zero: mantissa * 2^-24 is a normal fp32 number (or 0), exactly
        return uintBitsToFloat(sign | floatBitsToUint(float(mantissa) * uintBitsToFloat(0x33800000u)));
    return uintBitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Storage element types and conversions of the dialect (IN_F16 / OUT_F16 as in dtypes.glsl). 16-bit
// values may only be loaded, stored and converted (storageBuffer16BitAccess), hence macros, not functions.
#ifdef IN_F16
#define IN_S uint16_t
#define LOAD_IN(v) half_bits_to_float(uint(v))
#else
#define IN_S float
#define LOAD_IN(v) (v)
#endif
#ifdef OUT_F16
#define OUT_S uint16_t
#define LOAD_OUT(v) half_bits_to_float(uint(v))
#define STORE_OUT(v) uint16_t(float_to_half_bits(v))
#else
#define OUT_S float
#define LOAD_OUT(v) (v)
#define STORE_OUT(v) (v)
#endif

// 1D kernels run a grid-stride loop, so any n works with at most 65535 workgroups (the guaranteed
// maxComputeWorkGroupCount[0]); the host checks that offset + n stays below 2^31, so i never wraps.
#define ELT_WG 128
#define FOR_EACH_ELEMENT(i, n) for (uint i = gl_GlobalInvocationID.x; i < (n); i += gl_NumWorkGroups.x * ELT_WG)
