#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// 2-D max and average pooling, forward and backward, over planes = N * C images of h × w (NCHW), with
// PyTorch's semantics: MaxPool2d pads with -inf (padded cells never win) and on ties keeps the first
// maximum in row-major window order (a NaN always wins, the last one if several); AvgPool2d counts the
// padding (count_include_pad = True) and, with ceil_mode = False, every window divides by kh * kw.
//   forward:  out = y[plane, r, q] over the window rows r*stride_h - pad_h + [0, kh), columns likewise.
//   backward: out = dx[plane, ih, iw] (+)= sum over the windows that contain (ih, iw) of their dy, for max
//             pooling only where (ih, iw) is the window's argmax, recomputed from x. Written as a gather per
//             input element in a fixed window order: no atomics, the same bits on every run.
// Bindings: 0 x (IN type; unused by average backward, bound to dy), 1 dy (IN type; unused forward, bound to
// x), 2 out (OUT type, read-write with FLAG_ACCUMULATE). Push: PoolPush; offset0 = x, offset1 = dy, offset2 = out.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufX { IN_S x[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { PoolPush p; };

// The flat index (within the plane) of the maximum of window (r, q) of the plane starting at x element base.
uint window_argmax(uint base, int r, int q) {
    const int h0 = r * int(p.stride_h) - int(p.pad_h), w0 = q * int(p.stride_w) - int(p.pad_w);
    float best = uintBitsToFloat(0xff800000u); // -inf: what the padding holds
    uint arg = 0xffffffffu;
    for (int i = max(h0, 0); i < min(h0 + int(p.kh), int(p.h)); ++i)
        for (int j = max(w0, 0); j < min(w0 + int(p.kw), int(p.w)); ++j) {
            const uint k = uint(i) * p.w + uint(j);
            const float v = LOAD_IN(x[base + k]);
            if (v > best || isnan(v) || arg == 0xffffffffu) { // an all -inf window still has an argmax
                best = v;
                arg = k;
            }
        }
    return arg;
}

void forward(uint o) {
    const uint per_plane = p.oh * p.ow;
    const uint plane = o / per_plane, rq = o % per_plane;
    const int r = int(rq / p.ow), q = int(rq % p.ow);
    const uint base = p.offset0 + plane * p.h * p.w;
    float result;
    if ((p.flags & POOL_FLAG_MAX) != 0u) {
        result = LOAD_IN(x[base + window_argmax(base, r, q)]);
    } else {
        const int h0 = r * int(p.stride_h) - int(p.pad_h), w0 = q * int(p.stride_w) - int(p.pad_w);
        float sum = 0.0;
        for (int i = max(h0, 0); i < min(h0 + int(p.kh), int(p.h)); ++i)
            for (int j = max(w0, 0); j < min(w0 + int(p.kw), int(p.w)); ++j)
                sum += LOAD_IN(x[base + uint(i) * p.w + uint(j)]);
        result = sum / float(p.kh * p.kw);
    }
    outv[p.offset2 + o] = STORE_OUT(result);
}

// Output rows r whose window rows r*s - pad + [0, k) contain row i: ceil((i + pad - k + 1) / s) <= r <=
// floor((i + pad) / s), clipped to [0, out).
ivec2 covering(int i, uint k, uint s, uint pad, uint out_size) {
    const int lo_num = i + int(pad) - int(k) + 1;
    const int lo = lo_num <= 0 ? 0 : (lo_num + int(s) - 1) / int(s);
    const int hi = min((i + int(pad)) / int(s), int(out_size) - 1);
    return ivec2(lo, hi);
}

void backward(uint e) {
    const uint per_plane = p.h * p.w;
    const uint plane = e / per_plane, k = e % per_plane;
    const int ih = int(k / p.w), iw = int(k % p.w);
    const ivec2 rows = covering(ih, p.kh, p.stride_h, p.pad_h, p.oh);
    const ivec2 cols = covering(iw, p.kw, p.stride_w, p.pad_w, p.ow);
    const bool is_max = (p.flags & POOL_FLAG_MAX) != 0u;
    const uint x_base = p.offset0 + plane * per_plane;
    const uint dy_base = p.offset1 + plane * p.oh * p.ow;
    float acc = 0.0;
    for (int r = rows.x; r <= rows.y; ++r)
        for (int q = cols.x; q <= cols.y; ++q)
            if (!is_max || window_argmax(x_base, r, q) == k) acc += LOAD_IN(dy[dy_base + uint(r) * p.ow + uint(q)]);
    if (!is_max) acc /= float(p.kh * p.kw);
    const uint idx = p.offset2 + e;
    outv[idx] = STORE_OUT((p.flags & FLAG_ACCUMULATE) != 0u ? LOAD_OUT(outv[idx]) + acc : acc);
}

void main() {
    const bool is_backward = (p.flags & POOL_FLAG_BACKWARD) != 0u;
    const uint n = p.planes * (is_backward ? p.h * p.w : p.oh * p.ow); // < 2^31, checked on the host
    FOR_EACH_ELEMENT(i, n) {
        if (is_backward)
            backward(i);
        else
            forward(i);
    }
}
