#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Adaptive average pooling (PyTorch nn.AdaptiveAvgPool2d) over planes = N * C images of h × w (NCHW) to oh × ow:
// output cell (i, j) is the mean of rows [floor(i h / oh), ceil((i + 1) h / oh)) and columns
// [floor(j w / ow), ceil((j + 1) w / ow)) (bins may overlap when the sizes do not divide).
//   forward:  out = y[plane, i, j], one invocation per output cell summing its bin in row-major order.
//   backward: out = dx[plane, a, b] (+)= sum over the bins containing (a, b) of dy / (bin size), gathered per
//             input element in a fixed order: no atomics, the same bits on every run.
// Bindings: 0 in (x forward, dy backward; IN type), 1 out (OUT type, read-write with FLAG_ACCUMULATE).
// Push: PoolPush (planes, h, w, oh, ow, flags; offset0 = in, offset2 = out; the window fields are unused).
// The host checks h * oh and w * ow stay below 2^32, so the bin bounds never wrap.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufIn { IN_S inv[]; };
layout(binding = 1) buffer BufOut { OUT_S outv[]; };
layout(push_constant) uniform Push { PoolPush p; };

uint bin_start(uint i, uint size, uint bins) {
    return i * size / bins;
}

uint bin_end(uint i, uint size, uint bins) {
    return ((i + 1u) * size + bins - 1u) / bins;
}

void forward(uint o) {
    const uint per_plane = p.oh * p.ow;
    const uint plane = o / per_plane, r = o % per_plane;
    const uint i = r / p.ow, j = r % p.ow;
    const uint h0 = bin_start(i, p.h, p.oh), h1 = bin_end(i, p.h, p.oh);
    const uint w0 = bin_start(j, p.w, p.ow), w1 = bin_end(j, p.w, p.ow);
    const uint base = p.offset0 + plane * p.h * p.w;
    float acc = 0.0;
    for (uint a = h0; a < h1; ++a)
        for (uint b = w0; b < w1; ++b) acc += LOAD_IN(inv[base + a * p.w + b]);
    outv[p.offset2 + o] = STORE_OUT(acc / float((h1 - h0) * (w1 - w0)));
}

// Bins containing row a: i from floor(a oh / h) to ceil((a + 1) oh / h) - 1 (start_i <= a < end_i exactly there).
void backward(uint e) {
    const uint per_plane = p.h * p.w;
    const uint plane = e / per_plane, r = e % per_plane;
    const uint a = r / p.w, b = r % p.w;
    const uint i0 = a * p.oh / p.h, i1 = min(((a + 1u) * p.oh + p.h - 1u) / p.h, p.oh);
    const uint j0 = b * p.ow / p.w, j1 = min(((b + 1u) * p.ow + p.w - 1u) / p.w, p.ow);
    const uint base = p.offset0 + plane * p.oh * p.ow;
    float acc = 0.0;
    for (uint i = i0; i < i1; ++i) {
        const uint rows = bin_end(i, p.h, p.oh) - bin_start(i, p.h, p.oh);
        for (uint j = j0; j < j1; ++j) {
            const uint cols = bin_end(j, p.w, p.ow) - bin_start(j, p.w, p.ow);
            acc += LOAD_IN(inv[base + i * p.ow + j]) / float(rows * cols);
        }
    }
    const uint k = p.offset2 + e;
    outv[k] = STORE_OUT((p.flags & FLAG_ACCUMULATE) != 0u ? LOAD_OUT(outv[k]) + acc : acc);
}

void main() {
    if ((p.flags & POOL_FLAG_BACKWARD) != 0u) {
        FOR_EACH_ELEMENT(e, p.planes * p.h * p.w) backward(e);
    } else {
        FOR_EACH_ELEMENT(o, p.planes * p.oh * p.ow) forward(o);
    }
}
