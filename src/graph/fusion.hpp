// Fusions of forward ops, applied to the IR before autodiff: what the backward pass sees is unchanged (the same
// values, some of them now views), only fewer kernels run.
#pragma once

#include "graph/ir.hpp"

namespace vktrain::graph {

// A ReLU whose input is a Linear layer's output and nothing else's: the GEMM's epilogue applies max(0, ·) after the
// bias and before the one rounding, the ReLU node records nothing (IrNode::fused) and its output becomes a view
// of the Linear's. ReLU's backward reads its output, [y > 0] = [x > 0], so the pre-activation is not needed.
void fuse_linear_relu(Ir& ir);

} // namespace vktrain::graph
