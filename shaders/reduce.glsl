// Deterministic workgroup reductions for the per-channel and per-row kernels (channel sums, batch-norm
// statistics and gradients, MSE row losses). Include after elementwise.glsl; the including shader sets
// local_size_x = RED_WG (one-dimensional workgroups) and may define RED_WG (a power of two) first. (LayerNorm and
// RMSNorm rows, short and many, use row_reduce.glsl's two-barrier sums instead.)
//
// Each invocation first sums its own elements in index order (a fixed subset: j = t, t + RED_WG, ...), then
// the RED_WG partial sums are combined by a fixed binary tree in shared memory. The order of every addition
// depends only on the shape, never on scheduling, so results are bit-identical from run to run, and the
// rounding error of a sum of m terms is at most (ceil(m / RED_WG) + log2(RED_WG)) * 2^-24 * sum |term|.
#ifndef RED_WG
#define RED_WG 256
#endif

shared float red_a[RED_WG];
shared float red_b[RED_WG];

// The sums of a and of b over the workgroup, returned to every invocation. Every invocation of the
// workgroup must call it (uniform control flow: it contains barriers).
vec2 workgroup_sum2(float a, float b) {
    const uint t = gl_LocalInvocationIndex;
    red_a[t] = a;
    red_b[t] = b;
    barrier();
    [[unroll]] for (uint s = RED_WG / 2; s > 0u; s >>= 1) {
        if (t < s) {
            red_a[t] += red_a[t + s];
            red_b[t] += red_b[t + s];
        }
        barrier();
    }
    const vec2 r = vec2(red_a[0], red_b[0]);
    barrier(); // red_a / red_b are rewritten by the next call
    return r;
}

float workgroup_sum(float a) {
    return workgroup_sum2(a, 0.0).x;
}

// Element j in [0, outer * inner) of channel c of a [outer, channels, inner] tensor (the host checks that the
// tensor's element count, and so every such index, fits in 31 bits).
uint channel_element(uint j, uint c, uint channels, uint inner) {
    return (j / inner * channels + c) * inner + j % inner;
}
