#include "graph/planner.hpp"

#include <algorithm>

#include "common/check.hpp"
#include "graph/registry.hpp"

namespace vktrain::graph {

uint64_t storage_bytes(const IrValue& v, bool fp16) {
    const uint64_t size = v.storage == Storage::act && fp16 ? 2 : 4;
    return v.elements() * size;
}

bool in_arena(const IrValue& v) {
    return v.view_of < 0 && (v.role == Role::value || v.role == Role::gradient || v.role == Role::scratch);
}

int storage_root(const Ir& ir, int v) {
    while (ir.values[size_t(v)].view_of >= 0) v = ir.values[size_t(v)].view_of;
    return v;
}

namespace {
uint64_t round_up(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a;
}
} // namespace

MemoryPlan plan_memory(const Ir& ir, bool fp16, uint64_t alignment) {
    VKT_CHECK(alignment > 0, "internal: alignment 0");
    const size_t nv = ir.values.size();
    MemoryPlan plan;
    plan.alignment = alignment;
    plan.offset.assign(nv, -1);
    plan.first.assign(nv, -1);
    plan.last.assign(nv, -1);
    for (size_t i = 0; i < ir.nodes.size(); ++i) {
        const IrNode& n = ir.nodes[i];
        const auto touch = [&](int v) {
            const auto r = size_t(storage_root(ir, v));
            if (plan.first[r] < 0) plan.first[r] = int(i);
            plan.last[r] = int(i);
        };
        for (int v : n.in) touch(v);
        for (int v : n.out) touch(v);
    }
    // Evaluation reads the outputs back after the last node: nothing may reuse their bytes before then.
    if (!ir.training && !ir.nodes.empty())
        for (int v : ir.outputs) {
            if (v < 0) continue;
            const auto r = size_t(storage_root(ir, v));
            if (plan.first[r] >= 0) plan.last[r] = int(ir.nodes.size() - 1);
        }

    struct Placed {
        uint64_t lo, hi;
        int first, last;
        int value;
    };
    std::vector<Placed> placed;
    std::vector<int> order;
    for (size_t v = 0; v < nv; ++v)
        if (in_arena(ir.values[v]) && plan.first[v] >= 0) order.push_back(int(v));
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return plan.first[size_t(a)] < plan.first[size_t(b)]; });

    for (int v : order) {
        const uint64_t size = round_up(std::max<uint64_t>(storage_bytes(ir.values[size_t(v)], fp16), 1), alignment);
        plan.unplanned_bytes += size;
        const int f = plan.first[size_t(v)], l = plan.last[size_t(v)];
        // In place: the op that first writes v may reuse an input that dies at that op.
        int reuse = -1;
        const IrNode& def = ir.nodes[size_t(f)];
        if (def.op->inplace_input >= 0 && !def.out.empty() && def.out[0] == v && !def.accumulate) {
            const int u = storage_root(ir, def.in.at(size_t(def.op->inplace_input)));
            if (plan.offset[size_t(u)] >= 0 && plan.last[size_t(u)] == f &&
                storage_bytes(ir.values[size_t(u)], fp16) == storage_bytes(ir.values[size_t(v)], fp16))
                reuse = u;
        }
        std::vector<std::pair<uint64_t, uint64_t>> busy;
        for (const Placed& p : placed)
            if (p.value != reuse && p.first <= l && f <= p.last) busy.push_back({p.lo, p.hi});
        std::sort(busy.begin(), busy.end());
        uint64_t at = 0;
        bool found = false;
        if (reuse >= 0) {
            at = uint64_t(plan.offset[size_t(reuse)]);
            found = true;
            for (auto [lo, hi] : busy)
                if (lo < at + size && at < hi) found = false;
            if (found) ++plan.in_place;
        }
        if (!found) {
            at = 0;
            for (auto [lo, hi] : busy) {
                if (at + size <= lo) break;
                at = std::max(at, round_up(hi, alignment));
            }
        }
        plan.offset[size_t(v)] = int64_t(at);
        placed.push_back({at, at + size, f, l, v});
        plan.arena_bytes = std::max(plan.arena_bytes, at + size);
    }
    return plan;
}

} // namespace vktrain::graph
