#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Fused attention backward (flash-attention style), fp32 arithmetic on fp32 or fp16 storage, no atomics: the
// probabilities are recomputed from q, k and the forward's saved log-sum-exp, P_ij = exp(scale·q_i·k_j − lse_i),
// with D_i = Σ_d dO_id·O_id, dS_ij = P_ij·(dO_i·v_j − D_i). Two kernels from this source:
//   FLASH_DQ: one invocation per query row (FLASH_WG of them per workgroup, one (sample, head)); keys and values
//     stream through shared memory; dq_i = scale · Σ_j dS_ij k_j.
//   else (dk/dv): one invocation per key row of one (sample, key/value head); the queries of every head of its
//     group and their dO stream through shared memory (with lse_i and D_i, computed once per block);
//     dv_j = Σ_i P_ij dO_i, dk_j = scale · Σ_i dS_ij q_i. Each sum runs in one fixed order: deterministic.
//   bindings: 0 q, 1 k, 2 v, 3 o, 5 dO (IN type), 4 lse (fp32), 6 dq or dk, 7 dv (OUT type; FLAG_ACCUMULATE adds)
#include "elementwise.glsl"

layout(local_size_x = FLASH_WG) in;
layout(constant_id = FLASH_SPEC_HD) const uint HD = 64;
layout(constant_id = FLASH_SPEC_KB) const uint KB = 16;
layout(binding = 0) readonly buffer BufQ { IN_S qv[]; };
layout(binding = 1) readonly buffer BufK { IN_S kv[]; };
layout(binding = 2) readonly buffer BufV { IN_S vv[]; };
layout(binding = 3) readonly buffer BufO { IN_S ov[]; };
layout(binding = 4) readonly buffer BufL { float lsev[]; };
layout(binding = 5) readonly buffer BufDO { IN_S dov[]; };
layout(binding = 6) buffer BufG0 { OUT_S g0[]; };
layout(binding = 7) buffer BufG1 { OUT_S g1[]; };
layout(push_constant) uniform Push { FlashAttentionPush p; };

shared float sa[KB * HD]; // FLASH_DQ: k; else q
shared float sb[KB * HD]; // FLASH_DQ: v; else dO
#ifndef FLASH_DQ
shared float slse[KB];
shared float sdelta[KB];
#endif

void store0(uint idx, float v) {
    if ((p.flags & FLAG_ACCUMULATE) != 0u) v += LOAD_OUT(g0[idx]);
    g0[idx] = STORE_OUT(v);
}
void store1(uint idx, float v) {
    if ((p.flags & FLAG_ACCUMULATE) != 0u) v += LOAD_OUT(g1[idx]);
    g1[idx] = STORE_OUT(v);
}

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const uint r = gl_WorkGroupID.x * FLASH_WG + lid; // this invocation's query (FLASH_DQ) or key row
    const bool valid = r < p.seq;
    const uint rc = min(r, p.seq - 1u);
    const bool causal = (p.flags & FLASH_FLAG_CAUSAL) != 0u;
    const uint group = p.heads / p.kv_heads;
#ifdef FLASH_DQ
    const uint kend = causal ? min(p.seq, (gl_WorkGroupID.x + 1u) * FLASH_WG) : p.seq;
    for (uint bh = gl_WorkGroupID.y; bh < p.batch * p.heads; bh += gl_NumWorkGroups.y) {
        const uint b = bh / p.heads, h = bh % p.heads, g = h / group;
        const uint row = b * p.seq + rc;
        float q[HD], dout[HD], dq[HD];
        float delta = 0.0;
        for (uint d = 0; d < HD; ++d) {
            q[d] = LOAD_IN(qv[p.offsets[0] + row * p.ld[0] + h * HD + d]);
            dout[d] = LOAD_IN(dov[p.offsets[5] + row * p.ld[3] + h * HD + d]);
            delta += dout[d] * LOAD_IN(ov[p.offsets[3] + row * p.ld[3] + h * HD + d]);
            dq[d] = 0.0;
        }
        const float lse = lsev[p.offsets[4] + bh * p.seq + rc];
        for (uint j0 = 0; j0 < kend; j0 += KB) {
            barrier();
            for (uint e = lid; e < KB * HD; e += FLASH_WG) {
                const uint krow = b * p.seq + min(j0 + e / HD, p.seq - 1u), d = e % HD;
                sa[e] = LOAD_IN(kv[p.offsets[1] + krow * p.ld[1] + g * HD + d]);
                sb[e] = LOAD_IN(vv[p.offsets[2] + krow * p.ld[2] + g * HD + d]);
            }
            barrier();
            for (uint jj = 0; jj < KB; ++jj) {
                const uint j = j0 + jj;
                if (j >= p.seq || (causal && j > r)) continue;
                float s = 0.0, dp = 0.0;
                for (uint d = 0; d < HD; ++d) {
                    s += q[d] * sa[jj * HD + d];
                    dp += dout[d] * sb[jj * HD + d];
                }
                const float ds = exp(s * p.scale - lse) * (dp - delta);
                for (uint d = 0; d < HD; ++d) dq[d] += ds * sa[jj * HD + d];
            }
        }
        if (valid) {
            const uint grow = p.offsets[6] + (b * p.seq + r) * p.ld[4] + h * HD;
            for (uint d = 0; d < HD; ++d) store0(grow + d, dq[d] * p.scale);
        }
    }
