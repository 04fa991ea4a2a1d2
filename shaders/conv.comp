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
#define GEMM_CUSTOM_REGISTERS // the register blocks below, with the gathers hoisted out of the k loop
#include "gemm_core.glsl"

layout(constant_id = CONV_SPEC_DIR) const uint DIR = CONV_DIR_FORWARD;

layout(binding = 0) readonly buffer BufA { IN_T a[]; }; // forward, backward data: w; backward weight: dy
layout(binding = 1) readonly buffer BufB { IN_T b[]; }; // forward, backward weight: x; backward data: dy
layout(binding = 2) buffer BufC { OUT_S c[]; };         // y, dx or dw
layout(push_constant) uniform Push { ConvPush p; };

uint g_group;

// One stride phase of the data gradient (CONV_DIR_BACKWARD_DATA_PHASE; see ConvPush): the fields it reuses.
#define PH_CY p.pad_h
#define PH_CX p.pad_w
#define PH_HP p.dil_h
#define PH_WP p.dil_w
#define PH_KHP p.div_ohw
#define PH_KWP p.div_ow
#define PH_IY0 p.div_stride_h
#define PH_IX0 p.div_stride_w
#define PH_KY0 p.phase_y
#define PH_KX0 p.phase_x

// floor(x / d) for x < 2^31 as a multiply-high and a shift: SIMD CPUs (lavapipe) have no vector integer
// division, and these divisions run once per gathered element. Exact for every x < 2^31 (the host keeps
// every index below that): magic = ceil(2^(31 + l) / d), l = ceil(log2 d), overshoots 2^(31 + l) / d by
// less than 2^l / d per unit of x, too little to reach the next multiple of d. magic = 0 means d = 1.
uint div_by(uint x, uint d, uint magic) {
    if (magic == 0u) return x;
    uint hi, lo;
    umulExtended(x, magic, hi, lo);
    return hi >> uint(findMSB(d - 1u));
}

// im2col(x)(r, col) of group g_group: r = (ic, ky, kx) within the group, col = (image, oy, ox).
float load_im2col(uint r, uint col) {
    const uint khw = p.kh * p.kw, ohw = p.oh * p.ow;
    const uint ic = div_by(r, khw, p.div_khw), rk = r - ic * khw;
    const uint ky = div_by(rk, p.kw, p.div_kw), kx = rk - ky * p.kw;
    const uint img = div_by(col, ohw, p.div_ohw), o = col - img * ohw;
    const uint oy = div_by(o, p.ow, p.div_ow), ox = o - oy * p.ow;
    const int iy = int(oy * p.stride_h + ky * p.dil_h) - int(p.pad_h);
    const int ix = int(ox * p.stride_w + kx * p.dil_w) - int(p.pad_w);
    // Padding reads a valid element and discards it: a select rather than a branch around the load.
    const bool inside = iy >= 0 && ix >= 0 && uint(iy) < p.h && uint(ix) < p.w;
    const uint channel = img * (p.c_in_g * p.groups) + g_group * p.c_in_g + ic;
    const float v = float(b[inside ? p.b_offset + (channel * p.h + uint(iy)) * p.w + uint(ix) : p.b_offset]);
    return inside ? v : 0.0;
}

// dy(k, col) gathered for the data gradient of group g_group: k = (oc, ky, kx) within the group,
// col = (image, iy, ix); zero where no output position reads input (iy, ix) through tap (ky, kx).
float load_dy_gather(uint k, uint col) {
    const uint khw = p.kh * p.kw, hw = p.h * p.w;
    const uint oc = div_by(k, khw, p.div_khw), rk = k - oc * khw;
    const uint ky = div_by(rk, p.kw, p.div_kw), kx = rk - ky * p.kw;
    const uint img = div_by(col, hw, p.div_hw), i = col - img * hw;
    const uint iy = div_by(i, p.w, p.div_w), ix = i - iy * p.w;
    const int ty = int(iy + p.pad_h) - int(ky * p.dil_h);
    const int tx = int(ix + p.pad_w) - int(kx * p.dil_w);
    const uint uy = uint(max(ty, 0)), ux = uint(max(tx, 0));
    const uint oy = div_by(uy, p.stride_h, p.div_stride_h), ox = div_by(ux, p.stride_w, p.div_stride_w);
    const bool hit = ty >= 0 && tx >= 0 && oy * p.stride_h == uy && ox * p.stride_w == ux && oy < p.oh && ox < p.ow;
    const uint channel = img * (p.c_out_g * p.groups) + g_group * p.c_out_g + oc;
    const float v = float(b[hit ? p.b_offset + (channel * p.oh + oy) * p.ow + ox : p.b_offset]);
    return hit ? v : 0.0;
}

