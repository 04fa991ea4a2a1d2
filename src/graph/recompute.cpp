#include "graph/recompute.hpp"

#include <algorithm>
#include <map>
#include <vector>

#include "common/check.hpp"
#include "graph/registry.hpp"

namespace vktrain::graph {

namespace {

// One block's copies and where they go: before node `at` of the schedule as autodiff left it.
struct Insertion {
    size_t at = 0;
    int block = -1;
    std::vector<IrNode> nodes;
};

void check_repeatable(const Ir& ir, const IrNode& n) {
    for (int v : n.in)
        VKT_CHECK(ir.values[size_t(v)].role != Role::state, "recompute blocks: node '", n.name, "' (", n.op->name,
                  ") of block ", n.block, " updates the running statistics in '", ir.values[size_t(v)].label,
                  "', which a second run would update twice; train this model with recompute none");
    for (int v : n.out)
        VKT_CHECK(ir.values[size_t(v)].role != Role::host_out && !n.op->loss, "recompute blocks: node '", n.name, "' (",
                  n.op->name, ") of block ", n.block,
                  " writes a value the host reads; train this model with recompute none");
}

} // namespace

void recompute_blocks(Ir& ir) {
    VKT_CHECK(ir.training, "internal: recompute_blocks on an evaluation graph");
    const size_t nf = ir.forward_nodes;
    const size_t nv = ir.values.size();
    std::map<int, std::vector<size_t>> blocks; // block -> its forward nodes, in schedule order
    for (size_t i = 0; i < nf; ++i)
        if (ir.nodes[i].block >= 0) blocks[ir.nodes[i].block].push_back(i);
    if (blocks.empty()) return;

    std::vector<int> producer(nv, -1); // forward values: the forward node that writes them
    for (size_t i = 0; i < nf; ++i)
        for (int v : ir.nodes[i].out) producer[size_t(v)] = int(i);
    const auto block_of = [&](int v) {
        return producer[size_t(v)] < 0 ? -1 : ir.nodes[size_t(producer[size_t(v)])].block;
    };
    // Saved: read by a forward node of another block (or of none), or an output the host reads back. A view keeps
    // what it views saved too (same storage).
    std::vector<bool> saved(nv, false);
    const auto save = [&](int v) {
        const int b = block_of(v);
        for (; v >= 0 && block_of(v) == b; v = ir.values[size_t(v)].view_of) saved[size_t(v)] = true;
    };
    for (size_t i = 0; i < nf; ++i)
        for (int v : ir.nodes[i].in)
            if (block_of(v) >= 0 && block_of(v) != ir.nodes[i].block) save(v);
    for (int v : ir.outputs)
        if (v >= 0 && block_of(v) >= 0) save(v);
    if (ir.prediction >= 0 && block_of(ir.prediction) >= 0) save(ir.prediction);

    // Recomputed: a block's unsaved values that a backward node reads, and the unsaved values those depend on.
    std::vector<bool> needed(nv, false);
    std::vector<size_t> first_reader(nv, ir.nodes.size()); // the first backward node reading a needed value
    for (size_t i = nf; i < ir.nodes.size(); ++i)
        for (int v : ir.nodes[i].in)
            if (block_of(v) >= 0 && !saved[size_t(v)] && !needed[size_t(v)]) {
                needed[size_t(v)] = true;
                first_reader[size_t(v)] = i;
            }

    std::vector<Insertion> insertions;
    std::vector<int> clone(nv, -1);
    for (const auto& [block, members] : blocks) {
        // Nodes to copy, by closure over their unsaved inputs (walked in reverse schedule order: producers come
        // before their readers).
        std::vector<bool> copy(members.size(), false);
        size_t at = ir.nodes.size();
        for (size_t k = members.size(); k-- > 0;) {
            const IrNode& n = ir.nodes[members[k]];
            for (int v : n.out)
                if (needed[size_t(v)]) {
                    copy[k] = true;
                    at = std::min(at, first_reader[size_t(v)]);
                }
            if (!copy[k]) continue;
            check_repeatable(ir, n);
            for (int v : n.in)
                if (block_of(v) == block && !saved[size_t(v)]) needed[size_t(v)] = true;
            const int view = ir.values[size_t(n.out.at(0))].view_of;
            if (view >= 0 && block_of(view) == block && !saved[size_t(view)]) needed[size_t(view)] = true;
        }
        Insertion ins;
        ins.at = at;
        ins.block = block;
        for (size_t k = 0; k < members.size(); ++k) {
            if (!copy[k]) continue;
            IrNode c = ir.nodes[members[k]];
            c.recomputed = true;
            for (int& v : c.out) {
                IrValue fresh = ir.values[size_t(v)];
                fresh.label += ".recomputed";
                if (fresh.view_of >= 0 && clone[size_t(fresh.view_of)] >= 0)
                    fresh.view_of = clone[size_t(fresh.view_of)];
                const int id = ir.add_value(fresh);
                clone.push_back(-1);
                clone[size_t(v)] = id;
                v = id;
            }
            for (int& v : c.in)
                if (block_of(v) == block && !saved[size_t(v)]) {
                    VKT_CHECK(clone[size_t(v)] >= 0, "internal: recompute: '", ir.values[size_t(v)].label,
                              "' is read before it is recomputed");
                    v = clone[size_t(v)];
                }
            ins.nodes.push_back(std::move(c));
        }
        if (ins.nodes.empty()) continue;
        ir.recomputed_nodes += uint32_t(ins.nodes.size());
        ++ir.recomputed_blocks;
        insertions.push_back(std::move(ins));
    }
    // The backward pass reads the recomputed values.
    for (size_t i = nf; i < ir.nodes.size(); ++i)
        for (int& v : ir.nodes[i].in)
            if (size_t(v) < nv && needed[size_t(v)] && !saved[size_t(v)]) {
                VKT_CHECK(clone[size_t(v)] >= 0, "internal: recompute: no copy of '", ir.values[size_t(v)].label, "'");
                v = clone[size_t(v)];
            }
    // Splice the copies in (stable: blocks whose first reader coincides keep block order).
    std::stable_sort(insertions.begin(), insertions.end(),
                     [](const Insertion& a, const Insertion& b) { return a.at < b.at; });
    std::vector<IrNode> nodes;
    nodes.reserve(ir.nodes.size() + ir.recomputed_nodes);
    size_t next = 0;
    for (size_t i = 0; i <= ir.nodes.size(); ++i) {
        for (; next < insertions.size() && insertions[next].at == i; ++next)
            for (IrNode& c : insertions[next].nodes) nodes.push_back(std::move(c));
        if (i < ir.nodes.size()) nodes.push_back(std::move(ir.nodes[i]));
    }
    ir.nodes = std::move(nodes);
}

} // namespace vktrain::graph