#else
    // Causal: queries before the block's first key see none of its keys.
    const uint qbegin = causal ? gl_WorkGroupID.x * FLASH_WG : 0u;
    for (uint bg = gl_WorkGroupID.y; bg < p.batch * p.kv_heads; bg += gl_NumWorkGroups.y) {
        const uint b = bg / p.kv_heads, g = bg % p.kv_heads;
        const uint row = b * p.seq + rc;
        float k[HD], v[HD], dk[HD], dv[HD];
        for (uint d = 0; d < HD; ++d) {
            k[d] = LOAD_IN(kv[p.offsets[1] + row * p.ld[1] + g * HD + d]);
            v[d] = LOAD_IN(vv[p.offsets[2] + row * p.ld[2] + g * HD + d]);
            dk[d] = 0.0;
            dv[d] = 0.0;
        }
        for (uint member = 0; member < group; ++member) {
            const uint h = g * group + member;
            for (uint i0 = qbegin; i0 < p.seq; i0 += KB) {
                barrier();
                for (uint e = lid; e < KB * HD; e += FLASH_WG) {
                    const uint qrow = b * p.seq + min(i0 + e / HD, p.seq - 1u), d = e % HD;
                    sa[e] = LOAD_IN(qv[p.offsets[0] + qrow * p.ld[0] + h * HD + d]);
                    sb[e] = LOAD_IN(dov[p.offsets[5] + qrow * p.ld[3] + h * HD + d]);
                }
                if (lid < KB) {
                    const uint i = min(i0 + lid, p.seq - 1u), qrow = b * p.seq + i;
                    float delta = 0.0;
                    for (uint d = 0; d < HD; ++d)
                        delta += LOAD_IN(dov[p.offsets[5] + qrow * p.ld[3] + h * HD + d]) *
                                 LOAD_IN(ov[p.offsets[3] + qrow * p.ld[3] + h * HD + d]);
                    sdelta[lid] = delta;
                    slse[lid] = lsev[p.offsets[4] + (b * p.heads + h) * p.seq + i];
                }
                barrier();
                for (uint ii = 0; ii < KB; ++ii) {
                    const uint i = i0 + ii;
                    if (i >= p.seq || (causal && i < r)) continue;
                    float s = 0.0, dp = 0.0;
                    for (uint d = 0; d < HD; ++d) {
                        s += k[d] * sa[ii * HD + d];
                        dp += v[d] * sb[ii * HD + d];
                    }
                    const float pij = exp(s * p.scale - slse[ii]);
                    const float ds = pij * (dp - sdelta[ii]);
                    for (uint d = 0; d < HD; ++d) {
                        dv[d] += pij * sb[ii * HD + d];
                        dk[d] += ds * sa[ii * HD + d];
                    }
                }
            }
        }
        if (valid) {
            const uint grow = b * p.seq + r;
            if ((p.flags & FLASH_FLAG_DK) != 0u)
                for (uint d = 0; d < HD; ++d) store0(p.offsets[6] + grow * p.ld[4] + g * HD + d, dk[d] * p.scale);
            if ((p.flags & FLASH_FLAG_DV) != 0u)
                for (uint d = 0; d < HD; ++d) store1(p.offsets[7] + grow * p.ld[5] + g * HD + d, dv[d]);
        }
    }
#endif
}
