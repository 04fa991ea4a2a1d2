#version 450
#extension GL_GOOGLE_include_directive : require
// GEMM for training: C (+)= op(A)·op(B), the transposes expressed by strides (see GemmPush). One source,
// two inner loops: COOPMAT uses VK_KHR_cooperative_matrix (fp16 × fp16 → fp32, the tile shape comes from
// the device's property list through specialization constants); otherwise a shared-memory tiled loop in
// fp32 arithmetic over fp16 or fp32 storage. Edges (sizes that are not tile multiples) are zero-padded in
// shared memory, so any M, N, K works.
#include "dtypes.glsl"
#include "push_constants.h"

layout(constant_id = GEMM_SPEC_BM) const uint BM = 64;
layout(constant_id = GEMM_SPEC_BN) const uint BN = 64;
layout(constant_id = GEMM_SPEC_BK) const uint BK = 16;
layout(constant_id = GEMM_SPEC_WG) const uint WG = 256;
layout(constant_id = GEMM_SPEC_TM) const uint TM = 4;
layout(constant_id = GEMM_SPEC_TN) const uint TN = 4;
layout(constant_id = GEMM_SPEC_TK) const uint TK = 8;
layout(constant_id = GEMM_SPEC_SG_N) const uint SG_N = 2;
layout(local_size_x_id = GEMM_SPEC_WG) in;

layout(binding = 0) readonly buffer BufA { IN_T a[]; };
layout(binding = 1) readonly buffer BufB { IN_T b[]; };
layout(binding = 2) buffer BufC { OUT_T c[]; };
layout(push_constant) uniform Push { GemmPush p; };

#ifdef COOPMAT
#define SH_T float16_t
#else
#define SH_T float
#endif
shared SH_T sa[BM * BK]; // row-major BM × BK
shared SH_T sb[BK * BN]; // row-major BK × BN

void load_tiles(uint m0, uint n0, uint k0) {
    const uint lid = gl_LocalInvocationID.x;
    for (uint i = lid; i < BM * BK; i += WG) {
        const uint gm = m0 + i / BK, gk = k0 + i % BK;
        sa[i] = (gm < p.m && gk < p.k) ? SH_T(a[p.a_offset + gm * p.a_stride_m + gk * p.a_stride_k]) : SH_T(0);
    }
    for (uint i = lid; i < BK * BN; i += WG) {
        const uint gk = k0 + i / BN, gn = n0 + i % BN;
        sb[i] = (gk < p.k && gn < p.n) ? SH_T(b[p.b_offset + gk * p.b_stride_k + gn * p.b_stride_n]) : SH_T(0);
    }
}

void store(uint gm, uint gn, float v) {
    if (gm < p.m && gn < p.n) {
        const uint idx = p.c_offset + gm * p.c_stride_m + gn;
        if (p.accumulate != 0) v += float(c[idx]);
        c[idx] = OUT_T(v);
    }
}

#ifdef COOPMAT
// Each subgroup owns RM × RN cooperative-matrix tiles of the BM × BN block.
const uint RM = 2;
const uint RN = 2;
shared float sc[BM * BN];

void main() {
    const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    const uint sg_m = gl_SubgroupID / SG_N, sg_n = gl_SubgroupID % SG_N;
    coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> acc[RM * RN];
    [[unroll]] for (uint i = 0; i < RM * RN; ++i) acc[i] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(0.0);

    for (uint k0 = 0; k0 < p.k; k0 += BK) {
        load_tiles(m0, n0, k0);
        barrier();
        for (uint kk = 0; kk < BK; kk += TK) {
            coopmat<float16_t, gl_ScopeSubgroup, TM, TK, gl_MatrixUseA> ma[RM];
            [[unroll]] for (uint i = 0; i < RM; ++i)
                coopMatLoad(ma[i], sa, ((sg_m * RM + i) * TM) * BK + kk, BK, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0; j < RN; ++j) {
                coopmat<float16_t, gl_ScopeSubgroup, TK, TN, gl_MatrixUseB> mb;
                coopMatLoad(mb, sb, kk * BN + (sg_n * RN + j) * TN, BN, gl_CooperativeMatrixLayoutRowMajor);
                [[unroll]] for (uint i = 0; i < RM; ++i) acc[i * RN + j] = coopMatMulAdd(ma[i], mb, acc[i * RN + j]);
            }
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < RM; ++i)
        [[unroll]] for (uint j = 0; j < RN; ++j)
            coopMatStore(acc[i * RN + j], sc, ((sg_m * RM + i) * TM) * BN + (sg_n * RN + j) * TN, BN,
                         gl_CooperativeMatrixLayoutRowMajor);
    barrier();
    for (uint i = gl_LocalInvocationID.x; i < BM * BN; i += WG) store(m0 + i / BN, n0 + i % BN, sc[i]);
}

#else
// Each invocation owns a TM × TN register tile, strided across the block so neighbouring invocations
// read neighbouring shared-memory words.
void main() {
    const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    const uint RX = BN / TN;  // invocations along N
    const uint RY = BM / TM;  // invocations along M
    const uint tx = gl_LocalInvocationID.x % RX, ty = gl_LocalInvocationID.x / RX;
    float acc[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) acc[i] = 0.0;
    float av[TM];
    float bv[TN];

    for (uint k0 = 0; k0 < p.k; k0 += BK) {
        load_tiles(m0, n0, k0);
        barrier();
        for (uint kk = 0; kk < BK; ++kk) {
            [[unroll]] for (uint i = 0; i < TM; ++i) av[i] = float(sa[(ty + i * RY) * BK + kk]);
            [[unroll]] for (uint j = 0; j < TN; ++j) bv[j] = float(sb[kk * BN + tx + j * RX]);
            [[unroll]] for (uint i = 0; i < TM; ++i)
                [[unroll]] for (uint j = 0; j < TN; ++j) acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < TM; ++i)
        [[unroll]] for (uint j = 0; j < TN; ++j) store(m0 + ty + i * RY, n0 + tx + j * RX, acc[i * TN + j]);
}
#endif