// The phase's dy(k, col): k = (oc, i, j) over its khp × kwp taps, col = (image, a, b) over its hp × wp pixels.
float load_dy_phase(uint k, uint col) {
    const uint kk = PH_KHP * PH_KWP, hw = PH_HP * PH_WP;
    const uint oc = div_by(k, kk, p.div_khw), rk = k - oc * kk;
    const uint i = div_by(rk, PH_KWP, p.div_kw), j = rk - i * PH_KWP;
    const uint img = div_by(col, hw, p.div_hw), s = col - img * hw;
    const uint pa = div_by(s, PH_WP, p.div_w), pb = s - pa * PH_WP;
    const uint oy = PH_CY + pa - i, ox = PH_CX + pb - j; // past oh / ow where negative
    const bool hit = oy < p.oh && ox < p.ow;
    const uint channel = img * (p.c_out_g * p.groups) + g_group * p.c_out_g + oc;
    const float v = float(b[hit ? p.b_offset + (channel * p.oh + oy) * p.ow + ox : p.b_offset]);
    return hit ? v : 0.0;
}

float load_a(uint m, uint k) {
    if (DIR == CONV_DIR_FORWARD) // w[g·c_out_g + m][k]
        return float(a[p.a_offset + (g_group * p.c_out_g + m) * p.k + k]);
    if (DIR == CONV_DIR_BACKWARD_DATA) { // w[g·c_out_g + oc][m][ky][kx] with k = (oc, ky, kx)
        const uint khw = p.kh * p.kw;
        const uint oc = div_by(k, khw, p.div_khw), rk = k - oc * khw;
        return float(a[p.a_offset + ((g_group * p.c_out_g + oc) * p.c_in_g + m) * khw + rk]);
    }
    if (DIR == CONV_DIR_BACKWARD_DATA_PHASE) { // w[g·c_out_g + oc][m][ky0 + i·stride_h][kx0 + j·stride_w]
        const uint kk = PH_KHP * PH_KWP;
        const uint oc = div_by(k, kk, p.div_khw), rk = k - oc * kk;
        const uint i = div_by(rk, PH_KWP, p.div_kw), j = rk - i * PH_KWP;
        const uint tap = (PH_KY0 + i * p.stride_h) * p.kw + PH_KX0 + j * p.stride_w;
        return float(a[p.a_offset + ((g_group * p.c_out_g + oc) * p.c_in_g + m) * p.kh * p.kw + tap]);
    }
    // backward weight: dy[image][g·c_out_g + m][oy][ox] with k = (image, oy, ox)
    const uint ohw = p.oh * p.ow;
    const uint img = div_by(k, ohw, p.div_ohw), o = k - img * ohw;
    return float(a[p.a_offset + (img * (p.c_out_g * p.groups) + g_group * p.c_out_g + m) * ohw + o]);
}

float load_b(uint k, uint n) {
    if (DIR == CONV_DIR_FORWARD) return load_im2col(k, n);
    if (DIR == CONV_DIR_BACKWARD_DATA) return load_dy_gather(k, n);
    if (DIR == CONV_DIR_BACKWARD_DATA_PHASE) return load_dy_phase(k, n);
    return load_im2col(n, k);
}

// gemm_core.glsl's vectorised B read, unused here (the host never sets VEC_B for a gathered B).
vec4 load_b4(uint k, uint n) {
    return vec4(load_b(k, n), load_b(k, n + 1), load_b(k, n + 2), load_b(k, n + 3));
}

void store_c(uint m, uint n, float v) {
    uint idx;
    if (DIR == CONV_DIR_BACKWARD_WEIGHT) { // dw[g·c_out_g + m][n]
        idx = p.c_offset + (g_group * p.c_out_g + m) * p.n + n;
    } else if (DIR == CONV_DIR_BACKWARD_DATA_PHASE) { // dx at (iy0 + a·stride_h, ix0 + b·stride_w), n = (image, a, b)
        const uint hw = PH_HP * PH_WP;
        const uint img = div_by(n, hw, p.div_hw), s = n - img * hw;
        const uint pa = div_by(s, PH_WP, p.div_w), pb = s - pa * PH_WP;
        const uint pos = (PH_IY0 + pa * p.stride_h) * p.w + PH_IX0 + pb * p.stride_w;
        idx = p.c_offset + ((img * p.groups + g_group) * p.c_in_g + m) * (p.h * p.w) + pos;
    } else { // y or dx in NCHW: n = (image, spatial position)
        const uint channels_g = DIR == CONV_DIR_FORWARD ? p.c_out_g : p.c_in_g;
        const uint plane = DIR == CONV_DIR_FORWARD ? p.oh * p.ow : p.h * p.w;
        const uint img = div_by(n, plane, DIR == CONV_DIR_FORWARD ? p.div_ohw : p.div_hw), s = n - img * plane;
        idx = p.c_offset + (img * (channels_g * p.groups) + g_group * channels_g + m) * plane + s;
    }
    if (p.accumulate != 0) v += LOAD_OUT(c[idx]);
    c[idx] = STORE_OUT(v);
}

