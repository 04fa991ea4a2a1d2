#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtypes.glsl"
// Fused attention forward (flash-attention style), fp32 arithmetic on fp32 or fp16 storage. One workgroup per
// block of FLASH_WG query rows of one (sample, head), one invocation per query row: the keys and values stream
// through shared memory in blocks of KB rows (causal: up to the block's last query only), each block's scores
// are scaled, masked and folded into a running maximum m and sum l (the online softmax), and the output row is
// accumulated in registers, rescaled whenever the maximum grows. Nothing of size T × T is ever stored: the
// output and the per-row log-sum-exp m + log(l) (fp32, for the backward) are all that is written.
//   bindings: 0 q, 1 k, 2 v (IN type), 3 o (OUT type), 4 lse (fp32 [batch, heads, seq])
// Query head h reads key/value head h / (heads / kv_heads) (grouped-query attention).
#include "elementwise.glsl"

layout(local_size_x = FLASH_WG) in;
layout(constant_id = FLASH_SPEC_HD) const uint HD = 64;
layout(constant_id = FLASH_SPEC_KB) const uint KB = 16;
layout(binding = 0) readonly buffer BufQ { IN_S qv[]; };
layout(binding = 1) readonly buffer BufK { IN_S kv[]; };
layout(binding = 2) readonly buffer BufV { IN_S vv[]; };
layout(binding = 3) writeonly buffer BufO { OUT_S ov[]; };
layout(binding = 4) writeonly buffer BufL { float lsev[]; };
layout(push_constant) uniform Push { FlashAttentionPush p; };

shared float sk[KB * HD];
shared float sv[KB * HD];

// Masked scores: finite (exp of anything minus it is exactly 0, never inf - inf).
const float k_masked = -1.0e30;

void main() {
    const uint lid = gl_LocalInvocationID.x;
    const uint t = gl_WorkGroupID.x * FLASH_WG + lid;
    const bool valid = t < p.seq;
    const bool causal = (p.flags & FLASH_FLAG_CAUSAL) != 0u;
    const uint group = p.heads / p.kv_heads;
    // Causal: the block's queries see keys below its last row only.
    const uint kend = causal ? min(p.seq, (gl_WorkGroupID.x + 1u) * FLASH_WG) : p.seq;
    for (uint bh = gl_WorkGroupID.y; bh < p.batch * p.heads; bh += gl_NumWorkGroups.y) {
        const uint b = bh / p.heads, h = bh % p.heads, g = h / group;
        float q[HD], o[HD];
        const uint qrow = p.offsets[0] + (b * p.seq + min(t, p.seq - 1u)) * p.ld[0] + h * HD;
        // The scale goes into q once: scores are then plain dot products.
        for (uint d = 0; d < HD; ++d) {
            q[d] = LOAD_IN(qv[qrow + d]) * p.scale;
            o[d] = 0.0;
        }
        float m = k_masked, l = 0.0;
        for (uint j0 = 0; j0 < kend; j0 += KB) {
            barrier();
            for (uint e = lid; e < KB * HD; e += FLASH_WG) {
                const uint j = j0 + e / HD, d = e % HD;
                const uint row = b * p.seq + min(j, p.seq - 1u);
                sk[e] = LOAD_IN(kv[p.offsets[1] + row * p.ld[1] + g * HD + d]);
                sv[e] = LOAD_IN(vv[p.offsets[2] + row * p.ld[2] + g * HD + d]);
            }
            barrier();
            float s[KB];
            float bm = m;
            for (uint jj = 0; jj < KB; ++jj) {
                const uint j = j0 + jj;
                float acc = 0.0;
                for (uint d = 0; d < HD; ++d) acc += q[d] * sk[jj * HD + d];
                const bool visible = j < p.seq && (!causal || j <= t);
                s[jj] = visible ? acc : k_masked;
                bm = max(bm, s[jj]);
            }
            if (bm == k_masked) continue; // nothing visible yet (causal rows of a later block)
            const float corr = exp(m - bm);
            l *= corr;
            for (uint d = 0; d < HD; ++d) o[d] *= corr;
            for (uint jj = 0; jj < KB; ++jj) {
                const float pj = s[jj] == k_masked ? 0.0 : exp(s[jj] - bm);
                l += pj;
                for (uint d = 0; d < HD; ++d) o[d] += pj * sv[jj * HD + d];
            }
            m = bm;
        }
        if (valid) {
            const float inv = 1.0 / l;
            const uint orow = p.offsets[3] + (b * p.seq + t) * p.ld[3] + h * HD;
            for (uint d = 0; d < HD; ++d) ov[orow + d] = STORE_OUT(o[d] * inv);
            lsev[p.offsets[4] + bh * p.seq + t] = m + log(l);
        }
    }
}
