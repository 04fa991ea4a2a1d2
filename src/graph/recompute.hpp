// Activation recomputation (TrainerOptions::recompute = Recompute::blocks), an IR pass run after autodiff: the
// forward values a block (IrNode::block, a transformer layer) computes and only the backward pass reads are no
// longer kept from the forward pass. Instead, just before the first backward node that reads one of them, the block's
// forward nodes that produce them are emitted a second time (IrNode::recomputed), reading the block's inputs (the
// residual stream, which stays alive) and the parameters and writing fresh values, and the backward nodes read those.
// The memory planner then keeps one block's activations alive in the backward pass instead of every block's.
//
// The copies are the same nodes (op, name, label, attributes): the same kernels, GEMM paths and dropout masks (the
// mask is drawn from the node's name, the seed and the step), so every recomputed value equals the original bit for
// bit, in fp32 and in mixed precision alike. Values that other forward nodes outside the block read (the block's
// output), the model's outputs and the loss's operands stay saved as before.
#pragma once

#include "graph/ir.hpp"

namespace vktrain::graph {

// Rewrites a training IR as above and sets Ir::recomputed_blocks / recomputed_nodes (0 when the model has no
// blocks: nothing changes). Throws vktrain::Error when a block holds a node that may not run twice (one that
// updates a running statistic such as BatchNorm's, or writes a value the host reads).
void recompute_blocks(Ir& ir);

} // namespace vktrain::graph
