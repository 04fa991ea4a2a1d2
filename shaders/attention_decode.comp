#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Decode-time causal self-attention with a key/value cache, one workgroup per query head. The new position t's q, k
// and v are read once into shared memory (rotated by t's rotary angles first for a Llama, ATTN_DECODE_FLAG_ROTARY:
// the rotary op folded in), the first query head of each key/value head stores that k and v in row t of the fp32
// caches for later calls, and the head attends from q over rows 0..t-1 of the caches and t's own k and v (from
// shared memory: nothing written here is read back in this dispatch). Keys go in chunks of 64, one score per
// invocation, with an online softmax in fp32 over the chunks; each invocation then accumulates its output columns
// (head_size <= ATTN_DECODE_MAX_HEAD, checked by the host). Work per head: 2 · (t + 1) · head_size multiply-adds.
// Bindings: 0 q, 1 k, 2 v (IN type; may be views of one qkv buffer), 3 position (int32), 4 k cache, 5 v cache (fp32),
// 6 out (OUT type).
#include "elementwise.glsl"
#include "rotary.glsl"

#define WG 64
#define ATTN_DECODE_MAX_HEAD 512 // vktrain::decoder_max_head_size
layout(local_size_x = WG) in;
layout(binding = 0) readonly buffer BufQ { IN_S qv[]; };
layout(binding = 1) readonly buffer BufK { IN_S kv[]; };
layout(binding = 2) readonly buffer BufV { IN_S vv[]; };
layout(binding = 3) readonly buffer BufPos { int pos[]; };
layout(binding = 4) buffer BufKc { float kc[]; };
layout(binding = 5) buffer BufVc { float vc[]; };
layout(binding = 6) writeonly buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { AttnDecodePush p; };

shared float sq[ATTN_DECODE_MAX_HEAD], sk[ATTN_DECODE_MAX_HEAD], sv[ATTN_DECODE_MAX_HEAD];
shared float ss[WG];

void main() {
    const uint h = gl_WorkGroupID.x, lid = gl_LocalInvocationID.x;
    const uint hs = p.head_size, group = p.heads / p.kv_heads, g = h / group;
    const uint kvw = p.kv_heads * hs, qbase = h * hs, kbase = g * hs;
    // The host checks positions; an out-of-range one is clamped rather than written out of bounds.
    const uint t = min(uint(max(pos[p.offset_pos], 0)), p.max_positions - 1);
    const bool rotary = (p.flags & ATTN_DECODE_FLAG_ROTARY) != 0u;
    const uint half_size = hs / 2u;
    for (uint d = lid; d < hs; d += WG) {
        float q = LOAD_IN(qv[p.offset_q + qbase + d]), k = LOAD_IN(kv[p.offset_k + kbase + d]);
        if (rotary) { // rotary.comp's arithmetic: y[i] = x[i]·cos - x[i+D/2]·sin, y[i+D/2] = x[i+D/2]·cos + x[i]·sin
            const bool low = d < half_size;
            const uint i = low ? d : d - half_size, partner = low ? d + half_size : d - half_size;
            const vec2 sc = rotary_sincos(float(t) * rotary_frequency(i, hs, p.log2_theta, p.log2_theta_lo));
            const float qp = LOAD_IN(qv[p.offset_q + qbase + partner]), kp = LOAD_IN(kv[p.offset_k + kbase + partner]);
            q = low ? q * sc.y - qp * sc.x : q * sc.y + qp * sc.x;
            k = low ? k * sc.y - kp * sc.x : k * sc.y + kp * sc.x;
        }
        sq[d] = q;
        sk[d] = k;
        sv[d] = LOAD_IN(vv[p.offset_v + kbase + d]);
    }
    barrier();
    if (h % group == 0u) {
        for (uint d = lid; d < hs; d += WG) {
            kc[p.offset_kc + t * kvw + kbase + d] = sk[d];
            vc[p.offset_vc + t * kvw + kbase + d] = sv[d];
        }
    }
    // Each invocation's output columns d = lid + WG·r.
    float acc[ATTN_DECODE_MAX_HEAD / WG];
    for (uint r = 0; r < ATTN_DECODE_MAX_HEAD / WG; ++r) acc[r] = 0.0;
    float m = -3.0e38, l = 0.0;
    for (uint j0 = 0; j0 <= t; j0 += WG) {
        const uint j = j0 + lid;
        float s = -3.0e38;
        if (j < t) {
            s = 0.0;
            for (uint e = 0; e < hs; ++e) s += sq[e] * kc[p.offset_kc + j * kvw + kbase + e];
            s *= p.scale;
        } else if (j == t) {
            s = 0.0;
            for (uint e = 0; e < hs; ++e) s += sq[e] * sk[e];
            s *= p.scale;
        }
        ss[lid] = s;
        barrier();
        const uint n = min(uint(WG), t + 1u - j0);
        float mn = m;
        for (uint i = 0; i < n; ++i) mn = max(mn, ss[i]);
        const float a = exp(m - mn);
        l *= a;
        for (uint r = 0; r < ATTN_DECODE_MAX_HEAD / WG; ++r) acc[r] *= a;
        for (uint i = 0; i < n; ++i) {
            const float b = exp(ss[i] - mn);
            l += b;
            const uint row = j0 + i;
            for (uint r = 0; r < ATTN_DECODE_MAX_HEAD / WG; ++r) {
                const uint d = lid + r * WG;
                if (d < hs) acc[r] += b * (row < t ? vc[p.offset_vc + row * kvw + kbase + d] : sv[d]);
            }
        }
        m = mn;
        barrier(); // ss is rewritten by the next chunk
    }
    for (uint r = 0; r < ATTN_DECODE_MAX_HEAD / WG; ++r) {
        const uint d = lid + r * WG;
        if (d < hs) outv[p.offset_out + qbase + d] = STORE_OUT(acc[r] / l);
    }
}
