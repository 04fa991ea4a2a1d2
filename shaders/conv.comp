#version 450
#extension GL_GOOGLE_include_directive : require
// 2D convolution (NCHW, PyTorch semantics) as implicit GEMM: the tile loops of gemm_core.glsl with loaders
// that gather the im2col matrix (or the strided dy for the data gradient) on the fly, so no im2col copy
// of the batch is ever materialised. One GEMM per group (the z loop); the direction is a specialization
// constant (see ConvPush). The data gradient is a gather, not a scatter: every dx element is written once
// by one invocation, with no atomics, so results are deterministic. Index arithmetic is 32-bit: the host
// checks that every tensor fits.
#include "dtypes.glsl"
#include "elementwise.glsl"
#include "gemm_core.glsl"

layout(constant_id = CONV_SPEC_DIR) const uint DIR = CONV_DIR_FORWARD;

layout(binding = 0) readonly buffer BufA { IN_T a[]; }; // forward, backward data: w; backward weight: dy
layout(binding = 1) readonly buffer BufB { IN_T b[]; }; // forward, backward weight: x; backward data: dy
layout(binding = 2) buffer BufC { OUT_S c[]; };         // y, dx or dw
layout(push_constant) uniform Push { ConvPush p; };

uint g_group;

// im2col(x)(r, col) of group g_group: r = (ic, ky, kx) within the group, col = (image, oy, ox).
float load_im2col(uint r, uint col) {
    const uint khw = p.kh * p.kw, ohw = p.oh * p.ow;
    const uint ic = r / khw, rk = r - ic * khw;
    const uint ky = rk / p.kw, kx = rk - ky * p.kw;
    const uint img = col / ohw, o = col - img * ohw;
    const uint oy = o / p.ow, ox = o - oy * p.ow;
    const int iy = int(oy * p.stride_h + ky * p.dil_h) - int(p.pad_h);
    const int ix = int(ox * p.stride_w + kx * p.dil_w) - int(p.pad_w);
    if (iy < 0 || ix < 0 || uint(iy) >= p.h || uint(ix) >= p.w) return 0.0;
    const uint channel = img * (p.c_in_g * p.groups) + g_group * p.c_in_g + ic;
    return float(b[p.b_offset + (channel * p.h + uint(iy)) * p.w + uint(ix)]);
}

// dy(k, col) gathered for the data gradient of group g_group: k = (oc, ky, kx) within the group,
// col = (image, iy, ix); zero where no output position reads input (iy, ix) through tap (ky, kx).
float load_dy_gather(uint k, uint col) {
    const uint khw = p.kh * p.kw, hw = p.h * p.w;
    const uint oc = k / khw, rk = k - oc * khw;
    const uint ky = rk / p.kw, kx = rk - ky * p.kw;
    const uint img = col / hw, i = col - img * hw;
    const uint iy = i / p.w, ix = i - iy * p.w;
    const int ty = int(iy + p.pad_h) - int(ky * p.dil_h);
    const int tx = int(ix + p.pad_w) - int(kx * p.dil_w);
    if (ty < 0 || tx < 0) return 0.0;
    const uint oy = uint(ty) / p.stride_h, ox = uint(tx) / p.stride_w;
    if (oy * p.stride_h != uint(ty) || ox * p.stride_w != uint(tx) || oy >= p.oh || ox >= p.ow) return 0.0;
    const uint channel = img * (p.c_out_g * p.groups) + g_group * p.c_out_g + oc;
    return float(b[p.b_offset + (channel * p.oh + oy) * p.ow + ox]);
}

float load_a(uint m, uint k) {
    if (DIR == CONV_DIR_FORWARD) // w[g·c_out_g + m][k]
        return float(a[p.a_offset + (g_group * p.c_out_g + m) * p.k + k]);
    if (DIR == CONV_DIR_BACKWARD_DATA) { // w[g·c_out_g + oc][m][ky][kx] with k = (oc, ky, kx)
        const uint khw = p.kh * p.kw;
        const uint oc = k / khw, rk = k - oc * khw;
        return float(a[p.a_offset + ((g_group * p.c_out_g + oc) * p.c_in_g + m) * khw + rk]);
    }
    // backward weight: dy[image][g·c_out_g + m][oy][ox] with k = (image, oy, ox)
    const uint ohw = p.oh * p.ow;
    const uint img = k / ohw, o = k - img * ohw;
    return float(a[p.a_offset + (img * (p.c_out_g * p.groups) + g_group * p.c_out_g + m) * ohw + o]);
}

float load_b(uint k, uint n) {
    if (DIR == CONV_DIR_FORWARD) return load_im2col(k, n);
    if (DIR == CONV_DIR_BACKWARD_DATA) return load_dy_gather(k, n);
    return load_im2col(n, k);
}

void store_c(uint m, uint n, float v) {
    uint idx;
    if (DIR == CONV_DIR_BACKWARD_WEIGHT) { // dw[g·c_out_g + m][n]
        idx = p.c_offset + (g_group * p.c_out_g + m) * p.n + n;
    } else { // y or dx in NCHW: n = (image, spatial position)
        const uint channels_g = DIR == CONV_DIR_FORWARD ? p.c_out_g : p.c_in_g;
        const uint plane = DIR == CONV_DIR_FORWARD ? p.oh * p.ow : p.h * p.w;
        const uint img = n / plane, s = n - img * plane;
        idx = p.c_offset + (img * (channels_g * p.groups) + g_group * channels_g + m) * plane + s;
    }
    if (p.accumulate != 0) v += LOAD_OUT(c[idx]);
    c[idx] = STORE_OUT(v);
}

void main() {
    g_m = p.m;
    g_n = p.n;
    g_k = p.k;
    for (g_group = gl_WorkGroupID.z; g_group < p.groups; g_group += gl_NumWorkGroups.z)
        gemm_block(gl_WorkGroupID.y * BM, gl_WorkGroupID.x * BN);
}
