// The memory planner: every arena value (activations, activation gradients, temporaries) gets a byte offset in
// one arena, chosen over the whole schedule (forward and backward) from liveness intervals: values whose
// intervals do not overlap share bytes, and an op that may work in place reuses its input's bytes when the
// input dies there. Offsets are multiples of `alignment` (at least minStorageBufferOffsetAlignment).
#pragma once

#include <cstdint>
#include <vector>

#include "graph/ir.hpp"

namespace vktrain::graph {

struct MemoryPlan {
    std::vector<int64_t> offset;  // per value: byte offset in the arena, -1 when not in the arena
    std::vector<int> first, last; // per value: live from node `first` to node `last` (inclusive), -1 if unused
    uint64_t arena_bytes = 0;     // the planned peak
    uint64_t unplanned_bytes = 0; // one buffer per value: the sum of all sizes
    uint64_t alignment = 0;
    uint32_t in_place = 0; // values that reuse their input's bytes
};

uint64_t storage_bytes(const IrValue& v, bool fp16);
bool in_arena(const IrValue& v);
// The value whose storage v uses (itself unless it is a view).
int storage_root(const Ir& ir, int v);
// storage_root of every value at once, in time linear in the values: views chain (the residual stream's gradients
// of a deep model are views of views, one per layer), so asking value by value would take time quadratic in depth.
std::vector<int> storage_roots(const Ir& ir);

MemoryPlan plan_memory(const Ir& ir, bool fp16, uint64_t alignment);

} // namespace vktrain::graph
