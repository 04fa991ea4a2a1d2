#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// out[q] (+)= scale * sum over j of a[q, j] (* b[q, j] with PLANE_FLAG_PRODUCT), a and b seen as [planes, inner]:
// global average pooling (scale 1 / (h w)) and the squeeze-excitation scale's gradient (ds = sum dy x), in fp32.
// Two schedules, both in a fixed order (the same bits on every run):
//   PLANE_FLAG_SERIAL: one invocation per plane sums its elements in index order. For short planes, many of them
//     (7 x 7 at a network's head, N * C of them): on a CPU device (invocations as SIMD lanes) a workgroup tree per
//     plane costs far more than the loads (measured: tests/device/test_plane.cpp, PlaneTiming).
//   else: one workgroup per plane (planes beyond the workgroup count loop), a tree reduction (reduce.glsl), for
//     long planes and few of them.
// RED_WG is 64: a tree of 64 is what a short plane can fill.
// Bindings: 0 a (IN type), 1 b (IN type; bound to a without PLANE_FLAG_PRODUCT), 2 out (OUT type, read-write with
// FLAG_ACCUMULATE). Push: ChannelPush with outer = planes, channels = 1, inner, eps = scale; offsets[0..2].
#define RED_WG 64
#include "elementwise.glsl"
#include "reduce.glsl"

layout(local_size_x = RED_WG) in;
layout(binding = 0) readonly buffer BufA { IN_S a[]; };
layout(binding = 1) readonly buffer BufB { IN_S b[]; };
layout(binding = 2) buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { ChannelPush p; };

float term(uint k, bool product) {
    const float v = LOAD_IN(a[p.offsets[0] + k]);
    return product ? v * LOAD_IN(b[p.offsets[1] + k]) : v;
}

void store(uint q, float sum) {
    const uint k = p.offsets[2] + q;
    outv[k] = STORE_OUT((p.flags & FLAG_ACCUMULATE) != 0u ? LOAD_OUT(outv[k]) + sum : sum);
}

void main() {
    const bool product = (p.flags & PLANE_FLAG_PRODUCT) != 0u;
    if ((p.flags & PLANE_FLAG_SERIAL) != 0u) { // uniform: no barrier is skipped by part of a workgroup
        for (uint q = gl_GlobalInvocationID.x; q < p.outer; q += gl_NumWorkGroups.x * RED_WG) {
            float acc = 0.0;
            for (uint j = 0u; j < p.inner; ++j) acc += term(q * p.inner + j, product);
            store(q, acc * p.eps);
        }
        return;
    }
    // The loop bound is uniform across the workgroup, so every invocation reaches the barriers inside.
    for (uint q = gl_WorkGroupID.x; q < p.outer; q += gl_NumWorkGroups.x) {
        const uint base = q * p.inner;
        float acc = 0.0;
        for (uint j = gl_LocalInvocationIndex; j < p.inner; j += RED_WG) acc += term(base + j, product);
        const float sum = workgroup_sum(acc) * p.eps;
        if (gl_LocalInvocationIndex == 0u) store(q, sum);
    }
}
