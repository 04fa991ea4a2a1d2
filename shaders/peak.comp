#version 450
#extension GL_GOOGLE_include_directive : require
// The device's own ceilings, measured by the benchmark suite (bench/) in the same run as everything else so
// that results compare across machines as fractions of them (src/kernels/peak.cpp):
//   PEAK_FMA (fp32, or fp16 arithmetic with PEAK_F16): CHAINS independent vec4 fma chains per invocation;
//   PEAK_COOPMAT: CHAINS independent cooperative-matrix multiply-adds (fp16 × fp16 + fp32) per subgroup;
//   otherwise: a vec4 copy of n vec4s (read + write bandwidth).
// Every result reaches memory, so no chain can be optimised away.
#ifdef PEAK_COOPMAT
#define COOPMAT
#endif
#ifdef PEAK_F16
#define IN_F16
#endif
#include "dtypes.glsl"
#include "push_constants.h"
#if defined(PEAK_F16) && !defined(COOPMAT)
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

layout(local_size_x_id = PEAK_SPEC_WG) in;
layout(constant_id = PEAK_SPEC_CHAINS) const uint CHAINS = 4;
layout(constant_id = PEAK_SPEC_M) const uint CM = 16;
layout(constant_id = PEAK_SPEC_N) const uint CN = 16;
layout(constant_id = PEAK_SPEC_K) const uint CK = 16;
layout(push_constant) uniform Push { PeakPush p; };

#if defined(PEAK_COOPMAT)
layout(binding = 0) buffer Out { float result[]; };
shared float16_t s_in[CM * CK + CK * CN];

void main() {
    for (uint i = gl_LocalInvocationID.x; i < CM * CK + CK * CN; i += gl_WorkGroupSize.x)
        s_in[i] = float16_t(p.a * float(i % 7u));
    barrier();
    coopmat<float16_t, gl_ScopeSubgroup, CM, CK, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeSubgroup, CK, CN, gl_MatrixUseB> b;
    coopMatLoad(a, s_in, 0, CK, gl_CooperativeMatrixLayoutRowMajor);
    coopMatLoad(b, s_in, CM * CK, CN, gl_CooperativeMatrixLayoutRowMajor);
    coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator> acc[CHAINS];
    [[unroll]] for (uint c = 0; c < CHAINS; ++c)
        acc[c] = coopmat<float, gl_ScopeSubgroup, CM, CN, gl_MatrixUseAccumulator>(p.b * float(c));
    for (uint it = 0; it < p.iterations; ++it)
        [[unroll]] for (uint c = 0; c < CHAINS; ++c) acc[c] = coopMatMulAdd(a, b, acc[c]);
    [[unroll]] for (uint c = 1; c < CHAINS; ++c) acc[0] = acc[0] + acc[c];
    const uint subgroup = gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID;
    coopMatStore(acc[0], result, (subgroup % p.n) * CM * CN, CN, gl_CooperativeMatrixLayoutRowMajor);
}

#elif defined(PEAK_FMA)
layout(binding = 0) buffer Out { float result[]; };
#ifdef PEAK_F16
#define V f16vec4
#define S float16_t
#else
#define V vec4
#define S float
#endif

void main() {
    const uint id = gl_GlobalInvocationID.x;
    V acc[CHAINS];
    [[unroll]] for (uint c = 0; c < CHAINS; ++c) acc[c] = V(S(float((id + c) % 5u) * 0.25));
    const V a = V(S(p.a)), b = V(S(p.b));
    for (uint it = 0; it < p.iterations; ++it)
        [[unroll]] for (uint c = 0; c < CHAINS; ++c) acc[c] = fma(acc[c], a, b);
    vec4 sum = vec4(0.0);
    [[unroll]] for (uint c = 0; c < CHAINS; ++c) sum += vec4(acc[c]);
    result[id % p.n] = sum.x + sum.y + sum.z + sum.w;
}

#else
layout(binding = 0) readonly buffer Src { vec4 src[]; };
layout(binding = 1) writeonly buffer Dst { vec4 dst[]; };

void main() {
    const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) dst[i] = src[i];
}
#endif
