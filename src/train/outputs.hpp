// Which of a compiled model's read-back outputs (graph::Ir::outputs: [0] the default output, then the named ones in
// Model::outputs() order) a Trainer::predict call means.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vktrain/model.hpp"

namespace vktrain::train {

// The index into Ir::outputs of the output named `name` ("": the default); throws as Model::output(name) does.
size_t output_index(const Model& model, const std::string& name);
// predict_all's outputs: the named ones, preceded by the default (index 0) when the model has a loss whose prediction
// operand is not one of them.
std::vector<size_t> all_outputs(const Model& model);
// count × per values, checked to fit in memory (`what` starts the message).
size_t output_values(uint64_t count, uint64_t per, const char* what);

} // namespace vktrain::train
