// Token embedding: the gather of table rows by integer ids, and its deterministic weight gradient.
// ids are int32, bound as a 4-byte MatRef (DType::f32 by size; the shaders read them as integers).
#pragma once

#include "kernels/tensor.hpp"
#include "runtime/sequence.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::kernels {

// out[p, c] = weight[ids[p], c] for p < ids.count(), c < dim. weight holds num_embeddings × dim elements, out
// ids.count() × dim, both of one type (fp16 or fp32). Ids outside [0, num_embeddings) give rows of zeros (callers
// check ids on the host first: see graph/input_checks.hpp).
void record_embedding(runtime::Device& device, runtime::Sequence& seq, const MatRef& ids, const MatRef& weight,
                      const MatRef& out, uint32_t num_embeddings, uint32_t dim);

// dweight[v, c] (+)= sum over p with ids[p] == v of dy[p, c]: fp32 accumulation in position order (the same bits on
// every run), dweight fp32 num_embeddings × dim, dy ids.count() × dim (fp16 or fp32). Without accumulate every row is
// written (rows no id names get 0); with it the sums are added to what dweight holds.
void record_embedding_backward(runtime::Device& device, runtime::Sequence& seq, const MatRef& ids, const MatRef& dy,
                               const MatRef& dweight, uint32_t num_embeddings, uint32_t dim, bool accumulate);

} // namespace vktrain::kernels
