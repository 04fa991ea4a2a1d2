// Vision ops: conv2d (implicit GEMM), pooling, batch normalisation.
#include "common/check.hpp"
#include "graph/autodiff.hpp"
#include "graph/exec.hpp"
#include "graph/registry.hpp"

namespace vktrain::graph {

void register_vision_ops(std::vector<OpDef>&) {}

} // namespace vktrain::graph
