#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// flag[0] = 1 when any of x[offset0 .. offset0 + n) is inf or NaN. The test is on the bit pattern (all
// exponent bits set), read as integers: no float conversion or comparison that a driver might flush,
// reorder or assume NaN-free. The flag is only ever set (never cleared), so concurrent stores of the same
// value are benign and no atomics are needed.
// Bindings: 0 x (IN type), 1 flag (uint32). Push: n, offset0 = x's first element.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
#ifdef IN_F16
layout(binding = 0) readonly buffer BufX { uint16_t x[]; };
#define EXPONENT_MASK 0x7c00u
#else
layout(binding = 0) readonly buffer BufX { uint x[]; };
#define EXPONENT_MASK 0x7f800000u
#endif
layout(binding = 1) buffer BufFlag { uint flag[]; };
layout(push_constant) uniform Push { ElementPush p; };

void main() {
    bool bad = false;
    FOR_EACH_ELEMENT(i, p.n) bad = bad || (uint(x[p.offset0 + i]) & EXPONENT_MASK) == EXPONENT_MASK;
    if (bad) flag[0] = 1u;
}
