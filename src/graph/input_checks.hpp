// Host-side checks of a batch's inputs, run before a step, an evaluation or a prediction: a bad value is a one-line
// error naming the input and where the value is, rather than a NaN loss, a skipped step or a silent wrong row.
#pragma once

#include <cstdint>
#include <vector>

#include "vktrain/model.hpp"

namespace vktrain::graph {

// inputs[i] holds `count` samples of model input i (Model::inputs() order); null inputs are skipped. Throws
// vktrain::Error naming the input and the first bad value: a size (count times the input's elements, in bytes) that
// overflows 64 bits, an inf or NaN in a float input (features, regression targets), or an integer index outside its
// range (cross-entropy labels, embedding ids).
void check_input_values(const Model& model, const std::vector<const void*>& inputs, uint64_t count);

} // namespace vktrain::graph
