// The two textual model formats the tool understands: the --model option ("mlp:256,128[:relu|:gelu]", sizes of
// the hidden layers; input and class counts come from the data) and Model::describe() as stored in checkpoints
// ("784-256(relu)-128(relu)-10"), so `vktrain eval` can rebuild the network a file was trained with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vktrain/model.hpp"

namespace vktrain::cli {

struct MlpSpec {
    std::vector<uint32_t> hidden;
    OpKind activation = OpKind::relu;
};

// Throws UsageError naming the problem (the text comes from the command line).
MlpSpec parse_mlp_spec(const std::string& spec);

Model build_mlp(const MlpSpec& spec, uint32_t input_features, uint32_t classes);

// Parses Model::describe() output back into a model. Throws vktrain::Error (the text comes from a file).
Model model_from_description(const std::string& description);

} // namespace vktrain::cli
