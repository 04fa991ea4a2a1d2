// Fusions: IR passes that let one kernel do the work of several; none fires when Ir::fuse is off
// (ContextOptions::allow_fusion). What the backward pass computes is unchanged (the
// same values, some of them now views or written by another node), only fewer kernels run, and each pass fires only
// where it can prove that safe: the intermediate is read by nobody else (or still written), is not an output, and the
// types and shapes agree.
#pragma once

#include "graph/ir.hpp"

namespace vktrain::graph {

// A ReLU whose input is a Linear layer's output and nothing else's: the GEMM's epilogue applies max(0, ·) after the
// bias and before the one rounding, the ReLU node records nothing (IrNode::fused) and its output becomes a view
// of the Linear's. ReLU's backward reads its output, [y > 0] = [x > 0], so the pre-activation is not needed.
// Applied before autodiff.
void fuse_linear_relu(Ir& ir);

// Applied to the whole schedule (after autodiff when training); the bits of every value are those of the unfused
// kernels (tests/device/test_fusion.cpp):
//  - GELU (either form) after a Linear: the GEMM's epilogue applies it to the rounded pre-activation and writes both
//    (IrNode::gelu_epilogue; the pre-activation only where a backward node reads it). Its backward: the GEMM that
//    writes the GELU output's gradient (the next Linear's input gradient) multiplies by GELU'(pre-activation).
//  - A residual add followed at once by the LayerNorm / RMSNorm of its sum: the norm's kernel adds and writes the sum
//    too (IrNode::residual_add); with Ir::recompute only where both are in the same block (IrNode::block). Backward,
//    the copy of the residual stream's gradient that follows the norm's input gradient (the add's second operand's
//    gradient) is written by the norm's backward kernel in the same pass.
void fuse_after_autodiff(Ir& ir);

} // namespace vktrain::graph
