// The seam between the Hugging Face import/export framework (hf_import.cpp: folders, shards, dtype conversion,
// streaming, checks) and one architecture (hf_gpt2.cpp; a Llama entry goes beside it): an architecture turns
// config.json into a vktrain Model and the table that maps each of the model's tensors to a Hugging Face tensor.
// To add one: write `Plan <name>_plan(const PlanInput&)` (and optionally a config maker for export), declare it
// below, and add a row to the table in hf_import.cpp (architectures()).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/json.hpp"
#include "vktrain/model.hpp"

namespace vktrain::hf {

// One weight: the Hugging Face tensor `hf` (shape hf_shape) holds the vktrain parameter `vktrain`, either as it is
// or, with transpose, as the transpose of a 2-D tensor (GPT-2's Conv1D weights are [in, out], vktrain's [out, in]).
struct TensorMap {
    std::string hf;
    std::string vktrain;
    std::vector<int64_t> hf_shape;
    bool transpose = false;
};

// A tensor a file may hold that is the same tensor as another (a tied head that was saved anyway): it must equal
// `target` (a Hugging Face name of `tensors`) element for element, and is not imported again.
struct TensorAlias {
    std::string name;
    std::string target;
};

struct Plan {
    Model model;                    // what the file will record (a Model without a loss is allowed)
    std::vector<TensorMap> tensors; // exactly one per persistent parameter or buffer of `model`
    std::vector<TensorAlias> aliases;
    // Names of tensors files carry that are not weights (causal-mask buffers): recognised and skipped.
    std::function<bool(const std::string&)> skippable;
    std::string what; // the class these names belong to, for messages ("GPT2LMHeadModel")
};

struct PlanInput {
    const io::Json& config;    // config.json, parsed
    const std::string& origin; // for messages: "<folder>/config.json"
    // Whether the weights hold a tensor of this name (architectures whose checkpoints differ in naming, such as
    // GPT-2's optional "transformer." prefix, choose by it).
    std::function<bool(const std::string&)> has;
};

// A config field's value with a message naming the field and the file when it has the wrong type or range.
int64_t config_int(const PlanInput& in, const char* key, std::optional<int64_t> fallback, int64_t min, int64_t max);
double config_real(const PlanInput& in, const char* key, double fallback);
bool config_bool(const PlanInput& in, const char* key, bool fallback);
std::string config_string(const PlanInput& in, const char* key, const std::string& fallback);

// GPT-2 (GPT2LMHeadModel): hf_gpt2.cpp.
Plan gpt2_plan(const PlanInput& in);
// The config.json of a GPT vktrain built (Model::gpt), for exporting a model that was not imported; nullopt when
// `model` is not one.
std::optional<io::Json> gpt2_config_for(const Model& model);

// Llama (LlamaForCausalLM): hf_llama.cpp.
Plan llama_plan(const PlanInput& in);
std::optional<io::Json> llama_config_for(const Model& model);

struct Architecture {
    const char* model_type;
    Plan (*plan)(const PlanInput&);
    std::optional<io::Json> (*config_for)(const Model&); // may be null
};
const std::vector<Architecture>& architectures();
const Architecture* find_architecture(const std::string& model_type);

} // namespace vktrain::hf
