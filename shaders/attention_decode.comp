#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Decode-time causal self-attention with a key/value cache: the new position p's k and v (from qkv) are stored in
// row p of the fp32 caches for later calls, and every head attends from p's q over rows 0..p-1 of the caches and p's
// own k and v (read from qkv, so nothing written here is read back in this dispatch), with an online softmax in
// fp32. One workgroup per head.
// Bindings: 0 qkv (IN type), 1 position (int32), 2 k cache, 3 v cache (fp32), 4 out (OUT type).
#include "elementwise.glsl"

layout(local_size_x = 64) in;
layout(binding = 0) readonly buffer BufQkv { IN_S qkv[]; };
layout(binding = 1) readonly buffer BufPos { int pos[]; };
layout(binding = 2) buffer BufK { float kc[]; };
layout(binding = 3) buffer BufV { float vc[]; };
layout(binding = 4) writeonly buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { AttnDecodePush p; };

void main() {
    const uint h = gl_WorkGroupID.x, lid = gl_LocalInvocationID.x;
    const uint hs = p.head_size, c = p.width, base = h * hs;
    // The host checks positions; an out-of-range one is clamped rather than written out of bounds.
    const uint t = min(uint(max(pos[p.offset_pos], 0)), p.max_positions - 1);
    for (uint d = lid; d < hs; d += 64) {
        kc[p.offset_k + t * c + base + d] = LOAD_IN(qkv[p.offset_qkv + c + base + d]);
        vc[p.offset_v + t * c + base + d] = LOAD_IN(qkv[p.offset_qkv + 2 * c + base + d]);
    }
    for (uint d = lid; d < hs; d += 64) {
        float m = -3.0e38, l = 0.0, acc = 0.0;
        for (uint j = 0; j <= t; ++j) {
            float s = 0.0;
            if (j < t) {
                for (uint e = 0; e < hs; ++e)
                    s += LOAD_IN(qkv[p.offset_qkv + base + e]) * kc[p.offset_k + j * c + base + e];
            } else {
                for (uint e = 0; e < hs; ++e)
                    s += LOAD_IN(qkv[p.offset_qkv + base + e]) * LOAD_IN(qkv[p.offset_qkv + c + base + e]);
            }
            s *= p.scale;
            const float v = j < t ? vc[p.offset_v + j * c + base + d] : LOAD_IN(qkv[p.offset_qkv + 2 * c + base + d]);
            const float mn = max(m, s);
            const float a = exp(m - mn), b = exp(s - mn);
            l = l * a + b;
            acc = acc * a + b * v;
            m = mn;
        }
        outv[p.offset_out + base + d] = STORE_OUT(acc / l);
    }
}
