// The built-in models the --model option names: "mlp:256,128[:relu|:gelu]" (sizes of the hidden layers; input and
// class counts come from the data), "cnn" (the CNN recipe on 28x28 images, Model::cnn) and "gpt:..." (Model::gpt, on
// text). Files record their
// architecture (Model::to_json, read by vktrain::load_model); files of earlier versions only have
// Model::describe() of an MLP ("784-256(relu)-128(relu)-10"), which model_from_description still reads.
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

struct ModelSpec {
    std::string kind; // "mlp", "cnn" or "gpt"
    MlpSpec mlp;
    GptOptions gpt; // vocab comes from the text
};

// Throws UsageError naming the problem (the text comes from the command line).
MlpSpec parse_mlp_spec(const std::string& spec);
// "gpt" or "gpt:layers=4,heads=4,width=128,context=128[,mlp=512][,tied=1]" (the recipe's values are the defaults).
GptOptions parse_gpt_spec(const std::string& spec);
ModelSpec parse_model_spec(const std::string& spec);

Model build_mlp(const MlpSpec& spec, uint32_t input_features, uint32_t classes);
// Throws vktrain::Error when the data does not fit the model (the CNN takes 28x28 images).
Model build_model(const ModelSpec& spec, uint32_t input_features, uint32_t classes);

// Parses Model::describe() output back into a model. Throws vktrain::Error (the text comes from a file).
Model model_from_description(const std::string& description);

} // namespace vktrain::cli
