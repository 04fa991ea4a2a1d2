// Gradient buckets: the trainable tensors grouped by where in the schedule the training program is done with them
// (their gradient's last write and their weight's last read), so that the host can read one bucket's gradients and
// update its weights while the device still runs the backward pass of earlier layers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "graph/ir.hpp"
#include "graph/resources.hpp"

namespace vktrain::graph {

struct GradBucket {
    int after_node = -1;         // the program is done with these tensors once node `after_node` has run
    std::vector<size_t> tensors; // trainable indices (order of Layout::slots with a gradient), ascending
    uint64_t elements = 0;
};

// Buckets in the order the backward pass completes them, each of at least total / max_buckets elements (but the
// last); tensors no node touches go into the first. One bucket holding everything when max_buckets <= 1.
std::vector<GradBucket> plan_buckets(const Ir& ir, const Layout& layout, size_t max_buckets);

} // namespace vktrain::graph
