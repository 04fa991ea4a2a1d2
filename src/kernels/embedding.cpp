#include "kernels/embedding.hpp"

#include "common/check.hpp"
#include "kernels/launch.hpp"
#include "push_constants.h"
#include "runtime/device.hpp"

namespace vktrain::kernels {

static_assert(sizeof(EmbeddingPush) == 8 * 4, "EmbeddingPush layout must match shaders/push_constants.h");

namespace {

constexpr uint32_t k_emb_span = 256; // EMB_WG · EMB_COLS of shaders/embedding_backward.comp

// ids, the table (num_embeddings × dim) and the per-position rows (ids.count() × dim), named in messages.
void check_common(const runtime::Device& device, const char* op, const MatRef& ids, const MatRef& table,
                  const char* table_name, const MatRef& rows, const char* rows_name, uint32_t num_embeddings,
                  uint32_t dim) {
    VKT_CHECK(num_embeddings > 0 && dim > 0, op, ": num_embeddings and dim must be positive (got ", num_embeddings,
              " and ", dim, ")");
    VKT_CHECK(ids.dtype == DType::f32, op, ": ids must be bound as 4-byte elements (int32)");
    check_operand(device, ids, op, "ids");
    check_operand(device, table, uint64_t(num_embeddings) * dim, op, table_name);
    check_operand(device, rows, ids.count() * dim, op, rows_name);
}

} // namespace

void record_embedding(runtime::Device& device, runtime::Sequence& seq, const MatRef& ids, const MatRef& weight,
                      const MatRef& out, uint32_t num_embeddings, uint32_t dim) {
    check_common(device, "embedding", ids, weight, "weight", out, "out", num_embeddings, dim);
    VKT_CHECK(weight.dtype == out.dtype, "embedding: weight is ", dtype_name(weight.dtype), " but out is ",
              dtype_name(out.dtype));
    VKT_CHECK(!overlaps(out, ids) && !overlaps(out, weight), "embedding: out overlaps ids or weight");
    const uint64_t n = out.count();
    if (n == 0) return;

    const runtime::Kernel& k =
        kernel(device, variant_name("embedding", weight.dtype, out.dtype), 3, sizeof(EmbeddingPush));
    const Operand oi = operand(device, ids, runtime::Access::read);
    const Operand ow = operand(device, weight, runtime::Access::read);
    const Operand oo = operand(device, out, runtime::Access::write);
    EmbeddingPush pc{};
    pc.positions = uint32_t(ids.count());
    pc.dim = dim;
    pc.num_embeddings = num_embeddings;
    pc.offset_ids = oi.offset;
    pc.offset_weight = ow.offset;
    pc.offset_rows = oo.offset;
    seq.dispatch(k, {oi.binding, ow.binding, oo.binding}, &pc, sizeof(pc), element_groups(device, n));
}

void record_embedding_backward(runtime::Device& device, runtime::Sequence& seq, const MatRef& ids, const MatRef& dy,
                               const MatRef& dweight, uint32_t num_embeddings, uint32_t dim, bool accumulate) {
    check_common(device, "embedding_backward", ids, dweight, "dweight", dy, "dy", num_embeddings, dim);
    VKT_CHECK(dweight.dtype == DType::f32, "embedding_backward: dweight must be f32 (it is ", dtype_name(dweight.dtype),
              ")");
    VKT_CHECK(!overlaps(dweight, ids) && !overlaps(dweight, dy), "embedding_backward: dweight overlaps ids or dy");

    const runtime::Kernel& k =
        kernel(device, variant_name("embedding_backward", dy.dtype, dy.dtype), 3, sizeof(EmbeddingPush));
    const Operand oi = operand(device, ids, runtime::Access::read);
    const Operand od = operand(device, dy, runtime::Access::read);
    const Operand ow = operand(device, dweight, accumulate ? runtime::Access::read_write : runtime::Access::write);
    EmbeddingPush pc{};
    pc.positions = uint32_t(ids.count());
    pc.dim = dim;
    pc.num_embeddings = num_embeddings;
    pc.flags = accumulate ? FLAG_ACCUMULATE : 0u;
    pc.offset_ids = oi.offset;
    pc.offset_weight = ow.offset;
    pc.offset_rows = od.offset;
    // One work item per (vocabulary row, block of k_emb_span columns); every row is written, even with no ids.
    const uint64_t items = uint64_t(num_embeddings) * ((dim + k_emb_span - 1) / k_emb_span);
    seq.dispatch(k, {oi.binding, od.binding, ow.binding}, &pc, sizeof(pc), group_count(items, 1));
}

} // namespace vktrain::kernels