#ifndef COOPMAT
// Register blocks (REGS != 0, CPU devices; see gemm_core.glsl) for the implicit GEMM. The generic loop would call
// load_b per k and column, decomposing both indices with four or more multiply-high divisions per gathered
// element. Here each invocation decomposes its TN fixed columns once per block, and walks k as nested loops over
// its factors (channel, tap row, tap column, or image, output row, output column for the weight gradient), so an
// element costs an add, a bounds test and the load. k still runs in ascending order: the sums are those of the
// generic loop, bit for bit.
float g_acc[TM * TN];
float g_av[TM];
float g_bv[TN];

void fma_step() {
    [[unroll]] for (uint i = 0; i < TM; ++i)
        [[unroll]] for (uint j = 0; j < TN; ++j) g_acc[i * TN + j] = fma(g_av[i], g_bv[j], g_acc[i * TN + j]);
}

// y = w · im2col(x): column n = (image, oy, ox), k = (ic, ky, kx).
void forward_registers(uint m0, uint nb) {
    const uint ohw = p.oh * p.ow, hw = p.h * p.w;
    uint a_row[TM];
    [[unroll]] for (uint i = 0; i < TM; ++i) a_row[i] = p.a_offset + (g_group * p.c_out_g + min(m0 + i, g_m - 1)) * p.k;
    uint x_plane[TN];
    int iy0[TN], ix0[TN];
    [[unroll]] for (uint j = 0; j < TN; ++j) {
        const uint n = min(nb + j, g_n - 1);
        const uint img = div_by(n, ohw, p.div_ohw), o = n - img * ohw;
        const uint oy = div_by(o, p.ow, p.div_ow), ox = o - oy * p.ow;
        x_plane[j] = p.b_offset + (img * (p.c_in_g * p.groups) + g_group * p.c_in_g) * hw;
        iy0[j] = int(oy * p.stride_h) - int(p.pad_h);
        ix0[j] = int(ox * p.stride_w) - int(p.pad_w);
    }
    uint k = 0;
    for (uint ic = 0; ic < p.c_in_g; ++ic)
        for (uint ky = 0; ky < p.kh; ++ky) {
            uint row[TN];
            bool row_in[TN];
            [[unroll]] for (uint j = 0; j < TN; ++j) {
                const int iy = iy0[j] + int(ky * p.dil_h);
                row_in[j] = iy >= 0 && uint(iy) < p.h;
                row[j] = x_plane[j] + ic * hw + uint(iy) * p.w; // wraps where iy < 0: never read then
            }
            for (uint kx = 0; kx < p.kw; ++kx, ++k) {
                [[unroll]] for (uint i = 0; i < TM; ++i) g_av[i] = float(a[a_row[i] + k]);
                [[unroll]] for (uint j = 0; j < TN; ++j) {
                    const int ix = ix0[j] + int(kx * p.dil_w);
                    const bool inside = row_in[j] && ix >= 0 && uint(ix) < p.w;
                    const float v = float(b[inside ? row[j] + uint(ix) : p.b_offset]);
                    g_bv[j] = inside ? v : 0.0;
                }
                fma_step();
            }
        }
}

