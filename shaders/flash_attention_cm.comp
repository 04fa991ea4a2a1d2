#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Fused attention (flash-attention style) on cooperative matrices (VK_KHR_cooperative_matrix, fp16 × fp16 →
// fp32): the same algorithm as flash_attention.comp and flash_attention_backward.comp, with every product of two
// blocks (Q·Kᵀ, dO·Vᵀ, P·V, dS·K, Pᵀ·dO, dSᵀ·Q) run as TM × TN × TK subgroup tiles, the shape one the device lists
// (specialization constants, never assumed). Blocks of B query and B key rows are staged in shared memory as fp16
// (head columns zero-padded to HDP, a multiple of TN and TK); scores and every accumulator stay fp32 in shared
// memory, and the softmax, masking and rescaling run per element in fp32 between the products. Storage is fp16
// (the mixed-precision path). Three kernels from this source:
//   FLASH_FWD: one workgroup per block of B queries of one (sample, head): O and the log-sum-exp, as flash_attention.
//   FLASH_DQ: one workgroup per block of B queries: dq = scale · Σ_j dS_ij k_j.
//   else (dk/dv): one workgroup per block of B keys of one (sample, key/value head), the queries of every head of
//     its group streamed: dv = Pᵀ·dO, dk = scale · dSᵀ·Q. Fixed sum orders, no atomics: deterministic.
//   bindings as flash_attention.comp (forward) and flash_attention_backward.comp (backward).
#include "elementwise.glsl"

layout(local_size_x_id = FLASH_SPEC_WG) in;
layout(constant_id = FLASH_SPEC_HD) const uint HD = 64;
layout(constant_id = FLASH_SPEC_KB) const uint B = 16; // query and key rows per block
layout(constant_id = FLASH_SPEC_HDP) const uint HDP = 64;
layout(constant_id = FLASH_SPEC_TM) const uint TM = 8;
layout(constant_id = FLASH_SPEC_TN) const uint TN = 8;
layout(constant_id = FLASH_SPEC_TK) const uint TK = 8;
layout(constant_id = FLASH_SPEC_WG) const uint WG = 32;

layout(binding = 0) readonly buffer BufQ { IN_S qv[]; };
layout(binding = 1) readonly buffer BufK { IN_S kv[]; };
layout(binding = 2) readonly buffer BufV { IN_S vv[]; };
#ifdef FLASH_FWD
layout(binding = 3) writeonly buffer BufO { OUT_S ov[]; };
layout(binding = 4) writeonly buffer BufL { float lsev[]; };
#else
layout(binding = 3) readonly buffer BufO { IN_S ov[]; };
layout(binding = 4) readonly buffer BufL { float lsev[]; };
layout(binding = 5) readonly buffer BufDO { IN_S dov[]; };
layout(binding = 6) buffer BufG0 { OUT_S g0[]; };
layout(binding = 7) buffer BufG1 { OUT_S g1[]; };
#endif
layout(push_constant) uniform Push { FlashAttentionPush p; };

#define ACC coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>
#define MAT_A coopmat<float16_t, gl_ScopeSubgroup, TM, TK, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeSubgroup, TK, TN, gl_MatrixUseB>
#define ROW_MAJOR gl_CooperativeMatrixLayoutRowMajor
#define COL_MAJOR gl_CooperativeMatrixLayoutColumnMajor

const float k_masked = -1.0e30; // as flash_attention.comp

// Row blocks of one head's rows (q, k or v of head/kv-head `col`), zero-padded to HDP columns.
shared float16_t sx[B * HDP]; // FWD: q; DQ: q; DKV: q
shared float16_t sy[B * HDP]; // FWD: k; DQ: k; DKV: k
shared float16_t sz[B * HDP]; // FWD: v; DQ: v; DKV: v
shared float ss[B * B];       // scores S (row: query, column: key)
shared float16_t sp[B * B];   // FWD: P; DKV: P
shared float sacc[B * HDP];   // FWD: O; DQ: dq; DKV: dk
shared float srow0[B];        // FWD: running max m; backward: lse
shared float srow1[B];        // FWD: running sum l; backward: D = Σ dO·O
shared float srow2[B];        // FWD: the rescale factor of this block
#ifndef FLASH_FWD
shared float16_t sdo[B * HDP]; // dO
shared float sdp[B * B];       // dP = dO·Vᵀ
shared float16_t sds[B * B];   // dS
#ifndef FLASH_DQ
shared float sacc2[B * HDP]; // dv
#endif
#endif

