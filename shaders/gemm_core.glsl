// The GEMM inner loops shared by gemm.comp and conv.comp (implicit GEMM): one BM × BN block of
// C = A·B for the current problem of size g_m × g_n × g_k. The includer defines the operand access after
// including this file (the prototypes below), so a plain strided matrix, an im2col gather or a scatter
// to NCHW all run the same tile loops:
//   float load_a(uint m, uint k);          A(m, k), called only for m < g_m, k < g_k
//   float load_b(uint k, uint n);          B(k, n), called only for k < g_k, n < g_n
//   void store_c(uint m, uint n, float v); C(m, n) = v (or += v), called only for m < g_m, n < g_n
//   vec4 load_b4(uint k, uint n);          B(k, n .. n + 3), n a multiple of 4; called only when VEC_B != 0
// Include after dtypes.glsl and push_constants.h. Any M, N, K works: edges (sizes that are not tile
// multiples) are zero-padded in shared memory, or, with register blocks, computed from clamped indices
// and not stored.

layout(constant_id = GEMM_SPEC_BM) const uint BM = 64;
layout(constant_id = GEMM_SPEC_BN) const uint BN = 64;
layout(constant_id = GEMM_SPEC_BK) const uint BK = 16;
layout(constant_id = GEMM_SPEC_WG) const uint WG = 256;
layout(constant_id = GEMM_SPEC_TM) const uint TM = 4;
layout(constant_id = GEMM_SPEC_TN) const uint TN = 4;
layout(constant_id = GEMM_SPEC_TK) const uint TK = 8;
layout(constant_id = GEMM_SPEC_SG_N) const uint SG_N = 2;
layout(constant_id = GEMM_SPEC_REGS) const uint REGS = 0;
layout(constant_id = GEMM_SPEC_VEC_B) const uint VEC_B = 0;
layout(local_size_x_id = GEMM_SPEC_WG) in;

float load_a(uint m, uint k);
float load_b(uint k, uint n);
vec4 load_b4(uint k, uint n);
void store_c(uint m, uint n, float v);

uint g_m, g_n, g_k; // the current problem (one batch item or group)

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
        sa[i] = (gm < g_m && gk < g_k) ? SH_T(load_a(gm, gk)) : SH_T(0);
    }
    for (uint i = lid; i < BK * BN; i += WG) {
        const uint gk = k0 + i / BN, gn = n0 + i % BN;
        sb[i] = (gk < g_k && gn < g_n) ? SH_T(load_b(gk, gn)) : SH_T(0);
    }
}

void store_checked(uint gm, uint gn, float v) {
    if (gm < g_m && gn < g_n) store_c(gm, gn, v);
}

#ifdef COOPMAT
// Each subgroup owns RM × RN cooperative-matrix tiles of the BM × BN block.
const uint RM = 2;
const uint RN = 2;
shared float sc[BM * BN];