// dx = wᵀ · gather(dy): column n = (image, iy, ix), k = (oc, ky, kx); a tap contributes where
// iy + pad − ky·dil is a multiple of the stride inside the output.
void backward_data_registers(uint m0, uint nb) {
    const uint ohw = p.oh * p.ow, hw = p.h * p.w, khw = p.kh * p.kw;
    uint a_row[TM];
    [[unroll]] for (uint i = 0; i < TM; ++i)
        a_row[i] = p.a_offset + (g_group * p.c_out_g * p.c_in_g + min(m0 + i, g_m - 1)) * khw;
    uint dy_plane[TN];
    int ty0[TN], tx0[TN];
    [[unroll]] for (uint j = 0; j < TN; ++j) {
        const uint n = min(nb + j, g_n - 1);
        const uint img = div_by(n, hw, p.div_hw), s = n - img * hw;
        const uint iy = div_by(s, p.w, p.div_w), ix = s - iy * p.w;
        dy_plane[j] = p.b_offset + (img * (p.c_out_g * p.groups) + g_group * p.c_out_g) * ohw;
        ty0[j] = int(iy + p.pad_h);
        tx0[j] = int(ix + p.pad_w);
    }
    for (uint oc = 0; oc < p.c_out_g; ++oc) {
        const uint a_oc = oc * p.c_in_g * khw;
        uint rk = 0;
        for (uint ky = 0; ky < p.kh; ++ky) {
            uint row[TN];
            bool row_hit[TN];
            [[unroll]] for (uint j = 0; j < TN; ++j) {
                const int ty = ty0[j] - int(ky * p.dil_h);
                const uint uy = uint(max(ty, 0)), oy = div_by(uy, p.stride_h, p.div_stride_h);
                row_hit[j] = ty >= 0 && oy * p.stride_h == uy && oy < p.oh;
                row[j] = dy_plane[j] + oc * ohw + oy * p.ow;
            }
            if (p.stride_w == 1u) { // every tap of the row hits where it lies inside: no division, no multiple test
                for (uint kx = 0; kx < p.kw; ++kx, ++rk) {
                    [[unroll]] for (uint i = 0; i < TM; ++i) g_av[i] = float(a[a_row[i] + a_oc + rk]);
                    [[unroll]] for (uint j = 0; j < TN; ++j) {
                        const uint ox = uint(tx0[j] - int(kx * p.dil_w)); // past ow where negative
                        const bool hit = row_hit[j] && ox < p.ow;
                        const float v = float(b[hit ? row[j] + ox : p.b_offset]);
                        g_bv[j] = hit ? v : 0.0;
                    }
                    fma_step();
                }
                continue;
            }
            for (uint kx = 0; kx < p.kw; ++kx, ++rk) {
                [[unroll]] for (uint i = 0; i < TM; ++i) g_av[i] = float(a[a_row[i] + a_oc + rk]);
                [[unroll]] for (uint j = 0; j < TN; ++j) {
                    const int tx = tx0[j] - int(kx * p.dil_w);
                    const uint ux = uint(max(tx, 0)), ox = div_by(ux, p.stride_w, p.div_stride_w);
                    const bool hit = row_hit[j] && tx >= 0 && ox * p.stride_w == ux && ox < p.ow;
                    const float v = float(b[hit ? row[j] + ox : p.b_offset]);
                    g_bv[j] = hit ? v : 0.0;
                }
                fma_step();
            }
        }
    }
}

// One stride phase of dx (see ConvPush): column n = (image, a, b), k = (oc, i, j) over the phase's taps only, every
// one of which hits where oy = cy + a − i and ox = cx + b − j lie inside dy. The sums are those of
// backward_data_registers without its zero terms (the taps that miss), in the same order.
void backward_data_phase_registers(uint m0, uint nb) {
    const uint ohw = p.oh * p.ow, khw = p.kh * p.kw, hw = PH_HP * PH_WP;
    uint a_row[TM];
    [[unroll]] for (uint i = 0; i < TM; ++i)
        a_row[i] = p.a_offset + (g_group * p.c_out_g * p.c_in_g + min(m0 + i, g_m - 1)) * khw + PH_KY0 * p.kw + PH_KX0;
    uint dy_plane[TN];
    uint ty0[TN], tx0[TN];
    [[unroll]] for (uint j = 0; j < TN; ++j) {
        const uint n = min(nb + j, g_n - 1);
        const uint img = div_by(n, hw, p.div_hw), s = n - img * hw;
        const uint pa = div_by(s, PH_WP, p.div_w), pb = s - pa * PH_WP;
        dy_plane[j] = p.b_offset + (img * (p.c_out_g * p.groups) + g_group * p.c_out_g) * ohw;
        ty0[j] = PH_CY + pa;
        tx0[j] = PH_CX + pb;
    }
    const uint row_step = p.stride_h * p.kw;
    for (uint oc = 0; oc < p.c_out_g; ++oc) {
        uint a_tap = oc * p.c_in_g * khw;
        for (uint ti = 0; ti < PH_KHP; ++ti, a_tap += row_step) {
            uint row[TN];
            bool row_hit[TN];
            [[unroll]] for (uint j = 0; j < TN; ++j) {
                const uint oy = ty0[j] - ti; // past oh where negative
                row_hit[j] = oy < p.oh;
                row[j] = dy_plane[j] + oc * ohw + oy * p.ow;
            }
            for (uint tj = 0; tj < PH_KWP; ++tj) {
                [[unroll]] for (uint i = 0; i < TM; ++i) g_av[i] = float(a[a_row[i] + a_tap + tj * p.stride_w]);
                [[unroll]] for (uint j = 0; j < TN; ++j) {
                    const uint ox = tx0[j] - tj; // past ow where negative
                    const bool hit = row_hit[j] && ox < p.ow;
                    const float v = float(b[hit ? row[j] + ox : p.b_offset]);
                    g_bv[j] = hit ? v : 0.0;
                }
                fma_step();
            }
        }
    }
}