// Rows [r0, r0 + B) of one head's columns (from element `base` + col0, leading dimension ld) as fp16, rows past seq
// clamped (their results are never stored) and columns past HD zero.
#define STAGE(dst, src, base, ld, col0, r0)                                                                            \
    for (uint e_ = gl_LocalInvocationID.x; e_ < B * HDP; e_ += WG) {                                                   \
        const uint r_ = e_ / HDP, d_ = e_ % HDP;                                                                       \
        const uint row_ = b * p.seq + min((r0) + r_, p.seq - 1u);                                                      \
        dst[e_] = d_ < HD ? float16_t(LOAD_IN(src[(base) + row_ * (ld) + (col0) + d_])) : float16_t(0.0);             \
    }

// C (+)= A·B over subgroup tiles, C M × N fp32 in shared (row-major, ldc), the K dimension `kdim`: the tiles are
// dealt round-robin to the workgroup's subgroups. a_* and b_* load one tile of A (TM × TK at row m, depth k) and
// of B (TK × TN at depth k, column n); layouts are constants, hence macros.
#define MATMUL(c, ldc, M, N, kdim, load_a, load_b, accumulate)                                                         \
    for (uint t_ = gl_SubgroupID; t_ < ((M) / TM) * ((N) / TN); t_ += gl_NumSubgroups) {                               \
        const uint m_ = (t_ / ((N) / TN)) * TM, n_ = (t_ % ((N) / TN)) * TN;                                           \
        ACC acc_ = ACC(0.0);                                                                                           \
        if (accumulate) coopMatLoad(acc_, c, m_ * (ldc) + n_, ldc, ROW_MAJOR);                                         \
        for (uint k_ = 0; k_ < (kdim); k_ += TK) {                                                                     \
            MAT_A a_;                                                                                                  \
            MAT_B b_;                                                                                                  \
            load_a;                                                                                                    \
            load_b;                                                                                                    \
            acc_ = coopMatMulAdd(a_, b_, acc_);                                                                        \
        }                                                                                                              \
        coopMatStore(acc_, c, m_ * (ldc) + n_, ldc, ROW_MAJOR);                                                        \
    }

// A row-major (element (m, k) at m * ld + k), or transposed (element (m, k) at k * ld + m).
#define A_ROWS(x, ld) coopMatLoad(a_, x, m_ * (ld) + k_, ld, ROW_MAJOR)
#define A_COLS(x, ld) coopMatLoad(a_, x, k_ * (ld) + m_, ld, COL_MAJOR)
// B row-major (element (k, n) at k * ld + n), or transposed (element (k, n) at n * ld + k).
#define B_ROWS(x, ld) coopMatLoad(b_, x, k_ * (ld) + n_, ld, ROW_MAJOR)
#define B_COLS(x, ld) coopMatLoad(b_, x, n_ * (ld) + k_, ld, COL_MAJOR)

bool visible(uint i, uint j, bool causal) {
    return i < p.seq && j < p.seq && (!causal || j <= i);
}

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const uint r0 = gl_WorkGroupID.x * B; // the block's first query (FWD, DQ) or key (DKV)
    const bool causal = (p.flags & FLASH_FLAG_CAUSAL) != 0u;
    const uint group = p.heads / p.kv_heads;
