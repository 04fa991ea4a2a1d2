#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Dropout, forward (y = x * mask / (1 - p)) and backward (dx (+)= dy * mask / (1 - p)) with the same mask.
// The mask comes from a counter-based generator, Philox4x32-10 (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC 2011; the generator behind PyTorch's CUDA dropout): key (seed, step), counter
// (i / 4 as 64 bits, 0, 0); word i % 4 of the output decides element i: kept when it is >= threshold =
// floor(p * 2^32). No state buffer: the mask is a pure function of (seed, step, i), which the host twin
// kernels::dropout_keep reproduces bit for bit. The step is read from a buffer the host rewrites before each
// replay, so one recorded command buffer draws a new mask every step.
// Each invocation handles four consecutive elements (one Philox block).
// Bindings: 0 in (IN type: x or dy), 1 out (OUT type: y or dx, read-write with FLAG_ACCUMULATE), 2 step
// (uint32). Push: DropoutPush; offset0 = in's first element, offset1 = out's, offset2 = the step's.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufIn { IN_S inv[]; };
layout(binding = 1) buffer BufOut { OUT_S outv[]; };
layout(binding = 2) readonly buffer BufStep { uint step_words[]; };
layout(push_constant) uniform Push { DropoutPush p; };

const uint PHILOX_M0 = 0xD2511F53u, PHILOX_M1 = 0xCD9E8D57u;
const uint PHILOX_W0 = 0x9E3779B9u, PHILOX_W1 = 0xBB67AE85u;

uvec4 philox4x32_10(uvec4 ctr, uvec2 key) {
    [[unroll]] for (int r = 0; r < 10; ++r) {
        if (r > 0) key += uvec2(PHILOX_W0, PHILOX_W1);
        uint hi0, lo0, hi1, lo1;
        umulExtended(PHILOX_M0, ctr.x, hi0, lo0);
        umulExtended(PHILOX_M1, ctr.z, hi1, lo1);
        ctr = uvec4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

void main() {
    const uint step = step_words[p.offset2];
    const bool accumulate = (p.flags & FLAG_ACCUMULATE) != 0u;
    const uint blocks = (p.n + 3u) / 4u; // p.n < 2^31: no overflow
    FOR_EACH_ELEMENT(b, blocks) {
        const uvec4 bits = philox4x32_10(uvec4(b, 0u, 0u, 0u), uvec2(p.seed, step));
        [[unroll]] for (uint k = 0; k < 4u; ++k) {
            const uint i = 4u * b + k;
            if (i >= p.n) break;
            const float v = bits[k] >= p.threshold ? LOAD_IN(inv[p.offset0 + i]) * p.scale : 0.0;
            const uint o = p.offset1 + i;
            outv[o] = STORE_OUT(accumulate ? LOAD_OUT(outv[o]) + v : v);
        }
    }
}
