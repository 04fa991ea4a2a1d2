#version 450
#extension GL_GOOGLE_include_directive : require
// Batched GEMM for training: C_z (+)= op(A_z)·op(B_z), the transposes and leading dimensions expressed by
// strides and the (two-level) batch by per-operand outer and inner strides (see GemmPush). The tile loops
// live in gemm_core.glsl: COOPMAT uses VK_KHR_cooperative_matrix (fp16 × fp16 → fp32, the tile shape comes
// from the device's property list through specialization constants); otherwise fp32 arithmetic over fp16 or fp32 storage, in shared-memory
// tiles or register blocks. fp16 results are stored through the bit-exact conversion of elementwise.glsl
// (overflow gives inf, which the dynamic loss scaler must see).
#include "dtypes.glsl"
#include "elementwise.glsl"
#include "gemm_core.glsl"
#include "gelu.glsl"

layout(binding = 0) readonly buffer BufA { IN_T a[]; };
layout(binding = 1) readonly buffer BufB { IN_T b[]; };
#ifdef IN_F16
layout(binding = 1) readonly buffer BufB4 { f16vec4 b4[]; }; // the same buffer, four elements per load
#else
layout(binding = 1) readonly buffer BufB4 { vec4 b4[]; };
#endif
layout(binding = 2) buffer BufC { OUT_S c[]; };
layout(binding = 3) readonly buffer BufBias { IN_T bias[]; }; // bound to B when there is no bias
// The GELU epilogues' pre-activation (GemmPush): written with GEMM_EPILOGUE_SAVE_PRE, read by DGELU; bound to C when
// unused. Not readonly or writeonly: one declaration serves both.
layout(binding = 4) buffer BufAux { OUT_S aux[]; };
layout(push_constant) uniform Push { GemmPush p; };

uint g_a_base, g_b_base, g_c_base; // element offsets of the current batch item

float load_a(uint m, uint k) {
    return float(a[g_a_base + m * p.a_stride_m + k * p.a_stride_k]);
}

float load_b(uint k, uint n) {
    return float(b[g_b_base + k * p.b_stride_k + n * p.b_stride_n]);
}

vec4 load_b4(uint k, uint n) {
    return vec4(b4[(g_b_base + k * p.b_stride_k + n) >> 2]);
}

// The GELU epilogues: what the unfused kernels compute from the GEMM's rounded result, bit for bit (the same
// gelu.glsl functions on the same rounded inputs). Off the plain GEMM's path: one uniform branch per element.
float gelu_epilogue(uint idx, float v) {
    const float r = LOAD_OUT(STORE_OUT(v)); // the pre-activation (or the gradient) as stored by the unfused GEMM
    const uint aux_idx = p.aux_offset + (idx - p.c_offset);
    if ((p.epilogue & (GEMM_EPILOGUE_DGELU | GEMM_EPILOGUE_DGELU_ERF)) != 0) {
        const float x = LOAD_OUT(aux[aux_idx]);
        return r * ((p.epilogue & GEMM_EPILOGUE_DGELU) != 0 ? gelu_grad(x) : gelu_erf_grad(x));
    }
    if ((p.epilogue & GEMM_EPILOGUE_SAVE_PRE) != 0) aux[aux_idx] = STORE_OUT(r);
    return (p.epilogue & GEMM_EPILOGUE_GELU) != 0 ? gelu(r) : gelu_erf(r);
}

void store_c(uint m, uint n, float v) {
    const uint idx = g_c_base + m * p.c_stride_m + n;
    if ((p.epilogue & GEMM_EPILOGUE_BIAS) != 0) v += float(bias[p.bias_offset + n]);
    if ((p.epilogue & GEMM_EPILOGUE_RELU) != 0) v = (v > 0.0 || isnan(v)) ? v : 0.0; // as activation.comp: NaN stays
    if ((p.epilogue & ~(GEMM_EPILOGUE_BIAS | GEMM_EPILOGUE_RELU)) != 0) v = gelu_epilogue(idx, v);
    if (p.accumulate != 0) v += LOAD_OUT(c[idx]);
    c[idx] = STORE_OUT(v);
}

void main() {
    g_m = p.m;
    g_n = p.n;
    g_k = p.k;
    // Batches beyond maxComputeWorkGroupCount[2] loop, as blocks do in gemm_all_blocks.
    for (uint z = gl_WorkGroupID.z; z < p.batch; z += gl_NumWorkGroups.z) {
        const uint outer = z / p.inner, inner = z % p.inner;
        g_a_base = p.a_offset + outer * p.a_outer + inner * p.a_inner;
        g_b_base = p.b_offset + outer * p.b_outer + inner * p.b_inner;
        g_c_base = p.c_offset + outer * p.c_outer + inner * p.c_inner;
        gemm_all_blocks();
    }
}
