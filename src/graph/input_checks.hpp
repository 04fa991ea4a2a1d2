// Host-side checks of the integer inputs that index something (cross-entropy labels, embedding ids), run before a
// step or a prediction: a bad index is a one-line error naming the input, rather than a NaN loss or a silent row.
#pragma once

#include <cstdint>
#include <vector>

#include "vktrain/model.hpp"

namespace vktrain::graph {

// inputs[i] holds `count` samples of model input i (Model::inputs() order); null inputs are skipped. Throws
// vktrain::Error naming the input, the index, the value and the valid range of the first bad one.
void check_index_inputs(const Model& model, const std::vector<const void*>& inputs, uint64_t count);

} // namespace vktrain::graph
