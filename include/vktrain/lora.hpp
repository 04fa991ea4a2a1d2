// LoRA adapters in PEFT's folder layout (what peft's save_pretrained writes and PeftModel.from_pretrained reads):
// adapter_config.json and adapter_model.safetensors with "base_model.model.<module>.lora_A.weight" [r, in] and
// "base_model.model.<module>.lora_B.weight" [out, r]. The adapters themselves are Model::add_lora's.
//
//   vktrain::save_lora_adapter(trainer, "adapter", "gpt2-folder");      // after training a LoRA model
//   vktrain::Model m = vktrain::load_model("gpt2.safetensors");
//   vktrain::add_lora(m, vktrain::read_lora_adapter_config("adapter")); // the same adapters on a fresh base
//   vktrain::Trainer t(ctx, m, options);
//   t.set_parameters(...base weights...);
//   vktrain::load_lora_adapter(t, "adapter");
//   vktrain::ExportOptions e;                                          // merged W + (alpha / r)·B·A, HF layout
//   e.tensor_hook = vktrain::lora_merge_hook("adapter", vktrain::load_model("gpt2.safetensors"));
//   vktrain::export_hf("gpt2.safetensors", "merged", e);
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vktrain/model.hpp"

namespace vktrain {

class Trainer;
struct Parameter;

// adapter_config.json's fields that vktrain reads and writes (peft_type "LORA", bias "none"; rank_pattern,
// alpha_pattern, DoRA and other PEFT options are refused when set).
struct LoraAdapterConfig {
    LoraOptions options;                     // r, lora_alpha, lora_dropout
    std::vector<std::string> target_modules; // PEFT's rule: a module matches a name equal to it or ending in "." + it
    std::string base_model_name_or_path;
    // The base stores these layers' weights [in, out] (GPT-2's Conv1D), which only a merge into the base needs: the
    // adapter's own tensors are [r, in] and [out, r] either way. vktrain writes true when every target is one of
    // GPT-2's Conv1D layers (c_attn, c_proj, c_fc), since its GPTs go out to Hugging Face as GPT-2.
    bool fan_in_fan_out = false;
    std::string task_type = "CAUSAL_LM";
};

// Reads DIRECTORY/adapter_config.json. Throws vktrain::Error with one line naming the file and the field.
LoraAdapterConfig read_lora_adapter_config(const std::string& directory);

// LoRA on every linear layer of `model` that a target module matches (PEFT's rule), with the config's options; the
// base is frozen (Model::add_lora). Returns the adapted modules; throws when a target matches no linear layer.
std::vector<std::string> add_lora(Model& model, const LoraAdapterConfig& config);

// Writes DIRECTORY (created if absent; its parent must exist) as PEFT's adapter folder: the trainer's LoRA tensors
// (fp32 values) and a config from its model's adapters, which must share one r, alpha and dropout. Files are
// replaced atomically. Throws vktrain::Error for a model without LoRA or with adapters of different options.
void save_lora_adapter(const Trainer& trainer, const std::string& directory,
                       const std::string& base_model_name_or_path = "");

// Reads a PEFT adapter folder into the trainer's adapters: every adapter the model has must be in the file with its
// shape, and the config's r and alpha must be the model's (F32, F16 or BF16 tensors; keys with or without the
// "base_model.model." prefix). Nothing changes on an error, which names the file and the tensor or field.
void load_lora_adapter(Trainer& trainer, const std::string& directory);

// An ExportOptions::tensor_hook that merges the adapter in DIRECTORY into the base weights as PEFT's merge_and_unload
// does: W + (alpha / r)·B·A for each adapted module's "<module>.weight" (vktrain's [out, in] layout; the exporter
// transposes for Conv1D). `base` is the exported file's model: every target must be one of its linear layers with
// matching shapes (checked here, before anything is written).
std::function<void(const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& values)>
lora_merge_hook(const std::string& directory, const Model& base);

// W (out x in, row-major) += scaling · B (out x r) · A (r x in), accumulated in double per element.
// The weights of model.without_lora() from `parameters`, the LoRA model's (e.g. parameters_for its file): each adapted
// "<module>.weight" becomes W + (alpha / r)·B·A (merge_lora_weight, as PEFT's merge_and_unload) and the adapters'
// tensors are dropped. Throws vktrain::Error naming a missing or mis-shaped tensor.
std::vector<Parameter> merge_lora_parameters(const Model& model, std::vector<Parameter> parameters);

void merge_lora_weight(std::vector<float>& w, const std::vector<float>& a, const std::vector<float>& b, uint32_t out,
                       uint32_t in, uint32_t r, double scaling);

} // namespace vktrain
