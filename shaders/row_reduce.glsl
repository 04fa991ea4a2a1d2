// Deterministic per-row reductions for the LayerNorm / RMSNorm kernels (one workgroup of ROW_WG invocations per
// row). Include after elementwise.glsl; the including shader sets local_size_x = ROW_WG.
//
// Unlike reduce.glsl's tree (log2(ROW_WG) barriers), every invocation writes its partial once and then reads all
// ROW_WG partials in index order itself: two barriers per reduction whatever ROW_WG is. On a CPU device (a
// workgroup is one thread, its invocations SIMD lanes, every barrier a switch between them) the barriers are what
// a short row costs; on a GPU the ROW_WG broadcast reads from shared memory are cheap next to the row's traffic.
// The order of every addition depends only on the shape: the same inputs give the same bits on every run.
#ifndef ROW_WG
#define ROW_WG 64
#endif

shared vec3 row_part[ROW_WG];

// The sums of a and of b over the workgroup, in invocation order, returned to every invocation. Every invocation
// must call it (uniform control flow: it contains barriers). Rounding error at most about
// (terms per invocation + ROW_WG) · 2^-24 · sum |term|.
vec2 row_sum2(float a, float b) {
    row_part[gl_LocalInvocationIndex] = vec3(a, b, 0.0);
    barrier();
    vec2 s = vec2(0.0);
    for (uint i = 0; i < ROW_WG; ++i) s += row_part[i].xy;
    barrier(); // row_part is rewritten by the next call
    return s;
}

// (mean, M2) of the workgroup's elements from every invocation's (count n, mean, M2 = sum of squared deviations
// from its mean), combined in invocation order by Chan, Golub and LeVeque's pairwise update
// (d = mean_b - mean_a, mean += d · n_b / n, M2 += M2_b + d² · n_a · n_b / n): no cancellation however far the
// data sit from zero. Invocations with n = 0 contribute nothing. Every invocation must call it.
vec2 row_moments(float n, float mean, float m2) {
    row_part[gl_LocalInvocationIndex] = vec3(n, mean, m2);
    barrier();
    float count = 0.0, mu = 0.0, sq = 0.0;
    for (uint i = 0; i < ROW_WG; ++i) {
        const vec3 q = row_part[i];
        if (q.x > 0.0) {
            const float total = count + q.x, d = q.y - mu, f = q.x / total;
            mu += d * f;
            sq += q.z + d * d * (count * f);
            count = total;
        }
    }
    barrier();
    return vec2(mu, sq);
}
