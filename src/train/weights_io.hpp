// What a weights file holds of a trainer's tensors (the public side, read_weights / parameters_for / load_model, is
// declared in vktrain/weights.hpp and implemented in io/weights.cpp and train/weights_io.cpp).
#pragma once

#include <vector>

#include "vktrain/weights.hpp"

namespace vktrain::train {

// `all` (Model::parameters() order, as Trainer::parameters() returns them) without the buffers that are not
// persistent (ParameterInfo::persistent: run-time state such as key/value caches, never saved).
std::vector<Parameter> persistent_only(const Model& model, std::vector<Parameter> all);

} // namespace vktrain::train