#if defined(FLASH_FWD) || defined(FLASH_DQ)
    const uint kend = causal ? min(p.seq, r0 + B) : p.seq;
    for (uint bh = gl_WorkGroupID.y; bh < p.batch * p.heads; bh += gl_NumWorkGroups.y) {
        const uint b = bh / p.heads, h = bh % p.heads, g = h / group;
        barrier(); // the previous (sample, head)'s results are read out
        STAGE(sx, qv, p.offsets[0], p.ld[0], h * HD, r0);
#ifdef FLASH_DQ
        STAGE(sdo, dov, p.offsets[5], p.ld[3], h * HD, r0);
#endif
        for (uint e = lid; e < B * HDP; e += WG) sacc[e] = 0.0;
        for (uint r = lid; r < B; r += WG) {
            const uint i = min(r0 + r, p.seq - 1u), row = b * p.seq + i;
#ifdef FLASH_FWD
            srow0[r] = k_masked;
            srow1[r] = 0.0;
#else
            float delta = 0.0;
            for (uint d = 0; d < HD; ++d)
                delta += LOAD_IN(dov[p.offsets[5] + row * p.ld[3] + h * HD + d]) *
                         LOAD_IN(ov[p.offsets[3] + row * p.ld[3] + h * HD + d]);
            srow1[r] = delta;
            srow0[r] = lsev[p.offsets[4] + bh * p.seq + i];
#endif
        }
        for (uint j0 = 0; j0 < kend; j0 += B) {
            barrier();
            STAGE(sy, kv, p.offsets[1], p.ld[1], g * HD, j0);
            STAGE(sz, vv, p.offsets[2], p.ld[2], g * HD, j0);
            barrier();
            MATMUL(ss, B, B, B, HDP, A_ROWS(sx, HDP), B_COLS(sy, HDP), false);
#ifdef FLASH_FWD
            barrier();
            // The online softmax, one row per invocation: new maximum, rescale factor, P (fp16) and the row sum.
            for (uint r = lid; r < B; r += WG) {
                const uint i = r0 + r;
                float bm = srow0[r];
                for (uint c = 0; c < B; ++c)
                    if (visible(i, j0 + c, causal)) bm = max(bm, ss[r * B + c] * p.scale);
                float sum = 0.0;
                for (uint c = 0; c < B; ++c) {
                    const float pj = visible(i, j0 + c, causal) ? exp(ss[r * B + c] * p.scale - bm) : 0.0;
                    sp[r * B + c] = float16_t(pj);
                    sum += float(float16_t(pj)); // the sum of what P·V multiplies
                }
                const float corr = exp(srow0[r] - bm);
                srow1[r] = srow1[r] * corr + sum;
                srow2[r] = corr;
                srow0[r] = bm;
            }
            barrier();
            for (uint e = lid; e < B * HDP; e += WG) sacc[e] *= srow2[e / HDP];
            barrier();
            MATMUL(sacc, HDP, B, HDP, B, A_ROWS(sp, B), B_ROWS(sz, HDP), true);
#else
            MATMUL(sdp, B, B, B, HDP, A_ROWS(sdo, HDP), B_COLS(sz, HDP), false);
            barrier();
            for (uint e = lid; e < B * B; e += WG) {
                const uint r = e / B, c = e % B;
                const float pij = visible(r0 + r, j0 + c, causal) ? exp(ss[e] * p.scale - srow0[r]) : 0.0;
                sds[e] = float16_t(pij * (sdp[e] - srow1[r]));
            }
            barrier();
            MATMUL(sacc, HDP, B, HDP, B, A_ROWS(sds, B), B_ROWS(sy, HDP), true);
#endif
        }
        barrier();
        for (uint e = lid; e < B * HD; e += WG) {
            const uint r = e / HD, d = e % HD, i = r0 + r;
            if (i >= p.seq) continue;
            const uint row = b * p.seq + i;
#ifdef FLASH_FWD
            ov[p.offsets[3] + row * p.ld[3] + h * HD + d] = STORE_OUT(sacc[r * HDP + d] / srow1[r]);
            if (d == 0) lsev[p.offsets[4] + bh * p.seq + i] = srow0[r] + log(srow1[r]);
#else
            const uint idx = p.offsets[6] + row * p.ld[4] + h * HD + d;
            float v = sacc[r * HDP + d] * p.scale;
            if ((p.flags & FLAG_ACCUMULATE) != 0u) v += LOAD_OUT(g0[idx]);
            g0[idx] = STORE_OUT(v);
#endif
        }
    }
