#version 450
#extension GL_GOOGLE_include_directive : require
// Depthwise convolution (groups = c channels, c_out = c·mult, NCHW, PyTorch semantics): forward, data
// gradient and weight gradient, chosen by the DIR specialization constant. Implicit GEMM runs such a layer as
// c GEMMs with one output row each; here each workgroup stages one tile of one channel's plane (plus the halo
// its kernel taps reach) in shared memory once and computes every tap, and every one of the mult output
// channels, from it.
//   forward          y[img, ch·mult + j] = Σ_taps x[img, ch] (shifted) · w[ch·mult + j]; a workgroup per
//                    TILE_H × TILE_W block of an output plane (img, ch), all j;
//   backward data    dx[img, ch] = Σ_j Σ_taps dy[img, ch·mult + j] (gathered) · w[ch·mult + j]; a workgroup
//                    per block of an input plane; every dx element written once by one invocation;
//   backward weight  dw[oc, tap] = Σ_img Σ_positions dy[img, oc] · x[img, oc / mult] (shifted); a workgroup
//                    per output channel walks the batch and the plane's tiles in a fixed order, each
//                    invocation keeping one partial sum per tap, then a fixed tree over the invocations:
//                    no atomics, the same bits on every run.
// Padding is staged as zeros, so the tap loops have no bounds checks. Indices are 32-bit: the host keeps every
// tensor below 2^31 elements (Conv2dShape::validate).
#include "dtypes.glsl"
#include "elementwise.glsl"

layout(local_size_x_id = DW_SPEC_WG) in;
layout(constant_id = DW_SPEC_DIR) const uint DIR = CONV_DIR_FORWARD;
layout(constant_id = DW_SPEC_WG) const uint WG = 64;
layout(constant_id = DW_SPEC_TILE_H) const uint TH = 8;
layout(constant_id = DW_SPEC_TILE_W) const uint TW = 8;
layout(constant_id = DW_SPEC_KH) const uint KH = 3;
layout(constant_id = DW_SPEC_KW) const uint KW = 3;
layout(constant_id = DW_SPEC_STRIDE_H) const uint SH = 1;
layout(constant_id = DW_SPEC_STRIDE_W) const uint SW = 1;
layout(constant_id = DW_SPEC_DIL_H) const uint DH = 1;
layout(constant_id = DW_SPEC_DIL_W) const uint DW = 1;
layout(constant_id = DW_SPEC_SMEM) const uint SMEM = 4096;
layout(constant_id = DW_SPEC_RX) const uint RX = 4;

const uint KT = KH * KW;
// The input region a TH × TW block of outputs reads (forward, backward weight).
const uint XR = (TH - 1u) * SH + (KH - 1u) * DH + 1u;
const uint XC = (TW - 1u) * SW + (KW - 1u) * DW + 1u;
// The dy region a TH × TW block of dx gathers from (backward data): the output rows floor((iy + pad - ky·DH) / SH)
// over the block's rows and taps span at most floor((TH - 1 + (KH - 1)·DH) / SH) + 2 values.
const uint YR = (TH - 1u + (KH - 1u) * DH) / SH + 2u;
const uint YC = (TW - 1u + (KW - 1u) * DW) / SW + 2u;
// Each invocation computes RX adjacent outputs of a row at once (register blocks): the staged values one tap row of
// them reads are loaded once, XT of them (forward, weight gradient) or DT (data gradient) instead of RX·KW; on CPU
// devices every shared-memory load is a gather, so this decides the speed.
const uint XT = (RX - 1u) * SW + (KW - 1u) * DW + 1u;
const uint DT = RX + (KW - 1u) * DW;
const uint BLOCKS = TH * (TW / RX); // register blocks per tile

layout(binding = 0) readonly buffer BufIn0 { IN_S in0[]; }; // forward: x; backward: dy
layout(binding = 1) readonly buffer BufIn1 { IN_S in1[]; }; // forward, backward data: w; backward weight: x
layout(binding = 2) buffer BufOut { OUT_S outv[]; };        // y, dx or dw
layout(push_constant) uniform Push { DepthwisePush p; };

shared float s_tile[SMEM]; // the host checks that each direction's staging fits

void store(uint idx, float v) {
    if (p.accumulate != 0u) v += LOAD_OUT(outv[idx]);
    outv[idx] = STORE_OUT(v);
}

