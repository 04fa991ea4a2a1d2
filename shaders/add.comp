#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
#ifdef B_F16
#extension GL_EXT_shader_16bit_storage : require
#endif
// out = a + b element-wise: one fp32 add, one rounding to out's type. a, b and out each have their own
// storage type (IN_F16: a, B_F16: b, OUT_F16: out). out may be the same view as a or b (in-place
// accumulation, add(d, s, d)): each element is read by the invocation that writes it, before it writes it.
// Bindings: 0 a (IN type), 1 b (B type), 2 out (OUT type). Push: n, offset0 = a's first element, offset1 =
// b's, offset2 = out's; flags FLAG_SCALE: out = a + s·b with s the fp32 in pad0 (one rounding of s·b in fp32);
// FLAG_MUL: out = a·b instead (the op "mul": one fp32 product, one rounding to out's type).
#include "elementwise.glsl"

#ifdef B_F16
#define B_S uint16_t
#define LOAD_B(v) half_bits_to_float(uint(v))
#else
#define B_S float
#define LOAD_B(v) (v)
#endif

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufA { IN_S a[]; };
layout(binding = 1) readonly buffer BufB { B_S b[]; };
layout(binding = 2) writeonly buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { ElementPush p; };

void main() {
    const bool scaled = (p.flags & FLAG_SCALE) != 0u;
    const bool product = (p.flags & FLAG_MUL) != 0u;
    const float s = uintBitsToFloat(p.pad0);
    FOR_EACH_ELEMENT(i, p.n) {
        const float av = LOAD_IN(a[p.offset0 + i]);
        const float bv = LOAD_B(b[p.offset1 + i]);
        outv[p.offset2 + i] = STORE_OUT(product ? av * bv : av + (scaled ? s * bv : bv));
    }
}
