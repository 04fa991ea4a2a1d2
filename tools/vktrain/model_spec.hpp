// The models the --model option names: "mlp:256,128[:ACTIVATION]" (sizes of the hidden layers; input and class counts
// come from the data; any activation op of the registry), "cnn" (the CNN recipe on 28x28 images, Model::cnn),
// "gpt:..." (Model::gpt, on text) and "net:OP(KEY=VALUE,...),OP,..." (any one-input ops of the registry, in order, on
// the images, then a linear layer to the classes and cross-entropy). The op names and attributes come from the op
// registry (vktrain::list_ops()), so an op added there is usable here unchanged. Files record their architecture
// (Model::to_json, read by vktrain::load_model); files of earlier versions only have Model::describe() of an MLP
// ("784-256(relu)-128(relu)-10"), which model_from_description still reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vktrain/model.hpp"

namespace vktrain::cli {

struct MlpSpec {
    std::vector<uint32_t> hidden;
    std::string activation = "relu"; // a registered activation op ("gelu" in a spec is gelu_tanh, as it always was)
};

// "net:": ops of the registry applied one after the other to the input.
struct NetSpec {
    struct Op {
        std::string name;
        OpAttrs attrs;
    };
    std::vector<Op> ops;
};

struct ModelSpec {
    std::string kind; // "mlp", "cnn", "gpt" or "net"
    MlpSpec mlp;
    GptOptions gpt; // vocab comes from the text
    NetSpec net;
};

// Throws UsageError naming the problem (the text comes from the command line).
MlpSpec parse_mlp_spec(const std::string& spec);
// "gpt" or "gpt:layers=4,heads=4,width=128,context=128[,mlp=512][,tied=1]" (the recipe's values are the defaults).
GptOptions parse_gpt_spec(const std::string& spec);
// "net:conv2d(out=8,kernel_h=3,pad_h=1),relu,max_pool2d,flatten,linear(out=64),relu". Values are numbers, or for a
// shape attribute dimensions joined by 'x' ("shape=4x-1").
NetSpec parse_net_spec(const std::string& spec);
ModelSpec parse_model_spec(const std::string& spec);

Model build_mlp(const MlpSpec& spec, uint32_t input_features, uint32_t classes);
// Throws vktrain::Error when the data does not fit the model (the CNN takes 28x28 images; a net's ops check their
// input shapes). A net sees square images as [1, side, side], others as [features].
Model build_model(const ModelSpec& spec, uint32_t input_features, uint32_t classes);

// Parses Model::describe() output back into a model. Throws vktrain::Error (the text comes from a file).
Model model_from_description(const std::string& description);

} // namespace vktrain::cli
