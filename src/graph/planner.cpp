#include "graph/planner.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>

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

std::vector<int> storage_roots(const Ir& ir) {
    std::vector<int> root(ir.values.size(), -1);
    std::vector<int> path;
    for (size_t v = 0; v < root.size(); ++v) {
        int x = int(v);
        while (root[size_t(x)] < 0 && ir.values[size_t(x)].view_of >= 0) {
            path.push_back(x);
            x = ir.values[size_t(x)].view_of;
        }
        const int r = root[size_t(x)] >= 0 ? root[size_t(x)] : x;
        root[size_t(x)] = r;
        for (int p : path) root[size_t(p)] = r;
        path.clear();
    }
    return root;
}

namespace {
uint64_t round_up(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a;
}
} // namespace

// Values are placed in order of first use, each at the lowest offset not used by a value live at the same time (first
// fit). Placed in that order, a value v is live together with exactly the placed values whose last use is at or after
// v's first: those are kept as disjoint byte intervals, with the free gaps between them, and expire as the schedule
// moves on. A deep model has many live values (everything the backward pass reads) but few gaps, so each placement
// costs about log(live) + gaps rather than a scan and sort of every placed value.
MemoryPlan plan_memory(const Ir& ir, bool fp16, uint64_t alignment) {
    VKT_CHECK(alignment > 0, "internal: alignment 0");
    const size_t nv = ir.values.size();
    MemoryPlan plan;
    plan.alignment = alignment;
    plan.offset.assign(nv, -1);
    plan.first.assign(nv, -1);
    plan.last.assign(nv, -1);
    const std::vector<int> roots = storage_roots(ir);
    for (size_t i = 0; i < ir.nodes.size(); ++i) {
        const IrNode& n = ir.nodes[i];
        const auto touch = [&](int v) {
            const auto r = size_t(roots[size_t(v)]);
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

    std::vector<int> order;
    for (size_t v = 0; v < nv; ++v)
        if (in_arena(ir.values[v]) && plan.first[v] >= 0) order.push_back(int(v));
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return plan.first[size_t(a)] < plan.first[size_t(b)]; });

    struct Held {
        uint64_t hi;
        int value; // the live value holding [lo, hi)
    };
    std::map<uint64_t, Held> live;      // lo -> interval, disjoint
    std::map<uint64_t, uint64_t> gaps;  // lo -> hi: free bytes between live intervals (not above the highest)
    using Expiry = std::pair<int, int>; // (last use, value)
    std::priority_queue<Expiry, std::vector<Expiry>, std::greater<Expiry>> expiring;
    const auto release = [&](uint64_t lo) { // frees [lo, hi) of a live interval, merging free neighbours
        auto it = live.find(lo);
        uint64_t hi = it->second.hi;
        const bool highest = std::next(it) == live.end();
        live.erase(it);
        auto g = gaps.lower_bound(lo);
        if (g != gaps.begin() && std::prev(g)->second == lo) { // a gap ends where this interval began
            --g;
            lo = g->first;
            g = gaps.erase(g);
        }
        if (g != gaps.end() && g->first == hi) { // a gap starts where it ended
            hi = g->second;
            gaps.erase(g);
        }
        if (!highest) gaps[lo] = hi; // the space above the highest interval is not a gap: it is the open end
    };
    const auto occupy = [&](uint64_t lo, uint64_t hi, int value) { // [lo, hi) is free: a gap or the open end
        live[lo] = {hi, value};
        auto g = gaps.upper_bound(lo);
        if (g != gaps.begin() && std::prev(g)->second > lo) { // inside a gap: split it
            --g;
            const uint64_t glo = g->first, ghi = g->second;
            gaps.erase(g);
            if (glo < lo) gaps[glo] = lo;
            if (hi < ghi) gaps[hi] = ghi;
        } else if (std::next(live.find(lo)) == live.end()) { // at the open end: what lies below it is a gap
            const auto below = live.find(lo);
            const uint64_t top = below == live.begin() ? 0 : std::prev(below)->second.hi;
            if (top < lo) gaps[top] = lo;
        }
    };

    for (int v : order) {
        const uint64_t size = round_up(std::max<uint64_t>(storage_bytes(ir.values[size_t(v)], fp16), 1), alignment);
        plan.unplanned_bytes += size;
        const int f = plan.first[size_t(v)], l = plan.last[size_t(v)];
        while (!expiring.empty() && expiring.top().first < f) {
            const int u = expiring.top().second;
            expiring.pop();
            const auto it = live.find(uint64_t(plan.offset[size_t(u)]));
            if (it != live.end() && it->second.value == u) release(it->first);
        }
        // In place: the op that first writes v may reuse an input that dies at that op. The input is live (its last
        // use is this op) and no other live value overlaps it, so v takes over its bytes.
        const IrNode& def = ir.nodes[size_t(f)];
        if (def.op->inplace_input >= 0 && !def.out.empty() && def.out[0] == v && !def.accumulate) {
            const int u = roots[size_t(def.in.at(size_t(def.op->inplace_input)))];
            const auto it = plan.offset[size_t(u)] >= 0 ? live.find(uint64_t(plan.offset[size_t(u)])) : live.end();
            if (it != live.end() && it->second.value == u && plan.last[size_t(u)] == f &&
                storage_bytes(ir.values[size_t(u)], fp16) == storage_bytes(ir.values[size_t(v)], fp16)) {
                it->second.value = v;
                plan.offset[size_t(v)] = plan.offset[size_t(u)];
                expiring.push({l, v});
                ++plan.in_place;
                continue;
            }
        }
        uint64_t at = live.empty() ? 0 : std::prev(live.end())->second.hi; // the open end, unless a gap fits
        for (const auto& [glo, ghi] : gaps)
            if (ghi - glo >= size) {
                at = glo;
                break;
            }
        occupy(at, at + size, v);
        plan.offset[size_t(v)] = int64_t(at);
        expiring.push({l, v});
        plan.arena_bytes = std::max(plan.arena_bytes, at + size);
    }
    return plan;
}

} // namespace vktrain::graph