#else
    // Causal: queries before the block's first key see none of its keys.
    const uint qbegin = causal ? r0 : 0u;
    for (uint bg = gl_WorkGroupID.y; bg < p.batch * p.kv_heads; bg += gl_NumWorkGroups.y) {
        const uint b = bg / p.kv_heads, g = bg % p.kv_heads;
        barrier();
        STAGE(sy, kv, p.offsets[1], p.ld[1], g * HD, r0);
        STAGE(sz, vv, p.offsets[2], p.ld[2], g * HD, r0);
        for (uint e = lid; e < B * HDP; e += WG) {
            sacc[e] = 0.0;
            sacc2[e] = 0.0;
        }
        for (uint member = 0; member < group; ++member) {
            const uint h = g * group + member;
            for (uint i0 = qbegin; i0 < p.seq; i0 += B) {
                barrier();
                STAGE(sx, qv, p.offsets[0], p.ld[0], h * HD, i0);
                STAGE(sdo, dov, p.offsets[5], p.ld[3], h * HD, i0);
                for (uint r = lid; r < B; r += WG) {
                    const uint i = min(i0 + r, p.seq - 1u), row = b * p.seq + i;
                    float delta = 0.0;
                    for (uint d = 0; d < HD; ++d)
                        delta += LOAD_IN(dov[p.offsets[5] + row * p.ld[3] + h * HD + d]) *
                                 LOAD_IN(ov[p.offsets[3] + row * p.ld[3] + h * HD + d]);
                    srow1[r] = delta;
                    srow0[r] = lsev[p.offsets[4] + (b * p.heads + h) * p.seq + i];
                }
                barrier();
                // Rows: queries of the block; columns: this workgroup's keys.
                MATMUL(ss, B, B, B, HDP, A_ROWS(sx, HDP), B_COLS(sy, HDP), false);
                MATMUL(sdp, B, B, B, HDP, A_ROWS(sdo, HDP), B_COLS(sz, HDP), false);
                barrier();
                for (uint e = lid; e < B * B; e += WG) {
                    const uint r = e / B, c = e % B;
                    const float pij = visible(i0 + r, r0 + c, causal) ? exp(ss[e] * p.scale - srow0[r]) : 0.0;
                    sp[e] = float16_t(pij);
                    sds[e] = float16_t(pij * (sdp[e] - srow1[r]));
                }
                barrier();
                // dv += Pᵀ·dO, dk += dSᵀ·Q: A read transposed from the [query][key] blocks.
                MATMUL(sacc2, HDP, B, HDP, B, A_COLS(sp, B), B_ROWS(sdo, HDP), true);
                MATMUL(sacc, HDP, B, HDP, B, A_COLS(sds, B), B_ROWS(sx, HDP), true);
            }
        }
        barrier();
        for (uint e = lid; e < B * HD; e += WG) {
            const uint r = e / HD, d = e % HD, j = r0 + r;
            if (j >= p.seq) continue;
            const uint row = b * p.seq + j;
            if ((p.flags & FLASH_FLAG_DK) != 0u) {
                const uint idx = p.offsets[6] + row * p.ld[4] + g * HD + d;
                float v = sacc[r * HDP + d] * p.scale;
                if ((p.flags & FLAG_ACCUMULATE) != 0u) v += LOAD_OUT(g0[idx]);
                g0[idx] = STORE_OUT(v);
            }
            if ((p.flags & FLASH_FLAG_DV) != 0u) {
                const uint idx = p.offsets[7] + row * p.ld[5] + g * HD + d;
                float v = sacc2[r * HDP + d];
                if ((p.flags & FLAG_ACCUMULATE) != 0u) v += LOAD_OUT(g1[idx]);
                g1[idx] = STORE_OUT(v);
            }
        }
    }
#endif
}