void gemm_block(uint m0, uint n0) {
    const uint sg_m = gl_SubgroupID / SG_N, sg_n = gl_SubgroupID % SG_N;
    coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator> acc[RM * RN];
    [[unroll]] for (uint i = 0; i < RM * RN; ++i)
        acc[i] = coopmat<float, gl_ScopeSubgroup, TM, TN, gl_MatrixUseAccumulator>(0.0);

    for (uint k0 = 0; k0 < g_k; k0 += BK) {
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
    for (uint i = gl_LocalInvocationID.x; i < BM * BN; i += WG) store_checked(m0 + i / BN, n0 + i % BN, sc[i]);
    barrier(); // sc is rewritten by the next block of this workgroup (batch or group loop), even when K = 0
}

#else
// Shared-memory tiles: each invocation owns a TM × TN register tile, strided across the block so
// neighbouring invocations read neighbouring shared-memory words.
void gemm_block_shared(uint m0, uint n0) {
    const uint RX = BN / TN; // invocations along N
    const uint RY = BM / TM; // invocations along M
    const uint tx = gl_LocalInvocationID.x % RX, ty = gl_LocalInvocationID.x / RX;
    float acc[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) acc[i] = 0.0;
    float av[TM];
    float bv[TN];

    for (uint k0 = 0; k0 < g_k; k0 += BK) {
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
    float result[TM * TN]; // stored in a loop, as in gemm_block_registers
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) result[i] = acc[i];
    [[dont_unroll]] for (uint i = 0; i < TM * TN; ++i)
        store_checked(m0 + ty + (i / TN) * RY, n0 + tx + (i % TN) * RX, result[i]);
}

#ifdef GEMM_CUSTOM_REGISTERS
// The includer brings its own register blocks (conv.comp: its gathers decomposed once per block, not per load).
void gemm_block_registers(uint m0, uint n0);
#else
// Register blocks without shared memory or barriers (REGS != 0), for CPU devices such as lavapipe: a
// workgroup runs on one thread with its invocations as SIMD lanes, so barriers and shared-memory traffic
// cost more than reloading operands. The WG invocations lie along N; each accumulates a TM × TN block
// of adjacent columns (BM = TM, BN = WG · TN) and reloads A and B from the buffers for every k. On such
// devices every buffer load costs about as much as a gather, so loads per fma decide the speed: VEC_B reads
// B four columns per load (when the host checked that B's columns are contiguous and 16-byte aligned).
void gemm_block_registers(uint m0, uint n0) {
    const uint nb = n0 + gl_LocalInvocationID.x * TN;
    float acc[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) acc[i] = 0.0;
    float av[TM];
    float bv[TN];
    // Rows and columns past the edge read the last valid one (straight-line code, no per-load branch);
    // their sums are never stored.
    for (uint k = 0; k < g_k; ++k) {
        [[unroll]] for (uint i = 0; i < TM; ++i) av[i] = load_a(min(m0 + i, g_m - 1), k);
        if (VEC_B != 0) {
            // g_n and nb are multiples of 4 here, so a clamped vec4 is either exact or wholly past the edge.
            [[unroll]] for (uint j = 0; j < TN; j += 4) {
                const vec4 v = load_b4(k, min(nb + j, g_n - 4));
                bv[j] = v.x;
                bv[j + 1] = v.y;
                bv[j + 2] = v.z;
                bv[j + 3] = v.w;
            }
        } else {
            [[unroll]] for (uint j = 0; j < TN; ++j) bv[j] = load_b(k, min(nb + j, g_n - 1));
        }
        [[unroll]] for (uint i = 0; i < TM; ++i)
            [[unroll]] for (uint j = 0; j < TN; ++j) acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
    }
    // One store sequence in a loop rather than TM × TN inlined copies of store_c (the fp16 conversion is
    // long): pipelines compile several times faster and the loop runs once per block.
    float result[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) result[i] = acc[i];
    [[dont_unroll]] for (uint i = 0; i < TM * TN; ++i) store_checked(m0 + i / TN, nb + i % TN, result[i]);
}
#endif

void gemm_block(uint m0, uint n0) {
    if (REGS != 0)
        gemm_block_registers(m0, n0);
    else
        gemm_block_shared(m0, n0);
}
#endif

// Every block of the current problem: a grid-stride loop over the x (N) and y (M) workgroup grid, so
// outputs with more blocks than maxComputeWorkGroupCount allows still work. The bounds are uniform in
// the workgroup, so the barriers inside gemm_block are reached by all its invocations.
void gemm_all_blocks() {
    const uint blocks_m = (g_m + BM - 1) / BM, blocks_n = (g_n + BN - 1) / BN;
    if (REGS != 0 && VEC_B != 0) {
        // Register blocks reading B as vec4: the x grid runs along M, so that consecutive workgroups (which CPU
        // devices run close together in time) stream the same panel of B from cache; the host sizes the grid to
        // match. (Measured faster for these; the scalar-load blocks, A·Bᵀ among them, were slower this way.)
        for (uint bx = gl_WorkGroupID.y; bx < blocks_n; bx += gl_NumWorkGroups.y)
            for (uint by = gl_WorkGroupID.x; by < blocks_m; by += gl_NumWorkGroups.x) gemm_block(by * BM, bx * BN);
        return;
    }
    for (uint by = gl_WorkGroupID.y; by < blocks_m; by += gl_NumWorkGroups.y)
        for (uint bx = gl_WorkGroupID.x; bx < blocks_n; bx += gl_NumWorkGroups.x) gemm_block(by * BM, bx * BN);
}
