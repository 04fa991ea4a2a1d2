// Push-constant structs and specialization-constant ids shared by GLSL and C++ (sizes are
// static_assert-ed on the C++ side). Only 32-bit members, so std430 and C layouts agree.
#ifndef VKTRAIN_PUSH_CONSTANTS_H
#define VKTRAIN_PUSH_CONSTANTS_H

#ifdef __cplusplus
#include <cstdint>
namespace vktrain::kernels {
using uint = uint32_t;
#endif

// C[m, n] (+)= sum_k A(m, k) * B(k, n) with A(m, k) = a[a_offset + m * a_stride_m + k * a_stride_k] and
// B(k, n) = b[b_offset + k * b_stride_k + n * b_stride_n]: the strides express A·B, A·Bᵀ and Aᵀ·B.
struct GemmPush {
    uint m, n, k;
    uint a_offset, a_stride_m, a_stride_k;
    uint b_offset, b_stride_k, b_stride_n;
    uint c_offset, c_stride_m;
    uint accumulate; // 1: C += result
};

// Specialization constant ids of gemm.comp.
#define GEMM_SPEC_BM 0       // rows of C per workgroup
#define GEMM_SPEC_BN 1       // columns of C per workgroup
#define GEMM_SPEC_BK 2       // depth of one shared-memory tile
#define GEMM_SPEC_WG 3       // invocations per workgroup
#define GEMM_SPEC_TM 4       // tiled: rows per invocation; coopmat: cooperative-matrix M
#define GEMM_SPEC_TN 5       // tiled: columns per invocation; coopmat: cooperative-matrix N
#define GEMM_SPEC_TK 6       // coopmat: cooperative-matrix K
#define GEMM_SPEC_SG_N 7     // coopmat: subgroups along N (the rest along M)
#define GEMM_SPEC_COUNT 8

// Element-wise, column-reduction, loss and scan kernels (bias_add, bias_grad, activation, cast,
// softmax_xent, nonfinite): n elements, a rows × cols view of them, per-kernel flags and the element
// offsets of up to three buffers (which buffer is which is listed in each shader).
struct ElementPush {
    uint n;
    uint rows;
    uint cols;
    uint flags;
    uint offset0;
    uint offset1;
    uint offset2;
    uint pad0;
};

// ElementPush::flags of activation.comp.
#define ACT_FLAG_GELU 1u     // else ReLU
#define ACT_FLAG_BACKWARD 2u // dx = dy * act'(x), else y = act(x)

#ifdef __cplusplus
} // namespace vktrain::kernels
#endif

#endif
