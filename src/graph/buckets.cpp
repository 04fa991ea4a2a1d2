#include "graph/buckets.hpp"

#include <algorithm>
#include <numeric>

#include "graph/planner.hpp"

namespace vktrain::graph {

std::vector<GradBucket> plan_buckets(const Ir& ir, const Layout& layout, size_t max_buckets) {
    // Trainable index of each slot (-1: frozen, or a buffer).
    std::vector<int> trainable(layout.slots.size(), -1);
    std::vector<uint64_t> sizes;
    for (size_t s = 0; s < layout.slots.size(); ++s)
        if (layout.slots[s].grad_offset >= 0) {
            trainable[s] = int(sizes.size());
            sizes.push_back(layout.slots[s].count);
        }
    // The last node reading the weight or touching the gradient of each trainable tensor.
    std::vector<int> last(sizes.size(), -1);
    const std::vector<int> roots = storage_roots(ir);
    for (size_t i = 0; i < ir.nodes.size(); ++i) {
        const IrNode& n = ir.nodes[i];
        for (const std::vector<int>* list : {&n.in, &n.out})
            for (int v : *list) {
                const IrValue& root = ir.values[size_t(roots[size_t(v)])];
                if ((root.role != Role::param && root.role != Role::param_grad) || root.param < 0) continue;
                const int k = trainable.at(size_t(root.param));
                if (k >= 0) last[size_t(k)] = std::max(last[size_t(k)], int(i));
            }
    }
    std::vector<size_t> order(sizes.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return last[a] < last[b]; });
    const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t(0));
    const uint64_t target = max_buckets <= 1 ? total + 1 : std::max<uint64_t>(1, total / max_buckets);

    std::vector<GradBucket> out;
    GradBucket current;
    for (size_t j = 0; j < order.size(); ++j) {
        const size_t k = order[j];
        current.tensors.push_back(k);
        current.elements += sizes[k];
        current.after_node = std::max(current.after_node, last[k]);
        // Close after a node only once every tensor that node finishes is in (weight and bias of one layer).
        const bool node_done = j + 1 == order.size() || last[order[j + 1]] != last[k];
        if (node_done && current.elements >= target && j + 1 < order.size()) {
            std::sort(current.tensors.begin(), current.tensors.end());
            out.push_back(std::move(current));
            current = GradBucket{};
        }
    }
    if (!current.tensors.empty() || out.empty()) {
        std::sort(current.tensors.begin(), current.tensors.end());
        out.push_back(std::move(current));
    }
    return out;
}

} // namespace vktrain::graph
