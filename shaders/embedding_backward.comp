#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// dweight[v, c] (+)= sum over the positions p with ids[p] == v of dy[p, c], in fp32 and in position order, so the
// same inputs give the same bits on every run (no float atomics). Rows no id names get 0 (or keep their value with
// FLAG_ACCUMULATE).
// A workgroup owns one vocabulary row and EMB_WG * EMB_COLS of its columns (a work item; items beyond the
// workgroup count loop). It walks the ids in chunks of EMB_WG, staged in shared memory, and adds the dy rows of
// the matching positions; dy is read once per (position, column) overall, the ids once per work item. The work is
// O(num_embeddings · positions) id comparisons: fine for character and small word vocabularies; large
// vocabularies want a sorted index (a stable sort of the positions by id, then one segment per row).
// Bindings: 0 ids (int32), 1 dy (IN type), 2 dweight (fp32, read-write with FLAG_ACCUMULATE). Push: EmbeddingPush.
#include "elementwise.glsl"

#define EMB_WG 64
#define EMB_COLS 4
layout(local_size_x = EMB_WG) in;
layout(binding = 0) readonly buffer BufIds { int ids[]; };
layout(binding = 1) readonly buffer BufDy { IN_S dy[]; };
layout(binding = 2) buffer BufDw { float dweight[]; };
layout(push_constant) uniform Push { EmbeddingPush p; };

shared int chunk_ids[EMB_WG];

void main() {
    const uint lx = gl_LocalInvocationID.x;
    const uint span = EMB_WG * EMB_COLS;
    const uint passes = (p.dim + span - 1u) / span;
    const uint items = p.num_embeddings * passes; // < 2^31: num_embeddings · dim is, and passes <= dim
    // Every loop bound below is uniform across the workgroup, so the barriers are reached by all invocations.
    for (uint item = gl_WorkGroupID.x; item < items; item += gl_NumWorkGroups.x) {
        const uint row = item / passes, c0 = (item - row * passes) * span;
        float acc[EMB_COLS];
        [[unroll]] for (uint k = 0u; k < EMB_COLS; ++k) acc[k] = 0.0;
        for (uint base = 0u; base < p.positions; base += EMB_WG) {
            chunk_ids[lx] = base + lx < p.positions ? ids[p.offset_ids + base + lx] : -1;
            barrier();
            const uint count = min(uint(EMB_WG), p.positions - base);
            for (uint j = 0u; j < count; ++j) {
                if (chunk_ids[j] != int(row)) continue;
                const uint at = p.offset_rows + (base + j) * p.dim;
                [[unroll]] for (uint k = 0u; k < EMB_COLS; ++k) {
                    const uint c = c0 + k * EMB_WG + lx;
                    if (c < p.dim) acc[k] += LOAD_IN(dy[at + c]);
                }
            }
            barrier(); // chunk_ids is rewritten by the next chunk
        }
        [[unroll]] for (uint k = 0u; k < EMB_COLS; ++k) {
            const uint c = c0 + k * EMB_WG + lx;
            if (c >= p.dim) continue;
            const uint at = p.offset_weight + row * p.dim + c;
            dweight[at] = (p.flags & FLAG_ACCUMULATE) != 0u ? dweight[at] + acc[k] : acc[k];
        }
    }
}