// floor(a / b) for b > 0.
int floor_div(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// Stages the rows × cols region of a plane starting at (y0, x0), zero outside the rows × cols plane, into s_tile
// from element `dst`. `from_in1` picks the buffer (x is binding 0 forward, binding 1 for the weight gradient).
void stage(bool from_in1, uint base, int y0, int x0, uint plane_h, uint plane_w, uint rows, uint cols, uint dst) {
    for (uint i = gl_LocalInvocationID.x; i < rows * cols; i += WG) {
        const uint r = i / cols, q = i - r * cols;
        const int y = y0 + int(r), x = x0 + int(q);
        const bool inside = y >= 0 && x >= 0 && y < int(plane_h) && x < int(plane_w);
        // Outside reads the plane's first element and discards it: a select, not a branch around the load.
        const uint idx = inside ? base + uint(y) * plane_w + uint(x) : base;
        const float v = from_in1 ? LOAD_IN(in1[idx]) : LOAD_IN(in0[idx]);
        s_tile[dst + i] = inside ? v : 0.0;
    }
}

void forward() {
    const uint tiles = p.tiles_x * p.tiles_y, total = p.n * p.c * tiles;
    const uint w_at = XR * XC;
    for (uint t = gl_WorkGroupID.x; t < total; t += gl_NumWorkGroups.x) {
        const uint plane = t / tiles, tt = t - plane * tiles; // plane = img·c + ch
        const uint ty = tt / p.tiles_x, tx = tt - ty * p.tiles_x;
        const uint ch = plane % p.c;
        const uint oy0 = ty * TH, ox0 = tx * TW;
        stage(false, p.in0_offset + plane * p.h * p.w, int(oy0 * SH) - int(p.pad_h), int(ox0 * SW) - int(p.pad_w),
              p.h, p.w, XR, XC, 0u);
        for (uint i = gl_LocalInvocationID.x; i < p.mult * KT; i += WG)
            s_tile[w_at + i] = LOAD_IN(in1[p.in1_offset + ch * p.mult * KT + i]);
        barrier();
        for (uint j = 0; j < p.mult; ++j) {
            float wr[KT];
            [[unroll]] for (uint k = 0; k < KT; ++k) wr[k] = s_tile[w_at + j * KT + k];
            for (uint b = gl_LocalInvocationID.x; b < BLOCKS; b += WG) {
                const uint ly = b / (TW / RX), lx = (b - ly * (TW / RX)) * RX;
                const uint oy = oy0 + ly, ox = ox0 + lx;
                if (oy >= p.oh || ox >= p.ow) continue;
                float acc[RX];
                [[unroll]] for (uint r = 0; r < RX; ++r) acc[r] = 0.0;
                [[unroll]] for (uint ky = 0; ky < KH; ++ky) {
                    float xv[XT];
                    const uint row = (ly * SH + ky * DH) * XC + lx * SW;
                    [[unroll]] for (uint t = 0; t < XT; ++t) xv[t] = s_tile[row + t];
                    [[unroll]] for (uint kx = 0; kx < KW; ++kx)
                        [[unroll]] for (uint r = 0; r < RX; ++r)
                            acc[r] = fma(xv[r * SW + kx * DW], wr[ky * KW + kx], acc[r]);
                }
                const uint at = p.out_offset + ((plane * p.mult + j) * p.oh + oy) * p.ow + ox;
                [[unroll]] for (uint r = 0; r < RX; ++r)
                    if (ox + r < p.ow) store(at + r, acc[r]);
            }
        }
        barrier(); // before the next tile overwrites s_tile
    }
}

void backward_data() {
    const uint tiles = p.tiles_x * p.tiles_y, total = p.n * p.c * tiles;
    const uint w_at = p.mult * YR * YC;
    for (uint t = gl_WorkGroupID.x; t < total; t += gl_NumWorkGroups.x) {
        const uint plane = t / tiles, tt = t - plane * tiles;
        const uint ty = tt / p.tiles_x, tx = tt - ty * p.tiles_x;
        const uint ch = plane % p.c;
        const uint iy0 = ty * TH, ix0 = tx * TW;
        // The first dy row and column any (position, tap) of this block can reach (rounded down).
        const int oy_lo = floor_div(int(iy0 + p.pad_h) - int((KH - 1u) * DH), int(SH));
        const int ox_lo = floor_div(int(ix0 + p.pad_w) - int((KW - 1u) * DW), int(SW));
        for (uint j = 0; j < p.mult; ++j)
            stage(false, p.in0_offset + (plane * p.mult + j) * p.oh * p.ow, oy_lo, ox_lo, p.oh, p.ow, YR, YC,
                  j * YR * YC);
        for (uint i = gl_LocalInvocationID.x; i < p.mult * KT; i += WG)
            s_tile[w_at + i] = LOAD_IN(in1[p.in1_offset + ch * p.mult * KT + i]);
        barrier();
        for (uint b = gl_LocalInvocationID.x; b < BLOCKS; b += WG) {
            const uint ly = b / (TW / RX), lx = (b - ly * (TW / RX)) * RX;
            const uint iy = iy0 + ly, ix = ix0 + lx;
            if (iy >= p.h || ix >= p.w) continue;
            // Tap (ky, kx) of dx (iy, ix + r) reaches dy row (iy + pad - ky·DH) / SH and column
            // (ix + r + pad - kx·DW) / SW where those divide exactly; relative to oy_lo·SH and ox_lo·SW the numerators
            // are never negative. nx0 is the numerator of r = 0, kx = KW - 1, the smallest of the block.
            const uint ry = uint(int(iy + p.pad_h) - oy_lo * int(SH));
            const uint nx0 = uint(int(ix + p.pad_w) - ox_lo * int(SW)) - (KW - 1u) * DW;
            float acc[RX];
            [[unroll]] for (uint r = 0; r < RX; ++r) acc[r] = 0.0;
            for (uint j = 0; j < p.mult; ++j) {
                const uint dy_at = j * YR * YC, wj = w_at + j * KT;
                [[unroll]] for (uint ky = 0; ky < KH; ++ky) {
                    const uint ny = ry - ky * DH;
                    const bool row_hit = ny % SH == 0u;
                    const uint row = dy_at + (ny / SH) * YC;
                    float dv[DT]; // dv[t]: numerator nx0 + t, zero where it does not divide
                    [[unroll]] for (uint t = 0; t < DT; ++t) {
                        const float v = s_tile[row + (nx0 + t) / SW];
                        dv[t] = row_hit && (nx0 + t) % SW == 0u ? v : 0.0;
                    }
                    [[unroll]] for (uint kx = 0; kx < KW; ++kx) {
                        const float wv = s_tile[wj + ky * KW + kx];
                        [[unroll]] for (uint r = 0; r < RX; ++r)
                            acc[r] = fma(dv[r + (KW - 1u - kx) * DW], wv, acc[r]);
                    }
                }
            }
            const uint at = p.out_offset + (plane * p.h + iy) * p.w + ix;
            [[unroll]] for (uint r = 0; r < RX; ++r)
                if (ix + r < p.w) store(at + r, acc[r]);
        }
        barrier();
    }
}

void backward_weight() {
    const uint tiles = p.tiles_x * p.tiles_y;
    const uint dy_at = XR * XC;
    for (uint oc = gl_WorkGroupID.x; oc < p.c * p.mult; oc += gl_NumWorkGroups.x) {
        const uint ch = oc / p.mult;
        float acc[KT];
        [[unroll]] for (uint k = 0; k < KT; ++k) acc[k] = 0.0;
        for (uint img = 0; img < p.n; ++img) {
            for (uint tt = 0; tt < tiles; ++tt) {
                const uint ty = tt / p.tiles_x, tx = tt - ty * p.tiles_x;
                const uint oy0 = ty * TH, ox0 = tx * TW;
                stage(true, p.in1_offset + (img * p.c + ch) * p.h * p.w, int(oy0 * SH) - int(p.pad_h),
                      int(ox0 * SW) - int(p.pad_w), p.h, p.w, XR, XC, 0u);
                stage(false, p.in0_offset + (img * p.c * p.mult + oc) * p.oh * p.ow, int(oy0), int(ox0), p.oh, p.ow,
                      TH, TW, dy_at);
                barrier();
                for (uint b = gl_LocalInvocationID.x; b < BLOCKS; b += WG) {
                    const uint ly = b / (TW / RX), lx = (b - ly * (TW / RX)) * RX;
                    float d[RX]; // zero past the plane's edge
                    [[unroll]] for (uint r = 0; r < RX; ++r) d[r] = s_tile[dy_at + ly * TW + lx + r];
                    [[unroll]] for (uint ky = 0; ky < KH; ++ky) {
                        float xv[XT];
                        const uint row = (ly * SH + ky * DH) * XC + lx * SW;
                        [[unroll]] for (uint t = 0; t < XT; ++t) xv[t] = s_tile[row + t];
                        [[unroll]] for (uint kx = 0; kx < KW; ++kx)
                            [[unroll]] for (uint r = 0; r < RX; ++r)
                                acc[ky * KW + kx] = fma(d[r], xv[r * SW + kx * DW], acc[ky * KW + kx]);
                    }
                }
                barrier();
            }
        }
        // A fixed tree over the invocations, all taps at once (the host checks KT·WG <= SMEM).
        const uint lid = gl_LocalInvocationID.x;
        [[unroll]] for (uint k = 0; k < KT; ++k) s_tile[k * WG + lid] = acc[k];
        barrier();
        for (uint half_wg = WG / 2u; half_wg > 0u; half_wg /= 2u) {
            for (uint i = lid; i < KT * half_wg; i += WG) {
                const uint k = i / half_wg, l = i - k * half_wg;
                s_tile[k * WG + l] += s_tile[k * WG + l + half_wg];
            }
            barrier();
        }
        for (uint k = lid; k < KT; k += WG) store(p.out_offset + oc * KT + k, s_tile[k * WG]);
        barrier();
    }
}

void main() {
    if (DIR == CONV_DIR_FORWARD)
        forward();
    else if (DIR == CONV_DIR_BACKWARD_DATA)
        backward_data();
    else
        backward_weight();
}
