#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// out[p, c] = weight[ids[p], c]: the rows of a token embedding table, gathered (an fp16 weight copies into an
// fp16 output exactly). The host checks the ids before anything runs; an id outside [0, num_embeddings) still
// reads nothing out of bounds here and gives a row of zeros.
// Bindings: 0 ids (int32), 1 weight (IN type), 2 out (OUT type). Push: EmbeddingPush.
#include "elementwise.glsl"

layout(local_size_x = ELT_WG) in;
layout(binding = 0) readonly buffer BufIds { int ids[]; };
layout(binding = 1) readonly buffer BufW { IN_S weight[]; };
layout(binding = 2) writeonly buffer BufOut { OUT_S out_rows[]; };
layout(push_constant) uniform Push { EmbeddingPush p; };

void main() {
    const uint n = p.positions * p.dim; // < 2^31, checked on the host
    FOR_EACH_ELEMENT(i, n) {
        const uint pos = i / p.dim, c = i - pos * p.dim;
        const int id = ids[p.offset_ids + pos];
        float v = 0.0;
        if (id >= 0 && uint(id) < p.num_embeddings) v = LOAD_IN(weight[p.offset_weight + uint(id) * p.dim + c]);
        out_rows[p.offset_rows + i] = STORE_OUT(v);
    }
}
