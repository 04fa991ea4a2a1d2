// Per-row reductions for the LayerNorm / RMSNorm kernels (layer_norm.comp, layer_norm_backward.comp): one
// workgroup of NORM_WG invocations per row. Include after elementwise.glsl; the including shader sets
// local_size_x = NORM_WG.
//
// A row's cols elements are split among the invocations (j = t, t + NORM_WG, ...; each sums its own in index
// order), then the NORM_WG partial sums are combined by a fixed binary tree in shared memory: every addition's
// order depends only on the shape, so results are bit-identical from run to run, and a sum of m terms is off by
// at most (ceil(m / NORM_WG) + log2(NORM_WG)) * 2^-24 * sum |term|. NORM_WG is smaller than reduce.glsl's
// RED_WG because rows are often short (tens to a few thousand elements) and many: on a CPU device (one thread
// per workgroup, invocations as SIMD lanes) the tree's cost is paid per row, so it is kept to 6 levels.
#define NORM_WG 64

shared float norm_a[NORM_WG];
shared float norm_b[NORM_WG];

// The sums of a and of b over the workgroup, returned to every invocation. Every invocation of the workgroup
// must call it (uniform control flow: it contains barriers).
vec2 row_sum2(float a, float b) {
    const uint t = gl_LocalInvocationIndex;
    norm_a[t] = a;
    norm_b[t] = b;
    barrier();
    [[unroll]] for (uint s = NORM_WG / 2; s > 0u; s >>= 1) {
        if (t < s) {
            norm_a[t] += norm_a[t + s];
            norm_b[t] += norm_b[t + s];
        }
        barrier();
    }
    const vec2 r = vec2(norm_a[0], norm_b[0]);
    barrier(); // norm_a / norm_b are rewritten by the next call
    return r;
}

float row_sum(float a) {
    return row_sum2(a, 0.0).x;
}