// dw = dy · im2col(x)ᵀ: column n = (ic, ky, kx), k = (image, oy, ox).
void backward_weight_registers(uint m0, uint nb) {
    const uint ohw = p.oh * p.ow, hw = p.h * p.w, khw = p.kh * p.kw;
    uint a_row[TM];
    [[unroll]] for (uint i = 0; i < TM; ++i) a_row[i] = p.a_offset + (g_group * p.c_out_g + min(m0 + i, g_m - 1)) * ohw;
    uint x_plane[TN];
    int ky_off[TN], kx_off[TN];
    [[unroll]] for (uint j = 0; j < TN; ++j) {
        const uint n = min(nb + j, g_n - 1);
        const uint ic = div_by(n, khw, p.div_khw), rk = n - ic * khw;
        const uint ky = div_by(rk, p.kw, p.div_kw), kx = rk - ky * p.kw;
        x_plane[j] = p.b_offset + (g_group * p.c_in_g + ic) * hw;
        ky_off[j] = int(ky * p.dil_h) - int(p.pad_h);
        kx_off[j] = int(kx * p.dil_w) - int(p.pad_w);
    }
    const uint x_image = p.c_in_g * p.groups * hw, dy_image = p.c_out_g * p.groups * ohw, images = g_k / ohw;
    for (uint img = 0; img < images; ++img)
        for (uint oy = 0; oy < p.oh; ++oy) {
            uint row[TN];
            bool row_in[TN];
            [[unroll]] for (uint j = 0; j < TN; ++j) {
                const int iy = int(oy * p.stride_h) + ky_off[j];
                row_in[j] = iy >= 0 && uint(iy) < p.h;
                row[j] = x_plane[j] + img * x_image + uint(iy) * p.w; // wraps where iy < 0: never read then
            }
            const uint a_pos = img * dy_image + oy * p.ow;
            for (uint ox = 0; ox < p.ow; ++ox) {
                [[unroll]] for (uint i = 0; i < TM; ++i) g_av[i] = float(a[a_row[i] + a_pos + ox]);
                [[unroll]] for (uint j = 0; j < TN; ++j) {
                    const int ix = int(ox * p.stride_w) + kx_off[j];
                    const bool inside = row_in[j] && ix >= 0 && uint(ix) < p.w;
                    const float v = float(b[inside ? row[j] + uint(ix) : p.b_offset]);
                    g_bv[j] = inside ? v : 0.0;
                }
                fma_step();
            }
        }
}

void gemm_block_registers(uint m0, uint n0) {
    const uint nb = n0 + gl_LocalInvocationID.x * TN;
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) g_acc[i] = 0.0;
    if (DIR == CONV_DIR_FORWARD)
        forward_registers(m0, nb);
    else if (DIR == CONV_DIR_BACKWARD_DATA)
        backward_data_registers(m0, nb);
    else if (DIR == CONV_DIR_BACKWARD_DATA_PHASE)
        backward_data_phase_registers(m0, nb);
    else
        backward_weight_registers(m0, nb);
    // One store sequence in a loop, as in gemm_core.glsl (the fp16 conversion is long).
    float result[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; ++i) result[i] = g_acc[i];
    [[dont_unroll]] for (uint i = 0; i < TM * TN; ++i) store_checked(m0 + i / TN, nb + i % TN, result[i]);
}
#endif

void main() {
    g_m = p.m;
    g_n = p.n;
    g_k = p.k;
    for (g_group = gl_WorkGroupID.z; g_group < p.groups; g_group += gl_NumWorkGroups.z) gemm_all_blocks();
}
